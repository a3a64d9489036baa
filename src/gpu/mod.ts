/**
 * The GPU layer of @valle/core: device acquisition, kernel cache, command recording, readback,
 * profiling, and the ops (one WGSL kernel each) that the models are written with. Use it to build
 * your own pipelines on the same kernels, or to debug them.
 *
 * This module is browser compatible.
 *
 * @example Run one kernel
 * ```ts ignore
 * import { createTensor, readF32, Recorder, requestGpu, softmax, uploadTensor } from "@valle/core/gpu";
 * const gpu = await requestGpu();
 * const x = uploadTensor(gpu, new Float32Array([1, 2, 3, 4]), [1, 4], "f32", "x");
 * const rec = new Recorder(gpu);
 * softmax(rec, x);
 * rec.submit();
 * console.log(await readF32(gpu, x));
 * ```
 *
 * @module
 */

export * from "./device.ts";
export * from "./tensor.ts";
export * from "./buffers.ts";
export * from "./kernels.ts";
export * from "./recorder.ts";
export * from "./readback.ts";
export * from "./profiler.ts";
export * from "../ops/linear.ts";
export * from "../ops/norm.ts";
export * from "../ops/rope.ts";
export * from "../ops/attention.ts";
export * from "../ops/mlp.ts";
export * from "../ops/embedding.ts";
export * from "../ops/softmax.ts";
export * from "../ops/elementwise.ts";
export * from "../ops/conv1d.ts";
export * from "../ops/activation.ts";
export * from "../ops/lstm.ts";
export * from "../ops/rvq.ts";
export * from "../ops/layer_norm.ts";
export * from "../ops/depthwise_conv1d.ts";
export * from "../ops/istft.ts";
