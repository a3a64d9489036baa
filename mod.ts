/**
 * @valle/core: VALL-E text-to-speech computed on the GPU with WebGPU, or on the CPU in
 * WebAssembly where there is no GPU, for Deno and browsers.
 *
 * The root module exports synthesis, the error classes, backend choice (WebGPU or CPU), the weight
 * readers (safetensors and PyTorch checkpoints through a restricted unpickler), the audio codecs
 * (EnCodec encode/decode and the Vocos vocoder) and WAV reading, writing and resampling. The compute
 * layer (both backends, tensors, every op) lives at `@valle/core/backends`.
 *
 * @example Read a safetensors file
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "@valle/core";
 * const bytes = serializeSafetensors({
 *   w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
 * });
 * const file = parseSafetensors(bytes);
 * console.assert(file.info("w").shape[0] === 2);
 * ```
 *
 * @module
 */

export * from "./src/tts/mod.ts";
export * from "./src/errors.ts";
export * from "./src/io/safetensors.ts";
export * from "./src/io/gguf.ts";
export type { ValleDtype } from "./src/models/valle/quant_policy.ts";
export * from "./src/io/download.ts";
export * from "./src/io/cache.ts";
export * from "./src/text/mod.ts";
export {
  type AdapterSummary,
  Gpu,
  type GpuFeatures,
  type GpuOptions,
  requestGpu,
} from "./src/backends/webgpu/device.ts";
export type {
  Backend,
  BackendKind,
  BackendStats,
  MemoryUsage,
  Precision,
  Tensor,
} from "./src/backends/backend.ts";
export {
  type BackendChoice,
  type BackendOptions,
  type BackendSource,
  chooseBackend,
  type ChosenBackend,
  createBackend,
} from "./src/backends/select.ts";
export {
  type CpuBackend,
  type CpuBackendOptions,
  createCpuBackend,
} from "./src/backends/cpu/backend.ts";
export * from "./src/io/weights.ts";
export {
  parseTorchCheckpoint,
  TorchCheckpoint,
  type TorchTensorInfo,
} from "./src/io/torch_checkpoint.ts";
export * from "./src/audio/wav.ts";
export * from "./src/audio/resample.ts";
export * from "./src/models/encodec/config.ts";
export * from "./src/models/encodec/encodec.ts";
export * from "./src/models/vocos/config.ts";
export * from "./src/models/vocos/vocos.ts";
