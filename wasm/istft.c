// Vocos's ISTFT, CPU twins of shaders/istft_spectrum.wgsl and istft_overlap_add.wgsl (the
// inverse DFT between them is a `linear`). Threads split the elements; the formulas, constants
// and operation order are the WGSL's (sin and cos by Cody–Waite reduction and Cephes' minimax
// polynomials; exp by runtime.c).

#include "runtime.h"

#define GRAIN 256

// (sin v, cos v), the WGSL `sincos`.
static inline void sincos(float v, float *s_out, float *c_out) {
  const float k = __builtin_rintf(v * 0.63661977236758134f);
  const float r = ((v - k * 1.5703125f) - k * 4.837512969970703125e-4f) - k * 7.549789954891882e-8f;
  const float z = r * r;
  const float s = r + r * z * (-1.6666654611e-1f + z * (8.3321608736e-3f + z * -1.9515295891e-4f));
  const float c = 1.0f - 0.5f * z +
                  z * z * (4.166664568298827e-2f + z * (-1.388731625493765e-3f + z * 2.443315711809948e-5f));
  switch ((int32_t)k & 3) {
    case 0: *s_out = s, *c_out = c; break;
    case 1: *s_out = c, *c_out = -s; break;
    case 2: *s_out = -s, *c_out = -c; break;
    default: *s_out = -c, *c_out = s; break;
  }
}

// istft_spectrum: rows [log-magnitude (nb) | phase (nb)] become [Re S | Im S] in place, with
// S = min(exp(log-magnitude), 100)·e^{i·phase}.   p: frames, nb, x_off
void istft_spectrum(const Cmd *c, const Thread *t) {
  const uint32_t nb = c->p[1];
  float *x = F32(c, 0, c->p[2]);
  uint32_t lo, hi;
  share(c->p[0] * nb, GRAIN, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) {
    float *at = x + (size_t)(i / nb) * 2 * nb + i % nb;
    const float lm = at[0] < 10.0f ? at[0] : 10.0f;
    const float e = exp_f32(lm);
    const float mag = e < 100.0f ? e : 100.0f;
    float s, co;
    sincos(at[nb], &s, &co);
    at[0] = mag * co;
    at[nb] = mag * s;
  }
}

typedef struct {
  uint32_t count, n_fft, hop, pad, total, f0, m0, frames_off, out_off;
} OverlapAdd;

// istft_overlap_add: out[i] = Σ_f frames[f, u − f·hop] / Σ_f window[u − f·hop]², u = m0 + i + pad,
// over the frames f < total with f·hop ≤ u < f·hop + n_fft, ascending.
void istft_overlap_add(const Cmd *c, const Thread *t) {
  const OverlapAdd *p = (const OverlapAdd *)c->p;
  float *out = F32(c, 0, p->out_off);
  const float *frames = F32(c, 1, p->frames_off);
  const float *window = F32(c, 2, 0);
  uint32_t lo, hi;
  share(p->count, GRAIN, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) {
    const uint32_t u = p->m0 + i + p->pad;
    const uint32_t first = u + 1 > p->n_fft ? (u + 1 - p->n_fft + p->hop - 1) / p->hop : 0;
    const uint32_t last = u / p->hop < p->total - 1 ? u / p->hop : p->total - 1;
    float sum = 0.0f, env = 0.0f;
    for (uint32_t f = first; f <= last; f++) {
      const uint32_t n = u - f * p->hop;
      const float wv = window[n];
      env += wv * wv;
      sum += frames[(size_t)(f - p->f0) * p->n_fft + n];
    }
    out[i] = sum / env;
  }
}
