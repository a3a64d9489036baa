// Quantized weights on the CPU: the block layouts of src/quant/FORMATS.md §3 and the run-time
// quantization of activations (§5) that lets every block be an exact integer dot product.
//
// Activations are quantized per 32-block: dx = max|x| / 127, xq = nearest(x · (1 / dx)) (ties to
// even), with the block sum Σ xq for Q4_K's min term. Integer block sums are exact; each block's
// float term is formed exactly as the oracle (tests/reference/quant.ts) forms it, and only the
// order in which the terms are added differs (four lanes, then across lanes).
//
// Integer dot products. A Q8_0 weight is a full-range int8, so a Q8_0 block is widened to i16 as
// it is loaded (`i16x8.load8x8_s`) and multiplied with `i32x4.dot_i16x8_s`: exact in SIMD128 on
// every engine. A Q4_K level is a nibble, 0..15, which is a valid 7-bit operand of relaxed SIMD's
// `i16x8.relaxed_dot_i8x16_i7x16_s`: with the activation (−127..127) as the signed operand, each
// i16 lane is a sum of two products of at most 15 · 127, so the instruction is exact on every
// engine whichever of its implementation-defined behaviours it has (signed or unsigned second
// operand, wrapping or saturating sums), and the lanes of 32 weights (≤ 4 · 15 · 127 = 7620) can
// be added in i16 before they are widened. On x86 without AVX-VNNI V8 lowers it to one
// `pmaddubsw` (16 multiply-adds), twice what `dot_i16x8_s` does per instruction
// (shared/docs/quantization.md §1). The plain SIMD128 build widens the nibbles instead.

#ifndef VALLE_QUANT_H
#define VALLE_QUANT_H

#include "runtime.h"

#define QBLOCK 32

// Words per 64 weights of a q8_0 row (two f16 scales, 2 × 32 int8) and per 256 of a q4_k row.
#define Q8_0_PAIR_WORDS 17
#define Q4_K_WORDS 36

// Quantized activation rows: xq [rows][k] as int8, or as int16 where they are multiplied with
// `dot_i16x8_s` (`wide`: Q8_0, and Q4_K in the SIMD128 build), so that each is widened once per
// call rather than once per weight row; dx f32 [rows][k/32]; sums f32 [rows][k/32] (the integer
// Σ xq of each block, exact as a float).
typedef struct {
  void *xq;
  float *dx;
  float *sums;
  uint32_t k;
  int wide;
} QRows;

// Whether a layout's activations are stored widened.
#define Q8_0_WIDE 1
#define Q4_K_WIDE (!VALLE_RELAXED)

// Bytes of scratch one quantized row of length k needs.
static inline uint32_t qrow_bytes(uint32_t k, int wide) { return k * (wide ? 2 : 1) + (k / QBLOCK) * 8; }

// Lays out `rows` quantized rows of length k in `scratch`.
static inline QRows qrows_at(uint8_t *scratch, uint32_t rows, uint32_t k, int wide) {
  QRows q;
  q.k = k;
  q.wide = wide;
  q.dx = (float *)scratch;
  q.sums = (float *)(scratch + (size_t)rows * (k / QBLOCK) * 4);
  q.xq = scratch + (size_t)rows * (k / QBLOCK) * 8;
  return q;
}

// Activation i of row r: its address.
static inline const void *act_at(const QRows *q, uint32_t r, size_t i) {
  return (const uint8_t *)q->xq + ((size_t)r * q->k + i) * (q->wide ? 2 : 1);
}

// Eight activations from i of a row at x as i16.
static inline v128_t act8(const void *x, size_t i, int wide) {
  return wide ? wasm_v128_load((const int16_t *)x + i) : wasm_i16x8_load8x8((const int8_t *)x + i);
}

// Quantizes rows [0, rows) of x (row stride k) into q.
static inline void quantize_rows(const float *x, uint32_t rows, QRows q) {
  const uint32_t k = q.k, nb = k / QBLOCK;
  for (uint32_t r = 0; r < rows; r++) {
    for (uint32_t b = 0; b < nb; b++) {
      const float *xb = x + (size_t)r * k + b * QBLOCK;
      v128_t amax = wasm_f32x4_splat(0);
      // pmax (one instruction; f32x4.max is a long sequence in V8): a NaN is not propagated.
      for (uint32_t i = 0; i < QBLOCK; i += 4) amax = wasm_f32x4_pmax(amax, wasm_f32x4_abs(wasm_v128_load(xb + i)));
      amax = wasm_f32x4_pmax(amax, wasm_i32x4_shuffle(amax, amax, 2, 3, 0, 1));
      amax = wasm_f32x4_pmax(amax, wasm_i32x4_shuffle(amax, amax, 1, 0, 3, 2));
      const float m = wasm_f32x4_extract_lane(amax, 0);
      const float d = m / 127.0f;
      const v128_t id = wasm_f32x4_splat(d != 0.0f ? 1.0f / d : 0.0f);
      uint8_t *out = (uint8_t *)act_at(&q, r, (size_t)b * QBLOCK);
      v128_t sum = wasm_i32x4_splat(0);
      for (uint32_t i = 0; i < QBLOCK; i += 16) {
        v128_t w[4];
        for (int j = 0; j < 4; j++) {
          w[j] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(xb + i + 4 * j), id)));
          sum = wasm_i32x4_add(sum, w[j]);
        }
        const v128_t lo = wasm_i16x8_narrow_i32x4(w[0], w[1]), hi = wasm_i16x8_narrow_i32x4(w[2], w[3]);
        if (q.wide) {
          wasm_v128_store(out + 2 * i, lo);
          wasm_v128_store(out + 2 * i + 16, hi);
        } else {
          wasm_v128_store(out + i, wasm_i8x16_narrow_i16x8(lo, hi));
        }
      }
      q.dx[(size_t)r * nb + b] = d;
      q.sums[(size_t)r * nb + b] = (float)(wasm_i32x4_extract_lane(sum, 0) + wasm_i32x4_extract_lane(sum, 1) +
                                           wasm_i32x4_extract_lane(sum, 2) + wasm_i32x4_extract_lane(sum, 3));
    }
  }
}

// The four lane sums of a, b, c, d as one vector [Σa, Σb, Σc, Σd].
static inline v128_t hadd4_i32(v128_t a, v128_t b, v128_t c, v128_t d) {
  const v128_t ab = wasm_i32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), wasm_i32x4_shuffle(a, b, 2, 6, 3, 7));
  const v128_t cd = wasm_i32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), wasm_i32x4_shuffle(c, d, 2, 6, 3, 7));
  return wasm_i32x4_add(wasm_i32x4_shuffle(ab, cd, 0, 1, 4, 5), wasm_i32x4_shuffle(ab, cd, 2, 3, 6, 7));
}

// --- Q8_0 ------------------------------------------------------------------------------------

// Σ over one 32-block of int8 weights w and widened activations x, as 4 lanes (each ≤ 8 · 127²).
static inline v128_t dot_q8_block(const int8_t *w, const int16_t *x) {
  v128_t s = wasm_i32x4_dot_i16x8(wasm_i16x8_load8x8(w), wasm_v128_load(x));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_load8x8(w + 8), wasm_v128_load(x + 8)));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_load8x8(w + 16), wasm_v128_load(x + 16)));
  return wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_load8x8(w + 24), wasm_v128_load(x + 24)));
}

// The f16 scales of two q8_0 pairs (words w0 and w1, each two halves) as [d0, d1, d2, d3].
static inline v128_t q8_pair_scales(uint32_t w0, uint32_t w1) {
  v128_t lo, hi;
  halves_to_floats(wasm_i32x4_make((int32_t)w0, (int32_t)w1, 0, 0), &lo, &hi);
  return lo;
}

// --- Q4_K ------------------------------------------------------------------------------------

// The scales of a Q4_K super-block (at `sb`): d·sc_j and dmin·m_j for sub-blocks j 0..3 (lo) and
// 4..7 (hi). The 6-bit codes (get_scale_min_k4, FORMATS.md §1) are unpacked four at a time from
// the 32-bit words a, b, c of bytes 4..15: sc 0..3 = a & 63, m 0..3 = b & 63,
// sc 4..7 = (c & 15) | (a >> 6) << 4, m 4..7 = (c >> 4) | (b >> 6) << 4, byte by byte.
typedef struct {
  v128_t dsc_lo, dsc_hi, dmm_lo, dmm_hi;
} Q4kScales;

static inline Q4kScales q4k_scales(const uint32_t *sb) {
  const uint32_t a = sb[1], b = sb[2], c = sb[3];
  const uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = b & 0x3f3f3f3fu;
  const uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 6) & 0x03030303u) << 4;
  const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 6) & 0x03030303u) << 4;
  const v128_t codes = wasm_i32x4_make((int32_t)sc_lo, (int32_t)sc_hi, (int32_t)m_lo, (int32_t)m_hi);
  const v128_t sc16 = wasm_u16x8_extend_low_u8x16(codes), m16 = wasm_u16x8_extend_high_u8x16(codes);
  v128_t dd, unused;
  halves_to_floats(wasm_i32x4_splat((int32_t)sb[0]), &dd, &unused);
  const v128_t d = wasm_i32x4_shuffle(dd, dd, 0, 0, 0, 0), dmin = wasm_i32x4_shuffle(dd, dd, 1, 1, 1, 1);
  Q4kScales s;
  s.dsc_lo = wasm_f32x4_mul(d, wasm_f32x4_convert_u32x4(wasm_u32x4_extend_low_u16x8(sc16)));
  s.dsc_hi = wasm_f32x4_mul(d, wasm_f32x4_convert_u32x4(wasm_u32x4_extend_high_u16x8(sc16)));
  s.dmm_lo = wasm_f32x4_mul(dmin, wasm_f32x4_convert_u32x4(wasm_u32x4_extend_low_u16x8(m16)));
  s.dmm_hi = wasm_f32x4_mul(dmin, wasm_f32x4_convert_u32x4(wasm_u32x4_extend_high_u16x8(m16)));
  return s;
}

// The levels of one 64-weight chunk of a Q4_K super-block (32 bytes at `qs`): for the relaxed
// build as bytes, l[0], l[1] the 32 low nibbles (the chunk's first sub-block), l[2], l[3] the high
// ones (its second); for SIMD128 as i16, l[0..3] the first sub-block, l[4..7] the second.
#if VALLE_RELAXED
#define Q4K_CHUNK_VECTORS 4
typedef int8_t q4k_act;
static inline void q4k_chunk(const uint8_t *qs, v128_t *l) {
  const v128_t low4 = wasm_i8x16_splat(0x0f);
  const v128_t v0 = wasm_v128_load(qs), v1 = wasm_v128_load(qs + 16);
  l[0] = wasm_v128_and(v0, low4);
  l[1] = wasm_v128_and(v1, low4);
  l[2] = wasm_v128_and(wasm_u16x8_shr(v0, 4), low4);
  l[3] = wasm_v128_and(wasm_u16x8_shr(v1, 4), low4);
}

// Σ q·xq over the sub-block of levels l[0], l[1] (bytes) as 8 i16 lanes (each ≤ 4 · 15 · 127).
static inline v128_t q4k_sub_dot(const int8_t *xq, const v128_t *l) {
  const v128_t a = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)wasm_v128_load(xq), (__i8x16)l[0]);
  const v128_t b = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)wasm_v128_load(xq + 16), (__i8x16)l[1]);
  return wasm_i16x8_add(a, b);
}

// q4k_sub_dot with the 32 levels stored as bytes at l.
static inline v128_t q4k_bytes_dot(const int8_t *xq, const int8_t *l) {
  const v128_t v[2] = {wasm_v128_load(l), wasm_v128_load(l + 16)};
  return q4k_sub_dot(xq, v);
}

// The sums of four sub-blocks' i16 lanes (each ≤ 7620) as [Σa, Σb, Σc, Σd]: pairs of lanes added
// in i16 (≤ 15240), then widened by dot_i16x8 with ones, then the pairs of the i32 results.
static inline v128_t q4k_reduce4(v128_t a, v128_t b, v128_t c, v128_t d) {
  const v128_t ones = wasm_i16x8_splat(1);
  const v128_t ab = wasm_i16x8_add(wasm_i64x2_shuffle(a, b, 0, 2), wasm_i64x2_shuffle(a, b, 1, 3));
  const v128_t cd = wasm_i16x8_add(wasm_i64x2_shuffle(c, d, 0, 2), wasm_i64x2_shuffle(c, d, 1, 3));
  const v128_t p = wasm_i32x4_dot_i16x8(ab, ones), q = wasm_i32x4_dot_i16x8(cd, ones);
  return wasm_i32x4_add(wasm_i32x4_shuffle(p, q, 0, 2, 4, 6), wasm_i32x4_shuffle(p, q, 1, 3, 5, 7));
}
#else
#define Q4K_CHUNK_VECTORS 8
typedef int16_t q4k_act;
static inline void q4k_chunk(const uint8_t *qs, v128_t *l) {
  const v128_t low4 = wasm_i16x8_splat(0x0f);
  for (int t = 0; t < 4; t++) {
    const v128_t v = wasm_u16x8_load8x8(qs + 8 * t);
    l[t] = wasm_v128_and(v, low4);
    l[4 + t] = wasm_u16x8_shr(v, 4);
  }
}

// Σ q·xq over the sub-block of levels l[0..3] (i16) and widened activations, as 4 i32 lanes.
static inline v128_t q4k_sub_dot(const int16_t *xq, const v128_t *l) {
  v128_t s = wasm_i32x4_dot_i16x8(wasm_v128_load(xq), l[0]);
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_v128_load(xq + 8), l[1]));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_v128_load(xq + 16), l[2]));
  return wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_v128_load(xq + 24), l[3]));
}

static inline v128_t q4k_reduce4(v128_t a, v128_t b, v128_t c, v128_t d) { return hadd4_i32(a, b, c, d); }
#endif

// Σ q·xq of the four sub-blocks of two chunks (levels l0, l1 from q4k_chunk) against 128
// activations at xq, as [s0, s1, s2, s3].
static inline v128_t q4k_dot4(const q4k_act *xq, const v128_t *l0, const v128_t *l1) {
  const int h = Q4K_CHUNK_VECTORS / 2;
  return q4k_reduce4(q4k_sub_dot(xq, l0), q4k_sub_dot(xq + 32, l0 + h), q4k_sub_dot(xq + 64, l1),
                     q4k_sub_dot(xq + 96, l1 + h));
}

// Four sub-blocks' float terms dx · ((d·sc)·Σ q·xq − (dmin·m)·Σ xq), formed as the oracle does.
static inline v128_t q4k_terms(v128_t isum, v128_t dsc, v128_t dmm, v128_t sums, v128_t dx) {
  return wasm_f32x4_mul(dx, wasm_f32x4_sub(wasm_f32x4_mul(dsc, wasm_f32x4_convert_i32x4(isum)),
                                           wasm_f32x4_mul(dmm, sums)));
}

// --- GEMV (decode rows): each weight row read once, straight from its layout ---------------------

// out[r] = Σ over the 32-blocks of q8_0 weight row w of (float)(Σ q·xq) · (dw · dx) against
// activation row r0 + r of q, r < R (a constant after inlining). Four blocks (two pairs) per
// step, then a last pair with empty lanes.
static inline __attribute__((always_inline)) void gemv_q8_0(const uint32_t *w, const QRows *q, uint32_t r0,
                                                            const uint32_t R, float *out) {
  const uint32_t k = q->k, nb = k / QBLOCK, quads = k / 128;
  v128_t acc[4];
  for (uint32_t r = 0; r < R; r++) acc[r] = wasm_f32x4_splat(0);
  for (uint32_t s = 0; s < quads; s++) {
    const uint32_t *p = w + (size_t)s * 2 * Q8_0_PAIR_WORDS;
    const int8_t *b = (const int8_t *)p;
    const v128_t dw = q8_pair_scales(p[0], p[Q8_0_PAIR_WORDS]);
    for (uint32_t r = 0; r < R; r++) {
      const int16_t *x = act_at(q, r0 + r, (size_t)s * 128);
      const v128_t dx = wasm_v128_load(q->dx + (size_t)(r0 + r) * nb + 4 * s);
      const v128_t isum = hadd4_i32(dot_q8_block(b + 4, x), dot_q8_block(b + 36, x + 32),
                                    dot_q8_block(b + 72, x + 64), dot_q8_block(b + 104, x + 96));
      acc[r] = wasm_f32x4_add(acc[r], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_mul(dw, dx)));
    }
  }
  if (k % 128) {
    const uint32_t *p = w + (size_t)quads * 2 * Q8_0_PAIR_WORDS;
    const int8_t *b = (const int8_t *)p;
    const v128_t dw = q8_pair_scales(p[0], 0), zero = wasm_i32x4_splat(0);
    for (uint32_t r = 0; r < R; r++) {
      const int16_t *x = act_at(q, r0 + r, (size_t)quads * 128);
      const float *dxr = q->dx + (size_t)(r0 + r) * nb + 4 * quads;
      const v128_t isum = hadd4_i32(dot_q8_block(b + 4, x), dot_q8_block(b + 36, x + 32), zero, zero);
      const v128_t dx = wasm_f32x4_make(dxr[0], dxr[1], 0, 0);
      acc[r] = wasm_f32x4_add(acc[r], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_mul(dw, dx)));
    }
  }
  for (uint32_t r = 0; r < R; r++) out[r] = hsum(acc[r]);
}

// out[r] = Σ over the sub-blocks of q4_k weight row w of dx · ((d·sc)·Σ q·xq − (dmin·m)·Σ xq)
// against activation row r0 + r, r < R.
static inline __attribute__((always_inline)) void gemv_q4_k(const uint32_t *w, const QRows *q, uint32_t r0,
                                                            const uint32_t R, float *out) {
  const uint32_t k = q->k, supers = k / 256, nb = k / QBLOCK;
  v128_t acc[4];
  for (uint32_t r = 0; r < R; r++) acc[r] = wasm_f32x4_splat(0);
  for (uint32_t s = 0; s < supers; s++) {
    const uint32_t *sb = w + (size_t)s * Q4_K_WORDS;
    const Q4kScales sc = q4k_scales(sb);
    v128_t l[4][Q4K_CHUNK_VECTORS];
    for (int ch = 0; ch < 4; ch++) q4k_chunk((const uint8_t *)(sb + 4) + 32 * ch, l[ch]);
    for (uint32_t r = 0; r < R; r++) {
      const q4k_act *x = act_at(q, r0 + r, (size_t)s * 256);
      const size_t at = (size_t)(r0 + r) * nb + (size_t)s * 8;
      const v128_t lo = q4k_terms(q4k_dot4(x, l[0], l[1]), sc.dsc_lo, sc.dmm_lo, wasm_v128_load(q->sums + at),
                                  wasm_v128_load(q->dx + at));
      const v128_t hi = q4k_terms(q4k_dot4(x + 128, l[2], l[3]), sc.dsc_hi, sc.dmm_hi,
                                  wasm_v128_load(q->sums + at + 4), wasm_v128_load(q->dx + at + 4));
      acc[r] = wasm_f32x4_add(wasm_f32x4_add(acc[r], lo), hi);
    }
  }
  for (uint32_t r = 0; r < R; r++) out[r] = hsum(acc[r]);
}

// The dots of weight row w with activation rows [r0, r0 + count), count in 1..4.
static inline __attribute__((always_inline)) void gemv(const uint32_t *w, const QRows *q, uint32_t r0, uint32_t count,
                                                       int q4, float *out) {
#define ROWS(R) (q4 ? gemv_q4_k(w, q, r0, R, out) : gemv_q8_0(w, q, r0, R, out))
  switch (count) {
    case 1: ROWS(1); break;
    case 2: ROWS(2); break;
    case 3: ROWS(3); break;
    default: ROWS(4); break;
  }
#undef ROWS
}

#endif
