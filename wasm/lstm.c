// lstm_step: the CPU twin of shaders/lstm_step.wgsl, one time step of one LSTM layer (PyTorch
// gate order i, f, g, o):
//   gates = gx[t] + W_hh · h_{t−1};  c = σ(f) c + σ(i) tanh(g);  h_t = σ(o) tanh(c)
// with h_{t−1} in row t of hs, h_t written to row t + 1, c updated in place. Threads split the
// hidden units; a unit's four gate rows are read once each (dot.h). σ and tanh are the WGSL's,
// built from exp in forms that neither overflow nor lose more than an ulp of 1.

#include "dot.h"

typedef struct {
  uint32_t h, t, hs_off, c_off, gx_off, w_off;
} Params;

static inline float sigmoid(float v) {
  const float e = exp_f32(-__builtin_fabsf(v));
  return v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

static inline float tanh_exact(float v) {
  const float e = exp_f32(-2.0f * __builtin_fabsf(v));
  const float sign = v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : 0.0f;
  return sign * (1.0f - e) / (1.0f + e);
}

static inline __attribute__((always_inline)) void lstm_step(const Cmd *c, const Thread *t, int half) {
  const Params *p = (const Params *)c->p;
  const uint32_t h = p->h;
  const float *prev = F32(c, 0, p->hs_off + (size_t)p->t * h);
  float *next = F32(c, 0, p->hs_off + (size_t)(p->t + 1) * h);
  float *cell = F32(c, 1, p->c_off);
  const float *gx = F32(c, 2, p->gx_off + (size_t)p->t * 4 * h);
  const void *w = (const void *)(uintptr_t)c->b[3];
  uint32_t lo, hi;
  share(h, 8, t, &lo, &hi);
  for (uint32_t u = lo; u < hi; u++) {
    float g[4];
    for (uint32_t gate = 0; gate < 4; gate++) {
      dots(prev, 1, h, w, p->w_off + ((size_t)gate * h + u) * h, half, &g[gate]);
      g[gate] += gx[gate * h + u];
    }
    const float next_cell = sigmoid(g[1]) * cell[u] + sigmoid(g[0]) * tanh_exact(g[2]);
    cell[u] = next_cell;
    next[u] = sigmoid(g[3]) * tanh_exact(next_cell);
  }
}

void lstm_step_f16(const Cmd *c, const Thread *t) { lstm_step(c, t, 1); }
void lstm_step_f32(const Cmd *c, const Thread *t) { lstm_step(c, t, 0); }
