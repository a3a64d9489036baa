// Classifier-free guidance statistics (vall_e/samplers.py: cfg_logits), for the whole slice at
// once: z = u + (c − u) · w over n = rows · cols elements; std is torch's unbiased std over ALL
// elements (the original passes an empty dim tuple). Writes
// stats = [mean(c), std(c), mean(z), std(z), factor], factor = rescale · std(c) / std(z) + keep
// (keep = 1 − rescale) when rescale > 0, else 1.
//
// Bindings: stats (8) f32 | c (n) f32 at c_off | u (n) f32 at u_off.
// Grid: (1). One workgroup: two passes (means, then squared deviations) with compensated
// per-thread sums.

struct Params {
  n: u32,
  c_off: u32,
  u_off: u32,
  strength: f32,
  rescale: f32,
  keep: f32,
}

@group(0) @binding(0) var<storage, read_write> stats: array<f32>;
@group(0) @binding(1) var<storage, read> c: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;

var<workgroup> red_c: array<f32, WG>;
var<workgroup> red_z: array<f32, WG>;

fn guided(i: u32) -> f32 {
  let un = u[p.u_off + i];
  return un + (c[p.c_off + i] - un) * p.strength;
}

fn reduce(li: u32) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      red_c[li] += red_c[li + s];
      red_z[li] += red_z[li + s];
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  var sc = vec2f(0.0);
  var sz = vec2f(0.0);
  for (var i = li; i < p.n; i += WG) {
    sc = kahan_add(sc, c[p.c_off + i]);
    sz = kahan_add(sz, guided(i));
  }
  red_c[li] = sc.x;
  red_z[li] = sz.x;
  reduce(li);
  let mean_c = red_c[0] / f32(p.n);
  let mean_z = red_z[0] / f32(p.n);
  workgroupBarrier();
  sc = vec2f(0.0);
  sz = vec2f(0.0);
  for (var i = li; i < p.n; i += WG) {
    let dc = c[p.c_off + i] - mean_c;
    let dz = guided(i) - mean_z;
    sc = kahan_add(sc, dc * dc);
    sz = kahan_add(sz, dz * dz);
  }
  red_c[li] = sc.x;
  red_z[li] = sz.x;
  reduce(li);
  if (li == 0u) {
    let std_c = sqrt(red_c[0] / f32(p.n - 1u));
    let std_z = sqrt(red_z[0] / f32(p.n - 1u));
    var factor = 1.0;
    if (p.rescale > 0.0) {
      factor = p.rescale * (std_c / std_z) + p.keep;
    }
    stats[0] = mean_c;
    stats[1] = std_c;
    stats[2] = mean_z;
    stats[3] = std_z;
    stats[4] = factor;
  }
}
