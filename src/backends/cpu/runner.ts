/**
 * Runners execute submitted command lists in order. {@linkcode ThreadPool}: worker threads over
 * the shared memory, each running its share of every command (see wasm/runtime.c); the host only
 * enqueues and awaits (`Atomics.waitAsync`), so it never blocks. {@linkcode SingleThread}: where
 * there is no SharedArrayBuffer (a browser page that is not cross-origin isolated), lists run on
 * the calling thread when they are submitted.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { CpuError } from "../../errors.ts";
import type { WasmHeap } from "./heap.ts";
import type { KernelExports } from "./module.ts";
import { WORKER_SOURCE } from "./worker_source.ts";

/** Runs command lists in submission order. */
export interface Runner {
  /** Threads working on each command. */
  readonly threads: number;
  /** Enqueues `count` commands at address `cmds`; returns the list's sequence number (1, 2, …). */
  submit(cmds: number, count: number): number;
  /** The sequence number of the last finished list. */
  readonly completed: number;
  /** Resolves when list `seq` (and every earlier one) has finished. */
  wait(seq: number): Promise<void>;
  /** Throws the failure that stopped the runner, if any. */
  assertHealthy(): void;
  /** Stops the threads. */
  destroy(): void;
}

/** Bytes of scratch memory each thread's kernels may use. */
export const SCRATCH_BYTES = 1 << 20;
const STACK_BYTES = 256 << 10;

/** Word indices of the control block's fields (wasm/runtime.c `Control`). */
const SUBMITTED = 0;
const COMPLETED = 1;
const STOP = 2;
const THREADS = 3;
const RING_WORD = 8;
const RING = 1024;

/** A started worker, whatever the host's worker API. */
interface WorkerHandle {
  post(message: unknown): void;
  terminate(): void;
}

/** Deno's `process`, which hands out Node's built-in modules. */
interface NodeProcess {
  getBuiltinModule(id: "node:worker_threads"): typeof import("node:worker_threads");
}

/** Starts a worker running {@linkcode WORKER_SOURCE}: worker_threads in Deno, else a web worker. */
function startWorker(onMessage: (message: Record<string, unknown>) => void): WorkerHandle {
  if ("Deno" in globalThis) {
    // Not `import("node:worker_threads")`: browser bundlers (esbuild, webpack) would try to
    // resolve that specifier and fail, although browsers never reach this branch.
    const process = (globalThis as unknown as { process: NodeProcess }).process;
    const { Worker } = process.getBuiltinModule("node:worker_threads");
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.on("message", onMessage);
    worker.on("error", (error: Error) => onMessage({ error: String(error.stack ?? error) }));
    worker.unref();
    return { post: (m) => worker.postMessage(m), terminate: () => void worker.terminate() };
  }
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  URL.revokeObjectURL(url);
  worker.onmessage = (event) => onMessage(event.data);
  worker.onerror = (event) => onMessage({ error: event.message });
  return { post: (m) => worker.postMessage(m), terminate: () => worker.terminate() };
}

/**
 * Awaits `promise` with a timer held meanwhile: the pool's workers are unref'd (an idle pool
 * must not keep a Deno process alive) and `Atomics.waitAsync` is no pending operation either, so
 * without it Deno would end a program that is waiting for the CPU.
 */
async function keepAlive<T>(promise: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1 << 30);
  try {
    return await promise;
  } finally {
    clearInterval(timer);
  }
}

/** Worker threads over shared memory. */
export class ThreadPool implements Runner {
  readonly threads: number;
  #words: Int32Array;
  #control: number;
  #workers: WorkerHandle[] = [];
  #submitted = 0;
  #failure?: CpuError;

  private constructor(heap: WasmHeap, control: number, threads: number) {
    this.threads = threads;
    this.#control = control;
    this.#words = new Int32Array(heap.memory.buffer, control, RING_WORD + 2 * RING);
  }

  /**
   * Starts `threads` workers on `module` over the heap's shared memory.
   *
   * @throws {CpuError} When a worker cannot start.
   */
  static async start(
    module: WebAssembly.Module,
    exports: KernelExports,
    heap: WasmHeap,
    threads: number,
  ): Promise<ThreadPool> {
    const control = heap.alloc(exports.control_bytes(), "cpu.control");
    heap.bytes.fill(0, control, control + exports.control_bytes());
    const pool = new ThreadPool(heap, control, threads);
    Atomics.store(pool.#words, THREADS, threads);
    const ready = Array.from({ length: threads }, async (_, id) => {
      const scratch = heap.alloc(SCRATCH_BYTES, `cpu.scratch.${id}`);
      const stack = heap.alloc(STACK_BYTES, `cpu.stack.${id}`);
      let started!: () => void;
      let failed!: (e: Error) => void;
      const up = new Promise<void>((resolve, reject) => [started, failed] = [resolve, reject]);
      const worker = startWorker((message) => {
        if (message.ready) started();
        if (typeof message.error === "string") {
          const error = new CpuError(
            `Cannot run the CPU kernels: worker ${id} failed (${message.error})`,
          );
          pool.#fail(error);
          failed(error);
        }
      });
      pool.#workers.push(worker);
      worker.post({
        module,
        memory: heap.memory,
        control,
        id,
        scratch,
        scratchBytes: SCRATCH_BYTES,
        stackTop: stack + STACK_BYTES,
      });
      await keepAlive(up);
    });
    try {
      await Promise.all(ready);
    } catch (error) {
      pool.destroy();
      throw error;
    }
    return pool;
  }

  get completed(): number {
    return Atomics.load(this.#words, COMPLETED);
  }

  submit(cmds: number, count: number): number {
    this.assertHealthy();
    if (this.#submitted - this.completed >= RING) {
      throw new CpuError(`Cannot submit: ${RING} command lists are already waiting`);
    }
    const slot = RING_WORD + 2 * (this.#submitted % RING);
    this.#words[slot] = cmds;
    this.#words[slot + 1] = count;
    this.#submitted++;
    Atomics.store(this.#words, SUBMITTED, this.#submitted);
    Atomics.notify(this.#words, SUBMITTED);
    return this.#submitted;
  }

  async wait(seq: number): Promise<void> {
    for (;;) {
      this.assertHealthy();
      const done = Atomics.load(this.#words, COMPLETED);
      if (done >= seq) return;
      const result = Atomics.waitAsync(this.#words, COMPLETED, done);
      if (result.async) await keepAlive(result.value);
    }
  }

  assertHealthy(): void {
    if (this.#failure) throw this.#failure;
  }

  destroy(): void {
    this.#failure ??= new CpuError("Cannot use the CPU backend: it was destroyed");
    Atomics.store(this.#words, STOP, 1);
    Atomics.notify(this.#words, SUBMITTED);
    Atomics.notify(this.#words, COMPLETED);
    for (const worker of this.#workers) worker.terminate();
    this.#workers = [];
  }

  #fail(error: CpuError): void {
    this.#failure ??= error;
    // Wake the waiters so that they see it.
    Atomics.notify(this.#words, COMPLETED);
  }

  /** Address of the control block (for tests and diagnostics). */
  get control(): number {
    return this.#control;
  }
}

/** Lists run on the calling thread as they are submitted. */
export class SingleThread implements Runner {
  readonly threads = 1;
  #exports: KernelExports;
  #scratch: number;
  #completed = 0;
  #failure?: CpuError;

  /**
   * Runs lists on the calling thread.
   *
   * @param exports The single-thread build's exports.
   * @param heap The heap its scratch memory comes from.
   */
  constructor(exports: KernelExports, heap: WasmHeap) {
    this.#exports = exports;
    this.#scratch = heap.alloc(SCRATCH_BYTES, "cpu.scratch.0");
  }

  get completed(): number {
    return this.#completed;
  }

  submit(cmds: number, count: number): number {
    this.assertHealthy();
    try {
      this.#exports.run_list!(cmds, count, this.#scratch, SCRATCH_BYTES);
    } catch (error) {
      this.#failure = new CpuError(`Cannot run the CPU kernels: ${error}`, { cause: error });
      throw this.#failure;
    }
    return ++this.#completed;
  }

  wait(_seq: number): Promise<void> {
    this.assertHealthy();
    return Promise.resolve();
  }

  assertHealthy(): void {
    if (this.#failure) throw this.#failure;
  }

  destroy(): void {
    this.#failure ??= new CpuError("Cannot use the CPU backend: it was destroyed");
  }
}
