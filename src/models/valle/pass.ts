/**
 * One complete pass of an assembled sequence: upload its ids and positions into the run state,
 * record the trunk and the readout. Shared by the low-level logits call and the NAR loops (the AR
 * loop splits the same steps into a prefill and single-row steps).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { writeTensor } from "../../gpu/buffers.ts";
import type { Gpu } from "../../gpu/device.ts";
import type { Recorder } from "../../gpu/recorder.ts";
import { type GpuTensor, rows } from "../../gpu/tensor.ts";
import { forward, type ValleModelParts } from "./forward.ts";
import { readout } from "./heads.ts";
import type { Sequence } from "./inputs.ts";
import type { ValleRunState } from "./state.ts";

/** Which of the run state's two sequence slots (conditional or CFG null) a pass uses. */
export type SequenceSlot = "cond" | "null";

/** The ids and positions buffers of a slot. */
export function slotBuffers(
  state: ValleRunState,
  slot: SequenceSlot,
): { ids: GpuTensor; positions: GpuTensor } {
  return slot === "cond"
    ? { ids: state.ids, positions: state.positions }
    : { ids: state.nullIds, positions: state.nullPositions };
}

/**
 * Writes a sequence's ids and positions into a slot (queue writes: call before recording the
 * passes that read them, never between passes of one submit that need different contents).
 */
export function uploadSequence(
  gpu: Gpu,
  state: ValleRunState,
  slot: SequenceSlot,
  seq: Sequence,
): void {
  const { ids, positions } = slotBuffers(state, slot);
  writeTensor(gpu, ids, seq.ids);
  writeTensor(gpu, positions, seq.positions);
}

/**
 * Records a full pass over the sequence in `slot` (rows [0, seq.length)) and writes the logits of
 * its read rows into `out` (seq.readLength, head outputs).
 *
 * @example
 * ```ts ignore
 * uploadSequence(gpu, state, "cond", seq);
 * recordPass(rec, model, state, "cond", seq, logitRows(state.logits, 0, seq.readLength, 1025));
 * ```
 */
export function recordPass(
  rec: Recorder,
  model: ValleModelParts,
  state: ValleRunState,
  slot: SequenceSlot,
  seq: Sequence,
  out: GpuTensor,
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
