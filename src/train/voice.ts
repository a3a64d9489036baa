/**
 * A voice from clips, in one call: the clips prepared (codes by the model's EnCodec, phonemes by
 * its front end, both checked and cached), a share held out for the evaluation loss, and a LoRA
 * trained on the rest ({@linkcode trainLora}). What `Valle.trainLora` and the `train-lora` CLI
 * run.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { DataProblem } from "../errors.ts";
import type { ValleModel } from "../models/valle/model.ts";
import { prepareUtterances, type PrepareUtterancesOptions, type TrainingModel } from "./prepare.ts";
import { splitUtterances } from "./split.ts";
import { type TrainedLora, trainLora, type TrainLoraOptions } from "./trainer.ts";
import type { TrainingClip } from "./utterance.ts";

/** Options of {@linkcode trainVoice}. */
export interface TrainVoiceOptions extends
  TrainLoraOptions,
  Pick<
    PrepareUtterancesOptions,
    "language" | "phonemizer" | "cache" | "onBadClip" | "maxFrames" | "onWarning"
  > {
  /**
   * The share of clips held out for the evaluation loss. Default 0.1 where that leaves at least
   * one clip out, else none.
   */
  evalFraction?: number;
  /** Called as clips are prepared, with the number done, the total and the clip's name. */
  onPrepare?: (done: number, total: number, name: string) => void;
}

/** What {@linkcode trainVoice} made. */
export interface TrainedVoice {
  /** The LoRA; `lora.toFile()` is a `lora.sft` for `setLora` and upstream. */
  lora: TrainedLora;
  /** Clips left out, with the reason. */
  skipped: DataProblem[];
  /** Clips trained on. */
  trained: number;
  /** Clips held out for the evaluation loss. */
  heldOut: number;
}

/**
 * Trains a LoRA on voice clips with their transcripts.
 *
 * @param model The codec and front end the clips are prepared with (a `Valle`).
 * @param valle The VALL-E model trained against (no LoRA active).
 * @param clips The clips.
 * @param options Preparation, hold-out share and training options.
 * @returns The LoRA and a report of the clips.
 * @throws {OptionError} No usable clip, or options out of range.
 * @throws {DataError} A bad clip, with `onBadClip: "throw"`.
 */
export async function trainVoice(
  model: TrainingModel,
  valle: ValleModel,
  clips: readonly TrainingClip[],
  options: TrainVoiceOptions = {},
): Promise<TrainedVoice> {
  const { utterances, skipped } = await prepareUtterances(model, clips, {
    language: options.language,
    phonemizer: options.phonemizer,
    cache: options.cache,
    onBadClip: options.onBadClip,
    maxFrames: options.maxFrames,
    onWarning: options.onWarning,
    signal: options.signal,
    onProgress: options.onPrepare,
  });
  if (utterances.length === 0) {
    const reasons = skipped.map((p) => `${p.name}: ${p.reason}`).join("; ");
    throw new OptionError(`Cannot train a LoRA: no usable clip (${reasons || "none given"})`);
  }
  const fraction = options.evalFraction ?? (Math.round(0.1 * utterances.length) > 0 ? 0.1 : 0);
  const split = splitUtterances(utterances, { evalFraction: fraction, seed: options.seed ?? 0 });
  const lora = await trainLora(valle, split.train, {
    ...options,
    evaluation: options.evaluation ?? split.eval,
  });
  return { lora, skipped, trained: split.train.length, heldOut: split.eval.length };
}
