/**
 * The trainable LoRA of a training run: upstream's default modules (`q_proj`, `v_proj`, `o_proj`,
 * `gate_proj`, `up_proj`, `down_proj` of every block; `k_proj` is excluded by its policy), each a
 * pair A (rank, in) and B (out, rank), all packed into one flat f32 vector so that the optimizer,
 * the gradient norm and checkpoints each take one buffer. Initialised as `LoRALinear` does (A
 * uniform in ±1/√in, B zero) and written in upstream's exported layout (`extract_lora`:
 * `model.layers.{i}.{self_attn|mlp}.{module}.lora_{A,B}` and `__metadata__.config`), which
 * `ValleModel.setLora` and upstream's loader both read (`src/models/valle/LORA.md`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { LoraError, OptionError, type WeightProblem } from "../errors.ts";
import type { ValleConfig } from "../models/valle/config.ts";
import { f32ToF16 } from "../io/_f16.ts";
import { type Safetensors, serializeSafetensors } from "../io/safetensors.ts";

/** The projections a LoRA adapts, as upstream names them. */
export type LoraModule = "q_proj" | "v_proj" | "o_proj" | "gate_proj" | "up_proj" | "down_proj";

/** Upstream's default policy for LLaMA: every attention and MLP linear but `k_proj`. */
export const LORA_MODULES: readonly LoraModule[] = [
  "q_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
];

/** One adapted projection: where its factors sit in the flat vector. */
export interface LoraSlot {
  /** Block index. */
  readonly layer: number;
  /** The projection. */
  readonly module: LoraModule;
  /** Checkpoint key of the module, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly key: string;
  /** Input features (A's columns). */
  readonly inFeatures: number;
  /** Output features (B's rows). */
  readonly outFeatures: number;
  /** Element offset of A (rank, in), a multiple of 4. */
  readonly a: number;
  /** Element offset of B (out, rank), a multiple of 4. */
  readonly b: number;
}

/** The layout of a LoRA's flat parameter vector. */
export interface LoraLayout {
  /** The rank r. */
  readonly rank: number;
  /** alpha: the update is scaled by alpha / rank. */
  readonly alpha: number;
  /** Every adapted projection, block by block in {@linkcode LORA_MODULES} order. */
  readonly slots: readonly LoraSlot[];
  /** Elements of the flat vector. */
  readonly size: number;
}

/**
 * Lays out the factors of a rank-r LoRA on every block of a model.
 *
 * @param config The model.
 * @param rank The rank (a positive integer).
 * @param alpha The scale numerator (positive); upstream's default equals the rank.
 * @throws {OptionError} A rank or alpha that is not positive, or a rank above the model's width.
 *
 * @example
 * ```ts ignore
 * const layout = loraLayout(config, 8, 8);
 * console.log(layout.slots.length, layout.size);
 * ```
 */
export function loraLayout(config: ValleConfig, rank: number, alpha: number): LoraLayout {
  if (!Number.isInteger(rank) || rank < 1 || rank > config.dModel) {
    throw new OptionError(`LoRA rank is ${rank}, expected an integer in 1..${config.dModel}`);
  }
  if (!(Number.isFinite(alpha) && alpha > 0)) {
    throw new OptionError(`LoRA alpha is ${alpha}, expected a positive number`);
  }
  const { dModel: d, dFf } = config;
  const shapes: Record<LoraModule, [string, number, number]> = {
    q_proj: ["self_attn", d, d],
    v_proj: ["self_attn", d, d],
    o_proj: ["self_attn", d, d],
    gate_proj: ["mlp", d, dFf],
    up_proj: ["mlp", d, dFf],
    down_proj: ["mlp", dFf, d],
  };
  const slots: LoraSlot[] = [];
  let size = 0;
  const take = (n: number) => {
    const at = size;
    size += Math.ceil(n / 4) * 4;
    return at;
  };
  for (let layer = 0; layer < config.nLayers; layer++) {
    for (const module of LORA_MODULES) {
      const [block, inFeatures, outFeatures] = shapes[module];
      const a = take(rank * inFeatures);
      const b = take(outFeatures * rank);
      const key = `model.layers.${layer}.${block}.${module}`;
      slots.push({ layer, module, key, inFeatures, outFeatures, a, b });
    }
  }
  return { rank, alpha, slots, size };
}

/**
 * Initial values as `LoRALinear.reset_parameters` draws them: A uniform in [−1/√in, 1/√in]
 * (`kaiming_uniform_` with a = √5), B zero, so the LoRA starts as a no-op.
 *
 * @param layout The layout.
 * @param random Uniform numbers in [0, 1).
 *
 * @example
 * ```ts ignore
 * const values = initLora(layout, seededRandom(1));
 * ```
 */
export function initLora(layout: LoraLayout, random: () => number): Float32Array {
  const values = new Float32Array(layout.size);
  for (const slot of layout.slots) {
    const bound = 1 / Math.sqrt(slot.inFeatures);
    const n = layout.rank * slot.inFeatures;
    for (let i = 0; i < n; i++) values[slot.a + i] = (2 * random() - 1) * bound;
  }
  return values;
}

/** Options of {@linkcode exportLora}. */
export interface ExportLoraOptions {
  /** Vanity name stored in the config (upstream: `LoRA.name`). Default "lora". */
  name?: string;
  /** Storage type: "f16" (upstream's default `trainer.weight_dtype`) or "f32". Default "f16". */
  dtype?: "f16" | "f32";
}

/**
 * Writes a LoRA as upstream's exporter does: the `lora_A` / `lora_B` tensors under the model's
 * keys and `__metadata__.config`, the JSON of upstream's `LoRA` config (name, rank, alpha,
 * training, embeddings, parametrize, rvq_levels, path).
 *
 * @param layout The layout.
 * @param values The flat parameter vector.
 * @param options Name and storage type.
 * @returns A `lora.sft` file.
 *
 * @example
 * ```ts ignore
 * await Deno.writeFile("voice.sft", exportLora(layout, values, { name: "my-voice" }));
 * ```
 */
export function exportLora(
  layout: LoraLayout,
  values: Float32Array,
  options: ExportLoraOptions = {},
): Uint8Array<ArrayBuffer> {
  if (values.length !== layout.size) {
    throw new OptionError(
      `Cannot export a LoRA: ${values.length} values, the layout holds ${layout.size}`,
    );
  }
  const dtype = options.dtype ?? "f16";
  const tensors: Parameters<typeof serializeSafetensors>[0] = {};
  const put = (key: string, at: number, shape: [number, number]) => {
    const data = values.subarray(at, at + shape[0] * shape[1]);
    tensors[key] = dtype === "f16"
      ? { dtype: "F16", shape, data: f32ToF16(data) }
      : { dtype: "F32", shape, data: data.slice() };
  };
  for (const s of layout.slots) {
    put(`${s.key}.lora_A`, s.a, [layout.rank, s.inFeatures]);
    put(`${s.key}.lora_B`, s.b, [s.outFeatures, layout.rank]);
  }
  const config = {
    name: options.name ?? "lora",
    rank: layout.rank,
    alpha: layout.alpha,
    training: true,
    embeddings: false,
    parametrize: false,
    rvq_levels: [],
    path: null,
  };
  return serializeSafetensors(tensors, { config: JSON.stringify(config) });
}

/**
 * Reads a LoRA in upstream's layout (a `lora.sft`, or a checkpoint's tensors) into a flat vector,
 * e.g. to resume training or to start from a given LoRA.
 *
 * @param layout The layout to fill.
 * @param st The file.
 * @param prefix Put before every key (a checkpoint's tensors under a name). Default none.
 * @returns The flat parameter vector.
 * @throws {LoraError} Every missing factor, and every factor of another shape, at once.
 *
 * @example
 * ```ts ignore
 * const values = readLora(layout, await readSafetensors("voice.sft"));
 * ```
 */
export function readLora(layout: LoraLayout, st: Safetensors, prefix = ""): Float32Array {
  const values = new Float32Array(layout.size);
  const problems: WeightProblem[] = [];
  const read = (name: string, at: number, shape: [number, number]) => {
    const key = prefix + name;
    if (!st.has(key)) {
      problems.push({ tensor: key, expected: `[${shape}]`, found: "missing" });
      return;
    }
    const found = st.info(key).shape;
    if (found.length !== 2 || found[0] !== shape[0] || found[1] !== shape[1]) {
      problems.push({ tensor: key, expected: `[${shape}]`, found: `[${found}]` });
      return;
    }
    values.set(st.toFloat32(key), at);
  };
  for (const s of layout.slots) {
    read(`${s.key}.lora_A`, s.a, [layout.rank, s.inFeatures]);
    read(`${s.key}.lora_B`, s.b, [s.outFeatures, layout.rank]);
  }
  if (problems.length > 0) throw new LoraError(st.source, problems);
  return values;
}
