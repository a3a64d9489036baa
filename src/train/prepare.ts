/**
 * Training data from voice clips: each clip's transcript phonemized and tokenized by the text
 * front end (`prepareText`), its audio averaged to mono, resampled and encoded by EnCodec at the
 * model's levels, as upstream's `emb/process.py` and metadata builder prepare a dataset. The
 * codes are cached (see `codes_cache.ts`), so a second run skips the encoding.
 *
 * A clip that cannot be used is never used silently: it is reported by name and skipped, or, with
 * `onBadClip: "throw"`, every such clip is listed in one {@linkcode DataError}. Refused: an empty
 * transcript, a language the model lacks, audio that cannot be decoded, silent audio, a clip
 * shorter than upstream's shortest (1 s) or longer than `maxFrames`, codes that are all zero (as
 * upstream's loader refuses them), and a second clip of one speaker with the same name.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkRanges, withDefaults } from "../_options.ts";
import { DataError, type DataProblem, FormatError, OptionError } from "../errors.ts";
import { defaultCache, type FileCache } from "../io/cache.ts";
import { LANGUAGES } from "../text/languages.ts";
import type { Phonemizer } from "../text/phonemizer.ts";
import {
  DEFAULT_MAX_TOKENS,
  type LanguageChoice,
  prepareText,
  type TextPiece,
} from "../text/prepare.ts";
import { toModelCodes } from "../tts/codes.ts";
import { readClipAudio } from "./clip_audio.ts";
import {
  codecFingerprint,
  codesCacheKey,
  readCachedCodes,
  type TrainingCodec,
  writeCachedCodes,
} from "./codes_cache.ts";
import type { TrainingClip, Utterance } from "./utterance.ts";

/**
 * What preparation needs of a loaded model: its EnCodec and the VALL-E model's levels and
 * languages. A `Valle` instance is one.
 */
export interface TrainingModel {
  /** EnCodec (`Valle.encodec`). */
  readonly encodec: TrainingCodec;
  /** The VALL-E model (`Valle.model`): its RVQ levels and language-token count. */
  readonly model: { readonly config: { readonly nLevels: number; readonly nLangs: number } };
}

/** Options of {@linkcode prepareUtterances}. */
export interface PrepareUtterancesOptions {
  /** The language of clips that name none: a code, or `"auto"` (default) to detect it. */
  language?: LanguageChoice;
  /** The phonemizer (give the one the `Valle` was loaded with). Default: espeak-ng. */
  phonemizer?: Phonemizer;
  /** Where codes are cached; `false` encodes every time. Default: the platform's cache. */
  cache?: FileCache | false;
  /**
   * Names the codec in cache keys. Default: its fingerprint (the configuration and the codes of a
   * one-second probe, taken once per codec object).
   */
  codecId?: string;
  /** `"skip"` (default): report bad clips in `skipped`; `"throw"`: refuse them all in a `DataError`. */
  onBadClip?: "skip" | "throw";
  /** The shortest clip, in seconds. Default 1 (upstream's `duration_range` floor). */
  minSeconds?: number;
  /** The most frames (75 per second) a clip may have. Default 900 (12 s, upstream's default cap). */
  maxFrames?: number;
  /** Audio whose RMS level is below this (dBFS) is silent. Default −60. */
  silenceDb?: number;
  /** The most phoneme tokens a transcript may have. Default 256. */
  maxTokens?: number;
  /** Cancels the preparation. */
  signal?: AbortSignal;
  /** Told after each clip (used or skipped): clips done, clips in all, and the clip's name. */
  onProgress?: (done: number, total: number, name: string) => void;
  /** Told what was read leniently (a WAV file cut short). Default: `console.warn`. */
  onWarning?: (message: string) => void;
}

/** What {@linkcode prepareUtterances} gives. */
export interface PreparedUtterances {
  /** The usable clips, in the order given. */
  utterances: Utterance[];
  /** The clips left out, in the order given, with the reason. */
  skipped: DataProblem[];
}

/** The numeric options' ranges. */
const RANGES = {
  minSeconds: { min: 0 },
  maxFrames: { integer: true, min: 1 },
  silenceDb: { below: 0 },
  maxTokens: { integer: true, above: 2 },
} as const;

const DEFAULTS = {
  language: "auto" as LanguageChoice,
  onBadClip: "skip" as "skip" | "throw",
  minSeconds: 1,
  maxFrames: 900,
  silenceDb: -60,
  maxTokens: DEFAULT_MAX_TOKENS,
};

/** Raised inside the loop for a clip that is left out. */
class BadClip extends Error {}

/**
 * Turns voice clips with transcripts into training utterances: phoneme token ids and EnCodec
 * codes, cached so that a second run skips the encoding.
 *
 * @param model The loaded model (a `Valle`), or its codec and configuration.
 * @param clips The clips.
 * @param options Default language, phonemizer, cache, limits, what to do with bad clips, progress.
 * @returns The utterances and the clips left out.
 * @throws {DataError} With `onBadClip: "throw"`, every bad clip, after all were checked.
 * @throws {OptionError} An option out of range, or a default language that is unknown.
 *
 * @example
 * ```ts ignore
 * import { Valle } from "@valle/core";
 * const valle = await Valle.load();
 * const { utterances, skipped } = await prepareUtterances(valle, [
 *   { name: "one", audio: "one.wav", text: "The first sentence.", language: "en" },
 *   { name: "two", audio: "two.wav", text: "The second one.", language: "en" },
 * ]);
 * for (const s of skipped) console.warn(`${s.name}: ${s.reason}`);
 * ```
 */
export async function prepareUtterances(
  model: TrainingModel,
  clips: readonly TrainingClip[],
  options: PrepareUtterancesOptions = {},
): Promise<PreparedUtterances> {
  const o = withDefaults(DEFAULTS, options);
  checkRanges("prepare training data", o, RANGES);
  if (o.onBadClip !== "skip" && o.onBadClip !== "throw") {
    throw new OptionError(
      `Cannot prepare training data: onBadClip is ${JSON.stringify(o.onBadClip)}, expected ` +
        `"skip" or "throw"`,
    );
  }
  if (o.language !== "auto" && !Object.hasOwn(LANGUAGES, o.language)) {
    throw new OptionError(
      `Cannot prepare training data: language is ${JSON.stringify(o.language)}, expected ` +
        `"auto" or one of ${Object.keys(LANGUAGES).join(", ")}`,
    );
  }
  const cache = o.cache === false ? undefined : o.cache ?? defaultCache();
  const encoder: Encoder = {
    model,
    options: o,
    cache,
    // Taken once per codec object (codecFingerprint remembers it).
    codecId: () => o.codecId ?? codecFingerprint(model.encodec, levels(model)),
  };
  const utterances: Utterance[] = [];
  const skipped: DataProblem[] = [];
  const seen = new Set<string>();
  for (const [index, clip] of clips.entries()) {
    o.signal?.throwIfAborted();
    const name = typeof clip.name === "string" && clip.name ? clip.name : `clip ${index + 1}`;
    const speaker = clip.speaker ?? "speaker";
    try {
      const id = JSON.stringify([speaker, name]);
      if (seen.has(id)) {
        throw new BadClip(`another clip of speaker ${JSON.stringify(speaker)} has this name`);
      }
      seen.add(id);
      const piece = await transcript(clip, model, o);
      const codes = await encode(clip, name, encoder);
      utterances.push({
        name,
        speaker,
        language: piece.language,
        languageId: piece.languageId,
        text: clip.text,
        ipa: piece.phonemes,
        phonemes: Uint16Array.from(piece.tokens),
        codes,
        frames: codes.length / levels(model),
        levels: levels(model),
      });
    } catch (e) {
      if (!(e instanceof BadClip)) throw e;
      skipped.push({ name, reason: e.message });
    }
    o.onProgress?.(index + 1, clips.length, name);
  }
  if (o.onBadClip === "throw" && skipped.length) {
    throw new DataError("prepare training data", skipped);
  }
  return { utterances, skipped };
}

/** The model's RVQ levels. */
function levels(model: TrainingModel): number {
  return model.model.config.nLevels;
}

/** A clip's transcript, phonemized and tokenized, or why it cannot be used. */
async function transcript(
  clip: TrainingClip,
  model: TrainingModel,
  o: typeof DEFAULTS & PrepareUtterancesOptions,
): Promise<TextPiece> {
  if (typeof clip.text !== "string" || !clip.text.trim()) {
    throw new BadClip("the transcript is empty");
  }
  const [piece] = await refuseErrors(prepareText(clip.text, {
    language: (clip.language ?? o.language) as LanguageChoice,
    split: "none",
    phonemizer: o.phonemizer,
    maxTokens: Number.MAX_SAFE_INTEGER, // checked below, with advice that fits training
  }));
  if (piece.tokens.length > o.maxTokens) {
    throw new BadClip(
      `the transcript has ${piece.tokens.length} phoneme tokens, expected at most ` +
        `${o.maxTokens} (maxTokens); cut the clip and its transcript into shorter ones`,
    );
  }
  const { nLangs } = model.model.config;
  if (piece.languageId >= nLangs) {
    throw new BadClip(
      `its language ${piece.language} (id ${piece.languageId}) is not one of the model's ` +
        `${nLangs} languages (${Object.keys(LANGUAGES).slice(0, nLangs).join(", ")})`,
    );
  }
  return piece;
}

/** What encoding needs: the model, the options, the cache and the codec's name in it. */
interface Encoder {
  model: TrainingModel;
  options: typeof DEFAULTS & PrepareUtterancesOptions;
  cache: FileCache | undefined;
  codecId: () => Promise<string> | string;
}

/** A clip's codes, frame-major: from the cache, else encoded (and cached); or why not. */
async function encode(clip: TrainingClip, name: string, encoder: Encoder): Promise<Int16Array> {
  const { model, options: o, cache } = encoder;
  const codec = model.encodec;
  const { sampleRate, hopLength, frameRate } = codec.config;
  const nQ = levels(model);
  const audio = await refuseErrors(readClipAudio(clip.audio, {
    sampleRate,
    label: name,
    signal: o.signal,
    onWarning: o.onWarning,
  }));
  checkAudio(audio.samples, Math.ceil(audio.samples.length / hopLength), frameRate, o);
  const key = cache && codesCacheKey(await encoder.codecId(), nQ, audio.sha256);
  const cached = cache && key && await readCachedCodes(cache, key, nQ);
  if (cached) return cached.codes;
  o.signal?.throwIfAborted();
  const encoded = await codec.encode(audio.samples, sampleRate, { nQ });
  const codes = Int16Array.from(toModelCodes(encoded, nQ).data);
  if (codes.every((c) => c === 0)) throw new BadClip("its codes are all zero");
  if (cache && key) await writeCachedCodes(cache, key, codes, name);
  return codes;
}

/** A clip's fault (unreadable audio, text the front end refuses) as a {@linkcode BadClip}. */
async function refuseErrors<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (e) {
    if (e instanceof FormatError || e instanceof OptionError) {
      throw new BadClip(e.message);
    }
    throw e;
  }
}

/** Refuses silent audio, and clips shorter than `minSeconds` or longer than `maxFrames`. */
function checkAudio(
  samples: Float32Array,
  frames: number,
  frameRate: number,
  o: { minSeconds: number; maxFrames: number; silenceDb: number },
): void {
  let energy = 0;
  for (const x of samples) energy += x * x;
  const db = 10 * Math.log10(energy / samples.length);
  if (!(db >= o.silenceDb)) {
    throw new BadClip(
      `the audio is silent (RMS ${db.toFixed(1)} dBFS, expected at least ${o.silenceDb} dBFS)`,
    );
  }
  const seconds = frames / frameRate;
  if (seconds < o.minSeconds) {
    throw new BadClip(
      `the clip is ${seconds.toFixed(2)} s long, expected at least ${o.minSeconds} s`,
    );
  }
  if (frames > o.maxFrames) {
    throw new BadClip(
      `the clip is ${seconds.toFixed(2)} s long (${frames} frames), expected at most ` +
        `${o.maxFrames} frames (${(o.maxFrames / frameRate).toFixed(2)} s)`,
    );
  }
}
