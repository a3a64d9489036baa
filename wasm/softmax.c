// Row softmax and argmax, CPU twins of shaders/softmax.wgsl and argmax.wgsl; threads split rows.

#include "runtime.h"

// softmax in place: x[r] = exp(x[r] − max) / Σ exp(x[r] − max).   p: rows, cols, x_off
// The sum goes by blocks of 256 in four lanes, then over the blocks (like the GPU's tree, it
// never adds a small term to a running total of thousands).
void softmax(const Cmd *c, const Thread *t) {
  const uint32_t cols = c->p[1], c4 = cols & ~3u;
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    float *x = F32(c, 0, c->p[2] + r * cols);
    v128_t mv = wasm_f32x4_splat(NEG_BIG);
    for (uint32_t i = 0; i < c4; i += 4) mv = wasm_f32x4_pmax(mv, wasm_v128_load(x + i));
    mv = wasm_f32x4_pmax(mv, wasm_i32x4_shuffle(mv, mv, 2, 3, 0, 1));
    mv = wasm_f32x4_pmax(mv, wasm_i32x4_shuffle(mv, mv, 1, 0, 3, 2));
    float m = wasm_f32x4_extract_lane(mv, 0);
    for (uint32_t i = c4; i < cols; i++) m = x[i] > m ? x[i] : m;
    const v128_t ms = wasm_f32x4_splat(m);
    float sum = 0;
    for (uint32_t b = 0; b < c4; b += 256) {
      const uint32_t e = b + 256 < c4 ? b + 256 : c4;
      v128_t acc = wasm_f32x4_splat(0);
      for (uint32_t i = b; i < e; i += 4) {
        v128_t v = exp_f32x4(wasm_f32x4_sub(wasm_v128_load(x + i), ms));
        wasm_v128_store(x + i, v);
        acc = wasm_f32x4_add(acc, v);
      }
      sum += hsum(acc);
    }
    for (uint32_t i = c4; i < cols; i++) {
      x[i] = exp_f32(x[i] - m);
      sum += x[i];
    }
    const v128_t inv = wasm_f32x4_splat(1.0f / sum);
    for (uint32_t i = 0; i < c4; i += 4) wasm_v128_store(x + i, wasm_f32x4_mul(wasm_v128_load(x + i), inv));
    for (uint32_t i = c4; i < cols; i++) x[i] *= 1.0f / sum;
  }
}

// argmax: out[r] = the first index of the largest x[r, i].   p: rows, cols, x_off, out_off
void argmax(const Cmd *c, const Thread *t) {
  const uint32_t cols = c->p[1];
  uint32_t *out = U32(c, 0, c->p[3]);
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    const float *x = F32(c, 1, c->p[2] + r * cols);
    uint32_t best = 0;
    for (uint32_t i = 1; i < cols; i++) best = x[i] > x[best] ? i : best;
    out[r] = best;
  }
}
