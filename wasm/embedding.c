// Embedding kernels, CPU twins of shaders/embedding_sum.wgsl, embedding_sum_q8_0.wgsl and
// feed_ids.wgsl.

#include "dot.h"

#define EMPTY 0xffffffffu

// embedding_sum: out[r] (+)= Σ_t table[ids[r · terms + t]] (empty terms skipped).
// p: rows, d, terms, accumulate, out_off, ids_off
static inline __attribute__((always_inline)) void embedding_sum(const Cmd *c, const Thread *t, int half) {
  const uint32_t d = c->p[1], terms = c->p[2], accumulate = c->p[3];
  const uint32_t *ids = U32(c, 1, c->p[5]);
  const void *table = (const void *)(uintptr_t)c->b[2];
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    float *out = F32(c, 0, c->p[4] + r * d);
    if (!accumulate) __builtin_memset(out, 0, d * sizeof(float));
    for (uint32_t k = 0; k < terms; k++) {
      uint32_t id = ids[r * terms + k];
      if (id == EMPTY) continue;
      for (uint32_t i = 0; i < d; i++) out[i] += weight_at(table, (size_t)id * d + i, half);
    }
  }
}

void embedding_sum_f16(const Cmd *c, const Thread *t) { embedding_sum(c, t, 1); }
void embedding_sum_f32(const Cmd *c, const Thread *t) { embedding_sum(c, t, 0); }

// feed_ids: ids[t · ids_terms + k] = base + k · stride + tokens[k · tok_stride + t].
// p: frames, terms, ids_terms, ids_off, base, stride, tok_off, tok_stride
void feed_ids(const Cmd *c, const Thread *t) {
  if (t->id != 0) return;
  const uint32_t frames = c->p[0], terms = c->p[1], ids_terms = c->p[2];
  const uint32_t base = c->p[4], stride = c->p[5], tok_stride = c->p[7];
  uint32_t *ids = U32(c, 0, c->p[3]);
  const uint32_t *tokens = U32(c, 1, c->p[6]);
  for (uint32_t f = 0; f < frames; f++) {
    for (uint32_t k = 0; k < terms; k++) {
      ids[f * ids_terms + k] = base + k * stride + tokens[k * tok_stride + f];
    }
  }
}

// embedding_sum_q8_0: the same sums over a q8_0 table (a row is d/64 pairs of 17 words: the two
// f16 scales, then 2 × 32 int8); each value d · q is exact, so the sums are the float kernel's.
void embedding_sum_q8_0(const Cmd *c, const Thread *t) {
  const uint32_t d = c->p[1], terms = c->p[2], accumulate = c->p[3];
  const uint32_t *ids = U32(c, 1, c->p[5]);
  const uint32_t *table = (const uint32_t *)(uintptr_t)c->b[2];
  const uint32_t row_words = d / 64 * 17;
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    float *out = F32(c, 0, c->p[4] + r * d);
    if (!accumulate) __builtin_memset(out, 0, d * sizeof(float));
    for (uint32_t k = 0; k < terms; k++) {
      uint32_t id = ids[r * terms + k];
      if (id == EMPTY) continue;
      const uint32_t *row = table + (size_t)id * row_words;
      for (uint32_t pair = 0; pair < d / 64; pair++) {
        const uint32_t *pw = row + pair * 17;
        const int8_t *q = (const int8_t *)(pw + 1);
        const float d0 = half_to_float((uint16_t)(pw[0] & 0xffff)), d1 = half_to_float((uint16_t)(pw[0] >> 16));
        float *o = out + pair * 64;
        for (uint32_t i = 0; i < 32; i++) o[i] += d0 * (float)q[i];
        for (uint32_t i = 0; i < 32; i++) o[32 + i] += d1 * (float)q[32 + i];
      }
    }
  }
}
