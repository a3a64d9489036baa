// Shared helpers, prepended to every kernel after the precision header that the host writes:
// `enable f16;` when f16 is in use, then `alias W = f16;` or `alias W = f32;` (the weight type).
// Activations and accumulators are always f32.

// A finite stand-in for -infinity (WGSL has no infinity literal); exp(NEG_BIG - m) is 0.
const NEG_BIG: f32 = -3.0e38;

// erfc(x) with fractional error below 1.2e-7 for every x (Numerical Recipes' Chebyshev fit
// "erfcc"). WGSL has no erf. Using erfc keeps the relative error small in the negative tail of
// GELU, where 1 + erf(x) would cancel.
fn erfc_f32(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
    + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223
    + t * 0.17087277))))))));
  let r = t * exp(-z * z + poly);
  return select(2.0 - r, r, x >= 0.0);
}

// The exact GELU of PyTorch's nn.GELU() / HF "gelu": 0.5 x (1 + erf(x / sqrt 2)).
fn gelu_erf(x: f32) -> f32 {
  return 0.5 * x * erfc_f32(-x * 0.70710678118654752);
}

// Workgroup reductions for kernels of 256 invocations. Every invocation must call them, in
// uniform control flow; they share one workgroup array and leave it free for the next call.
var<workgroup> wg_partial: array<f32, 256>;

// The sum of v over each group of `lanes` consecutive invocations (lanes a power of two <= 256);
// every invocation gets its own group's sum.
fn group_sum(v: f32, li: u32, lanes: u32) -> f32 {
  wg_partial[li] = v;
  workgroupBarrier();
  let lane = li % lanes;
  for (var s = lanes / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      wg_partial[li] += wg_partial[li + s];
    }
    workgroupBarrier();
  }
  let total = wg_partial[li - lane];
  workgroupBarrier();
  return total;
}

// Compensated (Kahan) summation step: acc = (sum, carry); returns the sum with x added, keeping
// the rounding error in the carry. For long f32 sums whose reference accumulates in double.
fn kahan_add(acc: vec2f, x: f32) -> vec2f {
  let y = x - acc.y;
  let t = acc.x + y;
  return vec2f(t, (t - acc.x) - y);
}

// The four int8 of a word (little-endian bytes), as floats (Q8_0 levels).
fn i8x4(word: u32) -> vec4f {
  let v = vec4i(bitcast<i32>(word << 24u), bitcast<i32>(word << 16u), bitcast<i32>(word << 8u),
    bitcast<i32>(word));
  return vec4f(v >> vec4u(24u));
}

// (d · sc_j, dmin · m_j) of sub-block j (0..7) of a Q4_K super-block (src/quant/FORMATS.md §1,
// get_scale_min_k4), from the block's word 0 (d and dmin, f16) and words 1..3 (the twelve 6-bit
// scale and min bytes). Both products are exact in f32 (11-bit times 6-bit significands).
fn q4k_sub_scales(dm: u32, s: vec3u, j: u32) -> vec2f {
  var sc: u32;
  var mn: u32;
  if (j < 4u) {
    sc = (s[0u] >> (8u * j)) & 63u;
    mn = (s[1u] >> (8u * j)) & 63u;
  } else {
    let i = 8u * (j - 4u);
    sc = ((s[2u] >> i) & 0xfu) | (((s[0u] >> (i + 6u)) & 3u) << 4u);
    mn = ((s[2u] >> (i + 4u)) & 0xfu) | (((s[1u] >> (i + 6u)) & 3u) << 4u);
  }
  let d = unpack2x16float(dm);
  return vec2f(d.x * f32(sc), d.y * f32(mn));
}

// a / b rounded to nearest, ties to even, for a >= 0 and b > 0 finite with b normal: WGSL's `/`
// may be 2.5 ulp off, and the quantized activations below must be the CPU's bit for bit. The
// significands are divided in u32 (8 quotient bits per step, then 2 more: 26 bits and a
// remainder for the rounding). A zero or subnormal a, or a quotient below the normal range, gives
// 0.
fn div_rn(a: f32, b: f32) -> f32 {
  let ab = bitcast<u32>(a);
  let bb = bitcast<u32>(b);
  if ((ab >> 23u) == 0u) {
    return 0.0;
  }
  let ma = (ab & 0x7fffffu) | 0x800000u;
  let mb = (bb & 0x7fffffu) | 0x800000u;
  // q = floor(ma · 2^26 / mb), in [2^25, 2^27); r the remainder.
  var q = ma / mb;
  var r = ma % mb;
  for (var i = 0u; i < 3u; i++) {
    r <<= 8u;
    q = (q << 8u) | (r / mb);
    r %= mb;
  }
  r <<= 2u;
  q = (q << 2u) | (r / mb);
  r %= mb;
  // a / b = (ma / mb) · 2^(ea − eb), with ma / mb in [1, 2) when q >= 2^26, else in [1/2, 1).
  let wide = q >= 0x4000000u;
  let shift = select(2u, 3u, wide);
  var e = i32(ab >> 23u) - i32(bb >> 23u) + select(126, 127, wide);
  var m = q >> shift;
  let rest = q & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (r != 0u || (m & 1u) == 1u))) {
    m += 1u;
  }
  if (m == 0x1000000u) {
    m = 0x800000u;
    e += 1;
  }
  if (e <= 0) {
    return 0.0;
  }
  return bitcast<f32>((u32(e) << 23u) | (m & 0x7fffffu));
}

// 32 activations quantized as the CPU backend quantizes them (src/quant/FORMATS.md §5): the
// levels four to a word (value 4i + j in byte j of word i, two's complement, as dot4I8Packed
// reads them), the scale dx and the sum of the levels.
struct QBlock {
  words: array<u32, 8>,
  dx: f32,
  sum: i32,
}

// Quantizes a block of 32 finite activations: dx = max|x| / 127, id = 1 / dx (0 when dx is 0),
// levels round(x · id) (ties to even), every step in f32 and correctly rounded, so that the
// levels and dx equal the CPU's. A block whose dx would be subnormal (max|x| < 127 · 2^-126) is
// all zeros.
fn quantize_block(block: array<vec4f, 8>) -> QBlock {
  var v = block;
  var amax = 0.0;
  for (var i = 0u; i < 8u; i++) {
    let a = abs(v[i]);
    amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
  }
  var out = QBlock();
  out.dx = div_rn(amax, 127.0);
  let id = select(0.0, div_rn(1.0, out.dx), out.dx > 0.0);
  for (var i = 0u; i < 8u; i++) {
    let q = vec4i(round(v[i] * id));
    let bytes = bitcast<vec4u>(q) & vec4u(0xffu);
    out.words[i] = bytes.x | (bytes.y << 8u) | (bytes.z << 16u) | (bytes.w << 24u);
    out.sum += q.x + q.y + q.z + q.w;
  }
  return out;
}
