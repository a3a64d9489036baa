/**
 * Tiny LoRAs for a tiny VALL-E, written as upstream (e-c-k-e-r/vall-e) writes `lora.sft`: the
 * `lora_`-keyed tensors of the model's state dict (`<module>.lora_A` / `.lora_B` for `LoRALinear`,
 * `<module>.parametrizations.weight.0.lora_A` / `.lora_B` for `ParameterizedLoRA`) over the modules
 * of its llama policy (self_attn and mlp, k_proj excluded), and the `LoRA` dataclass as JSON in
 * `__metadata__.config`. Optional extra tensors (embedding tables) ride along as upstream's
 * `load_state_dict(strict=False)` would load them. B is random, not upstream's zero init, so that
 * the update shows.
 *
 * Also the float64 oracle: the base file with the LoRA merged on the CPU.
 */

import {
  parseSafetensors,
  type Safetensors,
  serializeSafetensors,
  type TensorData,
} from "../src/io/safetensors.ts";
import { f16ToF32, f32ToF16 } from "../src/io/dtype.ts";
import { Rng } from "./_helpers.ts";

/** Modules upstream's llama policy adapts in each layer (`include: self_attn, mlp`, `exclude: k_proj`). */
export const POLICY_MODULES = [
  "self_attn.q_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "mlp.gate_proj",
  "mlp.up_proj",
  "mlp.down_proj",
];

/** Options of {@linkcode makeTinyLora}. */
export interface TinyLoraOptions {
  /** Rank. Default 4. */
  rank?: number;
  /** alpha. Default 8. */
  alpha?: number;
  /** Values' seed. Default 1. */
  seed?: number;
  /** `LoRALinear` (default) or `ParameterizedLoRA` keys. */
  spelling?: "linear" | "parametrize";
  /** Modules (without `.weight`). Default: the policy's in every layer. */
  modules?: readonly string[];
  /** Model tensors to save with it (random, the base's shape). Default none. */
  extra?: readonly string[];
  /** Storage type. Default F32. */
  dtype?: "F32" | "F16";
  /** `__metadata__.config` fields over the defaults; null writes no config. */
  config?: Record<string, unknown> | null;
}

/** A tiny LoRA and the values it holds (as stored, for the oracle). */
export interface TinyLora {
  /** The `.sft` bytes. */
  bytes: Uint8Array<ArrayBuffer>;
  /** Per module: the target weight key, A (r, cols), B (rows, r) as stored. */
  factors: { target: string; a: Float32Array; b: Float32Array; cols: number; rank: number }[];
  /** Extra tensors by key, as stored. */
  extra: Map<string, Float32Array>;
  /** alpha / rank. */
  scaling: number;
}

/** Every layer's policy modules of a model file. */
export function policyModules(base: Safetensors): string[] {
  const layers = base.names.filter((n) => /^model\.layers\.\d+\.input_layernorm\.weight$/.test(n));
  return layers.flatMap((_, l) => POLICY_MODULES.map((m) => `model.layers.${l}.${m}`));
}

/**
 * Writes a LoRA for `base` in upstream's layout.
 *
 * @example
 * ```ts ignore
 * const lora = makeTinyLora(parseSafetensors(model), { rank: 4, spelling: "parametrize" });
 * ```
 */
export function makeTinyLora(base: Safetensors, options: TinyLoraOptions = {}): TinyLora {
  const rank = options.rank ?? 4;
  const alpha = options.alpha ?? 8;
  const spelling = options.spelling ?? "linear";
  const dtype = options.dtype ?? "F32";
  const rng = new Rng(options.seed ?? 1);
  const tensors: Record<string, TensorData> = {};
  const stored = (values: Float32Array) => dtype === "F16" ? f16ToF32(f32ToF16(values)) : values;
  const put = (key: string, shape: number[], scale: number): Float32Array => {
    const values = Float32Array.from(
      { length: shape[0] * (shape[1] ?? 1) },
      () => rng.normal() * scale,
    );
    tensors[key] = {
      dtype,
      shape,
      data: dtype === "F16" ? f32ToF16(values) : values,
    };
    return stored(values);
  };
  const factors: TinyLora["factors"] = [];
  for (const module of options.modules ?? policyModules(base)) {
    const target = `${module}.weight`;
    const [out, inp] = base.info(target).shape;
    // ParameterizedLoRA is built with in/out swapped: B (in, r) · A (r, out), viewed as (out, in).
    const [rows, cols] = spelling === "linear" ? [out, inp] : [inp, out];
    const prefix = spelling === "linear" ? module : `${module}.parametrizations.weight.0`;
    const a = put(`${prefix}.lora_A`, [rank, cols], 1 / Math.sqrt(cols));
    const b = put(`${prefix}.lora_B`, [rows, rank], 0.05);
    factors.push({ target, a, b, cols, rank });
  }
  const extra = new Map<string, Float32Array>();
  for (const key of options.extra ?? []) {
    extra.set(key, put(key, [...base.info(key).shape], 1));
  }
  const config = options.config === null ? undefined : {
    name: "tiny",
    rank,
    alpha,
    training: false,
    embeddings: extra.size > 0,
    parametrize: spelling === "parametrize",
    rvq_levels: [],
    path: null,
    ...options.config,
  };
  const metadata = config ? { config: JSON.stringify(config) } : undefined;
  return { bytes: serializeSafetensors(tensors, metadata), factors, extra, scaling: alpha / rank };
}

/**
 * The oracle: `base` with each LoRA's update (strength · scaling · B · A, float64) added and its
 * extra tensors blended in, written as F32. The update goes into the weights as the model holds
 * them: with `precision` "f16", the base rounded to f16 first. LoRAs are applied in order.
 */
export function mergeOracle(
  baseBytes: Uint8Array,
  loras: readonly { lora: TinyLora; strength: number }[],
  precision: "f32" | "f16",
): Uint8Array<ArrayBuffer> {
  const base = parseSafetensors(baseBytes);
  const tensors: Record<string, TensorData> = {};
  const values = new Map<string, Float64Array>();
  for (const name of base.names) {
    const held = precision === "f16" ? f16ToF32(base.toFloat16(name)) : base.toFloat32(name);
    values.set(name, Float64Array.from(held));
  }
  for (const { lora, strength } of loras) {
    for (const f of lora.factors) {
      const w = values.get(f.target)!;
      for (let k = 0; k < w.length; k++) {
        const row = Math.floor(k / f.cols);
        const col = k % f.cols;
        let delta = 0;
        for (let j = 0; j < f.rank; j++) delta += f.b[row * f.rank + j] * f.a[j * f.cols + col];
        w[k] += strength * lora.scaling * delta;
      }
    }
    for (const [key, d] of lora.extra) {
      const w = values.get(key)!;
      for (let k = 0; k < w.length; k++) w[k] = (1 - strength) * w[k] + strength * d[k];
    }
  }
  for (const name of base.names) {
    tensors[name] = {
      dtype: "F32",
      shape: base.info(name).shape,
      data: Float32Array.from(values.get(name)!),
    };
  }
  return serializeSafetensors(tensors, { ...base.metadata });
}
