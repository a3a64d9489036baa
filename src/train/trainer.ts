/**
 * The LoRA training loop: per step, a batch of utterances drawn in a seeded shuffled order, each
 * turned into one item with upstream's per-item decisions (the RVQ level from an urn, a level-0
 * item masked for NAR-len with some probability, a prompt from another clip of the speaker),
 * packed into micro-batches that fit the row capacity, their gradients summed, then one clipped
 * AdamW update. Progress after every step (loss, top-10 accuracy, tokens/s, ETA), evaluation loss
 * on held-out utterances, checkpoints that resume the run exactly, and an AbortSignal.
 *
 * Every draw of step s comes from a generator seeded by (seed, s), so a run resumed from the
 * checkpoint of step s continues with the draws the uninterrupted run would have made.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { destroyTensors, readF32, writeTensor } from "../backends/tensor.ts";
import { mulberry32 } from "../_random.ts";
import { OptionError } from "../errors.ts";
import { parseSafetensors, serializeSafetensors } from "../io/safetensors.ts";
import type { ValleConfig } from "../models/valle/config.ts";
import type { EmbeddingRule } from "../models/valle/inputs.ts";
import type { ValleBase, ValleModel } from "../models/valle/model.ts";
import { packBatch, type PackedBatch, type TrainingItem } from "./batch.ts";
import {
  exportLora,
  type ExportLoraOptions,
  initLora,
  type LoraLayout,
  loraLayout,
  readLora,
} from "./lora_params.ts";
import { samplePrompt } from "./prompts.ts";
import { trainKernelUses } from "./kernels.ts";
import { createTrainState, type TrainState, trainStateBytes } from "./state.ts";
import {
  batchLoss,
  type OptimizerSettings,
  recordOptimizerStep,
  recordStep,
  type StepOptions,
  uploadBatch,
} from "./step.ts";
import type { Utterance } from "./utterance.ts";

/** The released LoRAs' level urn (`rvq_levels_p` of upstream's LoRA yaml): level 0 half the time. */
export const LORA_LEVEL_URN: readonly number[] = [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7];

/** Options of {@linkcode trainLora}. */
export interface TrainLoraOptions {
  /** LoRA rank. Default 128 (upstream's default and the released LoRAs'). */
  rank?: number;
  /** LoRA alpha (the update is scaled by alpha / rank). Default: the rank. */
  alpha?: number;
  /** Optimizer steps. Default 250. */
  steps?: number;
  /** AdamW learning rate. Default 3.25e-4 (upstream's default). */
  learningRate?: number;
  /** Utterances per optimizer step. Default 8 (upstream's default), at most the training set. */
  batchSize?: number;
  /** Total-norm gradient clipping. Default 1 (upstream's). */
  maxGradNorm?: number;
  /** AdamW decoupled weight decay of the LoRA factors. Default 0.01 (upstream's). */
  weightDecay?: number;
  /** The urn of target levels (duplicates weigh more). Default {@linkcode LORA_LEVEL_URN}. */
  levels?: readonly number[];
  /**
   * Probability that a level-0 item trains NAR-len (masked demasking) instead of the AR, on a
   * model with NAR-len. Default 0.5.
   */
  maskingProbability?: number;
  /** Probability that a NAR-len item's frame is masked (upstream's fixed ratio). Default 0.8. */
  maskingRatio?: number;
  /**
   * Dropout on each adapted projection's input to its LoRA branch, in [0, 1). Default 0.1
   * (upstream's `LoRALinear`, which hard-codes it).
   */
  loraDropout?: number;
  /** Rows one micro-batch may pack. Default: as many as fit the memory budget (at most 2,048). */
  maxRows?: number;
  /** Seed of every draw. Default 0. */
  seed?: number;
  /** Held-out utterances whose loss is reported (same draws every time). Default none. */
  evaluation?: readonly Utterance[];
  /** Steps between evaluations. Default 50 (and after the last step). */
  evaluateEvery?: number;
  /** Steps between checkpoints given to `onCheckpoint`. Default 50 (and after the last step). */
  checkpointEvery?: number;
  /**
   * Receives each checkpoint (bytes for {@linkcode TrainLoraOptions.resume}), and on abort the
   * last finished step's, if it was not given yet.
   */
  onCheckpoint?: (checkpoint: Uint8Array<ArrayBuffer>, step: number) => void | Promise<void>;
  /** A checkpoint to continue from (same data, rank and seed give the uninterrupted run's draws). */
  resume?: Uint8Array;
  /** Called after every step. */
  onProgress?: (progress: TrainProgress) => void;
  /**
   * Stops the run between micro-batches: the promise rejects with the signal's reason, after
   * `onCheckpoint` received the last finished step.
   */
  signal?: AbortSignal;
}

/** Where a run stands after a step. */
export interface TrainProgress {
  /** Steps done. */
  step: number;
  /** Steps of the run. */
  steps: number;
  /** The step's loss: mean over its items of each item's mean cross-entropy. */
  loss: number;
  /** The step's top-10 accuracy, mean over its items. */
  accuracy: number;
  /** The gradients' total norm before clipping. */
  gradNorm: number;
  /** Scored tokens per second over the run so far. */
  tokensPerSecond: number;
  /** Time since the run (or its resumption) started, in ms. */
  elapsedMs: number;
  /** Estimated time to the last step, in ms. */
  etaMs: number;
  /** The held-out loss, on steps that evaluate. */
  evalLoss?: number;
}

/** A trained LoRA. */
export interface TrainedLora {
  /** Rank, alpha and where each factor sits. */
  readonly layout: LoraLayout;
  /** The factors, flat. */
  readonly values: Float32Array;
  /** Each step's loss and accuracy, and the evaluation losses. */
  readonly history: readonly TrainProgress[];
  /** The LoRA as a `lora.sft` in upstream's layout (what `setLora` and upstream read). */
  toFile(options?: ExportLoraOptions): Uint8Array<ArrayBuffer>;
}

/** Memory a run may take for its buffers when `maxRows` is not given. */
const MEMORY_BUDGET = 1.5 * 2 ** 30;
/** The most rows a micro-batch packs by default. */
const DEFAULT_MAX_ROWS = 2048;

/**
 * Trains a LoRA on utterances, against the model as loaded (no LoRA may be active), as one call of
 * the model: calls made meanwhile wait for it.
 *
 * @param model The frozen model.
 * @param utterances The training set (at least one; prompts come from other utterances of the
 * same speaker).
 * @param options Rank, steps, optimizer, item decisions, evaluation, checkpoints, progress.
 * @returns The trained LoRA.
 * @throws {OptionError} An empty set, options out of range, an item longer than `maxRows`, or a
 * checkpoint of another run, or a LoRA active on the model.
 */
export function trainLora(
  model: ValleModel,
  utterances: readonly Utterance[],
  options: TrainLoraOptions = {},
): Promise<TrainedLora> {
  return model.withBase("train a LoRA", (base) => train(base, utterances, options));
}

async function train(
  target: ValleBase,
  utterances: readonly Utterance[],
  options: TrainLoraOptions,
): Promise<TrainedLora> {
  const settings = checkOptions(target, utterances, options);
  const { backend, config } = target;
  const layout = loraLayout(config, settings.rank, settings.alpha);
  const longest = Math.max(
    ...[...utterances, ...(options.evaluation ?? [])].map(longestItemRows),
  );
  const capacity = options.maxRows ?? defaultRows(config, layout, longest);
  if (longest > capacity) {
    throw new OptionError(
      `An utterance with its prompt needs ${longest} rows, above maxRows ${capacity}: raise ` +
        `maxRows or shorten the clips`,
    );
  }
  const state = createTrainState(backend, config, layout, capacity);
  try {
    await backend.warm(trainKernelUses(backend, target.weights));
    const run: Run = { target, state, layout, settings, utterances, tokens: 0 };
    let first = 1;
    if (options.resume) {
      first = restore(backend, state, layout, options.resume, settings) + 1;
    } else {
      writeTensor(backend, state.params, initLora(layout, mulberry32(settings.seed)));
    }
    const history: TrainProgress[] = [];
    const started = performance.now();
    // The last step whose update ran, and the last one given to onCheckpoint.
    let [finished, saved] = [first - 1, first - 1];
    const save = async (step: number) => {
      saved = step;
      await options.onCheckpoint?.(await checkpoint(backend, state, layout, step, settings), step);
    };
    try {
      for (let step = first; step <= settings.steps; step++) {
        const { loss, accuracy, gradNorm } = await trainStep(run, step, options.signal);
        finished = step;
        const elapsedMs = performance.now() - started;
        const progress: TrainProgress = {
          step,
          steps: settings.steps,
          loss,
          accuracy,
          gradNorm,
          tokensPerSecond: run.tokens / (elapsedMs / 1000),
          elapsedMs,
          etaMs: elapsedMs / (step - first + 1) * (settings.steps - step),
        };
        const last = step === settings.steps;
        if (options.evaluation?.length && (step % settings.evaluateEvery === 0 || last)) {
          progress.evalLoss = await evaluate(run, options.evaluation);
        }
        history.push(progress);
        options.onProgress?.(progress);
        if (options.onCheckpoint && (step % settings.checkpointEvery === 0 || last)) {
          await save(step);
        }
      }
    } catch (e) {
      // Stopped: the last finished step is kept (the update of an unfinished one never ran).
      if (options.signal?.aborted && options.onCheckpoint && finished > saved) await save(finished);
      throw e;
    }
    const values = await readF32(backend, state.params);
    return {
      layout,
      values,
      history,
      toFile: (exportOptions) => exportLora(layout, values, exportOptions),
    };
  } finally {
    destroyTensors(state);
  }
}

/** What the steps of a run share. */
interface Run {
  readonly target: ValleBase;
  readonly state: TrainState;
  readonly layout: LoraLayout;
  readonly settings: Settings;
  /** The training set (also the prompts' pool). */
  readonly utterances: readonly Utterance[];
  /** Scored tokens so far. */
  tokens: number;
}

/**
 * One optimizer step: the step's items drawn, their micro-batches forward and backward, the
 * clipped AdamW update.
 */
async function trainStep(
  run: Run,
  step: number,
  signal: AbortSignal | undefined,
): Promise<{ loss: number; accuracy: number; gradNorm: number }> {
  const { target, state, layout, settings, utterances } = run;
  const random = mulberry32(hash(settings.seed, step));
  const items = batchIndices(utterances.length, settings, step).map((i) =>
    drawItem(utterances[i], utterances, random, settings, target.config)
  );
  let [loss, accuracy] = [0, 0];
  const groups = microBatches(target, items, state.capacity, settings);
  for (const [g, group] of groups.entries()) {
    signal?.throwIfAborted();
    const share = group.length / items.length;
    const batch = packBatch(target.config, target.weights.layout, group, {
      ...settings.sequence,
      lossScale: share,
    });
    const dropout = { p: settings.loraDropout, seed: hash(hash(settings.seed, step), g) >>> 0 };
    const result = await runBatch(target, state, layout, batch, { dropout });
    loss += result.loss * share;
    accuracy += result.accuracy * share;
    run.tokens += result.tokens;
  }
  signal?.throwIfAborted();
  const rec = target.backend.createRecorder({ label: "train.optimizer" });
  recordOptimizerStep(rec, state, settings.optimizer, step);
  rec.submit();
  rec.destroy();
  const [sumSquares] = await readF32(target.backend, state.sumSquares);
  return { loss, accuracy, gradNorm: Math.sqrt(sumSquares) };
}

/** Options of {@linkcode evaluateLora}. */
export interface EvaluateLoraOptions
  extends
    Pick<TrainLoraOptions, "levels" | "maskingProbability" | "maskingRatio" | "maxRows" | "seed"> {
  /** The LoRA (a `lora.sft`, e.g. `TrainedLora.toFile()`); absent or null: the base model. */
  lora?: Uint8Array | null;
  /** Utterances prompts are drawn from (the training set). Default: `utterances` themselves. */
  pool?: readonly Utterance[];
}

/**
 * The loss of a LoRA (or of the base model) on utterances, with the items a training run would
 * draw for them under a fixed seed: mean over the items of each item's mean cross-entropy, as
 * `TrainProgress.evalLoss` reports it. Compares LoRAs on held-out clips.
 *
 * @param model The model, without an active LoRA.
 * @param utterances The utterances scored.
 * @param options The LoRA, the prompt pool and the item decisions.
 * @returns The loss.
 * @throws {OptionError} No utterances, options out of range, or a LoRA active on the model.
 * @throws {LoraError} A LoRA file without the default modules' factors of one rank.
 */
export function evaluateLora(
  model: ValleModel,
  utterances: readonly Utterance[],
  options: EvaluateLoraOptions = {},
): Promise<number> {
  return model.withBase("evaluate a LoRA", async (target) => {
    const st = options.lora ? parseSafetensors(options.lora, { source: "lora" }) : undefined;
    const file = st?.metadata.config ? JSON.parse(st.metadata.config) : {};
    const rank = st ? st.info(`model.layers.0.self_attn.q_proj.lora_A`).shape[0] : 1;
    const settings = checkOptions(target, utterances, { ...options, rank, alpha: file.alpha });
    const layout = loraLayout(target.config, rank, settings.alpha);
    const pool = options.pool ?? utterances;
    const capacity = options.maxRows ??
      defaultRows(target.config, layout, Math.max(...utterances.map(longestItemRows)));
    const state = createTrainState(target.backend, target.config, layout, capacity);
    try {
      await target.backend.warm(trainKernelUses(target.backend, target.weights));
      if (st) writeTensor(target.backend, state.params, readLora(layout, st));
      return await evaluate(
        { target, state, layout, settings, utterances: pool, tokens: 0 },
        utterances,
      );
    } finally {
      destroyTensors(state);
    }
  });
}

/** The checked settings of a run. */
interface Settings {
  rank: number;
  alpha: number;
  steps: number;
  batchSize: number;
  levels: readonly number[];
  maskingProbability: number;
  maskingRatio: number;
  loraDropout: number;
  seed: number;
  evaluateEvery: number;
  checkpointEvery: number;
  optimizer: OptimizerSettings;
  sequence: { rule: EmbeddingRule; includeLanguage: boolean };
}

function checkOptions(
  target: ValleBase,
  utterances: readonly Utterance[],
  options: TrainLoraOptions,
): Settings {
  const { config } = target;
  if (utterances.length === 0) throw new OptionError("Cannot train a LoRA on no utterances");
  const count = (name: string, value: number | undefined, fallback: number, min = 1): number => {
    const v = value ?? fallback;
    if (!Number.isInteger(v) || v < min) {
      throw new OptionError(`${name} is ${v}, expected an integer of at least ${min}`);
    }
    return v;
  };
  const fraction = (name: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (!(v >= 0 && v <= 1)) throw new OptionError(`${name} is ${v}, expected 0..1`);
    return v;
  };
  const positive = (name: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (!(Number.isFinite(v) && v > 0)) {
      throw new OptionError(`${name} is ${v}, expected a positive number`);
    }
    return v;
  };
  const rank = count("rank", options.rank, 128);
  const levels = options.levels ?? LORA_LEVEL_URN;
  if (
    levels.length === 0 ||
    levels.some((l) => !(Number.isInteger(l) && l >= 0 && l < config.nLevels))
  ) {
    throw new OptionError(
      `levels is [${levels}], expected a non-empty list of levels 0..${config.nLevels - 1}`,
    );
  }
  return {
    rank,
    alpha: positive("alpha", options.alpha, rank),
    steps: count("steps", options.steps, 250),
    batchSize: Math.min(count("batchSize", options.batchSize, 8), utterances.length),
    levels,
    maskingProbability: config.hasNarLen
      ? fraction("maskingProbability", options.maskingProbability, 0.5)
      : 0,
    maskingRatio: fraction("maskingRatio", options.maskingRatio, 0.8),
    loraDropout: dropoutRate(options.loraDropout),
    seed: count("seed", options.seed, 0, 0),
    evaluateEvery: count("evaluateEvery", options.evaluateEvery, 50),
    checkpointEvery: count("checkpointEvery", options.checkpointEvery, 50),
    optimizer: {
      learningRate: positive("learningRate", options.learningRate, 3.25e-4),
      beta1: 0.9,
      beta2: 0.96,
      eps: 1e-7,
      weightDecay: fraction("weightDecay", options.weightDecay, 0.01),
      maxGradNorm: positive("maxGradNorm", options.maxGradNorm, 1),
    },
    sequence: { rule: target.rule, includeLanguage: target.includeLanguage },
  };
}

/** The LoRA dropout option, checked. */
function dropoutRate(value: number | undefined): number {
  const p = value ?? 0.1;
  if (!(p >= 0 && p < 1)) throw new OptionError(`loraDropout is ${p}, expected [0, 1)`);
  return p;
}

/** A 32-bit seed for step `step` of a run seeded `seed`. */
function hash(seed: number, step: number): number {
  return Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(step + 1, 0xc2b2ae35);
}

/** The utterances of step `step`: consecutive slices of per-epoch shuffled orders. */
function batchIndices(count: number, settings: Settings, step: number): number[] {
  const out: number[] = [];
  for (let i = (step - 1) * settings.batchSize; out.length < settings.batchSize; i++) {
    const epoch = Math.floor(i / count);
    out.push(shuffled(count, hash(settings.seed, -1 - epoch))[i % count]);
  }
  return out;
}

/** 0..count-1 in a seeded random order (Fisher–Yates). */
function shuffled(count: number, seed: number): number[] {
  const random = mulberry32(seed);
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** One item for an utterance, with upstream's per-item decisions. */
function drawItem(
  u: Utterance,
  pool: readonly Utterance[],
  random: () => number,
  settings: Settings,
  config: ValleConfig,
): TrainingItem {
  const level = settings.levels[Math.floor(random() * settings.levels.length)];
  const masked = level === 0 && random() < settings.maskingProbability;
  const response = { data: u.codes, frames: u.frames, levels: u.levels };
  const prompt = samplePrompt(u, pool, { random });
  const common = { phonemes: u.phonemes, language: u.languageId, prompt, response };
  if (level > 0) return { ...common, kind: "nar", level };
  if (!masked || !config.hasNarLen) return { ...common, kind: "ar" };
  const mask = Array.from({ length: u.frames }, () => random() < settings.maskingRatio);
  return { ...common, kind: "nar-len", mask };
}

/** Rows the longest item of an utterance can take (an AR item with the longest prompt). */
function longestItemRows(u: Utterance): number {
  // phn S lang S rvq S prom S resp(+stop): 6 separators and single rows, the prompt at most 6 s.
  return u.phonemes.length + 6 + 6 * 75 + u.frames + 1;
}

/** The most rows that fit the memory budget, at least the longest item's. */
function defaultRows(config: ValleConfig, layout: LoraLayout, longest: number): number {
  let rows = DEFAULT_MAX_ROWS;
  while (rows > longest && trainStateBytes(config, layout, rows) > MEMORY_BUDGET) rows -= 128;
  return Math.max(rows, longest);
}

/** Items grouped greedily into micro-batches of at most `capacity` rows. */
function microBatches(
  target: ValleBase,
  items: readonly TrainingItem[],
  capacity: number,
  settings: Settings,
): TrainingItem[][] {
  const groups: TrainingItem[][] = [];
  let [group, rows] = [[] as TrainingItem[], 0];
  for (const item of items) {
    const n = packBatch(target.config, target.weights.layout, [item], settings.sequence).rows;
    if (rows + n > capacity && group.length > 0) {
      groups.push(group);
      [group, rows] = [[], 0];
    }
    group.push(item);
    rows += n;
  }
  groups.push(group);
  return groups;
}

/** Records and runs one micro-batch (with or without its backward pass) and reads its loss. */
async function runBatch(
  target: ValleBase,
  state: TrainState,
  layout: LoraLayout,
  batch: PackedBatch,
  options: StepOptions,
) {
  const { backend } = target;
  uploadBatch(backend, state, batch);
  const label = options.backward === false ? "train.eval" : "train.step";
  const rec = backend.createRecorder({ label });
  try {
    recordStep(rec, target, state, layout, batch, options);
    rec.submit();
  } finally {
    rec.destroy();
  }
  return batchLoss(batch, await readF32(backend, state.stats));
}

/**
 * The held-out loss: every evaluation utterance once, with the draws of a fixed seed and prompts
 * from the training utterances.
 */
async function evaluate(run: Run, heldOut: readonly Utterance[]): Promise<number> {
  const { target, state, layout, settings } = run;
  const random = mulberry32(hash(settings.seed, 0));
  const items = heldOut.map((u) => drawItem(u, run.utterances, random, settings, target.config));
  let loss = 0;
  for (const group of microBatches(target, items, state.capacity, settings)) {
    const batch = packBatch(target.config, target.weights.layout, group, settings.sequence);
    loss += (await runBatch(target, state, layout, batch, { backward: false })).loss * group.length;
  }
  return loss / items.length;
}

/** The format name of a checkpoint's metadata. */
const CHECKPOINT_FORMAT = "valle-lora-checkpoint-1";

/** The LoRA, the AdamW moments and the step, with the run's settings. */
async function checkpoint(
  backend: Backend,
  state: TrainState,
  layout: LoraLayout,
  step: number,
  settings: Settings,
): Promise<Uint8Array<ArrayBuffer>> {
  const [params, m1, m2] = await Promise.all(
    [state.params, state.m1, state.m2].map((t) => readF32(backend, t)),
  );
  const flat = (data: Float32Array) => ({ dtype: "F32" as const, shape: [layout.size], data });
  return serializeSafetensors(
    { params: flat(params), "adam.m": flat(m1), "adam.v": flat(m2) },
    {
      format: CHECKPOINT_FORMAT,
      run: JSON.stringify({ step, rank: layout.rank, alpha: layout.alpha, seed: settings.seed }),
    },
  );
}

/** Loads a checkpoint into the state and returns its step. */
function restore(
  backend: Backend,
  state: TrainState,
  layout: LoraLayout,
  bytes: Uint8Array,
  settings: Settings,
): number {
  const st = parseSafetensors(bytes, { source: "checkpoint" });
  if (st.metadata.format !== CHECKPOINT_FORMAT) {
    throw new OptionError(
      `Cannot resume: the file's format is ${JSON.stringify(st.metadata.format)}, expected ` +
        `a ${CHECKPOINT_FORMAT} checkpoint (onCheckpoint's bytes)`,
    );
  }
  const run = JSON.parse(st.metadata.run);
  for (const key of ["rank", "alpha", "seed"] as const) {
    const mine = key === "seed" ? settings.seed : layout[key];
    if (run[key] !== mine) {
      throw new OptionError(
        `Cannot resume: the checkpoint's ${key} is ${run[key]}, this run's ${mine}`,
      );
    }
  }
  for (
    const [name, t] of [["params", state.params], ["adam.m", state.m1], [
      "adam.v",
      state.m2,
    ]] as const
  ) {
    const info = st.info(name);
    if (info.shape[0] !== layout.size) {
      throw new OptionError(
        `Cannot resume: the checkpoint's ${name} has ${
          info.shape[0]
        } values, this LoRA ${layout.size}`,
      );
    }
    writeTensor(backend, t, st.toFloat32(name));
  }
  return run.step;
}
