// Elementwise kernels, CPU twins of shaders/add.wgsl, mul.wgsl, gelu.wgsl, gelu_mul.wgsl,
// gelu_mul_backward.wgsl, gelu_mul_stacked.wgsl, dropout.wgsl and elu.wgsl: the same bindings and
// parameters, threads splitting the elements.

#include "dot.h"

#define GRAIN 1024

// add: x[i] += y[i % y_len].   p: n, y_len, x_off, y_off
void add(const Cmd *c, const Thread *t) {
  const uint32_t n = c->p[0], y_len = c->p[1];
  float *x = F32(c, 0, c->p[2]);
  const float *y = F32(c, 1, c->p[3]);
  uint32_t lo, hi;
  share(n, GRAIN, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) x[i] += y[i % y_len];
}

// mul: x[i] *= y[i % y_len] (y of the weight type).   p: n, y_len, x_off, y_off
static inline __attribute__((always_inline)) void mul(const Cmd *c, const Thread *t, int half) {
  const uint32_t n = c->p[0], y_len = c->p[1], y_off = c->p[3];
  float *x = F32(c, 0, c->p[2]);
  const void *y = (const void *)(uintptr_t)c->b[1];
  uint32_t lo, hi;
  share(n, GRAIN, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) x[i] *= weight_at(y, y_off + i % y_len, half);
}

void mul_f16(const Cmd *c, const Thread *t) { mul(c, t, 1); }
void mul_f32(const Cmd *c, const Thread *t) { mul(c, t, 0); }

// gelu: x[i] = gelu_erf(x[i]).   p: n, x_off
void gelu(const Cmd *c, const Thread *t) {
  float *x = F32(c, 0, c->p[1]);
  uint32_t lo, hi;
  share(c->p[0], GRAIN, t, &lo, &hi);
  uint32_t i = lo;
  for (; i + 4 <= hi; i += 4) wasm_v128_store(x + i, gelu_erf_f32x4(wasm_v128_load(x + i)));
  for (; i < hi; i++) x[i] = gelu_erf(x[i]);
}

// gelu_mul: g[i] = gelu_erf(g[i]) · u[i].   p: n, g_off, u_off
void gelu_mul(const Cmd *c, const Thread *t) {
  float *g = F32(c, 0, c->p[1]);
  const float *u = F32(c, 1, c->p[2]);
  uint32_t lo, hi;
  share(c->p[0], GRAIN, t, &lo, &hi);
  uint32_t i = lo;
  for (; i + 4 <= hi; i += 4) {
    wasm_v128_store(g + i, wasm_f32x4_mul(gelu_erf_f32x4(wasm_v128_load(g + i)), wasm_v128_load(u + i)));
  }
  for (; i < hi; i++) g[i] = gelu_erf(g[i]) * u[i];
}

// gelu(z) and its derivative Φ(z) + z φ(z), four lanes.
static inline __attribute__((always_inline)) void gelu_slope(v128_t z, v128_t *gelu, v128_t *slope) {
  const v128_t cdf = wasm_f32x4_mul(wasm_f32x4_const_splat(0.5f),
                                    erfc_f32x4(wasm_f32x4_mul(z, wasm_f32x4_const_splat(-0.70710678118654752f))));
  const v128_t e = exp_f32x4_inline(wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_const_splat(-0.5f), z), z));
  const v128_t pdf = wasm_f32x4_mul(e, wasm_f32x4_const_splat(0.39894228040143268f)); // 1 / sqrt(2π)
  *gelu = wasm_f32x4_mul(z, cdf);
  *slope = wasm_f32x4_add(cdf, wasm_f32x4_mul(z, pdf));
}

// gelu_mul_backward: dg[i] = dm[i] · u[i] · gelu'(g[i]), du[i] = dm[i] · gelu(g[i]); each
// element read before it is written (an output may be an input). The tail runs as a padded vector.
// p: n, dg_off, du_off, dm_off, g_off, u_off
void gelu_mul_backward(const Cmd *c, const Thread *t) {
  float *dg = F32(c, 0, c->p[1]), *du = F32(c, 1, c->p[2]);
  const float *dm = F32(c, 2, c->p[3]), *g = F32(c, 3, c->p[4]), *u = F32(c, 4, c->p[5]);
  uint32_t lo, hi;
  share(c->p[0], GRAIN, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i += 4) {
    const uint32_t n = hi - i < 4 ? hi - i : 4;
    float d[4] = {0}, z[4] = {0}, uu[4] = {0}, odg[4], odu[4];
    for (uint32_t e = 0; e < n; e++) d[e] = dm[i + e], z[e] = g[i + e], uu[e] = u[i + e];
    v128_t gelu, slope;
    gelu_slope(wasm_v128_load(z), &gelu, &slope);
    const v128_t dv = wasm_v128_load(d);
    wasm_v128_store(odg, wasm_f32x4_mul(wasm_f32x4_mul(dv, wasm_v128_load(uu)), slope));
    wasm_v128_store(odu, wasm_f32x4_mul(dv, gelu));
    for (uint32_t e = 0; e < n; e++) dg[i + e] = odg[e], du[i + e] = odu[e];
  }
}

// gelu_mul_stacked: y[r, j] = gelu_erf(gu[r, j]) · gu[r, f + j] for stacked gate|up rows (R, 2f),
// the arithmetic of gelu_mul above.   p: n (= R · f), f, out_off, gu_off
void gelu_mul_stacked(const Cmd *c, const Thread *t) {
  const uint32_t f = c->p[1];
  float *y = F32(c, 0, c->p[2]);
  const float *gu = F32(c, 1, c->p[3]);
  uint32_t lo, hi;
  share(c->p[0] / f, 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    float *out = y + (size_t)r * f;
    const float *g = gu + (size_t)r * 2 * f, *u = g + f;
    uint32_t j = 0;
    for (; j + 4 <= f; j += 4) {
      wasm_v128_store(out + j, wasm_f32x4_mul(gelu_erf_f32x4(wasm_v128_load(g + j)), wasm_v128_load(u + j)));
    }
    for (; j < f; j++) out[j] = gelu_erf(g[j]) * u[j];
  }
}

// Chris Wellons' lowbias32, as shaders/dropout.wgsl computes it.
static inline uint32_t lowbias32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}

// dropout: y[i] (+)= keep(i) ? x[i] · scale : 0, keep(i) = lowbias32(i ^ lowbias32(seed)) >=
// threshold: the WGSL kernel's mask, bit for bit.   p: n, y_off, x_off, seed, threshold, accumulate,
// scale (f32)
void dropout(const Cmd *c, const Thread *t) {
  float *y = F32(c, 0, c->p[1]);
  const float *x = F32(c, 1, c->p[2]);
  const uint32_t key = lowbias32(c->p[3]), threshold = c->p[4], accumulate = c->p[5];
  const float scale = param_f32(c, 6);
  uint32_t lo, hi;
  share(c->p[0], GRAIN, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) {
    const float v = lowbias32(i ^ key) >= threshold ? x[i] * scale : 0.0f;
    y[i] = accumulate ? y[i] + v : v;
  }
}

// elu: y[i] = x[i] > 0 ? x[i] : exp(x[i]) − 1.   p: n, y_off, x_off
void elu(const Cmd *c, const Thread *t) {
  float *y = F32(c, 0, c->p[1]);
  const float *x = F32(c, 1, c->p[2]);
  uint32_t lo, hi;
  share(c->p[0], GRAIN, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) {
    float v = x[i];
    y[i] = v > 0.0f ? v : exp_f32(v < 0.0f ? v : 0.0f) - 1.0f;
  }
}
