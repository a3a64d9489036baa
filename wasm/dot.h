// The core of every matrix-vector kernel: the dot products of one weight row (f16 or f32) with
// up to four rows of x, the weight row read and converted once. K is walked 8 at a time with two
// accumulators per row of x, then the tail one by one.

#ifndef VALLE_DOT_H
#define VALLE_DOT_H

#include "runtime.h"

// Eight consecutive weights as two f32 vectors.
static inline __attribute__((always_inline)) void load8(const void *w, size_t i, int half,
                                                        v128_t *lo, v128_t *hi) {
  if (half) {
    halves_to_floats(wasm_v128_load((const uint16_t *)w + i), lo, hi);
  } else {
    *lo = wasm_v128_load((const float *)w + i);
    *hi = wasm_v128_load((const float *)w + i + 4);
  }
}

// Weight i as f32.
static inline __attribute__((always_inline)) float weight_at(const void *w, size_t i, int half) {
  return half ? half_to_float(((const uint16_t *)w)[i]) : ((const float *)w)[i];
}

// The output of a linear kernel: y[row · n_len + n] = v (+ b[b_off + n]) (+ its old value).
static inline void linear_store(float *y, uint32_t n_len, uint32_t row, uint32_t n, float v,
                                const void *b, uint32_t b_off, uint32_t has_bias,
                                uint32_t accumulate, int half) {
  if (has_bias) v += weight_at(b, b_off + n, half);
  float *o = y + (size_t)row * n_len + n;
  *o = accumulate ? *o + v : v;
}

// out[r] = Σ_k x[r·k_len + k] · w[wb + k] for r < M (M a constant ≤ 4 after inlining).
static inline __attribute__((always_inline)) void dots_m(const float *x, uint32_t k_len, const void *w,
                                                         size_t wb, int half, const uint32_t M,
                                                         float *out) {
  const uint32_t k8 = k_len & ~7u;
  v128_t a[4], b[4];
  for (uint32_t r = 0; r < M; r++) a[r] = b[r] = wasm_f32x4_splat(0);
  for (uint32_t i = 0; i < k8; i += 8) {
    v128_t wl, wh;
    load8(w, wb + i, half, &wl, &wh);
    for (uint32_t r = 0; r < M; r++) {
      const float *xr = x + (size_t)r * k_len + i;
      a[r] = MADD(wl, wasm_v128_load(xr), a[r]);
      b[r] = MADD(wh, wasm_v128_load(xr + 4), b[r]);
    }
  }
  for (uint32_t r = 0; r < M; r++) {
    float s = hsum(wasm_f32x4_add(a[r], b[r]));
    for (uint32_t i = k8; i < k_len; i++) s += x[(size_t)r * k_len + i] * weight_at(w, wb + i, half);
    out[r] = s;
  }
}

// dots_m for a run-time M in 1..4.
static inline __attribute__((always_inline)) void dots(const float *x, uint32_t m, uint32_t k_len,
                                                       const void *w, size_t wb, int half, float *out) {
  switch (m) {
    case 1: dots_m(x, k_len, w, wb, half, 1, out); break;
    case 2: dots_m(x, k_len, w, wb, half, 2, out); break;
    case 3: dots_m(x, k_len, w, wb, half, 3, out); break;
    default: dots_m(x, k_len, w, wb, half, 4, out); break;
  }
}

// The GELU-gated outputs of the fused MLP kernels: out[r · f + i0 + j] = gelu(g[r][j]) · u[r][j]
// for rows r < m and up to four consecutive outputs j < count, one lane each.
static inline void store_gelu_gated(float *out, uint32_t f, uint32_t m, uint32_t i0, uint32_t count,
                                    float g[4][4], float u[4][4]) {
  for (uint32_t r = 0; r < m; r++) {
    float v[4];
    for (uint32_t j = count; j < 4; j++) g[r][j] = u[r][j] = 0;
    wasm_v128_store(v, wasm_f32x4_mul(gelu_erf_f32x4(wasm_v128_load(g[r])), wasm_v128_load(u[r])));
    for (uint32_t j = 0; j < count; j++) out[(size_t)r * f + i0 + j] = v[j];
  }
}

// rms_norm of one row: y = x / sqrt(mean(x²) + eps) · w, as (x · inv) · w (the rms_norm kernel,
// and the fused kernels over quantized weights, which reproduce its output exactly).
static inline void rms_norm_row(const float *x, uint32_t d, const void *w, int half, float eps, float *y) {
  float s = 0;
  for (uint32_t i = 0; i < d; i++) s += x[i] * x[i];
  const float inv = 1.0f / __builtin_sqrtf(s / (float)d + eps);
  for (uint32_t i = 0; i < d; i++) y[i] = x[i] * inv * weight_at(w, i, half);
}

// The RMSNorm input of the fused kernels: h[r, k] = x[r, k] · nw[k] for r < m, and
// inv[r] = 1 / sqrt(mean_k x[r, k]² + eps). (The kernels scale the dot products by inv[r], as
// the WGSL kernels do.)
static inline void norm_input(const float *x, uint32_t m, uint32_t d, const void *nw, int half,
                              float eps, float *h, float *inv) {
  for (uint32_t r = 0; r < m; r++) {
    const float *xr = x + (size_t)r * d;
    float *hr = h + (size_t)r * d;
    v128_t ss = wasm_f32x4_splat(0);
    uint32_t k = 0;
    for (; k + 8 <= d; k += 8) {
      v128_t wl, wh;
      load8(nw, k, half, &wl, &wh);
      v128_t x0 = wasm_v128_load(xr + k), x1 = wasm_v128_load(xr + k + 4);
      ss = wasm_f32x4_add(ss, MADD(x1, x1, wasm_f32x4_mul(x0, x0)));
      wasm_v128_store(hr + k, wasm_f32x4_mul(x0, wl));
      wasm_v128_store(hr + k + 4, wasm_f32x4_mul(x1, wh));
    }
    float s = hsum(ss);
    for (; k < d; k++) {
      s += xr[k] * xr[k];
      hr[k] = xr[k] * weight_at(nw, k, half);
    }
    inv[r] = 1.0f / __builtin_sqrtf(s / (float)d + eps);
  }
}

#endif
