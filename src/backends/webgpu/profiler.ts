/**
 * {@linkcode GpuProfiler}: per-kernel GPU times from `timestamp-query`. A recorder given a profiler
 * puts each dispatch in its own compute pass with timestamp writes; the timestamps are resolved at
 * every submit and read back in {@linkcode GpuProfiler.collect}. Profiling changes scheduling (one
 * pass per dispatch), so use it to find where time goes, not to time the whole step.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { GpuError, OptionError } from "../../errors.ts";
import { type DispatchTime, type KernelTime, type Profiler, sumByKernel } from "../backend.ts";
import type { Gpu } from "./device.ts";

/** Timestamp pairs per query set: WebGPU allows 4096 queries in one set. */
const MAX_DISPATCHES = 2048;

interface Pending {
  staging: GPUBuffer;
  labels: string[];
}

/** Collects timestamp pairs around dispatches and sums them per kernel label. */
export class GpuProfiler implements Profiler {
  #gpu: Gpu;
  #querySet: GPUQuerySet;
  #resolveBuffer: GPUBuffer;
  #capacity: number;
  #labels: string[] = [];
  #pending: Pending[] = [];

  /**
   * Creates the query set and resolve buffer.
   *
   * @param gpu A device with the `timestamp-query` feature.
   * @param capacity Dispatches timed per submit, at most 2048 (WebGPU allows 4096 queries per
   * set); a recorder submits when the profiler is full.
   * @throws {GpuError} When the device lacks `timestamp-query`.
   * @throws {OptionError} When the capacity is not in [1, 2048].
   */
  constructor(gpu: Gpu, capacity = MAX_DISPATCHES) {
    if (!gpu.features.timestamps) {
      throw new GpuError('Cannot profile kernels: the device lacks "timestamp-query"');
    }
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_DISPATCHES) {
      throw new OptionError(
        `Cannot profile kernels: capacity ${capacity}, expected an integer in [1, ${MAX_DISPATCHES}]`,
      );
    }
    this.#gpu = gpu;
    this.#capacity = capacity;
    this.#querySet = gpu.device.createQuerySet({ type: "timestamp", count: 2 * capacity });
    this.#resolveBuffer = gpu.createGpuBuffer({
      label: "valle.profiler.resolve",
      size: 16 * capacity,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** Whether this submit's query slots are used up (the recorder then submits). */
  get full(): boolean {
    return this.#labels.length >= this.#capacity;
  }

  /** Timestamp writes for the next pass, labelled; undefined when this submit is full. */
  next(label: string): GPUComputePassTimestampWrites | undefined {
    if (this.full) return undefined;
    const i = this.#labels.length;
    this.#labels.push(label);
    return {
      querySet: this.#querySet,
      beginningOfPassWriteIndex: 2 * i,
      endOfPassWriteIndex: 2 * i + 1,
    };
  }

  /** Records the resolve of this submit's timestamps (called by the recorder at submit). */
  resolve(encoder: GPUCommandEncoder): void {
    const count = this.#labels.length;
    if (count === 0) return;
    const bytes = 16 * count;
    const staging = this.#gpu.readbacks.acquire(bytes);
    encoder.resolveQuerySet(this.#querySet, 0, 2 * count, this.#resolveBuffer, 0);
    encoder.copyBufferToBuffer(this.#resolveBuffer, 0, staging, 0, bytes);
    this.#pending.push({ staging, labels: this.#labels });
    this.#labels = [];
  }

  /**
   * Waits for every resolved submit and returns each timed dispatch in recording order (so a
   * caller can drop a known prefix, e.g. a prefill). Negative or wrapped-around pairs are
   * dropped.
   */
  async dispatches(): Promise<DispatchTime[]> {
    const out: DispatchTime[] = [];
    const pending = this.#pending;
    this.#pending = [];
    for (const { staging, labels } of pending) {
      await this.#gpu.mapRead(staging, 16 * labels.length);
      const stamps = new BigUint64Array(staging.getMappedRange(0, 16 * labels.length));
      labels.forEach((label, i) => {
        const ns = Number(stamps[2 * i + 1] - stamps[2 * i]);
        if (ns >= 0 && ns < 1e10) out.push({ label, ms: ns / 1e6 });
      });
      staging.unmap();
      this.#gpu.readbacks.release(staging);
    }
    return out;
  }

  /** Waits for every resolved submit and returns the time per kernel label, largest first. */
  async collect(): Promise<KernelTime[]> {
    return sumByKernel(await this.dispatches());
  }

  /** Frees the query set and resolve buffer. */
  destroy(): void {
    this.#querySet.destroy();
    this.#resolveBuffer.destroy();
  }
}
