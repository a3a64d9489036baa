// rvq_encode: the CPU twin of shaders/rvq_encode.wgsl, EnCodec's residual vector quantization
// of latent frames: for q = 0..nq−1, code[q] = argmin_j Σ_c e_qj[c]·(e_qj[c] − 2 r[c]) (the
// squared distance less ‖r‖²), ties to the lowest index, then r −= e_q,code[q]. Each distance
// is summed over c in order with the WGSL's operations, so codes agree exactly.
//
// Threads split the frames. Codebooks are stored transposed (nq, d, bins), so a vector holds
// four neighbouring codewords' values of one dimension; up to four frames scan each codebook
// together, sharing every load of it.

#include "runtime.h"

typedef struct {
  uint32_t frames, d, bins, nq, x_off, codes_off, stride, col;
} Params;

#define FRAMES 4
#define BINS 8
#define NONE 0xffffffffu

// The lowest index of the smallest of dist[0..n), starting from (*best, *index) (the WGSL's
// 3e38 and NONE): strict comparisons in ascending order keep the first of equal distances.
static inline void keep_nearest(const float *dist, uint32_t j0, uint32_t n, float *best, uint32_t *index) {
  for (uint32_t i = 0; i < n; i++) {
    if (dist[i] < *best) {
      *best = dist[i];
      *index = j0 + i;
    }
  }
}

// The nearest codewords of codebook e to residuals r[0..fn) (fn a constant after inlining).
static inline __attribute__((always_inline)) void nearest_n(const Params *p, const float *e,
                                                            float *const r[FRAMES], const uint32_t fn,
                                                            uint32_t *code) {
  const uint32_t d = p->d, bins = p->bins;
  float best[FRAMES];
  for (uint32_t f = 0; f < fn; f++) best[f] = 3.0e38f, code[f] = NONE;
  uint32_t j = 0;
  for (; j + BINS <= bins; j += BINS) {
    v128_t s[FRAMES][2];
    for (uint32_t f = 0; f < fn; f++) s[f][0] = s[f][1] = wasm_f32x4_splat(0.0f);
    const float *ej = e + j;
    for (uint32_t c = 0; c < d; c++, ej += bins) {
      const v128_t e0 = wasm_v128_load(ej), e1 = wasm_v128_load(ej + 4);
      for (uint32_t f = 0; f < fn; f++) {
        const v128_t r2 = wasm_f32x4_splat(2.0f * r[f][c]);
        s[f][0] = wasm_f32x4_add(s[f][0], wasm_f32x4_mul(e0, wasm_f32x4_sub(e0, r2)));
        s[f][1] = wasm_f32x4_add(s[f][1], wasm_f32x4_mul(e1, wasm_f32x4_sub(e1, r2)));
      }
    }
    for (uint32_t f = 0; f < fn; f++) {
      float dist[BINS];
      wasm_v128_store(dist, s[f][0]);
      wasm_v128_store(dist + 4, s[f][1]);
      keep_nearest(dist, j, BINS, &best[f], &code[f]);
    }
  }
  for (; j < bins; j++) {
    for (uint32_t f = 0; f < fn; f++) {
      float s = 0.0f;
      for (uint32_t c = 0; c < d; c++) {
        const float v = e[(size_t)c * bins + j];
        s += v * (v - 2.0f * r[f][c]);
      }
      keep_nearest(&s, j, 1, &best[f], &code[f]);
    }
  }
}

static void nearest(const Params *p, const float *e, float *const r[FRAMES], uint32_t fn, uint32_t *code) {
  switch (fn) {
    case 1: nearest_n(p, e, r, 1, code); break;
    case 2: nearest_n(p, e, r, 2, code); break;
    case 3: nearest_n(p, e, r, 3, code); break;
    default: nearest_n(p, e, r, 4, code); break;
  }
}

void rvq_encode(const Cmd *c, const Thread *t) {
  const Params *p = (const Params *)c->p;
  const uint32_t d = p->d, bins = p->bins;
  uint32_t *codes = U32(c, 0, p->codes_off);
  const float *x = F32(c, 1, p->x_off);
  const float *embed = F32(c, 2, 0);
  // Frames per block: their residuals fit in the scratch memory.
  uint32_t block = d ? t->scratch_bytes / 4 / d : FRAMES;
  if (block > FRAMES) block = FRAMES;
  if (block == 0) return; // d beyond a quarter million: the op refuses d > 1024
  uint32_t lo, hi;
  share(p->frames, block, t, &lo, &hi);
  for (uint32_t f0 = lo; f0 < hi; f0 += block) {
    const uint32_t fn = hi - f0 < block ? hi - f0 : block;
    float *r[FRAMES];
    for (uint32_t f = 0; f < FRAMES; f++) r[f] = (float *)t->scratch + (size_t)(f < fn ? f : 0) * d;
    for (uint32_t f = 0; f < fn; f++) __builtin_memcpy(r[f], x + (size_t)(f0 + f) * d, (size_t)d * 4);
    for (uint32_t q = 0; q < p->nq; q++) {
      const float *e = embed + (size_t)q * d * bins;
      uint32_t code[FRAMES];
      nearest(p, e, r, fn, code);
      for (uint32_t f = 0; f < fn; f++) {
        codes[(size_t)q * p->stride + p->col + f0 + f] = code[f];
        if (code[f] == NONE) continue; // no distance below 3e38 (NaNs): nothing to subtract
        for (uint32_t i = 0; i < d; i++) r[f][i] -= e[(size_t)i * bins + code[f]];
      }
    }
  }
}
