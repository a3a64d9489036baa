/**
 * The boundary between the models and the hardware. A {@linkcode Backend} owns memory (buffers
 * and {@linkcode Tensor} views of them) and runs kernels; the ops in `src/ops/` check their
 * arguments and record one kernel dispatch each through a {@linkcode Recorder}, and the models are
 * written against the ops only. Two backends implement it: WebGPU (`src/gpu/`, a WGSL kernel per
 * file of `shaders/`) and the CPU (`src/backends/cpu/`, the same kernels in C compiled to
 * WebAssembly from `wasm/`). A kernel is named by its {@linkcode KernelSpec}: both backends read
 * the same bindings and the same parameter words, so one recorded dispatch means the same on both.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { ShaderName } from "../gpu/_wgsl.ts";

export type { ShaderName };

/** Element type of a tensor. */
export type Dtype = "f32" | "f16" | "u32" | "i32";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<Dtype, number>> = { f32: 4, f16: 2, u32: 4, i32: 4 };

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
  /** Element offset of the first element inside `buffer`. */
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
}

/** Per-dispatch choices: the weight type and WGSL `override` constants. */
export interface KernelVariant {
  /** The type weights are stored in. Default: the backend's weight type. */
  weights?: "f16" | "f32";
  /** Values for WGSL `override` declarations (scheduling choices; the CPU ignores them). */
  constants?: Readonly<Record<string, number>>;
}

/** Workgroup counts of a dispatch (WebGPU's grid; CPU kernels derive their work from params). */
export type Workgroups = readonly [number, number?, number?];

/** Copies recorded into a command stream, readable once the stream has run. */
export interface Readback {
  /** One `ArrayBuffer` per tensor holding exactly its elements (submits if still recording). */
  result(): Promise<ArrayBuffer[]>;
}

/** Records kernel dispatches, copies and clears, and submits them in order. */
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

/** Options of a recorder. */
export interface RecorderOptions {
  /** Label of its command lists (debuggers, profiles). */
  label?: string;
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
  /** Reads tensors after the work submitted so far (one wait for all). */
  read(tensors: readonly Tensor[]): Promise<ArrayBuffer[]>;
  /** A recorder for this backend. */
  createRecorder(options?: RecorderOptions): Recorder;
  /** Resolves when the work submitted so far has run. */
  fence(): Promise<void>;
  /** Throws the first asynchronous failure (device loss, a failed worker), if any. */
  assertHealthy(): void;
  /** Frees everything the backend holds. */
  destroy(): void;
}
