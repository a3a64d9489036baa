// The VALL-E sampler, the CPU twin of shaders/sample.wgsl (read its header for the stages, the
// in-place vs copy semantics and the quirks): the same bindings, parameters and results. Threads
// split the rows; a row runs on one thread.
//
// Wherever a sum decides something discrete (a filter's threshold, the categorical draw), it is
// taken in the WGSL's order: the "workgroup" sums add element i into lane i mod 256 in index
// order and then fold the 256 lanes as the kernel's tree does; the draw's chunk sums walk the same
// contiguous chunks. Sorting gives way to selection where only one rank is needed (min-p's 32nd,
// top-k's k-th); top-p sorts only the logits it keeps, the same values the WGSL sorts, since its
// sums go by rank. The random draw is the same pcg4d hash in u32 arithmetic.

#include "runtime.h"

#define WG 256
// Anything at or below this is a filtered logit.
#define FILTERED_BELOW (-1.0e38f)

typedef struct {
  uint32_t rows, cols, logits_off, work_off, prev_off, n_prev, rep_mode, pen_off;
  float len_pen_div;
  uint32_t len_pen_token;
  float min_p;
  uint32_t top_k;
  float top_p;
  uint32_t temp_mode;
  float temperature, min_temperature;
  uint32_t top_no, greedy, seed, stream, counter, out_off, score_off;
} Params;

static inline int filtered(float v) { return v <= FILTERED_BELOW; }

// --- sums in the workgroup's order -------------------------------------------------------------

// Folds 256 lane sums as reduce_sum does: lane j += lane j + s for s = 128, 64, …, 1.
static float fold(float *lanes) {
  for (uint32_t s = WG / 2; s >= 4; s >>= 1) {
    for (uint32_t j = 0; j < s; j += 4) {
      wasm_v128_store(lanes + j, wasm_f32x4_add(wasm_v128_load(lanes + j), wasm_v128_load(lanes + j + s)));
    }
  }
  lanes[0] += lanes[2];
  lanes[1] += lanes[3];
  return lanes[0] + lanes[1];
}

// Σ x[i] in the workgroup's order (filtered entries included, as top-nσ sums them).
static float wg_sum(const float *x, uint32_t n, float *lanes) {
  __builtin_memset(lanes, 0, WG * sizeof(float));
  uint32_t i = 0;
  for (; i + WG <= n; i += WG) {
    for (uint32_t j = 0; j < WG; j += 4) {
      wasm_v128_store(lanes + j, wasm_f32x4_add(wasm_v128_load(lanes + j), wasm_v128_load(x + i + j)));
    }
  }
  for (uint32_t j = 0; i + j < n; j++) lanes[j] += x[i + j];
  return fold(lanes);
}

// Σ (x[i] − mean)² in the workgroup's order.
static float wg_square_sum(const float *x, uint32_t n, float mean, float *lanes) {
  __builtin_memset(lanes, 0, WG * sizeof(float));
  const v128_t mv = wasm_f32x4_splat(mean);
  uint32_t i = 0;
  for (; i + WG <= n; i += WG) {
    for (uint32_t j = 0; j < WG; j += 4) {
      v128_t d = wasm_f32x4_sub(wasm_v128_load(x + i + j), mv);
      wasm_v128_store(lanes + j, wasm_f32x4_add(wasm_v128_load(lanes + j), wasm_f32x4_mul(d, d)));
    }
  }
  for (uint32_t j = 0; i + j < n; j++) {
    float d = x[i + j] - mean;
    lanes[j] += d * d;
  }
  return fold(lanes);
}

// exp(x[i] − m) of one block of up to 256 entries, 0 where filtered. Every lane is exp_f32's
// value (exp_f32 is one lane of exp_f32x4), so later single recomputations agree bit for bit.
static void block_exps(const float *x, uint32_t n, float m, float *e) {
  const v128_t mv = wasm_f32x4_splat(m), cut = wasm_f32x4_splat(FILTERED_BELOW);
  uint32_t j = 0;
  for (; j + 4 <= n; j += 4) {
    v128_t v = wasm_v128_load(x + j), drop = wasm_f32x4_le(v, cut);
    // Filtered lanes take exp(0), not an underflow (whose denormal steps are slow), then 0.
    wasm_v128_store(e + j, wasm_v128_andnot(exp_f32x4(wasm_f32x4_sub(wasm_v128_bitselect(mv, v, drop), mv)), drop));
  }
  for (; j < n; j++) e[j] = filtered(x[j]) ? 0.0f : exp_f32(x[j] - m);
}

// Σ exp(x[i] − m) over unfiltered entries in the workgroup's order (row_exp_sum). With `chunks`,
// also the sums of the 256 contiguous chunks of `chunk` entries the categorical draw walks.
static float exp_sum(const float *x, uint32_t n, float m, float *lanes, float *chunks, uint32_t chunk) {
  float e[WG];
  __builtin_memset(lanes, 0, WG * sizeof(float));
  if (chunks) __builtin_memset(chunks, 0, WG * sizeof(float));
  uint32_t ci = 0, boundary = chunk;
  for (uint32_t i = 0; i < n; i += WG) {
    const uint32_t len = n - i < WG ? n - i : WG;
    block_exps(x + i, len, m, e);
    if (len == WG) {
      for (uint32_t j = 0; j < WG; j += 4) {
        wasm_v128_store(lanes + j, wasm_f32x4_add(wasm_v128_load(lanes + j), wasm_v128_load(e + j)));
      }
    } else {
      for (uint32_t j = 0; j < len; j++) lanes[j] += e[j];
    }
    if (!chunks) continue;
    for (uint32_t j = 0; j < len; j++) {
      if (i + j == boundary) {
        ci++;
        boundary += chunk;
      }
      chunks[ci] += e[j];
    }
  }
  return fold(lanes);
}

static float row_max(const float *x, uint32_t n) {
  v128_t mv = wasm_f32x4_splat(NEG_BIG);
  uint32_t i = 0;
  for (; i + 4 <= n; i += 4) mv = wasm_f32x4_pmax(mv, wasm_v128_load(x + i));
  float a = wasm_f32x4_extract_lane(mv, 0), b = wasm_f32x4_extract_lane(mv, 1);
  float c = wasm_f32x4_extract_lane(mv, 2), d = wasm_f32x4_extract_lane(mv, 3);
  float m = a > b ? a : b;
  m = c > m ? c : m;
  m = d > m ? d : m;
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

// --- selection and sorting ---------------------------------------------------------------------

static inline void swap(float *v, uint32_t a, uint32_t b) {
  float t = v[a];
  v[a] = v[b];
  v[b] = t;
}

// The k-th largest (1 ≤ k ≤ n) of v[0..n), reordering v: quickselect with a three-way partition
// (filtered rows hold many equal values).
static float quickselect(float *v, uint32_t n, uint32_t k) {
  uint32_t lo = 0, hi = n;
  const uint32_t target = k - 1;
  while (hi - lo > 1) {
    float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi - 1];
    float pivot = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
    // [lo, gt) > pivot, [gt, i) == pivot, [lt, hi) < pivot.
    uint32_t gt = lo, i = lo, lt = hi;
    while (i < lt) {
      if (v[i] > pivot) swap(v, gt++, i++);
      else if (v[i] < pivot) swap(v, i, --lt);
      else i++;
    }
    if (target < gt) hi = gt;
    else if (target >= lt) lo = lt;
    else return pivot;
  }
  return v[lo];
}

// Inserts v into the descending top[0..k), dropping the last.
static inline void insert_top(float *top, uint32_t k, float v) {
  uint32_t j = k - 1;
  for (; j > 0 && top[j - 1] < v; j--) top[j] = top[j - 1];
  top[j] = v;
}

// The k-th largest (1 ≤ k ≤ n) of x[0..n). Up to TOP_LIST: one pass keeping the k largest in a
// sorted list, four candidates at a time checked against its last (few ever enter); beyond,
// quickselect on a copy in buf.
#define TOP_LIST 128
static float kth_largest(const float *x, uint32_t n, uint32_t k, float *buf) {
  if (k > TOP_LIST) {
    __builtin_memcpy(buf, x, n * sizeof(float));
    return quickselect(buf, n, k);
  }
  for (uint32_t i = 0; i < k; i++) insert_top(buf, i + 1, x[i]);
  uint32_t i = k;
  for (; i + 4 <= n; i += 4) {
    if (!wasm_v128_any_true(wasm_f32x4_gt(wasm_v128_load(x + i), wasm_f32x4_splat(buf[k - 1])))) continue;
    for (uint32_t j = i; j < i + 4; j++) {
      if (x[j] > buf[k - 1]) insert_top(buf, k, x[j]);
    }
  }
  for (; i < n; i++) {
    if (x[i] > buf[k - 1]) insert_top(buf, k, x[i]);
  }
  return buf[k - 1];
}

// The least power of two ≥ n (2^31 at most).
static inline uint32_t pow2_at_least(uint32_t n) {
  uint32_t p = 1;
  while (p < n && p < 0x80000000u) p <<= 1;
  return p;
}

// The value of rank k (1 ≤ k ≤ cols) in the WGSL's sorted row: the row padded with NEG_BIG to a
// power of two, in descending order. The pads come after the values above NEG_BIG, so they only
// shift the ranks of the values below it; the selection runs over the values alone.
static float sorted_at(const float *x, uint32_t cols, uint32_t k, float *buf) {
  const uint32_t pads = pow2_at_least(cols) - cols;
  uint32_t above = 0, equal = 0;
  for (uint32_t i = 0; i < cols; i++) {
    above += x[i] > NEG_BIG;
    equal += x[i] == NEG_BIG;
  }
  if (k > above && k <= above + equal + pads) return NEG_BIG;
  return kth_largest(x, cols, k <= above ? k : k - pads, buf);
}

// Float bits as keys whose ascending order is the floats' descending order.
static inline uint32_t descending_key(float f) {
  uint32_t u = bits_from_f32(f);
  return (u & 0x80000000u) ? u : ~(u | 0x80000000u);
}

static inline float from_descending_key(uint32_t k) {
  return f32_from_bits((k & 0x80000000u) ? k : ~k ^ 0x80000000u);
}

// Sorts v[0..n) in descending order (insertion for short rows, else an LSD radix sort by bytes).
static void sort_descending(float *v, uint32_t n, float *tmp) {
  if (n <= 32) {
    for (uint32_t i = 1; i < n; i++) {
      float x = v[i];
      uint32_t j = i;
      for (; j > 0 && v[j - 1] < x; j--) v[j] = v[j - 1];
      v[j] = x;
    }
    return;
  }
  uint32_t *a = (uint32_t *)v, *b = (uint32_t *)tmp, count[256];
  for (uint32_t i = 0; i < n; i++) a[i] = descending_key(v[i]);
  for (uint32_t shift = 0; shift < 32; shift += 8) {
    __builtin_memset(count, 0, sizeof(count));
    for (uint32_t i = 0; i < n; i++) count[(a[i] >> shift) & 255]++;
    if (count[(a[0] >> shift) & 255] == n) continue;
    for (uint32_t d = 0, at = 0; d < 256; d++) {
      uint32_t c = count[d];
      count[d] = at;
      at += c;
    }
    for (uint32_t i = 0; i < n; i++) b[count[(a[i] >> shift) & 255]++] = a[i];
    uint32_t *s = a;
    a = b;
    b = s;
  }
  for (uint32_t i = 0; i < n; i++) v[i] = from_descending_key(a[i]);
}

// --- stages ------------------------------------------------------------------------------------

static void drop_below(float *x, uint32_t n, float threshold) {
  for (uint32_t i = 0; i < n; i++) {
    if (x[i] < threshold) x[i] = NEG_BIG;
  }
}

// min-p: p_j < min_p · p_max is dropped unless among the 32 largest.
static void min_p(const Params *p, float *x, float *lanes, float *buf) {
  const uint32_t cols = p->cols;
  const float m = row_max(x, cols);
  const float inv = 1.0f / exp_sum(x, cols, m, lanes, 0, 0);
  const float threshold = p->min_p * inv;
  const float keep_from = cols > 32 ? sorted_at(x, cols, 32, buf) : NEG_BIG;
  const v128_t mv = wasm_f32x4_splat(m), iv = wasm_f32x4_splat(inv), tv = wasm_f32x4_splat(threshold);
  const v128_t kv = wasm_f32x4_splat(keep_from), cut = wasm_f32x4_splat(FILTERED_BELOW);
  uint32_t i = 0;
  for (; i + 4 <= cols; i += 4) {
    v128_t v = wasm_v128_load(x + i), gone = wasm_f32x4_le(v, cut);
    v128_t e = exp_f32x4(wasm_f32x4_sub(wasm_v128_bitselect(mv, v, gone), mv)); // as block_exps
    v128_t small = wasm_f32x4_lt(wasm_f32x4_mul(e, iv), tv);
    v128_t drop = wasm_v128_andnot(wasm_v128_and(small, wasm_f32x4_lt(v, kv)), gone);
    wasm_v128_store(x + i, wasm_v128_bitselect(wasm_f32x4_splat(NEG_BIG), v, drop));
  }
  for (; i < cols; i++) {
    float v = x[i];
    if (!filtered(v) && exp_f32(v - m) * inv < threshold && v < keep_from) x[i] = NEG_BIG;
  }
}

// top-k (keep x ≥ the k-th largest), then top-p over the kept logits in descending order.
static void top_k_top_p(const Params *p, float *x, float *lanes, float *buf) {
  const uint32_t cols = p->cols;
  if (p->top_k > 0) {
    drop_below(x, cols, sorted_at(x, cols, p->top_k < cols ? p->top_k : cols, buf));
  }
  if (p->top_p >= 1.0f) return;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < cols; i++) {
    if (!filtered(x[i])) buf[kept++] = x[i];
  }
  float *e = buf + cols;
  sort_descending(buf, kept, e);
  const float m = kept > 0 ? buf[0] : NEG_BIG;
  // exp(v − m) by rank, summed in the workgroup's order (the sum of exp_sum over the kept).
  for (uint32_t i = 0; i < kept; i += WG) block_exps(buf + i, kept - i < WG ? kept - i : WG, m, e + i);
  const float inv = 1.0f / wg_sum(e, kept, lanes);
  // Cumulative probabilities in sorted order, compensated as the WGSL's kahan_add.
  float sum = 0.0f, carry = 0.0f, cut = NEG_BIG;
  for (uint32_t i = 0; i < kept; i++) {
    float y = e[i] * inv - carry;
    float s = sum + y;
    carry = (s - sum) - y;
    sum = s;
    if (sum > p->top_p) {
      cut = buf[i];
      break;
    }
  }
  drop_below(x, cols, cut);
}

// Dynamic temperature (in place), from the probability of the top token.
static void dynamic_temperature(const Params *p, float *x, float *lanes) {
  const uint32_t cols = p->cols;
  const float m = row_max(x, cols);
  const float p_max = 1.0f / exp_sum(x, cols, m, lanes, 0, 0);
  const float t = p->temperature -
                  (p->temperature - p->min_temperature) / (1.0f + exp_f32(-10.0f * (p_max - 0.5f)));
  for (uint32_t i = 0; i < cols; i++) {
    if (!filtered(x[i])) x[i] = x[i] / t;
  }
}

// top-nσ with n = 1: keep x ≥ max − σ (unbiased std); any filtered logit makes the original's std
// NaN, and then every logit is filtered.
static void top_n_sigma(const Params *p, float *x, float *lanes) {
  const uint32_t cols = p->cols;
  int degenerate = 0;
  for (uint32_t i = 0; i < cols; i++) degenerate |= filtered(x[i]);
  const float m = row_max(x, cols);
  const float mean = wg_sum(x, cols, lanes) / (float)cols;
  const float sigma = __builtin_sqrtf(wg_square_sum(x, cols, mean, lanes) / (float)(cols - 1));
  for (uint32_t i = 0; i < cols; i++) {
    if (degenerate || x[i] < m - sigma) x[i] = NEG_BIG;
  }
}

// pcg4d (Jarzynski & Olano 2020) of (seed, stream, counter, row); the draw uses its x.
static uint32_t pcg4d_x(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  uint32_t x = a * 1664525u + 1013904223u, y = b * 1664525u + 1013904223u;
  uint32_t z = c * 1664525u + 1013904223u, w = d * 1664525u + 1013904223u;
  x += y * w;
  y += z * x;
  z += x * y;
  w += y * z;
  x ^= x >> 16;
  y ^= y >> 16;
  z ^= z >> 16;
  w ^= w >> 16;
  x += y * w;
  return x;
}

// The categorical draw: inverse CDF over the 256 contiguous chunks, then inside the chunk that
// holds the target, in the WGSL's order and with its comparisons.
static uint32_t draw(const Params *p, const float *x, uint32_t row, float m, float total,
                     const float *chunks, uint32_t chunk) {
  const uint32_t cols = p->cols;
  const uint32_t h = pcg4d_x(p->seed, p->stream, p->counter, row);
  const float goal = (float)(h >> 8) * (1.0f / 16777216.0f) * total;
  float acc = 0.0f;
  uint32_t c = 0;
  while (c < WG - 1 && acc + chunks[c] <= goal) acc += chunks[c++];
  const uint32_t end = (c + 1) * chunk < cols ? (c + 1) * chunk : cols;
  uint32_t last = 0xffffffffu;
  for (uint32_t i = c * chunk; i < end; i++) {
    if (filtered(x[i])) continue;
    acc += exp_f32(x[i] - m);
    last = i;
    if (acc > goal) return i;
  }
  // Rounding put the target past the chunk's end: the last unfiltered token up to it.
  for (uint32_t i = 0; i < end; i++) {
    if (!filtered(x[i])) last = i;
  }
  return last;
}

// The index of the first largest logit.
static uint32_t first_max(const float *x, uint32_t cols) {
  uint32_t best = 0;
  for (uint32_t i = 1; i < cols; i++) best = x[i] > x[best] ? i : best;
  return best;
}

static void sample_row(const Cmd *c, const Params *p, uint32_t row, float *lanes, float *buf, int can_sort) {
  const uint32_t cols = p->cols;
  float *logits = F32(c, 0, 0);
  uint32_t *tokens = U32(c, 1, 0);
  float *work = logits + p->work_off + (size_t)row * cols;
  float *x = logits + p->logits_off + (size_t)row * cols;
  int copied = 0;

  // 1. Repetition penalty, once per occurrence in the original's order.
  if (p->rep_mode != 0) {
    const float *divisors = F32(c, 3, p->pen_off);
    for (uint32_t i = 0; i < p->n_prev; i++) {
      const uint32_t tok = tokens[p->prev_off + i];
      if ((p->rep_mode == 2 && row <= i) || tok >= cols) continue;
      if (!filtered(x[tok])) x[tok] = x[tok] / divisors[p->n_prev - i];
    }
  }
  // 2. Length penalty on the stop token.
  if (p->len_pen_div > 0.0f && p->len_pen_token < cols && !filtered(x[p->len_pen_token])) {
    x[p->len_pen_token] = x[p->len_pen_token] / p->len_pen_div;
  }
  // 3. min-p (out of place).
  if (p->min_p > 0.0f) {
    __builtin_memmove(work, x, cols * sizeof(float));
    x = work;
    copied = 1;
    if (can_sort) min_p(p, x, lanes, buf);
  }
  // 4. top-k, top-p (in place).
  if ((p->top_k > 0 || p->top_p < 1.0f) && can_sort) top_k_top_p(p, x, lanes, buf);
  // 5. Temperature: dynamic in place, plain into the work row.
  if (p->temp_mode == 2) {
    dynamic_temperature(p, x, lanes);
  } else if (p->temp_mode == 1) {
    for (uint32_t i = 0; i < cols; i++) work[i] = filtered(x[i]) ? x[i] : x[i] / p->temperature;
    x = work;
    copied = 1;
  }
  // 6. top-nσ (out of place).
  if (p->top_no != 0) {
    if (!copied) {
      __builtin_memmove(work, x, cols * sizeof(float));
      x = work;
    }
    top_n_sigma(p, x, lanes);
  }
  // 7. Choice and score.
  const float m = row_max(x, cols);
  const uint32_t chunk = (cols + WG - 1) / WG;
  float chunks[WG];
  const int categorical = p->greedy == 0;
  const float total = exp_sum(x, cols, m, lanes, categorical ? chunks : 0, chunk);
  uint32_t choice = 0;
  if (!categorical) {
    choice = first_max(x, cols);
  } else if (!filtered(m)) {
    choice = draw(p, x, row, m, total, chunks, chunk);
  }
  tokens[p->out_off + row] = choice;
  // Every logit filtered: the original's softmax gives NaN.
  F32(c, 2, p->score_off)[row] =
      filtered(m) || choice >= cols ? f32_from_bits(0x7fc00000u) : exp_f32(x[choice] - m) * (1.0f / total);
}

// sample: one row of logits per work item.   p: see Params (shaders/sample.wgsl)
void sample(const Cmd *c, const Thread *t) {
  const Params *p = (const Params *)c->p;
  float *lanes = (float *)t->scratch, *buf = lanes + WG;
  // The sorting stages need 2 · cols floats of scratch (the host keeps cols ≤ 2048 there, as the
  // WGSL's workgroup memory requires).
  const int can_sort = 2 * (uint64_t)p->cols + WG <= t->scratch_bytes / sizeof(float);
  uint32_t lo, hi;
  share(p->rows, 1, t, &lo, &hi);
  for (uint32_t r = lo; r < hi; r++) sample_row(c, p, r, lanes, buf, can_sort);
}
