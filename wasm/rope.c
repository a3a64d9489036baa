// rope: rotate-half rotary embedding in place, the CPU twin of shaders/rope.wgsl: for j < half,
// (x_j, x_{j+half}) ← (x_j c − x_{j+half} s, x_{j+half} c + x_j s), c, s from the table at the
// row's position (with `inverse`, −s: the rotation by −angle, the gradient of the rotation).
// p: s, heads, head_dim, x_off, pos_off, row_stride, inverse

#include "runtime.h"

void rope(const Cmd *c, const Thread *t) {
  const uint32_t heads = c->p[1], hd = c->p[2], pairs = hd / 2, stride = c->p[5];
  const float sign = c->p[6] ? -1.0f : 1.0f;
  const uint32_t *pos = U32(c, 1, c->p[4]);
  const float *table = F32(c, 2, 0);
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    const float *cs = table + 2 * (size_t)pos[r] * pairs;
    for (uint32_t h = 0; h < heads; h++) {
      float *x = F32(c, 0, c->p[3] + r * stride + h * hd);
      for (uint32_t j = 0; j < pairs; j++) {
        float a = x[j], b = x[j + pairs];
        const float co = cs[2 * j], si = sign * cs[2 * j + 1];
        x[j] = a * co - b * si;
        x[j + pairs] = b * co + a * si;
      }
    }
  }
}

// split_qkv: stacked Q|K|V rows into q ← RoPE(Q), k ← RoPE(K), v ← V, the CPU twin of
// shaders/split_qkv.wgsl (the rotation of `rope` above, so the same bits as rope on the parts).
// p: s, heads, head_dim, qkv_off, q_off, k_off, v_off, pos_off
void split_qkv(const Cmd *c, const Thread *t) {
  const uint32_t heads = c->p[1], hd = c->p[2], pairs = hd / 2, d = heads * hd;
  const uint32_t *pos = U32(c, 4, c->p[7]);
  const float *table = F32(c, 5, 0);
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) {
    const float *cs = table + 2 * (size_t)pos[r] * pairs;
    const float *src = F32(c, 3, c->p[3] + (size_t)r * 3 * d);
    float *q = F32(c, 0, c->p[4] + (size_t)r * d), *k = F32(c, 1, c->p[5] + (size_t)r * d);
    for (uint32_t h = 0; h < heads; h++) {
      for (uint32_t part = 0; part < 2; part++) {
        const float *x = src + part * d + h * hd;
        float *y = (part ? k : q) + h * hd;
        for (uint32_t j = 0; j < pairs; j++) {
          float a = x[j], b = x[j + pairs];
          y[j] = a * cs[2 * j] - b * cs[2 * j + 1];
          y[j + pairs] = b * cs[2 * j] + a * cs[2 * j + 1];
        }
      }
    }
    __builtin_memcpy(F32(c, 2, c->p[6] + (size_t)r * d), src + 2 * d, d * sizeof(float));
  }
}
