// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating): the matrix-vector product of decode steps (few rows).
// w is stored [out, in] like PyTorch's Linear. f32 accumulation whatever W is.
//
// Bindings: y (M, N) f32 at y_off | x (M, K) f32 at x_off | w (N, K) W at w_off | b (N) W at b_off, read only when
// has_bias != 0 (bind any buffer otherwise).
// Grid: (ceil(N / ROWS), M). A workgroup computes ROWS outputs of one row of x; LANES threads per
// output sum a strided slice of k (coalesced reads of w), then reduce in workgroup memory (group_sum).

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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<W>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 64u;
const ROWS: u32 = 4u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % LANES;
  let n = wg.x * ROWS + li / LANES;
  let m = wg.y;
  var acc = 0.0;
  if (n < p.n) {
    let xb = p.x_off + m * p.k;
    let wb = p.w_off + n * p.k;
    for (var k = lane; k < p.k; k += LANES) {
      acc += x[xb + k] * f32(w[wb + k]);
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
