/**
 * NAR levels (vall_e/models/ar_nar.py: forward_nar): RVQ level L of every frame in one
 * bidirectional pass (when the config has `noncausal_masks`) whose response rows sum the lower
 * levels' embeddings (HEAD rule or the Dec-2024 training rule, see `EmbeddingRule`), optional CFG
 * against the null input, then the sampler on all frames at once. Levels run one after another
 * on tokens that stay on the GPU: one submit per level and one readback at the end. After
 * submitting a level the loop waits for the previous one to finish (the GPU is never idle for
 * it), which is where progress is reported and an abort takes effect.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { readBytes, writeTensor } from "../../backends/tensor.ts";
import type { CfgOptions } from "./cfg.ts";
import { assembleSequence, type GeneratedCodes, type SequenceSpec } from "./inputs.ts";
import { type Boundary, pipelinedFence } from "./progress.ts";
import {
  recordGuidedPass,
  scoreRow,
  tokenRow,
  uploadSequence,
  type ValleContext,
  workRows,
} from "./pass.ts";
import { penaltyTable, type ResolvedSamplerOptions, sample, STREAM } from "./sampler.ts";

/** The conditioning shared by the TTS passes: phonemes, language, prompt and embedding rules. */
export type Conditioning = Pick<
  SequenceSpec,
  "phonemes" | "language" | "prompt" | "rule" | "includeLanguage"
>;

/** The CFG null input of a conditioning: `<bos></eos>` phonemes and no prompt. */
export function nullConditioning(c: Conditioning): Conditioning {
  return { ...c, phonemes: [1, 2], prompt: null };
}

/** A run of NAR levels. */
export interface NarRun {
  /** Phonemes, language, prompt, rule. */
  conditioning: Conditioning;
  /** Frames T (levels below `fromLevel` are in `state.tokens` rows, frames [0, T)). */
  frames: number;
  /** First level to generate (≥ 1). */
  fromLevel: number;
  /** Last level to generate (≤ nLevels − 1). */
  toLevel: number;
  /** Sampler settings. */
  sampler: ResolvedSamplerOptions;
  /** Guidance; strength 0 (default) runs no null pass. */
  cfg?: CfgOptions;
  /** Random seed. */
  seed: number;
  /** Called with the levels finished (see {@linkcode Boundary}). */
  boundary?: Boundary;
}

/**
 * Runs NAR levels `fromLevel..toLevel` (one submit per level) and reads back levels
 * `0..toLevel`; the tokens also stay in `state.tokens` rows.
 *
 * @param ctx Device, model, run state (large enough for the sequence) and recorder.
 * @param run The levels and conditioning.
 * @returns Codes (frames × (toLevel + 1)), frame-major.
 *
 * @example
 * ```ts ignore
 * const codes = await runNar(ctx, { conditioning, frames: t, fromLevel: 1, toLevel: 7, sampler, seed: 0 });
 * ```
 */
export async function runNar(ctx: ValleContext, run: NarRun): Promise<GeneratedCodes> {
  const { backend, model, state, rec } = ctx;
  const { config, weights } = model;
  const t = run.frames;
  const penalize = run.sampler.repetitionPenalty !== 1;
  if (penalize) {
    writeTensor(
      backend,
      state.penalties,
      penaltyTable(
        run.sampler.repetitionPenalty,
        run.sampler.repetitionPenaltyDecay,
        state.capacity,
      ),
    );
  }
  const guided = run.cfg !== undefined && run.cfg.strength > 0;
  run.boundary?.(0);
  let fence: Promise<void> | undefined;
  for (let l = run.fromLevel; l <= run.toLevel; l++) {
    const spec = { ...run.conditioning, mode: "nar" as const, level: l, responseFrames: t };
    const seq = assembleSequence(config, weights.layout, spec);
    uploadSequence(backend, state, "cond", seq);
    const nullSeq = guided
      ? assembleSequence(config, weights.layout, { ...spec, ...nullConditioning(spec) })
      : undefined;
    if (nullSeq) uploadSequence(backend, state, "null", nullSeq);
    const logits = recordGuidedPass(ctx, seq, nullSeq, run.cfg);
    sample(rec, {
      logits,
      work: workRows(state, t, logits.shape[1]),
      out: tokenRow(state, l, 0, t),
      scores: scoreRow(state, 1, 0, t),
      prev: penalize ? tokenRow(state, l - 1, 0, t) : undefined,
      penalties: state.penalties,
    }, { options: run.sampler, seed: run.seed, stream: STREAM.nar, counter: l });
    rec.submit();
    // Level l is queued behind level l − 1: wait for that one (the GPU keeps working).
    const done = fence;
    fence = pipelinedFence(backend);
    if (done) {
      await done;
      run.boundary?.(l - run.fromLevel);
    }
  }
  const levels = run.toLevel + 1;
  const got = await readBytes(
    backend,
    Array.from({ length: levels }, (_, l) => tokenRow(state, l, 0, t)),
  );
  run.boundary?.(run.toLevel - run.fromLevel + 1);
  const data = new Int32Array(t * levels);
  got.forEach((bytes, l) => new Int32Array(bytes).forEach((c, f) => (data[f * levels + l] = c)));
  return { data, frames: t, levels };
}
