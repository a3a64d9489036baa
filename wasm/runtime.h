// The CPU backend's kernel runtime: what every kernel file of wasm/ includes. A kernel is the C
// twin of the WGSL kernel of the same name in shaders/: the same bindings (buffer addresses in
// the shared WebAssembly memory, element offsets in the parameters) and the same `Params` fields
// in the same order, so the ops in src/ops/ record one command for either backend. Activations
// and accumulators are f32; weights are f16 or f32 (the `.f16`/`.f32` variants), f16 converted in
// registers.
//
// A command runs on every thread of the pool at once; a kernel splits its own work by
// `t->id`/`t->count` (see `share`) and may meet the other threads at `barrier(t)`, which every
// thread must reach equally often.

#ifndef VALLE_RUNTIME_H
#define VALLE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <wasm_simd128.h>

#define MAX_BINDINGS 10
#define MAX_PARAMS 32

// One recorded dispatch: the kernel's index in the table of kernels.h, the WebGPU workgroup
// counts (for kernels whose extent comes from the grid), buffer addresses, parameter words.
typedef struct Cmd {
  uint32_t kernel;
  uint32_t groups[3];
  uint32_t b[MAX_BINDINGS];
  uint32_t p[MAX_PARAMS];
} Cmd;

struct Control;

// The thread a kernel runs on: its index, the pool size, its private scratch memory.
typedef struct Thread {
  uint32_t id;
  uint32_t count;
  uint8_t *scratch;
  uint32_t scratch_bytes;
  struct Control *control;
} Thread;

typedef void (*KernelFn)(const Cmd *c, const Thread *t);

// Waits until every thread of the pool has called it (a no-op with one thread).
void barrier(const Thread *t);

// This thread's share [*lo, *hi) of n items, in contiguous blocks of `grain` items.
static inline void share(uint32_t n, uint32_t grain, const Thread *t, uint32_t *lo, uint32_t *hi) {
  uint32_t blocks = (n + grain - 1) / grain;
  uint32_t per = blocks / t->count, extra = blocks % t->count;
  uint32_t first = t->id * per + (t->id < extra ? t->id : extra);
  uint32_t count = per + (t->id < extra ? 1 : 0);
  uint32_t a = first * grain, b = (first + count) * grain;
  *lo = a < n ? a : n;
  *hi = b < n ? b : n;
}

// Parameter words as the WGSL `Params` struct reads them.
static inline float param_f32(const Cmd *c, int i) {
  union { uint32_t u; float f; } v = {c->p[i]};
  return v.f;
}

// Typed views of a binding at an element offset.
#define F32(c, i, off) ((float *)(uintptr_t)(c)->b[i] + (off))
#define U32(c, i, off) ((uint32_t *)(uintptr_t)(c)->b[i] + (off))
#define F16(c, i, off) ((uint16_t *)(uintptr_t)(c)->b[i] + (off))

// --- f16 ------------------------------------------------------------------------------------

static inline float f32_from_bits(uint32_t u) {
  union { uint32_t u; float f; } v = {u};
  return v.f;
}

static inline uint32_t bits_from_f32(float f) {
  union { float f; uint32_t u; } v = {f};
  return v.u;
}

// IEEE half → float, exact for every finite half (denormals included): the magnitude bits moved
// into float position and rescaled by 2^112, the sign kept.
static inline float half_to_float(uint16_t h) {
  uint32_t u = ((uint32_t)(h & 0x7fff)) << 13;
  float f = f32_from_bits(u) * 0x1p112f;
  return (h & 0x8000) ? -f : f;
}

// Eight halves as floats, lanes 0..3 in *lo and 4..7 in *hi, by the same rule done on 16-bit
// lanes: the upper half of each float is the half's sign and its bits 14..3 (arithmetic shift
// right by 3, the copies of the sign cleared), the lower half its bits 2..0 at the top (shift left
// by 13); interleaving the two gives the float's bits, rescaled by 2^112.
static inline void halves_to_floats(v128_t h, v128_t *lo, v128_t *hi) {
  v128_t upper = wasm_v128_and(wasm_i16x8_shr(h, 3), wasm_i16x8_const_splat((int16_t)0x8fff));
  v128_t lower = wasm_i16x8_shl(h, 13);
  const v128_t scale = wasm_f32x4_const_splat(0x1p112f);
  *lo = wasm_f32x4_mul(wasm_i16x8_shuffle(lower, upper, 0, 8, 1, 9, 2, 10, 3, 11), scale);
  *hi = wasm_f32x4_mul(wasm_i16x8_shuffle(lower, upper, 4, 12, 5, 13, 6, 14, 7, 15), scale);
}

// a · b + c, four lanes. The relaxed-SIMD build fuses it (one rounding, where the CPU has FMA);
// the plain SIMD128 build, for hosts without relaxed SIMD, multiplies then adds.
#if VALLE_RELAXED
#define MADD(a, b, c) \
  ((v128_t)__builtin_wasm_relaxed_madd_f32x4((__f32x4)(a), (__f32x4)(b), (__f32x4)(c)))
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul(a, b), c)
#endif

static inline float hsum(v128_t a) {
  return (wasm_f32x4_extract_lane(a, 0) + wasm_f32x4_extract_lane(a, 1)) +
         (wasm_f32x4_extract_lane(a, 2) + wasm_f32x4_extract_lane(a, 3));
}

// --- math -----------------------------------------------------------------------------------

// exp(x) in f32 to about 1 ulp: x = n ln2 + r with |r| ≤ ln2/2 (ln2 split in two for an exact
// reduction), a degree-6 polynomial for e^r, then 2^n put into the exponent (two steps, so
// results down to the denormal range are right). Overflows to +inf, underflows to 0.
float exp_f32(float x);

// 4 lanes of exp_f32.
v128_t exp_f32x4(v128_t x);

// exp_f32x4 inlined into a kernel's loop (the same arithmetic, the same results), for loops where
// the call and its constants would cost as much as the exponentials.
static inline __attribute__((always_inline)) v128_t exp_f32x4_inline(v128_t x) {
  const v128_t hi = wasm_f32x4_const_splat(88.72283935546875f);  // ln(FLT_MAX) rounded up
  const v128_t lo = wasm_f32x4_const_splat(-103.97208404541015f); // below: 0
  v128_t over = wasm_f32x4_gt(x, hi), under = wasm_f32x4_lt(x, lo);
  // Lanes that end as 0 or inf compute exp(0) meanwhile: no denormal arithmetic on the way.
  x = wasm_v128_andnot(wasm_f32x4_pmin(x, hi), wasm_v128_or(over, under));
  v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_const_splat(1.44269504088896341f)));
  // Cody-Waite: ln2 = 0.693359375 - 2.12194440e-4 (the first part has few bits: n·C1 is exact).
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_const_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_const_splat(-2.12194440e-4f)));
  // e^r = 1 + r + r² P(r) (Cephes expf).
  v128_t p = wasm_f32x4_const_splat(1.9875691500e-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_const_splat(1.3981999507e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_const_splat(8.3334519073e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_const_splat(4.1665795894e-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_const_splat(1.6666665459e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_const_splat(5.0000001201e-1f));
  p = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(p, r), r), r),
                     wasm_f32x4_const_splat(1.0f));
  // 2^n in two normal factors (n ∈ [-150, 128]).
  v128_t ni = wasm_i32x4_trunc_sat_f32x4(n);
  v128_t n1 = wasm_i32x4_shr(ni, 1), n2 = wasm_i32x4_sub(ni, n1);
  v128_t bias = wasm_i32x4_const_splat(127);
  v128_t s1 = wasm_i32x4_shl(wasm_i32x4_add(n1, bias), 23);
  v128_t s2 = wasm_i32x4_shl(wasm_i32x4_add(n2, bias), 23);
  v128_t y = wasm_f32x4_mul(wasm_f32x4_mul(p, s1), s2);
  y = wasm_v128_bitselect(wasm_f32x4_const_splat(__builtin_inff()), y, over);
  return wasm_v128_andnot(y, under);
}

// ln(x) in f32 to about 1 ulp for positive normal x (Cephes logf): x = 2^e · f with f in
// [√½, √2), ln f = (f − 1) − (f − 1)²/2 + (f − 1)³ P(f − 1), and e · ln2 added in two parts.
float log_f32(float x);

// erfc(x) and the exact GELU, the same formulas as shaders/_common.wgsl.
float erfc_f32(float x);
float gelu_erf(float x);

// 4 lanes of erfc_f32 and gelu_erf (which are lane 0 of these), for the kernels' loops.
static inline __attribute__((always_inline)) v128_t erfc_f32x4(v128_t x) {
  const v128_t one = wasm_f32x4_const_splat(1.0f);
  const v128_t z = wasm_f32x4_abs(x);
  const v128_t t = wasm_f32x4_div(one, wasm_f32x4_add(one, wasm_f32x4_mul(wasm_f32x4_const_splat(0.5f), z)));
  static const float c[10] = {-1.26551223f, 1.00002368f,  0.37409196f, 0.09678418f,  -0.18628806f,
                              0.27886807f,  -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
  v128_t poly = wasm_f32x4_splat(c[9]);
  for (int i = 8; i >= 0; i--) poly = wasm_f32x4_add(wasm_f32x4_splat(c[i]), wasm_f32x4_mul(t, poly));
  const v128_t r = wasm_f32x4_mul(t, exp_f32x4_inline(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_neg(z), z), poly)));
  return wasm_v128_bitselect(r, wasm_f32x4_sub(wasm_f32x4_const_splat(2.0f), r), wasm_f32x4_ge(x, wasm_f32x4_splat(0.0f)));
}

static inline __attribute__((always_inline)) v128_t gelu_erf_f32x4(v128_t x) {
  const v128_t e = erfc_f32x4(wasm_f32x4_mul(wasm_f32x4_neg(x), wasm_f32x4_const_splat(0.70710678118654752f)));
  return wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_const_splat(0.5f), x), e);
}

// The stand-in for -infinity of the WGSL kernels (shaders/_common.wgsl).
#define NEG_BIG (-3.0e38f)

#endif
