// Row normalisations, CPU twins of shaders/rms_norm.wgsl, rms_norm_backward.wgsl and
// layer_norm.wgsl; threads split the rows.

#include "dot.h"

// rms_norm: y[r] = x[r] / sqrt(mean(x[r]²) + eps) · w.   p: rows, d, eps, x_off, y_off
static inline __attribute__((always_inline)) void rms_norm(const Cmd *c, const Thread *t, int half) {
  const uint32_t d = c->p[1];
  const float eps = param_f32(c, 2);
  const void *w = (const void *)(uintptr_t)c->b[2];
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) rms_norm_row(F32(c, 1, c->p[3] + r * d), d, w, half, eps, F32(c, 0, c->p[4] + r * d));
}

void rms_norm_f16(const Cmd *c, const Thread *t) { rms_norm(c, t, 1); }
void rms_norm_f32(const Cmd *c, const Thread *t) { rms_norm(c, t, 0); }

// rms_norm_backward: with r = 1 / sqrt(mean(x²) + eps) and g = dy · w,
// dx (+)= r · g − x · r³ · (Σ g · x) / D.   p: rows, d, eps, accumulate, dx_off, dy_off, x_off, w_off
static inline __attribute__((always_inline)) void rms_norm_backward(const Cmd *c, const Thread *t, int half) {
  const uint32_t d = c->p[1], accumulate = c->p[3], w_off = c->p[7];
  const float eps = param_f32(c, 2);
  const void *w = (const void *)(uintptr_t)c->b[3];
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    float *dx = F32(c, 0, c->p[4] + r * d);
    const float *dy = F32(c, 1, c->p[5] + r * d), *x = F32(c, 2, c->p[6] + r * d);
    float ss = 0, gx = 0;
    for (uint32_t i = 0; i < d; i++) {
      ss += x[i] * x[i];
      gx += dy[i] * weight_at(w, w_off + i, half) * x[i];
    }
    const float inv = 1.0f / __builtin_sqrtf(ss / (float)d + eps);
    const float k = gx * inv * inv * inv / (float)d;
    for (uint32_t i = 0; i < d; i++) {
      const float v = inv * dy[i] * weight_at(w, w_off + i, half) - x[i] * k;
      dx[i] = accumulate ? dx[i] + v : v;
    }
  }
}

void rms_norm_backward_f16(const Cmd *c, const Thread *t) { rms_norm_backward(c, t, 1); }
void rms_norm_backward_f32(const Cmd *c, const Thread *t) { rms_norm_backward(c, t, 0); }

// layer_norm: y[r] = (x[r] − mean) / sqrt(var + eps) · w + b, biased variance.
// p: rows, d, eps, x_off, y_off, w_off, b_off
static inline __attribute__((always_inline)) void layer_norm(const Cmd *c, const Thread *t, int half) {
  const uint32_t d = c->p[1], w_off = c->p[5], b_off = c->p[6];
  const float eps = param_f32(c, 2);
  const void *w = (const void *)(uintptr_t)c->b[2];
  const void *b = (const void *)(uintptr_t)c->b[3];
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    float *y = F32(c, 0, c->p[4] + r * d);
    const float *x = F32(c, 1, c->p[3] + r * d);
    float s = 0;
    for (uint32_t i = 0; i < d; i++) s += x[i];
    const float mean = s / (float)d;
    float v = 0;
    for (uint32_t i = 0; i < d; i++) v += (x[i] - mean) * (x[i] - mean);
    const float inv = 1.0f / __builtin_sqrtf(v / (float)d + eps);
    for (uint32_t i = 0; i < d; i++) {
      y[i] = (x[i] - mean) * inv * weight_at(w, w_off + i, half) + weight_at(b, b_off + i, half);
    }
  }
}

void layer_norm_f16(const Cmd *c, const Thread *t) { layer_norm(c, t, 1); }
void layer_norm_f32(const Cmd *c, const Thread *t) { layer_norm(c, t, 0); }
