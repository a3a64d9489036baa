// Linear layers over quantized weights, CPU twins of shaders/gemv_q8_0.wgsl, gemm_q8_0.wgsl,
// gemv_q4_k.wgsl and gemm_q4_k.wgsl (same bindings and parameters as linear.c; one kernel here
// serves the GEMV and the GEMM of a type): y[m, n] = Σ_k x[m, k] · w[n, k] (+ b[n]) (+ y[m, n]),
// with the bias f16 or f32 (the `.f16`/`.f32` variants) and w in a layout of FORMATS.md §3.
//
// Threads split the weight rows n. Each thread quantizes the activation rows into its scratch
// memory (quant.h; at most 64 rows at a time, every thread all of them: the rows are tiny next to
// the weights), then takes each of its weight rows against four activation rows at a time, so a
// weight block is loaded and widened once per four rows. Every block is an exact integer dot
// product scaled by the block's scales; four blocks' sums are gathered into one vector, so their
// float terms are formed one per lane exactly as the oracle forms them.
//
// Written to be read and then made faster (relaxed-dot variants per ISA, a probed choice of the
// i16 dot, register tiles over several weight rows): the block math is in the two row dots below.

#include "quant.h"

typedef struct {
  uint32_t m, n, k, x_off, y_off, w_off, b_off, has_bias, accumulate;
} Params;

// Activation rows quantized at once.
#define ROW_BLOCK 64

// Four 16-byte words of int8 weights widened to i16: w[0..3] cover the 32 weights at `b`.
static inline void widen32(const uint32_t *b, v128_t *w) {
  const v128_t v0 = wasm_v128_load(b), v1 = wasm_v128_load(b + 4);
  w[0] = wasm_i16x8_extend_low_i8x16(v0);
  w[1] = wasm_i16x8_extend_high_i8x16(v0);
  w[2] = wasm_i16x8_extend_low_i8x16(v1);
  w[3] = wasm_i16x8_extend_high_i8x16(v1);
}

// out[r] = Σ over the 32-blocks of a q8_0 row of (float)(Σ q·xq) · (dw · dx), rows r < R of q
// from row r0 (R a constant ≤ 4 after inlining). Two pairs (four blocks) per step, then a last
// pair with empty lanes.
static inline __attribute__((always_inline)) void dot_q8_0(const uint32_t *w, const QRows *q, uint32_t r0,
                                                           const uint32_t R, float *out) {
  const uint32_t k = q->k, pairs = k / 64, nb = k / QBLOCK;
  v128_t acc[4];
  for (uint32_t r = 0; r < R; r++) acc[r] = wasm_f32x4_splat(0);
  for (uint32_t p = 0; p < pairs; p += 2) {
    const int two = p + 1 < pairs;
    const uint32_t *w0 = w + (size_t)p * Q8_0_PAIR_WORDS, *w1 = w0 + Q8_0_PAIR_WORDS;
    v128_t wv[4][4];
    widen32(w0 + 1, wv[0]);
    widen32(w0 + 9, wv[1]);
    if (two) {
      widen32(w1 + 1, wv[2]);
      widen32(w1 + 9, wv[3]);
    }
    v128_t dw, unused;
    halves_to_floats(wasm_i32x4_make((int32_t)w0[0], two ? (int32_t)w1[0] : 0, 0, 0), &dw, &unused);
    for (uint32_t r = 0; r < R; r++) {
      const int8_t *xr = q->xq + (size_t)(r0 + r) * k + (size_t)p * 64;
      const float *dxr = q->dx + (size_t)(r0 + r) * nb + 2 * p;
      const v128_t zero = wasm_i32x4_splat(0);
      const v128_t isum = hadd4_i32(dot32_i16(xr, wv[0]), dot32_i16(xr + 32, wv[1]),
                                    two ? dot32_i16(xr + 64, wv[2]) : zero,
                                    two ? dot32_i16(xr + 96, wv[3]) : zero);
      const v128_t dx = two ? wasm_v128_load(dxr) : wasm_f32x4_make(dxr[0], dxr[1], 0, 0);
      acc[r] = wasm_f32x4_add(acc[r], wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_mul(dw, dx)));
    }
  }
  for (uint32_t r = 0; r < R; r++) out[r] = hsum(acc[r]);
}

// Sub-block j's 6-bit scale and min from a Q4_K super-block's 12 scale bytes (get_scale_min_k4).
static inline void scale_min_k4(const uint8_t *s, int j, float *sc, float *m) {
  if (j < 4) {
    *sc = (float)(s[j] & 63);
    *m = (float)(s[j + 4] & 63);
  } else {
    *sc = (float)((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4));
    *m = (float)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// out[r] = Σ over the sub-blocks of a q4_k row of dx · ((d·sc)·Σ q·xq − (dmin·m)·Σ xq), rows r < R
// of q from row r0.
static inline __attribute__((always_inline)) void dot_q4_k(const uint32_t *w, const QRows *q, uint32_t r0,
                                                           const uint32_t R, float *out) {
  const uint32_t k = q->k, supers = k / 256, nb = k / QBLOCK;
  v128_t acc[4];
  for (uint32_t r = 0; r < R; r++) acc[r] = wasm_f32x4_splat(0);
  const v128_t low4 = wasm_i8x16_splat(0x0f);
  for (uint32_t s = 0; s < supers; s++) {
    const uint32_t *sb = w + (size_t)s * Q4_K_WORDS;
    const uint8_t *bytes = (const uint8_t *)sb;
    const float d = half_to_float((uint16_t)(sb[0] & 0xffff)), dmin = half_to_float((uint16_t)(sb[0] >> 16));
    float dsc[8], dmm[8];
    for (int j = 0; j < 8; j++) {
      float sc, m;
      scale_min_k4(bytes + 4, j, &sc, &m);
      dsc[j] = d * sc;
      dmm[j] = dmin * m;
    }
    v128_t levels[8][2];
    for (int c = 0; c < 4; c++) {
      const v128_t v0 = wasm_v128_load(bytes + 16 + 32 * c), v1 = wasm_v128_load(bytes + 32 + 32 * c);
      levels[2 * c][0] = wasm_v128_and(v0, low4);
      levels[2 * c][1] = wasm_v128_and(v1, low4);
      levels[2 * c + 1][0] = wasm_u8x16_shr(v0, 4);
      levels[2 * c + 1][1] = wasm_u8x16_shr(v1, 4);
    }
    const v128_t dsc_lo = wasm_v128_load(dsc), dsc_hi = wasm_v128_load(dsc + 4);
    const v128_t dmm_lo = wasm_v128_load(dmm), dmm_hi = wasm_v128_load(dmm + 4);
    for (uint32_t r = 0; r < R; r++) {
      const int8_t *xr = q->xq + (size_t)(r0 + r) * k + (size_t)s * 256;
      const size_t at = (size_t)(r0 + r) * nb + (size_t)s * 8;
      const v128_t is_lo = hadd4_i32(dot32_u4(xr, levels[0][0], levels[0][1]),
                                     dot32_u4(xr + 32, levels[1][0], levels[1][1]),
                                     dot32_u4(xr + 64, levels[2][0], levels[2][1]),
                                     dot32_u4(xr + 96, levels[3][0], levels[3][1]));
      const v128_t is_hi = hadd4_i32(dot32_u4(xr + 128, levels[4][0], levels[4][1]),
                                     dot32_u4(xr + 160, levels[5][0], levels[5][1]),
                                     dot32_u4(xr + 192, levels[6][0], levels[6][1]),
                                     dot32_u4(xr + 224, levels[7][0], levels[7][1]));
      const v128_t bs_lo = wasm_f32x4_convert_i32x4(wasm_v128_load(q->sums + at));
      const v128_t bs_hi = wasm_f32x4_convert_i32x4(wasm_v128_load(q->sums + at + 4));
      const v128_t t_lo = wasm_f32x4_mul(wasm_v128_load(q->dx + at),
                                         wasm_f32x4_sub(wasm_f32x4_mul(dsc_lo, wasm_f32x4_convert_i32x4(is_lo)),
                                                        wasm_f32x4_mul(dmm_lo, bs_lo)));
      const v128_t t_hi = wasm_f32x4_mul(wasm_v128_load(q->dx + at + 4),
                                         wasm_f32x4_sub(wasm_f32x4_mul(dsc_hi, wasm_f32x4_convert_i32x4(is_hi)),
                                                        wasm_f32x4_mul(dmm_hi, bs_hi)));
      acc[r] = wasm_f32x4_add(wasm_f32x4_add(acc[r], t_lo), t_hi);
    }
  }
  for (uint32_t r = 0; r < R; r++) out[r] = hsum(acc[r]);
}

// The row dots of a weight row against rows [r0, r0 + count) of q, count in 1..4.
static inline __attribute__((always_inline)) void row_dots(const uint32_t *w, const QRows *q, uint32_t r0,
                                                           uint32_t count, int q4, float *out) {
#define ROWS(R) (q4 ? dot_q4_k(w, q, r0, R, out) : dot_q8_0(w, q, r0, R, out))
  switch (count) {
    case 1: ROWS(1); break;
    case 2: ROWS(2); break;
    case 3: ROWS(3); break;
    default: ROWS(4); break;
  }
#undef ROWS
}

static inline __attribute__((always_inline)) void linear_quant(const Cmd *c, const Thread *t, int half, int q4) {
  const Params *p = (const Params *)c->p;
  uint32_t lo, hi;
  share(p->n, 16, t, &lo, &hi);
  if (lo >= hi || p->m == 0) return;
  const uint32_t k = p->k, row_words = q4 ? k / 256 * Q4_K_WORDS : k / 64 * Q8_0_PAIR_WORDS;
  const uint32_t *w = U32(c, 2, p->w_off);
  const float *x = F32(c, 1, p->x_off);
  float *y = F32(c, 0, p->y_off);
  const void *b = (const void *)(uintptr_t)c->b[3];
  uint32_t block = t->scratch_bytes / qrow_bytes(k);
  if (block > ROW_BLOCK) block = ROW_BLOCK;
  for (uint32_t r0 = 0; r0 < p->m; r0 += block) {
    const uint32_t rows = p->m - r0 < block ? p->m - r0 : block;
    const QRows q = qrows_at(t->scratch, rows, k);
    quantize_rows(x + (size_t)r0 * k, rows, q);
    for (uint32_t n = lo; n < hi; n++) {
      const uint32_t *wr = w + (size_t)n * row_words;
      for (uint32_t r = 0; r < rows; r += 4) {
        const uint32_t count = rows - r < 4 ? rows - r : 4;
        float out[4];
        row_dots(wr, &q, r, count, q4, out);
        for (uint32_t i = 0; i < count; i++) {
          linear_store(y, p->n, r0 + r + i, n, out[i], b, p->b_off, p->has_bias, p->accumulate, half);
        }
      }
    }
  }
}

void linear_q8_0_f16(const Cmd *c, const Thread *t) { linear_quant(c, t, 1, 0); }
void linear_q8_0_f32(const Cmd *c, const Thread *t) { linear_quant(c, t, 0, 0); }
void linear_q4_k_f16(const Cmd *c, const Thread *t) { linear_quant(c, t, 1, 1); }
void linear_q4_k_f32(const Cmd *c, const Thread *t) { linear_quant(c, t, 0, 1); }
