/**
 * @valle/core: VALL-E text-to-speech computed on the GPU with WebGPU, for Deno and browsers.
 *
 * The root module exports the error classes, GPU acquisition, the weight readers (safetensors and
 * PyTorch checkpoints through a restricted unpickler), the audio codecs (EnCodec encode/decode
 * and the Vocos vocoder, both computed in WGSL) and WAV reading, writing and resampling. The GPU
 * layer with every op lives at `@valle/core/gpu`.
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
export * from "./src/io/download.ts";
export * from "./src/io/cache.ts";
export * from "./src/text/mod.ts";
export {
  type AdapterSummary,
  Gpu,
  type GpuFeatures,
  type GpuOptions,
  type GpuStats,
  type Precision,
  requestGpu,
} from "./src/gpu/device.ts";
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
