// depthwise_conv1d: the CPU twin of shaders/depthwise_conv1d.wgsl, Vocos's ConvNeXt depthwise
// convolution with zero padding over time-major activations:
//   y[t, c] = b[c] + Σ_j w[c, j] · x[t + j − pad, c]   (terms outside [0, len) skipped)
// Threads split the time rows. Channels go 4 at a time with the weights of a block of channels
// transposed (f16 converted) to [taps][channels] in scratch memory, so a row is a few vector
// multiply-adds per tap (kernels too long for that are read in place, one sum at a time).

#include "dot.h"

typedef struct {
  uint32_t len, ch, taps, pad, x_off, y_off;
} Params;

// Row r's taps j0 ≤ j < j1 are those whose input row r + j − pad is inside the signal.
static inline uint32_t first_tap(const Params *p, uint32_t r) { return r < p->pad ? p->pad - r : 0; }

static inline uint32_t end_tap(const Params *p, uint32_t r) {
  const uint64_t end = (uint64_t)p->len + p->pad - r;
  return end < p->taps ? (uint32_t)end : p->taps;
}

static inline __attribute__((always_inline)) void depthwise(const Cmd *c, const Thread *t, int half) {
  const Params *p = (const Params *)c->p;
  const uint32_t len = p->len, ch = p->ch, taps = p->taps;
  float *y = F32(c, 0, p->y_off);
  const float *x = F32(c, 1, p->x_off);
  const void *w = (const void *)(uintptr_t)c->b[2];
  const void *b = (const void *)(uintptr_t)c->b[3];
  uint32_t lo, hi;
  share(len, 16, t, &lo, &hi);
  if (lo >= hi || ch == 0) return;
  // Channels per block: their taps and bias fit in the scratch memory; none fit (a kernel of a
  // quarter million taps): the weights are read where they are.
  uint32_t block = t->scratch_bytes / 4 / (taps + 1);
  if (block > 4) block &= ~3u;
  if (block == 0) {
    for (uint32_t r = lo; r < hi; r++) {
      const uint32_t j0 = first_tap(p, r), j1 = end_tap(p, r);
      for (uint32_t i = 0; i < ch; i++) {
        float acc = 0.0f;
        for (uint32_t j = j0; j < j1; j++) {
          acc += weight_at(w, (size_t)i * taps + j, half) * x[((size_t)r + j - p->pad) * ch + i];
        }
        y[(size_t)r * ch + i] = acc + weight_at(b, i, half);
      }
    }
    return;
  }
  float *wt = (float *)t->scratch;
  for (uint32_t c0 = 0; c0 < ch; c0 += block) {
    const uint32_t cn = ch - c0 < block ? ch - c0 : block;
    float *bias = wt + (size_t)taps * cn;
    for (uint32_t i = 0; i < cn; i++) {
      for (uint32_t j = 0; j < taps; j++) wt[(size_t)j * cn + i] = weight_at(w, (size_t)(c0 + i) * taps + j, half);
      bias[i] = weight_at(b, c0 + i, half);
    }
    const uint32_t cn4 = cn & ~3u;
    for (uint32_t r = lo; r < hi; r++) {
      const uint32_t j0 = first_tap(p, r), j1 = end_tap(p, r);
      const float *xr = x + c0 + ((size_t)r + j0 - p->pad) * ch;
      float *yr = y + (size_t)r * ch + c0;
      uint32_t i = 0;
      for (; i < cn4; i += 4) {
        v128_t acc = wasm_f32x4_splat(0.0f);
        const float *xi = xr + i;
        for (uint32_t j = j0; j < j1; j++, xi += ch) {
          acc = MADD(wasm_v128_load(wt + (size_t)j * cn + i), wasm_v128_load(xi), acc);
        }
        wasm_v128_store(yr + i, wasm_f32x4_add(acc, wasm_v128_load(bias + i)));
      }
      for (; i < cn; i++) {
        float acc = 0.0f;
        for (uint32_t j = j0; j < j1; j++) acc += wt[(size_t)j * cn + i] * xr[(size_t)(j - j0) * ch + i];
        yr[i] = acc + bias[i];
      }
    }
  }
}

void depthwise_conv1d_f16(const Cmd *c, const Thread *t) { depthwise(c, t, 1); }
void depthwise_conv1d_f32(const Cmd *c, const Thread *t) { depthwise(c, t, 0); }
