// Linear layers over quantized weights, CPU twins of shaders/gemv_q8_0.wgsl, gemm_q8_0.wgsl,
// gemv_q4_k.wgsl and gemm_q4_k.wgsl (same bindings and parameters as linear.c; one kernel here
// serves the GEMV and the GEMM of a type): y[m, n] = Σ_k x[m, k] · w[n, k] (+ b[n]) (+ y[m, n]),
// with the bias f16 or f32 (the `.f16`/`.f32` variants) and w in a layout of FORMATS.md §3.
//
// Threads split the weight rows n. Each thread quantizes the activation rows into its scratch
// memory once per call (quant.h; up to ROW_BLOCK rows at a time, every thread all of them: the
// rows are small next to the weights, and no thread waits for another).
//
// - GEMV (at most 4 rows, decode steps: bound by reading the weights): each weight row is read
//   once, straight from its layout, and dotted with every activation row.
// - GEMM (more rows: prefill, NAR, NAR-len, compute-bound): PANEL_ROWS weight rows at a time are
//   unpacked into a panel (levels as the activations are stored, scales as floats), once per
//   block of activation rows, then each activation row is taken against the whole panel, so its
//   blocks are loaded once for PANEL_ROWS weight rows.
//
// Every block is an exact integer dot product scaled by the block's scales; four blocks' sums are
// gathered into one vector, so their float terms are formed one per lane exactly as the oracle
// forms them.

#include "dot.h"
#include "quant.h"

typedef struct {
  uint32_t m, n, k, x_off, y_off, w_off, b_off, has_bias, accumulate;
} Params;

// Activation rows quantized at once.
#define ROW_BLOCK 256

// --- GEMM: weight rows unpacked into a panel, register tiles of activation × weight rows ---------

// Weight rows per panel: each activation block is loaded once for all of them.
#define PANEL_ROWS 4

// A panel: PANEL_ROWS weight rows unpacked once per block of activation rows. levels: the
// weights of row c at c·k in their natural order, as the activations are stored (`wide`: i16,
// else bytes; Q8_0 int8, Q4_K levels 0..15); s0, s1 per 32-block of row c at c·(k/32): Q8_0 dw
// (s1 unused), Q4_K d·sc and dmin·m.
typedef struct {
  void *levels;
  float *s0, *s1;
} Panel;

static inline uint32_t panel_bytes(uint32_t k, int wide) { return PANEL_ROWS * qrow_bytes(k, wide); }

// Stores 16 levels (bytes) at element i of a panel row: as they are, or widened.
static inline void put16(void *row, size_t i, v128_t v, int wide) {
  if (!wide) {
    wasm_v128_store((int8_t *)row + i, v);
    return;
  }
  wasm_v128_store((int16_t *)row + i, wasm_i16x8_extend_low_i8x16(v));
  wasm_v128_store((int16_t *)row + i + 8, wasm_i16x8_extend_high_i8x16(v));
}

// Unpacks `rows` (≤ PANEL_ROWS) weight rows at w (row stride row_words words); missing rows are
// zeros.
static inline __attribute__((always_inline)) void unpack_panel(const uint32_t *w, size_t row_words, uint32_t rows,
                                                               uint32_t k, int q4, int wide, Panel pn) {
  const uint32_t nb = k / QBLOCK;
  for (uint32_t c = 0; c < PANEL_ROWS; c++) {
    void *lv = (uint8_t *)pn.levels + (size_t)c * k * (wide ? 2 : 1);
    float *s0 = pn.s0 + (size_t)c * nb, *s1 = pn.s1 + (size_t)c * nb;
    if (c >= rows) {
      __builtin_memset(lv, 0, k * (wide ? 2 : 1));
      __builtin_memset(s0, 0, nb * 4);
      __builtin_memset(s1, 0, nb * 4);
      continue;
    }
    const uint32_t *row = w + (size_t)c * row_words;
    if (!q4) {
      for (uint32_t p = 0; p < k / 64; p++) {
        const uint32_t *pw = row + (size_t)p * Q8_0_PAIR_WORDS;
        s0[2 * p] = half_to_float((uint16_t)(pw[0] & 0xffff));
        s0[2 * p + 1] = half_to_float((uint16_t)(pw[0] >> 16));
        for (int i = 0; i < 64; i += 16) put16(lv, 64 * p + i, wasm_v128_load((const int8_t *)(pw + 1) + i), wide);
      }
      continue;
    }
    const v128_t low4 = wasm_i8x16_splat(0x0f);
    for (uint32_t s = 0; s < k / 256; s++) {
      const uint32_t *sb = row + (size_t)s * Q4_K_WORDS;
      const Q4kScales sc = q4k_scales(sb);
      wasm_v128_store(s0 + 8 * s, sc.dsc_lo);
      wasm_v128_store(s0 + 8 * s + 4, sc.dsc_hi);
      wasm_v128_store(s1 + 8 * s, sc.dmm_lo);
      wasm_v128_store(s1 + 8 * s + 4, sc.dmm_hi);
      for (int ch = 0; ch < 4; ch++) {
        const uint8_t *qs = (const uint8_t *)(sb + 4) + 32 * ch;
        const size_t at = 256 * (size_t)s + 64 * ch;
        for (int h = 0; h < 2; h++) {
          const v128_t v = wasm_v128_load(qs + 16 * h);
          put16(lv, at + 16 * h, wasm_v128_and(v, low4), wide);
          put16(lv, at + 32 + 16 * h, wasm_v128_and(wasm_u16x8_shr(v, 4), low4), wide);
        }
      }
    }
  }
}

// Σ over one 32-block of widened levels l and activations x, as 4 lanes.
static inline v128_t dot_i16_block(const int16_t *l, const int16_t *x) {
  v128_t s = wasm_i32x4_dot_i16x8(wasm_v128_load(l), wasm_v128_load(x));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_v128_load(l + 8), wasm_v128_load(x + 8)));
  s = wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_v128_load(l + 16), wasm_v128_load(x + 16)));
  return wasm_i32x4_add(s, wasm_i32x4_dot_i16x8(wasm_v128_load(l + 24), wasm_v128_load(x + 24)));
}

// Σ over four 32-blocks of panel levels l and activations x, as [s0, s1, s2, s3] (exact): the
// relaxed dot on bytes (Q4_K's levels, relaxed build), else dot_i16x8 on widened values.
static inline __attribute__((always_inline)) v128_t panel_dot4(const void *l, const void *x, int wide) {
#if VALLE_RELAXED
  if (!wide) {
    const int8_t *lb = l, *xb = x;
    v128_t v[4];
    for (int j = 0; j < 4; j++) v[j] = q4k_bytes_dot(xb + 32 * j, lb + 32 * j);
    return q4k_reduce4(v[0], v[1], v[2], v[3]);
  }
#else
  (void)wide;
#endif
  const int16_t *lw = l, *xw = x;
  return hadd4_i32(dot_i16_block(lw, xw), dot_i16_block(lw + 32, xw + 32), dot_i16_block(lw + 64, xw + 64),
                   dot_i16_block(lw + 96, xw + 96));
}

// out[c] for activation row r against the panel's rows c < PANEL_ROWS, the blocks taken four at
// a time (a last pair with empty lanes when k % 128 == 64, Q8_0 only).
static inline __attribute__((always_inline)) void gemm_row(const Panel *pn, const QRows *q, uint32_t r, int q4,
                                                           float out[PANEL_ROWS]) {
  const int wide = q4 ? Q4_K_WIDE : Q8_0_WIDE;
  const uint32_t k = q->k, nb = k / QBLOCK, full = nb & ~3u, size = wide ? 2 : 1;
  v128_t acc[PANEL_ROWS];
  for (uint32_t c = 0; c < PANEL_ROWS; c++) acc[c] = wasm_f32x4_splat(0);
  for (uint32_t g = 0; g < full; g += 4) {
    const void *x = act_at(q, r, (size_t)g * QBLOCK);
    const v128_t dx = wasm_v128_load(q->dx + (size_t)r * nb + g);
    const v128_t sums = wasm_v128_load(q->sums + (size_t)r * nb + g);
    for (uint32_t c = 0; c < PANEL_ROWS; c++) {
      const void *l = (const uint8_t *)pn->levels + ((size_t)c * k + (size_t)g * QBLOCK) * size;
      const v128_t isum = panel_dot4(l, x, wide);
      const v128_t s0 = wasm_v128_load(pn->s0 + (size_t)c * nb + g);
      const v128_t t = q4 ? q4k_terms(isum, s0, wasm_v128_load(pn->s1 + (size_t)c * nb + g), sums, dx)
                          : wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_mul(s0, dx));
      acc[c] = wasm_f32x4_add(acc[c], t);
    }
  }
  if (full < nb) {
    const v128_t zero = wasm_i32x4_splat(0);
    const int16_t *x = act_at(q, r, (size_t)full * QBLOCK);
    const float *dxr = q->dx + (size_t)r * nb + full;
    const v128_t dx = wasm_f32x4_make(dxr[0], dxr[1], 0, 0);
    for (uint32_t c = 0; c < PANEL_ROWS; c++) {
      const int16_t *l = (const int16_t *)pn->levels + (size_t)c * k + (size_t)full * QBLOCK;
      const float *s0 = pn->s0 + (size_t)c * nb + full;
      const v128_t isum = hadd4_i32(dot_i16_block(l, x), dot_i16_block(l + 32, x + 32), zero, zero);
      const v128_t t = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(isum), wasm_f32x4_mul(wasm_f32x4_make(s0[0], s0[1], 0, 0), dx));
      acc[c] = wasm_f32x4_add(acc[c], t);
    }
  }
  for (uint32_t c = 0; c < PANEL_ROWS; c++) out[c] = hsum(acc[c]);
}

static inline __attribute__((always_inline)) void linear_quant(const Cmd *c, const Thread *t, int half, int q4) {
  const Params *p = (const Params *)c->p;
  uint32_t lo, hi;
  share(p->n, 16, t, &lo, &hi);
  if (lo >= hi || p->m == 0) return;
  const uint32_t k = p->k, nb = k / QBLOCK, row_words = q4 ? k / 256 * Q4_K_WORDS : k / 64 * Q8_0_PAIR_WORDS;
  const uint32_t *w = U32(c, 2, p->w_off);
  const float *x = F32(c, 1, p->x_off);
  float *y = F32(c, 0, p->y_off);
  const void *b = (const void *)(uintptr_t)c->b[3];
  const int gemm = p->m > 4;
  // Scratch: the panel (GEMM), then the quantized activation rows.
  const int wide = q4 ? Q4_K_WIDE : Q8_0_WIDE;
  Panel pn = {0, 0, 0};
  uint8_t *rows_at = t->scratch;
  if (gemm) {
    pn.s0 = (float *)t->scratch;
    pn.s1 = pn.s0 + PANEL_ROWS * nb;
    pn.levels = pn.s1 + PANEL_ROWS * nb;
    rows_at += panel_bytes(k, wide);
  }
  uint32_t block = (t->scratch_bytes - (uint32_t)(rows_at - t->scratch)) / qrow_bytes(k, wide);
  if (block > ROW_BLOCK) block = ROW_BLOCK;
  for (uint32_t r0 = 0; r0 < p->m; r0 += block) {
    const uint32_t rows = p->m - r0 < block ? p->m - r0 : block;
    const QRows q = qrows_at(rows_at, rows, k, wide);
    quantize_rows(x + (size_t)r0 * k, rows, q);
    if (!gemm) {
      for (uint32_t n = lo; n < hi; n++) {
        float out[4];
        gemv(w + (size_t)n * row_words, &q, 0, rows, q4, out);
        for (uint32_t i = 0; i < rows; i++) linear_store(y, p->n, r0 + i, n, out[i], b, p->b_off, p->has_bias, p->accumulate, half);
      }
      continue;
    }
    for (uint32_t n = lo; n < hi; n += PANEL_ROWS) {
      const uint32_t cols = hi - n < PANEL_ROWS ? hi - n : PANEL_ROWS;
      unpack_panel(w + (size_t)n * row_words, row_words, cols, k, q4, wide, pn);
      for (uint32_t r = 0; r < rows; r++) {
        float out[PANEL_ROWS];
        gemm_row(&pn, &q, r, q4, out);
        for (uint32_t j = 0; j < cols; j++) linear_store(y, p->n, r0 + r, n + j, out[j], b, p->b_off, p->has_bias, p->accumulate, half);
      }
    }
  }
}

void linear_q8_0_f16(const Cmd *c, const Thread *t) { linear_quant(c, t, 1, 0); }
void linear_q8_0_f32(const Cmd *c, const Thread *t) { linear_quant(c, t, 0, 0); }
void linear_q4_k_f16(const Cmd *c, const Thread *t) { linear_quant(c, t, 1, 1); }
void linear_q4_k_f32(const Cmd *c, const Thread *t) { linear_quant(c, t, 0, 1); }
