/**
 * The boundary between the models and the hardware. A {@linkcode Backend} owns memory (buffers
 * and {@linkcode Tensor} views of them) and runs kernels; the ops in `src/ops/` check their
 * arguments and record one kernel dispatch each through a {@linkcode Recorder}, and the models are
 * written against the ops only. Two backends implement it: WebGPU (`src/backends/webgpu/`, a WGSL kernel per
 * file of `shaders/`) and the CPU (`src/backends/cpu/`, the same kernels in C compiled to
 * WebAssembly from `wasm/`). A kernel is named by its {@linkcode KernelSpec}: both backends read
 * the same bindings and the same parameter words, so one recorded dispatch means the same on both.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { ShaderName } from "./webgpu/_wgsl.ts";

export type { ShaderName };

/**
 * A block-quantized weight type, in the layout kernels read (`src/quant/FORMATS.md` §3): `q8_0`
 * (GGUF Q8_0 blocks repacked in pairs, 17 words per 64 weights) or `q4_k` (GGUF Q4_K super-blocks
 * as stored, 36 words per 256 weights). Such a tensor is a matrix `[n, k]` with contiguous rows,
 * and its `offset` counts u32 words.
 */
export type QuantDtype = "q8_0" | "q4_k";

/** Element type of a tensor (or, for a quantized weight, its block layout). */
export type Dtype = "f32" | "f16" | "u32" | "i32" | QuantDtype;

/** Bytes per element of each element type. */
export const DTYPE_BYTES: Readonly<Record<Exclude<Dtype, QuantDtype>, number>> = {
  f32: 4,
  f16: 2,
  u32: 4,
  i32: 4,
};

/** Weights per block and u32 words per block of each quantized device layout. */
export const QUANT_LAYOUTS: Readonly<
  Record<QuantDtype, { readonly weights: number; readonly words: number }>
> = {
  q8_0: { weights: 64, words: 17 },
  q4_k: { weights: 256, words: 36 },
};

/**
 * Whether a dtype is a quantized weight layout.
 *
 * @example
 * ```ts
 * import { isQuantized } from "@valle/core/backends";
 * console.assert(isQuantized("q4_k") && !isQuantized("f16"));
 * ```
 */
export function isQuantized(dtype: Dtype): dtype is QuantDtype {
  return dtype === "q8_0" || dtype === "q4_k";
}

/** A block of backend memory: a `GPUBuffer`, or a range of the CPU backend's WebAssembly memory. */
export interface DeviceBuffer {
  /** Size in bytes. */
  readonly size: number;
  /** Name shown in errors and debuggers. */
  readonly label: string;
  /** Frees it (work already submitted that uses it still completes). */
  destroy(): void;
}

/** A shaped view of (part of) a buffer: the only tensor abstraction of the library. */
export interface Tensor {
  /** The buffer holding the elements. */
  readonly buffer: DeviceBuffer;
  /** The element type. */
  readonly dtype: Dtype;
  /** Logical shape, row-major. */
  readonly shape: readonly number[];
  /** Element offset of the first element inside `buffer` (quantized: word offset of row 0). */
  readonly offset: number;
}

/** How a kernel uses a binding: `"write"` is read-write, `"read"` is read-only. */
export type BindingAccess = "read" | "write";

/** The scalar type of one field of a kernel's parameter struct. */
export type ParamType = "u32" | "i32" | "f32";

/** The static description of a kernel: its name, bindings and parameter layout. */
export interface KernelSpec {
  /** The kernel: a WGSL file in `shaders/`, and the C kernel of the same name in `wasm/`. */
  readonly shader: ShaderName;
  /** Bindings in order (WGSL `@group(0)` declarations). */
  readonly bindings: readonly BindingAccess[];
  /** The fields of the `Params` struct in order (all 4-byte scalars). */
  readonly params: readonly ParamType[];
  /**
   * WebGPU only: the kernel run instead of `shader` on a device whose WGSL has
   * `packed_4x8_integer_dot_product` (`GpuFeatures.integerDot`), with the same bindings and
   * parameters and the C kernel's arithmetic (int8 activations, integer block sums). The CPU
   * runs `shader`'s C kernel.
   */
  readonly integerDot?: ShaderName;
}

/** Per-dispatch choices: the weight type and WGSL `override` constants. */
export interface KernelVariant {
  /** The type weights are stored in. Default: the backend's weight type. */
  weights?: "f16" | "f32";
  /** Values for WGSL `override` declarations (scheduling choices; the CPU ignores them). */
  constants?: Readonly<Record<string, number>>;
}

/** One kernel variant a model may dispatch, compiled ahead by {@linkcode Backend.warm}. */
export interface KernelUse {
  /** The kernel. */
  readonly spec: KernelSpec;
  /** Its weight type and constants, as the dispatch will give them. */
  readonly variant?: KernelVariant;
}

/** Workgroup counts of a dispatch (WebGPU's grid; CPU kernels derive their work from params). */
export type Workgroups = readonly [number, number?, number?];

/** Copies recorded into a command stream, readable once the stream has run. */
export interface Readback {
  /** One `ArrayBuffer` per tensor holding exactly its elements (submits if still recording). */
  result(): Promise<ArrayBuffer[]>;
  /** Gives its staging memory back without reading (a readback that will never be read). */
  discard(): void;
}

/**
 * Records kernel dispatches, copies and clears, and submits them in order. A call that throws
 * (a tensor of another backend, a view past its buffer) records nothing: the recorder holds
 * exactly what it held before, and can be submitted or destroyed as if the call was not made.
 */
export interface Recorder {
  /** The backend this recorder records for. */
  readonly backend: Backend;
  /**
   * Records one dispatch.
   *
   * @param spec The kernel.
   * @param bindings Its bindings in order (tensors bind their whole buffer; element offsets
   * travel in `params`).
   * @param params The parameter fields in order, typed per `spec.params`.
   * @param workgroups WebGPU workgroup counts.
   * @param variant Weight type and constants.
   */
  dispatch(
    spec: KernelSpec,
    bindings: readonly Tensor[],
    params: readonly number[],
    workgroups: Workgroups,
    variant?: KernelVariant,
  ): void;
  /** Records a copy of `src`'s elements into `dst` (same dtype and element count). */
  copy(src: Tensor, dst: Tensor): void;
  /** Records zero-filling of `t`. */
  clear(t: Tensor): void;
  /** Records copies of `tensors` at this point of the stream, to read after it has run. */
  readback(tensors: readonly Tensor[]): Readback;
  /** Submits what was recorded; the recorder can record the next step. */
  submit(): void;
  /** Submits and waits until everything submitted so far has run. */
  finish(): Promise<void>;
  /** Frees the recorder's own memory (submit first). */
  destroy(): void;
}

/** One timed dispatch. */
export interface DispatchTime {
  /** The kernel key, e.g. `gemv.f16`. */
  label: string;
  /** Its duration, in milliseconds. */
  ms: number;
}

/** Total time of one kernel label. */
export interface KernelTime {
  /** The kernel key, e.g. `gemv.f16`. */
  label: string;
  /** Dispatches timed. */
  count: number;
  /** Sum of their durations, in milliseconds. */
  totalMs: number;
}

/**
 * Times every dispatch of the recorders it is given to (WebGPU: timestamp queries; CPU: a clock
 * read after each command). Profiling changes scheduling, so use it to see where time goes, not
 * to time a whole step.
 */
export interface Profiler {
  /** Waits for the timed work and returns each dispatch in recording order. */
  dispatches(): Promise<DispatchTime[]>;
  /** Waits for the timed work and returns the time per kernel label, largest first. */
  collect(): Promise<KernelTime[]>;
  /** Frees what it holds. */
  destroy(): void;
}

/** Options of a recorder. */
export interface RecorderOptions {
  /** Label of its command lists (debuggers, profiles). */
  label?: string;
  /** Time every dispatch (a profiler of the same backend). */
  profiler?: Profiler;
  /**
   * Dispatches one submit holds; a recorder that fills it submits what it has and goes on.
   * Default 1024. Decode loops that record many steps per submit raise it.
   */
  capacity?: number;
}

/** Counters of submitted work, for benchmarks and tests. */
export interface BackendStats {
  /** Kernel dispatches recorded. */
  dispatches: number;
  /** Command lists submitted. */
  submits: number;
  /** Readbacks awaited. */
  readbacks: number;
}

/** Bytes of backend memory this library holds. */
export interface MemoryUsage {
  /** Bytes held now. */
  current: number;
  /** The most bytes held at once. */
  peak: number;
}

/**
 * Weight precision: `"auto"` stores weights as f16 where the backend supports it (WebGPU with
 * `shader-f16`, or the CPU) and as f32 otherwise; `"f16"` fails where it is unsupported; `"f32"`
 * always uses f32. Activations and accumulators are f32 in every case.
 */
export type Precision = "auto" | "f16" | "f32";

/** Which backend: WebGPU or the WebAssembly CPU kernels. */
export type BackendKind = "webgpu" | "cpu";

/** Memory and kernels on one device: a GPU through WebGPU, or the CPU through WebAssembly. */
export interface Backend {
  /** Which backend this is. */
  readonly kind: BackendKind;
  /** What it runs on, for logs and reports (adapter description, or CPU threads and SIMD). */
  readonly description: string;
  /** The storage type of weights: f16 where supported (and not refused), else f32. */
  readonly weightDtype: "f16" | "f32";
  /** Whether f16 weights can be used at all. */
  readonly supportsF16: boolean;
  /** The largest tensor a kernel may bind, in bytes. */
  readonly maxBindingBytes: number;
  /** Work submitted so far. */
  readonly stats: BackendStats;
  /** Memory held by this library's buffers. */
  readonly memory: MemoryUsage;
  /** Allocates a zero-filled buffer of at least `bytes` bytes. */
  createBuffer(bytes: number, label: string): DeviceBuffer;
  /**
   * Writes `data` into `t` from its first element, in queue order: after work submitted so far,
   * before work submitted later.
   */
  write(t: Tensor, data: ArrayBufferView): void;
  /**
   * Compiles kernels ahead of their first dispatch, all at once and without blocking (WebGPU:
   * `createComputePipelineAsync`), so that a model's first run compiles nothing; the CPU's are
   * built in, so it does nothing there. Compiled kernels are skipped.
   *
   * @param kernels The kernel variants to compile.
   * @param onProgress Called as compiles finish, with the number done and the total.
   * @throws {GpuError} A kernel that fails to compile, named.
   */
  warm(
    kernels: readonly KernelUse[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<void>;
  /** Reads tensors after the work submitted so far (one wait for all). */
  read(tensors: readonly Tensor[]): Promise<ArrayBuffer[]>;
  /** A recorder for this backend. */
  createRecorder(options?: RecorderOptions): Recorder;
  /** Whether {@linkcode Backend.createProfiler} works here (WebGPU needs `timestamp-query`). */
  readonly canProfile: boolean;
  /**
   * A profiler for this backend's recorders.
   *
   * @param capacity Dispatches timed per submit (a recorder submits early when it is full).
   */
  createProfiler(capacity?: number): Profiler;
  /** Resolves when the work submitted so far has run. */
  fence(): Promise<void>;
  /** Frees cached memory no call is using (pooled temporaries); models call it when disposed. */
  trim(): void;
  /** Throws the first asynchronous failure (device loss, a failed worker), if any. */
  assertHealthy(): void;
  /** Frees everything the backend holds. */
  destroy(): void;
}

/**
 * Sums dispatch times per kernel label, largest total first.
 *
 * @example
 * ```ts
 * import { sumByKernel } from "@valle/core/backends";
 * const [top] = sumByKernel([{ label: "a", ms: 1 }, { label: "b", ms: 3 }, { label: "a", ms: 1 }]);
 * console.assert(top.label === "b" && top.count === 1);
 * ```
 */
export function sumByKernel(dispatches: readonly DispatchTime[]): KernelTime[] {
  const totals = new Map<string, KernelTime>();
  for (const { label, ms } of dispatches) {
    const entry = totals.get(label) ?? { label, count: 0, totalMs: 0 };
    entry.count++;
    entry.totalMs += ms;
    totals.set(label, entry);
  }
  return [...totals.values()].sort((a, b) => b.totalMs - a.totalMs);
}
