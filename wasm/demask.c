// NAR-len's masking steps, the CPU twins of shaders/demask_select.wgsl and demask_update.wgsl
// (read their headers): the same bindings, parameters and results. Threads split the positions
// (as the WGSL's workgroups do: each rank is a count of its own).

#include "runtime.h"

typedef struct {
  uint32_t length, count, mask, tok_off, masked_off, score_off;
} SelectParams;

typedef struct {
  uint32_t length, masked_only, tok_off, score_off, sampled_off, masked_off;
} UpdateParams;

// #{j in [lo, hi) : s[j] < v} (or ≤ v with `or_equal`), four at a time.
static uint32_t count_below(const float *s, uint32_t lo, uint32_t hi, float v, int or_equal) {
  const v128_t vv = wasm_f32x4_splat(v);
  v128_t n = wasm_i32x4_splat(0);
  uint32_t j = lo;
  for (; j + 4 <= hi; j += 4) {
    v128_t o = wasm_v128_load(s + j);
    n = wasm_i32x4_sub(n, or_equal ? wasm_f32x4_le(o, vv) : wasm_f32x4_lt(o, vv));
  }
  uint32_t total = (uint32_t)(wasm_i32x4_extract_lane(n, 0) + wasm_i32x4_extract_lane(n, 1) +
                              wasm_i32x4_extract_lane(n, 2) + wasm_i32x4_extract_lane(n, 3));
  for (; j < hi; j++) total += or_equal ? s[j] <= v : s[j] < v;
  return total;
}

// demask_select: the `count` positions of lowest score (ties to the lower index) get the mask
// token; masked[i] = (tokens[i] == mask). rank(i) = #{j : s_j < s_i, or s_j == s_i and j < i}
// = #{j < i : s_j ≤ s_i} + #{j > i : s_j < s_i} (a NaN score compares false, as on the GPU).
// p: length, count, mask, tok_off, masked_off, score_off
void demask_select(const Cmd *c, const Thread *t) {
  const SelectParams *p = (const SelectParams *)c->p;
  uint32_t *tokens = U32(c, 0, p->tok_off), *masked = U32(c, 1, p->masked_off);
  const float *scores = F32(c, 2, p->score_off);
  uint32_t lo, hi;
  share(p->length, 16, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) {
    const float s = scores[i];
    const uint32_t rank = count_below(scores, 0, i, s, 1) + count_below(scores, i + 1, p->length, s, 0);
    if (rank < p->count) tokens[i] = p->mask;
    masked[i] = tokens[i] == p->mask;
  }
}

// demask_update: masked positions take the sampled token; with `masked_only`, unmasked positions
// get score 1.   p: length, masked_only, tok_off, score_off, sampled_off, masked_off
void demask_update(const Cmd *c, const Thread *t) {
  const UpdateParams *p = (const UpdateParams *)c->p;
  uint32_t *tokens = U32(c, 0, p->tok_off);
  float *scores = F32(c, 1, p->score_off);
  const uint32_t *sampled = U32(c, 2, p->sampled_off), *masked = U32(c, 3, p->masked_off);
  uint32_t lo, hi;
  share(p->length, 1024, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) {
    if (masked[i] != 0) tokens[i] = sampled[i];
    else if (p->masked_only != 0) scores[i] = 1.0f;
  }
}
