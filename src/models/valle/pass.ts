/**
 * One complete pass of an assembled sequence: upload its ids and positions into the run state,
 * record the trunk and the readout. Shared by the low-level logits call and the NAR loops (the AR
 * loop splits the same steps into a prefill and single-row steps).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Recorder, Tensor } from "../../backends/backend.ts";
import { rows, writeTensor } from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { cfg, type CfgOptions } from "./cfg.ts";
import { feedIds, forward, type ValleModelParts } from "./forward.ts";
import { logitRows, readout } from "./heads.ts";
import type { Sequence } from "./inputs.ts";
import type { ValleRunState } from "./state.ts";

/** Everything a generation loop records with. */
export interface ValleContext {
  /** The device. */
  readonly backend: Backend;
  /** Config and weights. */
  readonly model: ValleModelParts;
  /** Preallocated buffers, large enough for the run. */
  readonly state: ValleRunState;
  /** The recorder the loop records into (its parameter buffer is reused step after step). */
  readonly rec: Recorder;
}

/** The sampler's working rows (count, outputs) in the second half of `state.logits`. */
export function workRows(state: ValleRunState, count: number, outputs: number): Tensor {
  return {
    buffer: state.logits.buffer,
    dtype: "f32",
    shape: [count, outputs],
    offset: state.capacity * state.vocab,
  };
}

/** Tokens [from, from + count) of RVQ level `level` in `state.tokens`. */
export function tokenRow(
  state: ValleRunState,
  level: number,
  from: number,
  count: number,
): Tensor {
  return { ...state.tokens, shape: [count], offset: level * state.capacity + from };
}

/** Scores [from, from + count) of score row `row` (0 kept, 1 scratch) in `state.scores`. */
export function scoreRow(
  state: ValleRunState,
  row: number,
  from: number,
  count: number,
): Tensor {
  return { ...state.scores, shape: [count], offset: row * state.capacity + from };
}

/** Which of the run state's two sequence slots (conditional or CFG null) a pass uses. */
export type SequenceSlot = "cond" | "null";

/** The ids and positions buffers of a slot. */
export function slotBuffers(
  state: ValleRunState,
  slot: SequenceSlot,
): { ids: Tensor; positions: Tensor } {
  return slot === "cond"
    ? { ids: state.ids, positions: state.positions }
    : { ids: state.nullIds, positions: state.nullPositions };
}

/**
 * Writes a sequence's ids and positions into a slot (queue writes: call before recording the
 * passes that read them, never between passes of one submit that need different contents).
 */
export function uploadSequence(
  backend: Backend,
  state: ValleRunState,
  slot: SequenceSlot,
  seq: Sequence,
): void {
  const { ids, positions } = slotBuffers(state, slot);
  writeTensor(backend, ids, seq.ids);
  writeTensor(backend, positions, seq.positions);
}

/**
 * Records a full pass over the sequence in `slot` (rows [0, seq.length)) and writes the logits of
 * its read rows into `out` (seq.readLength, head outputs).
 *
 * @example
 * ```ts ignore
 * uploadSequence(backend, state, "cond", seq);
 * recordPass(rec, model, state, "cond", seq, logitRows(state.logits, 0, seq.readLength, 1025));
 * ```
 */
export function recordPass(
  rec: Recorder,
  model: ValleModelParts,
  state: ValleRunState,
  slot: SequenceSlot,
  seq: Sequence,
  out: Tensor,
): void {
  const { ids, positions } = slotBuffers(state, slot);
  forward(rec, model, state, {
    start: 0,
    rows: seq.length,
    causal: seq.causal,
    ids: rows(ids, 0, seq.length),
    positions: rows(positions, 0, seq.length),
  });
  readout(rec, model, state, seq.readStart, seq.head, out);
}

/**
 * Records the pass of an output-fed sequence pair: the response rows of the conditional sequence
 * (and of the null sequence, under CFG) are fed from `state.tokens` frames [0, seq.outputLength),
 * the conditional logits go to `state.logits`, and with a CFG strength > 0 the null pass's logits
 * to `state.nullLogits`, combined into `state.logits` by {@linkcode cfg}.
 *
 * @returns The logits view (readLength, head outputs) in `state.logits`.
 */
export function recordGuidedPass(
  ctx: ValleContext,
  seq: Sequence,
  nullSeq: Sequence | undefined,
  guidance: CfgOptions | undefined,
): Tensor {
  const { rec, model, state } = ctx;
  const outputs = model.weights.heads[seq.head].weight.shape[0];
  const logits = logitRows(state.logits, 0, seq.readLength, outputs);
  feedIds(rec, rows(state.ids, seq.outputStart, seq.outputLength), state.tokens, seq.feed, 0);
  recordPass(rec, model, state, "cond", seq, logits);
  if (nullSeq && guidance && guidance.strength > 0) {
    const nullLogits = logitRows(state.nullLogits, 0, nullSeq.readLength, outputs);
    feedIds(
      rec,
      rows(state.nullIds, nullSeq.outputStart, nullSeq.outputLength),
      state.tokens,
      nullSeq.feed,
      0,
    );
    recordPass(rec, model, state, "null", nullSeq, nullLogits);
    cfg(rec, logits, nullLogits, state.cfgStats, guidance);
  }
  return logits;
}
