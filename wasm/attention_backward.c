// Attention backward, the CPU twins of shaders/attention_backward_dq.wgsl and
// attention_backward_dkv.wgsl (same bindings and parameters; see them for the math and the
// scratch layout). Work items are (head, block of BLOCK rows), taken by the threads in turn. A
// block walks the hull of its rows' ranges in tiles of TILE rows, copied out of the strided rows
// into scratch (contiguous); each row then takes only its own rows of the tile: their dot
// products four rows at a time, then its accumulator updated over all of them at once, held in
// registers. Vectors of four dimensions: head_dim is a multiple of 4.

#include "runtime.h"

#define BLOCK 32
#define TILE 64
#define MAX_HEAD_DIM 256

typedef struct {
  uint32_t s, heads, head_dim;
  float scale;
  uint32_t q_off, q_stride, k_off, k_stride, v_off, v_stride, do_off, do_stride;
  uint32_t o_off, o_stride, dq_off, dq_stride, spans_off, scratch_off;
} DqParams;

typedef struct {
  uint32_t s, heads, head_dim;
  float scale;
  uint32_t q_off, q_stride, k_off, k_stride, v_off, v_stride, do_off, do_stride;
  uint32_t dk_off, dk_stride, dv_off, dv_stride, kq_off, scratch_off;
} DkvParams;

// out[j] = a · b_j for the n rows b_j = b + j·hd, four rows at a time sharing the loads of a.
static void dots(const float *a, const float *b, uint32_t hd, uint32_t n, float *out) {
  uint32_t j = 0;
  for (; j + 4 <= n; j += 4) {
    v128_t s[4];
    for (uint32_t r = 0; r < 4; r++) s[r] = wasm_f32x4_splat(0);
    for (uint32_t d = 0; d < hd; d += 4) {
      const v128_t x = wasm_v128_load(a + d);
      for (uint32_t r = 0; r < 4; r++) s[r] = MADD(x, wasm_v128_load(b + (j + r) * hd + d), s[r]);
    }
    for (uint32_t r = 0; r < 4; r++) out[j + r] = hsum(s[r]);
  }
  for (; j < n; j++) {
    v128_t s = wasm_f32x4_splat(0);
    for (uint32_t d = 0; d < hd; d += 4) s = MADD(wasm_v128_load(a + d), wasm_v128_load(b + j * hd + d), s);
    out[j] = hsum(s);
  }
}

// y = y · scale + Σ_j w[j] · x_j over the n rows x_j = x + j·hd: y walked 16 dimensions at a time
// (then 4), held in registers over the rows.
static void accumulate(float *y, float scale, const float *w, const float *x, uint32_t hd, uint32_t n) {
  const v128_t sv = wasm_f32x4_splat(scale);
  uint32_t d = 0;
  for (; d + 16 <= hd; d += 16) {
    v128_t acc[4];
    for (uint32_t c = 0; c < 4; c++) acc[c] = wasm_f32x4_mul(wasm_v128_load(y + d + 4 * c), sv);
    for (uint32_t j = 0; j < n; j++) {
      const v128_t wj = wasm_f32x4_splat(w[j]);
      for (uint32_t c = 0; c < 4; c++) acc[c] = MADD(wj, wasm_v128_load(x + j * hd + d + 4 * c), acc[c]);
    }
    for (uint32_t c = 0; c < 4; c++) wasm_v128_store(y + d + 4 * c, acc[c]);
  }
  for (; d < hd; d += 4) {
    v128_t acc = wasm_f32x4_mul(wasm_v128_load(y + d), sv);
    for (uint32_t j = 0; j < n; j++) acc = MADD(wasm_f32x4_splat(w[j]), wasm_v128_load(x + j * hd + d), acc);
    wasm_v128_store(y + d, acc);
  }
}

// Lanes 0 .. n − 1 set (all four when n >= 4).
static inline v128_t lanes_below(uint32_t n) {
  return wasm_u32x4_lt(wasm_u32x4_make(0, 1, 2, 3), wasm_u32x4_splat(n));
}

// Rows [r0, r0 + n) of head h of a strided tensor, packed: out[r · hd + d], times `scale`.
static void pack(const float *x, uint32_t stride, uint32_t h, uint32_t hd, uint32_t r0, uint32_t n,
                 float scale, float *out) {
  for (uint32_t r = 0; r < n; r++) {
    const float *row = x + (size_t)(r0 + r) * stride + h * hd;
    for (uint32_t d = 0; d < hd; d++) out[r * hd + d] = row[d] * scale;
  }
}

// The hull [*first, *end) of the nonempty ranges (first, count) of rows [r0, r0 + n) of a table.
static void hull(const uint32_t *table, uint32_t r0, uint32_t n, uint32_t *first, uint32_t *end) {
  uint32_t lo = 0xffffffffu, hi = 0;
  for (uint32_t r = r0; r < r0 + n; r++) {
    if (table[2 * r + 1] == 0) continue;
    lo = table[2 * r] < lo ? table[2 * r] : lo;
    hi = table[2 * r] + table[2 * r + 1] > hi ? table[2 * r] + table[2 * r + 1] : hi;
  }
  *first = lo < hi ? lo : hi;
  *end = hi;
}

// attention_backward_dq: dq, and each row's (m, l, D) and key range in scratch.
// p: s, heads, head_dim, scale, q_off, q_stride, k_off, k_stride, v_off, v_stride, do_off,
//    do_stride, o_off, o_stride, dq_off, dq_stride, spans_off, scratch_off
void attention_backward_dq(const Cmd *c, const Thread *t) {
  const DqParams *p = (const DqParams *)c->p;
  const uint32_t hd = p->head_dim, blocks = (p->s + BLOCK - 1) / BLOCK;
  const uint32_t *spans = U32(c, 7, p->spans_off);
  uint32_t *scratch = U32(c, 1, p->scratch_off);
  float *qs = (float *)t->scratch, *dos = qs + BLOCK * MAX_HEAD_DIM, *acc = dos + BLOCK * MAX_HEAD_DIM;
  float *kt = acc + BLOCK * MAX_HEAD_DIM, *vt = kt + TILE * MAX_HEAD_DIM;
  // Scores and dP of a query's keys of a tile (room for a last partial vector).
  float m[BLOCK], l[BLOCK], drow[BLOCK], sc[TILE + 3] = {0}, dp[TILE + 3] = {0};
  for (uint32_t item = t->id; item < p->heads * blocks; item += t->count) {
    const uint32_t h = item / blocks, i0 = (item % blocks) * BLOCK;
    const uint32_t count = p->s - i0 < BLOCK ? p->s - i0 : BLOCK;
    pack(F32(c, 2, p->q_off), p->q_stride, h, hd, i0, count, p->scale, qs);
    pack(F32(c, 5, p->do_off), p->do_stride, h, hd, i0, count, 1.0f, dos);
    for (uint32_t i = 0; i < count; i++) {
      const float *o = F32(c, 6, p->o_off) + (size_t)(i0 + i) * p->o_stride + h * hd;
      dots(dos + i * hd, o, hd, 1, &drow[i]);
      m[i] = NEG_BIG;
      l[i] = 0;
      for (uint32_t d = 0; d < hd; d++) acc[i * hd + d] = 0;
    }
    uint32_t first, end;
    hull(spans, i0, count, &first, &end);
    for (uint32_t j0 = first; j0 < end; j0 += TILE) {
      const uint32_t n = end - j0 < TILE ? end - j0 : TILE;
      pack(F32(c, 3, p->k_off), p->k_stride, h, hd, j0, n, 1.0f, kt);
      pack(F32(c, 4, p->v_off), p->v_stride, h, hd, j0, n, 1.0f, vt);
      for (uint32_t i = 0; i < count; i++) {
        const uint32_t a = spans[2 * (i0 + i)], b = a + spans[2 * (i0 + i) + 1];
        const uint32_t lo = a > j0 ? (a - j0 < n ? a - j0 : n) : 0;
        const uint32_t hi = b > j0 + lo ? (b - j0 < n ? b - j0 : n) : lo;
        if (hi <= lo) continue;
        const uint32_t own = hi - lo;
        dots(qs + i * hd, kt + lo * hd, hd, own, sc);
        dots(dos + i * hd, vt + lo * hd, hd, own, dp);
        float mx = m[i];
        for (uint32_t j = 0; j < own; j++) mx = sc[j] > mx ? sc[j] : mx;
        const float alpha = exp_f32(m[i] - mx);
        // The weights P · (dP − D) unnormalized, four at a time (lanes past `own` give 0).
        v128_t sum = wasm_f32x4_splat(0);
        for (uint32_t j = 0; j < own; j += 4) {
          const v128_t e = wasm_v128_and(exp_f32x4_inline(wasm_f32x4_sub(wasm_v128_load(sc + j), wasm_f32x4_splat(mx))),
                                         lanes_below(own - j));
          sum = wasm_f32x4_add(sum, e);
          wasm_v128_store(sc + j, wasm_f32x4_mul(e, wasm_f32x4_sub(wasm_v128_load(dp + j), wasm_f32x4_splat(drow[i]))));
        }
        l[i] = l[i] * alpha + hsum(sum);
        accumulate(acc + i * hd, alpha, sc, kt + lo * hd, hd, own);
        m[i] = mx;
      }
    }
    for (uint32_t i = 0; i < count; i++) {
      const uint32_t row = i0 + i;
      float *dq = F32(c, 0, p->dq_off) + (size_t)row * p->dq_stride + h * hd;
      const float inv = l[i] > 0 ? p->scale / l[i] : 0;
      for (uint32_t d = 0; d < hd; d++) dq[d] = acc[i * hd + d] * inv;
      uint32_t *stats = scratch + 3 * (row * p->heads + h);
      stats[0] = bits_from_f32(m[i]);
      stats[1] = bits_from_f32(l[i]);
      stats[2] = bits_from_f32(drow[i]);
      if (h == 0) {
        uint32_t *range = scratch + 3 * p->s * p->heads + 2 * row;
        range[0] = spans[2 * row];
        range[1] = spans[2 * row] + spans[2 * row + 1];
      }
    }
  }
}

// attention_backward_dkv: dk and dv from the rows' (m, l, D) and key ranges in scratch.
// p: s, heads, head_dim, scale, q_off, q_stride, k_off, k_stride, v_off, v_stride, do_off,
//    do_stride, dk_off, dk_stride, dv_off, dv_stride, kq_off, scratch_off
void attention_backward_dkv(const Cmd *c, const Thread *t) {
  const DkvParams *p = (const DkvParams *)c->p;
  const uint32_t hd = p->head_dim, blocks = (p->s + BLOCK - 1) / BLOCK;
  const uint32_t *kq = U32(c, 7, p->kq_off), *scratch = U32(c, 6, p->scratch_off);
  const uint32_t *ranges = scratch + 3 * p->s * p->heads;
  float *qt = (float *)t->scratch, *dt = qt + TILE * MAX_HEAD_DIM;
  float *kb = dt + TILE * MAX_HEAD_DIM, *vb = kb + BLOCK * MAX_HEAD_DIM;
  float *dk = vb + BLOCK * MAX_HEAD_DIM, *dv = dk + BLOCK * MAX_HEAD_DIM;
  // A key's scores and dP over a tile's rows; the rows' statistics and key ranges (room for a last
  // partial vector).
  float sc[TILE + 3] = {0}, dp[TILE + 3] = {0}, m_t[TILE + 3], inv_t[TILE + 3], d_t[TILE + 3];
  uint32_t first_t[TILE + 3], end_t[TILE + 3];
  for (uint32_t item = t->id; item < p->heads * blocks; item += t->count) {
    const uint32_t h = item / blocks, j0 = (item % blocks) * BLOCK;
    const uint32_t count = p->s - j0 < BLOCK ? p->s - j0 : BLOCK;
    pack(F32(c, 3, p->k_off), p->k_stride, h, hd, j0, count, 1.0f, kb);
    pack(F32(c, 4, p->v_off), p->v_stride, h, hd, j0, count, 1.0f, vb);
    for (uint32_t d = 0; d < count * hd; d++) dk[d] = dv[d] = 0;
    uint32_t first, end;
    hull(kq, j0, count, &first, &end);
    for (uint32_t i0 = first; i0 < end; i0 += TILE) {
      const uint32_t n = end - i0 < TILE ? end - i0 : TILE;
      pack(F32(c, 2, p->q_off), p->q_stride, h, hd, i0, n, p->scale, qt);
      pack(F32(c, 5, p->do_off), p->do_stride, h, hd, i0, n, 1.0f, dt);
      // The tile's rows' m, 1 / l, D and key ranges (empty past the tile).
      for (uint32_t i = 0; i < TILE + 3; i++) {
        const uint32_t *stats = scratch + 3 * ((i0 + i) * p->heads + h), *range = ranges + 2 * (i0 + i);
        m_t[i] = i < n ? f32_from_bits(stats[0]) : 0;
        inv_t[i] = i < n ? 1.0f / f32_from_bits(stats[1]) : 0;
        d_t[i] = i < n ? f32_from_bits(stats[2]) : 0;
        first_t[i] = i < n ? range[0] : 0;
        end_t[i] = i < n ? range[1] : 0;
      }
      for (uint32_t jj = 0; jj < count; jj++) {
        const uint32_t j = j0 + jj, a = kq[2 * j], b = a + kq[2 * j + 1];
        if (b <= i0 || a >= i0 + n) continue;
        const uint32_t lo = a > i0 ? a - i0 : 0, hi = b - i0 < n ? b - i0 : n;
        // This key's queries of the tile: their scores and dP, then P and dS (0 for a query
        // whose own span misses the key).
        dots(kb + jj * hd, qt + lo * hd, hd, hi - lo, sc);
        dots(vb + jj * hd, dt + lo * hd, hd, hi - lo, dp);
        const v128_t jv = wasm_u32x4_splat(j);
        for (uint32_t i = lo; i < hi; i += 4) {
          const v128_t own = wasm_v128_and(wasm_u32x4_ge(jv, wasm_v128_load(first_t + i)),
                                           wasm_u32x4_lt(jv, wasm_v128_load(end_t + i)));
          const v128_t x = wasm_f32x4_sub(wasm_v128_load(sc + i - lo), wasm_v128_load(m_t + i));
          const v128_t pij = wasm_v128_and(wasm_f32x4_mul(exp_f32x4_inline(x), wasm_v128_load(inv_t + i)), own);
          wasm_v128_store(sc + i - lo, pij);
          wasm_v128_store(dp + i - lo, wasm_f32x4_mul(pij, wasm_f32x4_sub(wasm_v128_load(dp + i - lo), wasm_v128_load(d_t + i))));
        }
        accumulate(dv + jj * hd, 1, sc, dt + lo * hd, hd, hi - lo);
        accumulate(dk + jj * hd, 1, dp, qt + lo * hd, hd, hi - lo);
      }
    }
    for (uint32_t jj = 0; jj < count; jj++) {
      float *dkr = F32(c, 0, p->dk_off) + (size_t)(j0 + jj) * p->dk_stride + h * hd;
      float *dvr = F32(c, 1, p->dv_off) + (size_t)(j0 + jj) * p->dv_stride + h * hd;
      for (uint32_t d = 0; d < hd; d++) dkr[d] = dk[jj * hd + d], dvr[d] = dv[jj * hd + d];
    }
  }
}
