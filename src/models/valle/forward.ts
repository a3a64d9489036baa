/**
 * The LLaMA trunk of VALL-E, llama2.c style: plain functions that record the dispatches of one
 * pass over rows of the run state. A pass embeds its ids, runs every block (pre-norm attention
 * with RoPE and a gated GELU MLP, mirrors vall_e/models/arch/llama.py) and leaves the residual
 * stream in `state.x`; {@linkcode ./heads.ts} reads rows out. Keys and values are written into
 * the per-layer K/V buffers at the pass's position in the sequence, so the same code runs a full
 * (NAR) pass, a prefill and one decode step against the KV cache.
 *
 * This module is browser compatible.
 *
 * @module
 */

import {
  isQuantized,
  type KernelSpec,
  type Recorder,
  type Tensor,
} from "../../backends/backend.ts";
import { rows } from "../../backends/tensor.ts";
import { attention } from "../../ops/attention.ts";
import { embeddingSum } from "../../ops/embedding.ts";
import { gateUpGelu, normLinear, qkRope, qkvRope } from "../../ops/fused.ts";
import { geluMul, geluMulStacked } from "../../ops/mlp.ts";
import { rmsNorm } from "../../ops/norm.ts";
import { linear } from "../../ops/linear.ts";
import { rope, splitQkv } from "../../ops/rope.ts";
import { scatterRows } from "../../ops/scatter.ts";
import { expectDtype } from "../../ops/_check.ts";
import type { ValleConfig } from "./config.ts";
import type { OutputFeed } from "./inputs.ts";
import type { ValleRunState } from "./state.ts";
import type { ValleLayerWeights, ValleWeights } from "./weights.ts";
import type { OpKernel } from "../../ops/_kernels.ts";

/** What a pass needs from the model: its config and GPU weights. */
export interface ValleModelParts {
  /** Hyper-parameters. */
  readonly config: ValleConfig;
  /** GPU tensors. */
  readonly weights: ValleWeights;
}

/** One pass over consecutive sequence positions. */
export interface Pass {
  /** Sequence positions `[start, start + rows)` are computed; earlier ones come from the K/V buffers. */
  readonly start: number;
  /** Number of positions. */
  readonly rows: number;
  /** Causal or bidirectional attention over positions `[0, start + rows)`. */
  readonly causal: boolean;
  /** Embedding ids of the pass's rows (rows, nLevels) u32. */
  readonly ids: Tensor;
  /** Position ids of the pass's rows (rows) u32. */
  readonly positions: Tensor;
  /**
   * Packed rows of a batch: each query's span of keys (rows, 2) u32 (see `attention`), which
   * replaces the causal/bidirectional mask over `[0, start + rows)`.
   */
  readonly spans?: Tensor;
  /**
   * A batched decode step: the K/V rows computed at `[start, start + rows)` (a scratch block) are
   * moved to these rows of the cache (rows) u32 before attention, one region per batch row.
   */
  readonly kvRows?: Tensor;
}

const FEED_IDS: KernelSpec = {
  shader: "feed_ids",
  bindings: ["write", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The kernels the forward pass itself (besides its ops') may dispatch, for warming at load (`kernelUses`). */
export const FEED_KERNELS: readonly OpKernel[] = [{ spec: FEED_IDS }];

/**
 * Records the writing of embedding ids for `frames` consecutive rows from tokens on the GPU
 * (term k of frame t = `feed.base + k · feed.stride + tokens[feed.level0 + k][from + t]`).
 *
 * @param rec The recorder.
 * @param ids The rows to write, (frames, terms) u32 (a view of the ids buffer).
 * @param tokens Level-major tokens (levels, capacity) u32.
 * @param feed The output segment's tables.
 * @param from First frame of `tokens` to read.
 *
 * @example
 * ```ts ignore
 * feedIds(rec, rows(state.ids, seq.outputStart, 1), state.tokens, seq.feed, step - 1);
 * ```
 */
export function feedIds(
  rec: Recorder,
  ids: Tensor,
  tokens: Tensor,
  feed: OutputFeed,
  from: number,
): void {
  expectDtype("feedIds", "ids", ids, "u32");
  expectDtype("feedIds", "tokens", tokens, "u32");
  const [frames, terms] = ids.shape;
  const stride = tokens.shape[1];
  const params = [
    frames,
    feed.terms,
    terms,
    ids.offset,
    feed.base,
    feed.stride,
    tokens.offset + feed.level0 * stride + from,
    stride,
  ];
  rec.dispatch(FEED_IDS, [ids, tokens], params, [
    Math.ceil((frames * feed.terms) / 256),
  ]);
}

/**
 * Records one pass: embedding of `pass.ids` into `state.x` rows [0, rows), then every block.
 *
 * @param rec The recorder.
 * @param model Config and weights.
 * @param state The run state (`pass.start + pass.rows` must fit its capacity).
 * @param pass The rows, their ids/positions and the mask.
 *
 * @example
 * ```ts ignore
 * forward(rec, model, state, { start: 0, rows: n, causal: true, ids, positions });
 * ```
 */
export function forward(
  rec: Recorder,
  model: ValleModelParts,
  state: ValleRunState,
  pass: Pass,
): void {
  embeddingSum(rec, rows(state.x, 0, pass.rows), pass.ids, model.weights.embeddings);
  const every = layersPerSubmit(model.config, pass.rows);
  model.weights.layers.forEach((layer, l) => {
    block(rec, model.config, state, layer, l, pass);
    if ((l + 1) % every === 0 && l + 1 < model.config.nLayers) rec.submit();
  });
}

/**
 * The most arithmetic one submit of a pass may hold: 50 GFLOP, about 50 ms on a GPU sustaining
 * 1 TFLOP/s (an integrated one), so that no submit runs long enough to freeze a browser's other
 * GPU work or to trip a watchdog that loses the device.
 */
export const SUBMIT_FLOPS = 50e9;

/**
 * How many blocks of a pass over `count` rows go in one submit: all of them for decode steps,
 * one at a time for the longest passes (a 1,000-row NAR pass of the released model does ~34
 * GFLOP per block), so each submit holds at most {@linkcode SUBMIT_FLOPS} where a block allows.
 *
 * @param config The model.
 * @param count Rows of the pass (all rows of a batch).
 * @returns Between 1 and `config.nLayers`.
 *
 * @example
 * ```ts ignore
 * layersPerSubmit(config, 1); // 12: a decode step is one submit
 * ```
 */
export function layersPerSubmit(config: ValleConfig, count: number): number {
  const { dModel: d, dFf, nLayers } = config;
  // Projections and MLP (2 FLOPs per weight and row), then scores and weighted sums over at most
  // `count` keys per row.
  const perBlock = 2 * count * (4 * d * d + 3 * d * dFf) + 4 * count * count * d;
  return Math.max(1, Math.min(nLayers, Math.floor(SUBMIT_FLOPS / perBlock)));
}

/**
 * Whether a pass of `count` rows runs the fused decode kernels (one dispatch each for norm +
 * QKV + RoPE + KV append and norm + gate/up + GELU) instead of the plain op chain.
 */
export function fusedRows(config: ValleConfig, count: number): boolean {
  return count <= FUSED_MAX_ROWS && config.dModel % 4 === 0 && config.headDim % 2 === 0;
}

/**
 * Whether a block's projections fit the fused decode kernels over quantized weights: Q, K, gate
 * and up quantized (V is a norm + linear of its own, float or quantized).
 */
function quantizedDecode(w: ValleLayerWeights): boolean {
  return [w.qProj, w.kProj, w.gateProj, w.upProj].every((t) => isQuantized(t.dtype));
}

/** Rows up to which decode passes use the fused kernels (their GEMV limit). */
const FUSED_MAX_ROWS = 4;

/** One pre-norm LLaMA block over the pass's rows (mirrors arch/llama.py: LlamaDecoderLayer). */
function block(
  rec: Recorder,
  config: ValleConfig,
  state: ValleRunState,
  w: ValleLayerWeights,
  l: number,
  pass: Pass,
): void {
  const s = pass.rows;
  const x = rows(state.x, 0, s); // (S, d) residual
  const q = rows(state.q, 0, s); // (S, d)
  const att = rows(state.att, 0, s); // (S, d)
  const g = rows(state.g, 0, s); // (S, dFf)
  const heads = { heads: config.nHeads, headDim: config.headDim };
  const eps = config.rmsEps;
  const accumulate = { accumulate: true };

  if (fusedRows(config, s) && w.qkv && w.gateUp) {
    // Decode over float weights: 5 dispatches per block.
    qkvRope(rec, q, state.k[l], state.v[l], x, w.inputLayernorm, w.qkv, {
      heads: config.nHeads,
      eps,
      positions: pass.positions,
      table: state.rope,
      kvRow: pass.start,
    });
    scatterKv(rec, state, l, pass);
    attend(rec, config, state, l, pass, q, att);
    linear(rec, x, att, w.oProj, undefined, accumulate); // x += o_proj(att)
    gateUpGelu(rec, g, x, w.postAttentionLayernorm, w.gateUp, eps);
    linear(rec, x, g, w.downProj, undefined, accumulate); // x += down(gelu(gate) ⊙ up)
    return;
  }
  if (fusedRows(config, s) && quantizedDecode(w)) {
    // Decode over quantized projections: 6 dispatches per block (V a norm + linear of its own).
    const options = { heads: config.nHeads, eps, positions: pass.positions, table: state.rope };
    qkRope(rec, q, state.k[l], x, w.inputLayernorm, w.qProj, w.kProj, {
      ...options,
      kvRow: pass.start,
    });
    normLinear(rec, rows(state.v[l], pass.start, s), x, w.inputLayernorm, w.vProj, { eps });
    scatterKv(rec, state, l, pass);
    attend(rec, config, state, l, pass, q, att);
    linear(rec, x, att, w.oProj, undefined, accumulate);
    gateUpGelu(rec, g, x, w.postAttentionLayernorm, [w.gateProj, w.upProj], eps);
    linear(rec, x, g, w.downProj, undefined, accumulate);
    return;
  }

  const h = rows(state.h, 0, s); // (S, d)
  const k = rows(state.k[l], pass.start, s); // (S, d) inside the cache
  const v = rows(state.v[l], pass.start, s);
  rmsNorm(rec, h, x, w.inputLayernorm, eps);
  if (w.qkv) {
    // One GEMM over the stacked weights, then RoPE and the split into q and the cache rows.
    const qkv = stackedRows(state, s, 3 * config.dModel);
    linear(rec, qkv, h, w.qkv);
    splitQkv(rec, q, k, v, qkv, pass.positions, state.rope, heads);
  } else {
    linear(rec, q, h, w.qProj);
    linear(rec, k, h, w.kProj);
    linear(rec, v, h, w.vProj);
    rope(rec, q, pass.positions, state.rope, heads);
    rope(rec, k, pass.positions, state.rope, heads);
  }
  scatterKv(rec, state, l, pass);
  attend(rec, config, state, l, pass, q, att);
  linear(rec, x, att, w.oProj, undefined, accumulate);

  rmsNorm(rec, h, x, w.postAttentionLayernorm, eps);
  if (w.gateUp) {
    const gateUp = stackedRows(state, s, 2 * config.dFf);
    linear(rec, gateUp, h, w.gateUp);
    geluMulStacked(rec, g, gateUp);
  } else {
    const up = stackedRows(state, s, config.dFf);
    linear(rec, g, h, w.gateProj);
    linear(rec, up, h, w.upProj);
    geluMul(rec, g, up);
  }
  linear(rec, x, g, w.downProj, undefined, accumulate);
}

/** The first `count` rows of `columns` each in the stacked projection outputs. */
function stackedRows(state: ValleRunState, count: number, columns: number): Tensor {
  return { ...state.stacked, shape: [count, columns], offset: 0 };
}

/** A batched step's K/V rows from the scratch block to each batch row's cache region. */
function scatterKv(rec: Recorder, state: ValleRunState, l: number, pass: Pass): void {
  if (!pass.kvRows) return;
  for (const cache of [state.k[l], state.v[l]]) {
    scatterRows(rec, rows(cache, 0, pass.start), rows(cache, pass.start, pass.rows), pass.kvRows);
  }
}

/**
 * Attention of the pass's queries over the cache rows up to the pass's end (or their spans).
 * Decode steps (causal passes of a few rows, or a batch's step) split their keys over workgroups
 * on WebGPU; a batch's prefill rows take the same schedule as the row alone, since both are
 * causal passes of the same rows.
 */
function attend(
  rec: Recorder,
  config: ValleConfig,
  state: ValleRunState,
  l: number,
  pass: Pass,
  q: Tensor,
  att: Tensor,
): void {
  attention(rec, att, q, state.k[l], state.v[l], {
    heads: config.nHeads,
    headDim: config.headDim,
    kvLen: pass.start + pass.rows,
    causal: pass.causal,
    qStart: pass.start,
    spans: pass.spans,
    partials: pass.causal && (pass.kvRows !== undefined || pass.rows <= FUSED_MAX_ROWS)
      ? state.attentionPartials
      : undefined,
  });
}
