// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating): the decode-step
// matrix-vector product with 4-wide loads, for K % 4 == 0 and 4-aligned offsets of x and w.
// w is stored [out, in] like PyTorch's Linear; f32 accumulation whatever W is.
//
// Bindings: y (M, N) f32 at y_off | x (M, K/4) vec4f at x_off/4 | w (N, K/4) vec4<W> at w_off/4 |
// b (N) W at b_off, read only when has_bias != 0.
// Grid: (ceil(N / ROWS), M). A workgroup computes ROWS outputs of one row of x with LANES threads
// each; a lane reads every LANES-th vec4 of its weight row (coalesced), then the lanes reduce in
// workgroup memory (group_sum).

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
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> w: array<vec4<W>>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const ROWS: u32 = 8u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % LANES;
  let n = wg.x * ROWS + li / LANES;
  let m = wg.y;
  let k4 = p.k / 4u;
  var acc = 0.0;
  if (n < p.n) {
    let xb = p.x_off / 4u + m * k4;
    let wb = p.w_off / 4u + n * k4;
    for (var k = lane; k < k4; k += LANES) {
      acc += dot(x[xb + k], vec4f(w[wb + k]));
    }
  }
  let total = group_sum(acc, li, LANES);
  if (lane == 0u && n < p.n) {
    var v = total;
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
