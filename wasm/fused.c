// The fused decode-step kernels, CPU twins of shaders/norm_linear.wgsl, qkv_rope.wgsl and
// gate_up_gelu.wgsl: RMSNorm of at most four rows of x folded into matrix-vector products (the
// dot products of x·nw are scaled by the row's 1/rms, as on the GPU). Every thread computes the
// normed input itself (d floats per row, cheap next to its weight rows), then its share of rows.

#include "dot.h"

// --- norm_linear: y[m, n] (+)= r_m · Σ_k x[m, k] nw[k] w[n, k] (+ b[n]) ------------------------

typedef struct {
  uint32_t m, n, k, x_off, y_off, w_off, b_off, has_bias, accumulate;
  float eps;
} NormLinear;

static inline __attribute__((always_inline)) void norm_linear(const Cmd *c, const Thread *t, int half) {
  const NormLinear *p = (const NormLinear *)c->p;
  float *y = F32(c, 0, p->y_off);
  const void *nw = (const void *)(uintptr_t)c->b[2];
  const void *w = (const void *)(uintptr_t)c->b[3];
  const void *b = (const void *)(uintptr_t)c->b[4];
  uint32_t lo, hi;
  share(p->n, 16, t, &lo, &hi);
  if (lo >= hi) return;
  float *h = (float *)t->scratch, inv[4], out[4];
  norm_input(F32(c, 1, p->x_off), p->m, p->k, nw, half, p->eps, h, inv);
  for (uint32_t n = lo; n < hi; n++) {
    dots(h, p->m, p->k, w, p->w_off + (size_t)n * p->k, half, out);
    for (uint32_t r = 0; r < p->m; r++) {
      float v = out[r] * inv[r];
      if (p->has_bias) v += weight_at(b, p->b_off + n, half);
      float *o = y + (size_t)r * p->n + n;
      *o = p->accumulate ? *o + v : v;
    }
  }
}

void norm_linear_f16(const Cmd *c, const Thread *t) { norm_linear(c, t, 1); }
void norm_linear_f32(const Cmd *c, const Thread *t) { norm_linear(c, t, 0); }

// --- qkv_rope: q, k, v = RMSNorm(x) · wqkvᵀ; q and k rotated; q written, k and v appended ------

typedef struct {
  uint32_t m, d, heads, head_dim, x_off, q_off, k_off, v_off, kv_row, pos_off;
  float eps;
} QkvRope;

static inline __attribute__((always_inline)) void qkv_rope(const Cmd *c, const Thread *t, int half) {
  const QkvRope *p = (const QkvRope *)c->p;
  const uint32_t m = p->m, d = p->d, hd = p->head_dim, pairs = hd / 2;
  const void *nw = (const void *)(uintptr_t)c->b[4];
  const void *w = (const void *)(uintptr_t)c->b[5];
  const uint32_t *pos = U32(c, 6, p->pos_off);
  const float *table = F32(c, 7, 0);
  // Work unit: one head of one of q, k, v (head_dim weight rows).
  uint32_t lo, hi;
  share(3 * p->heads, 1, t, &lo, &hi);
  if (lo >= hi) return;
  float *h = (float *)t->scratch, *vals = h + (size_t)m * d, inv[4], out[4];
  norm_input(F32(c, 3, p->x_off), m, d, nw, half, p->eps, h, inv);
  for (uint32_t unit = lo; unit < hi; unit++) {
    const uint32_t section = unit / p->heads, head = unit % p->heads;
    const uint32_t col = head * hd;
    for (uint32_t j = 0; j < hd; j++) {
      dots(h, m, d, w, ((size_t)section * d + col + j) * d, half, out);
      for (uint32_t r = 0; r < m; r++) vals[r * hd + j] = out[r] * inv[r];
    }
    for (uint32_t r = 0; r < m; r++) {
      float *row = vals + r * hd;
      if (section < 2) {
        const float *cs = table + 2 * (size_t)pos[r] * pairs;
        for (uint32_t j = 0; j < pairs; j++) {
          float a = row[j], b = row[j + pairs], co = cs[2 * j], si = cs[2 * j + 1];
          row[j] = a * co - b * si;
          row[j + pairs] = b * co + a * si;
        }
      }
      float *dst = section == 0 ? F32(c, 0, p->q_off + r * d + col)
                 : section == 1 ? F32(c, 1, p->k_off + (p->kv_row + r) * d + col)
                                : F32(c, 2, p->v_off + (p->kv_row + r) * d + col);
      __builtin_memcpy(dst, row, hd * sizeof(float));
    }
  }
}

void qkv_rope_f16(const Cmd *c, const Thread *t) { qkv_rope(c, t, 1); }
void qkv_rope_f32(const Cmd *c, const Thread *t) { qkv_rope(c, t, 0); }

// --- gate_up_gelu: out[m, f] = gelu(h · w[f]) · (h · w[F + f]), h = RMSNorm(x) -----------------

typedef struct {
  uint32_t m, f, d, x_off, out_off;
  float eps;
} GateUpGelu;

static inline __attribute__((always_inline)) void gate_up_gelu(const Cmd *c, const Thread *t, int half) {
  const GateUpGelu *p = (const GateUpGelu *)c->p;
  const uint32_t m = p->m, d = p->d, f = p->f;
  const void *nw = (const void *)(uintptr_t)c->b[2];
  const void *w = (const void *)(uintptr_t)c->b[3];
  float *out = F32(c, 0, p->out_off);
  uint32_t lo, hi;
  share(f, 16, t, &lo, &hi);
  if (lo >= hi) return;
  float *h = (float *)t->scratch, inv[4], gate[4], up[4], g[4][4], u[4][4];
  norm_input(F32(c, 1, p->x_off), m, d, nw, half, p->eps, h, inv);
  for (uint32_t i0 = lo; i0 < hi; i0 += 4) {
    const uint32_t count = hi - i0 < 4 ? hi - i0 : 4;
    for (uint32_t j = 0; j < count; j++) {
      dots(h, m, d, w, (size_t)(i0 + j) * d, half, gate);
      dots(h, m, d, w, (size_t)(f + i0 + j) * d, half, up);
      for (uint32_t r = 0; r < m; r++) {
        g[r][j] = gate[r] * inv[r];
        u[r][j] = up[r] * inv[r];
      }
    }
    store_gelu_gated(out, f, m, i0, count, g, u);
  }
}

void gate_up_gelu_f16(const Cmd *c, const Thread *t) { gate_up_gelu(c, t, 1); }
void gate_up_gelu_f32(const Cmd *c, const Thread *t) { gate_up_gelu(c, t, 0); }
