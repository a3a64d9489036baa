/**
 * Autoregressive decoding with an exact KV cache: one prefill pass over the prompt part of the
 * sequence, then one row per step against the cached keys and values. Used by AR level 0, the
 * duration digits ({@linkcode ./len.ts}) and speech-to-text ({@linkcode ./stt.ts}), which differ
 * only in the output segment's table, head, stop token and sampler.
 *
 * Tokens never leave the GPU inside the loop: the sampler writes each token into the token
 * buffer, the next step's embedding ids are written from it on the GPU (`feed_ids`), and the CPU
 * only records dispatches. Every `checkEvery` steps the chunk's tokens are copied to a staging
 * buffer, the next chunk is submitted, and then the copy is read to look for the stop token, so
 * the GPU keeps working while the CPU waits (tokens after the stop are discarded); progress is
 * reported and an abort takes effect at these checks. Initial tokens (AR's rolling context, the
 * duration's leading 0, STT's `<bos>`) are part of the prefill and of the sampler's previous
 * tokens. With causal
 * attention and positions fixed at creation, the cache is exact: the original recomputes the
 * whole sequence every step and gets the same logits (valle-spec §5.3).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Readback } from "../../backends/backend.ts";
import { rows, writeTensor } from "../../backends/tensor.ts";
import { feedIds, forward } from "./forward.ts";
import { logitRows, readout } from "./heads.ts";
import type { Sequence } from "./inputs.ts";
import { scoreRow, tokenRow, uploadSequence, type ValleContext, workRows } from "./pass.ts";
import type { Boundary } from "./progress.ts";
import { penaltyTable, type ResolvedSamplerOptions, sample } from "./sampler.ts";

/** One decoding run. */
export interface DecodeOptions {
  /** The sequence, assembled with `responseFrames = initial.length + maxSteps`. */
  seq: Sequence;
  /** Output tokens known before the first step (len: [0]; STT: [1]; AR: none). */
  initial: readonly number[];
  /** Steps (tokens to generate) at most. */
  maxSteps: number;
  /** The token that ends the run. */
  stopToken: number;
  /** Sampler settings. */
  sampler: ResolvedSamplerOptions;
  /** The token the length penalty acts on (AR: the stop token); none for other modes. */
  lengthPenaltyToken?: number;
  /** Random seed. */
  seed: number;
  /** Random stream id of this mode. */
  stream: number;
  /** Steps between stop checks (one readback each). */
  checkEvery: number;
  /**
   * Called with the steps known after each stop check, and with `maxSteps` once the run is over
   * (see {@linkcode Boundary}).
   */
  boundary?: Boundary;
}

/** What a decoding run produced. */
export interface DecodeResult {
  /** Every sampled token in order, up to and including the stop token when one came. */
  sampled: Int32Array;
  /** The step at which the stop token came, -1 if none within `maxSteps`. */
  stoppedAt: number;
  /** Steps recorded on the GPU (a multiple of `checkEvery`, or `maxSteps`). */
  stepsRun: number;
}

/**
 * Runs the decoding loop.
 *
 * @param ctx Device, model, run state and recorder (`seq.length` must fit the state).
 * @param o The run.
 * @returns The sampled tokens and where the run stopped.
 *
 * @example
 * ```ts ignore
 * const { sampled, stoppedAt } = await decode(ctx, {
 *   seq, initial: [], maxSteps: 500, stopToken: 1024, sampler, lengthPenaltyToken: 1024,
 *   seed: 1, stream: 1, checkEvery: 32,
 * });
 * ```
 */
export async function decode(ctx: ValleContext, o: DecodeOptions): Promise<DecodeResult> {
  const { backend, model, state, rec } = ctx;
  const { seq, initial, maxSteps } = o;
  const i0 = initial.length;
  const outputs = model.weights.heads[seq.head].weight.shape[0];
  const tok = (from: number, count: number) => tokenRow(state, 0, from, count);

  uploadSequence(backend, state, "cond", seq);
  if (i0 > 0) writeTensor(backend, tok(0, i0), Uint32Array.from(initial));
  const penalize = o.sampler.repetitionPenalty !== 1;
  if (penalize) {
    const table = penaltyTable(
      o.sampler.repetitionPenalty,
      o.sampler.repetitionPenaltyDecay,
      state.capacity,
    );
    writeTensor(backend, state.penalties, table);
  }

  const logits = logitRows(state.logits, 0, 1, outputs);
  const work = workRows(state, 1, outputs);
  const pre = seq.outputStart + i0; // prefill rows: everything before the first generated token
  const sampleStep = (s: number) => {
    const nPrev = i0 + s;
    sample(rec, {
      logits,
      work,
      out: tok(nPrev, 1),
      scores: scoreRow(state, 1, 0, 1),
      prev: penalize && nPrev > 0 ? tok(0, nPrev) : undefined,
      penalties: state.penalties,
    }, {
      options: o.sampler,
      lengthPenalty: o.lengthPenaltyToken === undefined
        ? undefined
        : { length: nPrev + 1, token: o.lengthPenaltyToken },
      seed: o.seed,
      stream: o.stream,
      counter: s,
    });
  };
  const recordStep = (s: number) => {
    if (s === 0) {
      if (i0 > 0) feedIds(rec, rows(state.ids, seq.outputStart, i0), state.tokens, seq.feed, 0);
      pass(0, pre);
      readout(rec, model, state, pre - 1, seq.head, logits);
    } else {
      const r = pre + s - 1; // the row of token i0 + s − 1
      feedIds(rec, rows(state.ids, r, 1), state.tokens, seq.feed, i0 + s - 1);
      pass(r, 1);
      readout(rec, model, state, 0, seq.head, logits);
    }
    sampleStep(s);
  };
  const pass = (start: number, count: number) =>
    forward(rec, model, state, {
      start,
      rows: count,
      causal: seq.causal,
      ids: rows(state.ids, start, count),
      positions: rows(state.positions, start, count),
    });

  const sampled: number[] = [];
  let pending: { count: number; tokens: Readback } | undefined;
  let step = 0;
  let stoppedAt = -1;
  const check = async (chunk: { count: number; tokens: Readback }) => {
    const [bytes] = await chunk.tokens.result();
    for (const t of new Uint32Array(bytes)) {
      if (stoppedAt >= 0) break;
      sampled.push(t);
      if (t === o.stopToken) stoppedAt = sampled.length - 1;
    }
    o.boundary?.(stoppedAt >= 0 ? maxSteps : sampled.length);
  };
  o.boundary?.(0);
  try {
    while (step < maxSteps && stoppedAt < 0) {
      const count = Math.min(o.checkEvery, maxSteps - step);
      for (let s = step; s < step + count; s++) recordStep(s);
      const tokens = rec.readback([tok(i0 + step, count)]);
      rec.submit();
      step += count;
      const previous = pending;
      pending = { count, tokens };
      if (previous) await check(previous);
    }
    if (pending && stoppedAt < 0) {
      const last = pending;
      pending = undefined;
      await check(last);
    }
  } finally {
    // The chunk submitted after the stop (or before an abort) is never read.
    pending?.tokens.discard();
  }
  backend.assertHealthy();
  return { sampled: Int32Array.from(sampled), stoppedAt, stepsRun: step };
}
