// y[m, n] (+)= sum_k (x[m, k] · r_m · nw[k]) · w[n, k] (+ b[n]), r_m = 1 / sqrt(mean_k x[m, k]² + eps):
// RMSNorm fused into the input of a decode-step matrix-vector product (e.g. final norm + head).
// K % 4 == 0 and 4-aligned offsets of x and w.
//
// Bindings: y (M, N) f32 at y_off | x (M, K/4) vec4f at x_off/4 | nw (K/4) vec4<W> |
// w (N, K/4) vec4<W> at w_off/4 | b (N) W at b_off, read only when has_bias != 0.
// Grid: (ceil(N / 8), M). Every workgroup recomputes r_m (K floats: cheap next to its 8 weight
// rows), then 32 lanes per output row dot the normed row with a weight row.

struct Params {
  m: u32,
  n: u32,
  k: u32,
  x_off: u32,
  y_off: u32,
  w_off: u32,
  b_off: u32,
  has_bias: u32,
  accumulate: u32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> nw: array<vec4<W>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<W>>;
@group(0) @binding(4) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const ROWS: u32 = 8u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let m = wg.y;
  let k4 = p.k / 4u;
  let xb = p.x_off / 4u + m * k4;
  var ss = 0.0;
  for (var k = li; k < k4; k += 256u) {
    let v = x[xb + k];
    ss += dot(v, v);
  }
  let inv = inverseSqrt(group_sum(ss, li, 256u) / f32(p.k) + p.eps);

  let lane = li % LANES;
  let n = wg.x * ROWS + li / LANES;
  var acc = 0.0;
  if (n < p.n) {
    let wb = p.w_off / 4u + n * k4;
    for (var k = lane; k < k4; k += LANES) {
      acc += dot(x[xb + k] * vec4f(nw[k]), vec4f(w[wb + k]));
    }
  }
  let total = group_sum(acc, li, LANES);
  if (lane == 0u && n < p.n) {
    var v = total * inv;
    if (p.has_bias != 0u) {
      v += f32(b[p.b_off + n]);
    }
    let o = p.y_off + m * p.n + n;
    if (p.accumulate != 0u) {
      v += y[o];
    }
    y[o] = v;
  }
}
