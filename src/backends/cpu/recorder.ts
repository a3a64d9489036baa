/**
 * {@linkcode CpuRecorder}: records commands for the CPU backend straight into a command list in
 * its WebAssembly memory (kernel index, workgroup counts, binding addresses, parameter words:
 * `Cmd` of wasm/runtime.h) and submits the list to the runner. Lists are taken from a per-backend
 * set of arenas and reused once the runner has finished them.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { CpuError, OptionError } from "../../errors.ts";
import {
  isQuantized,
  type KernelSpec,
  type KernelVariant,
  QUANT_LAYOUTS,
  type Readback,
  type Recorder,
  type RecorderOptions,
  type Tensor,
  type Workgroups,
} from "../backend.ts";
import { byteSize, offsetBytes } from "../tensor.ts";
import type { CpuBackend } from "./backend.ts";
import { CpuProfiler } from "./profiler.ts";

/** Commands per list unless the recorder is told otherwise (`RecorderOptions.capacity`). */
const DEFAULT_CAPACITY = 1024;
const MAX_BINDINGS = 10;
/** Word offsets inside a command (wasm/runtime.h `Cmd`). */
const GROUPS = 1;
const BINDINGS = 4;
const PARAMS = BINDINGS + MAX_BINDINGS;

/** A readback whose copies are recorded into a list not yet known to be finished. */
class CpuReadback implements Readback {
  #recorder: CpuRecorder;
  #copies: { staging: number; bytes: number }[];
  #done = false;
  seq = 0;

  constructor(recorder: CpuRecorder, copies: { staging: number; bytes: number }[]) {
    this.#recorder = recorder;
    this.#copies = copies;
  }

  async result(): Promise<ArrayBuffer[]> {
    if (this.#done) throw new OptionError("Cannot read a readback twice");
    if (this.seq === 0) this.#recorder.submit();
    const backend = this.#recorder.backend;
    await backend.waitFor(this.seq);
    this.#done = true;
    backend.stats.readbacks++;
    const bytes = backend.heap.bytes;
    return this.#copies.map(({ staging, bytes: n }) => {
      const out = bytes.slice(staging, staging + n).buffer;
      backend.release(staging);
      return out;
    });
  }

  discard(): void {
    if (this.#done) return;
    this.#done = true;
    for (const { staging } of this.#copies) this.#recorder.backend.release(staging);
  }
}

/** Records commands into lists in the CPU backend's memory. */
export class CpuRecorder implements Recorder {
  /** The backend this recorder records for. */
  readonly backend: CpuBackend;
  #label: string;
  #list = 0;
  #count = 0;
  #words?: Uint32Array;
  #floats?: Float32Array;
  #ints?: Int32Array;
  #pending: CpuReadback[] = [];
  #ids = new WeakMap<KernelSpec, Partial<Record<"f16" | "f32", number>>>();
  /** The addresses of a dispatch's bindings, resolved before its command is opened. */
  #bindingAddresses = new Uint32Array(MAX_BINDINGS);
  #commandWords: number;
  #capacity: number;
  #profiler?: CpuProfiler;

  /** Made by {@linkcode CpuBackend.createRecorder}. */
  constructor(backend: CpuBackend, options: RecorderOptions) {
    if (options.profiler && !(options.profiler instanceof CpuProfiler)) {
      throw new OptionError("Cannot profile a CPU recorder with another backend's profiler");
    }
    this.#profiler = options.profiler;
    this.backend = backend;
    this.#label = options.label ?? "cpu.step";
    this.#capacity = options.capacity ?? DEFAULT_CAPACITY;
    this.#commandWords = backend.commandBytes / 4;
  }

  dispatch(
    spec: KernelSpec,
    bindings: readonly Tensor[],
    params: readonly number[],
    workgroups: Workgroups,
    variant: KernelVariant = {},
  ): void {
    if (bindings.length !== spec.bindings.length || params.length !== spec.params.length) {
      throw new OptionError(
        `Cannot dispatch "${spec.shader}": got ${bindings.length} bindings and ` +
          `${params.length} params, expected ${spec.bindings.length} and ${spec.params.length}`,
      );
    }
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const id = this.#kernel(spec, variant.weights ?? this.backend.weightDtype);
    // Every binding is resolved before anything is recorded: a refused one records nothing.
    const addresses = this.#bindingAddresses;
    for (let i = 0; i < bindings.length; i++) {
      addresses[i] = this.backend.bufferOf(bindings[i], spec.shader).addr;
    }
    const profiler = this.#profiler;
    // A timed dispatch and its two stamps go into one list.
    if (profiler?.full || (profiler && this.#count + 3 > this.#capacity)) this.submit();
    const stamps = profiler?.next(`${spec.shader}.${variant.weights ?? this.backend.weightDtype}`);
    if (stamps) this.#stamp(stamps[0]);
    const at = this.#next();
    const words = this.#words!;
    words[at] = id;
    words[at + GROUPS] = x;
    words[at + GROUPS + 1] = y;
    words[at + GROUPS + 2] = z;
    for (let i = 0; i < bindings.length; i++) words[at + BINDINGS + i] = addresses[i];
    const types = spec.params;
    for (let i = 0; i < types.length; i++) {
      const type = types[i];
      if (type === "f32") this.#floats![at + PARAMS + i] = params[i];
      else if (type === "i32") this.#ints![at + PARAMS + i] = params[i];
      else words[at + PARAMS + i] = params[i];
    }
    if (stamps) this.#stamp(stamps[1]);
    this.backend.stats.dispatches++;
  }

  copy(src: Tensor, dst: Tensor): void {
    const bytes = byteSize(src.shape, src.dtype);
    if (src.dtype !== dst.dtype || bytes !== byteSize(dst.shape, dst.dtype)) {
      throw new OptionError(
        `Cannot copy ${src.dtype}[${src.shape}] into ${dst.dtype}[${dst.shape}]`,
      );
    }
    this.copyBytes(this.#address(src, "copy"), this.#address(dst, "copy"), bytes);
  }

  /** Records a copy of `bytes` bytes between two addresses of the backend's memory. */
  copyBytes(from: number, to: number, bytes: number): void {
    if (bytes === 0) return;
    const at = this.#builtin("copy");
    const words = this.#words!;
    words[at + PARAMS] = from;
    words[at + PARAMS + 1] = to;
    words[at + PARAMS + 2] = bytes;
  }

  clear(t: Tensor): void {
    const bytes = byteSize(t.shape, t.dtype);
    if (bytes === 0) return;
    const addr = this.#address(t, "clear");
    const at = this.#builtin("clear");
    this.#words![at + PARAMS] = addr;
    this.#words![at + PARAMS + 1] = bytes;
  }

  readback(tensors: readonly Tensor[]): Readback {
    // Every tensor is resolved before any staging is taken or any copy recorded.
    const sources = tensors.map((t) => ({
      from: this.#address(t, "read"),
      bytes: byteSize(t.shape, t.dtype),
    }));
    const copies = sources.map(({ from, bytes }) => {
      const staging = this.backend.heap.alloc(Math.max(bytes, 1), "cpu.readback");
      this.copyBytes(from, staging, bytes);
      return { staging, bytes };
    });
    const readback = new CpuReadback(this, copies);
    this.#pending.push(readback);
    return readback;
  }

  submit(): void {
    this.backend.assertHealthy();
    if (this.#count === 0 && this.#pending.length === 0) return;
    if (this.#count === 0) this.#builtin("clear"); // an empty list still orders its readbacks
    const seq = this.backend.submitList(this.#list, this.#count);
    this.backend.release(this.#list);
    for (const readback of this.#pending) readback.seq = seq;
    this.#profiler?.submitted(seq);
    this.#pending = [];
    this.#list = 0;
    this.#count = 0;
  }

  async finish(): Promise<void> {
    this.submit();
    await this.backend.fence();
  }

  destroy(): void {
    if (this.#count > 0) {
      throw new CpuError("Cannot destroy a recorder with unsubmitted work: call submit() first");
    }
  }

  /** The address of a tensor's first element. */
  #address(t: Tensor, op: string): number {
    return this.backend.bufferOf(t, op).addr + t.offset * offsetBytes(t.dtype);
  }

  /**
   * Records a read of `bytes` bytes (a multiple of 64) from `addr` by every thread, each summing
   * its share into its f32 slot at `sink` (the read-bandwidth probe of the benchmarks).
   */
  readProbe(addr: number, bytes: number, sink: number): void {
    const at = this.#builtin("read_probe");
    const words = this.#words!;
    words[at + PARAMS] = addr;
    words[at + PARAMS + 1] = bytes;
    words[at + PARAMS + 2] = sink;
  }

  /**
   * Records the weight quantizer of `wasm/quantize.c`: `dst` (`q8_0` or `q4_k`, [rows, k]) from
   * the f16 or f32 values of `src` (same shape), the bytes `quantizeBlocks` and `toDeviceWords`
   * of `src/quant/device.ts` give, the backend's threads splitting the rows. CPU only: no WGSL
   * kernel could give these bytes (WGSL's float division is not correctly rounded).
   *
   * @throws {OptionError} Mismatched shapes or dtypes, or rows that are not whole blocks.
   */
  quantize(dst: Tensor, src: Tensor): void {
    const [rows, k] = dst.shape;
    if (
      !isQuantized(dst.dtype) || (src.dtype !== "f16" && src.dtype !== "f32") ||
      dst.shape.length !== 2 || src.shape.length !== 2 || src.shape[0] !== rows ||
      src.shape[1] !== k || k % QUANT_LAYOUTS[dst.dtype].weights !== 0
    ) {
      throw new OptionError(
        `Cannot quantize ${src.dtype}[${src.shape}] into ${dst.dtype}[${dst.shape}]: expected the ` +
          "same [rows, k], f16 or f32 values and rows of whole blocks",
      );
    }
    const to = this.backend.bufferOf(dst, "quantize").addr;
    const from = this.backend.bufferOf(src, "quantize").addr;
    const at = this.#builtin(`quantize_${dst.dtype}.${src.dtype}`);
    const words = this.#words!;
    words[at + BINDINGS] = to;
    words[at + BINDINGS + 1] = from;
    words.set([rows, k, dst.offset, src.offset], at + PARAMS);
  }

  /** Records a clock read into the f64 at `addr`. */
  #stamp(addr: number): void {
    const at = this.#builtin("stamp");
    this.#words![at + PARAMS] = addr;
  }

  /** Opens a command of a kernel the host records by name (no KernelSpec). */
  #builtin(name: string): number {
    const at = this.#next();
    const words = this.#words!;
    words[at] = this.backend.kernels.get(name)!;
    words.fill(0, at + GROUPS, at + this.#commandWords);
    return at;
  }

  /** The word index of the next command, opening or rolling over the list as needed. */
  #next(): number {
    if (this.#count === this.#capacity) this.submit();
    if (this.#count === 0) {
      const bytes = this.#capacity * this.backend.commandBytes;
      this.#list = this.backend.heap.alloc(bytes, `${this.#label}.commands`);
    }
    // Growing the memory replaces its buffer (and detaches it, when not shared).
    const buffer = this.backend.heap.memory.buffer;
    if (this.#words?.buffer !== buffer) {
      this.#words = new Uint32Array(buffer);
      this.#floats = new Float32Array(buffer);
      this.#ints = new Int32Array(buffer);
    }
    return this.#list / 4 + this.#commandWords * this.#count++;
  }

  #kernel(spec: KernelSpec, weights: "f16" | "f32"): number {
    const cached = this.#ids.get(spec)?.[weights];
    if (cached !== undefined) return cached;
    const kernels = this.backend.kernels;
    const id = kernels.get(`${spec.shader}.${weights}`) ?? kernels.get(spec.shader);
    if (id === undefined) {
      throw new CpuError(
        `Cannot run kernel "${spec.shader}.${weights}" on the CPU backend: it has no such kernel`,
      );
    }
    this.#ids.set(spec, { ...this.#ids.get(spec), [weights]: id });
    return id;
  }
}
