// conv1d: the CPU twin of shaders/conv1d.wgsl, the implicit-GEMM 1-D convolution over time-major
// activations (zero or EnCodec reflect padding, ELU on the input, residual accumulation, and
// transposed convolutions split by output phase: dilation −1, the grid's z count the phases):
//   y[r·out_stride + out_start + z, co] (+)= b[co] + Σ_{tap, ci} w[z, co, tap, ci] · act(x[src(r·stride + tap·dilation − pad_left), ci])
//
// A GEMM of the output rows × channels × (taps · cin). Threads split the rows (or, for few rows,
// the channels). A block of rows first resolves its padded input positions into a window of
// input rows (padding and ELU applied once per input row, shared by every tap, channel and
// phase), so that the row r, tap t operand is the window row (r − ra)·stride + t·dilation − tmin:
// taps at dilation ±1 are then one contiguous run of taps · cin floats. The weights are packed
// (f16 converted, 8 × 8 at a time) per 8 output channels into [k][8] panels, and 4 rows × 8
// channels register tiles walk k, broadcasting the window values. A sum is one chain of
// multiply-adds along k whatever the blocking (partial sums between blocks of k are stored and
// reloaded exactly), so every output is rounded the same way however many rows a call has:
// chunked codecs equal the unchunked computation bit for bit.

#include "runtime.h"

typedef struct {
  uint32_t m, n, cin, taps, in_len, stride;
  int32_t dilation, pad_left;
  uint32_t reflect_len, x_off, y_off, w_off, b_off, w_phase, out_stride;
  int32_t out_start;
  uint32_t out_rows, flags;
} Params;

#define FLAG_ELU 1u
#define FLAG_ACCUMULATE 2u
#define FLAG_BIAS 4u

#define MR 4
#define NR 8
// Scratch (floats): the tiles of a row block, a packed weight panel of up to KC k, the window.
// (The narrow layers' dot products are summed per block of KC k: a part of their rounding.)
#define MC_MAX 512
#define KC 4096
#define TILES (MC_MAX * NR)
#define PANEL (KC * NR)
// The window is kept to about 256 KiB (cache) unless a block of MR rows needs more.
#define WINDOW_TARGET (64 * 1024)

// The input row a padded position reads, or -1 for a zero (the WGSL `source_row`).
static inline int32_t source_row(const Params *p, int32_t pos) {
  const int32_t len = (int32_t)p->in_len;
  int32_t j = pos;
  if (p->reflect_len != 0) {
    const int32_t le = (int32_t)p->reflect_len;
    if (j < 0) j = -j;
    else if (j >= le) j = 2 * (le - 1) - j;
  }
  return j >= 0 && j < len ? j : -1;
}

static inline float elu(float v) { return v > 0.0f ? v : exp_f32(v < 0.0f ? v : 0.0f) - 1.0f; }

// dst[i] = act(src[i]) for i < n.
static void read_row(float *dst, const float *src, uint32_t n, int act) {
  if (!act) {
    __builtin_memcpy(dst, src, (size_t)n * 4);
    return;
  }
  uint32_t i = 0;
  const v128_t zero = wasm_f32x4_splat(0.0f), one = wasm_f32x4_splat(1.0f);
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(src + i);
    v128_t e = wasm_f32x4_sub(exp_f32x4(wasm_f32x4_pmin(v, zero)), one);
    wasm_v128_store(dst + i, wasm_v128_bitselect(v, e, wasm_f32x4_gt(v, zero)));
  }
  for (; i < n; i++) dst[i] = elu(src[i]);
}

// How the packed k order maps onto the window and the weights: at dilation ±1 all taps form one
// run in ascending window order (descending taps at −1); otherwise each tap is a run of cin.
typedef struct {
  uint32_t cin, taps, k;
  int32_t dilation, tmin; // tmin: the lowest tap offset, min(0, (taps − 1)·dilation)
  int merged, reversed;
} Geometry;

// Rows a, b, c, d of a 4 × 4 block as its columns: o[i] = {a[i], b[i], c[i], d[i]}.
static inline void transpose4(v128_t a, v128_t b, v128_t c, v128_t d, v128_t o[4]) {
  const v128_t ab0 = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), cd0 = wasm_i32x4_shuffle(c, d, 0, 4, 1, 5);
  const v128_t ab1 = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7), cd1 = wasm_i32x4_shuffle(c, d, 2, 6, 3, 7);
  o[0] = wasm_i32x4_shuffle(ab0, cd0, 0, 1, 4, 5);
  o[1] = wasm_i32x4_shuffle(ab0, cd0, 2, 3, 6, 7);
  o[2] = wasm_i32x4_shuffle(ab1, cd1, 0, 1, 4, 5);
  o[3] = wasm_i32x4_shuffle(ab1, cd1, 2, 3, 6, 7);
}

// A full [k][NR] panel's columns [ka, kb): each run of k contiguous in the weight rows is read 8
// k × 8 channels at a time (f16 widened 8 at a time, exactly as half_to_float does one) and
// transposed in registers.
static inline __attribute__((always_inline)) void pack_panel(const Geometry *g, const void *w,
                                                             size_t base, uint32_t n0, uint32_t ka,
                                                             uint32_t kb, int half, float *panel) {
  for (uint32_t kk = ka; kk < kb;) {
    const uint32_t q = kk / g->cin, within = kk - q * g->cin;
    const uint32_t len = g->cin - within < kb - kk ? g->cin - within : kb - kk;
    const uint32_t tap = g->reversed ? g->taps - 1 - q : q;
    const size_t src = base + (size_t)n0 * g->k + (size_t)tap * g->cin + within;
    float *d = panel + (size_t)(kk - ka) * NR;
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
      v128_t lo[NR], hi[NR], o[4];
      for (uint32_t j = 0; j < NR; j++) {
        const size_t at = src + (size_t)j * g->k + i;
        if (half) {
          halves_to_floats(wasm_v128_load((const uint16_t *)w + at), &lo[j], &hi[j]);
        } else {
          lo[j] = wasm_v128_load((const float *)w + at);
          hi[j] = wasm_v128_load((const float *)w + at + 4);
        }
      }
      float *di = d + (size_t)i * NR;
      transpose4(lo[0], lo[1], lo[2], lo[3], o);
      for (uint32_t r = 0; r < 4; r++) wasm_v128_store(di + r * NR, o[r]);
      transpose4(lo[4], lo[5], lo[6], lo[7], o);
      for (uint32_t r = 0; r < 4; r++) wasm_v128_store(di + r * NR + 4, o[r]);
      transpose4(hi[0], hi[1], hi[2], hi[3], o);
      for (uint32_t r = 0; r < 4; r++) wasm_v128_store(di + (4 + r) * NR, o[r]);
      transpose4(hi[4], hi[5], hi[6], hi[7], o);
      for (uint32_t r = 0; r < 4; r++) wasm_v128_store(di + (4 + r) * NR + 4, o[r]);
    }
    for (; i < len; i++) {
      for (uint32_t j = 0; j < NR; j++) {
        const size_t at = src + (size_t)j * g->k + i;
        d[(size_t)i * NR + j] = half ? half_to_float(((const uint16_t *)w)[at]) : ((const float *)w)[at];
      }
    }
    kk += len;
  }
}

// Weight columns [ka, kb) of packed order for output channels n0 .. n0 + nv − 1 into `panel`:
// column kk of channel j at (kk − ka)·ks + j·js ([k][NR] panels: ks = NR, js = 1, zeros up to NR;
// the narrow kernel's rows: ks = 1, js = kb − ka).
static inline __attribute__((always_inline)) void pack_weights(const Geometry *g, const void *w,
                                                               size_t base, uint32_t n0, uint32_t nv,
                                                               uint32_t ka, uint32_t kb, int half,
                                                               float *panel, uint32_t ks, uint32_t js) {
  if (nv == NR && ks == NR) {
    pack_panel(g, w, base, n0, ka, kb, half, panel);
    return;
  }
  for (uint32_t j = 0; j < NR; j++) {
    float *dst = panel + (size_t)j * js;
    if (j >= nv) {
      if (ks == NR) {
        for (uint32_t kk = ka; kk < kb; kk++) dst[(size_t)(kk - ka) * NR] = 0.0f;
      }
      continue;
    }
    const size_t row = base + (size_t)(n0 + j) * g->k;
    for (uint32_t kk = ka; kk < kb;) {
      const uint32_t q = kk / g->cin, within = kk - q * g->cin;
      const uint32_t len = g->cin - within < kb - kk ? g->cin - within : kb - kk;
      const uint32_t tap = g->reversed ? g->taps - 1 - q : q;
      const size_t src = row + (size_t)tap * g->cin + within;
      float *d = dst + (size_t)(kk - ka) * ks;
      if (half) {
        for (uint32_t i = 0; i < len; i++) d[(size_t)i * ks] = half_to_float(((const uint16_t *)w)[src + i]);
      } else {
        for (uint32_t i = 0; i < len; i++) d[(size_t)i * ks] = ((const float *)w)[src + i];
      }
      kk += len;
    }
  }
}

// The run of packed columns from kk: its offset in a window row and its length (up to kb).
static inline void run_at(const Geometry *g, uint32_t kk, uint32_t kb, uint32_t *off, uint32_t *len) {
  if (g->merged) {
    *off = kk;
    *len = kb - kk;
    return;
  }
  const uint32_t q = kk / g->cin, within = kk - q * g->cin;
  *off = (uint32_t)(((int32_t)q * g->dilation - g->tmin) * (int32_t)g->cin) + within;
  *len = g->cin - within < kb - kk ? g->cin - within : kb - kk;
}

// tile (MR × NR) (+)= the window rows a[0..MR−1] against panel columns [ka, kb) (first: from 0).
static void micro(const Geometry *g, const float *const a[MR], const float *panel, uint32_t ka,
                  uint32_t kb, int first, float *tile) {
  v128_t c[MR][2];
  for (uint32_t r = 0; r < MR; r++) {
    c[r][0] = first ? wasm_f32x4_splat(0.0f) : wasm_v128_load(tile + r * NR);
    c[r][1] = first ? wasm_f32x4_splat(0.0f) : wasm_v128_load(tile + r * NR + 4);
  }
  for (uint32_t kk = ka; kk < kb;) {
    uint32_t off, len;
    run_at(g, kk, kb, &off, &len);
    const float *b = panel + (size_t)(kk - ka) * NR;
#pragma clang loop unroll_count(4)
    for (uint32_t i = 0; i < len; i++, b += NR) {
      const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
      for (uint32_t r = 0; r < MR; r++) {
        const v128_t x = wasm_v128_load32_splat(a[r] + off + i);
        c[r][0] = MADD(x, b0, c[r][0]);
        c[r][1] = MADD(x, b1, c[r][1]);
      }
    }
    kk += len;
  }
  for (uint32_t r = 0; r < MR; r++) {
    wasm_v128_store(tile + r * NR, c[r][0]);
    wasm_v128_store(tile + r * NR + 4, c[r][1]);
  }
}

// The narrow layers (N ≤ 4 channels, e.g. EnCodec's last conv): tile rows 0..R−1, channels
// 0..N−1 (+)= dot products along k of window rows a[0..R−1] with the channels' packed rows
// (`panel`, kb − ka floats each), 4 k at a time.
static inline __attribute__((always_inline)) void narrow(const Geometry *g, const float *const a[MR],
                                                         const float *panel, uint32_t ka, uint32_t kb,
                                                         int first, float *tile, const uint32_t R,
                                                         const uint32_t N) {
  v128_t acc[MR][4];
  float tail[MR][4];
  for (uint32_t r = 0; r < R; r++) {
    for (uint32_t j = 0; j < N; j++) acc[r][j] = wasm_f32x4_splat(0.0f), tail[r][j] = 0.0f;
  }
  for (uint32_t kk = ka; kk < kb;) {
    uint32_t off, len;
    run_at(g, kk, kb, &off, &len);
    const float *wk = panel + (kk - ka);
    uint32_t i = 0;
    for (; i + 4 <= len; i += 4) {
      v128_t wv[4];
      for (uint32_t j = 0; j < N; j++) wv[j] = wasm_v128_load(wk + (size_t)j * (kb - ka) + i);
      for (uint32_t r = 0; r < R; r++) {
        const v128_t av = wasm_v128_load(a[r] + off + i);
        for (uint32_t j = 0; j < N; j++) acc[r][j] = MADD(av, wv[j], acc[r][j]);
      }
    }
    for (; i < len; i++) {
      for (uint32_t r = 0; r < R; r++) {
        for (uint32_t j = 0; j < N; j++) tail[r][j] += a[r][off + i] * wk[(size_t)j * (kb - ka) + i];
      }
    }
    kk += len;
  }
  for (uint32_t r = 0; r < R; r++) {
    for (uint32_t j = 0; j < N; j++) {
      const float v = hsum(acc[r][j]) + tail[r][j];
      tile[r * NR + j] = first ? v : tile[r * NR + j] + v;
    }
  }
}

// Stores the sums of rows [ra, rb) × channels n0 .. n0 + nv − 1 of phase z: bias and the old
// value added as the flags say, rows outside the output skipped (the WGSL `store`).
static inline __attribute__((always_inline)) void store(const Params *p, float *y, const void *b,
                                                        int half, uint32_t ra, uint32_t rb,
                                                        uint32_t n0, uint32_t nv, uint32_t z,
                                                        const float *tiles) {
  float bias[NR] = {0};
  if (p->flags & FLAG_BIAS) {
    for (uint32_t j = 0; j < nv; j++) bias[j] = half ? half_to_float(((const uint16_t *)b)[p->b_off + n0 + j])
                                                     : ((const float *)b)[p->b_off + n0 + j];
  }
  const int accumulate = (p->flags & FLAG_ACCUMULATE) != 0;
  for (uint32_t r = ra; r < rb; r++) {
    const int64_t out_row = (int64_t)r * p->out_stride + p->out_start + z;
    if (out_row < 0 || out_row >= p->out_rows) continue;
    float *o = y + p->y_off + (size_t)out_row * p->n + n0;
    const float *v = tiles + (size_t)(r - ra) * NR;
    if (nv == NR) {
      v128_t lo = wasm_f32x4_add(wasm_v128_load(v), wasm_v128_load(bias));
      v128_t hi = wasm_f32x4_add(wasm_v128_load(v + 4), wasm_v128_load(bias + 4));
      if (accumulate) {
        lo = wasm_f32x4_add(wasm_v128_load(o), lo);
        hi = wasm_f32x4_add(wasm_v128_load(o + 4), hi);
      }
      wasm_v128_store(o, lo);
      wasm_v128_store(o + 4, hi);
    } else {
      for (uint32_t j = 0; j < nv; j++) o[j] = accumulate ? o[j] + (v[j] + bias[j]) : v[j] + bias[j];
    }
  }
}

// Rows [lo, hi) × channels [n_lo, n_hi) of every phase straight from x, one sum at a time: for
// inputs so wide that a window of one tile's rows does not fit in the scratch memory.
static inline __attribute__((always_inline)) void direct(const Params *p, const Cmd *c, int half,
                                                         uint32_t lo, uint32_t hi, uint32_t n_lo,
                                                         uint32_t n_hi, uint32_t phases) {
  const float *x = F32(c, 1, p->x_off);
  const void *w = (const void *)(uintptr_t)c->b[2];
  const void *b = (const void *)(uintptr_t)c->b[3];
  float *y = F32(c, 0, 0);
  const uint32_t kdim = p->taps * p->cin;
  for (uint32_t z = 0; z < phases; z++) {
    for (uint32_t r = lo; r < hi; r++) {
      for (uint32_t n = n_lo; n < n_hi; n++) {
        const size_t wb = p->w_off + (size_t)z * p->w_phase + (size_t)n * kdim;
        float sum = 0.0f;
        for (uint32_t tap = 0; tap < p->taps; tap++) {
          const int32_t src = source_row(p, (int32_t)r * (int32_t)p->stride +
                                                (int32_t)tap * p->dilation - p->pad_left);
          if (src < 0) continue;
          const float *xr = x + (size_t)src * p->cin;
          for (uint32_t ci = 0; ci < p->cin; ci++) {
            const float v = (p->flags & FLAG_ELU) ? elu(xr[ci]) : xr[ci];
            const size_t wi = wb + (size_t)tap * p->cin + ci;
            sum += (half ? half_to_float(((const uint16_t *)w)[wi]) : ((const float *)w)[wi]) * v;
          }
        }
        float tile[NR];
        tile[0] = sum;
        store(p, y, b, half, r, r + 1, n, 1, z, tile);
      }
    }
  }
}

// The output rows whose window of input rows fits in `budget` floats.
static uint32_t block_rows(uint32_t budget, uint32_t cin, uint32_t span, uint32_t stride) {
  const uint32_t fit = budget / cin;
  if (fit < span) return 0;
  return (fit - span) / (stride ? stride : 1) + 1;
}

static inline __attribute__((always_inline)) void conv1d(const Cmd *c, const Thread *t, int half) {
  const Params *p = (const Params *)c->p;
  const uint32_t m = p->m, n = p->n, cin = p->cin, phases = c->groups[2];
  if (m == 0 || n == 0 || cin == 0 || p->taps == 0) return;
  Geometry g = {cin, p->taps, p->taps * cin, p->dilation, 0, 0, 0};
  const int64_t reach = (int64_t)(p->taps - 1) * p->dilation;
  g.tmin = reach < 0 ? (int32_t)reach : 0;
  const uint32_t span = (uint32_t)((reach < 0 ? -reach : reach) + 1);
  g.merged = p->dilation == 1 || p->dilation == -1;
  g.reversed = p->dilation == -1;

  // Rows when every thread gets enough of them, else output channels (whole panels).
  uint32_t lo = 0, hi = m, n_lo = 0, n_hi = n;
  if (m >= 16 * t->count || n < 2 * NR * t->count) share(m, MR, t, &lo, &hi);
  else share(n, NR, t, &n_lo, &n_hi);
  if (lo >= hi || n_lo >= n_hi) return;

  // A plain GEMM (one tap, stride 1, no padding or ELU: linear.c's many rows) reads its rows of
  // x in place, in the largest blocks, so that each weight panel serves MC_MAX rows.
  const int act = (p->flags & FLAG_ELU) != 0, thin = n <= 4;
  const int in_place = p->taps == 1 && p->stride == 1 && p->pad_left == 0 && !act &&
                       p->reflect_len == 0 && hi <= p->in_len;
  // Rows per block: as many as keep the window within WINDOW_TARGET floats, at least MR where
  // the scratch memory holds them; none fit: the direct loop.
  const uint32_t capacity = t->scratch_bytes / 4 - TILES - PANEL;
  uint32_t mc = in_place ? MC_MAX : block_rows(WINDOW_TARGET, cin, span, p->stride);
  if (mc < MR) {
    const uint32_t most = block_rows(capacity, cin, span, p->stride);
    mc = most < MR ? most : MR;
  }
  if (mc == 0) {
    direct(p, c, half, lo, hi, n_lo, n_hi, phases);
    return;
  }
  if (mc > MC_MAX) mc = MC_MAX;
  if (mc > MR) mc -= mc % MR;

  float *tiles = (float *)t->scratch, *panel = tiles + TILES, *copied = panel + PANEL;
  const float *x = F32(c, 1, p->x_off);
  const void *w = (const void *)(uintptr_t)c->b[2];
  const void *b = (const void *)(uintptr_t)c->b[3];
  float *y = F32(c, 0, 0);
  for (uint32_t ra = lo; ra < hi; ra += mc) {
    const uint32_t rb = hi - ra < mc ? hi : ra + mc;
    // The window: input positions ra·stride + tmin − pad_left onwards.
    const int32_t first = (int32_t)ra * (int32_t)p->stride + g.tmin - p->pad_left;
    const uint32_t rows = (rb - 1 - ra) * p->stride + span;
    const float *window = in_place ? x + (size_t)ra * cin : copied;
    for (uint32_t i = 0; i < rows && !in_place; i++) {
      const int32_t src = source_row(p, first + (int32_t)i);
      float *dst = copied + (size_t)i * cin;
      if (src < 0) __builtin_memset(dst, 0, (size_t)cin * 4);
      else read_row(dst, x + (size_t)src * cin, cin, act);
    }
    for (uint32_t z = 0; z < phases; z++) {
      const size_t base = p->w_off + (size_t)z * p->w_phase;
      for (uint32_t n0 = n_lo; n0 < n_hi; n0 += NR) {
        const uint32_t nv = n_hi - n0 < NR ? n_hi - n0 : NR;
        for (uint32_t ka = 0; ka < g.k; ka += KC) {
          const uint32_t kb = g.k - ka < KC ? g.k : ka + KC;
          if (thin) pack_weights(&g, w, base, n0, nv, ka, kb, half, panel, 1, kb - ka);
          else pack_weights(&g, w, base, n0, nv, ka, kb, half, panel, NR, 1);
          // Rows per tile: MR, or 2 for 3 and 4 narrow channels (registers).
          const uint32_t step = thin && nv > 2 ? 2 : MR;
          for (uint32_t r = ra; r < rb; r += step) {
            const float *a[MR];
            for (uint32_t i = 0; i < MR; i++) {
              const uint32_t row = r + i < rb ? r + i : ra; // rows past the block: any valid row
              a[i] = window + (size_t)(row - ra) * p->stride * cin;
            }
            float *tile = tiles + (size_t)(r - ra) * NR;
            const int first = ka == 0;
            switch (thin ? nv : 0) {
              case 0: micro(&g, a, panel, ka, kb, first, tile); break;
              case 1: narrow(&g, a, panel, ka, kb, first, tile, MR, 1); break;
              case 2: narrow(&g, a, panel, ka, kb, first, tile, MR, 2); break;
              case 3: narrow(&g, a, panel, ka, kb, first, tile, 2, 3); break;
              default: narrow(&g, a, panel, ka, kb, first, tile, 2, 4); break;
            }
          }
        }
        store(p, y, b, half, ra, rb, n0, nv, z, tiles);
      }
    }
  }
}

void conv1d_f16(const Cmd *c, const Thread *t) { conv1d(c, t, 1); }
void conv1d_f32(const Cmd *c, const Thread *t) { conv1d(c, t, 0); }
