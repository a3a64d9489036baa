// Row softmax and argmax, CPU twins of shaders/softmax.wgsl and argmax.wgsl; threads split rows.

#include "runtime.h"

// softmax in place: x[r] = exp(x[r] − max) / Σ exp(x[r] − max).   p: rows, cols, x_off
void softmax(const Cmd *c, const Thread *t) {
  const uint32_t cols = c->p[1];
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    float *x = F32(c, 0, c->p[2] + r * cols);
    float m = NEG_BIG;
    for (uint32_t i = 0; i < cols; i++) m = x[i] > m ? x[i] : m;
    float sum = 0;
    for (uint32_t i = 0; i < cols; i++) {
      x[i] = exp_f32(x[i] - m);
      sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (uint32_t i = 0; i < cols; i++) x[i] *= inv;
  }
}

// argmax: out[r] = the first index of the largest x[r, i].   p: rows, cols, x_off, out_off
void argmax(const Cmd *c, const Thread *t) {
  const uint32_t cols = c->p[1];
  uint32_t *out = U32(c, 0, c->p[3]);
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    const float *x = F32(c, 1, c->p[2] + r * cols);
    uint32_t best = 0;
    for (uint32_t i = 1; i < cols; i++) best = x[i] > x[best] ? i : best;
    out[r] = best;
  }
}
