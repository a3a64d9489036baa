/**
 * The LoRA training step on the full-size model (issue 19's target): one item of `frames` frames
 * with a `promptFrames`-frame prompt and `phonemes` phonemes, an AR item (level 0 with its stop
 * token) and a NAR item (level `narLevel`), LoRA rank 128 / alpha 128 (upstream's default) on the
 * default modules, over the base weights as the file stores them (f16) or quantized at load (q8).
 * A step is what the trainer runs: the batch uploaded, the forward and backward pass recorded and
 * submitted, the optimizer step (gradient norm, clipping, AdamW), and the readback of the rows'
 * loss statistics and the norm. Part of `deno task bench`.
 *
 * Per weight dtype it measures, for each item kind, one warm-up step (profiled kernel by kernel,
 * its gradients read back) and `timedSteps` timed steps: ms per step, scored tokens per second, the
 * backend's peak memory over the whole run (weights, training state, temporaries) and the training
 * state's own bytes. The warm-up starts from a LoRA whose B is not zero, so that the gradients of
 * A are not zero either; run over two dtypes, {@linkcode compareSteps} gives what the quantized
 * base costs in accuracy: the loss difference and the relative L2 of the LoRA gradients.
 */

import process from "node:process";
import { type KernelTime, sumByKernel } from "../src/backends/backend.ts";
import type { Backend, Profiler } from "../src/backends/backend.ts";
import { destroyTensors, readF32, writeTensor } from "../src/backends/tensor.ts";
import { mulberry32 } from "../src/_random.ts";
import type { ValleCheckpoint } from "../src/models/valle/checkpoint.ts";
import type { ValleDtype } from "../src/models/valle/quant_policy.ts";
import {
  destroyValleWeights,
  quantizeAtLoad,
  uploadValleWeights,
} from "../src/models/valle/weights.ts";
import { packBatch, type PackedBatch, type TrainingItem } from "../src/train/batch.ts";
import { initLora, type LoraLayout, loraLayout } from "../src/train/lora_params.ts";
import { createTrainState, trainStateBytes } from "../src/train/state.ts";
import {
  batchLoss,
  type OptimizerSettings,
  recordOptimizerStep,
  recordStep,
  uploadBatch,
} from "../src/train/step.ts";

/** What to measure. */
export interface TrainBenchSettings {
  /** Prompt frames (3 s is 225). */
  promptFrames: number;
  /** Frames of the trained utterance (10 s is 750). */
  frames: number;
  /** Phoneme tokens of the text, with `<bos>` and `<eos>`. */
  phonemes: number;
  /** The NAR item's level. */
  narLevel: number;
  /** LoRA rank. */
  rank: number;
  /** LoRA alpha. */
  alpha: number;
  /** Timed steps per item kind, after one warm-up step. */
  timedSteps: number;
}

/** Upstream's AdamW defaults with a learning rate the bench does not care about. */
const OPTIMIZER: OptimizerSettings = {
  learningRate: 1e-4,
  beta1: 0.9,
  beta2: 0.96,
  eps: 1e-7,
  weightDecay: 0.01,
  maxGradNorm: 1,
};

/** One item kind's figures. */
export interface TrainStepFigures {
  /** `"ar"` or `"nar"`. */
  kind: TrainingItem["kind"];
  /** The NAR item's level (0 for the AR). */
  level: number;
  /** Rows of the packed sequence. */
  rows: number;
  /** Rows with a label (the AR's frames and its stop token; the NAR's frames). */
  scoredTokens: number;
  /** Each timed step: forward, backward, optimizer and the readback, ms. */
  stepMs: number[];
  /** Their median, ms. */
  medianStepMs: number;
  /**
   * The process's CPU time (user + system, every thread) per timed step, ms: on a machine shared
   * with other work, the figure that does not grow with the others' load (as long as the step's
   * threads do not spin while they wait).
   */
  cpuMsPerStep: number;
  /** Scored tokens per second at the median step. */
  tokensPerSecond: number;
  /** The warm-up step's loss (mean cross-entropy of the item). */
  loss: number;
  /** The warm-up step's time per kernel (forward and backward, no optimizer), longest first. */
  kernels: KernelTime[];
  /** The warm-up step's wall time, profiled, ms. */
  profiledMs: number;
}

/** Everything {@linkcode benchTrain} measures for one weight dtype. */
export interface TrainFigures {
  /** Base weights: the file's (f16) or quantized at load. */
  weights: string;
  /** LoRA rank, alpha, and its parameters. */
  lora: { rank: number; alpha: number; parameters: number };
  /** Per item kind. */
  steps: TrainStepFigures[];
  /** Bytes of the training state at the row capacity of the longest item. */
  stateBytes: number;
  /** Bytes of the frozen weights on the device. */
  weightBytes: number;
  /** Peak backend memory over the run (weights, state, temporaries), bytes. */
  peakBytes: number;
  /** The warm-up steps' LoRA gradients, per item kind (for {@linkcode compareSteps}; not saved). */
  grads?: Float32Array[];
  /** Their layout (not saved). */
  layout?: LoraLayout;
}

/** The items of the bench: an AR item and a NAR item over the same utterance. */
function benchItems(s: TrainBenchSettings): TrainingItem[] {
  const random = mulberry32(19);
  const codes = (frames: number) => ({
    data: Array.from({ length: frames * 8 }, () => Math.floor(random() * 1024)),
    frames,
    levels: 8,
  });
  const phonemes = [
    1,
    ...Array.from({ length: s.phonemes - 2 }, () => 3 + Math.floor(random() * 250)),
    2,
  ];
  const common = { phonemes, language: 0, prompt: codes(s.promptFrames) };
  const response = codes(s.frames);
  return [
    { ...common, kind: "ar", response },
    { ...common, kind: "nar", level: s.narLevel, response },
  ];
}

/**
 * The warm-up LoRA: upstream's init (A uniform ±1/√in) but B uniform ±0.02 instead of zero, so
 * that the step's gradients of A (s · dyᵀ·B·x) are not zero and the q8-vs-f16 comparison covers
 * them.
 */
function warmupLora(layout: LoraLayout): Float32Array {
  const values = initLora(layout, mulberry32(7));
  const random = mulberry32(8);
  for (const slot of layout.slots) {
    const b = values.subarray(slot.b, slot.b + slot.outFeatures * layout.rank);
    for (let i = 0; i < b.length; i++) b[i] = (random() * 2 - 1) * 0.02;
  }
  return values;
}

/**
 * Times the training step on one weight dtype (the file's own for undefined or f16, q8/q4
 * quantized at load as `Valle.load` does).
 *
 * @param backend The device.
 * @param st The full-size checkpoint.
 * @param settings Item lengths, LoRA, timed steps.
 * @param dtype The base weights' dtype.
 * @param log Progress lines.
 */
export async function benchTrain(
  backend: Backend,
  st: ValleCheckpoint,
  settings: TrainBenchSettings,
  dtype?: ValleDtype,
  log: (line: string) => void = () => {},
): Promise<TrainFigures> {
  const float = dtype === "f32" || dtype === "f16" ? dtype : backend.weightDtype;
  const quantized = await quantizeAtLoad(backend, st, dtype);
  const before = backend.memory.current;
  const { config, weights } = await uploadValleWeights(backend, st, float, dtype, quantized);
  await backend.fence();
  const weightBytes = backend.memory.current - before;
  const model = { config, weights };
  const layout = loraLayout(config, settings.rank, settings.alpha);
  const items = benchItems(settings);
  const batches = items.map((item) => packBatch(config, weights.layout, [item], { rule: "head" }));
  const capacity = Math.max(...batches.map((b) => b.rows));
  const state = createTrainState(backend, config, layout, capacity);
  const steps: TrainStepFigures[] = [];
  const grads: Float32Array[] = [];
  /** One step: upload, forward + backward, optimizer (unless a warm-up), the stats' readback. */
  const step = async (batch: PackedBatch, n: number, profiler?: Profiler) => {
    uploadBatch(backend, state, batch);
    const rec = backend.createRecorder({ label: "bench.train", profiler });
    try {
      if (n === 0) { for (const t of [state.grads, state.m1, state.m2]) rec.clear(t); }
      recordStep(rec, model, state, layout, batch);
      if (n > 0) recordOptimizerStep(rec, state, OPTIMIZER, n);
      rec.submit();
    } finally {
      rec.destroy();
    }
    return batchLoss(batch, await readF32(backend, state.stats));
  };
  try {
    for (const [i, batch] of batches.entries()) {
      const { kind, level = 0 } = items[i];
      writeTensor(backend, state.params, warmupLora(layout));
      log(`training step, ${kind}, ${batch.rows} rows: warm-up (profiled)`);
      let kernels: KernelTime[] = [];
      const start = performance.now();
      let loss: number;
      if (backend.canProfile) {
        const profiler = backend.createProfiler();
        try {
          loss = (await step(batch, 0, profiler)).loss;
          kernels = sumByKernel(await profiler.dispatches()).map((k) => ({
            ...k,
            totalMs: +k.totalMs.toFixed(1),
          }));
        } finally {
          profiler.destroy();
        }
      } else {
        loss = (await step(batch, 0)).loss;
      }
      const profiledMs = performance.now() - start;
      grads.push(await readF32(backend, state.grads));
      const stepMs: number[] = [];
      let tokens = 0;
      const cpu = process.cpuUsage();
      for (let n = 1; n <= settings.timedSteps; n++) {
        const t0 = performance.now();
        tokens = (await step(batch, n)).tokens;
        stepMs.push(+(performance.now() - t0).toFixed(1));
        log(`training step, ${kind}: ${stepMs.at(-1)} ms`);
      }
      const used = process.cpuUsage(cpu);
      // The median as the peer's Python takes it (the mean of the middle two of an even count).
      const sorted = [...stepMs].sort((a, b) => a - b);
      const half = Math.floor(sorted.length / 2);
      const median = +(sorted.length % 2 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2)
        .toFixed(1);
      steps.push({
        kind,
        level,
        rows: batch.rows,
        scoredTokens: tokens,
        stepMs,
        medianStepMs: median,
        cpuMsPerStep: Math.round((used.user + used.system) / 1000 / settings.timedSteps),
        tokensPerSecond: +(tokens / (median / 1000)).toFixed(1),
        loss: +loss.toFixed(5),
        kernels,
        profiledMs: +profiledMs.toFixed(1),
      });
    }
    return {
      weights: dtype ?? `${float} (as stored)`,
      lora: { rank: layout.rank, alpha: layout.alpha, parameters: layout.size },
      steps,
      stateBytes: trainStateBytes(config, layout, capacity),
      weightBytes,
      peakBytes: backend.memory.peak,
      grads,
      layout,
    };
  } finally {
    destroyTensors(state);
    destroyValleWeights(weights);
  }
}

/** What a quantized base costs one training step, against the float base. */
export interface StepDifference {
  /** The item kind. */
  kind: TrainingItem["kind"];
  /** Loss on the float base and on the quantized base. */
  loss: [number, number];
  /** ‖g_q − g_f‖ / ‖g_f‖ over every LoRA gradient of the step. */
  gradRelL2: number;
  /** The same over A's and over B's gradients alone. */
  gradRelL2A: number;
  /** B's. */
  gradRelL2B: number;
  /** Cosine between the two gradient vectors. */
  gradCosine: number;
}

/**
 * The loss and gradient difference of the warm-up steps on two bases (the same LoRA and items).
 *
 * @param float The float base's figures (with their gradients and layout).
 * @param quantized The quantized base's figures.
 */
export function compareSteps(float: TrainFigures, quantized: TrainFigures): StepDifference[] {
  const layout = float.layout!;
  const isA = new Uint8Array(layout.size);
  for (const slot of layout.slots) isA.fill(1, slot.a, slot.a + layout.rank * slot.inFeatures);
  return float.steps.map((s, i) => {
    const [f, q] = [float.grads![i], quantized.grads![i]];
    const sums = [[0, 0], [0, 0]]; // per half (B, A): Σ diff², Σ f²
    let [dot, qq] = [0, 0];
    for (let j = 0; j < f.length; j++) {
      const d = q[j] - f[j];
      const half = sums[isA[j]];
      half[0] += d * d;
      half[1] += f[j] * f[j];
      dot += f[j] * q[j];
      qq += q[j] * q[j];
    }
    const ff = sums[0][1] + sums[1][1];
    const rel = (d: number, n: number) => +Math.sqrt(d / n).toExponential(3);
    return {
      kind: s.kind,
      loss: [s.loss, quantized.steps[i].loss],
      gradRelL2: rel(sums[0][0] + sums[1][0], ff),
      gradRelL2A: rel(sums[1][0], sums[1][1]),
      gradRelL2B: rel(sums[0][0], sums[0][1]),
      gradCosine: +(dot / Math.sqrt(ff * qq)).toFixed(6),
    };
  });
}
