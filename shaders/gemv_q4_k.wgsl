// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) (+ y[m, n] when accumulating) for a q4_k weight
// (src/quant/FORMATS.md: GGUF Q4_K super-blocks of 256 weights, 36 words): the decode-step
// matrix-vector product, weights dequantized in registers, f32 math. A sub-block of 32 weights
// contributes (d · sc) · Σ q · x − (dmin · m) · Σ x.
//
// Bindings: y (M, N) f32 at y_off | x (M, K/4) vec4f at x_off/4 (K % 256 == 0, x_off % 4 == 0) |
// w q4_k, row n at word w_off + n · 9K/64 | b (N) W at b_off, read only when has_bias != 0.
// Grid: (ceil(N / ROWS), M). LANES threads per output; a lane takes every LANES-th sub-block of
// its weight row, then the lanes reduce in workgroup memory (group_sum).

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
  var acc = 0.0;
  if (n < p.n) {
    let xb = p.x_off / 4u + m * (p.k / 4u);
    let wb = p.w_off + n * (p.k / 256u) * 36u;
    for (var j = lane; j < p.k / 32u; j += LANES) {
      let base = wb + (j / 8u) * 36u;
      let sub = j % 8u;
      let scales = q4k_sub_scales(w[base], vec3u(w[base + 1u], w[base + 2u], w[base + 3u]), sub);
      // Sub-block 2c + h: the nibbles h of bytes 32c .. 32c + 31 of qs (words 4 + 8c ..).
      let q_at = base + 4u + (sub / 2u) * 8u;
      let shift = (sub % 2u) * 4u + vec4u(0u, 8u, 16u, 24u);
      var qx = 0.0;
      var xs = 0.0;
      for (var i = 0u; i < 8u; i++) {
        let xv = x[xb + j * 8u + i];
        qx += dot(vec4f((vec4u(w[q_at + i]) >> shift) & vec4u(15u)), xv);
        xs += xv.x + xv.y + xv.z + xv.w;
      }
      acc += scales.x * qx - scales.y * xs;
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
