/**
 * Browser entry for kernels_test.ts: runs a few kernels on the page's WebGPU adapter with the
 * seeded inputs the test recomputes on the CPU, and returns the adapter and the outputs.
 */

import { createTensor, readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { requestGpu } from "../../src/backends/webgpu/device.ts";
import { attention } from "../../src/ops/attention.ts";
import { linear } from "../../src/ops/linear.ts";
import { rmsNorm } from "../../src/ops/norm.ts";
import { browserInputs } from "./kernels_inputs.ts";

export default async function (): Promise<unknown> {
  const gpu = await requestGpu();
  const inputs = browserInputs();
  const rec = gpu.createRecorder();
  const up = (data: Float32Array, shape: number[]) => uploadTensor(gpu, data, shape, "f32", "in");

  const { m, n, k } = inputs.linear;
  const gemm = createTensor(gpu, [m, n], "f32", "gemm");
  linear(
    rec,
    gemm,
    up(inputs.linear.x, [m, k]),
    up(inputs.linear.w, [n, k]),
    up(inputs.linear.b, [n]),
  );
  const gemv = createTensor(gpu, [1, n], "f32", "gemv");
  linear(rec, gemv, up(inputs.linear.x.subarray(0, k), [1, k]), up(inputs.linear.w, [n, k]));

  const { rows, d } = inputs.norm;
  const normed = createTensor(gpu, [rows, d], "f32", "normed");
  rmsNorm(rec, normed, up(inputs.norm.x, [rows, d]), up(inputs.norm.w, [d]), 1e-6);

  const { s, heads, headDim } = inputs.attention;
  const width = heads * headDim;
  const att = createTensor(gpu, [s, width], "f32", "att");
  const [q, kk, v] = [inputs.attention.q, inputs.attention.k, inputs.attention.v].map((a) =>
    up(a, [s, width])
  );
  attention(rec, att, q, kk, v, { heads, headDim, kvLen: s, causal: true });
  rec.submit();

  return {
    adapter: gpu.adapter,
    f16: gpu.features.f16,
    gemm: [...await readF32(gpu, gemm)],
    gemv: [...await readF32(gpu, gemv)],
    rmsNorm: [...await readF32(gpu, normed)],
    attention: [...await readF32(gpu, att)],
  };
}
