/**
 * The compute layer of @valle/core: the {@linkcode Backend} interface and its two
 * implementations (WebGPU, and the CPU in WebAssembly), tensors over either, profiling, and the
 * ops the models are written with (each one kernel: a WGSL file of `shaders/` and its C twin in
 * `wasm/`). Use it to build your own pipelines on the same kernels, or to debug them.
 *
 * This module is browser compatible.
 *
 * @example Run one op on whichever backend this machine suits
 * ```ts ignore
 * import { createBackend, readF32, softmax, uploadTensor } from "@valle/core/backends";
 * const backend = await createBackend();
 * const x = uploadTensor(backend, new Float32Array([1, 2, 3, 4]), [1, 4], "f32", "x");
 * const rec = backend.createRecorder();
 * softmax(rec, x);
 * rec.submit();
 * console.log(await readF32(backend, x));
 * ```
 *
 * @module
 */

export * from "./backend.ts";
export * from "./tensor.ts";
export * from "./select.ts";
export * from "./webgpu/device.ts";
export * from "./webgpu/kernels.ts";
export * from "./webgpu/recorder.ts";
export * from "./webgpu/profiler.ts";
export * from "./webgpu/buffers.ts";
export * from "./cpu/backend.ts";
export * from "./cpu/heap.ts";
export * from "./cpu/runner.ts";
export * from "./cpu/recorder.ts";
export * from "./cpu/profiler.ts";
export * from "../ops/_grid.ts";
export * from "../ops/_kernels.ts";
export * from "../ops/linear.ts";
export * from "../ops/lora.ts";
export * from "../ops/norm.ts";
export * from "../ops/norm_backward.ts";
export * from "../ops/rope.ts";
export * from "../ops/attention.ts";
export * from "../ops/attention_backward.ts";
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
