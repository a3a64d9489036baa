/**
 * NAR-len: RVQ level 0 of an utterance of known length by iterative demasking
 * (vall_e/models/ar_nar.py: forward_nar_masked, valle-spec §5.4). All L frames start as the mask
 * token with score 1; each step masks the n_k lowest-scoring frames (schedule in
 * {@linkcode ./schedule.ts}), runs the conditional pass and the null pass (phonemes `<bos></eos>`,
 * no prompt), combines them with CFG (whole-slice std rescale), samples the masked frames with the
 * annealed temperature, and rescores every frame with a second, greedy sampler call on the same
 * (in-place filtered) logits. Tokens and scores stay on the GPU: one submit per step and one
 * readback at the end. After submitting step k the loop waits for step k − 1 (no readback; the
 * GPU has step k queued), which is where progress is reported and an abort takes effect: on
 * lavapipe this costs nothing measurable (tiny model, L 30, S 8: 1.27 s vs 1.51 s with the whole
 * loop in one submit, medians of 5 on a loaded 2-core machine; L 150, S 25: 17.1 s vs 15.9 s).
 *
 * Rolling context (`prefix`, forward_nar_masked's `prefix_context`): the previous utterance's
 * level-0 codes are fed before the L frames in the conditional and the null pass; only the last
 * L rows are read out, so CFG statistics, sampling, scores and masks cover the new frames only.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../../backends/backend.ts";
import { createTensor, readBytes, rows, writeTensor } from "../../backends/tensor.ts";
import { assembleSequence } from "./inputs.ts";
import { type Conditioning, nullConditioning } from "./nar.ts";
import {
  recordGuidedPass,
  scoreRow,
  tokenRow,
  uploadSequence,
  type ValleContext,
  workRows,
} from "./pass.ts";
import { type ResolvedSamplerOptions, sample, STREAM } from "./sampler.ts";
import { type Boundary, pipelinedFence } from "./progress.ts";
import { demaskSchedule, type DemaskStep } from "./schedule.ts";
import type { OpKernel } from "../../ops/_kernels.ts";
import { grid1d } from "../../ops/_grid.ts";

const DEMASK_SELECT: KernelSpec = {
  shader: "demask_select",
  bindings: ["write", "write", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};

const DEMASK_UPDATE: KernelSpec = {
  shader: "demask_update",
  bindings: ["write", "write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The kernels NAR-len demasking may dispatch, for warming at load (`kernelUses`). */
export const DEMASK_KERNELS: readonly OpKernel[] = [{ spec: DEMASK_SELECT }, {
  spec: DEMASK_UPDATE,
}];

/** One NAR-len demasking run. */
export interface NarLenRun {
  /** Phonemes, language, prompt, rule. */
  conditioning: Conditioning;
  /** Frames L. */
  frames: number;
  /** Demasking steps S. */
  steps: number;
  /** Base temperature T0 (annealed to 0). */
  temperature: number;
  /** Anneal the temperature as T0 · (1 − t). */
  annealed: boolean;
  /** CFG strength (the original raises it to at least 2.5) and rescale. */
  cfg: { strength: number; rescale: number };
  /** Add 1/(2S) to the mask ratio. */
  remask: boolean;
  /** Unmasked frames keep score 1 (otherwise every frame is rescored). */
  maskedOnly: boolean;
  /** Filters shared by the sampling and the scoring call (temperature comes from the schedule). */
  sampler: ResolvedSamplerOptions;
  /** Random seed. */
  seed: number;
  /** Keep every step's tokens, scores, masks and CFG factor (for debugging). */
  trace: boolean;
  /**
   * Rolling context: level-0 codes of the previous utterance, fed before the L frames in both
   * passes; masking, scores and sampling act on the L frames only.
   */
  prefix?: ArrayLike<number>;
  /** Called with the steps finished (see {@linkcode Boundary}). */
  boundary?: Boundary;
}

/** Per-step record of a traced run. */
export interface NarLenTrace {
  /** (S) timesteps. */
  timesteps: Float32Array;
  /** (S) frames masked per step. */
  counts: Int32Array;
  /** (S, L) 1 where the frame was masked at that step. */
  masked: Uint8Array;
  /** (S, L) tokens after each step. */
  tokens: Int32Array;
  /** (S, L) scores after each step. */
  scores: Float32Array;
  /** (S) CFG rescale factor per step. */
  cfgFactor: Float32Array;
}

/** What a NAR-len run produced. */
export interface NarLenResult {
  /** Level-0 tokens (L). */
  tokens: Int32Array;
  /** The per-step record, when asked for. */
  trace?: NarLenTrace;
}

/**
 * Runs the demasking loop; level 0 ends in `state.tokens` row 0, frames [0, L).
 *
 * @param ctx Device, model, run state (large enough for the conditional sequence) and recorder.
 * @param run The run.
 * @returns The tokens, and the trace when asked.
 * @throws {OptionError} A repetition penalty (the original raises an IndexError there: the mask
 * id of the previous tokens is outside the 1024-wide head) or a length penalty.
 *
 * @example
 * ```ts ignore
 * const { tokens } = await runNarLen(ctx, { conditioning, frames: 300, steps: 25, … });
 * ```
 */
export async function runNarLen(ctx: ValleContext, run: NarLenRun): Promise<NarLenResult> {
  const { backend, model, state, rec } = ctx;
  const { config, weights } = model;
  checkNarLenSampler(run.sampler);
  const l = run.frames;
  const p = run.prefix?.length ?? 0;
  const mask = config.nAudio;
  const spec = {
    ...run.conditioning,
    mode: "nar-len" as const,
    responseFrames: p + l,
    contextFrames: p,
  };
  const seq = assembleSequence(config, weights.layout, spec);
  const nullSeq = assembleSequence(config, weights.layout, {
    ...spec,
    ...nullConditioning(spec),
  });
  uploadSequence(backend, state, "cond", seq);
  uploadSequence(backend, state, "null", nullSeq);
  const context = new Uint32Array(p + l).fill(mask);
  if (run.prefix) context.set(Array.from(run.prefix), 0);
  writeTensor(backend, tokenRow(state, 0, 0, p + l), context);
  writeTensor(backend, scoreRow(state, 0, 0, l), new Float32Array(l).fill(1));

  const schedule = demaskSchedule({
    steps: run.steps,
    length: l,
    temperature: run.temperature,
    annealed: run.annealed,
    remask: run.remask,
  });
  const s = schedule.length;
  const trace = run.trace
    ? {
      tokens: createTensor(backend, [s, l], "u32", "valle.trace.tokens"),
      scores: createTensor(backend, [s, l], "f32", "valle.trace.scores"),
      masked: createTensor(backend, [s, l], "u32", "valle.trace.masked"),
      stats: createTensor(backend, [s, 8], "f32", "valle.trace.stats"),
    }
    : undefined;

  const tokens = tokenRow(state, 0, p, l);
  const scores = scoreRow(state, 0, 0, l);
  const masked = rows(state.masked, 0, l);
  const sampled = rows({ ...state.scratch, shape: [2 * state.capacity] }, 0, l);
  const argmaxes = rows({ ...state.scratch, shape: [2 * state.capacity] }, state.capacity, l);
  const recordStep = (step: DemaskStep, k: number) => {
    select(rec, tokens, masked, scores, step.count, mask);
    const logits = recordGuidedPass(ctx, seq, nullSeq, run.cfg);
    const work = workRows(state, l, logits.shape[1]);
    // Sampling call: filters act in place on the guided logits, as in the original.
    const penalties = state.penalties;
    sample(rec, { logits, work, out: sampled, scores: scoreRow(state, 1, 0, l), penalties }, {
      options: { ...run.sampler, temperature: step.temperature },
      seed: run.seed,
      stream: STREAM.narLen,
      counter: k,
    });
    // Scoring call: temperature 0 on the same (already filtered) logits.
    sample(rec, { logits, work, out: argmaxes, scores, penalties }, {
      options: { ...run.sampler, temperature: 0 },
      seed: run.seed,
      stream: STREAM.narLen,
      counter: k,
    });
    update(rec, tokens, scores, sampled, masked, run.maskedOnly);
    if (trace) {
      rec.copy(tokens, rows(trace.tokens, k, 1));
      rec.copy(scores, rows(trace.scores, k, 1));
      rec.copy(masked, rows(trace.masked, k, 1));
      rec.copy({ ...state.cfgStats, shape: [8] }, rows(trace.stats, k, 1));
    }
  };
  try {
    run.boundary?.(0);
    // One submit per step; after submitting step k, wait for step k − 1 to finish (the GPU is
    // never idle for it): that is where progress is reported and an abort takes effect.
    let fence: Promise<void> | undefined;
    for (let k = 0; k < s; k++) {
      recordStep(schedule[k], k);
      rec.submit();
      const done = fence;
      fence = pipelinedFence(backend);
      if (done) {
        await done;
        run.boundary?.(k);
      }
    }
    if (!trace) {
      const [bytes] = await readBytes(backend, [tokens]);
      run.boundary?.(s);
      return { tokens: new Int32Array(bytes) };
    }
    const [t, sc, m, st, final] = await readBytes(backend, [
      trace.tokens,
      trace.scores,
      trace.masked,
      trace.stats,
      tokens,
    ]);
    run.boundary?.(s);
    const stats = new Float32Array(st);
    return {
      tokens: new Int32Array(final),
      trace: {
        timesteps: Float32Array.from(schedule, (x) => x.t),
        counts: Int32Array.from(schedule, (x) => x.count),
        masked: Uint8Array.from(new Uint32Array(m)),
        tokens: new Int32Array(t),
        scores: new Float32Array(sc),
        cfgFactor: Float32Array.from({ length: s }, (_, k) => stats[k * 8 + 4]),
      },
    };
  } finally {
    if (trace) { for (const b of Object.values(trace)) b.buffer.destroy(); }
  }
}

/**
 * Refuses a repetition or length penalty for NAR-len, as the original cannot run with one.
 *
 * @throws {OptionError} Either penalty set: the original raises an IndexError there (the previous
 * tokens are mask ids outside the 1024-wide head).
 */
export function checkNarLenSampler(sampler: ResolvedSamplerOptions): void {
  if (sampler.repetitionPenalty !== 1 || sampler.lengthPenalty !== 0) {
    throw new OptionError(
      "Cannot run NAR-len with a repetition or length penalty: the original raises an " +
        "IndexError there (the previous tokens are mask ids outside the head), expected 1 and 0",
    );
  }
}

/**
 * Records one masking step (kernel `demask_select`): the `count` frames with the lowest scores
 * (ties to the lower index) become `mask`, and `masked` gets 1 where a frame holds the mask token
 * afterwards, 0 elsewhere.
 *
 * @param rec The recorder.
 * @param tokens Frames (L) u32, updated in place.
 * @param masked (L) u32, overwritten.
 * @param scores (L) f32.
 * @param count Frames to mask.
 * @param mask The mask token id.
 *
 * @example
 * ```ts ignore
 * select(rec, tokens, masked, scores, step.count, config.nAudio);
 * ```
 */
export function select(
  rec: Recorder,
  tokens: Tensor,
  masked: Tensor,
  scores: Tensor,
  count: number,
  mask: number,
): void {
  const length = tokens.shape[0];
  rec.dispatch(DEMASK_SELECT, [tokens, masked, scores], [
    length,
    count,
    mask,
    tokens.offset,
    masked.offset,
    scores.offset,
  ], grid1d(Math.ceil(length / 64)));
}

/**
 * Records the update after a step's sampling (kernel `demask_update`): masked frames take their
 * sampled token; with `maskedOnly`, unmasked frames get score 1 (their rescoring is discarded).
 *
 * @param rec The recorder.
 * @param tokens Frames (L) u32, updated in place.
 * @param scores (L) f32, updated in place.
 * @param sampled The sampled tokens (L) u32.
 * @param masked (L) u32 from {@linkcode select}.
 * @param maskedOnly Keep score 1 on unmasked frames.
 *
 * @example
 * ```ts ignore
 * update(rec, tokens, scores, sampled, masked, run.maskedOnly);
 * ```
 */
export function update(
  rec: Recorder,
  tokens: Tensor,
  scores: Tensor,
  sampled: Tensor,
  masked: Tensor,
  maskedOnly: boolean,
): void {
  const length = tokens.shape[0];
  rec.dispatch(DEMASK_UPDATE, [tokens, scores, sampled, masked], [
    length,
    maskedOnly ? 1 : 0,
    tokens.offset,
    scores.offset,
    sampled.offset,
    masked.offset,
  ], [Math.ceil(length / 256)]);
}
