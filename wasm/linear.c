// linear: y[m, n] = Σ_k x[m, k] · w[n, k] (+ b[n]) (+ y[m, n] when accumulating), the CPU twin of
// shaders/gemv.wgsl, gemv_vec4.wgsl and gemm.wgsl (same bindings and parameters; one kernel here
// serves all three). Threads split the weight rows n, so each converts and reads only its own.
//
// Few rows (decode steps): each weight row is read once and dotted with every row of x (dot.h).
// Many rows: the weights are converted to f32 a block of two rows × 256 columns at a time, then
// every row of x meets them in 4 × 2 register tiles; partial sums over the column blocks are
// kept in y.

#include "dot.h"

typedef struct {
  uint32_t m, n, k, x_off, y_off, w_off, b_off, has_bias, accumulate;
} Params;

#define KB 256

// y[row, n] = v (+ bias) (+ y's old value), as asked.
static inline void store(const Params *p, float *y, const void *b, int half, uint32_t row,
                         uint32_t n, float v) {
  if (p->has_bias) v += weight_at(b, p->b_off + n, half);
  float *o = y + (size_t)row * p->n + n;
  *o = p->accumulate ? *o + v : v;
}

static inline float dot_f32(const float *x, const float *w, uint32_t len) {
  v128_t a = wasm_f32x4_splat(0);
  uint32_t i = 0;
  for (; i + 4 <= len; i += 4) {
    a = wasm_f32x4_add(a, wasm_f32x4_mul(wasm_v128_load(x + i), wasm_v128_load(w + i)));
  }
  float s = hsum(a);
  for (; i < len; i++) s += x[i] * w[i];
  return s;
}

// Weight rows [lo, hi) against many rows of x.
static inline __attribute__((always_inline)) void many_rows(const Params *p, float *y, const float *x,
                                                            const void *w, const void *b, int half,
                                                            uint32_t lo, uint32_t hi, float *panel) {
  const uint32_t m = p->m, k = p->k, nn = p->n;
  for (uint32_t n = lo; n < hi; n += 2) {
    const uint32_t nr = hi - n >= 2 ? 2 : 1;
    for (uint32_t k0 = 0; k0 < k; k0 += KB) {
      const uint32_t len = k - k0 < KB ? k - k0 : KB;
      const int first = k0 == 0;
      // This block of both weight rows as f32 (a missing second row is zeros).
      for (uint32_t j = 0; j < 2; j++) {
        float *dst = panel + j * KB;
        uint32_t i = 0;
        if (j < nr) {
          size_t wb = p->w_off + (size_t)(n + j) * k + k0;
          for (; i + 8 <= len; i += 8) {
            v128_t wl, wh;
            load8(w, wb + i, half, &wl, &wh);
            wasm_v128_store(dst + i, wl);
            wasm_v128_store(dst + i + 4, wh);
          }
          for (; i < len; i++) dst[i] = weight_at(w, wb + i, half);
        }
        for (; i < KB; i++) dst[i] = 0;
      }
      const float *w0 = panel, *w1 = panel + KB;
      const uint32_t len4 = len & ~3u;
      uint32_t r = 0;
      for (; r + 4 <= m; r += 4) {
        const float *x0 = x + (size_t)r * k + k0, *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
        v128_t a00 = wasm_f32x4_splat(0), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
               a30 = a00, a31 = a00;
        for (uint32_t i = 0; i < len4; i += 4) {
          v128_t v0 = wasm_v128_load(w0 + i), v1 = wasm_v128_load(w1 + i), u;
          u = wasm_v128_load(x0 + i);
          a00 = wasm_f32x4_add(a00, wasm_f32x4_mul(u, v0));
          a01 = wasm_f32x4_add(a01, wasm_f32x4_mul(u, v1));
          u = wasm_v128_load(x1 + i);
          a10 = wasm_f32x4_add(a10, wasm_f32x4_mul(u, v0));
          a11 = wasm_f32x4_add(a11, wasm_f32x4_mul(u, v1));
          u = wasm_v128_load(x2 + i);
          a20 = wasm_f32x4_add(a20, wasm_f32x4_mul(u, v0));
          a21 = wasm_f32x4_add(a21, wasm_f32x4_mul(u, v1));
          u = wasm_v128_load(x3 + i);
          a30 = wasm_f32x4_add(a30, wasm_f32x4_mul(u, v0));
          a31 = wasm_f32x4_add(a31, wasm_f32x4_mul(u, v1));
        }
        const float sums[8] = {hsum(a00), hsum(a01), hsum(a10), hsum(a11),
                               hsum(a20), hsum(a21), hsum(a30), hsum(a31)};
        for (uint32_t q = 0; q < 4; q++) {
          const float *xq = x + (size_t)(r + q) * k + k0;
          for (uint32_t j = 0; j < nr; j++) {
            float v = sums[2 * q + j];
            for (uint32_t i = len4; i < len; i++) v += xq[i] * panel[j * KB + i];
            if (first) store(p, y, b, half, r + q, n + j, v);
            else y[(size_t)(r + q) * nn + n + j] += v;
          }
        }
      }
      for (; r < m; r++) {
        const float *xr = x + (size_t)r * k + k0;
        for (uint32_t j = 0; j < nr; j++) {
          float v = dot_f32(xr, panel + j * KB, len);
          if (first) store(p, y, b, half, r, n + j, v);
          else y[(size_t)r * nn + n + j] += v;
        }
      }
    }
  }
}

static inline __attribute__((always_inline)) void linear(const Cmd *c, const Thread *t, int half) {
  const Params *p = (const Params *)c->p;
  float *y = F32(c, 0, p->y_off);
  const float *x = F32(c, 1, p->x_off);
  const void *w = (const void *)(uintptr_t)c->b[2];
  const void *b = (const void *)(uintptr_t)c->b[3];
  uint32_t lo, hi;
  share(p->n, 16, t, &lo, &hi);
  if (p->m > 4) {
    many_rows(p, y, x, w, b, half, lo, hi, (float *)t->scratch);
    return;
  }
  float out[4];
  for (uint32_t n = lo; n < hi; n++) {
    dots(x, p->m, p->k, w, p->w_off + (size_t)n * p->k, half, out);
    for (uint32_t r = 0; r < p->m; r++) store(p, y, b, half, r, n, out[r]);
  }
}

void linear_f16(const Cmd *c, const Thread *t) { linear(c, t, 1); }
void linear_f32(const Cmd *c, const Thread *t) { linear(c, t, 0); }
