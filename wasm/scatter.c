// scatter_rows: buf[dst_off + table[i] · width + c] = buf[src_off + i · width + c], the CPU twin
// of shaders/scatter_rows.wgsl (rows of a batched decode step into their KV-cache regions).
// p: rows, width, src_off, dst_off, table_off

#include "runtime.h"

void scatter_rows(const Cmd *c, const Thread *t) {
  const uint32_t width = c->p[1];
  const float *src = F32(c, 0, c->p[2]);
  float *dst = F32(c, 0, c->p[3]);
  const uint32_t *table = U32(c, 1, c->p[4]);
  uint32_t lo, hi;
  share(c->p[0], 1, t, &lo, &hi);
  for (uint32_t i = lo; i < hi; i++) {
    __builtin_memcpy(dst + (size_t)table[i] * width, src + (size_t)i * width, width * sizeof(float));
  }
}
