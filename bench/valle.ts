/**
 * VALL-E model timings on one weight file: AR level 0 (prefill, then single-token steps with the
 * KV cache; the stop token is ignored so every run has the requested length) at several output
 * lengths, the NAR levels, NAR-len demasking with CFG, dispatches and readbacks per AR step, and
 * the GPU time per kernel of AR steps (timestamp queries). Part of `deno task bench`.
 */

import { type KernelTime, sumByKernel } from "../src/backends/backend.ts";
import type { Backend } from "../src/backends/backend.ts";
import type { ValleCheckpoint } from "../src/models/valle/checkpoint.ts";
import type { ValleDtype } from "../src/models/valle/quant_policy.ts";
import { decode } from "../src/models/valle/ar.ts";
import { assembleSequence } from "../src/models/valle/inputs.ts";
import { runNar } from "../src/models/valle/nar.ts";
import { runNarLen } from "../src/models/valle/nar_len.ts";
import type { ValleContext } from "../src/models/valle/pass.ts";
import { resolveSamplerOptions, STREAM } from "../src/models/valle/sampler.ts";
import { createRunState, destroyRunState } from "../src/models/valle/state.ts";
import { destroyValleWeights, uploadValleWeights } from "../src/models/valle/weights.ts";

/** What to measure. */
export interface ValleBenchSettings {
  /** AR output lengths in frames (75 per second). */
  arFrames: number[];
  /** Prompt frames (a 3 s prompt is 225). */
  promptFrames: number;
  /** Phoneme tokens of the text. */
  phonemes: number;
  /** Frames of the NAR and NAR-len utterance (10 s is 750). */
  frames: number;
  /** NAR levels to run (1..7). */
  narLevels: number;
  /** NAR-len demasking steps. */
  narLenSteps: number;
  /** AR steps between stop checks. */
  checkEvery: number;
  /** AR steps to time kernel by kernel. */
  profileSteps: number;
}

/** One AR length's figures. */
export interface ArFigures {
  /** Output frames. */
  frames: number;
  /** Wall time of the whole run (prefill + steps), ms. */
  ms: number;
  /** Frames per second of the whole run. */
  framesPerSecond: number;
}

/** Everything {@linkcode benchValle} measures. */
export interface ValleFigures {
  /** Model shape. */
  model: { dModel: number; heads: number; layers: number; weights: string };
  /** Upload time, ms. */
  loadMs: number;
  /** Prefill of the prompt and text, plus the first step, ms. */
  prefillMs: number;
  /** Steady-state AR step, ms (from the longest run minus a one-step run). */
  stepMs: number;
  /** Steady-state AR frames per second. */
  stepFramesPerSecond: number;
  /** Per output length. */
  ar: ArFigures[];
  /** Compute dispatches per AR step. */
  dispatchesPerStep: number;
  /** Readbacks per AR step (the stop check every `checkEvery` steps). */
  readbacksPerStep: number;
  /** Queue submits per AR step. */
  submitsPerStep: number;
  /** NAR levels 1..narLevels of `frames` frames (greedy, no CFG), ms. */
  narMs: number;
  /** Rows of one NAR pass (phonemes, prompt, separators and the `frames` response frames). */
  narRows: number;
  /** One NAR level (one pass over `narRows` rows), ms. */
  narLevelMs: number;
  /** NAR-len demasking of `frames` frames in `narLenSteps` steps with CFG, ms. */
  narLenMs: number;
  /** One NAR-len step (a conditional and a CFG null pass), ms. */
  narLenStepMs: number;
  /** GPU time and dispatches per kernel and AR step, averaged over `profileSteps` steps (empty without timestamp queries). */
  arKernels: KernelTime[];
  /** Peak GPU memory of the library's buffers during the run, bytes. */
  peakBytes: number;
}

/**
 * Runs the model benchmarks on `backend` with the weights in `st`, stored as `dtype` (default:
 * float, as the backend stores weights).
 */
export async function benchValle(
  backend: Backend,
  st: ValleCheckpoint,
  settings: ValleBenchSettings,
  dtype?: ValleDtype,
): Promise<ValleFigures> {
  const loadStart = performance.now();
  const float = dtype === "f32" || dtype === "f16" ? dtype : backend.weightDtype;
  const { config, weights } = uploadValleWeights(backend, st, float, dtype);
  await backend.fence();
  const loadMs = performance.now() - loadStart;
  const longest = Math.max(...settings.arFrames);
  const capacity = settings.phonemes + settings.promptFrames + Math.max(longest, settings.frames) +
    16;
  const state = createRunState(backend, config, capacity);
  const ctx: ValleContext = {
    backend,
    model: { config, weights },
    state,
    rec: backend.createRecorder({ label: "valle.bench", capacity: 32768 }),
  };
  const phonemes = [
    1,
    ...Array.from({ length: settings.phonemes - 2 }, (_, i) => 4 + (i * 37) % 200),
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
  const conditioning = { phonemes, language: 0, prompt };
  const greedy = resolveSamplerOptions({ temperature: 0 });

  const arRun = async (n: number, c: ValleContext = ctx) => {
    const seq = assembleSequence(config, weights.layout, {
      ...conditioning,
      mode: "ar",
      responseFrames: n,
    });
    const before = { ...backend.stats };
    const start = performance.now();
    await decode(c, {
      seq,
      initial: [],
      maxSteps: n,
      stopToken: -1,
      sampler: resolveSamplerOptions({ temperature: 1, topK: 50 }),
      lengthPenaltyToken: config.nAudio,
      seed: 1,
      stream: STREAM.ar,
      checkEvery: settings.checkEvery,
    });
    await backend.fence();
    return {
      ms: performance.now() - start,
      dispatches: backend.stats.dispatches - before.dispatches,
      readbacks: backend.stats.readbacks - before.readbacks,
      submits: backend.stats.submits - before.submits,
    };
  };

  await arRun(1); // warm-up: pipelines, bind groups
  // The step time is a difference of two runs that share the prefill: take its best of two, so
  // that noise in the prefill does not land on the steps.
  const [a, b] = [await arRun(1), await arRun(1)];
  const one = a.ms <= b.ms ? a : b;
  const ar: ArFigures[] = [];
  let last = one;
  for (const n of settings.arFrames) {
    last = await arRun(n);
    ar.push({
      frames: n,
      ms: +last.ms.toFixed(1),
      framesPerSecond: +(n / (last.ms / 1000)).toFixed(1),
    });
  }
  const stepMs = (last.ms - one.ms) / (longest - 1);
  const perStep = (x: number, y: number) => +((x - y) / (longest - 1)).toFixed(4);

  const narRows = assembleSequence(config, weights.layout, {
    ...conditioning,
    mode: "nar",
    level: 1,
    responseFrames: settings.frames,
  }).length;
  const narStart = performance.now();
  await runNar(ctx, {
    conditioning,
    frames: settings.frames,
    fromLevel: 1,
    toLevel: settings.narLevels,
    sampler: greedy,
    seed: 0,
  });
  const narMs = performance.now() - narStart;

  const narLenRun = {
    conditioning,
    frames: settings.frames,
    steps: settings.narLenSteps,
    temperature: 0,
    annealed: true,
    cfg: { strength: 2.5, rescale: 0.75 },
    remask: false,
    maskedOnly: false,
    sampler: greedy,
    seed: 0,
    trace: false,
  };
  await runNarLen(ctx, { ...narLenRun, steps: 1 }); // warm-up
  const narLenStart = performance.now();
  await runNarLen(ctx, narLenRun);
  const narLenMs = performance.now() - narLenStart;

  let arKernels: KernelTime[] = [];
  if (backend.canProfile && settings.profileSteps > 0) {
    const profiler = backend.createProfiler();
    const profiled = { ...ctx, rec: backend.createRecorder({ label: "valle.profile", profiler }) };
    // The second run repeats the first (prefill and first step), then `profileSteps` steps.
    await arRun(1, profiled);
    const head = (await profiler.dispatches()).length;
    await arRun(settings.profileSteps + 1, profiled);
    const steps = (await profiler.dispatches()).slice(head);
    arKernels = sumByKernel(steps).map((k) => ({
      label: k.label,
      count: +(k.count / settings.profileSteps).toFixed(2),
      totalMs: +(k.totalMs / settings.profileSteps).toFixed(4),
    }));
    profiled.rec.destroy();
    profiler.destroy();
  }
  const peakBytes = backend.memory.peak;
  ctx.rec.destroy();
  destroyRunState(state);
  destroyValleWeights(weights);
  return {
    model: {
      dModel: config.dModel,
      heads: config.nHeads,
      layers: config.nLayers,
      weights: dtype ?? backend.weightDtype,
    },
    loadMs: Math.round(loadMs),
    prefillMs: +one.ms.toFixed(1),
    stepMs: +stepMs.toFixed(3),
    stepFramesPerSecond: +(1000 / stepMs).toFixed(1),
    ar,
    dispatchesPerStep: perStep(last.dispatches, one.dispatches),
    readbacksPerStep: +(last.readbacks / longest).toFixed(4),
    submitsPerStep: perStep(last.submits, one.submits),
    narMs: +narMs.toFixed(1),
    narRows,
    narLevelMs: +(narMs / settings.narLevels).toFixed(1),
    narLenMs: +narLenMs.toFixed(1),
    narLenStepMs: +(narLenMs / settings.narLenSteps).toFixed(1),
    arKernels,
    peakBytes,
  };
}
