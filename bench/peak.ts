/**
 * The device's peaks, measured rather than looked up (an adapter does not say what it is capable
 * of): f32 multiply-adds in registers (`shaders/peak_fma.wgsl`) and streaming reads
 * (`shaders/peak_read.wgsl`), so that the kernel timings of the bench can be given as shares of
 * what the device reaches at all. WebGPU only; the CPU backend has its own read probe
 * (`CpuBackend.measureReadBandwidth`). Part of `deno task bench` (bench/run.ts).
 */

import type { KernelSpec } from "../src/backends/backend.ts";
import { createTensor, destroyTensors } from "../src/backends/tensor.ts";
import type { Gpu } from "../src/backends/webgpu/device.ts";
import { timeWork } from "./_report.ts";

/** What {@linkcode measureGpuPeak} found. */
export interface GpuPeak {
  /** f32 multiply-adds, counted as 2 FLOPs each, GFLOP/s. */
  fmaGflops: number;
  /** Streaming read bandwidth, GB/s. */
  readGBs: number;
}

const PEAK_FMA: KernelSpec = { shader: "peak_fma", bindings: ["write"], params: ["u32", "f32"] };
const PEAK_READ: KernelSpec = {
  shader: "peak_read",
  bindings: ["write", "read"],
  params: ["u32"],
};

/** Workgroups of both probes: enough to fill the largest GPUs (a few per compute unit). */
const WORKGROUPS = 4096;

/**
 * Measures the device's arithmetic and read peaks.
 *
 * @param gpu The device.
 * @param scale 1 on a hardware GPU (about a second in all); smaller on software adapters.
 * @returns GFLOP/s and GB/s.
 *
 * @example
 * ```ts ignore
 * const { fmaGflops, readGBs } = await measureGpuPeak(await requestGpu(), 1);
 * ```
 */
export async function measureGpuPeak(gpu: Gpu, scale: number): Promise<GpuPeak> {
  const invocations = WORKGROUPS * 256;
  const out = createTensor(gpu, [invocations], "f32", "peak.out");
  const vec4s = Math.floor(Math.min(gpu.maxBindingBytes, 2 ** 30 * scale) / 16);
  const x = createTensor(gpu, [vec4s * 4], "f32", "peak.x");
  const rec = gpu.createRecorder({ label: "peak" });
  try {
    const iterations = Math.max(16, Math.round(4096 * scale));
    const fmaMs = await timeWork(gpu, 3, (n) => {
      for (let i = 0; i < n; i++) rec.dispatch(PEAK_FMA, [out], [iterations, 1], [WORKGROUPS]);
      rec.submit();
    });
    const readMs = await timeWork(gpu, 3, (n) => {
      for (let i = 0; i < n; i++) rec.dispatch(PEAK_READ, [out, x], [vec4s], [WORKGROUPS]);
      rec.submit();
    });
    return {
      fmaGflops: +((invocations * iterations * 8 * 4 * 2) / fmaMs / 1e6).toFixed(1),
      readGBs: +((vec4s * 16) / readMs / 1e6).toFixed(1),
    };
  } finally {
    rec.destroy();
    destroyTensors({ out, x });
  }
}
