// attention: out_i = softmax_j(scale · q_i · k_j) v_j over keys j < kv_len (causal: j ≤ q_start
// + i; with spans_on, keys [spans[2i], spans[2i] + spans[2i + 1])), the CPU twin of
// shaders/attention.wgsl (same bindings and parameters).
// p: s, kv_len, q_start, heads, head_dim, causal, scale, q_off, q_stride, k_off, v_off,
//    kv_stride, o_off, o_stride, spans_on, spans_off
//
// Blocked over queries and keys, so that each key and value loaded serves several queries (a
// 1000-row pass is then a pair of small GEMMs per head rather than one dot product per key and
// query). A work item is (head, block of BLOCK consecutive queries); threads take items in turn
// (a causal triangle spreads evenly). A block splits into runs of queries with the same first key
// (a packed batch's rows differ), and a run walks the hull of its queries' key ranges in tiles of
// KEY_TILE keys with an online softmax. A tile's keys and values are first copied out of the
// cache rows into scratch when at least PACK_MIN queries use them (a model's cache rows are 4 KiB
// apart, so in place they would share a few cache sets); then, for each group of up to GROUP
// queries of the run:
//   scores  S[g][j] = (scale · q_g) · k_j, two queries × four keys per register tile (the four
//           keys' sums reduced together, in the same order as hsum);
//   softmax each query's running max m and sum l over its own keys of the tile, its weights
//           p = exp(S − m) (0 past its last key), its accumulator rescaled when m rises;
//   values  acc[g] += Σ_j p[g][j] v_j, the group's queries × eight dimensions per register tile.
// The tiles start at the same offset of every query's range (the run's shared first key), and a
// query's arithmetic does not depend on the queries grouped with it or on where its keys are read
// from: its scores are the same FMA chains reduced the same way, its tiles cover the same keys,
// and the keys of a group's hull past its own range (another query's, so finite) add exact zeros.
// A packed row's attention therefore equals the row's attention alone, bit for bit.

#include "runtime.h"

#define GROUP 4
#define BLOCK 64
#define KEY_TILE 64
#define PACK_MIN 8
#define MAX_HEAD_DIM 256

typedef struct {
  uint32_t s, kv_len, q_start, heads, head_dim, causal;
  float scale;
  uint32_t q_off, q_stride, k_off, v_off, kv_stride, o_off, o_stride, spans_on, spans_off;
} Params;

// The keys [*first, *end) of query i.
static inline void key_range(const Params *p, const uint32_t *spans, uint32_t i, uint32_t *first,
                             uint32_t *end) {
  if (p->spans_on) {
    *first = spans[2 * i];
    *end = spans[2 * i] + spans[2 * i + 1];
    return;
  }
  *first = 0;
  *end = p->causal && p->q_start + i + 1 < p->kv_len ? p->q_start + i + 1 : p->kv_len;
}

// Four dot products' accumulators as one vector of their sums, each (a0 + a1) + (a2 + a3) as
// hsum adds them.
static inline v128_t sum4(v128_t a, v128_t b, v128_t c, v128_t d) {
  const v128_t ab = wasm_f32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 2, 6), wasm_i32x4_shuffle(a, b, 1, 5, 3, 7));
  const v128_t cd = wasm_f32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 2, 6), wasm_i32x4_shuffle(c, d, 1, 5, 3, 7));
  return wasm_f32x4_add(wasm_i32x4_shuffle(ab, cd, 0, 1, 4, 5), wasm_i32x4_shuffle(ab, cd, 2, 3, 6, 7));
}

// sc[g·KEY_TILE + j] = qs[g·hd ..] · k[j·ks ..] for G (1 or 2) queries and keys j < n.
static inline __attribute__((always_inline)) void score_rows(const float *qs, const float *k,
                                                             size_t ks, uint32_t hd, uint32_t n,
                                                             float *sc, const uint32_t G) {
  const uint32_t hd4 = hd & ~3u;
  uint32_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float *kj = k + j * ks;
    v128_t a[2][4];
    for (uint32_t g = 0; g < G; g++) {
      for (uint32_t c = 0; c < 4; c++) a[g][c] = wasm_f32x4_splat(0);
    }
    for (uint32_t d = 0; d < hd4; d += 4) {
      v128_t kv[4];
      for (uint32_t c = 0; c < 4; c++) kv[c] = wasm_v128_load(kj + c * ks + d);
      for (uint32_t g = 0; g < G; g++) {
        const v128_t q = wasm_v128_load(qs + g * hd + d);
        for (uint32_t c = 0; c < 4; c++) a[g][c] = MADD(q, kv[c], a[g][c]);
      }
    }
    for (uint32_t g = 0; g < G; g++) {
      v128_t sums = sum4(a[g][0], a[g][1], a[g][2], a[g][3]);
      if (hd4 == hd) {
        wasm_v128_store(sc + g * KEY_TILE + j, sums);
        continue;
      }
      float s[4];
      wasm_v128_store(s, sums);
      for (uint32_t c = 0; c < 4; c++) {
        for (uint32_t d = hd4; d < hd; d++) s[c] += qs[g * hd + d] * kj[c * ks + d];
        sc[g * KEY_TILE + j + c] = s[c];
      }
    }
  }
  for (; j < n; j++) {
    const float *kj = k + j * ks;
    v128_t a[2];
    for (uint32_t g = 0; g < G; g++) a[g] = wasm_f32x4_splat(0);
    for (uint32_t d = 0; d < hd4; d += 4) {
      const v128_t kv = wasm_v128_load(kj + d);
      for (uint32_t g = 0; g < G; g++) a[g] = MADD(wasm_v128_load(qs + g * hd + d), kv, a[g]);
    }
    for (uint32_t g = 0; g < G; g++) {
      float s = hsum(a[g]);
      for (uint32_t d = hd4; d < hd; d++) s += qs[g * hd + d] * kj[d];
      sc[g * KEY_TILE + j] = s;
    }
  }
}

// Dimensions [d, d + 4·V) of add_values: G × V vectors of accumulators, each value row loaded
// once for the G queries.
static inline __attribute__((always_inline)) void value_block(const float *w, const float *v,
                                                              size_t vs, uint32_t hd, uint32_t n,
                                                              const float *rescale, float *acc,
                                                              uint32_t d, const uint32_t G,
                                                              const uint32_t V) {
  v128_t c[GROUP][8];
  for (uint32_t g = 0; g < G; g++) {
    const v128_t r = wasm_f32x4_splat(rescale[g]);
    for (uint32_t i = 0; i < V; i++) c[g][i] = wasm_f32x4_mul(wasm_v128_load(acc + g * hd + d + 4 * i), r);
  }
  const float *vj = v + d;
  for (uint32_t j = 0; j < n; j++, vj += vs) {
    v128_t x[8];
    for (uint32_t i = 0; i < V; i++) x[i] = wasm_v128_load(vj + 4 * i);
    for (uint32_t g = 0; g < G; g++) {
      const v128_t pj = wasm_v128_load32_splat(w + g * KEY_TILE + j);
      for (uint32_t i = 0; i < V; i++) c[g][i] = MADD(pj, x[i], c[g][i]);
    }
  }
  for (uint32_t g = 0; g < G; g++) {
    for (uint32_t i = 0; i < V; i++) wasm_v128_store(acc + g * hd + d + 4 * i, c[g][i]);
  }
}

// acc[g·hd + d] = acc[g·hd + d] · rescale[g] + Σ_{j < n} w[g·KEY_TILE + j] · v[j·vs + d] for the
// G queries, each (g, d) one chain over j in order (however the dimensions are blocked): blocks of
// 8 / G vectors per query (at least 2: eight accumulators), then single vectors, then scalars.
static inline __attribute__((always_inline)) void add_values(const float *w, const float *v,
                                                             size_t vs, uint32_t hd, uint32_t n,
                                                             const float *rescale, float *acc,
                                                             const uint32_t G) {
  const uint32_t V = G == 1 ? 8 : G == 2 ? 4 : 2;
  uint32_t d = 0;
  for (; d + 4 * V <= hd; d += 4 * V) value_block(w, v, vs, hd, n, rescale, acc, d, G, V);
  for (; d + 4 <= hd; d += 4) value_block(w, v, vs, hd, n, rescale, acc, d, G, 1);
  for (; d < hd; d++) {
    for (uint32_t g = 0; g < G; g++) {
      float a = acc[g * hd + d] * rescale[g];
      for (uint32_t j = 0; j < n; j++) a += w[g * KEY_TILE + j] * v[j * vs + d];
      acc[g * hd + d] = a;
    }
  }
}

// Turns query g's scores of the tile into weights: its own keys are the first `own` of the `n`
// (the rest weigh 0); its running max *m and sum *l move on, and *rescale is what its
// accumulator must be multiplied by.
static void softmax_tile(float *sc, uint32_t own, uint32_t n, float *m, float *l, float *rescale) {
  v128_t mx = wasm_f32x4_splat(*m);
  uint32_t j = 0;
  for (; j + 4 <= own; j += 4) mx = wasm_f32x4_pmax(mx, wasm_v128_load(sc + j));
  mx = wasm_f32x4_pmax(mx, wasm_i32x4_shuffle(mx, mx, 2, 3, 0, 1));
  mx = wasm_f32x4_pmax(mx, wasm_i32x4_shuffle(mx, mx, 1, 0, 3, 2));
  float cm = wasm_f32x4_extract_lane(mx, 0);
  for (; j < own; j++) cm = sc[j] > cm ? sc[j] : cm;
  *rescale = exp_f32(*m - cm);
  *l *= *rescale;
  *m = cm;
  const v128_t mv = wasm_f32x4_splat(cm);
  v128_t lv = wasm_f32x4_splat(0);
  for (j = 0; j + 4 <= own; j += 4) {
    const v128_t e = exp_f32x4_inline(wasm_f32x4_sub(wasm_v128_load(sc + j), mv));
    wasm_v128_store(sc + j, e);
    lv = wasm_f32x4_add(lv, e);
  }
  *l += hsum(lv);
  for (; j < own; j++) {
    sc[j] = exp_f32(sc[j] - cm);
    *l += sc[j];
  }
  for (; j < n; j++) sc[j] = 0;
}

// One tile of keys [j0, j0 + n) for a group of G queries (their scaled rows qs, accumulators acc,
// running m and l, last keys ends): keys and values at k, v, rows ks floats apart.
static inline __attribute__((always_inline)) void tile(const float *k, const float *v, size_t ks,
                                                       uint32_t hd, uint32_t j0, uint32_t n,
                                                       const float *qs, float *acc, float *m,
                                                       float *l, const uint32_t *ends, float *sc,
                                                       const uint32_t G) {
  float rescale[GROUP];
  if (G >= 2) score_rows(qs, k, ks, hd, n, sc, 2);
  if (G == 4) score_rows(qs + 2 * hd, k, ks, hd, n, sc + 2 * KEY_TILE, 2);
  if (G & 1) score_rows(qs + (G - 1) * hd, k, ks, hd, n, sc + (G - 1) * KEY_TILE, 1);
  for (uint32_t g = 0; g < G; g++) {
    const uint32_t own = ends[g] <= j0 ? 0 : ends[g] - j0 < n ? ends[g] - j0 : n;
    if (own) {
      softmax_tile(sc + g * KEY_TILE, own, n, &m[g], &l[g], &rescale[g]);
    } else { // past its keys: nothing changes
      for (uint32_t j = 0; j < n; j++) sc[g * KEY_TILE + j] = 0;
      rescale[g] = 1;
    }
  }
  add_values(sc, v, ks, hd, n, rescale, acc, G);
}

// Queries i0 .. i0 + count − 1 of head h, which share their first key: their hull [first, end)
// in tiles, each tile's keys and values copied into scratch first when enough queries use them.
static void run(const Params *p, const Cmd *c, float *scratch, uint32_t h, uint32_t i0,
                uint32_t count, uint32_t first, const uint32_t *ends) {
  const uint32_t hd = p->head_dim;
  const float *k = F32(c, 2, p->k_off) + h * hd, *v = F32(c, 3, p->v_off) + h * hd;
  float *qs = scratch, *acc = qs + BLOCK * MAX_HEAD_DIM, *sc = acc + BLOCK * MAX_HEAD_DIM;
  float *kt = sc + GROUP * KEY_TILE, *vt = kt + KEY_TILE * MAX_HEAD_DIM;
  float m[BLOCK], l[BLOCK];
  uint32_t end = 0;
  for (uint32_t i = 0; i < count; i++) {
    const float *qi = F32(c, 1, p->q_off) + (size_t)(i0 + i) * p->q_stride + h * hd;
    for (uint32_t d = 0; d < hd; d++) {
      qs[i * hd + d] = qi[d] * p->scale;
      acc[i * hd + d] = 0;
    }
    m[i] = NEG_BIG;
    l[i] = 0;
    end = ends[i] > end ? ends[i] : end;
  }
  const int pack = count >= PACK_MIN;
  for (uint32_t j0 = first; j0 < end; j0 += KEY_TILE) {
    const uint32_t n = end - j0 < KEY_TILE ? end - j0 : KEY_TILE;
    const float *tk = k + (size_t)j0 * p->kv_stride, *tv = v + (size_t)j0 * p->kv_stride;
    size_t ks = p->kv_stride;
    if (pack) {
      for (uint32_t j = 0; j < n; j++) {
        __builtin_memcpy(kt + j * hd, tk + j * ks, hd * 4);
        __builtin_memcpy(vt + j * hd, tv + j * ks, hd * 4);
      }
      tk = kt, tv = vt, ks = hd;
    }
    for (uint32_t g0 = 0; g0 < count; g0 += GROUP) {
      const uint32_t G = count - g0 < GROUP ? count - g0 : GROUP;
      uint32_t gend = 0; // the group's last key
      for (uint32_t g = g0; g < g0 + G; g++) gend = ends[g] > gend ? ends[g] : gend;
      if (gend <= j0) continue;
      const uint32_t gn = gend - j0 < n ? gend - j0 : n;
      const float *gq = qs + g0 * hd;
      float *ga = acc + g0 * hd;
      switch (G) {
        case 1: tile(tk, tv, ks, hd, j0, gn, gq, ga, m + g0, l + g0, ends + g0, sc, 1); break;
        case 2: tile(tk, tv, ks, hd, j0, gn, gq, ga, m + g0, l + g0, ends + g0, sc, 2); break;
        case 3: tile(tk, tv, ks, hd, j0, gn, gq, ga, m + g0, l + g0, ends + g0, sc, 3); break;
        default: tile(tk, tv, ks, hd, j0, gn, gq, ga, m + g0, l + g0, ends + g0, sc, 4); break;
      }
    }
  }
  for (uint32_t i = 0; i < count; i++) {
    float *oi = F32(c, 0, p->o_off) + (size_t)(i0 + i) * p->o_stride + h * hd;
    const float inv = 1.0f / l[i];
    for (uint32_t d = 0; d < hd; d++) oi[d] = acc[i * hd + d] * inv;
  }
}

void attention(const Cmd *c, const Thread *t) {
  const Params *p = (const Params *)c->p;
  const uint32_t *spans = U32(c, 4, p->spans_off);
  const uint32_t blocks = (p->s + BLOCK - 1) / BLOCK;
  for (uint32_t item = t->id; item < p->heads * blocks; item += t->count) {
    const uint32_t h = item / blocks, b0 = (item % blocks) * BLOCK;
    const uint32_t count = p->s - b0 < BLOCK ? p->s - b0 : BLOCK;
    uint32_t firsts[BLOCK], ends[BLOCK];
    for (uint32_t i = 0; i < count; i++) key_range(p, spans, b0 + i, &firsts[i], &ends[i]);
    // Runs of queries with the same first key (a batch's rows, packed, differ).
    for (uint32_t r0 = 0, r1; r0 < count; r0 = r1) {
      for (r1 = r0 + 1; r1 < count && firsts[r1] == firsts[r0];) r1++;
      run(p, c, (float *)t->scratch, h, b0 + r0, r1 - r0, firsts[r0], ends + r0);
    }
  }
}
