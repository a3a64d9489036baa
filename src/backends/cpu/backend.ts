/**
 * {@linkcode CpuBackend}: the {@linkcode Backend} that runs the kernels of `wasm/` (C compiled to
 * WebAssembly with SIMD128) on the CPU, on a pool of worker threads over one shared memory where
 * SharedArrayBuffer is available (Deno; browsers when `crossOriginIsolated`), else on the calling
 * thread. Buffers are ranges of that memory; recorders write command lists into it, and the
 * runner executes the lists in submission order, so it behaves like a GPU queue: writes, copies
 * and readbacks are ordered with the dispatches around them.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { formatValue } from "../../_options.ts";
import { CpuError, OptionError } from "../../errors.ts";
import type {
  Backend,
  BackendStats,
  DeviceBuffer,
  KernelUse,
  MemoryUsage,
  RecorderOptions,
  Tensor,
} from "../backend.ts";
import { offsetBytes } from "../tensor.ts";
import { WasmHeap } from "./heap.ts";
import { instantiateKernels, kernelModule, kernelNames } from "./module.ts";
import { CpuProfiler } from "./profiler.ts";
import { CpuRecorder } from "./recorder.ts";
import { type Runner, SingleThread, ThreadPool } from "./runner.ts";

/** Options of {@linkcode createCpuBackend}. */
export interface CpuBackendOptions {
  /**
   * Worker threads. Default: the hardware concurrency (`navigator.hardwareConcurrency`). Where
   * SharedArrayBuffer is missing the backend runs on the calling thread whatever this says.
   */
  threads?: number;
  /** Weight storage: `"auto"`/`"f16"` keep f16 weights as f16 (converted in registers), `"f32"` widens them. */
  precision?: "auto" | "f16" | "f32";
  /**
   * Use relaxed SIMD's fused multiply-add where the host has it (default true). `false` runs the
   * plain SIMD128 kernels, whose results do not depend on the CPU having FMA.
   */
  relaxedSimd?: boolean;
}

/** A range of the CPU backend's memory. */
export class CpuBuffer implements DeviceBuffer {
  /** Its first byte in the backend's memory. */
  readonly addr: number;
  /** Size in bytes. */
  readonly size: number;
  /** Name shown in errors. */
  readonly label: string;
  #release: (buffer: CpuBuffer) => void;
  #alive = true;

  /** Made by {@linkcode CpuBackend.createBuffer}. */
  constructor(addr: number, size: number, label: string, release: (buffer: CpuBuffer) => void) {
    this.addr = addr;
    this.size = size;
    this.label = label;
    this.#release = release;
  }

  /** Frees the range once the work submitted so far has run. */
  destroy(): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#release(this);
  }
}

/** The CPU backend. Create it with {@linkcode createCpuBackend}. */
export class CpuBackend implements Backend {
  readonly kind = "cpu" as const;
  readonly description: string;
  readonly weightDtype: "f16" | "f32";
  readonly supportsF16 = true;
  readonly canProfile = true;
  readonly maxBindingBytes = 2 ** 32 - 1;
  readonly stats: BackendStats = { dispatches: 0, submits: 0, readbacks: 0 };
  readonly memory: MemoryUsage = { current: 0, peak: 0 };
  /** The allocator of the shared memory. */
  readonly heap: WasmHeap;
  /** Runs the submitted command lists. */
  readonly runner: Runner;
  /** Kernel index by name ("gemv.f16"). */
  readonly kernels: ReadonlyMap<string, number>;
  /** Bytes of one command. */
  readonly commandBytes: number;
  #deferred: { seq: number; addr: number }[] = [];
  #submitted = 0;
  #destroyed = false;

  /** Made by {@linkcode createCpuBackend}. */
  constructor(
    heap: WasmHeap,
    runner: Runner,
    names: string[],
    commandBytes: number,
    weightDtype: "f16" | "f32",
    relaxed: boolean,
  ) {
    this.heap = heap;
    this.runner = runner;
    this.kernels = new Map(names.map((name, i) => [name, i]));
    this.commandBytes = commandBytes;
    this.weightDtype = weightDtype;
    const threads = runner.threads;
    const simd = relaxed ? "relaxed SIMD" : "SIMD128";
    this.description = `CPU (WebAssembly ${simd}, ${threads} thread${threads === 1 ? "" : "s"})`;
  }

  /** The sequence number of the last submitted list. */
  get submitted(): number {
    return this.#submitted;
  }

  createBuffer(bytes: number, label: string): CpuBuffer {
    this.#check();
    this.#reclaim();
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const addr = this.heap.alloc(size, label);
    this.heap.bytes.fill(0, addr, addr + size);
    this.memory.current += size;
    this.memory.peak = Math.max(this.memory.peak, this.memory.current);
    return new CpuBuffer(addr, size, label, (buffer) => {
      this.memory.current -= buffer.size;
      this.release(buffer.addr);
    });
  }

  /**
   * Frees memory at `addr` once every list submitted so far has run (they may still read it).
   */
  release(addr: number): void {
    if (this.#destroyed) return;
    if (this.runner.completed >= this.#submitted) this.heap.free(addr);
    else this.#deferred.push({ seq: this.#submitted, addr });
  }

  write(t: Tensor, data: ArrayBufferView): void {
    this.#check();
    const buffer = this.bufferOf(t, "write");
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const at = buffer.addr + t.offset * offsetBytes(t.dtype);
    if (t.offset * offsetBytes(t.dtype) + bytes.byteLength > buffer.size) {
      throw new OptionError(
        `Cannot write ${bytes.byteLength} bytes at element ${t.offset} of "${buffer.label}": ` +
          `it holds ${buffer.size} bytes`,
      );
    }
    if (this.runner.completed >= this.#submitted) {
      this.heap.bytes.set(bytes, at);
      return;
    }
    // Work is in flight: stage the bytes and copy them in queue order.
    const staging = this.heap.alloc(bytes.byteLength, "cpu.write");
    this.heap.bytes.set(bytes, staging);
    const rec = this.createRecorder({ label: "cpu.write" });
    rec.copyBytes(staging, at, bytes.byteLength);
    rec.submit();
    rec.destroy();
    this.release(staging);
  }

  /** Nothing to compile: the CPU's kernels are built into its WebAssembly module. */
  warm(
    _kernels: readonly KernelUse[],
    _onProgress?: (done: number, total: number) => void,
  ): Promise<void> {
    return Promise.resolve();
  }

  async read(tensors: readonly Tensor[]): Promise<ArrayBuffer[]> {
    const rec = this.createRecorder({ label: "cpu.read" });
    const readback = rec.readback(tensors);
    rec.submit();
    rec.destroy();
    return await readback.result();
  }

  createRecorder(options: RecorderOptions = {}): CpuRecorder {
    this.#check();
    return new CpuRecorder(this, options);
  }

  /**
   * A profiler: each dispatch of the recorders it is given to is timed on the host's clock.
   *
   * @param capacity Dispatches timed per submit.
   */
  createProfiler(capacity?: number): CpuProfiler {
    return new CpuProfiler(this, capacity);
  }

  /**
   * Measures the memory read bandwidth the kernels reach: every thread sums its share of a
   * `bytes`-byte buffer (larger than the caches), best of `repeats` passes.
   *
   * @returns Bytes per second.
   *
   * @example
   * ```ts ignore
   * console.log(`${(await cpu.measureReadBandwidth() / 1e9).toFixed(1)} GB/s`);
   * ```
   */
  async measureReadBandwidth(bytes = 256 << 20, repeats = 5): Promise<number> {
    const size = Math.ceil(bytes / 64) * 64;
    const data = this.createBuffer(size, "cpu.probe");
    const sink = this.createBuffer(4 * this.runner.threads, "cpu.probe.sink");
    const rec = this.createRecorder({ label: "cpu.probe" });
    let best = Infinity;
    try {
      for (let i = 0; i <= repeats; i++) {
        const start = performance.now();
        rec.readProbe(data.addr, size, sink.addr);
        await rec.finish();
        if (i > 0) best = Math.min(best, performance.now() - start); // the first pass warms up
      }
    } finally {
      rec.destroy();
      data.destroy();
      sink.destroy();
    }
    return size / (best / 1000);
  }

  /** Frees memory whose last users have finished (nothing else is cached). */
  trim(): void {
    this.#reclaim();
  }

  /**
   * Enqueues a command list (called by recorders).
   *
   * @returns Its sequence number.
   */
  submitList(cmds: number, count: number): number {
    this.#check();
    this.#reclaim();
    const seq = this.runner.submit(cmds, count);
    this.#submitted = seq;
    this.stats.submits++;
    return seq;
  }

  /** Resolves when list `seq` has run. */
  async waitFor(seq: number): Promise<void> {
    await this.runner.wait(seq);
    this.#reclaim();
  }

  fence(): Promise<void> {
    return this.waitFor(this.#submitted);
  }

  assertHealthy(): void {
    this.#check();
    this.runner.assertHealthy();
  }

  /** The CPU buffer of a tensor, or a typed error naming the op and the foreign buffer. */
  bufferOf(t: Tensor, op: string): CpuBuffer {
    if (!(t.buffer instanceof CpuBuffer)) {
      throw new OptionError(
        `Cannot ${op} "${t.buffer.label}" on the CPU backend: it belongs to another backend`,
      );
    }
    return t.buffer;
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.runner.destroy();
    this.#destroyed = true;
    this.#deferred = [];
    this.memory.current = 0;
  }

  #reclaim(): void {
    if (this.#deferred.length === 0) return;
    const done = this.runner.completed;
    const keep = [];
    for (const entry of this.#deferred) {
      if (entry.seq <= done) this.heap.free(entry.addr);
      else keep.push(entry);
    }
    this.#deferred = keep;
  }

  #check(): void {
    if (this.#destroyed) throw new CpuError("Cannot use the CPU backend: it was destroyed");
  }
}

/** Whether this host can share memory between threads. */
function canShareMemory(): boolean {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated;
  return typeof SharedArrayBuffer === "function" && ("Deno" in globalThis || isolated === true);
}

/**
 * Creates the CPU backend: the kernels instantiated over a fresh WebAssembly memory, and a pool
 * of `threads` workers (or the calling thread where SharedArrayBuffer is unavailable).
 *
 * @throws {CpuError} When the memory or the workers cannot be created.
 *
 * @example
 * ```ts ignore
 * const cpu = await createCpuBackend({ threads: 2 });
 * console.log(cpu.description); // "CPU (WebAssembly SIMD128, 2 threads)"
 * cpu.destroy();
 * ```
 */
export async function createCpuBackend(options: CpuBackendOptions = {}): Promise<CpuBackend> {
  const wanted = options.threads ?? globalThis.navigator?.hardwareConcurrency ?? 1;
  if (!Number.isInteger(wanted) || wanted < 1 || wanted > 256) {
    throw new OptionError(
      `Cannot create the CPU backend: threads is ${formatValue(wanted)}, expected an integer ` +
        "in [1, 256]",
    );
  }
  const threaded = canShareMemory();
  const { module, relaxed } = await kernelModule(threaded, options.relaxedSimd ?? true);
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: threaded });
  } catch (cause) {
    throw new CpuError("Cannot create the CPU backend's WebAssembly memory", { cause });
  }
  const exports = await instantiateKernels(module, memory);
  const heap = new WasmHeap(memory, exports.__heap_base.value as number);
  const runner = threaded
    ? await ThreadPool.start(module, exports, heap, wanted)
    : new SingleThread(exports, heap);
  const weights = options.precision === "f32" ? "f32" : "f16";
  return new CpuBackend(
    heap,
    runner,
    kernelNames(exports, memory),
    exports.command_bytes(),
    weights,
    relaxed,
  );
}
