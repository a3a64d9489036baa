// The CPU backend's command runner: the pool's worker loop (threaded build), the single-threaded
// entry (no SharedArrayBuffer), the barrier, the built-in copy and clear commands, the kernel
// table, and the f32 math the kernels share. The host side is src/backends/cpu/.
//
// Submissions: the host writes command lists into memory, puts {address, count} into the ring of
// the control block and bumps `submitted`; every worker runs every command of the list (each
// doing its share), meeting at a barrier after each one; thread 0 then bumps `completed`, which
// the host awaits. Lists run in submission order, so a list sees everything earlier ones wrote.

#include "runtime.h"

#define EXPORT(name) __attribute__((export_name(#name)))

#define RING 1024
#define SPINS 20000

typedef struct Submission {
  uint32_t cmds;
  uint32_t count;
} Submission;

// The control block, shared with the host (src/backends/cpu/pool.ts mirrors these offsets).
typedef struct Control {
  uint32_t submitted;  // 0: lists enqueued (host)
  uint32_t completed;  // 4: lists finished (thread 0)
  uint32_t stop;       // 8: nonzero: workers return (host)
  uint32_t threads;    // 12: pool size (host, before the workers start)
  uint32_t arrived;    // 16: barrier arrivals
  uint32_t generation; // 20: barrier generation
  uint32_t sleepers;   // 24: threads asleep in the barrier
  uint32_t reserved;   // 28
  Submission ring[RING];
} Control;

_Static_assert(sizeof(Cmd) == 4 * (4 + MAX_BINDINGS + MAX_PARAMS), "Cmd layout");
_Static_assert(offsetof(Control, ring) == 32, "Control layout");

// --- kernels -----------------------------------------------------------------------------------

#define KERNEL(name, fn) void fn(const Cmd *c, const Thread *t);
#include "kernels.h"
#undef KERNEL

static const KernelFn KERNELS[] = {
#define KERNEL(name, fn) fn,
#include "kernels.h"
#undef KERNEL
};

static const char *const NAMES[] = {
#define KERNEL(name, fn) name,
#include "kernels.h"
#undef KERNEL
};

#define KERNEL_COUNT (sizeof(KERNELS) / sizeof(KERNELS[0]))

// The number of kernels and their names ("gemv.f16"): the host maps names to indices at start.
EXPORT(kernel_count) uint32_t kernel_count(void) { return KERNEL_COUNT; }
EXPORT(kernel_name) const char *kernel_name(uint32_t i) { return i < KERNEL_COUNT ? NAMES[i] : 0; }

// Byte sizes the host lays memory out with.
EXPORT(command_bytes) uint32_t command_bytes(void) { return sizeof(Cmd); }
EXPORT(control_bytes) uint32_t control_bytes(void) { return sizeof(Control); }

// copy: p0 source address, p1 destination address, p2 bytes (the ranges do not overlap).
void k_copy(const Cmd *c, const Thread *t) {
  uint32_t lo, hi;
  share(c->p[2], 1 << 16, t, &lo, &hi);
  if (hi > lo) __builtin_memcpy((uint8_t *)(uintptr_t)c->p[1] + lo, (uint8_t *)(uintptr_t)c->p[0] + lo, hi - lo);
}

// The host's clock in milliseconds (performance.now), for profiling.
__attribute__((import_module("env"), import_name("now"))) double host_now(void);

// stamp: thread 0 writes the clock to the f64 at p0 (the profiler puts one before and after each
// timed command; commands are separated by barriers, so the difference is the command's time).
void k_stamp(const Cmd *c, const Thread *t) {
  if (t->id == 0) *(double *)(uintptr_t)c->p[0] = host_now();
}

// read_probe: reads p1 bytes from p0 (a multiple of 64), each thread its share, summing them as
// floats into thread's slot of the f32 array at p2 (so the reads cannot be optimised away): the
// memory read bandwidth the kernels can reach, for the benchmarks.
void k_read_probe(const Cmd *c, const Thread *t) {
  uint32_t lo, hi;
  share(c->p[1] / 64, 256, t, &lo, &hi);
  const float *x = (const float *)(uintptr_t)c->p[0];
  v128_t a = wasm_f32x4_splat(0), b = a, d = a, e = a;
  for (size_t i = (size_t)lo * 16; i < (size_t)hi * 16; i += 16) {
    a = wasm_f32x4_add(a, wasm_v128_load(x + i));
    b = wasm_f32x4_add(b, wasm_v128_load(x + i + 4));
    d = wasm_f32x4_add(d, wasm_v128_load(x + i + 8));
    e = wasm_f32x4_add(e, wasm_v128_load(x + i + 12));
  }
  ((float *)(uintptr_t)c->p[2])[t->id] = hsum(wasm_f32x4_add(wasm_f32x4_add(a, b), wasm_f32x4_add(d, e)));
}

// clear: p0 address, p1 bytes.
void k_clear(const Cmd *c, const Thread *t) {
  uint32_t lo, hi;
  share(c->p[1], 1 << 16, t, &lo, &hi);
  if (hi > lo) __builtin_memset((uint8_t *)(uintptr_t)c->p[0] + lo, 0, hi - lo);
}

static void run(const Cmd *cmds, uint32_t count, const Thread *t) {
  for (uint32_t i = 0; i < count; i++) {
    const Cmd *c = &cmds[i];
    if (c->kernel < KERNEL_COUNT) KERNELS[c->kernel](c, t);
    else __builtin_trap();
    barrier(t);
  }
}

#if VALLE_THREADS

static inline uint32_t load(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void store(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline void wait_while(uint32_t *p, uint32_t v) {
  __builtin_wasm_memory_atomic_wait32((int32_t *)p, (int32_t)v, -1);
}
static inline void wake_all(uint32_t *p) { __builtin_wasm_memory_atomic_notify((int32_t *)p, 0xffffffffu); }

void barrier(const Thread *t) {
  if (t->count == 1) return;
  Control *c = t->control;
  uint32_t generation = load(&c->generation);
  if (__atomic_add_fetch(&c->arrived, 1, __ATOMIC_SEQ_CST) == t->count) {
    store(&c->arrived, 0);
    store(&c->generation, generation + 1);
    if (load(&c->sleepers)) wake_all(&c->generation);
    return;
  }
  for (uint32_t i = 0; i < SPINS; i++) {
    if (load(&c->generation) != generation) return;
  }
  __atomic_add_fetch(&c->sleepers, 1, __ATOMIC_SEQ_CST);
  while (load(&c->generation) == generation) wait_while(&c->generation, generation);
  __atomic_sub_fetch(&c->sleepers, 1, __ATOMIC_SEQ_CST);
}

// A worker of the pool: runs every submitted list until the host sets `stop`. Thread 0 publishes
// completions (and wakes the host's Atomics.waitAsync on `completed`).
EXPORT(worker_loop)
void worker_loop(Control *control, uint32_t id, uint8_t *scratch, uint32_t scratch_bytes) {
  Thread t = {id, load(&control->threads), scratch, scratch_bytes, control};
  uint32_t next = load(&control->completed);
  for (;;) {
    uint32_t spins = 0;
    while (load(&control->submitted) == next) {
      if (load(&control->stop)) return;
      if (++spins > SPINS) wait_while(&control->submitted, next);
    }
    Submission s = control->ring[next % RING];
    // The host may have grown the memory for this list; a no-op grow makes this thread's view
    // of the memory's size current before any command touches the new pages.
    __builtin_wasm_memory_grow(0, 0);
    run((const Cmd *)(uintptr_t)s.cmds, s.count, &t);
    next++;
    if (id == 0) {
      store(&control->completed, next);
      wake_all(&control->completed);
    }
  }
}

#else

void barrier(const Thread *t) { (void)t; }

// Runs a list on the calling thread (the build for hosts without SharedArrayBuffer).
EXPORT(run_list) void run_list(const Cmd *cmds, uint32_t count, uint8_t *scratch, uint32_t scratch_bytes) {
  Thread t = {0, 1, scratch, scratch_bytes, 0};
  run(cmds, count, &t);
}

#endif

// --- math --------------------------------------------------------------------------------------

v128_t exp_f32x4(v128_t x) { return exp_f32x4_inline(x); }

float exp_f32(float x) { return wasm_f32x4_extract_lane(exp_f32x4(wasm_f32x4_splat(x)), 0); }

float log_f32(float x) {
  const uint32_t u = bits_from_f32(x);
  float e = (float)((int32_t)((u >> 23) & 0xff) - 126);
  float f = f32_from_bits((u & 0x007fffffu) | 0x3f000000u); // [0.5, 1)
  if (f < 0.707106781186547524f) {
    e -= 1.0f;
    f = f + f - 1.0f;
  } else {
    f = f - 1.0f;
  }
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return f + y + 0.693359375f * e;
}

float erfc_f32(float x) { return wasm_f32x4_extract_lane(erfc_f32x4(wasm_f32x4_splat(x)), 0); }

float gelu_erf(float x) { return wasm_f32x4_extract_lane(gelu_erf_f32x4(wasm_f32x4_splat(x)), 0); }
