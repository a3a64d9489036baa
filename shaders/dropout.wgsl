// Dropout with a mask that is a function of (seed, index) alone: y[i] (+)= keep(i) ? x[i] · scale
// : 0, keep(i) = lowbias32(i ^ lowbias32(seed)) >= threshold (threshold = p · 2^32, scale =
// 1 / (1 − p)). Integer arithmetic only, so the CPU twin (wasm/elementwise.c) draws the same mask,
// and the backward pass redraws the forward's mask from the same seed instead of storing it.
//
// Bindings: y (n) f32 at y_off, written or added to | x (n) f32 at x_off.
// Grid: (ceil(n / 256)), spread over y when above 65,535 workgroups.

struct Params {
  n: u32,
  y_off: u32,
  x_off: u32,
  seed: u32,
  threshold: u32,
  accumulate: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

// Chris Wellons' lowbias32: a full-avalanche 32-bit integer hash.
fn lowbias32(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) {
    let kept = lowbias32(i ^ lowbias32(p.seed)) >= p.threshold;
    var v = select(0.0, x[p.x_off + i] * p.scale, kept);
    if (p.accumulate != 0u) {
      v += y[p.y_off + i];
    }
    y[p.y_off + i] = v;
  }
}
