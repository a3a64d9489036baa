/**
 * Training batches: the items of one training step (AR, NAR-level, NAR-len and duration items)
 * assembled as the inference passes assemble them (`assembleSequence`), packed one after another
 * into a single sequence of rows, with each row's attention span, its label and its loss weight,
 * as upstream's training step lays them out (`AR_NAR.forward_train`, `Base.inputs`,
 * `Base.calc_loss` in loss mode A; `shared/docs/training-spec.md` §3–§5).
 *
 * Items are packed without padding, so each item is computed exactly as it is alone (upstream's
 * mixed batches let bidirectional items attend to padding: training-spec §14.1).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { ValleConfig } from "../models/valle/config.ts";
import {
  assembleSequence,
  type Codes,
  type EmbeddingRule,
  type Sequence,
} from "../models/valle/inputs.ts";
import type { ValleTableLayout } from "../models/valle/weights.ts";
import { packedAttentionTables } from "../ops/attention_backward.ts";
import { IGNORE_LABEL } from "../ops/cross_entropy.ts";

/** What an item trains: the AR (level 0), one NAR level, NAR-len demasking, or the duration. */
export type TrainingItemKind = "ar" | "nar" | "nar-len" | "len";

/** One training item: an utterance with the decisions upstream draws for it. */
export interface TrainingItem {
  /** What the item trains. */
  kind: TrainingItemKind;
  /** The target RVQ level of a NAR item, 1..nLevels-1. */
  level?: number;
  /** Phoneme token ids incl. `<bos>` … `<eos>`. */
  phonemes: ArrayLike<number>;
  /** Language id; `null` leaves the segment out. Default 0. */
  language?: number | null;
  /** Prompt codes (another utterance of the speaker), or none. */
  prompt?: Codes | null;
  /** The utterance's codes, frame-major, with at least `level + 1` levels. */
  response: Codes;
  /** NAR-len only: per frame, whether it is masked (those frames are the ones scored). */
  mask?: ArrayLike<boolean>;
}

/** Sequence options shared by the items of a batch. */
export interface BatchOptions {
  /** How NAR levels ≥ 2 sum the lower levels (`"head"`, upstream today; `"dec2024"`). */
  rule?: EmbeddingRule;
  /** Insert the language segment. Default true. */
  includeLanguage?: boolean;
  /** Multiplies every loss weight (1 / gradient-accumulation steps). Default 1. */
  lossScale?: number;
}

/** Where one item sits in a packed batch, and which rows of it are scored. */
export interface ItemRows {
  /** First row of the item. */
  readonly start: number;
  /** Rows of the item. */
  readonly length: number;
  /** Causal (AR, len) or bidirectional (NAR, NAR-len where the model has noncausal masks). */
  readonly causal: boolean;
  /** The head (`classifiers.proj.N`) whose logits are scored. */
  readonly head: number;
  /** First row whose logits are scored (a row of the packed sequence). */
  readonly readStart: number;
  /** Rows whose logits are read (some may be ignored, e.g. unmasked NAR-len frames). */
  readonly readLength: number;
  /** Rows with a label (0: the item adds nothing to the loss). */
  readonly scored: number;
}

/** A packed batch: ids, positions, spans and labels of every row. */
export interface PackedBatch {
  /** Rows of all items. */
  readonly rows: number;
  /** Embedding terms per row (the config's RVQ level count). */
  readonly terms: number;
  /** (rows, terms) absolute rows of the stacked embedding table. */
  readonly ids: Uint32Array;
  /** (rows) position ids. */
  readonly positions: Uint32Array;
  /** (rows, 2) each query's key span: first row and count. */
  readonly spans: Uint32Array;
  /** (rows, 2) each key's candidate queries: first row and count. */
  readonly keyQueries: Uint32Array;
  /** (rows) the label of each row's logits, {@linkcode IGNORE_LABEL} where unscored. */
  readonly labels: Uint32Array;
  /** (rows) each scored row's loss weight: 1 / (its item's scored rows · scored items). */
  readonly weights: Float32Array;
  /** The items in order. */
  readonly items: readonly ItemRows[];
}

/**
 * Assembles and packs the items of one step.
 *
 * @param config The model.
 * @param layout Its embedding table layout.
 * @param items The items, in order.
 * @param options Summation rule, language segment, loss scale.
 * @returns The packed rows and their labels.
 * @throws {OptionError} An empty batch, a kind the model lacks, a level out of range, a mask of
 * the wrong length, codes with too few levels or ids out of range (naming the item).
 *
 * @example
 * ```ts ignore
 * const batch = packBatch(config, weights.layout, [
 *   { kind: "ar", phonemes, prompt, response },
 *   { kind: "nar", level: 3, phonemes, prompt, response },
 * ]);
 * ```
 */
export function packBatch(
  config: ValleConfig,
  layout: ValleTableLayout,
  items: readonly TrainingItem[],
  options: BatchOptions = {},
): PackedBatch {
  if (items.length === 0) throw new OptionError("Cannot pack a training batch of no items");
  const built = items.map((item, i) => {
    try {
      return buildItem(config, layout, item, options);
    } catch (e) {
      if (e instanceof OptionError) {
        throw new OptionError(`Training item ${i} (${item.kind}): ${e.message}`);
      }
      throw e;
    }
  });
  const rows = built.reduce((n, b) => n + b.seq.length, 0);
  const terms = config.nLevels;
  const ids = new Uint32Array(rows * terms);
  const positions = new Uint32Array(rows);
  const { spans, keyQueries } = packedAttentionTables(
    built.map(({ seq }) => ({ rows: seq.length, causal: seq.causal })),
  );
  const labels = new Uint32Array(rows).fill(IGNORE_LABEL);
  const weights = new Float32Array(rows);
  const packed: ItemRows[] = [];
  const scoredItems = built.filter((b) => b.scored > 0).length;
  const scale = options.lossScale ?? 1;
  let start = 0;
  for (const { seq, readStart, readLabels, scored } of built) {
    const n = seq.length;
    ids.set(seq.ids, start * terms);
    positions.set(seq.positions, start);
    readLabels.forEach((label, j) => {
      if (label === IGNORE_LABEL) return;
      labels[start + readStart + j] = label;
      weights[start + readStart + j] = scale / (scored * scoredItems);
    });
    packed.push({
      start,
      length: n,
      causal: seq.causal,
      head: seq.head,
      readStart: start + readStart,
      readLength: readLabels.length,
      scored,
    });
    start += n;
  }
  return { rows, terms, ids, positions, spans, keyQueries, labels, weights, items: packed };
}

/** Digits of a frame count as the len head spells them: 0, the decimal digits, then stop (10). */
export function lengthDigits(frames: number): number[] {
  return [0, ...String(frames).split("").map(Number), 10];
}

interface BuiltItem {
  seq: Sequence;
  /** First scored row, relative to the item. */
  readStart: number;
  /** Labels of the rows from readStart on. */
  readLabels: number[];
  scored: number;
}

function buildItem(
  config: ValleConfig,
  layout: ValleTableLayout,
  item: TrainingItem,
  options: BatchOptions,
): BuiltItem {
  const { response } = item;
  const common = {
    phonemes: item.phonemes,
    language: item.language,
    prompt: item.prompt,
    rule: options.rule,
    includeLanguage: options.includeLanguage,
  };
  const level0 = Array.from({ length: response.frames }, (_, t) => code(response, t, 0));
  const stop = config.nAudio;
  switch (item.kind) {
    case "ar": {
      // Input [r_0, S]; the row before each input predicts it (labels shifted by one).
      const input = [...level0, stop];
      const seq = assembleSequence(config, layout, {
        ...common,
        mode: "ar",
        response: { data: input, frames: input.length, levels: 1 },
      });
      return shifted(seq, input);
    }
    case "len": {
      const digits = lengthDigits(response.frames);
      const seq = assembleSequence(config, layout, {
        ...common,
        mode: "len",
        lengthDigits: digits,
      });
      return shifted(seq, digits);
    }
    case "nar": {
      const level = item.level ?? 0;
      const seq = assembleSequence(config, layout, { ...common, mode: "nar", level, response });
      const labels = Array.from({ length: response.frames }, (_, t) => code(response, t, level));
      return { seq, readStart: seq.outputStart, readLabels: labels, scored: labels.length };
    }
    case "nar-len": {
      const mask = item.mask;
      if (!mask || mask.length !== response.frames) {
        throw new OptionError(
          `a NAR-len item needs a mask of ${response.frames} frames, got ${mask?.length ?? "none"}`,
        );
      }
      const input = level0.map((c, t) => mask[t] ? stop : c);
      const seq = assembleSequence(config, layout, {
        ...common,
        mode: "nar-len",
        response: { data: input, frames: input.length, levels: 1 },
      });
      const labels = level0.map((c, t) => mask[t] ? c : IGNORE_LABEL);
      const scored = labels.filter((l) => l !== IGNORE_LABEL).length;
      return { seq, readStart: seq.outputStart, readLabels: labels, scored };
    }
    default:
      throw new OptionError(
        `kind is ${JSON.stringify(item.kind)}, expected "ar", "nar", "nar-len" or "len"`,
      );
  }
  function shifted(seq: Sequence, input: number[]): BuiltItem {
    return {
      seq,
      readStart: seq.outputStart - 1,
      readLabels: input,
      scored: input.length,
    };
  }
  function code(c: Codes, t: number, k: number): number {
    if (k >= c.levels) {
      throw new OptionError(`the response has ${c.levels} levels, level ${k} is needed`);
    }
    return c.data[t * c.levels + k];
  }
}
