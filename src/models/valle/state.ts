/**
 * The run state of a VALL-E model (llama2.c's `RunState`): every activation, KV cache, id,
 * logit, token and sampler buffer, allocated once for a capacity of sequence positions. The
 * generation loops only record dispatches over views of these buffers, so nothing is created
 * inside them; {@linkcode ensureCapacity} reallocates (before a loop) when a request needs more,
 * after {@linkcode checkRunState} has checked the new size against the backend's limits.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Tensor } from "../../backends/backend.ts";
import { OptionError } from "../../errors.ts";
import { createTensor, destroyTensors } from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { attentionPartialsSize } from "../../ops/attention.ts";
import { createRopeTable } from "../../ops/rope.ts";
import { CFG_STATS_WORDS } from "./cfg.ts";
import type { ValleConfig } from "./config.ts";

/** Preallocated GPU buffers for sequences of up to `capacity` positions. */
export interface ValleRunState {
  /** Sequence positions every buffer holds. */
  readonly capacity: number;
  /** Widest head (columns of the logit buffers). */
  readonly vocab: number;
  /** Residual stream (capacity, d). */
  readonly x: Tensor;
  /** Normed activations (capacity, d). */
  readonly h: Tensor;
  /** Queries (capacity, d). */
  readonly q: Tensor;
  /** Attention output (capacity, d). */
  readonly att: Tensor;
  /** MLP activation gelu(gate) ⊙ up, the down projection's input (capacity, dFf). */
  readonly g: Tensor;
  /**
   * Stacked projection outputs (capacity, {@linkcode stackedColumns}): a full pass's Q | K | V
   * rows before RoPE, then its gate | up rows before the GELU gate (one GEMM each over the
   * stacked weights); the up rows (capacity, dFf) where the projections are apart.
   */
  readonly stacked: Tensor;
  /** Keys per layer (capacity, d): the KV cache of decode loops, plain K of full passes. */
  readonly k: readonly Tensor[];
  /** Values per layer (capacity, d). */
  readonly v: readonly Tensor[];
  /** Embedding row ids of the conditional sequence (capacity, nLevels) u32. */
  readonly ids: Tensor;
  /** Position ids of the conditional sequence (capacity) u32. */
  readonly positions: Tensor;
  /** Embedding row ids of the CFG null sequence (capacity, nLevels) u32. */
  readonly nullIds: Tensor;
  /** Position ids of the CFG null sequence (capacity) u32. */
  readonly nullPositions: Tensor;
  /** Logits (capacity, vocab) followed by the sampler's working rows (capacity, vocab). */
  readonly logits: Tensor;
  /** Logits of the CFG null pass (capacity, vocab). */
  readonly nullLogits: Tensor;
  /** Tokens per RVQ level, level-major (nLevels, capacity) u32: generated and fed codes. */
  readonly tokens: Tensor;
  /** Scratch tokens (2, capacity) u32: NAR-len samples and the scoring call's argmax. */
  readonly scratch: Tensor;
  /** Per-row sampler scores (2, capacity) f32: row 0 kept (NAR-len scores), row 1 scratch. */
  readonly scores: Tensor;
  /** NAR-len masked flags (capacity) u32. */
  readonly masked: Tensor;
  /** Repetition-penalty divisors by distance (capacity + 1) f32. */
  readonly penalties: Tensor;
  /**
   * CFG statistics ({@linkcode CFG_STATS_WORDS}) f32: mean/std of cond and of the unscaled guided
   * logits, factor, then the reductions' partial sums.
   */
  readonly cfgStats: Tensor;
  /** RoPE cos/sin for positions 0..capacity-1. */
  readonly rope: Tensor;
  /** Batched calls' per-row tables (10 · capacity) u32: attention spans, KV rows, positions. */
  readonly tables: Tensor;
  /** Partial results of split decoding (WebGPU decode steps' attention), f32. */
  readonly attentionPartials: Tensor;
}

/**
 * Allocates the run state.
 *
 * @param backend The device.
 * @param config The model config.
 * @param capacity Sequence positions to hold (prompt, phonemes, separators and response).
 * @returns The buffers.
 * @throws {OptionError} When they would not fit the backend ({@linkcode checkRunState}).
 *
 * @example
 * ```ts ignore
 * const state = createRunState(backend, config, 2048);
 * ```
 */
export function createRunState(
  backend: Backend,
  config: ValleConfig,
  capacity: number,
): ValleRunState {
  checkRunState(backend, config, capacity);
  const { dModel: d, dFf, nLayers, nLevels } = config;
  const vocab = logitColumns(config);
  const f32 = (shape: number[], label: string) =>
    createTensor(backend, shape, "f32", `valle.state.${label}`);
  const u32 = (shape: number[], label: string) =>
    createTensor(backend, shape, "u32", `valle.state.${label}`);
  return {
    capacity,
    vocab,
    x: f32([capacity, d], "x"),
    h: f32([capacity, d], "h"),
    q: f32([capacity, d], "q"),
    att: f32([capacity, d], "att"),
    g: f32([capacity, dFf], "g"),
    stacked: f32([capacity, stackedColumns(config)], "stacked"),
    k: Array.from({ length: nLayers }, (_, l) => f32([capacity, d], `k.${l}`)),
    v: Array.from({ length: nLayers }, (_, l) => f32([capacity, d], `v.${l}`)),
    ids: u32([capacity, nLevels], "ids"),
    positions: u32([capacity], "positions"),
    nullIds: u32([capacity, nLevels], "null_ids"),
    nullPositions: u32([capacity], "null_positions"),
    logits: f32([2 * capacity, vocab], "logits"),
    nullLogits: f32([capacity, vocab], "null_logits"),
    tokens: u32([nLevels, capacity], "tokens"),
    scratch: u32([2, capacity], "scratch"),
    scores: f32([2, capacity], "scores"),
    masked: u32([capacity], "masked"),
    penalties: f32([capacity + 1], "penalties"),
    cfgStats: f32([CFG_STATS_WORDS], "cfg_stats"),
    rope: createRopeTable(backend, config.headDim, config.ropeTheta, capacity),
    tables: u32([10 * capacity], "tables"),
    attentionPartials: f32(
      [attentionPartialsSize(config.nHeads, config.headDim)],
      "attention_partials",
    ),
  };
}

/**
 * Bytes a run state of `capacity` positions takes (every buffer of {@linkcode createRunState}).
 *
 * @example
 * ```ts ignore
 * const rows = Math.floor(budget / runStateBytes(config, positionsPerRow));
 * ```
 */
export function runStateBytes(config: ValleConfig, capacity: number): number {
  const { dModel: d, dFf, nLayers, nLevels } = config;
  const vocab = logitColumns(config);
  // x, h, q, att; g, stacked; K and V per layer; logits (2 rows) and null logits; tokens, ids,
  // positions (both slots); scratch, scores, masked, penalties; batch tables; the rotary table.
  const words = 4 * d + dFf + stackedColumns(config) + 2 * nLayers * d + 3 * vocab +
    3 * nLevels + 2 + 2 + 2 + 1 + 1 + 10 + config.headDim;
  // The penalties' extra row, the CFG statistics and the split decoding's partials.
  const fixed = 1 + CFG_STATS_WORDS + attentionPartialsSize(config.nHeads, config.headDim);
  return 4 * (words * capacity + fixed);
}

/** Run-state bytes WebGPU may take: it says nothing of a device's memory, so a fixed budget. */
export const GPU_RUN_STATE_BUDGET_BYTES = 4 * 2 ** 30;

/** Bytes the CPU backend's 32-bit WebAssembly memory can address. */
const WASM_MEMORY_BYTES = 2 ** 32;

/**
 * Columns of the stacked projection outputs: Q | K | V (3d) or gate | up (2 · dFf), whichever is
 * wider.
 */
export function stackedColumns(config: ValleConfig): number {
  return Math.max(3 * config.dModel, 2 * config.dFf);
}

/** Columns of the logit buffers: the widest head. */
function logitColumns(config: ValleConfig): number {
  return Math.max(config.nAudio + 1, config.nPhn, config.nLen);
}

/**
 * The largest buffer of a run state of `capacity` positions, in bytes, and its name (what the
 * binding limit bounds).
 *
 * @example
 * ```ts ignore
 * const rows = Math.floor(backend.maxBindingBytes / largestRunStateBuffer(config, positions).bytes);
 * ```
 */
export function largestRunStateBuffer(
  config: ValleConfig,
  capacity: number,
): { label: string; bytes: number } {
  const vocab = logitColumns(config);
  // Every other buffer is at most d or dFf wide, narrower than the stacked outputs.
  const perPosition = [
    { label: "logits", words: 2 * vocab },
    { label: "stacked", words: stackedColumns(config) },
  ];
  const widest = perPosition.reduce((a, b) => b.words > a.words ? b : a);
  return { label: `valle.state.${widest.label}`, bytes: 4 * widest.words * capacity };
}

/**
 * Checks that a run state of `capacity` positions fits the backend before anything is allocated:
 * every buffer within the binding limit (`maxStorageBufferBindingSize`/`maxBufferSize` on WebGPU)
 * and the whole within the memory it may take ({@linkcode GPU_RUN_STATE_BUDGET_BYTES} on WebGPU;
 * what the CPU backend's 4 GiB WebAssembly memory has left).
 *
 * @param backend The device.
 * @param config The model.
 * @param capacity Sequence positions asked for (all rows of a batch together).
 * @param freed Bytes that will be freed first (the run state being replaced).
 * @throws {OptionError} Naming the buffer or the total, the limit, and the options that lower it.
 */
export function checkRunState(
  backend: Backend,
  config: ValleConfig,
  capacity: number,
  freed = 0,
): void {
  const lower =
    "generate fewer positions at once: a smaller batchSize (rows generated together), " +
    "a smaller maxSeconds, or a shorter reference clip or text";
  const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  const largest = largestRunStateBuffer(config, capacity);
  if (largest.bytes > backend.maxBindingBytes) {
    throw new OptionError(
      `Cannot hold ${capacity} sequence positions on ${backend.description}: buffer ` +
        `"${largest.label}" would take ${mb(largest.bytes)}, over the device's limit of ` +
        `${mb(backend.maxBindingBytes)} per buffer; ${lower}`,
    );
  }
  const total = runStateBytes(config, capacity);
  const budget = backend.kind === "cpu"
    ? WASM_MEMORY_BYTES - (backend.memory.current - freed)
    : GPU_RUN_STATE_BUDGET_BYTES;
  if (total > budget) {
    const what = backend.kind === "cpu"
      ? "what the CPU backend's 4 GiB WebAssembly memory has left beside the weights"
      : "the run-state budget of WebGPU";
    throw new OptionError(
      `Cannot hold ${capacity} sequence positions on ${backend.description}: the run state ` +
        `would take ${mb(total)}, over ${what} (${mb(budget)}); ${lower}`,
    );
  }
}

/** Frees every buffer of a run state. */
export function destroyRunState(state: ValleRunState): void {
  destroyTensors(state);
}

/**
 * Returns `state` when it holds `positions`, else frees it and allocates a larger one (capacity
 * rounded up to a multiple of 256). Call before recording a loop, never inside one.
 *
 * @example
 * ```ts ignore
 * state = ensureCapacity(backend, config, state, seq.length + maxSteps);
 * ```
 */
export function ensureCapacity(
  backend: Backend,
  config: ValleConfig,
  state: ValleRunState,
  positions: number,
): ValleRunState {
  if (positions <= state.capacity) return state;
  const freed = runStateBytes(config, state.capacity);
  // Rounded up to share the state between requests of similar length, unless only the exact
  // size fits; checked before the old state is freed, so a refusal leaves it usable.
  let capacity = Math.ceil(positions / 256) * 256;
  try {
    checkRunState(backend, config, capacity, freed);
  } catch {
    capacity = positions;
    checkRunState(backend, config, capacity, freed);
  }
  destroyRunState(state);
  return createRunState(backend, config, capacity);
}
