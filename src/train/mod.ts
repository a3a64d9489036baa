/**
 * LoRA fine-tuning (`@valle/core/train`): voice clips with transcripts turned into utterances
 * (EnCodec codes and phoneme token ids, cached), upstream's prompt sampling, a seeded
 * train/held-out split and manifest parsing; then upstream's training step (packed batches of
 * AR, NAR and NAR-len items, forward and backward on the device, AdamW), the training loop with
 * progress, evaluation, checkpoints and resume, and the LoRA in upstream's `lora.sft` layout.
 * `Valle.trainLora` runs it all from clips. The Deno-only folder reader is `./folder.ts`;
 * `DATA.md` documents the data folder layout.
 *
 * This module is browser compatible.
 *
 * @example Prepare clips and draw a prompt
 * ```ts ignore
 * import { Valle } from "@valle/core";
 * import { mulberry32, prepareUtterances, samplePrompt, splitUtterances } from "./mod.ts";
 * const valle = await Valle.load();
 * const { utterances, skipped } = await prepareUtterances(valle, [
 *   { name: "one", audio: "one.wav", text: "The first sentence.", language: "en" },
 *   { name: "two", audio: "two.wav", text: "The second one.", language: "en" },
 *   { name: "three", audio: "three.wav", text: "And a third.", language: "en" },
 * ]);
 * const { train } = splitUtterances(utterances, { evalCount: 0 });
 * const prompt = samplePrompt(train[0], train, { random: mulberry32(1) });
 * ```
 *
 * @module
 */

export { mulberry32 } from "../_random.ts";
export type { DataProblem } from "../errors.ts";
export type { Language } from "../text/languages.ts";
export type { AudioInput } from "../tts/reference.ts";
export { type ClipAudio, readClipAudio, type ReadClipAudioOptions } from "./clip_audio.ts";
export {
  type CachedCodes,
  codecFingerprint,
  codesCacheKey,
  readCachedCodes,
  type TrainingCodec,
  writeCachedCodes,
} from "./codes_cache.ts";
export {
  type ManifestEntry,
  type ParsedManifest,
  parseManifest,
  type ParseManifestOptions,
  sortByLine,
} from "./manifest.ts";
export {
  type PreparedUtterances,
  prepareUtterances,
  type PrepareUtterancesOptions,
  type TrainingModel,
} from "./prepare.ts";
export { type PromptCodes, type PromptSamplingOptions, samplePrompt } from "./prompts.ts";
export { splitUtterances, type SplitUtterancesOptions, type UtteranceSplit } from "./split.ts";
export type { TrainingClip, Utterance } from "./utterance.ts";
export {
  type BatchOptions,
  type ItemRows,
  lengthDigits,
  packBatch,
  type PackedBatch,
  type TrainingItem,
  type TrainingItemKind,
} from "./batch.ts";
export {
  exportLora,
  type ExportLoraOptions,
  initLora,
  LORA_MODULES,
  type LoraLayout,
  loraLayout,
  type LoraModule,
  type LoraSlot,
  readLora,
} from "./lora_params.ts";
export { TRAIN_KERNELS, trainKernelUses } from "./kernels.ts";
export { createTrainState, type TrainState, trainStateBytes } from "./state.ts";
export {
  type BatchLoss,
  batchLoss,
  type OptimizerSettings,
  recordOptimizerStep,
  recordStep,
  type StepOptions,
  uploadBatch,
} from "./step.ts";
export {
  evaluateLora,
  type EvaluateLoraOptions,
  LORA_LEVEL_URN,
  type TrainedLora,
  trainLora,
  type TrainLoraOptions,
  type TrainProgress,
} from "./trainer.ts";
export { type TrainedVoice, trainVoice, type TrainVoiceOptions } from "./voice.ts";
