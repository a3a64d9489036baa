// LoRA merge into a weight, in place: w[k] = keep · w[k] + scale · Δ[k] over the n elements of w,
// computed in f32 and stored in the weight type. Δ is the low-rank product B · A read as w's
// elements in order (Δ[k] = Σ_j b[k / cols, j] · a[j, k % cols], j = 0 .. rank-1 in order), or,
// with rank 0, a dense tensor d[k] given in b (a is then not read).
//
// LoRALinear: B (out, rank) · A (rank, in) is w's (out, in). ParameterizedLoRA: B (in, rank) ·
// A (rank, out) is (in, out), which upstream adds to w through a `view` as (out, in): the same
// elements in the same order, so one formula serves both. An embedding replaced by a LoRA is the
// dense case with keep = 1 − s, scale = s.
//
// Bindings: w (n) W at w_off, read-write | a (rank, cols) f32 at a_off | b (n / cols, rank) f32, or
// (n) f32 when rank is 0, at b_off.
// Grid: (ceil(n / 256), ·): a 2-D grid counts as consecutive rows of workgroups.

struct Params {
  n: u32,
  cols: u32,
  rank: u32,
  w_off: u32,
  a_off: u32,
  b_off: u32,
  keep: f32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read_write> w: array<W>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(1) @binding(0) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let k = gid.x + gid.y * nwg.x * 256u;
  if (k >= p.n) {
    return;
  }
  var delta = 0.0;
  if (p.rank == 0u) {
    delta = b[p.b_off + k];
  } else {
    let row = k / p.cols;
    let col = k % p.cols;
    for (var j = 0u; j < p.rank; j++) {
      delta += b[p.b_off + row * p.rank + j] * a[p.a_off + j * p.cols + col];
    }
  }
  let o = p.w_off + k;
  w[o] = W(p.keep * f32(w[o]) + p.scale * delta);
}
