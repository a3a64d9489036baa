// Classifier-free guidance, the CPU twins of shaders/cfg_stats.wgsl and cfg_apply.wgsl (read
// their headers): the same bindings, parameters and results.
//
// cfg_stats keeps the WGSL's summation order: in each workgroup's chunk, 256 lanes, lane j
// summing elements j, j + 256, … with compensation, then the lanes folded as the workgroup's tree
// does, and the chunks' sums folded likewise. Threads split the chunks of a phase.

#include "runtime.h"

#define WG 256
#define PARTIALS 8

typedef struct {
  uint32_t n, c_off, u_off;
  float strength, rescale, keep;
  uint32_t phase, groups, chunk;
} StatsParams;

typedef struct {
  uint32_t n, c_off, u_off;
  float strength;
} ApplyParams;

// Folds 256 lane sums as the WGSL's reduce does: lane j += lane j + s for s = 128, 64, …, 1.
static float fold(const float *in) {
  float lanes[WG];
  __builtin_memcpy(lanes, in, sizeof(lanes));
  for (uint32_t s = WG / 2; s >= 4; s >>= 1) {
    for (uint32_t j = 0; j < s; j += 4) {
      wasm_v128_store(lanes + j, wasm_f32x4_add(wasm_v128_load(lanes + j), wasm_v128_load(lanes + j + s)));
    }
  }
  lanes[0] += lanes[2];
  lanes[1] += lanes[3];
  return lanes[0] + lanes[1];
}

// Folds `groups` (<= 256) partial sums as lanes, the missing lanes 0 (the WGSL's fold_partials).
static float fold_partials(const float *partials, uint32_t groups) {
  float lanes[WG];
  __builtin_memset(lanes, 0, sizeof(lanes));
  __builtin_memcpy(lanes, partials, groups * sizeof(float));
  return fold(lanes);
}

// Kahan step (the WGSL's kahan_add) on four lanes.
static inline void kahan4(v128_t *sum, v128_t *carry, v128_t x) {
  v128_t y = wasm_f32x4_sub(x, *carry);
  v128_t t = wasm_f32x4_add(*sum, y);
  *carry = wasm_f32x4_sub(wasm_f32x4_sub(t, *sum), y);
  *sum = t;
}

static inline void kahan(float *sum, float *carry, float x) {
  float y = x - *carry;
  float t = *sum + y;
  *carry = (t - *sum) - y;
  *sum = t;
}

// One workgroup's chunk [first, end): the lanes' compensated sums of c and of the guided
// z = u + (c − u) · w, or (squares) of their squared deviations from mean_c and mean_z, folded
// into *out_c, *out_z. acc: 4 · 256 floats of scratch.
static void chunk_sums(const float *c, const float *u, uint32_t first, uint32_t end, float w,
                       int squares, float mean_c, float mean_z, float *acc, float *out_c,
                       float *out_z) {
  float *sc = acc, *cc = acc + WG, *sz = acc + 2 * WG, *cz = acc + 3 * WG;
  __builtin_memset(acc, 0, 4 * WG * sizeof(float));
  const v128_t wv = wasm_f32x4_splat(w), mc = wasm_f32x4_splat(mean_c), mz = wasm_f32x4_splat(mean_z);
  for (uint32_t b = first; b < end; b += WG) {
    const uint32_t width = end - b < WG ? end - b : WG;
    uint32_t j = 0;
    for (; j + 4 <= width; j += 4) {
      v128_t cv = wasm_v128_load(c + b + j), uv = wasm_v128_load(u + b + j);
      v128_t zv = wasm_f32x4_add(uv, wasm_f32x4_mul(wasm_f32x4_sub(cv, uv), wv));
      if (squares) {
        cv = wasm_f32x4_sub(cv, mc);
        zv = wasm_f32x4_sub(zv, mz);
        cv = wasm_f32x4_mul(cv, cv);
        zv = wasm_f32x4_mul(zv, zv);
      }
      v128_t s = wasm_v128_load(sc + j), k = wasm_v128_load(cc + j);
      kahan4(&s, &k, cv);
      wasm_v128_store(sc + j, s);
      wasm_v128_store(cc + j, k);
      s = wasm_v128_load(sz + j);
      k = wasm_v128_load(cz + j);
      kahan4(&s, &k, zv);
      wasm_v128_store(sz + j, s);
      wasm_v128_store(cz + j, k);
    }
    for (; j < width; j++) {
      const uint32_t i = b + j;
      float cv = c[i], zv = u[i] + (c[i] - u[i]) * w;
      if (squares) {
        cv = (cv - mean_c) * (cv - mean_c);
        zv = (zv - mean_z) * (zv - mean_z);
      }
      kahan(&sc[j], &cc[j], cv);
      kahan(&sz[j], &cz[j], zv);
    }
  }
  *out_c = fold(sc);
  *out_z = fold(sz);
}

// cfg_stats: one phase of stats = [mean(c), std(c), mean(z), std(z), factor] over the whole
// slice, partial sums from stats[8] on.   p: n, c_off, u_off, strength, rescale, keep, phase,
// groups, chunk
void cfg_stats(const Cmd *cmd, const Thread *t) {
  const StatsParams *p = (const StatsParams *)cmd->p;
  const float *c = F32(cmd, 1, p->c_off), *u = F32(cmd, 2, p->u_off);
  float *stats = F32(cmd, 0, 0);
  const uint32_t groups = p->groups;
  if (p->phase == 2) {
    if (t->id != 0) return;
    const float *squares = stats + PARTIALS + 2 * groups;
    const float std_c = __builtin_sqrtf(fold_partials(squares, groups) / (float)(p->n - 1));
    const float std_z = __builtin_sqrtf(fold_partials(squares + groups, groups) / (float)(p->n - 1));
    stats[1] = std_c;
    stats[3] = std_z;
    stats[4] = p->rescale > 0.0f ? p->rescale * (std_c / std_z) + p->keep : 1.0f;
    return;
  }
  float mean_c = 0.0f, mean_z = 0.0f;
  if (p->phase == 1) {
    mean_c = fold_partials(stats + PARTIALS, groups) / (float)p->n;
    mean_z = fold_partials(stats + PARTIALS + groups, groups) / (float)p->n;
  }
  float *out = stats + PARTIALS + 2 * p->phase * groups;
  uint32_t lo, hi;
  share(groups, 1, t, &lo, &hi);
  for (uint32_t g = lo; g < hi; g++) {
    const uint32_t first = g * p->chunk, end = p->n < first + p->chunk ? p->n : first + p->chunk;
    chunk_sums(c, u, first, end, p->strength, p->phase == 1, mean_c, mean_z, (float *)t->scratch,
               &out[g], &out[groups + g]);
  }
  if (p->phase == 1 && lo == 0 && hi > 0) {
    stats[0] = mean_c;
    stats[2] = mean_z;
  }
}

// cfg_apply: c[i] = (u[i] + (c[i] − u[i]) · strength) · stats[4], in place.
// p: n, c_off, u_off, strength
void cfg_apply(const Cmd *cmd, const Thread *t) {
  const ApplyParams *p = (const ApplyParams *)cmd->p;
  float *c = F32(cmd, 0, p->c_off);
  const float *u = F32(cmd, 1, p->u_off);
  const float factor = F32(cmd, 2, 0)[4];
  const v128_t wv = wasm_f32x4_splat(p->strength), fv = wasm_f32x4_splat(factor);
  uint32_t lo, hi;
  share(p->n, 1024, t, &lo, &hi);
  uint32_t i = lo;
  for (; i + 4 <= hi; i += 4) {
    v128_t cv = wasm_v128_load(c + i), uv = wasm_v128_load(u + i);
    wasm_v128_store(c + i, wasm_f32x4_mul(wasm_f32x4_add(uv, wasm_f32x4_mul(wasm_f32x4_sub(cv, uv), wv)), fv));
  }
  for (; i < hi; i++) c[i] = (u[i] + (c[i] - u[i]) * p->strength) * factor;
}
