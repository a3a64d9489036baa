/**
 * VALL-E model timings on one weight file: AR level 0 (prefill, then single-token steps with the
 * KV cache; the stop token is ignored so every run has the requested length) at several output
 * lengths, the NAR levels, NAR-len demasking with CFG, dispatches and readbacks per AR step, and
 * the time per kernel (timestamp queries, or the CPU backend's clock) of AR steps, of one NAR pass
 * and of one NAR-len step, with the weights as the file stores them or quantized at load (q8, q4).
 * Part of `deno task bench`.
 */

import { type KernelTime, sumByKernel } from "../src/backends/backend.ts";
import type { Backend, Recorder } from "../src/backends/backend.ts";
import type { ValleCheckpoint } from "../src/models/valle/checkpoint.ts";
import type { ValleDtype } from "../src/models/valle/quant_policy.ts";
import { decode } from "../src/models/valle/ar.ts";
import { assembleSequence } from "../src/models/valle/inputs.ts";
import { runNar } from "../src/models/valle/nar.ts";
import { runNarLen } from "../src/models/valle/nar_len.ts";
import type { ValleContext } from "../src/models/valle/pass.ts";
import { resolveSamplerOptions, STREAM } from "../src/models/valle/sampler.ts";
import { createRunState, destroyRunState } from "../src/models/valle/state.ts";
import {
  destroyValleWeights,
  quantizeAtLoad,
  uploadValleWeights,
  valleWeightTensors,
} from "../src/models/valle/weights.ts";
import { valleKernelUses } from "../src/models/valle/kernels.ts";

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

/** Where the time of one profiled run goes. */
export interface PassProfile {
  /** Wall time of the profiled run (the timestamps add a little), ms. */
  ms: number;
  /** The kernels' sum; the rest of `ms` is spent between dispatches (host, queue, barriers). */
  kernelsMs: number;
  /** Per kernel, longest first. */
  kernels: KernelTime[];
}

/** Everything {@linkcode benchValle} measures. */
export interface ValleFigures {
  /** Model shape. */
  model: { dModel: number; heads: number; layers: number; weights: string };
  /** Upload time (with quantizing, for q8 and q4), ms. */
  loadMs: number;
  /** Compiling every kernel the model may dispatch (`Backend.warm`, concurrent), ms. */
  compileMs: number;
  /**
   * JavaScript memory the load added at its peak: V8 heap plus external memory (array buffers:
   * converted tensors, staging), sampled at every write to the device, bytes over the level
   * before the load.
   */
  loadPeakJsBytes: number;
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
  /**
   * The trunk's linear layers (2 · rows · weights of the q, k, v, o, gate, up and down
   * projections) over one NAR level's time: the pass's effective rate, GFLOP/s, to hold against
   * the GEMM's own rate in the kernel section.
   */
  narGflops: number;
  /** NAR-len demasking of `frames` frames in `narLenSteps` steps with CFG, ms. */
  narLenMs: number;
  /** One NAR-len step (a conditional and a CFG null pass), ms. */
  narLenStepMs: number;
  /** GPU time and dispatches per kernel and AR step, averaged over `profileSteps` steps (empty without timestamp queries). */
  arKernels: KernelTime[];
  /** Time and dispatches per kernel of one NAR pass (level 1; absent without timestamp queries). */
  narPass?: PassProfile;
  /** Time and dispatches per kernel of one NAR-len step (both CFG passes, the sampling). */
  narLenStep?: PassProfile;
  /** Peak GPU memory of the library's buffers during the run, bytes. */
  peakBytes: number;
}

/**
 * Runs the model benchmarks on `backend` with the weights in `st`, stored as `dtype` (default:
 * as the file stores them; q8 and q4 are quantized at load by the C quantizers, as `Valle.load`
 * does, or read as stored from a GGUF).
 */
export async function benchValle(
  backend: Backend,
  st: ValleCheckpoint,
  settings: ValleBenchSettings,
  dtype?: ValleDtype,
): Promise<ValleFigures> {
  const heap = new JsMemoryPeak(backend);
  const loadStart = performance.now();
  const float = dtype === "f32" || dtype === "f16" ? dtype : backend.weightDtype;
  const quantized = await quantizeAtLoad(backend, st, dtype);
  const { config, weights } = await uploadValleWeights(backend, st, float, dtype, quantized);
  await backend.fence();
  const loadMs = performance.now() - loadStart;
  const loadPeakJsBytes = heap.stop();
  const compileStart = performance.now();
  await backend.warm(valleKernelUses(backend, valleWeightTensors(config, weights).values()));
  const compileMs = performance.now() - compileStart;
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
  /** Runs `run` on a recorder that times every dispatch (undefined where nothing can). */
  const profileRun = async (
    run: (rec: Recorder) => Promise<unknown>,
  ): Promise<PassProfile | undefined> => {
    if (!backend.canProfile) {
      await run(ctx.rec);
      return undefined;
    }
    const profiler = backend.createProfiler();
    const rec = backend.createRecorder({ label: "valle.profile", profiler });
    try {
      const start = performance.now();
      await run(rec);
      await backend.fence();
      const ms = performance.now() - start;
      const kernels = sumByKernel(await profiler.dispatches()).map((k) => ({
        ...k,
        totalMs: +k.totalMs.toFixed(2),
      }));
      const kernelsMs = kernels.reduce((n, k) => n + k.totalMs, 0);
      return { ms: +ms.toFixed(1), kernelsMs: +kernelsMs.toFixed(1), kernels };
    } finally {
      rec.destroy();
      profiler.destroy();
    }
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
  const narRun = {
    conditioning,
    frames: settings.frames,
    fromLevel: 1,
    toLevel: settings.narLevels,
    sampler: greedy,
    seed: 0,
  };
  // One level profiled kernel by kernel, which is also the timed run's warm-up.
  const narPass = await profileRun((rec) => runNar({ ...ctx, rec }, { ...narRun, toLevel: 1 }));
  const narStart = performance.now();
  await runNar(ctx, narRun);
  const narMs = performance.now() - narStart;
  const trunkFlops = 2 * narRows * config.nLayers *
    (4 * config.dModel * config.dModel + 3 * config.dModel * config.dFf);

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
  // One step profiled (the warm-up).
  const narLenStep = await profileRun((rec) =>
    runNarLen({ ...ctx, rec }, { ...narLenRun, steps: 1 })
  );
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
    compileMs: Math.round(compileMs),
    loadPeakJsBytes,
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
    narGflops: +(trunkFlops / (narMs / settings.narLevels) / 1e6).toFixed(1),
    narLenMs: +narLenMs.toFixed(1),
    narLenStepMs: +(narLenMs / settings.narLenSteps).toFixed(1),
    arKernels,
    narPass,
    narLenStep,
    peakBytes,
  };
}

/**
 * The peak of JavaScript memory (V8 heap + external) over its level at construction, sampled
 * after every write to `backend` (when a converted tensor is alive) and every millisecond the
 * event loop is free, until `stop`.
 */
class JsMemoryPeak {
  #base = jsBytes();
  #peak = this.#base;
  #timer: ReturnType<typeof setInterval>;
  #restore: () => void;

  constructor(backend: Backend) {
    const write = backend.write;
    const sample = () => (this.#peak = Math.max(this.#peak, jsBytes()));
    backend.write = (t, data) => {
      write.call(backend, t, data);
      sample();
    };
    this.#restore = () => (backend.write = write);
    this.#timer = setInterval(sample, 1);
  }

  /** Stops sampling; the peak over the starting level, bytes. */
  stop(): number {
    clearInterval(this.#timer);
    this.#restore();
    this.#peak = Math.max(this.#peak, jsBytes());
    return Math.max(0, this.#peak - this.#base);
  }
}

function jsBytes(): number {
  const { heapUsed, external } = Deno.memoryUsage();
  return heapUsed + external;
}
