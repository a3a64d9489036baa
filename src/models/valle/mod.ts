/**
 * VALL-E v1 (e-c-k-e-r/vall-e: `ar+nar-len-llama-8`, `ar+nar-llama-8`, any size) on WebGPU:
 * loading the released `.sft` weights, every inference mode (AR level 0 with an exact KV cache,
 * NAR levels, duration, NAR-len demasking with CFG, speech-to-text), samplers on the GPU, and a
 * low-level call that returns the logits of one forward pass.
 *
 * Inputs are phoneme ids (see the text front end) and EnCodec codes (frame-major
 * {@linkcode Codes}); outputs are codes for the codec.
 *
 * This module is browser compatible.
 *
 * @example Load and generate
 * ```ts ignore
 * import { ValleModel } from "@valle/core/valle";
 * const valle = await ValleModel.load("ar+nar-len-llama-8.sft");
 * const phonemes = [1, 22, 111, 100, 4, 37, 115, 169, 11, 2]; // "həlˈoʊ wˈɜːld."
 * const { codes } = await valle.generate({ phonemes, language: 0, prompt });
 * console.log(codes.frames, codes.levels);
 * valle.dispose();
 * ```
 *
 * @module
 */

export {
  type ArRequest,
  type ArResult,
  type ContextPrefix,
  type GenerateRequest,
  type GenerateResult,
  type InputsResult,
  type LogitsRequest,
  type LogitsResult,
  type LoraOptions,
  type NarLenRequest,
  type NarRequest,
  type SamplingRequest,
  type SttRequest,
  type ValleBase,
  type ValleConditioning,
  ValleModel,
  type ValleModelOptions,
} from "./model.ts";
export { readValleConfig, type ValleConfig, type ValleHeads, valleHeads } from "./config.ts";
export {
  ggufCheckpoint,
  readValleFile,
  type ValleCheckpoint,
  type ValleFileInput,
} from "./checkpoint.ts";
export { VALLE_DTYPES, type ValleDtype } from "./quant_policy.ts";
export {
  checkValleWeights,
  type ValleHeadWeights,
  type ValleLayerWeights,
  type ValleTableLayout,
  valleTableLayout,
  valleWeightBytes,
  type ValleWeights,
} from "./weights.ts";
export {
  assembleSequence,
  type Codes,
  type EmbeddingRule,
  type GeneratedCodes,
  type OutputFeed,
  SEGMENT_KIND,
  type Sequence,
  type SequenceSpec,
  type ValleMode,
} from "./inputs.ts";
export {
  MAX_SORTED_COLUMNS,
  penaltyTable,
  type ResolvedSamplerOptions,
  resolveSamplerOptions,
  type SampledLogits,
  sampleLogits,
  SAMPLER_DEFAULTS,
  type SamplerOptions,
} from "./sampler.ts";
export { type CfgOptions, type GuidedLogits, guideLogits } from "./cfg.ts";
export {
  demaskSchedule,
  type DemaskScheduleOptions,
  type DemaskStep,
  demaskTimesteps,
} from "./schedule.ts";
export type { NarLenResult, NarLenTrace } from "./nar_len.ts";
export type { ProgressOptions, VallePhase, ValleProgress } from "./progress.ts";
export type { Duration } from "./len.ts";
export type { BatchRow, GenerateBatchRequest } from "./batch.ts";
export type { ActiveLora } from "./adapter.ts";
export { type LoraFactors, type LoraReplacement, parseValleLora, type ValleLora } from "./lora.ts";
