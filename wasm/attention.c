// attention: out_i = softmax_j(scale · q_i · k_j) v_j over keys j < kv_len (causal: j ≤ q_start
// + i; with spans_on, keys [spans[2i], spans[2i] + spans[2i + 1])), the CPU twin of
// shaders/attention.wgsl (same bindings and parameters). Work items are
// (head, block of queries), so a block reuses the head's keys and values from cache; each query
// scores its keys into scratch a chunk at a time (online softmax, as on the GPU) and sums the
// values.
// p: s, kv_len, q_start, heads, head_dim, causal, scale, q_off, q_stride, k_off, v_off,
//    kv_stride, o_off, o_stride, spans_on, spans_off

#include "runtime.h"

#define QUERY_BLOCK 16
#define KEY_CHUNK 4096

typedef struct {
  uint32_t s, kv_len, q_start, heads, head_dim, causal;
  float scale;
  uint32_t q_off, q_stride, k_off, v_off, kv_stride, o_off, o_stride, spans_on, spans_off;
} Params;

static inline float dot(const float *a, const float *b, uint32_t n) {
  v128_t acc = wasm_f32x4_splat(0);
  uint32_t i = 0;
  for (; i + 4 <= n; i += 4) acc = MADD(wasm_v128_load(a + i), wasm_v128_load(b + i), acc);
  float s = hsum(acc);
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

void attention(const Cmd *c, const Thread *t) {
  const Params *p = (const Params *)c->p;
  const uint32_t hd = p->head_dim, blocks = (p->s + QUERY_BLOCK - 1) / QUERY_BLOCK;
  const float *q = F32(c, 1, p->q_off), *k0 = F32(c, 2, p->k_off), *v0 = F32(c, 3, p->v_off);
  const uint32_t *spans = U32(c, 4, p->spans_off);
  float *out = F32(c, 0, p->o_off);
  float *qs = (float *)t->scratch, *acc = qs + 256, *scores = acc + 256;
  uint32_t lo, hi;
  share(p->heads * blocks, 1, t, &lo, &hi);
  for (uint32_t item = lo; item < hi; item++) {
    const uint32_t h = item / blocks, i0 = (item % blocks) * QUERY_BLOCK;
    const uint32_t i1 = i0 + QUERY_BLOCK < p->s ? i0 + QUERY_BLOCK : p->s;
    for (uint32_t i = i0; i < i1; i++) {
      uint32_t keys = p->kv_len, first = 0;
      if (p->spans_on) {
        first = spans[2 * i];
        keys = spans[2 * i + 1];
      } else if (p->causal && p->q_start + i + 1 < keys) {
        keys = p->q_start + i + 1;
      }
      const float *k = k0 + (size_t)first * p->kv_stride, *v = v0 + (size_t)first * p->kv_stride;
      const float *qi = q + (size_t)i * p->q_stride + h * hd;
      for (uint32_t d = 0; d < hd; d++) {
        qs[d] = qi[d] * p->scale;
        acc[d] = 0;
      }
      // Online softmax over chunks of keys: running max m and sum l, acc rescaled when m rises.
      float m = NEG_BIG, l = 0;
      for (uint32_t j0 = 0; j0 < keys; j0 += KEY_CHUNK) {
        const uint32_t n = keys - j0 < KEY_CHUNK ? keys - j0 : KEY_CHUNK;
        float cm = m;
        for (uint32_t j = 0; j < n; j++) {
          float s = dot(qs, k + (size_t)(j0 + j) * p->kv_stride + h * hd, hd);
          scores[j] = s;
          cm = s > cm ? s : cm;
        }
        const float rescale = exp_f32(m - cm);
        l *= rescale;
        for (uint32_t d = 0; d < hd; d++) acc[d] *= rescale;
        m = cm;
        const v128_t mv = wasm_f32x4_splat(m);
        v128_t lv = wasm_f32x4_splat(0);
        uint32_t j = 0;
        for (; j + 4 <= n; j += 4) {
          v128_t e = exp_f32x4(wasm_f32x4_sub(wasm_v128_load(scores + j), mv));
          wasm_v128_store(scores + j, e);
          lv = wasm_f32x4_add(lv, e);
        }
        l += hsum(lv);
        for (; j < n; j++) {
          scores[j] = exp_f32(scores[j] - m);
          l += scores[j];
        }
        for (j = 0; j < n; j++) {
          const float *vj = v + (size_t)(j0 + j) * p->kv_stride + h * hd;
          const v128_t pj = wasm_f32x4_splat(scores[j]);
          uint32_t d = 0;
          for (; d + 4 <= hd; d += 4) {
            wasm_v128_store(acc + d, MADD(pj, wasm_v128_load(vj + d), wasm_v128_load(acc + d)));
          }
          for (; d < hd; d++) acc[d] += scores[j] * vj[d];
        }
      }
      float *oi = out + (size_t)i * p->o_stride + h * hd;
      const float inv = 1.0f / l;
      for (uint32_t d = 0; d < hd; d++) oi[d] = acc[d] * inv;
    }
  }
}
