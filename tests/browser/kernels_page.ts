/**
 * Browser entry for kernels_test.ts: creates the backend it is asked for, runs a few kernels on
 * it with the seeded inputs the test recomputes on the CPU (the quantized GEMMs on weights it
 * quantizes itself), on WebGPU compiles every other kernel too, and returns what the backend is,
 * the outputs and the kernels the browser refused.
 */

import type { BackendKind } from "../../src/backends/backend.ts";
import { CpuBackend } from "../../src/backends/cpu/backend.ts";
import { SingleThread } from "../../src/backends/cpu/runner.ts";
import { chooseBackend } from "../../src/backends/select.ts";
import { createTensor, readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { type AdapterSummary, Gpu, requestGpu } from "../../src/backends/webgpu/device.ts";
import { compilePipeline, KERNEL_NAMES } from "../_compile.ts";
import { kernelSource } from "../../src/backends/webgpu/kernels.ts";
import { attention, attentionPartialsSize } from "../../src/ops/attention.ts";
import { linear } from "../../src/ops/linear.ts";
import { rmsNorm } from "../../src/ops/norm.ts";
import { softmax } from "../../src/ops/softmax.ts";
import { quantizeBlocks, toDeviceWords } from "../../src/quant/device.ts";
import { browserInputs } from "./kernels_inputs.ts";

/** What the test asks for. */
export interface KernelsPageInput {
  /** The backend to run on. */
  backend: BackendKind;
  /** CPU threads. */
  threads?: number;
  /** WebGPU: `false` refuses the integer GEMMs (`GpuOptions.integerDot`). */
  integerDot?: boolean;
  /** WebGPU: `false` refuses the subgroup reductions (`GpuOptions.subgroups`). */
  subgroups?: boolean;
}

/** What the page found and computed. */
export interface KernelsPageResult {
  /** The backend that ran the kernels. */
  backend: { kind: BackendKind; description: string; reason: string };
  /** WebGPU: the adapter. */
  adapter?: AdapterSummary;
  /** WebGPU: whether the quantized GEMMs ran in integer arithmetic (`GpuFeatures.integerDot`). */
  integerDot?: boolean;
  /** WebGPU: whether the row kernels reduced on subgroups (`GpuFeatures.subgroups`). */
  subgroups?: boolean;
  /** Whether the page was cross-origin isolated. */
  crossOriginIsolated: boolean;
  /** CPU: the runner and its threads. */
  runner?: { kind: "pool" | "single"; threads: number };
  /** The kernels' outputs. */
  gemm: number[];
  gemv: number[];
  rmsNorm: number[];
  softmax: number[];
  attention: number[];
  /** The same attention with its keys split over workgroups (flash-decoding on WebGPU). */
  attentionSplit: number[];
  gemmQ8: number[];
  gemmQ4: number[];
  /** WebGPU: every kernel of `shaders/` that this browser's WGSL compiler refused, with why. */
  compileFailures?: string[];
}

/**
 * Compiles every kernel (f32, and f16 where the device has it; with the barrier-tree reductions,
 * and with the subgroup ones where the device uses them) into a pipeline on `gpu`, as this
 * browser's WGSL compiler (Tint in Chromium) sees it, and returns the refusals.
 */
async function compileEveryKernel(gpu: Gpu): Promise<string[]> {
  const weights = gpu.features.f16 ? ["f32", "f16"] as const : ["f32"] as const;
  const reductions = gpu.features.subgroups ? [false, true] : [false];
  const failures = await Promise.all(
    KERNEL_NAMES.flatMap((shader) =>
      weights.flatMap((w) =>
        reductions.map(async (subgroups) => {
          // The integer-dot GEMMs need WGSL's packed_4x8_integer_dot_product.
          if (shader.endsWith("_dp4a") && !gpu.features.integerDot) return undefined;
          const label = `${shader}.${w}${subgroups ? ".subgroups" : ""}`;
          const why = await compilePipeline(gpu.device, label, kernelSource(shader, w, subgroups));
          return why && `${label}: ${why}`;
        })
      )
    ),
  );
  return failures.filter((f) => f !== undefined).sort();
}

export default async function (input: KernelsPageInput): Promise<KernelsPageResult> {
  const refused = input.integerDot === false || input.subgroups === false;
  const { backend, reason } = refused
    ? {
      backend: await requestGpu({ integerDot: input.integerDot, subgroups: input.subgroups }),
      reason: "an optional feature refused",
    }
    : await chooseBackend(input);
  const inputs = browserInputs();
  const rec = backend.createRecorder();
  const up = (data: Float32Array, shape: number[]) =>
    uploadTensor(backend, data, shape, "f32", "in");

  const { m, n, k } = inputs.linear;
  const gemm = createTensor(backend, [m, n], "f32", "gemm");
  linear(
    rec,
    gemm,
    up(inputs.linear.x, [m, k]),
    up(inputs.linear.w, [n, k]),
    up(inputs.linear.b, [n]),
  );
  const gemv = createTensor(backend, [1, n], "f32", "gemv");
  linear(rec, gemv, up(inputs.linear.x.subarray(0, k), [1, k]), up(inputs.linear.w, [n, k]));

  const { rows, d } = inputs.norm;
  const normed = createTensor(backend, [rows, d], "f32", "normed");
  rmsNorm(rec, normed, up(inputs.norm.x, [rows, d]), up(inputs.norm.w, [d]), 1e-6);
  const softmaxed = up(inputs.softmax.x, [inputs.softmax.rows, inputs.softmax.cols]);
  softmax(rec, softmaxed);

  const { s, heads, headDim } = inputs.attention;
  const width = heads * headDim;
  const att = createTensor(backend, [s, width], "f32", "att");
  const [q, kk, v] = [inputs.attention.q, inputs.attention.k, inputs.attention.v].map((a) =>
    up(a, [s, width])
  );
  attention(rec, att, q, kk, v, { heads, headDim, kvLen: s, causal: true });
  const attSplit = createTensor(backend, [s, width], "f32", "att.split");
  const partials = createTensor(backend, [attentionPartialsSize(heads, headDim, s)], "f32", "p");
  attention(rec, attSplit, q, kk, v, { heads, headDim, kvLen: s, causal: true, partials });

  const quant = inputs.quant;
  const quantized = (["q8_0", "q4_k"] as const).map((dtype) => {
    const out = createTensor(backend, [quant.m, quant.n], "f32", `gemm.${dtype}`);
    const words = toDeviceWords(dtype, quantizeBlocks(dtype, quant.w));
    const w = uploadTensor(backend, words, [quant.n, quant.k], dtype, dtype);
    linear(rec, out, up(quant.x, [quant.m, quant.k]), w);
    return out;
  });
  rec.submit();

  const result: KernelsPageResult = {
    backend: { kind: backend.kind, description: backend.description, reason },
    adapter: backend instanceof Gpu ? backend.adapter : undefined,
    integerDot: backend instanceof Gpu ? backend.features.integerDot : undefined,
    subgroups: backend instanceof Gpu ? backend.features.subgroups : undefined,
    crossOriginIsolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated ===
      true,
    runner: backend instanceof CpuBackend
      ? {
        kind: backend.runner instanceof SingleThread ? "single" : "pool",
        threads: backend.runner.threads,
      }
      : undefined,
    gemm: [...await readF32(backend, gemm)],
    gemv: [...await readF32(backend, gemv)],
    rmsNorm: [...await readF32(backend, normed)],
    softmax: [...await readF32(backend, softmaxed)],
    attention: [...await readF32(backend, att)],
    attentionSplit: [...await readF32(backend, attSplit)],
    gemmQ8: [...await readF32(backend, quantized[0])],
    gemmQ4: [...await readF32(backend, quantized[1])],
    compileFailures: backend instanceof Gpu ? await compileEveryKernel(backend) : undefined,
  };
  backend.destroy();
  return result;
}
