/**
 * The options of synthesis, their defaults (those of upstream's web UI, the settings the model's
 * author recommends for `ar+nar-len-llama-8`) and their validation.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { Codes } from "../models/valle/inputs.ts";
import { parseLanguage } from "../text/languages.ts";
import type { SplitMode } from "../text/split.ts";
import type { LanguageChoice } from "../text/prepare.ts";
import type { AudioInput } from "./reference.ts";

/** The phases {@linkcode SynthesisProgress} reports, in the order they happen. */
export type SynthesisPhase =
  | "download"
  | "load"
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
  /** Steps done in this phase (AR frames, demasking steps, NAR levels, bytes downloaded). */
  step?: number;
  /** Steps in this phase, when known. */
  steps?: number;
  /** The file being downloaded or loaded. */
  file?: string;
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
  /** `"auto"` (NAR-len when the model has it, else AR + NAR), `"ar+nar"` or `"nar-len"`. */
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
}

/** The defaults of {@linkcode SynthesizeOptions} (upstream web UI). */
export const SYNTHESIS_DEFAULTS: Readonly<
  Required<
    Omit<
      SynthesizeOptions,
      "reference" | "prompt" | "seed" | "signal" | "onProgress" | "textLanguage"
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
  & Pick<SynthesizeOptions, "reference" | "prompt" | "signal" | "onProgress" | "textLanguage">
  & { seed: number };

/**
 * Fills in defaults and checks what the sampler does not check itself.
 *
 * @throws {OptionError} A value out of range or an unknown language, naming it, what was given
 * and what is accepted.
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
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const o = { ...SYNTHESIS_DEFAULTS, seed: randomSeed(), ...defined } as ResolvedSynthesizeOptions;
  const check = (name: keyof SynthesizeOptions, ok: boolean, accepted: string) => {
    if (!ok) {
      throw new OptionError(
        `Cannot synthesize: ${name} is ${
          JSON.stringify(o[name as keyof typeof o])
        }, expected ${accepted}`,
      );
    }
  };
  const finite = (v: unknown) => typeof v === "number" && Number.isFinite(v);
  check("promptSeconds", finite(o.promptSeconds) && o.promptSeconds >= 0, "a number ≥ 0");
  check(
    "maxSeconds",
    finite(o.maxSeconds) && o.maxSeconds > 0 && o.maxSeconds <= 120,
    "0 < s ≤ 120",
  );
  check(
    "contextHistory",
    Number.isInteger(o.contextHistory) && o.contextHistory >= 0,
    "an integer ≥ 0",
  );
  check(
    "steps",
    Number.isInteger(o.steps) && o.steps >= 1 && o.steps <= 1000,
    "an integer in [1, 1000]",
  );
  check("pauseSeconds", finite(o.pauseSeconds) && o.pauseSeconds >= 0, "a number ≥ 0");
  check("cfgStrength", finite(o.cfgStrength) && o.cfgStrength >= 0, "a number ≥ 0");
  check(
    "cfgRescale",
    finite(o.cfgRescale) && o.cfgRescale >= 0 && o.cfgRescale <= 1,
    "a number in [0, 1]",
  );
  check("decoder", o.decoder === "vocos" || o.decoder === "encodec", '"vocos" or "encodec"');
  check(
    "modality",
    ["auto", "ar+nar", "nar-len"].includes(o.modality),
    '"auto", "ar+nar" or "nar-len"',
  );
  check(
    "seed",
    Number.isInteger(o.seed) && o.seed >= 0 && o.seed < 2 ** 32,
    "an integer in [0, 2³²)",
  );
  for (const name of ["language", "textLanguage"] as const) {
    const value = o[name];
    if (value !== undefined && value !== "auto") parseLanguage(value, name);
  }
  check(
    "split",
    ["sentences", "lines", "none"].includes(o.split),
    '"sentences", "lines" or "none"',
  );
  if (o.reference !== undefined && o.prompt !== undefined) {
    throw new OptionError("Cannot synthesize: both reference and prompt are given, expected one");
  }
  return o;
}

function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
