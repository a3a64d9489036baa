/**
 * Speech-to-text on the phoneme head (valle-spec §4.5): the input audio's codes summed over
 * levels 0..L-2 (R[0] for level 0, R[l+1] for level l) form the first segment, then language and
 * RVQ level 0; phonemes are decoded after `<bos>` until `</eos>`, causally, through the STT head
 * (`classifiers.proj.{L+1}` in the len layout, `proj.L` in the older one). HEAD Python asks for a
 * head named "phn" that does not exist and samples raw hidden states (valle-spec §12.5); this runs
 * the intended head.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import { decode } from "./ar.ts";
import type { Codes, SequenceSpec } from "./inputs.ts";
import { assembleSequence } from "./inputs.ts";
import type { ValleContext } from "./pass.ts";
import { type ResolvedSamplerOptions, STREAM } from "./sampler.ts";

/** A speech-to-text run. */
export interface SttRun {
  /** The input audio, all RVQ levels. */
  codes: Codes;
  /** Language id, `null` to leave the segment out. */
  language?: number | null;
  /** Insert the language segment. */
  includeLanguage?: boolean;
  /** Phonemes to generate at most. */
  maxSteps: number;
  /** Sampler settings (no length penalty: the original's would index the audio stop id). */
  sampler: ResolvedSamplerOptions;
  /** Random seed. */
  seed: number;
  /** Steps between stop checks. */
  checkEvery: number;
}

/** `<bos>` and `</eos>` of the phoneme vocabulary. */
const BOS = 1;
const EOS = 2;

/** The sequence spec of an STT run with room for `maxSteps` phonemes after `<bos>`. */
export function sttSpec(run: SttRun): SequenceSpec {
  return {
    mode: "stt",
    phonemes: [],
    response: run.codes,
    language: run.language,
    includeLanguage: run.includeLanguage,
    responseFrames: 1 + run.maxSteps,
  };
}

/**
 * Transcribes codes to phoneme ids (without `<bos>` and `</eos>`).
 *
 * @returns The phoneme ids and whether `</eos>` came within `maxSteps`.
 * @throws {OptionError} A length penalty.
 *
 * @example
 * ```ts ignore
 * const { phonemes } = await transcribe(ctx, { codes, maxSteps: 100, sampler, seed: 0, checkEvery: 16 });
 * ```
 */
export async function transcribe(
  ctx: ValleContext,
  run: SttRun,
): Promise<{ phonemes: Int32Array; stopped: boolean }> {
  if (run.sampler.lengthPenalty !== 0) {
    throw new OptionError(
      "Cannot transcribe with a length penalty: the original applies it to the audio stop id, " +
        "outside the phoneme head (IndexError), expected 0",
    );
  }
  const { config, weights } = ctx.model;
  const seq = assembleSequence(config, weights.layout, sttSpec(run));
  const out = await decode(ctx, {
    seq,
    initial: [BOS],
    maxSteps: run.maxSteps,
    stopToken: EOS,
    sampler: run.sampler,
    seed: run.seed,
    stream: STREAM.stt,
    checkEvery: run.checkEvery,
  });
  const end = out.stoppedAt >= 0 ? out.stoppedAt : out.sampled.length;
  return { phonemes: out.sampled.slice(0, end), stopped: out.stoppedAt >= 0 };
}
