// linear: y[m, n] = Σ_k x[m, k] · w[n, k] (+ b[n]) (+ y[m, n] when accumulating), the CPU twin of
// shaders/gemv.wgsl, gemv_vec4.wgsl, gemm.wgsl and gemm_vec4.wgsl (same bindings and parameters;
// one kernel here serves all four). Threads split the weight rows n, so each converts and reads
// only its own.
//
// Few rows (decode steps): each weight row is read once and dotted with every row of x (dot.h).
// Many rows: the GEMM of conv1d.c (packed f32 weight panels, 4 × 8 register tiles).

#include "dot.h"

typedef struct {
  uint32_t m, n, k, x_off, y_off, w_off, b_off, has_bias, accumulate;
} Params;

// The many-rows path is conv1d.c's GEMM (a convolution with one tap, stride 1, no padding):
// x is its time-major input, w its [out, 1, in] weight.
void conv1d_f16(const Cmd *c, const Thread *t);
void conv1d_f32(const Cmd *c, const Thread *t);

#define CONV_FLAG_ACCUMULATE 2u
#define CONV_FLAG_BIAS 4u

static void many_rows(const Cmd *c, const Thread *t, int half) {
  const Params *p = (const Params *)c->p;
  Cmd conv = {.kernel = c->kernel, .groups = {1, 1, 1}};
  for (int i = 0; i < 4; i++) conv.b[i] = c->b[i];
  const uint32_t flags = (p->accumulate ? CONV_FLAG_ACCUMULATE : 0) | (p->has_bias ? CONV_FLAG_BIAS : 0);
  // m, n, cin, taps, in_len, stride, dilation, pad_left, reflect_len, x_off, y_off, w_off,
  // b_off, w_phase, out_stride, out_start, out_rows, flags
  const uint32_t words[18] = {p->m, p->n, p->k, 1, p->m, 1, 1, 0, 0, p->x_off, p->y_off,
                              p->w_off, p->b_off, p->n * p->k, 1, 0, p->m, flags};
  for (int i = 0; i < 18; i++) conv.p[i] = words[i];
  if (half) conv1d_f16(&conv, t);
  else conv1d_f32(&conv, t);
}

static inline __attribute__((always_inline)) void linear(const Cmd *c, const Thread *t, int half) {
  const Params *p = (const Params *)c->p;
  float *y = F32(c, 0, p->y_off);
  const float *x = F32(c, 1, p->x_off);
  const void *w = (const void *)(uintptr_t)c->b[2];
  const void *b = (const void *)(uintptr_t)c->b[3];
  if (p->m > 4) {
    many_rows(c, t, half);
    return;
  }
  uint32_t lo, hi;
  share(p->n, 16, t, &lo, &hi);
  float out[4];
  for (uint32_t n = lo; n < hi; n++) {
    dots(x, p->m, p->k, w, p->w_off + (size_t)n * p->k, half, out);
    for (uint32_t r = 0; r < p->m; r++) {
      linear_store(y, p->n, r, n, out[r], b, p->b_off, p->has_bias, p->accumulate, half);
    }
  }
}

void linear_f16(const Cmd *c, const Thread *t) { linear(c, t, 1); }
void linear_f32(const Cmd *c, const Thread *t) { linear(c, t, 0); }
