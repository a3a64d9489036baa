// matmul: the CPU twin of shaders/matmul.wgsl (same bindings and parameters):
//   c[i, j] (+)= alpha · Σ_k op(a)[i, k] · op(b)[k, j]
// op(a) = a (M, K) or, trans_a, aᵀ of a stored (K, M); op(b) = b (K, N) or, trans_b, bᵀ of b stored
// (N, K); b f32, f16, or a q8_0 / q4_k weight whose rows are the k index (b_type 0..3).
//
// conv1d.c's GEMM structure: threads split the rows (or, for few rows, the columns); per block of
// rows and 8 columns, op(b) is packed KC k at a time into a [k][8] panel (converted or dequantized
// as it is packed), and 4 × 8 register tiles walk k broadcasting op(a)'s values, read in place
// (element (i, k) at a[i·K + k], or a[k·M + i] transposed). A sum is one chain of multiply-adds
// along k in order whatever the blocking (partial sums between blocks of k are stored and reloaded
// exactly), then scaled by alpha and added to c: rows computed in chunks give the same bits as
// rows computed together.

#include "dot.h"
#include "quant.h"

typedef struct {
  uint32_t m, n, k, a_off, b_off, c_off, trans_a, trans_b, b_type;
  float alpha;
  uint32_t accumulate;
} Params;

enum { B_F32, B_F16, B_Q8_0, B_Q4_K };

#define MR 4
#define NR 8
#define MC 512
#define KC 2048

// Panel row kk: op(b)[r, j0 .. j0 + nv − 1] into d[0 .. NR − 1], zeros past nv.
static void pack_row(const Params *p, const void *b, uint32_t r, uint32_t j0, uint32_t nv, float *d) {
  for (uint32_t j = nv; j < NR; j++) d[j] = 0.0f;
  if (p->b_type == B_Q8_0) {
    // 8 weights of one 32-block: (pair j0 / 64, block (j0 % 64) / 32).
    const uint32_t *pw = (const uint32_t *)b + p->b_off + (size_t)r * (p->n / 64) * Q8_0_PAIR_WORDS +
                         (size_t)(j0 / 64) * Q8_0_PAIR_WORDS;
    const float s = half_to_float((uint16_t)(j0 % 64 < 32 ? pw[0] & 0xffff : pw[0] >> 16));
    const int8_t *q = (const int8_t *)(pw + 1) + j0 % 64;
    for (uint32_t j = 0; j < NR; j++) d[j] = s * (float)q[j];
    return;
  }
  if (p->b_type == B_Q4_K) {
    // 8 weights of sub-block (j0 % 256) / 32: nibble sub % 2 of bytes 32 (sub / 2) + j0 % 32 ..
    const uint32_t *sb = (const uint32_t *)b + p->b_off + (size_t)r * (p->n / 256) * Q4_K_WORDS +
                         (size_t)(j0 / 256) * Q4_K_WORDS;
    const uint32_t sub = (j0 % 256) / 32;
    // get_scale_min_k4 of sub-block `sub` from the words of bytes 4..15 (shaders/_common.wgsl's
    // q4k_sub_scales).
    uint32_t sc, mn;
    if (sub < 4) {
      sc = (sb[1] >> (8 * sub)) & 63;
      mn = (sb[2] >> (8 * sub)) & 63;
    } else {
      const uint32_t i = 8 * (sub - 4);
      sc = ((sb[3] >> i) & 0xf) | (((sb[1] >> (i + 6)) & 3) << 4);
      mn = ((sb[3] >> (i + 4)) & 0xf) | (((sb[2] >> (i + 6)) & 3) << 4);
    }
    const float dsc = half_to_float((uint16_t)(sb[0] & 0xffff)) * (float)sc;
    const float dmm = half_to_float((uint16_t)(sb[0] >> 16)) * (float)mn;
    const uint8_t *qs = (const uint8_t *)(sb + 4) + 32 * (sub / 2) + j0 % 32;
    for (uint32_t j = 0; j < NR; j++) d[j] = dsc * (float)((qs[j] >> (4 * (sub % 2))) & 15) - dmm;
    return;
  }
  const int half = p->b_type == B_F16;
  if (!p->trans_b && nv == NR) {
    // 8 contiguous values of row r: one vector load (halves widened 8 at a time, exactly as
    // half_to_float does one).
    const size_t i = p->b_off + (size_t)r * p->n + j0;
    v128_t lo, hi;
    if (half) halves_to_floats(wasm_v128_load((const uint16_t *)b + i), &lo, &hi);
    else {
      lo = wasm_v128_load((const float *)b + i);
      hi = wasm_v128_load((const float *)b + i + 4);
    }
    wasm_v128_store(d, lo);
    wasm_v128_store(d + 4, hi);
    return;
  }
  for (uint32_t j = 0; j < nv; j++) {
    const size_t i = p->trans_b ? (size_t)(j0 + j) * p->k + r : (size_t)r * p->n + j0 + j;
    d[j] = weight_at(b, p->b_off + i, half);
  }
}

// tile (MR × NR) (+)= rows a[0 .. MR − 1] (element k at a[i] + k·ks) against panel rows [0, kc).
static inline __attribute__((always_inline)) void micro(const float *const a[MR], size_t ks, const float *panel,
                                                        uint32_t kc, int first, float *tile) {
  v128_t acc[MR][2];
  for (uint32_t i = 0; i < MR; i++) {
    acc[i][0] = first ? wasm_f32x4_splat(0.0f) : wasm_v128_load(tile + i * NR);
    acc[i][1] = first ? wasm_f32x4_splat(0.0f) : wasm_v128_load(tile + i * NR + 4);
  }
#pragma clang loop unroll_count(4)
  for (uint32_t kk = 0; kk < kc; kk++, panel += NR) {
    const v128_t b0 = wasm_v128_load(panel), b1 = wasm_v128_load(panel + 4);
    for (uint32_t i = 0; i < MR; i++) {
      const v128_t x = wasm_v128_load32_splat(a[i] + kk * ks);
      acc[i][0] = MADD(x, b0, acc[i][0]);
      acc[i][1] = MADD(x, b1, acc[i][1]);
    }
  }
  for (uint32_t i = 0; i < MR; i++) {
    wasm_v128_store(tile + i * NR, acc[i][0]);
    wasm_v128_store(tile + i * NR + 4, acc[i][1]);
  }
}

// Transposed a (stored K × M) against few columns (the LoRA gradient dB += s · dyᵀ · t: M the
// projection's outputs, N the rank, K the rows): the general path reads op(a) down its stored
// columns, a cache line per k for each 4-row tile, and streams all of it again for every 8-column
// panel. Here every panel of op(b) is packed once (when they fit the scratch with one tile), then
// each 4-row tile of op(a) is copied [k][4] once and run against all of them: the same chain of
// multiply-adds along k per sum as the general path, so the same bits. Returns 0 when it does not
// apply.
static int trans_a_few_columns(const Cmd *c, const Thread *t, uint32_t lo, uint32_t hi, uint32_t n_lo,
                               uint32_t n_hi) {
  const Params *p = (const Params *)c->p;
  const uint32_t m = p->m, k = p->k, panels = (n_hi - n_lo + NR - 1) / NR;
  const size_t floats = (size_t)panels * NR * k + (size_t)MR * k + (size_t)panels * MR * NR;
  if (!p->trans_a || k == 0 || floats * 4 > t->scratch_bytes) return 0;
  float *panel = (float *)t->scratch, *at = panel + (size_t)panels * NR * k, *tiles = at + (size_t)MR * k;
  const float *a = F32(c, 1, p->a_off);
  const void *b = (const void *)(uintptr_t)c->b[2];
  float *out = F32(c, 0, p->c_off);
  for (uint32_t q = 0; q < panels; q++) {
    const uint32_t j0 = n_lo + q * NR, nv = n_hi - j0 < NR ? n_hi - j0 : NR;
    for (uint32_t kk = 0; kk < k; kk++) pack_row(p, b, kk, j0, nv, panel + ((size_t)q * k + kk) * NR);
  }
  const float *rows[MR] = {at, at + 1, at + 2, at + 3};
  for (uint32_t r = lo; r < hi; r += MR) {
    if (r + MR <= hi) {
      for (uint32_t kk = 0; kk < k; kk++) wasm_v128_store(at + kk * MR, wasm_v128_load(a + (size_t)kk * m + r));
    } else {
      for (uint32_t kk = 0; kk < k; kk++) {
        for (uint32_t i = 0; i < MR; i++) at[kk * MR + i] = a[(size_t)kk * m + (r + i < hi ? r + i : lo)];
      }
    }
    for (uint32_t q = 0; q < panels; q++) micro(rows, MR, panel + (size_t)q * k * NR, k, 1, tiles + q * MR * NR);
    for (uint32_t i = 0; i < MR && r + i < hi; i++) {
      for (uint32_t q = 0; q < panels; q++) {
        const uint32_t j0 = n_lo + q * NR, nv = n_hi - j0 < NR ? n_hi - j0 : NR;
        const float *v = tiles + q * MR * NR + i * NR;
        float *o = out + (size_t)(r + i) * p->n + j0;
        for (uint32_t j = 0; j < nv; j++) {
          const float s = p->alpha * v[j];
          o[j] = p->accumulate ? o[j] + s : s;
        }
      }
    }
  }
  return 1;
}

void matmul(const Cmd *c, const Thread *t) {
  const Params *p = (const Params *)c->p;
  const uint32_t m = p->m, n = p->n, k = p->k;
  if (m == 0 || n == 0) return;
  uint32_t lo = 0, hi = m, n_lo = 0, n_hi = n;
  if (m >= 16 * t->count || n < 2 * NR * t->count) share(m, MR, t, &lo, &hi);
  else share(n, NR, t, &n_lo, &n_hi);
  if (lo >= hi || n_lo >= n_hi) return;
  if (trans_a_few_columns(c, t, lo, hi, n_lo, n_hi)) return;
  float *tiles = (float *)t->scratch, *panel = tiles + MC * NR;
  const float *a = F32(c, 1, p->a_off);
  const void *b = (const void *)(uintptr_t)c->b[2];
  float *out = F32(c, 0, p->c_off);
  // Element (i, k) of op(a) at a + i·rs + k·ks.
  const size_t rs = p->trans_a ? 1 : k, ks = p->trans_a ? m : 1;
  for (uint32_t ra = lo; ra < hi; ra += MC) {
    const uint32_t rb = hi - ra < MC ? hi : ra + MC;
    for (uint32_t j0 = n_lo; j0 < n_hi; j0 += NR) {
      const uint32_t nv = n_hi - j0 < NR ? n_hi - j0 : NR;
      if (k == 0) __builtin_memset(tiles, 0, (size_t)(rb - ra) * NR * 4);
      for (uint32_t ka = 0; ka < k; ka += KC) {
        const uint32_t kc = k - ka < KC ? k - ka : KC;
        for (uint32_t kk = 0; kk < kc; kk++) pack_row(p, b, ka + kk, j0, nv, panel + (size_t)kk * NR);
        for (uint32_t r = ra; r < rb; r += MR) {
          const float *rows[MR];
          for (uint32_t i = 0; i < MR; i++) {
            const uint32_t row = r + i < rb ? r + i : ra; // rows past the block: any valid row
            rows[i] = a + (size_t)row * rs + (size_t)ka * ks;
          }
          float *tile = tiles + (size_t)(r - ra) * NR;
          if (ks == 1) micro(rows, 1, panel, kc, ka == 0, tile); // contiguous rows: k stride 1 inlined
          else micro(rows, ks, panel, kc, ka == 0, tile);
        }
      }
      for (uint32_t r = ra; r < rb; r++) {
        const float *v = tiles + (size_t)(r - ra) * NR;
        float *o = out + (size_t)r * n + j0;
        for (uint32_t j = 0; j < nv; j++) {
          const float s = p->alpha * v[j];
          o[j] = p->accumulate ? o[j] + s : s;
        }
      }
    }
  }
}
