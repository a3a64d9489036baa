// cross_entropy: the CPU twin of shaders/cross_entropy.wgsl (same bindings and parameters), the
// fused softmax cross-entropy forward and backward in place over rows of logits; threads split the
// rows.   p: rows, v, x_off, stats_off, labels_off, weights_off, top_k

#include "runtime.h"

void cross_entropy(const Cmd *c, const Thread *t) {
  const uint32_t v = c->p[1], v4 = v & ~3u, top_k = c->p[6];
  float *stats = F32(c, 1, c->p[3]);
  const uint32_t *labels = U32(c, 2, c->p[4]);
  const float *weights = F32(c, 3, c->p[5]);
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    float *x = F32(c, 0, c->p[2] + (size_t)r * v);
    const uint32_t label = labels[r];
    if (label >= v) {
      __builtin_memset(x, 0, (size_t)v * 4);
      stats[2 * r] = stats[2 * r + 1] = 0.0f;
      continue;
    }
    const float target = x[label];
    v128_t mv = wasm_f32x4_splat(NEG_BIG);
    for (uint32_t i = 0; i < v4; i += 4) mv = wasm_f32x4_pmax(mv, wasm_v128_load(x + i));
    mv = wasm_f32x4_pmax(mv, wasm_i32x4_shuffle(mv, mv, 2, 3, 0, 1));
    mv = wasm_f32x4_pmax(mv, wasm_i32x4_shuffle(mv, mv, 1, 0, 3, 2));
    float m = wasm_f32x4_extract_lane(mv, 0);
    for (uint32_t i = v4; i < v; i++) m = x[i] > m ? x[i] : m;
    // Σ exp(x − m) in four lanes (then the tail), and the logits above the target's.
    const v128_t ms = wasm_f32x4_splat(m), ts = wasm_f32x4_splat(target);
    v128_t acc = wasm_f32x4_splat(0), above = wasm_i32x4_splat(0);
    for (uint32_t i = 0; i < v4; i += 4) {
      const v128_t xi = wasm_v128_load(x + i);
      acc = wasm_f32x4_add(acc, exp_f32x4_inline(wasm_f32x4_sub(xi, ms)));
      above = wasm_i32x4_sub(above, wasm_f32x4_gt(xi, ts));
    }
    float sum = hsum(acc);
    uint32_t count = (uint32_t)(wasm_i32x4_extract_lane(above, 0) + wasm_i32x4_extract_lane(above, 1) +
                                wasm_i32x4_extract_lane(above, 2) + wasm_i32x4_extract_lane(above, 3));
    for (uint32_t i = v4; i < v; i++) {
      sum += exp_f32(x[i] - m);
      count += x[i] > target;
    }
    const float w = weights[r], inv = 1.0f / sum;
    const v128_t ws = wasm_f32x4_splat(w), invs = wasm_f32x4_splat(inv);
    for (uint32_t i = 0; i < v4; i += 4) {
      const v128_t p = wasm_f32x4_mul(exp_f32x4_inline(wasm_f32x4_sub(wasm_v128_load(x + i), ms)), invs);
      wasm_v128_store(x + i, wasm_f32x4_mul(ws, p));
    }
    for (uint32_t i = v4; i < v; i++) x[i] = w * (exp_f32(x[i] - m) * inv);
    x[label] = w * (exp_f32(target - m) * inv - 1.0f);
    stats[2 * r] = w * (m + log_f32(sum) - target);
    stats[2 * r + 1] = count < top_k ? 1.0f : 0.0f;
  }
}
