// lora_merge, the CPU twin of shaders/lora_merge.wgsl (same bindings and parameters):
// w[k] = keep · w[k] + scale · Δ[k], Δ = B · A read in w's element order (rank > 0) or the dense
// tensor in b (rank 0), computed in f32 with the same summation order, stored in the weight type.

#include "dot.h"

#define GRAIN 1024

// float → half, rounding to nearest even (what WGSL's f16() does on the GPUs we run on);
// overflow gives ±infinity, NaN stays NaN.
static inline uint16_t half_from_float(float f) {
  const uint32_t x = bits_from_f32(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  const uint32_t mag = x & 0x7fffffff;
  if (mag > 0x7f800000) return sign | 0x7e00;
  if (mag >= 0x47800000) return sign | 0x7c00; // ≥ 65536 (65520 and up round to it below)
  if (mag < 0x38800000) {
    // Below the smallest normal half (2^-14): a multiple of 2^-24, rounded to nearest even by
    // the float addition (the value times 2^24 is below 2^10, so adding 2^23 leaves integers).
    const float v = f32_from_bits(mag) * 0x1p24f;
    return sign | (uint16_t)(uint32_t)((v + 0x1p23f) - 0x1p23f);
  }
  const uint32_t rounded = mag + 0xfff + ((mag >> 13) & 1);
  return sign | (uint16_t)((rounded - 0x38000000) >> 13);
}

// p: n, cols, rank, w_off, a_off, b_off, keep (f32), scale (f32)
static inline __attribute__((always_inline)) void lora_merge(const Cmd *c, const Thread *t, int half) {
  const uint32_t n = c->p[0], cols = c->p[1], rank = c->p[2], w_off = c->p[3];
  const float *a = F32(c, 1, c->p[4]);
  const float *b = F32(c, 2, c->p[5]);
  const float keep = param_f32(c, 6), scale = param_f32(c, 7);
  uint32_t lo, hi;
  share(n, GRAIN, t, &lo, &hi);
  for (uint32_t k = lo; k < hi; k++) {
    float delta = 0.0f;
    if (rank == 0) {
      delta = b[k];
    } else {
      const float *brow = b + (size_t)(k / cols) * rank;
      const uint32_t col = k % cols;
      for (uint32_t j = 0; j < rank; j++) delta += brow[j] * a[(size_t)j * cols + col];
    }
    if (half) {
      uint16_t *w = F16(c, 0, w_off);
      w[k] = half_from_float(keep * half_to_float(w[k]) + scale * delta);
    } else {
      float *w = F32(c, 0, w_off);
      w[k] = keep * w[k] + scale * delta;
    }
  }
}

void lora_merge_f16(const Cmd *c, const Thread *t) { lora_merge(c, t, 1); }
void lora_merge_f32(const Cmd *c, const Thread *t) { lora_merge(c, t, 0); }
