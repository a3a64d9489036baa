// Weight quantizers: rows of f16 or f32 values (the `.f16`/`.f32` variants) to the device
// layouts of src/quant/FORMATS.md §3, with the same bytes as the TypeScript reference
// (src/quant/q8_0.ts, q4_k.ts, which follow llama.cpp's quantize_row_q8_0_ref and
// quantize_row_q4_K_ref): every operation in float32, in the reference's order, no contraction.
// Used to quantize at load; threads split the rows. No WGSL twin: WGSL's float division is not
// correctly rounded, so a GPU could not give these bytes.
//
// quantize_q8_0 / quantize_q4_k: dst[rows][k] (u32 words at dst_off) from src[rows][k] (elements
// at src_off). p: rows, k, dst_off, src_off

#include "quant.h"

typedef struct {
  uint32_t rows, k, dst_off, src_off;
} Params;

// --- float32 → f16, round to nearest, ties to even -------------------------------------------

// As src/io/_f16.ts: magnitudes from 65520 up become infinity, tiny ones subnormals or zero, a
// NaN the quiet NaN 0x7e00 (with its sign).
static uint16_t half_from_float(float f) {
  const uint32_t x = bits_from_f32(f), sign = (x >> 16) & 0x8000u, abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
  if (abs < 0x38800000u) {
    // Below the smallest normal half: the subnormal's units of 2^-24, rounded (exact scaling).
    return (uint16_t)(sign | (uint32_t)__builtin_rintf(f32_from_bits(abs) * 0x1p24f));
  }
  uint32_t h = (abs >> 13) - (112u << 10);
  const uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}

// Row r of the source as float32 (f16 widened exactly) into out[k].
static void read_row(const Cmd *c, const Params *p, uint32_t r, int half, float *out) {
  const size_t at = p->src_off + (size_t)r * p->k;
  if (!half) {
    __builtin_memcpy(out, F32(c, 1, at), (size_t)p->k * 4);
    return;
  }
  const uint16_t *h = F16(c, 1, at);
  uint32_t i = 0;
  for (; i + 8 <= p->k; i += 8) {
    v128_t lo, hi;
    halves_to_floats(wasm_v128_load(h + i), &lo, &hi);
    wasm_v128_store(out + i, lo);
    wasm_v128_store(out + i + 4, hi);
  }
  for (; i < p->k; i++) out[i] = half_to_float(h[i]);
}

// --- Q8_0 --------------------------------------------------------------------------------------

// roundf: halves away from zero. v − trunc(v) is exact, so the comparison with ±0.5 is too.
static inline v128_t round_away(v128_t v) {
  const v128_t t = wasm_f32x4_trunc(v), frac = wasm_f32x4_sub(v, t);
  const v128_t up = wasm_v128_and(wasm_f32x4_ge(frac, wasm_f32x4_splat(0.5f)), wasm_f32x4_splat(1.0f));
  const v128_t down = wasm_v128_and(wasm_f32x4_le(frac, wasm_f32x4_splat(-0.5f)), wasm_f32x4_splat(1.0f));
  return wasm_f32x4_sub(wasm_f32x4_add(t, up), down);
}

// One 32-block: amax = max |x|, d = amax / 127, q = roundf(x · (1/d)); the f16 of d is returned.
// (The block functions are kept out of line: V8 first runs a function as baseline code and only
// the calls after it is hot get the optimized code, so a whole tensor in one call would stay slow.)
static __attribute__((noinline)) uint16_t q8_0_block(const float *x, int8_t *q) {
  v128_t amax = wasm_f32x4_splat(0);
  for (int i = 0; i < QBLOCK; i += 4) amax = wasm_f32x4_pmax(amax, wasm_f32x4_abs(wasm_v128_load(x + i)));
  amax = wasm_f32x4_pmax(amax, wasm_i32x4_shuffle(amax, amax, 2, 3, 0, 1));
  amax = wasm_f32x4_pmax(amax, wasm_i32x4_shuffle(amax, amax, 1, 0, 3, 2));
  const float m = wasm_f32x4_extract_lane(amax, 0);
  const float d = m / 127.0f;
  const v128_t id = wasm_f32x4_splat(d != 0.0f ? 1.0f / d : 0.0f);
  for (int i = 0; i < QBLOCK; i += 16) {
    v128_t v[4];
    for (int j = 0; j < 4; j++) v[j] = wasm_i32x4_trunc_sat_f32x4(round_away(wasm_f32x4_mul(wasm_v128_load(x + i + 4 * j), id)));
    wasm_v128_store(q + i, wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(v[0], v[1]), wasm_i16x8_narrow_i32x4(v[2], v[3])));
  }
  return half_from_float(d);
}

// --- Q4_K --------------------------------------------------------------------------------------

#define SUB 32

// A level: nearest_int, clamped to 0..15 as the reference does (v < 0 ? 0 : v > 15 ? 15 : v:
// exactly pmax / pmin, one instruction each, where f32x4.max / min are long sequences in V8).
static inline v128_t level(v128_t v) {
  return wasm_f32x4_pmin(wasm_f32x4_pmax(wasm_f32x4_nearest(v), wasm_f32x4_splat(0.0f)), wasm_f32x4_splat(15.0f));
}

// The make_qkx2_quants search (nmax 15, rmin −1, rdelta 0.1, 20 steps) of four sub-blocks at
// once, one per lane: xt[i] holds element i of each, wt[i] its weight. Every lane runs the
// reference's scalar arithmetic; its branches become lane masks. Writes the levels (as floats)
// to lv[i] and returns each lane's scale and −min.
static void search4(const v128_t *xt, const v128_t *wt, v128_t *lv, v128_t *scale_out, v128_t *min_out) {
  const v128_t zero = wasm_f32x4_splat(0.0f);
  const float rdelta = 0.1f;
  v128_t mn = xt[0], mx = xt[0], sum_w = wt[0], sum_x = wasm_f32x4_mul(wt[0], xt[0]);
  for (int i = 1; i < SUB; i++) {
    mn = wasm_f32x4_pmin(mn, xt[i]); // xt < mn ? xt : mn
    mx = wasm_f32x4_pmax(mx, xt[i]); // mx < xt ? xt : mx
    sum_w = wasm_f32x4_add(sum_w, wt[i]);
    sum_x = wasm_f32x4_add(sum_x, wasm_f32x4_mul(wt[i], xt[i]));
  }
  mn = wasm_f32x4_pmin(mn, zero);
  const v128_t flat = wasm_f32x4_eq(mx, mn);
  const v128_t range = wasm_f32x4_sub(mx, mn);
  v128_t iscale = wasm_f32x4_div(wasm_f32x4_splat(15.0f), range);
  v128_t scale = wasm_f32x4_div(wasm_f32x4_splat(1.0f), iscale);
  v128_t shifted[SUB], aux[SUB];
  v128_t best = zero;
  for (int i = 0; i < SUB; i++) {
    shifted[i] = wasm_f32x4_sub(xt[i], mn);
    const v128_t l = level(wasm_f32x4_mul(iscale, shifted[i]));
    lv[i] = l;
    const v128_t diff = wasm_f32x4_sub(wasm_f32x4_add(wasm_f32x4_mul(scale, l), mn), xt[i]);
    best = wasm_f32x4_add(best, wasm_f32x4_mul(wt[i], wasm_f32x4_mul(diff, diff)));
  }
  for (int is = 0; is <= 20; is++) {
    iscale = wasm_f32x4_div(wasm_f32x4_splat(-1.0f + rdelta * (float)is + 15.0f), range);
    v128_t sum_l = zero, sum_l2 = zero, sum_xl = zero;
    for (int i = 0; i < SUB; i++) {
      const v128_t l = level(wasm_f32x4_mul(iscale, shifted[i]));
      aux[i] = l;
      const v128_t wl = wasm_f32x4_mul(wt[i], l);
      sum_l = wasm_f32x4_add(sum_l, wl);
      sum_l2 = wasm_f32x4_add(sum_l2, wasm_f32x4_mul(wl, l));
      sum_xl = wasm_f32x4_add(sum_xl, wasm_f32x4_mul(wl, xt[i]));
    }
    const v128_t det = wasm_f32x4_sub(wasm_f32x4_mul(sum_w, sum_l2), wasm_f32x4_mul(sum_l, sum_l));
    const v128_t valid = wasm_f32x4_gt(det, zero);
    v128_t this_scale = wasm_f32x4_div(wasm_f32x4_sub(wasm_f32x4_mul(sum_w, sum_xl), wasm_f32x4_mul(sum_x, sum_l)), det);
    v128_t this_min = wasm_f32x4_div(wasm_f32x4_sub(wasm_f32x4_mul(sum_l2, sum_x), wasm_f32x4_mul(sum_l, sum_xl)), det);
    const v128_t positive = wasm_f32x4_gt(this_min, zero);
    this_scale = wasm_v128_bitselect(wasm_f32x4_div(sum_xl, sum_l2), this_scale, positive);
    this_min = wasm_v128_bitselect(zero, this_min, positive);
    v128_t error = zero;
    for (int i = 0; i < SUB; i++) {
      const v128_t diff = wasm_f32x4_sub(wasm_f32x4_add(wasm_f32x4_mul(this_scale, aux[i]), this_min), xt[i]);
      error = wasm_f32x4_add(error, wasm_f32x4_mul(wt[i], wasm_f32x4_mul(diff, diff)));
    }
    const v128_t take = wasm_v128_and(valid, wasm_f32x4_lt(error, best));
    if (!wasm_v128_any_true(take)) continue;
    for (int i = 0; i < SUB; i++) lv[i] = wasm_v128_bitselect(aux[i], lv[i], take);
    best = wasm_v128_bitselect(error, best, take);
    scale = wasm_v128_bitselect(this_scale, scale, take);
    mn = wasm_v128_bitselect(this_min, mn, take);
    for (int i = 0; i < SUB; i++) shifted[i] = wasm_f32x4_sub(xt[i], mn);
  }
  // A flat sub-block (max == min): levels 0, scale 0.
  for (int i = 0; i < SUB; i++) lv[i] = wasm_v128_andnot(lv[i], flat);
  *scale_out = wasm_v128_andnot(scale, flat);
  *min_out = wasm_f32x4_neg(mn);
}

// llama.cpp's nearest_int for |v| < 2^22 (ties to even); an int conversion that saturates.
static inline int nearest_int(float v) { return (int)__builtin_rintf(v); }

// One super-block of 256 values at x into the 144 bytes at y.
static __attribute__((noinline)) void q4_k_block(const float *x, uint8_t *y) {
  float scales[8], mins[8], levels[256];
  for (int g = 0; g < 2; g++) {
    // Four sub-blocks as lanes: element i of sub-block 4g + lane, and its weight
    // sqrt(Σx²/32) + |x|.
    v128_t xt[SUB], wt[SUB], lv[SUB], sc, mn;
    float av[4];
    for (int lane = 0; lane < 4; lane++) {
      const float *xs = x + SUB * (4 * g + lane);
      float sum_x2 = 0;
      for (int i = 0; i < SUB; i++) sum_x2 += xs[i] * xs[i];
      av[lane] = __builtin_sqrtf(sum_x2 / SUB);
    }
    const v128_t avx = wasm_v128_load(av);
    for (int i = 0; i < SUB; i++) {
      const float *xs = x + 128 * g + i;
      xt[i] = wasm_f32x4_make(xs[0], xs[SUB], xs[2 * SUB], xs[3 * SUB]);
      wt[i] = wasm_f32x4_add(avx, wasm_f32x4_abs(xt[i]));
    }
    search4(xt, wt, lv, &sc, &mn);
    wasm_v128_store(scales + 4 * g, sc);
    wasm_v128_store(mins + 4 * g, mn);
    for (int i = 0; i < SUB; i++) {
      for (int lane = 0; lane < 4; lane++) levels[128 * g + SUB * lane + i] = ((const float *)&lv[i])[lane];
    }
  }
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; j++) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t *sc = y + 4;
  for (int j = 0; j < 8; j++) {
    uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]), lm = (uint8_t)nearest_int(inv_min * mins[j]);
    ls = ls < 63 ? ls : 63;
    lm = lm < 63 ? lm : 63;
    if (j < 4) {
      sc[j] = ls;
      sc[j + 4] = lm;
    } else {
      sc[j + 4] = (uint8_t)((ls & 0xf) | ((lm & 0xf) << 4));
      sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
      sc[j] |= (uint8_t)((lm >> 4) << 6);
    }
  }
  const uint16_t hd = half_from_float(max_scale / 63.0f), hm = half_from_float(max_min / 63.0f);
  y[0] = (uint8_t)hd;
  y[1] = (uint8_t)(hd >> 8);
  y[2] = (uint8_t)hm;
  y[3] = (uint8_t)(hm >> 8);
  const float d = half_to_float(hd), dmin = half_to_float(hm);
  // Every weight requantized against the coded scale and min (a sub-block whose scale codes to 0
  // keeps the search's levels).
  for (int j = 0; j < 8; j++) {
    const uint32_t s = j < 4 ? (uint32_t)(sc[j] & 63) : (uint32_t)((sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4));
    const uint32_t m = j < 4 ? (uint32_t)(sc[j + 4] & 63) : (uint32_t)((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4));
    const float dj = d * (float)s;
    if (dj == 0.0f) continue;
    const float mj = dmin * (float)m;
    for (int i = 0; i < SUB; i++) {
      const int l = nearest_int((x[SUB * j + i] + mj) / dj);
      levels[SUB * j + i] = (float)(l < 0 ? 0 : l > 15 ? 15 : l);
    }
  }
  uint8_t *qs = y + 16;
  for (int ch = 0; ch < 4; ch++) {
    for (int i = 0; i < SUB; i++) {
      qs[SUB * ch + i] = (uint8_t)((uint32_t)levels[64 * ch + i] | ((uint32_t)levels[64 * ch + SUB + i] << 4));
    }
  }
}

// --- kernels -----------------------------------------------------------------------------------

static inline __attribute__((always_inline)) void quantize(const Cmd *c, const Thread *t, int half, int q4) {
  const Params *p = (const Params *)c->p;
  uint32_t lo, hi;
  share(p->rows, 1, t, &lo, &hi);
  float *row = (float *)t->scratch;
  const uint32_t row_words = q4 ? p->k / 256 * Q4_K_WORDS : p->k / 64 * Q8_0_PAIR_WORDS;
  for (uint32_t r = lo; r < hi; r++) {
    read_row(c, p, r, half, row);
    uint32_t *out = U32(c, 0, p->dst_off + (size_t)r * row_words);
    if (q4) {
      for (uint32_t s = 0; s < p->k / 256; s++) q4_k_block(row + 256 * s, (uint8_t *)(out + (size_t)s * Q4_K_WORDS));
      continue;
    }
    // Pairs of blocks: word 0 the two scales, then each block's 32 int8.
    for (uint32_t pr = 0; pr < p->k / 64; pr++) {
      uint32_t *pw = out + (size_t)pr * Q8_0_PAIR_WORDS;
      const uint16_t d0 = q8_0_block(row + 64 * pr, (int8_t *)(pw + 1));
      const uint16_t d1 = q8_0_block(row + 64 * pr + 32, (int8_t *)(pw + 9));
      pw[0] = (uint32_t)d0 | ((uint32_t)d1 << 16);
    }
  }
}

void quantize_q8_0_f16(const Cmd *c, const Thread *t) { quantize(c, t, 1, 0); }
void quantize_q8_0_f32(const Cmd *c, const Thread *t) { quantize(c, t, 0, 0); }
void quantize_q4_k_f16(const Cmd *c, const Thread *t) { quantize(c, t, 1, 1); }
void quantize_q4_k_f32(const Cmd *c, const Thread *t) { quantize(c, t, 0, 1); }
