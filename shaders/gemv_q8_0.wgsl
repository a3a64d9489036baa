// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating) for a q8_0 weight
// (src/quant/FORMATS.md §3: per 64 weights 17 words, the two f16 scales then 2 × 32 int8): the
// decode-step matrix-vector product, weights dequantized in registers, f32 math.
//
// Bindings: y (M, N) f32 at y_off | x (M, K/4) vec4f at x_off/4 (K % 64 == 0, x_off % 4 == 0) |
// w q8_0, row n at word w_off + n · 17K/64 | b (N) W at b_off, read only when has_bias != 0.
// Grid: (ceil(N / ROWS), M). LANES threads per output; a lane takes every LANES-th pair of blocks
// of its weight row, then the lanes reduce in workgroup memory (group_sum).

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
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const ROWS: u32 = 8u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let lane = li % LANES;
  let n = wg.x * ROWS + li / LANES;
  let m = wg.y;
  let pairs = p.k / 64u;
  var acc = 0.0;
  if (n < p.n) {
    let xb = p.x_off / 4u + m * (p.k / 4u);
    let wb = p.w_off + n * pairs * 17u;
    for (var pr = lane; pr < pairs; pr += LANES) {
      let base = wb + pr * 17u;
      let s = unpack2x16float(w[base]);
      var first = 0.0;
      var second = 0.0;
      for (var i = 0u; i < 8u; i++) {
        first += dot(i8x4(w[base + 1u + i]), x[xb + pr * 16u + i]);
        second += dot(i8x4(w[base + 9u + i]), x[xb + pr * 16u + 8u + i]);
      }
      acc += s.x * first + s.y * second;
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
