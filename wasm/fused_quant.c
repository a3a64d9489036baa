// The fused decode-step kernels over quantized weights, CPU twins of shaders/norm_linear_q.wgsl,
// qk_rope_q.wgsl and gate_up_gelu_q.wgsl: what fused.c does for float weights, for at most four
// rows, with each projection in a layout of FORMATS.md §3 named by a parameter (0 q8_0, 1 q4_k;
// the `.f16`/`.f32` variants are the type of the norm weight and bias).
//
// Each kernel computes exactly what the op chain it replaces computes on this backend (rms_norm,
// then quant.c's GEMV on the normed rows quantized per 32-block, then rope or the GELU gate), with
// the same functions in the same order, so a decode step gives the same bits either way: every
// thread normalizes and quantizes the rows itself (d floats per row, cheap next to its weight
// rows), then takes its share of the outputs.

#include "quant.h"
#include "dot.h"

#define LAYOUT_Q4_K 1u

// Scratch of the rows: the normed rows h [m][d], then the rows quantized for each activation
// storage (the layouts may differ between the projections of one kernel).
typedef struct {
  float *h;
  QRows narrow, wide;
  uint8_t *end; // the first free byte of scratch after them
} NormedRows;

static NormedRows norm_rows(const Thread *t, const float *x, uint32_t m, uint32_t d, const void *nw, int half,
                            float eps) {
  NormedRows n;
  n.h = (float *)t->scratch;
  uint8_t *at = t->scratch + (size_t)m * d * 4;
  for (uint32_t r = 0; r < m; r++) rms_norm_row(x + (size_t)r * d, d, nw, half, eps, n.h + (size_t)r * d);
  n.narrow = qrows_at(at, m, d, 0);
  quantize_rows(n.h, m, n.narrow);
  n.wide = qrows_at(at + (size_t)m * qrow_bytes(d, 0), m, d, 1);
  quantize_rows(n.h, m, n.wide);
  n.end = at + (size_t)m * (qrow_bytes(d, 0) + qrow_bytes(d, 1));
  return n;
}

// The dots of weight row w (layout q4 or q8_0) with the m normed rows.
static inline void dots_q(const uint32_t *w, const NormedRows *n, uint32_t m, int q4, float *out) {
  if (q4) gemv(w, Q4_K_WIDE ? &n->wide : &n->narrow, 0, m, 1, out);
  else gemv(w, Q8_0_WIDE ? &n->wide : &n->narrow, 0, m, 0, out);
}

// Words of one weight row of length k.
static inline uint32_t row_words(uint32_t k, int q4) { return q4 ? k / 256 * Q4_K_WORDS : k / 64 * Q8_0_PAIR_WORDS; }

// --- norm_linear_q: y[m, n] (+)= rms_norm(x[m]) · w[n] (+ b[n]) -----------------------------------

typedef struct {
  uint32_t m, n, k, x_off, y_off, w_off, b_off, has_bias, accumulate;
  float eps;
  uint32_t layout;
} NormLinear;

static inline __attribute__((always_inline)) void norm_linear_q(const Cmd *c, const Thread *t, int half) {
  const NormLinear *p = (const NormLinear *)c->p;
  uint32_t lo, hi;
  share(p->n, 16, t, &lo, &hi);
  if (lo >= hi) return;
  const int q4 = p->layout == LAYOUT_Q4_K;
  const NormedRows n = norm_rows(t, F32(c, 1, p->x_off), p->m, p->k, (const void *)(uintptr_t)c->b[2], half, p->eps);
  const uint32_t *w = U32(c, 3, p->w_off);
  const void *b = (const void *)(uintptr_t)c->b[4];
  float *y = F32(c, 0, p->y_off);
  for (uint32_t j = lo; j < hi; j++) {
    float out[4];
    dots_q(w + (size_t)j * row_words(p->k, q4), &n, p->m, q4, out);
    for (uint32_t r = 0; r < p->m; r++) {
      linear_store(y, p->n, r, j, out[r], b, p->b_off, p->has_bias, p->accumulate, half);
    }
  }
}

void norm_linear_q_f16(const Cmd *c, const Thread *t) { norm_linear_q(c, t, 1); }
void norm_linear_q_f32(const Cmd *c, const Thread *t) { norm_linear_q(c, t, 0); }

// --- qk_rope_q: q, k = rms_norm(x) · wq, wkᵀ, rotated; q written, k appended ------------------
// (V is a norm_linear_q into the cache rows: with it, the kernel would bind more storage buffers
// than WebGPU guarantees, 8.)

typedef struct {
  uint32_t m, d, heads, head_dim, x_off, q_off, k_off, kv_row, pos_off;
  float eps;
  uint32_t layouts; // bit s: section s (q, k) is q4_k
} QkRope;

static inline __attribute__((always_inline)) void qk_rope_q(const Cmd *c, const Thread *t, int half) {
  const QkRope *p = (const QkRope *)c->p;
  const uint32_t m = p->m, d = p->d, hd = p->head_dim, pairs = hd / 2;
  const uint32_t *pos = U32(c, 6, p->pos_off);
  const float *table = F32(c, 7, 0);
  // Work unit: one head of q or k (head_dim weight rows).
  uint32_t lo, hi;
  share(2 * p->heads, 1, t, &lo, &hi);
  if (lo >= hi) return;
  const NormedRows n = norm_rows(t, F32(c, 2, p->x_off), m, d, (const void *)(uintptr_t)c->b[3], half, p->eps);
  float *vals = (float *)n.end;
  for (uint32_t unit = lo; unit < hi; unit++) {
    const uint32_t section = unit / p->heads, col = (unit % p->heads) * hd;
    const int q4 = (p->layouts >> section) & 1u;
    const uint32_t *w = U32(c, 4 + section, 0);
    for (uint32_t j = 0; j < hd; j++) {
      float out[4];
      dots_q(w + (size_t)(col + j) * row_words(d, q4), &n, m, q4, out);
      for (uint32_t r = 0; r < m; r++) vals[r * hd + j] = out[r];
    }
    for (uint32_t r = 0; r < m; r++) {
      float *row = vals + r * hd;
      const float *cs = table + 2 * (size_t)pos[r] * pairs;
      for (uint32_t j = 0; j < pairs; j++) {
        const float a = row[j], b = row[j + pairs];
        row[j] = a * cs[2 * j] - b * cs[2 * j + 1];
        row[j + pairs] = b * cs[2 * j] + a * cs[2 * j + 1];
      }
      float *dst = section == 0 ? F32(c, 0, p->q_off + r * d + col) : F32(c, 1, p->k_off + (p->kv_row + r) * d + col);
      __builtin_memcpy(dst, row, hd * sizeof(float));
    }
  }
}

void qk_rope_q_f16(const Cmd *c, const Thread *t) { qk_rope_q(c, t, 1); }
void qk_rope_q_f32(const Cmd *c, const Thread *t) { qk_rope_q(c, t, 0); }

// --- gate_up_gelu_q: out[m, f] = gelu(h · wg[f]) · (h · wu[f]), h = rms_norm(x) -------------------

typedef struct {
  uint32_t m, f, d, x_off, out_off;
  float eps;
  uint32_t layouts; // bit 0: gate is q4_k, bit 1: up is q4_k
} GateUpGelu;

static inline __attribute__((always_inline)) void gate_up_gelu_q(const Cmd *c, const Thread *t, int half) {
  const GateUpGelu *p = (const GateUpGelu *)c->p;
  const uint32_t m = p->m, d = p->d, f = p->f;
  uint32_t lo, hi;
  share(f, 16, t, &lo, &hi);
  if (lo >= hi) return;
  const NormedRows n = norm_rows(t, F32(c, 1, p->x_off), m, d, (const void *)(uintptr_t)c->b[2], half, p->eps);
  const int gq4 = p->layouts & 1u, uq4 = (p->layouts >> 1) & 1u;
  const uint32_t *wg = U32(c, 3, 0), *wu = U32(c, 4, 0);
  float *out = F32(c, 0, p->out_off);
  for (uint32_t i0 = lo; i0 < hi; i0 += 4) {
    const uint32_t count = hi - i0 < 4 ? hi - i0 : 4;
    float g[4][4], u[4][4];
    for (uint32_t j = 0; j < count; j++) {
      float gate[4], up[4];
      dots_q(wg + (size_t)(i0 + j) * row_words(d, gq4), &n, m, gq4, gate);
      dots_q(wu + (size_t)(i0 + j) * row_words(d, uq4), &n, m, uq4, up);
      for (uint32_t r = 0; r < m; r++) {
        g[r][j] = gate[r];
        u[r][j] = up[r];
      }
    }
    store_gelu_gated(out, f, m, i0, count, g, u);
  }
}

void gate_up_gelu_q_f16(const Cmd *c, const Thread *t) { gate_up_gelu_q(c, t, 1); }
void gate_up_gelu_q_f32(const Cmd *c, const Thread *t) { gate_up_gelu_q(c, t, 0); }
