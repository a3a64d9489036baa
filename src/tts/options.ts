/**
 * The options of synthesis, their defaults (those of upstream's web UI, the settings the model's
 * author recommends for `ar+nar-len-llama-8`) and their validation.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkChoice, checkRanges, type NumberRange, withDefaults } from "../_options.ts";
import { OptionError } from "../errors.ts";
import type { Codes } from "../models/valle/inputs.ts";
import { SAMPLER_RANGES } from "../models/valle/sampler.ts";
import { parseLanguage } from "../text/languages.ts";
import type { SplitMode } from "../text/split.ts";
import type { LanguageChoice } from "../text/prepare.ts";
import type { AudioInput } from "./reference.ts";

/** The phases {@linkcode SynthesisProgress} reports, in the order they happen. */
export type SynthesisPhase =
  | "download"
  | "load"
  | "compile"
  | "phonemize"
  | "encode-prompt"
  | "duration"
  | "level0"
  | "nar"
  | "decode";

/** One progress report. */
export interface SynthesisProgress {
  /** What is happening. */
  phase: SynthesisPhase;
  /** The piece of text (0-based) being spoken, for the per-piece phases. */
  piece?: number;
  /** Pieces in the text. */
  pieces?: number;
  /**
   * Steps done in this phase (AR frames, demasking steps, NAR levels, bytes downloaded, GPU
   * kernels compiled).
   */
  step?: number;
  /** Steps in this phase, when known. */
  steps?: number;
  /** The file being downloaded or loaded (`"backend"` when the backend is chosen). */
  file?: string;
  /** Batched pieces: pieces generated together, from `piece` on (absent one by one). */
  rows?: number;
  /** Batched pieces, duration and level-0 phases: pieces of the batch still decoding. */
  running?: number;
  /** With `file: "backend"`: the backend chosen and why, e.g. "CPU (…, 2 threads): asked for". */
  backend?: string;
}

/** Everything one synthesis call can be told. Every field is optional. */
export interface SynthesizeOptions {
  /** The voice: one reference clip or several (their codes are concatenated, as upstream). */
  reference?: AudioInput | readonly AudioInput[];
  /** An already encoded voice (from `Valle.encodeReference`), instead of `reference`. */
  prompt?: Codes;
  /**
   * Trim or repeat the prompt to this many seconds (upstream `input_prompt_length`); 0 keeps it
   * whole. Default 0 (web UI).
   */
  promptSeconds?: number;
  /** The accent: the model's language token. `"auto"` detects it per sentence. Default `"auto"`. */
  language?: LanguageChoice;
  /** The language the text is read in (phonemizer). Default: `language`. */
  textLanguage?: LanguageChoice;
  /** How to cut long text: `"sentences"` (default), `"lines"` or `"none"`. */
  split?: SplitMode | "none";
  /**
   * Rolling context: the previous N pieces' phonemes and level-0 codes are the prefix of the next
   * (upstream `context_history`). Default 0 (off).
   */
  contextHistory?: number;
  /**
   * Pieces generated together as one batch when `contextHistory` is 0 (1: one by one). Up to 4
   * rows each piece is bit for bit what it is alone; with more, the AR step's GEMM rounding can
   * resolve a near-tie differently. Memory grows with the batch (see the README). `stream()`
   * generates its first piece alone, so that it comes out first, and batches the rest. Default:
   * as many as fit in 1 GiB of run state, at most 4.
   */
  batchSize?: number;
  /**
   * `"auto"` (NAR-len when the model has it and runs on a hardware GPU; AR + NAR on the CPU
   * backend or a software adapter, where NAR-len's full passes take seconds each, and for models
   * without NAR-len), `"ar+nar"` or `"nar-len"`.
   */
  modality?: "auto" | "ar+nar" | "nar-len";
  /** The longest a piece may be, in seconds. Default 12. */
  maxSeconds?: number;
  /** Temperature of level 0 (AR, and NAR-len's starting temperature). Default 1. */
  arTemperature?: number;
  /** Lower end of dynamic temperature for level 0; negative is off. Default -1. */
  minArTemperature?: number;
  /** Temperature of the NAR levels 1..7. Default 0 (greedy). */
  narTemperature?: number;
  /** Keep the k most likely tokens; 0 is off. Default 0. */
  topK?: number;
  /** Nucleus sampling threshold; 1 is off. Default 1. */
  topP?: number;
  /** Drop tokens below minP × the top probability; 0 is off. Default 0. */
  minP?: number;
  /** Top-nσ filtering (on when > 0). Default 0. */
  topNSigma?: number;
  /** Repetition penalty (AR and NAR levels; not NAR-len, where upstream crashes); 1 is off. */
  repetitionPenalty?: number;
  /** Repetition penalty decay with distance. Default 0. */
  repetitionPenaltyDecay?: number;
  /** AR length penalty on the stop token; 0 is off. Default 0. */
  lengthPenalty?: number;
  /** NAR-len demasking steps. Default 50. */
  steps?: number;
  /** Classifier-free guidance strength (NAR-len raises it to at least 2.5). Default 1. */
  cfgStrength?: number;
  /** CFG rescale. Default 0.75. */
  cfgRescale?: number;
  /** The audio decoder: `"vocos"` (default, as upstream) or `"encodec"`. */
  decoder?: "vocos" | "encodec";
  /** Random seed: the same seed gives the same audio. Default: a random one. */
  seed?: number;
  /** Silence between pieces, in seconds. Default 0. */
  pauseSeconds?: number;
  /** Cancels synthesis at the next step boundary. */
  signal?: AbortSignal;
  /** Progress reports. */
  onProgress?: (progress: SynthesisProgress) => void;
  /**
   * Told what was read leniently, e.g. a reference WAV cut short (read up to its end). Default:
   * `console.warn`.
   */
  onWarning?: (message: string) => void;
}

/** The defaults of {@linkcode SynthesizeOptions} (upstream web UI). */
export const SYNTHESIS_DEFAULTS: Readonly<
  Required<
    Omit<
      SynthesizeOptions,
      | "reference"
      | "prompt"
      | "seed"
      | "signal"
      | "onProgress"
      | "onWarning"
      | "textLanguage"
      | "batchSize"
    >
  >
> = Object.freeze({
  promptSeconds: 0,
  language: "auto",
  split: "sentences",
  contextHistory: 0,
  modality: "auto",
  maxSeconds: 12,
  arTemperature: 1,
  minArTemperature: -1,
  narTemperature: 0,
  topK: 0,
  topP: 1,
  minP: 0,
  topNSigma: 0,
  repetitionPenalty: 1,
  repetitionPenaltyDecay: 0,
  lengthPenalty: 0,
  steps: 50,
  cfgStrength: 1,
  cfgRescale: 0.75,
  decoder: "vocos",
  pauseSeconds: 0,
});

/** {@linkcode SynthesizeOptions} with every default filled in and the ranges checked. */
export type ResolvedSynthesizeOptions =
  & typeof SYNTHESIS_DEFAULTS
  & Pick<
    SynthesizeOptions,
    "reference" | "prompt" | "signal" | "onProgress" | "onWarning" | "textLanguage" | "batchSize"
  >
  & { seed: number };

/** The options of {@linkcode SynthesizeOptions} that are numbers. */
type NumericOption = {
  [K in keyof SynthesizeOptions]-?: NonNullable<SynthesizeOptions[K]> extends number ? K : never;
}[keyof SynthesizeOptions];

/**
 * The values every numeric option accepts, whatever the modality: the sampler's own ranges for
 * the sampler settings (bounded so that the kernels' f32 arithmetic stays finite), and limits that
 * keep every allocation sane for the rest.
 */
export const SYNTHESIS_RANGES: { readonly [K in NumericOption]: NumberRange } = {
  promptSeconds: { min: 0, max: 120 },
  contextHistory: { integer: true, min: 0, max: 64 },
  batchSize: { integer: true, min: 1, max: 64 },
  maxSeconds: { above: 0, max: 120 },
  arTemperature: SAMPLER_RANGES.temperature,
  minArTemperature: SAMPLER_RANGES.minTemperature,
  narTemperature: SAMPLER_RANGES.temperature,
  topK: SAMPLER_RANGES.topK,
  topP: SAMPLER_RANGES.topP,
  minP: SAMPLER_RANGES.minP,
  topNSigma: SAMPLER_RANGES.topNSigma,
  repetitionPenalty: SAMPLER_RANGES.repetitionPenalty,
  repetitionPenaltyDecay: SAMPLER_RANGES.repetitionPenaltyDecay,
  lengthPenalty: SAMPLER_RANGES.lengthPenalty,
  steps: { integer: true, min: 1, max: 1000 },
  cfgStrength: { min: 0, max: 100 }, // (cond − uncond) · 100 stays finite; 1e300 did not
  cfgRescale: { min: 0, max: 1 },
  seed: { integer: true, min: 0, below: 2 ** 32 },
  pauseSeconds: { min: 0, max: 60 },
};

/**
 * Fills in defaults and checks every option, before anything runs: each number against its
 * range (the same for every modality), the choices, the languages.
 *
 * @throws {OptionError} A value out of range or an unknown language, naming the option, what was
 * given (`NaN` as NaN) and what is accepted.
 *
 * @example
 * ```ts
 * import { resolveSynthesizeOptions } from "@valle/core";
 * const o = resolveSynthesizeOptions({ seed: 7 });
 * console.assert(o.steps === 50 && o.decoder === "vocos" && o.seed === 7);
 * ```
 */
export function resolveSynthesizeOptions(
  options: SynthesizeOptions = {},
): ResolvedSynthesizeOptions {
  const o: ResolvedSynthesizeOptions = withDefaults(
    { ...SYNTHESIS_DEFAULTS, seed: randomSeed() },
    options,
  );
  checkRanges("synthesize", o, SYNTHESIS_RANGES);
  const choice = (name: keyof SynthesizeOptions, accepted: readonly string[]) =>
    checkChoice("synthesize", name, o[name as keyof typeof o], accepted);
  choice("decoder", ["vocos", "encodec"]);
  choice("modality", ["auto", "ar+nar", "nar-len"]);
  choice("split", ["sentences", "lines", "none"]);
  for (const name of ["language", "textLanguage"] as const) {
    const value = o[name];
    if (value !== undefined && value !== "auto") parseLanguage(value, name);
  }
  if (o.reference !== undefined && o.prompt !== undefined) {
    throw new OptionError("Cannot synthesize: both reference and prompt are given, expected one");
  }
  return o;
}

function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
