/**
 * Batched generation timings on one weight file: AR level-0 throughput (frames per second over
 * all rows) at several batch sizes, from the steady-state step time (a run of `steps` steps minus
 * a run of one step, so the prefills cancel out; the stop token is ignored so every row runs every
 * step), and a paragraph of sentences of different lengths through the AR + NAR pipeline, one
 * `generate` call per sentence vs one `generateBatch` call. Called by `deno task bench`.
 */

import type { Backend } from "../src/backends/backend.ts";
import type { Safetensors } from "../src/io/safetensors.ts";
import { batchDecodePositions, decodeBatch } from "../src/models/valle/batch_decode.ts";
import { assembleSequence } from "../src/models/valle/inputs.ts";
import { ValleModel } from "../src/models/valle/model.ts";
import type { ValleContext } from "../src/models/valle/pass.ts";
import { resolveSamplerOptions, STREAM } from "../src/models/valle/sampler.ts";
import { createRunState, destroyRunState } from "../src/models/valle/state.ts";

/** What to measure. */
export interface BatchBenchSettings {
  /** Batch sizes of the AR throughput table. */
  batchSizes: number[];
  /** AR steps per timed run (on lavapipe keep this small: a step is ~0.5 s at batch 1). */
  steps: number;
  /** Prompt frames of every row (a 3 s prompt is 225). */
  promptFrames: number;
  /** Phoneme tokens of a sentence (the paragraph's sentences vary around it). */
  phonemes: number;
  /** Sentences of the paragraph. */
  sentences: number;
  /** AR frames per sentence in the paragraph (a random model never stops by itself). */
  sentenceFrames: number;
}

/** AR throughput at one batch size. */
export interface BatchFigures {
  /** Rows decoded together. */
  batch: number;
  /** Steady-state time of one step of all rows, ms. */
  stepMs: number;
  /** Frames per second over all rows. */
  framesPerSecond: number;
}

/** Everything {@linkcode benchBatch} measures. */
export interface BatchBenchFigures {
  /** Per batch size. */
  ar: BatchFigures[];
  /** The paragraph: AR + NAR levels, sentence by sentence vs batched. */
  paragraph: { sentences: number; oneByOneMs: number; batchedMs: number; speedup: number };
}

/**
 * Runs the batch benchmarks on `backend` with the weights in `st`.
 *
 * @example
 * ```ts ignore
 * const figures = await benchBatch(backend, st, {
 *   batchSizes: [1, 4, 8, 16], steps: 16, promptFrames: 225, phonemes: 60, sentences: 8,
 *   sentenceFrames: 16,
 * });
 * ```
 */
export async function benchBatch(
  backend: Backend,
  st: Safetensors,
  settings: BatchBenchSettings,
): Promise<BatchBenchFigures> {
  const valle = await ValleModel.load(st, { backend });
  const { config, weights } = valle;
  const phonemes = (n: number, salt: number) => [
    1,
    ...Array.from({ length: n - 2 }, (_, i) => 4 + (i * 37 + salt * 11) % 200),
    2,
  ];
  const prompt = {
    data: Array.from(
      { length: settings.promptFrames * config.nLevels },
      (_, i) => (i * 613) % config.nAudio,
    ),
    frames: settings.promptFrames,
    levels: config.nLevels,
  };

  const ar: BatchFigures[] = [];
  for (const batch of settings.batchSizes) {
    const seqs = Array.from({ length: batch }, (_, r) =>
      assembleSequence(config, weights.layout, {
        phonemes: phonemes(settings.phonemes, r),
        language: 0,
        prompt,
        mode: "ar",
        responseFrames: settings.steps,
      }));
    const state = createRunState(backend, config, batchDecodePositions(seqs));
    const ctx: ValleContext = {
      backend,
      model: { config, weights },
      state,
      rec: backend.createRecorder({ label: "valle.bench.batch", capacity: 65536 }),
    };
    const run = async (steps: number) => {
      const start = performance.now();
      await decodeBatch(ctx, {
        seqs,
        seeds: seqs.map((_, r) => r + 1),
        initial: [],
        maxSteps: steps,
        stopToken: -1,
        sampler: resolveSamplerOptions({ temperature: 1, topK: 50 }),
        lengthPenaltyToken: config.nAudio,
        stream: STREAM.ar,
        checkEvery: steps,
      });
      await backend.fence();
      return performance.now() - start;
    };
    await run(1); // warm-up: pipelines, bind groups
    // The fastest of two runs each: the machine may be shared, and a slow run only adds time.
    const best = async (steps: number) => Math.min(await run(steps), await run(steps));
    const one = await best(1);
    const stepMs = (await best(settings.steps) - one) / (settings.steps - 1);
    ar.push({ batch, stepMs, framesPerSecond: (batch * 1000) / stepMs });
    ctx.rec.destroy();
    destroyRunState(state);
  }

  const rows = Array.from({ length: settings.sentences }, (_, r) => ({
    phonemes: phonemes(Math.max(4, Math.round(settings.phonemes * (0.5 + (r % 4) / 3))), r),
    language: 0,
    prompt,
    seed: r,
  }));
  const request = {
    modality: "ar+nar" as const,
    ar: { maxSteps: settings.sentenceFrames, checkEvery: settings.sentenceFrames },
  };
  await valle.generateBatch({ ...request, rows: rows.slice(0, 1) }); // warm-up
  let start = performance.now();
  for (const { seed, ...row } of rows) {
    await valle.generate({ ...row, ...request, ar: { ...request.ar, seed }, nar: { seed } });
  }
  const oneByOneMs = performance.now() - start;
  start = performance.now();
  await valle.generateBatch({ ...request, rows });
  const batchedMs = performance.now() - start;
  await valle.dispose();
  return {
    ar,
    paragraph: {
      sentences: settings.sentences,
      oneByOneMs,
      batchedMs,
      speedup: oneByOneMs / batchedMs,
    },
  };
}
