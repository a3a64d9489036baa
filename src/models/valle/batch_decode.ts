/**
 * Batched autoregressive decoding (AR level 0 and the duration digits of several rows at once):
 * each row has its own region of the run state (ids, positions, tokens and KV cache rows
 * `[R_r, R_r + seq_r.length)`), its own prefill pass, and then every step computes all live rows
 * in one pass whose linear layers read each weight once for all rows. The step's rows are
 * computed in a scratch block after the regions; their keys and values are scattered to each
 * row's region and each query attends to its own row's keys only (attention spans), so a row
 * computes what it would alone. Sampling is one call per row with the row's own seed, step counter
 * and previous tokens: the same random draws as the row alone.
 *
 * As in {@linkcode ./ar.ts}, tokens stay on the GPU: every `checkEvery` steps the chunk's tokens
 * of the live rows are copied out, the next chunk is submitted, and then the copy is read; a row
 * that has emitted its stop token is left out of every chunk recorded after that check (it stops
 * costing work one chunk later, as a single row stops being read one chunk later). Per-step
 * tables (spans, KV rows, positions) are written before each chunk's submit, alternating between
 * two halves of the run state's table buffer.
 *
 * Exactness: the prefill, the attention and the sampling of a row are bit for bit those of the row
 * alone. A step of at most 4 live rows runs the same fused kernels as a single row; with more, the
 * projections are GEMMs whose summation order differs (~1e-6 on the logits), which can resolve a
 * near-tie differently.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Readback, Tensor } from "../../backends/backend.ts";
import { rows, writeTensor } from "../../backends/tensor.ts";
import { NO_ROW } from "../../ops/embedding.ts";
import { feedIds, forward } from "./forward.ts";
import { logitRows, readout } from "./heads.ts";
import type { Sequence } from "./inputs.ts";
import { scoreRow, tokenRow, type ValleContext, workRows } from "./pass.ts";
import type { DecodeResult } from "./ar.ts";
import type { Boundary } from "./progress.ts";
import { penaltyTable, type ResolvedSamplerOptions, sample } from "./sampler.ts";

/** A batched decoding run: the settings of {@linkcode ./ar.ts}'s `decode`, one sequence per row. */
export interface BatchDecodeOptions {
  /** One sequence per row, each assembled with `responseFrames = initial.length + maxSteps`. */
  seqs: readonly Sequence[];
  /** One seed per row. */
  seeds: readonly number[];
  /** Output tokens known before the first step, the same for every row. */
  initial: readonly number[];
  /** Steps at most, per row. */
  maxSteps: number;
  /** The token that ends a row. */
  stopToken: number;
  /** Sampler settings. */
  sampler: ResolvedSamplerOptions;
  /** The token the length penalty acts on; none for other modes. */
  lengthPenaltyToken?: number;
  /** Random stream id of this mode. */
  stream: number;
  /** Steps between stop checks (one readback each). */
  checkEvery: number;
  /** Called after each stop check (with `maxSteps` once every row has stopped). */
  boundary?: Boundary;
}

/**
 * The run-state positions a batched decode needs: every row's region and the scratch block.
 *
 * @example
 * ```ts ignore
 * const ctx = context(batchDecodePositions(seqs));
 * ```
 */
export function batchDecodePositions(seqs: readonly Sequence[]): number {
  return seqs.reduce((n, s) => n + s.length, 0) + seqs.length;
}

/**
 * Runs the rows' decoding loops as one batch.
 *
 * @param ctx Device, model, run state (at least {@linkcode batchDecodePositions}) and recorder.
 * @param o The run.
 * @returns One result per row, as the row alone would give.
 *
 * @example
 * ```ts ignore
 * const results = await decodeBatch(ctx, {
 *   seqs, seeds: [1, 2], initial: [], maxSteps: 500, stopToken: 1024, sampler,
 *   lengthPenaltyToken: 1024, stream: STREAM.ar, checkEvery: 32,
 * });
 * ```
 */
export async function decodeBatch(
  ctx: ValleContext,
  o: BatchDecodeOptions,
): Promise<DecodeResult[]> {
  const { backend, model, state, rec } = ctx;
  const { seqs, initial, maxSteps } = o;
  const n = seqs.length;
  const i0 = initial.length;
  const head = seqs[0].head;
  const outputs = model.weights.heads[head].weight.shape[0];
  // Row r's region starts at starts[r]; the step's rows are computed at `scratch`.
  const starts: number[] = [];
  let scratch = 0;
  for (const seq of seqs) {
    starts.push(scratch);
    scratch += seq.length;
  }
  const pre = seqs.map((seq) => seq.outputStart + i0); // prefill rows of each row
  const tok = (r: number, from: number, count: number) =>
    tokenRow(state, 0, starts[r] + from, count);

  seqs.forEach((seq, r) => {
    writeTensor(backend, rows(state.ids, starts[r], seq.length), seq.ids);
    writeTensor(backend, rows(state.positions, starts[r], seq.length), seq.positions);
    if (i0 > 0) writeTensor(backend, tok(r, 0, i0), Uint32Array.from(initial));
  });
  // The step's ids rows: the fed terms are written per step, the others stay empty.
  const terms = seqs[0].terms;
  writeTensor(backend, rows(state.ids, scratch, n), new Uint32Array(n * terms).fill(NO_ROW));
  const penalize = o.sampler.repetitionPenalty !== 1;
  if (penalize) {
    const { repetitionPenalty, repetitionPenaltyDecay } = o.sampler;
    writeTensor(
      backend,
      state.penalties,
      penaltyTable(repetitionPenalty, repetitionPenaltyDecay, state.capacity),
    );
  }

  // Tables: the prefill spans, then two halves of per-step spans (2), KV rows (1), positions (1).
  const prefillSpans = pre.reduce((a, b) => a + b, 0) * 2;
  // At most 2 · capacity + 8 · capacity words: min(checkEvery, maxSteps) ≤ each row's length.
  const half = Math.min(o.checkEvery, maxSteps) * n * 4;
  const view = (offset: number, shape: number[]): Tensor => ({ ...state.tables, shape, offset });
  {
    const spans = new Uint32Array(prefillSpans);
    let at = 0;
    pre.forEach((count, r) => {
      for (let i = 0; i < count; i++, at += 2) spans.set([starts[r], i + 1], at);
    });
    writeTensor(backend, view(0, [prefillSpans]), spans);
  }

  const work = workRows(state, 1, outputs);
  const sampleRow = (r: number, slot: number, s: number) => {
    const nPrev = i0 + s;
    sample(rec, {
      logits: logitRows(state.logits, slot, 1, outputs),
      work: { ...work, offset: work.offset + slot * outputs },
      out: tok(r, nPrev, 1),
      scores: scoreRow(state, 1, slot, 1),
      prev: penalize && nPrev > 0 ? tok(r, 0, nPrev) : undefined,
      penalties: state.penalties,
    }, {
      options: o.sampler,
      lengthPenalty: o.lengthPenaltyToken === undefined
        ? undefined
        : { length: nPrev + 1, token: o.lengthPenaltyToken },
      seed: o.seeds[r],
      stream: o.stream,
      counter: s,
    });
  };
  let spansAt = 0;
  const prefill = () => {
    spansAt = 0;
    seqs.forEach((seq, r) => {
      const at = starts[r];
      if (i0 > 0) {
        feedIds(rec, rows(state.ids, at + seq.outputStart, i0), state.tokens, seq.feed, at);
      }
      forward(rec, model, state, {
        start: at,
        rows: pre[r],
        causal: true,
        ids: rows(state.ids, at, pre[r]),
        positions: rows(state.positions, at, pre[r]),
        spans: view(spansAt, [pre[r], 2]),
      });
      spansAt += pre[r] * 2;
      readout(rec, model, state, pre[r] - 1, head, logitRows(state.logits, r, 1, outputs));
      sampleRow(r, r, 0);
    });
  };
  /** Records step s ≥ 1 of the live rows, with their tables at `base` (written by the caller). */
  const step = (live: readonly number[], s: number, base: number) => {
    const b = live.length;
    const ids = rows(state.ids, scratch, b);
    live.forEach((r, j) => {
      feedIds(rec, rows(ids, j, 1), state.tokens, seqs[r].feed, starts[r] + i0 + s - 1);
    });
    forward(rec, model, state, {
      start: scratch,
      rows: b,
      causal: true,
      ids,
      positions: view(base + 3 * b, [b]),
      spans: view(base, [b, 2]),
      kvRows: view(base + 2 * b, [b]),
    });
    readout(rec, model, state, 0, head, logitRows(state.logits, 0, b, outputs));
    live.forEach((r, j) => sampleRow(r, j, s));
  };
  /** Writes the tables of steps [from, from + count) of the live rows into half `h`. */
  const writeTables = (live: readonly number[], from: number, count: number, h: number) => {
    const b = live.length;
    const data = new Uint32Array(count * b * 4);
    for (let u = 0; u < count; u++) {
      const s = from + u;
      const at = u * b * 4;
      live.forEach((r, j) => {
        const row = pre[r] + s - 1; // the row of token i0 + s − 1 in the row's own sequence
        data.set([starts[r], row + 1], at + 2 * j);
        data[at + 2 * b + j] = starts[r] + row;
        data[at + 3 * b + j] = seqs[r].positions[row];
      });
    }
    writeTensor(backend, view(prefillSpans + h * half, [data.length]), data);
  };

  const sampled: number[][] = seqs.map(() => []);
  const stoppedAt = seqs.map(() => -1);
  let live = seqs.map((_, r) => r);
  type Chunk = { rows: readonly number[]; tokens: Readback };
  let pending: Chunk | undefined;
  let done = 0;
  let chunkIndex = 0;
  const check = async (chunk: Chunk) => {
    const got = await chunk.tokens.result();
    chunk.rows.forEach((r, j) => {
      for (const t of new Uint32Array(got[j])) {
        if (stoppedAt[r] >= 0) break;
        sampled[r].push(t);
        if (t === o.stopToken) stoppedAt[r] = sampled[r].length - 1;
      }
    });
    live = live.filter((r) => stoppedAt[r] < 0);
    const known = Math.max(...chunk.rows.map((r) => sampled[r].length));
    o.boundary?.(live.length === 0 ? maxSteps : known, live.length);
  };
  o.boundary?.(0, n);
  try {
    while (done < maxSteps && live.length > 0) {
      const count = Math.min(o.checkEvery, maxSteps - done);
      const h = chunkIndex++ % 2;
      const first = done === 0 ? 1 : done; // step 0 is the prefill
      if (done + count > first) writeTables(live, first, done + count - first, h);
      for (let s = done; s < done + count; s++) {
        if (s === 0) prefill();
        else step(live, s, prefillSpans + h * half + (s - first) * live.length * 4);
      }
      const rowsNow = live.slice();
      const tokens = rec.readback(rowsNow.map((r) => tok(r, i0 + done, count)));
      rec.submit();
      done += count;
      const previous = pending;
      pending = { rows: rowsNow, tokens };
      if (previous) await check(previous);
    }
    if (pending) {
      const last = pending;
      pending = undefined;
      await check(last);
    }
  } finally {
    pending?.tokens.discard();
  }
  backend.assertHealthy();
  return seqs.map((_, r) => ({
    sampled: Int32Array.from(sampled[r]),
    stoppedAt: stoppedAt[r],
    stepsRun: done,
  }));
}
