/**
 * The VALL-E weight table: every checkpoint key the model runs on, with its expected shape, in one
 * template table; checking a file against it (all problems reported at once); and uploading it to
 * the GPU. The embedding tables are stacked into one buffer so that any input sequence, whatever
 * its segments and summed RVQ levels, is one `embeddingSum` dispatch over absolute row ids.
 *
 * Keys are used verbatim. Unknown keys (`dropout_token`, `tasks_emb`, `tones_emb`,
 * `model.embed_tokens`, `raw_text_emb`, rotary buffers, …) are ignored.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { type WeightProblem, WeightsError } from "../../errors.ts";
import type { Tensor } from "../../backends/backend.ts";
import {
  createTensor,
  destroyTensors,
  reshape,
  rows,
  uploadTensor,
  writeTensor,
} from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import type { Safetensors } from "../../io/safetensors.ts";
import { deriveValleConfig, type ValleConfig, valleHeads } from "./config.ts";

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
  /** Q, K and V projections stacked (3d, d): `qProj`, `kProj`, `vProj` are views of it. */
  readonly qkv: Tensor;
  /** Gate and up projections stacked (2·dFf, d): `gateProj`, `upProj` are views of it. */
  readonly gateUp: Tensor;
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
  /** Every embedding table stacked: (layout.rows, d), f16 or f32. */
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

/** Whether two shapes are the same. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A shape as messages write it, e.g. `[1024, 4096]`. */
export function showShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Appends a problem for every missing or mis-shaped entry. */
function checkEntries(st: Safetensors, entries: readonly Entry[], problems: WeightProblem[]): void {
  for (const { key, shape } of entries) {
    if (!st.has(key)) {
      problems.push({ tensor: key, expected: showShape(shape), found: "missing" });
      continue;
    }
    const info = st.info(key);
    const found = info.shape;
    if (!sameShape(found, shape)) {
      problems.push({ tensor: key, expected: showShape(shape), found: showShape(found) });
    } else if (!FLOAT_DTYPES.includes(info.dtype)) {
      problems.push({ tensor: key, expected: "a float dtype", found: info.dtype });
    }
  }
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
export function checkValleWeights(st: Safetensors): ValleConfig {
  const problems: WeightProblem[] = [];
  const config = deriveValleConfig(st, problems);
  if (config.dModel > 0 && config.nLayers > 0 && config.nLevels >= 2) {
    checkEntries(st, allEntries(config), problems);
  }
  if (problems.length > 0) throw new WeightsError(st.source, problems);
  return config;
}

/**
 * Checks a weight file and uploads its tensors to the GPU as `dtype` (f16 when the device has
 * `shader-f16`, f32 otherwise, unless asked). F16/BF16/F32 tensors are all accepted; BF16 or F32
 * values beyond the f16 range are reported rather than silently turned into infinities.
 *
 * @param backend The device.
 * @param st The parsed weight file.
 * @param dtype The storage type of the weights on the GPU.
 * @returns The config and the GPU tensors.
 * @throws {WeightsError} Missing or mis-shaped tensors, a bad config, f16 overflow.
 *
 * @example
 * ```ts ignore
 * const { config, weights } = uploadValleWeights(backend, st, backend.weightDtype);
 * ```
 */
export function uploadValleWeights(
  backend: Backend,
  st: Safetensors,
  dtype: "f16" | "f32",
): { config: ValleConfig; weights: ValleWeights } {
  const config = checkValleWeights(st);
  // Convert everything first, so that an f16 overflow is reported before anything is uploaded.
  const problems: WeightProblem[] = [];
  const converted = new Map<string, Float32Array | Uint16Array>();
  const entries = allEntries(config);
  for (const { key } of entries) {
    if (dtype === "f32") {
      converted.set(key, st.toFloat32(key));
      continue;
    }
    const bits = st.toFloat16(key);
    if (st.info(key).dtype !== "F16" && bits.some((b) => (b & 0x7c00) === 0x7c00)) {
      problems.push({
        tensor: key,
        expected: "values within the f16 range (±65504)",
        found: `larger values in ${st.info(key).dtype}; load with precision "f32"`,
      });
    }
    converted.set(key, bits);
  }
  if (problems.length > 0) throw new WeightsError(st.source, problems);
  const upload = ({ key, shape }: Entry): Tensor =>
    uploadTensor(backend, converted.get(key)!, shape, dtype, key);

  // The stacked embedding table.
  const tables = tableEntries(config);
  const d = config.dModel;
  const layout = valleTableLayout(config);
  const tableRows = layout.rows;
  const stacked = dtype === "f16"
    ? new Uint16Array(tableRows * d)
    : new Float32Array(tableRows * d);
  let at = 0;
  for (const { entry } of tables) {
    const data = converted.get(entry.key)!;
    stacked.set(data, at);
    at += data.length;
  }
  const embeddings = uploadTensor(backend, stacked, [tableRows, d], dtype, "valle.embeddings");
  // Projections that read the same input are stacked in one buffer each, so that the fused
  // decode kernels read them in one dispatch; the per-projection fields are views.
  const stack = (label: string, parts: Entry[]): Tensor[] => {
    const [count, cols] = parts[0].shape;
    const stacked = createTensor(backend, [count * parts.length, cols], dtype, label);
    const views = parts.map((_, i) => rows(stacked, i * count, count));
    views.forEach((view, i) => writeTensor(backend, view, converted.get(parts[i].key)!));
    return [stacked, ...views];
  };
  const layers: ValleLayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const entry = (field: LayerTensor) => LAYER_TEMPLATE[field](l, config);
    const [qkv, qProj, kProj, vProj] = stack(`model.layers.${l}.self_attn.qkv`, [
      entry("qProj"),
      entry("kProj"),
      entry("vProj"),
    ]);
    const [gateUp, gateProj, upProj] = stack(`model.layers.${l}.mlp.gate_up`, [
      entry("gateProj"),
      entry("upProj"),
    ]);
    layers.push({
      inputLayernorm: upload(entry("inputLayernorm")),
      qProj,
      kProj,
      vProj,
      oProj: upload(entry("oProj")),
      postAttentionLayernorm: upload(entry("postAttentionLayernorm")),
      gateProj,
      upProj,
      downProj: upload(entry("downProj")),
      qkv,
      gateUp,
    });
  }
  const heads = headEntries(config).map((h) => ({
    weight: upload(h.weight),
    bias: h.bias ? upload(h.bias) : undefined,
  }));
  const norm = upload({ key: "model.norm.weight", shape: [d] });
  return { config, weights: { embeddings, layout, layers, norm, heads } };
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

/** Frees every GPU buffer of the weights. */
export function destroyValleWeights(weights: ValleWeights): void {
  destroyTensors(weights);
}
