// The optimizer's kernels, CPU twins of shaders/adamw.wgsl, sum_squares.wgsl and clip_factor.wgsl
// (same bindings and parameters).

#include "runtime.h"

// adamw: one torch.optim.AdamW step over n elements; threads split them.
// p: n, p_off, g_off, m_off, v_off, scale_off, decay, beta1, 1 − beta1, beta2, 1 − beta2,
// step_size, sqrt(bc2), eps
void adamw(const Cmd *c, const Thread *t) {
  float *param = F32(c, 0, c->p[1]), *m1 = F32(c, 2, c->p[3]), *m2 = F32(c, 3, c->p[4]);
  const float *grad = F32(c, 1, c->p[2]);
  const float scale = *F32(c, 4, c->p[5]);
  const float decay = param_f32(c, 6), beta1 = param_f32(c, 7), one_minus_beta1 = param_f32(c, 8);
  const float beta2 = param_f32(c, 9), one_minus_beta2 = param_f32(c, 10);
  const float step_size = param_f32(c, 11), bc2_sqrt = param_f32(c, 12), eps = param_f32(c, 13);
  uint32_t lo, hi;
  share(c->p[0], 1024, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) {
    const float g = grad[i] * scale;
    const float m = beta1 * m1[i] + one_minus_beta1 * g;
    const float v = beta2 * m2[i] + one_minus_beta2 * g * g;
    m1[i] = m;
    m2[i] = v;
    const float denom = __builtin_sqrtf(v) / bc2_sqrt + eps;
    param[i] = param[i] * decay - step_size * (m / denom);
  }
}

// sum_squares: out[out_off + g] (+)= Σ over chunk g of x (squared when `square`), each chunk
// summed in f64 (two lanes) and rounded once; threads split the chunks.
// p: n, x_off, out_off, chunk, square, accumulate
void sum_squares(const Cmd *c, const Thread *t) {
  const uint32_t n = c->p[0], chunk = c->p[3], square = c->p[4], accumulate = c->p[5];
  float *out = F32(c, 0, c->p[2]);
  const float *x = F32(c, 1, c->p[1]);
  if (n == 0 || chunk == 0) return;
  uint32_t lo, hi;
  share((n + chunk - 1) / chunk, 1, t, &lo, &hi);
  for (uint32_t g = lo; g < hi; g++) {
    const uint32_t start = g * chunk, end = n - start < chunk ? n : start + chunk;
    v128_t acc = wasm_f64x2_splat(0);
    uint32_t i = start;
    for (; i + 2 <= end; i += 2) {
      const v128_t v = wasm_f64x2_make((double)x[i], (double)x[i + 1]);
      acc = wasm_f64x2_add(acc, square ? wasm_f64x2_mul(v, v) : v);
    }
    double s = wasm_f64x2_extract_lane(acc, 0) + wasm_f64x2_extract_lane(acc, 1);
    if (i < end) s += square ? (double)x[i] * x[i] : x[i];
    out[g] = accumulate ? out[g] + (float)s : (float)s;
  }
}

// clip_factor: scale = min(1, max_norm / (sqrt(sumsq) + 1e-6)).   p: scale_off, sumsq_off, max_norm
void clip_factor(const Cmd *c, const Thread *t) {
  if (t->id != 0) return;
  const float f = param_f32(c, 2) / (__builtin_sqrtf(*F32(c, 1, c->p[1])) + 1e-6f);
  *F32(c, 0, c->p[0]) = f < 1.0f ? f : 1.0f;
}
