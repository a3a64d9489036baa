/**
 * The full passes of a batch (NAR levels and NAR-len demasking) as packed sequences: the rows'
 * sequences side by side along the position axis in one pass, so every linear layer is one GEMM
 * over all rows, and each position attends to its own row's span only (attention spans), with
 * positions restarting per row as in the row's own sequence. Row r's tokens, scores, masks and
 * logits use rows `[T_r, T_r + frames_r)` of their buffers, `T_r` the frames of the rows before
 * it. Readout, CFG (its statistics are per utterance), sampling (each row's own seed) and the
 * demasking kernels run per row on views, so a row gets what it gets alone; the GEMM tiles of a
 * row do not depend on its neighbours.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Tensor } from "../../backends/backend.ts";
import { readBytes, rows, writeTensor } from "../../backends/tensor.ts";
import { cfg, type CfgOptions } from "./cfg.ts";
import { feedIds, forward, type ValleModelParts } from "./forward.ts";
import { logitRows, readout } from "./heads.ts";
import { assembleSequence, type GeneratedCodes, type Sequence } from "./inputs.ts";
import { type Conditioning, nullConditioning } from "./nar.ts";
import { select, update } from "./nar_len.ts";
import {
  scoreRow,
  type SequenceSlot,
  slotBuffers,
  tokenRow,
  type ValleContext,
  workRows,
} from "./pass.ts";
import { type Boundary, pipelinedFence } from "./progress.ts";
import { penaltyTable, type ResolvedSamplerOptions, sample, STREAM } from "./sampler.ts";
import { demaskSchedule } from "./schedule.ts";

/** One row of a packed batch: its conditioning, frames and seed. */
export interface PackedRow {
  /** Phonemes, language, prompt, rule. */
  conditioning: Conditioning;
  /** Response frames. */
  frames: number;
  /** Random seed. */
  seed: number;
}

/** Rows side by side: where each row's sequence starts and the joined ids, positions and spans. */
interface Packed {
  seqs: readonly Sequence[];
  starts: readonly number[];
  length: number;
}

/** First token/logit row of each row (the frames of the rows before it) and their sum. */
export function frameStarts(frames: readonly number[]): { starts: number[]; total: number } {
  const starts: number[] = [];
  let total = 0;
  for (const f of frames) {
    starts.push(total);
    total += f;
  }
  return { starts, total };
}

/**
 * Positions a packed batch of these sequences needs in the run state.
 *
 * @example
 * ```ts ignore
 * const ctx = context(packedPositions(seqs));
 * ```
 */
export function packedPositions(seqs: readonly Sequence[]): number {
  return seqs.reduce((n, s) => n + s.length, 0);
}

/** Writes the joined ids and positions into a slot and the spans into `spans`. */
function upload(ctx: ValleContext, slot: SequenceSlot, seqs: readonly Sequence[], spans: Tensor) {
  const { backend, state } = ctx;
  const { ids, positions } = slotBuffers(state, slot);
  const starts: number[] = [];
  let length = 0;
  const table = new Uint32Array(2 * packedPositions(seqs));
  for (const seq of seqs) {
    starts.push(length);
    writeTensor(backend, rows(ids, length, seq.length), seq.ids);
    writeTensor(backend, rows(positions, length, seq.length), seq.positions);
    for (let i = 0; i < seq.length; i++) {
      table.set([length, seq.causal ? i + 1 : seq.length], 2 * (length + i));
    }
    length += seq.length;
  }
  writeTensor(backend, spans, table);
  return { seqs, starts, length };
}

/**
 * Records the packed pass of a slot: each row's output segment fed from its tokens, the trunk
 * over all rows, and each row's read rows through the head into `logits` rows `[T_r, …)`.
 */
function recordPacked(
  ctx: ValleContext,
  slot: SequenceSlot,
  packed: Packed,
  spans: Tensor,
  tokenStarts: readonly number[],
  logits: Tensor,
): void {
  const { rec, model, state } = ctx;
  const { ids, positions } = slotBuffers(state, slot);
  packed.seqs.forEach((seq, r) => {
    const at = packed.starts[r] + seq.outputStart;
    feedIds(rec, rows(ids, at, seq.outputLength), state.tokens, seq.feed, tokenStarts[r]);
  });
  forward(rec, model, state, {
    start: 0,
    rows: packed.length,
    causal: false,
    ids: rows(ids, 0, packed.length),
    positions: rows(positions, 0, packed.length),
    spans: { ...spans, shape: [packed.length, 2] },
  });
  packed.seqs.forEach((seq, r) => {
    const out = logitRows(logits, tokenStarts[r], seq.readLength, outputsOf(ctx, seq));
    readout(rec, model, state, packed.starts[r] + seq.readStart, seq.head, out);
  });
}

function outputsOf(ctx: ValleContext, seq: Sequence): number {
  return ctx.model.weights.heads[seq.head].weight.shape[0];
}

/** The logits, work and score views of row r's frames. */
function rowViews(ctx: ValleContext, logits: Tensor, at: number, frames: number) {
  const cols = logits.shape[1];
  const work = workRows(ctx.state, frames, cols);
  return {
    logits: logitRows(logits, at, frames, cols),
    work: { ...work, offset: work.offset + at * cols },
    scores: scoreRow(ctx.state, 1, at, frames),
  };
}

/** Spans tables for the conditional and the null slot, in the run state's table buffer. */
function spanTables(ctx: ValleContext): [Tensor, Tensor] {
  const { tables, capacity } = ctx.state;
  const view = (offset: number): Tensor => ({ ...tables, shape: [2 * capacity], offset });
  return [view(0), view(2 * capacity)];
}

/** A batched run of NAR levels. */
export interface NarBatchRun {
  /** The rows; level 0 (and any given level below `fromLevel`) is in `state.tokens` at `T_r`. */
  rows: readonly PackedRow[];
  /** First level to generate (≥ 1). */
  fromLevel: number;
  /** Last level to generate. */
  toLevel: number;
  /** Sampler settings. */
  sampler: ResolvedSamplerOptions;
  /** Guidance; strength 0 or none runs no null pass. */
  cfg?: CfgOptions;
  /** Called with the levels finished. */
  boundary?: Boundary;
}

/**
 * The sequences of a NAR level for every row (their lengths do not depend on the level).
 *
 * @example
 * ```ts ignore
 * const ctx = context(packedPositions(narSequences(model, rows, 1)));
 * ```
 */
export function narSequences(
  model: ValleModelParts,
  batch: readonly PackedRow[],
  level: number,
  guided = false,
): Sequence[] {
  const { config, weights } = model;
  return batch.map((row) => {
    const spec = { ...row.conditioning, mode: "nar" as const, level, responseFrames: row.frames };
    return assembleSequence(
      config,
      weights.layout,
      guided ? { ...spec, ...nullConditioning(spec) } : spec,
    );
  });
}

/**
 * Runs NAR levels for all rows as packed passes (one submit per level) and reads back each row's
 * levels `0..toLevel`.
 *
 * @returns Codes per row (frames × (toLevel + 1)), frame-major.
 *
 * @example
 * ```ts ignore
 * const codes = await runNarBatch(ctx, { rows, fromLevel: 1, toLevel: 7, sampler });
 * ```
 */
export async function runNarBatch(ctx: ValleContext, run: NarBatchRun): Promise<GeneratedCodes[]> {
  const { backend, state, rec } = ctx;
  const { starts: at } = frameStarts(run.rows.map((r) => r.frames));
  const penalize = run.sampler.repetitionPenalty !== 1;
  if (penalize) {
    const { repetitionPenalty, repetitionPenaltyDecay } = run.sampler;
    writeTensor(
      backend,
      state.penalties,
      penaltyTable(repetitionPenalty, repetitionPenaltyDecay, state.capacity),
    );
  }
  const guided = run.cfg !== undefined && run.cfg.strength > 0;
  const [spans, nullSpans] = spanTables(ctx);
  run.boundary?.(0);
  let fence: Promise<void> | undefined;
  for (let l = run.fromLevel; l <= run.toLevel; l++) {
    const packed = upload(ctx, "cond", narSequences(ctx.model, run.rows, l), spans);
    const nulls = guided
      ? upload(ctx, "null", narSequences(ctx.model, run.rows, l, true), nullSpans)
      : undefined;
    recordPacked(ctx, "cond", packed, spans, at, state.logits);
    if (nulls) recordPacked(ctx, "null", nulls, nullSpans, at, state.nullLogits);
    run.rows.forEach((row, r) => {
      const t = row.frames;
      const io = rowViews(ctx, withColumns(state.logits, packed.seqs[r], ctx), at[r], t);
      if (nulls && run.cfg) {
        const cols = io.logits.shape[1];
        cfg(rec, io.logits, logitRows(state.nullLogits, at[r], t, cols), state.cfgStats, run.cfg);
      }
      sample(rec, {
        ...io,
        out: tokenRow(state, l, at[r], t),
        prev: penalize ? tokenRow(state, l - 1, at[r], t) : undefined,
        penalties: state.penalties,
      }, { options: run.sampler, seed: row.seed, stream: STREAM.nar, counter: l });
    });
    rec.submit();
    const done = fence;
    fence = pipelinedFence(backend);
    if (done) {
      await done;
      run.boundary?.(l - run.fromLevel);
    }
  }
  const levels = run.toLevel + 1;
  const views = run.rows.flatMap((row, r) =>
    Array.from({ length: levels }, (_, l) => tokenRow(state, l, at[r], row.frames))
  );
  const got = await readBytes(backend, views);
  run.boundary?.(run.toLevel - run.fromLevel + 1);
  return run.rows.map((row, r) => {
    const t = row.frames;
    const data = new Int32Array(t * levels);
    for (let l = 0; l < levels; l++) {
      new Int32Array(got[r * levels + l]).forEach((c, f) => (data[f * levels + l] = c));
    }
    return { data, frames: t, levels };
  });
}

/** `buffer` seen as rows of the sequence's head outputs. */
function withColumns(buffer: Tensor, seq: Sequence, ctx: ValleContext): Tensor {
  return { ...buffer, shape: [buffer.shape[0], outputsOf(ctx, seq)] };
}

/** A batched NAR-len run: the settings of `runNarLen` (no prefix, no trace), rows packed. */
export interface NarLenBatchRun {
  /** The rows and their frame counts L_r. */
  rows: readonly PackedRow[];
  /** Demasking steps S. */
  steps: number;
  /** Base temperature T0 (annealed to 0). */
  temperature: number;
  /** Anneal the temperature as T0 · (1 − t). */
  annealed: boolean;
  /** CFG strength and rescale. */
  cfg: CfgOptions;
  /** Add 1/(2S) to the mask ratio. */
  remask: boolean;
  /** Unmasked frames keep score 1. */
  maskedOnly: boolean;
  /** Filters shared by the sampling and the scoring call. */
  sampler: ResolvedSamplerOptions;
  /** Called with the steps finished. */
  boundary?: Boundary;
}

/**
 * The conditional and null sequences of a NAR-len batch.
 *
 * @example
 * ```ts ignore
 * const [cond, nulls] = narLenSequences(model, rows);
 * ```
 */
export function narLenSequences(
  model: ValleModelParts,
  batch: readonly PackedRow[],
): [Sequence[], Sequence[]] {
  const { config, weights } = model;
  const specs = batch.map((row) => ({
    ...row.conditioning,
    mode: "nar-len" as const,
    responseFrames: row.frames,
  }));
  return [
    specs.map((spec) => assembleSequence(config, weights.layout, spec)),
    specs.map((spec) =>
      assembleSequence(config, weights.layout, { ...spec, ...nullConditioning(spec) })
    ),
  ];
}

/**
 * Runs NAR-len demasking for all rows in lockstep (one submit per step); each row's level 0 ends
 * in `state.tokens` row 0 at `T_r`.
 *
 * @returns Level-0 tokens per row.
 *
 * @example
 * ```ts ignore
 * const tokens = await runNarLenBatch(ctx, { rows, steps: 25, temperature: 0, … });
 * ```
 */
export async function runNarLenBatch(
  ctx: ValleContext,
  run: NarLenBatchRun,
): Promise<Int32Array[]> {
  const { backend, state, rec } = ctx;
  const mask = ctx.model.config.nAudio;
  const { starts: at, total } = frameStarts(run.rows.map((r) => r.frames));
  const [condSeqs, nullSeqs] = narLenSequences(ctx.model, run.rows);
  const [spans, nullSpans] = spanTables(ctx);
  const packed = upload(ctx, "cond", condSeqs, spans);
  const nulls = upload(ctx, "null", nullSeqs, nullSpans);
  writeTensor(backend, tokenRow(state, 0, 0, total), new Uint32Array(total).fill(mask));
  writeTensor(backend, scoreRow(state, 0, 0, total), new Float32Array(total).fill(1));
  const schedules = run.rows.map((row) =>
    demaskSchedule({
      steps: run.steps,
      length: row.frames,
      temperature: run.temperature,
      annealed: run.annealed,
      remask: run.remask,
    })
  );
  const scratch = { ...state.scratch, shape: [2 * state.capacity] };
  const views = run.rows.map((row, r) => ({
    tokens: tokenRow(state, 0, at[r], row.frames),
    scores: scoreRow(state, 0, at[r], row.frames),
    masked: rows(state.masked, at[r], row.frames),
    sampled: rows(scratch, at[r], row.frames),
    argmaxes: rows(scratch, state.capacity + at[r], row.frames),
  }));
  const cols = outputsOf(ctx, condSeqs[0]);
  const recordStep = (k: number) => {
    run.rows.forEach((_, r) => {
      const v = views[r];
      select(rec, v.tokens, v.masked, v.scores, schedules[r][k].count, mask);
    });
    recordPacked(ctx, "cond", packed, spans, at, state.logits);
    recordPacked(ctx, "null", nulls, nullSpans, at, state.nullLogits);
    run.rows.forEach((row, r) => {
      const v = views[r];
      const io = rowViews(ctx, withColumns(state.logits, condSeqs[r], ctx), at[r], row.frames);
      cfg(
        rec,
        io.logits,
        logitRows(state.nullLogits, at[r], row.frames, cols),
        state.cfgStats,
        run.cfg,
      );
      const call = { seed: row.seed, stream: STREAM.narLen, counter: k };
      const penalties = state.penalties;
      const temperature = schedules[r][k].temperature;
      sample(rec, { ...io, out: v.sampled, penalties }, {
        options: { ...run.sampler, temperature },
        ...call,
      });
      sample(rec, { ...io, out: v.argmaxes, scores: v.scores, penalties }, {
        options: { ...run.sampler, temperature: 0 },
        ...call,
      });
      update(rec, v.tokens, v.scores, v.sampled, v.masked, run.maskedOnly);
    });
  };
  run.boundary?.(0);
  let fence: Promise<void> | undefined;
  for (let k = 0; k < run.steps; k++) {
    recordStep(k);
    rec.submit();
    const done = fence;
    fence = pipelinedFence(backend);
    if (done) {
      await done;
      run.boundary?.(k);
    }
  }
  const got = await readBytes(backend, views.map((v) => v.tokens));
  run.boundary?.(run.steps);
  return got.map((bytes) => new Int32Array(bytes));
}
