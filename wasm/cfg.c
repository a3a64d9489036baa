// Classifier-free guidance, the CPU twins of shaders/cfg_stats.wgsl and cfg_apply.wgsl (read
// their headers): the same bindings, parameters and results.
//
// cfg_stats keeps the WGSL's summation order: 256 lanes, lane j summing elements j, j + 256, …
// with compensation, then the lanes folded as the workgroup's tree does. Threads split the lanes
// (each reads a contiguous slice of every block of 256) and meet at barriers to share the lane
// sums, which live in static memory (shared by the threads of the pool).

#include "runtime.h"

#define WG 256

typedef struct {
  uint32_t n, c_off, u_off;
  float strength, rescale, keep;
} StatsParams;

typedef struct {
  uint32_t n, c_off, u_off;
  float strength;
} ApplyParams;

static float mean_lanes[2][WG], square_lanes[2][WG];

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

// Lanes [lo, hi) (a multiple of 4 wide) of one pass: compensated sums of c and of the guided
// z = u + (c − u) · w, or (squares) of their squared deviations from mean_c and mean_z. Writes
// the lane sums into out_c, out_z.
static inline __attribute__((always_inline)) void lanes_pass(const float *c, const float *u, uint32_t n,
                                                             float w, uint32_t lo, uint32_t hi,
                                                             int squares, float mean_c, float mean_z,
                                                             float *acc, float *out_c, float *out_z) {
  const uint32_t width = hi - lo;
  float *sc = acc, *cc = acc + width, *sz = acc + 2 * width, *cz = acc + 3 * width;
  __builtin_memset(acc, 0, 4 * width * sizeof(float));
  const v128_t wv = wasm_f32x4_splat(w), mc = wasm_f32x4_splat(mean_c), mz = wasm_f32x4_splat(mean_z);
  const uint32_t full = n / WG * WG;
  for (uint32_t b = 0; b < full; b += WG) {
    for (uint32_t j = 0; j < width; j += 4) {
      v128_t cv = wasm_v128_load(c + b + lo + j), uv = wasm_v128_load(u + b + lo + j);
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
  }
  for (uint32_t j = 0; j < width && full + lo + j < n; j++) {
    const uint32_t i = full + lo + j;
    float cv = c[i], zv = u[i] + (c[i] - u[i]) * w;
    if (squares) {
      cv = (cv - mean_c) * (cv - mean_c);
      zv = (zv - mean_z) * (zv - mean_z);
    }
    kahan(&sc[j], &cc[j], cv);
    kahan(&sz[j], &cz[j], zv);
  }
  __builtin_memcpy(out_c + lo, sc, width * sizeof(float));
  __builtin_memcpy(out_z + lo, sz, width * sizeof(float));
}

// cfg_stats: stats = [mean(c), std(c), mean(z), std(z), factor] over the whole slice.
// p: n, c_off, u_off, strength, rescale, keep
void cfg_stats(const Cmd *cmd, const Thread *t) {
  const StatsParams *p = (const StatsParams *)cmd->p;
  const float *c = F32(cmd, 1, p->c_off), *u = F32(cmd, 2, p->u_off);
  float *acc = (float *)t->scratch;
  uint32_t lo, hi;
  share(WG, 4, t, &lo, &hi);
  lanes_pass(c, u, p->n, p->strength, lo, hi, 0, 0, 0, acc, mean_lanes[0], mean_lanes[1]);
  barrier(t);
  const float mean_c = fold(mean_lanes[0]) / (float)p->n;
  const float mean_z = fold(mean_lanes[1]) / (float)p->n;
  lanes_pass(c, u, p->n, p->strength, lo, hi, 1, mean_c, mean_z, acc, square_lanes[0], square_lanes[1]);
  barrier(t);
  if (t->id != 0) return;
  const float std_c = __builtin_sqrtf(fold(square_lanes[0]) / (float)(p->n - 1));
  const float std_z = __builtin_sqrtf(fold(square_lanes[1]) / (float)(p->n - 1));
  float *stats = F32(cmd, 0, 0);
  stats[0] = mean_c;
  stats[1] = std_c;
  stats[2] = mean_z;
  stats[3] = std_z;
  stats[4] = p->rescale > 0.0f ? p->rescale * (std_c / std_z) + p->keep : 1.0f;
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
