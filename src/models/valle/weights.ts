/**
 * The VALL-E weight table: every checkpoint key the model runs on, with its expected shape, in one
 * template table; checking a file against it (all problems reported at once); and uploading it to
 * the GPU, as float or quantized per `dtype` (the policy of `quant_policy.ts`). The embedding
 * tables are stacked into one buffer so that any input sequence, whatever its segments and summed
 * RVQ levels, is one `embeddingSum` dispatch over absolute row ids.
 *
 * Keys are used verbatim. Unknown keys (`dropout_token`, `tasks_emb`, `tones_emb`,
 * `model.embed_tokens`, `raw_text_emb`, rotary buffers, …) are ignored.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { type WeightProblem, WeightsError } from "../../errors.ts";
import type { QuantDtype, Tensor } from "../../backends/backend.ts";
import {
  createTensor,
  destroyTensors,
  reshape,
  rows,
  UploadPacer,
  writeTensor,
} from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { CpuBackend, createCpuBackend } from "../../backends/cpu/backend.ts";
import { quantizeOnCpu } from "../../quant/cpu.ts";
import { GGUF_TYPE, quantizeBlocks, toDeviceWords } from "../../quant/device.ts";
import type { ValleCheckpoint } from "./checkpoint.ts";
import { deriveValleConfig, type ValleConfig, valleHeads } from "./config.ts";
import { type MatrixRole, quantLayout, type ValleDtype } from "./quant_policy.ts";

/** The tensors of one transformer block (names: the last segments of the checkpoint key). */
export interface ValleLayerWeights {
  /** `model.layers.{l}.input_layernorm.weight` (d) */
  readonly inputLayernorm: Tensor;
  /** `model.layers.{l}.self_attn.q_proj.weight` (d, d) */
  readonly qProj: Tensor;
  /** `model.layers.{l}.self_attn.k_proj.weight` (d, d) */
  readonly kProj: Tensor;
  /** `model.layers.{l}.self_attn.v_proj.weight` (d, d) */
  readonly vProj: Tensor;
  /** `model.layers.{l}.self_attn.o_proj.weight` (d, d) */
  readonly oProj: Tensor;
  /** `model.layers.{l}.post_attention_layernorm.weight` (d) */
  readonly postAttentionLayernorm: Tensor;
  /** `model.layers.{l}.mlp.gate_proj.weight` (dFf, d) */
  readonly gateProj: Tensor;
  /** `model.layers.{l}.mlp.up_proj.weight` (dFf, d) */
  readonly upProj: Tensor;
  /** `model.layers.{l}.mlp.down_proj.weight` (d, dFf) */
  readonly downProj: Tensor;
  /**
   * Q, K and V projections stacked (3d, d): `qProj`, `kProj`, `vProj` are views of it, which the
   * fused decode kernels and a full pass's one GEMM read. Absent when any of them is quantized
   * (those read float weights).
   */
  readonly qkv?: Tensor;
  /** Gate and up projections stacked (2·dFf, d), views as for `qkv`; absent when quantized. */
  readonly gateUp?: Tensor;
}

/** The fields of {@linkcode ValleLayerWeights} that are checkpoint tensors. */
type LayerTensor = Exclude<keyof ValleLayerWeights, "qkv" | "gateUp">;

/** One output head `classifiers.proj.{n}`. */
export interface ValleHeadWeights {
  /** (outputs, d) */
  readonly weight: Tensor;
  /** (outputs), absent when the model has no classifier biases. */
  readonly bias?: Tensor;
}

/** Where each embedding table starts inside the stacked table (row offsets). */
export interface ValleTableLayout {
  /** `text_emb` (phonemes). */
  readonly phn: number;
  /** `langs_emb`. */
  readonly lang: number;
  /** `rvq_l_emb`. */
  readonly rvq: number;
  /** `len_emb` (-1 without the len layout). */
  readonly len: number;
  /** The `sep` vector (one row). */
  readonly sep: number;
  /** `proms_emb.embeddings.{k}`, per RVQ level k. */
  readonly prom: readonly number[];
  /** `resps_emb.embeddings.{k}`, per table k. */
  readonly resp: readonly number[];
  /** Total rows. */
  readonly rows: number;
}

/** The model's tensors on the GPU. */
export interface ValleWeights {
  /** Every embedding table stacked: (layout.rows, d), f16, f32 or q8_0. */
  readonly embeddings: Tensor;
  /** Row offsets of each table inside `embeddings`. */
  readonly layout: ValleTableLayout;
  /** The transformer blocks. */
  readonly layers: readonly ValleLayerWeights[];
  /** `model.norm.weight` (d) */
  readonly norm: Tensor;
  /** `classifiers.proj.{n}` by index (see `valleHeads`). */
  readonly heads: readonly ValleHeadWeights[];
}

/** A template: checkpoint key and expected shape for a config and an index. */
interface Entry {
  readonly key: string;
  readonly shape: readonly number[];
}

/** The keys of one block, by field, with their shapes. */
const LAYER_TEMPLATE: Readonly<Record<LayerTensor, (l: number, c: ValleConfig) => Entry>> = {
  inputLayernorm: (l, c) => ({
    key: `model.layers.${l}.input_layernorm.weight`,
    shape: [c.dModel],
  }),
  qProj: (l, c) => ({
    key: `model.layers.${l}.self_attn.q_proj.weight`,
    shape: [c.dModel, c.dModel],
  }),
  kProj: (l, c) => ({
    key: `model.layers.${l}.self_attn.k_proj.weight`,
    shape: [c.dModel, c.dModel],
  }),
  vProj: (l, c) => ({
    key: `model.layers.${l}.self_attn.v_proj.weight`,
    shape: [c.dModel, c.dModel],
  }),
  oProj: (l, c) => ({
    key: `model.layers.${l}.self_attn.o_proj.weight`,
    shape: [c.dModel, c.dModel],
  }),
  postAttentionLayernorm: (l, c) => ({
    key: `model.layers.${l}.post_attention_layernorm.weight`,
    shape: [c.dModel],
  }),
  gateProj: (l, c) => ({ key: `model.layers.${l}.mlp.gate_proj.weight`, shape: [c.dFf, c.dModel] }),
  upProj: (l, c) => ({ key: `model.layers.${l}.mlp.up_proj.weight`, shape: [c.dFf, c.dModel] }),
  downProj: (l, c) => ({ key: `model.layers.${l}.mlp.down_proj.weight`, shape: [c.dModel, c.dFf] }),
};

/** The embedding tables in stacking order, with their row counts. */
function tableEntries(c: ValleConfig): { role: string; entry: Entry }[] {
  const d = c.dModel;
  const out = [
    { role: "phn", entry: { key: "text_emb.weight", shape: [c.nPhn, d] } },
    { role: "lang", entry: { key: "langs_emb.weight", shape: [c.nLangs, d] } },
    { role: "rvq", entry: { key: "rvq_l_emb.weight", shape: [c.nLevels, d] } },
  ];
  if (c.hasNarLen) out.push({ role: "len", entry: { key: "len_emb.weight", shape: [c.nLen, d] } });
  out.push({ role: "sep", entry: { key: "sep", shape: [d] } });
  for (let k = 0; k < c.nLevels; k++) {
    out.push({
      role: "prom",
      entry: { key: `proms_emb.embeddings.${k}.weight`, shape: [c.nAudio, d] },
    });
  }
  const nResp = c.nLevels + (c.hasNarLen ? 1 : 0);
  for (let k = 0; k < nResp; k++) {
    // AR:0:0 has the stop row, NAR:0:0 the mask row; NAR:k-1:k tables have neither.
    const rows = k === 0 || k === c.nLevels ? c.nAudio + 1 : c.nAudio;
    out.push({
      role: "resp",
      entry: { key: `resps_emb.embeddings.${k}.weight`, shape: [rows, d] },
    });
  }
  return out;
}

/**
 * Where each embedding table starts in the stacked table (stacking order: phonemes, languages,
 * RVQ levels, duration digits, sep, prompt tables, response tables).
 *
 * @example
 * ```ts ignore
 * const layout = valleTableLayout(config);
 * const stopRow = layout.resp[0] + config.nAudio;
 * ```
 */
export function valleTableLayout(config: ValleConfig): ValleTableLayout {
  const starts: Record<string, number[]> = {};
  let rows = 0;
  for (const { role, entry } of tableEntries(config)) {
    (starts[role] ??= []).push(rows);
    rows += entry.shape.length === 1 ? 1 : entry.shape[0];
  }
  return {
    phn: starts.phn[0],
    lang: starts.lang[0],
    rvq: starts.rvq[0],
    len: starts.len?.[0] ?? -1,
    sep: starts.sep[0],
    prom: starts.prom,
    resp: starts.resp,
    rows,
  };
}

/** The heads of the layout with their output counts. */
function headEntries(c: ValleConfig): { weight: Entry; bias?: Entry }[] {
  const heads = valleHeads(c);
  const outputs: number[] = [];
  for (let n = 0; n < heads.count; n++) {
    if (n === heads.ar) outputs.push(c.nAudio + 1);
    else if (n === heads.stt) outputs.push(c.nPhn);
    else if (n === heads.len) outputs.push(c.nLen);
    else outputs.push(c.nAudio); // NAR levels and NAR-len
  }
  return outputs.map((rows, n) => ({
    weight: { key: `classifiers.proj.${n}.weight`, shape: [rows, c.dModel] },
    bias: c.classifiersBias ? { key: `classifiers.proj.${n}.bias`, shape: [rows] } : undefined,
  }));
}

/** Every entry the model needs, for checking. */
function allEntries(c: ValleConfig): Entry[] {
  const entries = tableEntries(c).map((t) => t.entry);
  for (let l = 0; l < c.nLayers; l++) {
    for (const template of Object.values(LAYER_TEMPLATE)) entries.push(template(l, c));
  }
  entries.push({ key: "model.norm.weight", shape: [c.dModel] });
  for (const head of headEntries(c)) {
    entries.push(head.weight);
    if (head.bias) entries.push(head.bias);
  }
  return entries;
}

/** The dtypes a weight may be stored in (converted on upload). */
export const FLOAT_DTYPES: readonly string[] = ["F32", "F16", "BF16", "F64"];

/** The quantized block types a matrix may be stored in (a GGUF; `src/quant/FORMATS.md`). */
const BLOCK_DTYPES: readonly string[] = ["Q8_0", "Q4_K"];

/** Whether two shapes are the same. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A shape as messages write it, e.g. `[1024, 4096]`. */
export function showShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Appends a problem for every missing or mis-shaped entry, or one stored in a wrong type. */
function checkEntries(
  st: ValleCheckpoint,
  entries: readonly Entry[],
  problems: WeightProblem[],
): void {
  for (const { key, shape } of entries) {
    if (!st.has(key)) {
      problems.push({ tensor: key, expected: showShape(shape), found: "missing" });
      continue;
    }
    const info = st.info(key);
    const found = info.shape;
    const blocks = roleOf(key) !== undefined && BLOCK_DTYPES.includes(info.dtype);
    if (!sameShape(found, shape)) {
      problems.push({ tensor: key, expected: showShape(shape), found: showShape(found) });
    } else if (!FLOAT_DTYPES.includes(info.dtype) && !blocks) {
      const expected = roleOf(key) === undefined
        ? "a float dtype (norms and biases are never quantized)"
        : "a float dtype, Q8_0 or Q4_K";
      problems.push({ tensor: key, expected, found: info.dtype });
    }
  }
}

/** The policy role of a checkpoint key, or undefined for a vector that stays float. */
function roleOf(key: string): MatrixRole | undefined {
  if (key.endsWith(".v_proj.weight")) return "v_proj";
  if (/\.(q_proj|k_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$/.test(key)) {
    return "projection";
  }
  if (/^classifiers\.proj\.\d+\.weight$/.test(key)) return "head";
  if (key === "sep" || /_emb(\.embeddings\.\d+)?\.weight$/.test(key)) return "table";
  return undefined;
}

/**
 * Checks a VALL-E weight file: the config and every core tensor's presence and shape.
 *
 * @param st The parsed weight file.
 * @returns The config, when everything is in order.
 * @throws {WeightsError} Listing every problem at once (tensor name, expected shape, found).
 *
 * @example
 * ```ts ignore
 * const config = checkValleWeights(await readSafetensors("model.sft"));
 * ```
 */
export function checkValleWeights(st: ValleCheckpoint): ValleConfig {
  const problems: WeightProblem[] = [];
  const config = deriveValleConfig(st, problems);
  if (config.dModel > 0 && config.nLayers > 0 && config.nLevels >= 2) {
    checkEntries(st, allEntries(config), problems);
  }
  if (problems.length > 0) throw new WeightsError(st.source, problems);
  return config;
}

/** Where one tensor goes: its checkpoint shape and device layout (undefined: float). */
export interface StoragePlanEntry {
  /** The checkpoint shape. */
  readonly shape: readonly number[];
  /** The quantized layout, or undefined for float. */
  readonly layout?: QuantDtype;
}

/**
 * How each tensor the model reads is stored under `dtype`, in checkpoint order: quantized per the
 * policy (`q8`, `q4`), all float (`f16`, `f32`), or as the file stores it (undefined: quantized
 * GGUF tensors keep their type where the device layout takes their rows). The embedding tables
 * share one layout (the stacked table's), that of `text_emb.weight`.
 *
 * @example
 * ```ts ignore
 * const plan = planValleStorage(st, checkValleWeights(st), "q4");
 * plan.get("model.layers.0.mlp.up_proj.weight")?.layout; // "q4_k"
 * ```
 */
export function planValleStorage(
  st: ValleCheckpoint,
  config: ValleConfig,
  dtype?: ValleDtype,
): Map<string, StoragePlanEntry> {
  const layoutOf = ({ key, shape }: Entry): QuantDtype | undefined => {
    const role = roleOf(key);
    if (role === undefined || dtype === "f16" || dtype === "f32") return undefined;
    const k = shape[shape.length - 1];
    if (dtype !== undefined) return quantLayout(role, dtype, k);
    const stored = st.info(key).dtype;
    if (stored === "Q4_K") return "q4_k";
    return stored === "Q8_0" ? quantLayout("table", "q8", k) : undefined;
  };
  const tables = new Set(tableEntries(config).map((t) => t.entry.key));
  const tableLayout = layoutOf(tableEntries(config)[0].entry);
  const plan = new Map<string, StoragePlanEntry>();
  for (const entry of allEntries(config)) {
    plan.set(entry.key, {
      shape: entry.shape,
      layout: tables.has(entry.key) ? tableLayout : layoutOf(entry),
    });
  }
  return plan;
}

/**
 * A tensor's GGUF blocks in a layout's type: as the file stores them when it stores that type,
 * else quantized from its float values.
 *
 * @example
 * ```ts ignore
 * const blocks = quantizedBlocks(st, "classifiers.proj.0.weight", "q8_0");
 * ```
 */
export function quantizedBlocks(st: ValleCheckpoint, key: string, layout: QuantDtype): Uint8Array {
  return st.info(key).dtype === GGUF_TYPE[layout] && st.blocks
    ? st.blocks(key)
    : quantizeBlocks(layout, st.toFloat32(key));
}

/**
 * The device words of every tensor that loading `st` as `dtype` quantizes from float values
 * (those the file does not already store in their block type), by checkpoint key, quantized by
 * the CPU backend's C quantizers: the bytes of the TypeScript reference, on the backend's threads.
 * Give the result to {@linkcode uploadValleWeights}. Two tensors are in flight at a time, so the
 * memory taken beyond the weights stays that of two float tensors.
 *
 * @param cpu The CPU backend that quantizes (the model's own, or one made for loading).
 * @param st The parsed weight file.
 * @param dtype `q8` or `q4` (anything else quantizes nothing).
 * @returns The words by key.
 * @throws {WeightsError} The problems of the file (as uploadValleWeights reports them).
 *
 * @example
 * ```ts ignore
 * const words = await quantizeValleWeights(cpu, st, "q4");
 * const { weights } = uploadValleWeights(cpu, st, "f16", "q4", words);
 * ```
 */
export async function quantizeValleWeights(
  cpu: CpuBackend,
  st: ValleCheckpoint,
  dtype: ValleDtype | undefined,
): Promise<Map<string, Uint32Array>> {
  const out = new Map<string, Uint32Array>();
  if (dtype !== "q8" && dtype !== "q4") return out;
  const config = checkValleWeights(st);
  const jobs = [...planValleStorage(st, config, dtype)].filter(([key, { layout }]) =>
    layout && !(st.info(key).dtype === GGUF_TYPE[layout] && st.blocks)
  );
  let running: Promise<void> = Promise.resolve();
  for (const [key, { shape, layout }] of jobs) {
    const k = shape[shape.length - 1];
    // f16 files hand over their bits (widened exactly by the kernel); others float32.
    const values = st.info(key).dtype === "F16" ? st.toFloat16(key) : st.toFloat32(key);
    const previous = running;
    const job = quantizeOnCpu(cpu, layout!, values, values.length / k, k).then((words) => {
      out.set(key, words);
    });
    await previous;
    running = job;
  }
  await running;
  return out;
}

/**
 * The tensors that loading `st` as `dtype` quantizes (q8, q4), quantized by the CPU backend's C
 * quantizers: the model's backend when it is the CPU one, else a CPU backend made for the
 * purpose (WebGPU loads too: the same bytes as the TypeScript reference, many times faster).
 *
 * @param backend The device the model loads on.
 * @param st The model file.
 * @param dtype The precision asked for; nothing is quantized unless q8 or q4.
 * @returns Device words by key, for {@linkcode uploadValleWeights}.
 */
export async function quantizeAtLoad(
  backend: Backend,
  st: ValleCheckpoint,
  dtype: ValleDtype | undefined,
): Promise<Map<string, Uint32Array>> {
  if (dtype !== "q8" && dtype !== "q4") return new Map();
  const cpu = backend instanceof CpuBackend ? backend : await createCpuBackend();
  try {
    return await quantizeValleWeights(cpu, st, dtype);
  } finally {
    if (cpu !== backend) cpu.destroy();
  }
}

/**
 * Checks a weight file and uploads its tensors to the device: float as `float` (f16 when the
 * device has `shader-f16`, f32 otherwise, unless asked), or quantized per `dtype` and the policy of
 * `quant_policy.ts` (`q8`, `q4`). Without a `dtype`, tensors a GGUF stores quantized stay as
 * stored and everything else is float; `f16`/`f32` dequantize them. F16/BF16/F32 tensors are all
 * accepted; BF16 or F32 values beyond the f16 range are reported rather than silently turned into
 * infinities.
 *
 * @param backend The device.
 * @param st The parsed weight file.
 * @param float The storage type of float weights on the device.
 * @param dtype Quantize (`q8`, `q4`), dequantize (`f16`, `f32`), or keep as stored (undefined).
 * @param quantized Device words already quantized, by key ({@linkcode quantizeValleWeights});
 * the other tensors to quantize are quantized here, by the TypeScript reference.
 * @returns The config and the device tensors.
 * @throws {WeightsError} Missing or mis-shaped tensors, a bad config, f16 overflow, a norm or
 * bias stored quantized.
 *
 * @example
 * ```ts ignore
 * const { config, weights } = await uploadValleWeights(backend, st, backend.weightDtype, "q8");
 * ```
 */
export async function uploadValleWeights(
  backend: Backend,
  st: ValleCheckpoint,
  float: "f16" | "f32",
  dtype?: ValleDtype,
  quantized?: ReadonlyMap<string, Uint32Array>,
): Promise<{ config: ValleConfig; weights: ValleWeights }> {
  const config = checkValleWeights(st);
  const plan = planValleStorage(st, config, dtype);
  const layouts = new Map([...plan].map(([key, { layout }]) => [key, layout]));
  // Checked first, so that an f16 overflow is reported before anything is uploaded; tensor by
  // tensor, keeping nothing (the upload converts again), so no second copy of the file is held.
  const problems: WeightProblem[] = [];
  for (const [key, layout] of layouts) {
    const stored = st.info(key).dtype;
    if (layout || float === "f32" || stored === "F16") continue;
    if (st.toFloat16(key).some((b) => (b & 0x7c00) === 0x7c00)) {
      problems.push({
        tensor: key,
        expected: "values within the f16 range (±65504)",
        found: `larger values in ${stored}; load with precision "f32"`,
      });
    }
  }
  if (problems.length > 0) throw new WeightsError(st.source, problems);
  // One tensor converted at a time, written (in chunks) and dropped; a pause every few writes
  // lets a browser tab breathe.
  const pacer = new UploadPacer();
  const convert = (key: string): Float32Array | Uint16Array | Uint32Array => {
    const layout = layouts.get(key);
    if (layout) {
      return quantized?.get(key) ?? toDeviceWords(layout, quantizedBlocks(st, key, layout));
    }
    return float === "f32" ? st.toFloat32(key) : st.toFloat16(key);
  };
  const put = async (t: Tensor, key: string): Promise<void> => {
    const data = convert(key);
    writeTensor(backend, t, data);
    await pacer.wrote(data.byteLength);
  };
  const typeOf = (key: string) => layouts.get(key) ?? float;
  const upload = async ({ key, shape }: Entry): Promise<Tensor> => {
    const t = createTensor(backend, shape, typeOf(key), key);
    await put(t, key);
    return t;
  };

  // The stacked embedding table: its tables' rows one after another (whole rows either way).
  const d = config.dModel;
  const layout = valleTableLayout(config);
  const tables = tableEntries(config);
  const tableType = layouts.get(tables[0].entry.key) ?? float;
  const embeddings = createTensor(backend, [layout.rows, d], tableType, "valle.embeddings");
  let at = 0;
  for (const { entry } of tables) {
    const count = entry.shape.length === 1 ? 1 : entry.shape[0];
    await put(rows(embeddings, at, count), entry.key);
    at += count;
  }
  // Float projections that read the same input are stacked in one buffer each, so that the fused
  // decode kernels read them in one dispatch; the per-projection fields are views.
  const stack = async (label: string, parts: Entry[]): Promise<Tensor[] | undefined> => {
    if (parts.some((part) => layouts.get(part.key))) return undefined;
    const [count, cols] = parts[0].shape;
    const stacked = createTensor(backend, [count * parts.length, cols], float, label);
    const views = parts.map((_, i) => rows(stacked, i * count, count));
    for (let i = 0; i < parts.length; i++) await put(views[i], parts[i].key);
    return [stacked, ...views];
  };
  const uploadAll = async (entries: Entry[]): Promise<Tensor[]> => {
    const out: Tensor[] = [];
    for (const e of entries) out.push(await upload(e));
    return out;
  };
  const layers: ValleLayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const entry = (field: LayerTensor) => LAYER_TEMPLATE[field](l, config);
    const attention = [entry("qProj"), entry("kProj"), entry("vProj")];
    const mlp = [entry("gateProj"), entry("upProj")];
    const [qkv, qProj, kProj, vProj] = await stack(`model.layers.${l}.self_attn.qkv`, attention) ??
      [undefined, ...await uploadAll(attention)];
    const [gateUp, gateProj, upProj] = await stack(`model.layers.${l}.mlp.gate_up`, mlp) ??
      [undefined, ...await uploadAll(mlp)];
    layers.push({
      inputLayernorm: await upload(entry("inputLayernorm")),
      qProj: qProj!,
      kProj: kProj!,
      vProj: vProj!,
      oProj: await upload(entry("oProj")),
      postAttentionLayernorm: await upload(entry("postAttentionLayernorm")),
      gateProj: gateProj!,
      upProj: upProj!,
      downProj: await upload(entry("downProj")),
      qkv,
      gateUp,
    });
  }
  const heads: ValleHeadWeights[] = [];
  for (const h of headEntries(config)) {
    heads.push({
      weight: await upload(h.weight),
      bias: h.bias ? await upload(h.bias) : undefined,
    });
  }
  const norm = await upload({ key: "model.norm.weight", shape: [d] });
  return { config, weights: { embeddings, layout, layers, norm, heads } };
}

/**
 * Device bytes of the weights (each buffer once: views of stacked tensors are not counted again).
 *
 * @example
 * ```ts ignore
 * console.log(`${valleWeightBytes(model.weights) / 1e6} MB`);
 * ```
 */
export function valleWeightBytes(weights: ValleWeights): number {
  const buffers = new Set<Tensor["buffer"]>();
  let bytes = 0;
  const add = (t: Tensor | undefined) => {
    if (!t || buffers.has(t.buffer)) return;
    buffers.add(t.buffer);
    bytes += t.buffer.size;
  };
  add(weights.embeddings);
  add(weights.norm);
  for (const layer of weights.layers) {
    for (const t of [layer.qkv, layer.gateUp, ...Object.values(layer)]) add(t);
  }
  for (const head of weights.heads) {
    add(head.weight);
    add(head.bias);
  }
  return bytes;
}

/**
 * Every checkpoint tensor of the model by its key, as a view of where it lives on the device with
 * the checkpoint's shape (stacked projections and embedding tables included): what a LoRA
 * addresses.
 *
 * @example
 * ```ts ignore
 * const q = valleWeightTensors(config, weights).get("model.layers.0.self_attn.q_proj.weight");
 * ```
 */
export function valleWeightTensors(
  config: ValleConfig,
  weights: ValleWeights,
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  let at = 0;
  for (const { entry } of tableEntries(config)) {
    const count = entry.shape.length === 1 ? 1 : entry.shape[0];
    out.set(entry.key, reshape(rows(weights.embeddings, at, count), entry.shape));
    at += count;
  }
  weights.layers.forEach((layer, l) => {
    for (const [field, template] of Object.entries(LAYER_TEMPLATE)) {
      out.set(template(l, config).key, layer[field as LayerTensor]);
    }
  });
  out.set("model.norm.weight", weights.norm);
  headEntries(config).forEach((h, n) => {
    out.set(h.weight.key, weights.heads[n].weight);
    if (h.bias) out.set(h.bias.key, weights.heads[n].bias!);
  });
  return out;
}

/** The key of the stacked embedding table in {@linkcode replaceValleTensors}. */
export const STACKED_TABLE = "valle.embeddings";

/**
 * The weights with some tensors replaced: layer and head tensors by checkpoint key, the stacked
 * embedding table by {@linkcode STACKED_TABLE}. A layer whose projection is replaced loses its
 * stacked `qkv`/`gateUp` (the replacement is a tensor of its own).
 *
 * @example
 * ```ts ignore
 * const merged = replaceValleTensors(config, weights, new Map([[key, floatCopy]]));
 * ```
 */
export function replaceValleTensors(
  config: ValleConfig,
  weights: ValleWeights,
  replacements: ReadonlyMap<string, Tensor>,
): ValleWeights {
  const layers = weights.layers.map((layer, l) => {
    const out: Record<string, Tensor | undefined> = { ...layer };
    let replaced = false;
    for (const [field, template] of Object.entries(LAYER_TEMPLATE)) {
      const t = replacements.get(template(l, config).key);
      if (!t) continue;
      out[field] = t;
      replaced = true;
    }
    if (replaced) {
      out.qkv = undefined;
      out.gateUp = undefined;
    }
    return out as unknown as ValleLayerWeights;
  });
  const heads = headEntries(config).map((h, n) => ({
    weight: replacements.get(h.weight.key) ?? weights.heads[n].weight,
    bias: weights.heads[n].bias,
  }));
  const embeddings = replacements.get(STACKED_TABLE) ?? weights.embeddings;
  return { ...weights, embeddings, layers, heads };
}

/** Frees every GPU buffer of the weights. */
export function destroyValleWeights(weights: ValleWeights): void {
  destroyTensors(weights);
}
