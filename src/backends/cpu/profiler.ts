/**
 * {@linkcode CpuProfiler}: per-kernel CPU times. A recorder given a profiler puts a `stamp`
 * command (thread 0 reads the host clock into memory) before and after each dispatch; commands
 * are separated by barriers, so each pair brackets one command run by every thread. Stamps of a
 * submit go to their own block of memory, read back in {@linkcode CpuProfiler.dispatches}.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import { type DispatchTime, type KernelTime, type Profiler, sumByKernel } from "../backend.ts";
import type { CpuBackend } from "./backend.ts";

/** Dispatches timed per submit unless told otherwise. */
const DEFAULT_CAPACITY = 4096;

/** Times CPU commands. */
export class CpuProfiler implements Profiler {
  #backend: CpuBackend;
  #capacity: number;
  #block = 0;
  #labels: string[] = [];
  #pending: { seq: number; block: number; labels: string[] }[] = [];

  /**
   * Creates a profiler (made by `CpuBackend.createProfiler`).
   *
   * @param backend The backend whose recorders it times.
   * @param capacity Dispatches timed per submit (a recorder submits when it is full).
   */
  constructor(backend: CpuBackend, capacity = DEFAULT_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new OptionError(
        `Cannot profile kernels: capacity ${capacity}, expected a positive integer`,
      );
    }
    this.#backend = backend;
    this.#capacity = capacity;
  }

  /** Whether this submit's slots are used up (the recorder then submits). */
  get full(): boolean {
    return this.#labels.length >= this.#capacity;
  }

  /** Addresses of the two stamps around the next dispatch, labelled. */
  next(label: string): [number, number] {
    if (this.#block === 0) {
      this.#block = this.#backend.heap.alloc(16 * this.#capacity, "cpu.profile");
    }
    const at = this.#block + 16 * this.#labels.length;
    this.#labels.push(label);
    return [at, at + 8];
  }

  /** Hands this submit's stamps to `seq`'s completion (called by the recorder at submit). */
  submitted(seq: number): void {
    if (this.#labels.length === 0) return;
    this.#pending.push({ seq, block: this.#block, labels: this.#labels });
    this.#block = 0;
    this.#labels = [];
  }

  async dispatches(): Promise<DispatchTime[]> {
    const out: DispatchTime[] = [];
    const pending = this.#pending;
    this.#pending = [];
    for (const { seq, block, labels } of pending) {
      await this.#backend.waitFor(seq);
      const stamps = new Float64Array(this.#backend.heap.memory.buffer, block, 2 * labels.length);
      labels.forEach((label, i) => out.push({ label, ms: stamps[2 * i + 1] - stamps[2 * i] }));
      this.#backend.release(block);
    }
    return out;
  }

  async collect(): Promise<KernelTime[]> {
    return sumByKernel(await this.dispatches());
  }

  destroy(): void {
    if (this.#block !== 0) this.#backend.release(this.#block);
    this.#block = 0;
    this.#labels = [];
  }
}
