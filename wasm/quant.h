// Quantized weights on the CPU: the block layouts of src/quant/FORMATS.md §3 and the run-time
// quantization of activations (§5) that lets every block be an exact integer dot product.
//
// Activations are quantized per 32-block: dx = max|x| / 127, xq = nearest(x · (1 / dx)) (ties to
// even), with the block sum Σ xq for Q4_K's min term. Integer block sums are exact; each block's
// float term is formed exactly as the oracle (tests/reference/quant.ts) forms it, and only the
// order in which the terms are added differs (four lanes, then across lanes).

#ifndef VALLE_QUANT_H
#define VALLE_QUANT_H

#include "dot.h"

#define QBLOCK 32

// Words per 64 weights of a q8_0 row (two f16 scales, 2 × 32 int8) and per 256 of a q4_k row.
#define Q8_0_PAIR_WORDS 17
#define Q4_K_WORDS 36

// Quantized activation rows: xq int8 [rows][k], dx f32 [rows][k/32], sums i32 [rows][k/32].
typedef struct {
  int8_t *xq;
  float *dx;
  int32_t *sums;
  uint32_t k;
} QRows;

// Bytes of scratch one quantized row of length k needs.
static inline uint32_t qrow_bytes(uint32_t k) { return k + (k / QBLOCK) * 8; }

// Lays out `rows` quantized rows of length k in `scratch`.
static inline QRows qrows_at(uint8_t *scratch, uint32_t rows, uint32_t k) {
  QRows q;
  q.k = k;
  q.dx = (float *)scratch;
  q.sums = (int32_t *)(scratch + (size_t)rows * (k / QBLOCK) * 4);
  q.xq = (int8_t *)(scratch + (size_t)rows * (k / QBLOCK) * 8);
  return q;
}

// Quantizes rows [0, rows) of x (row stride k) into q.
static inline void quantize_rows(const float *x, uint32_t rows, QRows q) {
  const uint32_t k = q.k, nb = k / QBLOCK;
  for (uint32_t r = 0; r < rows; r++) {
    for (uint32_t b = 0; b < nb; b++) {
      const float *xb = x + (size_t)r * k + b * QBLOCK;
      v128_t amax = wasm_f32x4_splat(0);
      for (uint32_t i = 0; i < QBLOCK; i += 4) amax = wasm_f32x4_max(amax, wasm_f32x4_abs(wasm_v128_load(xb + i)));
      amax = wasm_f32x4_max(amax, wasm_i32x4_shuffle(amax, amax, 2, 3, 0, 1));
      amax = wasm_f32x4_max(amax, wasm_i32x4_shuffle(amax, amax, 1, 0, 3, 2));
      const float m = wasm_f32x4_extract_lane(amax, 0);
      const float d = m / 127.0f;
      const v128_t id = wasm_f32x4_splat(d != 0.0f ? 1.0f / d : 0.0f);
      int8_t *out = q.xq + (size_t)r * k + b * QBLOCK;
      v128_t sum = wasm_i32x4_splat(0);
      for (uint32_t i = 0; i < QBLOCK; i += 16) {
        v128_t w[4];
        for (int j = 0; j < 4; j++) {
          w[j] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(xb + i + 4 * j), id)));
          sum = wasm_i32x4_add(sum, w[j]);
        }
        const v128_t lo = wasm_i16x8_narrow_i32x4(w[0], w[1]), hi = wasm_i16x8_narrow_i32x4(w[2], w[3]);
        wasm_v128_store(out + i, wasm_i8x16_narrow_i16x8(lo, hi));
      }
      q.dx[(size_t)r * nb + b] = d;
      q.sums[(size_t)r * nb + b] = wasm_i32x4_extract_lane(sum, 0) + wasm_i32x4_extract_lane(sum, 1) +
                                   wasm_i32x4_extract_lane(sum, 2) + wasm_i32x4_extract_lane(sum, 3);
    }
  }
}

// The four lane sums of a, b, c, d as one vector [Σa, Σb, Σc, Σd].
static inline v128_t hadd4_i32(v128_t a, v128_t b, v128_t c, v128_t d) {
  const v128_t ab = wasm_i32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), wasm_i32x4_shuffle(a, b, 2, 6, 3, 7));
  const v128_t cd = wasm_i32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), wasm_i32x4_shuffle(c, d, 2, 6, 3, 7));
  return wasm_i32x4_add(wasm_i32x4_shuffle(ab, cd, 0, 1, 4, 5), wasm_i32x4_shuffle(ab, cd, 2, 3, 6, 7));
}

// Σ over 32 int8 activations × 32 weights given widened to i16 (w[0..3], 8 each), as 4 lanes.
static inline v128_t dot32_i16(const int8_t *xq, const v128_t *w) {
  const v128_t x0 = wasm_v128_load(xq), x1 = wasm_v128_load(xq + 16);
  v128_t s = wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(x0), w[0]);
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(x0), w[1]));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(x1), w[2]));
  return wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(x1), w[3]));
}

// Σ over 32 int8 activations × 32 levels 0..15 (two vectors of 16 bytes), as 4 lanes. The relaxed
// build's int8 dot takes the levels as its 7-bit operand, where it is exact on every engine.
static inline v128_t dot32_u4(const int8_t *xq, v128_t q0, v128_t q1) {
  const v128_t x0 = wasm_v128_load(xq), x1 = wasm_v128_load(xq + 16);
#if VALLE_RELAXED
  const v128_t s = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((__i8x16)x0, (__i8x16)q0,
                                                                                (__i32x4)wasm_i32x4_splat(0));
  return (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((__i8x16)x1, (__i8x16)q1, (__i32x4)s);
#else
  v128_t s = wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(x0), wasm_u16x8_extend_low_u8x16(q0));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(x0), wasm_u16x8_extend_high_u8x16(q0)));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_low_i8x16(x1), wasm_u16x8_extend_low_u8x16(q1)));
  return wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_i16x8_extend_high_i8x16(x1), wasm_u16x8_extend_high_u8x16(q1)));
#endif
}

#endif
