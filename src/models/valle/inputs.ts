/**
 * Sequence assembly: the segments of one VALL-E forward pass turned into per-position embedding
 * row ids (absolute rows of the stacked table, several per position where RVQ levels are summed),
 * position ids, segment kinds, the attention mask and the rows that are read out. Pure CPU code;
 * the GPU embeds the ids with one `embeddingSum` dispatch.
 *
 * Layout (mirrors vall_e/models/base.py: Base.inputs, inputs_to_embeddings,
 * inputs_to_position_ids): `phn S lang S rvq S prom S resp` for AR, NAR and NAR-len,
 * `phn S lang S rvq S prom S len` for duration, `resp S lang S rvq S phn` for speech-to-text, with
 * the learned `sep` vector S only between segments. Absent segments drop out together with their
 * separator. Positions restart at 0 in every segment (the separator after a segment takes the
 * next index) unless the config has unified position ids.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import { NO_ROW } from "../../ops/embedding.ts";
import { type ValleConfig, valleHeads } from "./config.ts";
import type { ValleTableLayout } from "./weights.ts";

/** Which pass of the model: the head, mask and input embeddings follow from it. */
export type ValleMode = "ar" | "nar" | "nar-len" | "len" | "stt";

/**
 * How NAR levels ≥ 2 sum the lower levels' embeddings (valle-spec §3.3): `"head"` is the current
 * upstream rule (levels 0..L-1), `"dec2024"` the rule the released weights were trained with
 * (levels 0..L-2; it drops the level just below the target).
 */
export type EmbeddingRule = "head" | "dec2024";

/** Audio codes, frame-major: `data[t * levels + k]` is RVQ level k of frame t. */
export interface Codes {
  /** The codes, frame-major. */
  readonly data: ArrayLike<number>;
  /** Number of frames. */
  readonly frames: number;
  /** Number of RVQ levels per frame. */
  readonly levels: number;
}

/** Codes produced by the model: {@linkcode Codes} with an `Int32Array`. */
export interface GeneratedCodes extends Codes {
  /** The codes, frame-major. */
  readonly data: Int32Array;
}

/** The segments of one pass. */
export interface SequenceSpec {
  /** The pass. */
  mode: ValleMode;
  /** NAR target level, 1..nLevels-1 (NAR only). */
  level?: number;
  /** Phoneme ids incl. `<bos>`=1 … `</eos>`=2; for "stt", the phonemes generated so far. */
  phonemes: ArrayLike<number>;
  /** Language id (`langs_emb` row); `null` leaves the segment out. Default 0. */
  language?: number | null;
  /** Prompt codes; `null`/absent leaves the segment out (also the CFG null input). */
  prompt?: Codes | null;
  /**
   * The response segment: AR and NAR-len read level 0 (NAR-len: the mask id marks masked
   * frames), NAR reads levels below the target, "stt" reads every level (the input audio).
   */
  response?: Codes | null;
  /**
   * Frames of the response segment when its tokens are written on the GPU (the AR, NAR and
   * NAR-len loops); `response` then is not read. Default: `response.frames` (0 without one).
   */
  responseFrames?: number;
  /**
   * Leading response frames that only condition the pass (the rolling context of NAR-len): fed
   * like the others but not read out, so the read rows are the frames after them. Default 0.
   */
  contextFrames?: number;
  /** Duration digits generated so far, starting with 0 ("len" only). */
  lengthDigits?: ArrayLike<number>;
  /** NAR summation rule. Default "head". */
  rule?: EmbeddingRule;
  /** Insert the language segment (the released weights may have been trained without it). Default true. */
  includeLanguage?: boolean;
}

/** Segment kinds, as numbered in the golden layout files. */
export const SEGMENT_KIND = { phn: 0, lang: 1, rvq: 2, prom: 3, resp: 4, len: 5, sep: 6 } as const;

/**
 * How the output segment's rows are embedded from tokens: term k of a row is table row
 * `base + k · stride + tokens[level0 + k][frame]`. The GPU loops write these ids from tokens they
 * keep on the GPU.
 */
export interface OutputFeed {
  /** Row of the first term's table. */
  readonly base: number;
  /** Rows between the tables of consecutive terms. */
  readonly stride: number;
  /** Number of summed terms (tables). */
  readonly terms: number;
  /** The token level the first term reads. */
  readonly level0: number;
}

/** An assembled sequence. */
export interface Sequence {
  /** Positions N. */
  readonly length: number;
  /** Terms per position (ids columns): the config's RVQ level count. */
  readonly terms: number;
  /** (N, terms) absolute rows of the stacked table, `NO_ROW` for unused terms. */
  readonly ids: Uint32Array;
  /** (N) position ids. */
  readonly positions: Uint32Array;
  /** (N) segment kinds ({@linkcode SEGMENT_KIND}). */
  readonly kinds: Uint8Array;
  /** First row of the output segment (resp / len / phn), always the last segment. */
  readonly outputStart: number;
  /** Rows of the output segment. */
  readonly outputLength: number;
  /** Rows whose logits the mode reads: the last row (AR, len, STT) or the whole output segment. */
  readonly readStart: number;
  /** Number of rows read. */
  readonly readLength: number;
  /** How the output segment is embedded from tokens. */
  readonly feed: OutputFeed;
  /** Causal (true) or bidirectional attention. */
  readonly causal: boolean;
  /** The head (`classifiers.proj.N`) that reads the logits. */
  readonly head: number;
}

interface Segment {
  kind: keyof typeof SEGMENT_KIND;
  /** Per position, the table rows summed there. */
  rows: number[][];
}

/**
 * Assembles the sequence of one pass.
 *
 * @param config The model config.
 * @param layout Row offsets of the stacked embedding table.
 * @param spec The segments.
 * @returns Ids, positions, kinds, mask and readout rows.
 * @throws {OptionError} A mode the model lacks, a level out of range, codes with too few levels
 * or ids outside their table.
 *
 * @example
 * ```ts ignore
 * const seq = assembleSequence(config, weights.layout, {
 *   mode: "ar", phonemes: [1, 22, 111, 2], language: 0, prompt, response: null,
 * });
 * ```
 */
export function assembleSequence(
  config: ValleConfig,
  layout: ValleTableLayout,
  spec: SequenceSpec,
): Sequence {
  const { mode } = spec;
  const heads = valleHeads(config);
  const rule = spec.rule ?? "head";
  const level = mode === "nar" ? spec.level ?? 1 : 0;
  if (mode === "nar" && !(Number.isInteger(level) && level >= 1 && level < config.nLevels)) {
    throw new OptionError(
      `Cannot assemble a NAR pass: level is ${spec.level}, expected 1..${config.nLevels - 1}`,
    );
  }
  if ((mode === "nar-len" || mode === "len") && !config.hasNarLen) {
    throw new OptionError(
      `Cannot assemble a ${mode} pass: the model has no len capability (no resps_emb.embeddings.${config.nLevels})`,
    );
  }
  const check = (what: string, id: number, size: number): number => {
    if (!(Number.isInteger(id) && id >= 0 && id < size)) {
      throw new OptionError(
        `Cannot assemble a ${mode} pass: ${what} is ${id}, expected 0..${size - 1}`,
      );
    }
    return id;
  };
  const codes = (what: string, c: Codes, minLevels: number): void => {
    if (c.levels < minLevels || c.data.length < c.frames * c.levels) {
      throw new OptionError(
        `Cannot assemble a ${mode} pass: ${what} has ${c.levels} levels and ${c.data.length} codes ` +
          `for ${c.frames} frames, expected at least ${minLevels} levels`,
      );
    }
  };
  const nAudio = config.nAudio;
  const code = (c: Codes, t: number, k: number, size = nAudio) =>
    check(`code [${t}, ${k}]`, c.data[t * c.levels + k], size);

  // Prompt: which levels and tables (valle-spec §3.3). Level-0 passes embed P[0](p_0).
  const promLevels = promptLevels(config, mode, level, rule);
  const feed = outputFeed(config, layout, mode, level, rule);

  const segments: Segment[] = [];
  const phn = (): Segment => ({
    kind: "phn",
    rows: Array.from(
      spec.phonemes,
      (id, i) => [layout.phn + check(`phoneme ${i}`, id, config.nPhn)],
    ),
  });
  const lang = (): Segment | undefined => {
    const language = spec.language === undefined ? 0 : spec.language;
    if (language === null || spec.includeLanguage === false) return undefined;
    return { kind: "lang", rows: [[layout.lang + check("language", language, config.nLangs)]] };
  };
  const rvq: Segment = { kind: "rvq", rows: [[layout.rvq + level]] };

  const responseFrames = spec.responseFrames ?? spec.response?.frames ?? 0;
  const response = spec.responseFrames === undefined ? spec.response : undefined;
  const fed = (): Segment => {
    const rows: number[][] = [];
    for (let t = 0; t < responseFrames; t++) {
      const row: number[] = [];
      if (response) {
        for (let k = 0; k < feed.terms; k++) {
          const size = mode === "ar" || mode === "nar-len" ? nAudio + 1 : nAudio;
          row.push(feed.base + k * feed.stride + code(response, t, feed.level0 + k, size));
        }
      }
      rows.push(row);
    }
    return { kind: mode === "len" ? "len" : mode === "stt" ? "phn" : "resp", rows };
  };

  if (mode === "stt") {
    const audio = spec.response;
    if (!audio) throw new OptionError("Cannot assemble an stt pass: no input audio (response)");
    codes("the input audio", audio, 1);
    const rows: number[][] = [];
    for (let t = 0; t < audio.frames; t++) {
      // mirrors Base.inputs_to_embeddings, "stt": R[0](r_0) + Σ_{l≥1} R[l+1](r_l), l < levels-1
      const row = [layout.resp[0] + code(audio, t, 0)];
      for (let l = 1; l < Math.min(audio.levels - 1, config.nLevels - 1); l++) {
        row.push(layout.resp[l + 1] + code(audio, t, l));
      }
      rows.push(row);
    }
    segments.push({ kind: "resp", rows });
    const l = lang();
    if (l) segments.push(l);
    segments.push(rvq);
    const out = spec.responseFrames === undefined
      ? phn()
      : { kind: "phn" as const, rows: Array.from({ length: responseFrames }, () => []) };
    segments.push(out);
  } else {
    segments.push(phn());
    const l = lang();
    if (l) segments.push(l);
    segments.push(rvq);
    if (spec.prompt) {
      codes("the prompt", spec.prompt, promLevels.length > 0 ? Math.max(...promLevels) + 1 : 1);
      const prompt = spec.prompt;
      const rows: number[][] = [];
      for (let t = 0; t < prompt.frames; t++) {
        rows.push(promLevels.map((k) => layout.prom[k] + code(prompt, t, k)));
      }
      segments.push({ kind: "prom", rows });
    }
    if (mode === "len") {
      const digits = spec.lengthDigits ?? [0];
      segments.push({
        kind: "len",
        rows: spec.responseFrames === undefined
          ? Array.from(
            digits,
            (dgt, i) => [layout.len + check(`length digit ${i}`, dgt, config.nLen)],
          )
          : Array.from({ length: responseFrames }, () => []),
      });
    } else {
      if (response) codes("the response", response, feed.level0 + feed.terms);
      segments.push(fed());
    }
  }

  // Join with separators; positions restart per segment unless unified.
  const terms = config.nLevels;
  let n = 0;
  segments.forEach((s, i) => (n += s.rows.length + (i < segments.length - 1 ? 1 : 0)));
  const ids = new Uint32Array(n * terms).fill(NO_ROW);
  const positions = new Uint32Array(n);
  const kinds = new Uint8Array(n);
  let row = 0;
  segments.forEach((s, i) => {
    const last = i === segments.length - 1;
    s.rows.forEach((termRows, p) => {
      termRows.forEach((id, k) => (ids[row * terms + k] = id));
      positions[row] = config.unifiedPositionIds ? row : p;
      kinds[row++] = SEGMENT_KIND[s.kind];
    });
    if (!last) {
      ids[row * terms] = layout.sep;
      positions[row] = config.unifiedPositionIds ? row : s.rows.length;
      kinds[row++] = SEGMENT_KIND.sep;
    }
  });

  const outputLength = segments[segments.length - 1].rows.length;
  const outputStart = n - outputLength;
  const readsAll = mode === "nar" || mode === "nar-len";
  const context = spec.contextFrames ?? 0;
  if (context !== 0 && !(Number.isInteger(context) && context > 0 && context < outputLength)) {
    throw new OptionError(
      `Cannot assemble a ${mode} pass: ${context} context frames, expected 0..${outputLength - 1}`,
    );
  }
  const head = mode === "ar"
    ? heads.ar
    : mode === "nar"
    ? heads.nar(level)
    : mode === "nar-len"
    ? heads.narLen
    : mode === "len"
    ? heads.len
    : heads.stt;
  return {
    length: n,
    terms,
    ids,
    positions,
    kinds,
    outputStart,
    outputLength,
    readStart: readsAll ? outputStart + context : n - 1,
    readLength: readsAll ? outputLength - context : 1,
    feed,
    causal: !(config.noncausalMasks && readsAll),
    head,
  };
}

/** The RVQ levels of the prompt summed for a pass (valle-spec §3.3). */
function promptLevels(
  config: ValleConfig,
  mode: ValleMode,
  level: number,
  rule: EmbeddingRule,
): number[] {
  if (mode !== "nar") return [0];
  if (!config.audioEmbeddingSums) return [level - 1];
  const top = rule === "dec2024" && level >= 2 ? level - 1 : level;
  return Array.from({ length: top }, (_, k) => k);
}

/** The tables that embed the output segment's tokens. */
function outputFeed(
  config: ValleConfig,
  layout: ValleTableLayout,
  mode: ValleMode,
  level: number,
  rule: EmbeddingRule,
): OutputFeed {
  switch (mode) {
    case "ar":
      return { base: layout.resp[0], stride: 0, terms: 1, level0: 0 };
    case "nar-len":
      return { base: layout.resp[config.nLevels], stride: 0, terms: 1, level0: 0 };
    case "len":
      return { base: layout.len, stride: 0, terms: 1, level0: 0 };
    case "stt":
      return { base: layout.phn, stride: 0, terms: 1, level0: 0 };
    case "nar": {
      if (!config.audioEmbeddingSums) {
        return { base: layout.resp[level], stride: 0, terms: 1, level0: level - 1 };
      }
      const terms = rule === "dec2024" && level >= 2 ? level - 1 : level;
      return { base: layout.resp[1], stride: config.nAudio, terms, level0: 0 };
    }
  }
}
