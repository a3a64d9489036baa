// y[m, n] (+)= sum_k (x[m, k] · r_m · nw[k]) · w[n, k] (+ b[n]), r_m = 1 / sqrt(mean_k x[m, k]² + eps),
// for a quantized w (q8_0 or q4_k, src/quant/FORMATS.md §3, named by `layout`): norm_linear.wgsl
// over weights dequantized in registers, f32 math (the CPU twin is wasm/fused_quant.c).
// K % 64 == 0 (q8_0) or K % 256 == 0 (q4_k), x_off % 4 == 0.
//
// Bindings: y (M, N) f32 at y_off | x (M, K/4) vec4f at x_off/4 | nw (K/4) vec4<W> |
// w quantized, row n from word w_off | b (N) W at b_off, read only when has_bias != 0.
// Grid: (ceil(N / 8), M). Every workgroup recomputes r_m, then 32 lanes per output row.
// (WGSL functions cannot take storage buffers, so the dequantizing dot is written out in each
// fused kernel over quantized weights, reading its weights through `word`.)

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
  w_layout: u32, // 0 q8_0, 1 q4_k
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read> nw: array<vec4<W>>;
@group(0) @binding(3) var<storage, read> w: array<u32>;
@group(0) @binding(4) var<storage, read> b: array<W>;
@group(1) @binding(0) var<uniform> p: Params;

const LANES: u32 = 32u;
const ROWS: u32 = 8u;

// Word i of the weight (rows counted from w_off).
fn word(which: u32, i: u32) -> u32 {
  return w[p.w_off + i];
}

// This lane's part of the dot of weight row `row` (layout q4_k when `q4`, else q8_0; rows of k
// weights from word 0) of weight `which` with the normed input row x[xb ..] · nw (without 1/rms):
// the lanes take every LANES-th pair of Q8_0 blocks or Q4_K sub-block, as gemv_q8_0.wgsl and
// gemv_q4_k.wgsl do.
fn row_dot(which: u32, q4: bool, row: u32, xb: u32, k: u32, lane: u32) -> f32 {
  var acc = 0.0;
  if (!q4) {
    let pairs = k / 64u;
    let wb = row * pairs * 17u;
    for (var pr = lane; pr < pairs; pr += LANES) {
      let base = wb + pr * 17u;
      let s = unpack2x16float(word(which, base));
      var first = 0.0;
      var second = 0.0;
      for (var i = 0u; i < 8u; i++) {
        let a = pr * 16u + i;
        first += dot(i8x4(word(which, base + 1u + i)), x[xb + a] * vec4f(nw[a]));
        second += dot(i8x4(word(which, base + 9u + i)), x[xb + a + 8u] * vec4f(nw[a + 8u]));
      }
      acc += s.x * first + s.y * second;
    }
    return acc;
  }
  let wb = row * (k / 256u) * 36u;
  for (var j = lane; j < k / 32u; j += LANES) {
    let base = wb + (j / 8u) * 36u;
    let sub = j % 8u;
    let scales = q4k_sub_scales(
      word(which, base),
      vec3u(word(which, base + 1u), word(which, base + 2u), word(which, base + 3u)),
      sub,
    );
    // Sub-block 2c + h: the nibbles h of bytes 32c .. 32c + 31 of qs (words 4 + 8c ..).
    let q_at = base + 4u + (sub / 2u) * 8u;
    let shift = (sub % 2u) * 4u + vec4u(0u, 8u, 16u, 24u);
    var qx = 0.0;
    var xs = 0.0;
    for (var i = 0u; i < 8u; i++) {
      let xv = x[xb + j * 8u + i] * vec4f(nw[j * 8u + i]);
      qx += dot(vec4f((vec4u(word(which, q_at + i)) >> shift) & vec4u(15u)), xv);
      xs += xv.x + xv.y + xv.z + xv.w;
    }
    acc += scales.x * qx - scales.y * xs;
  }
  return acc;
}

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
    acc = row_dot(0u, p.w_layout == 1u, n, xb, p.k, lane);
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
