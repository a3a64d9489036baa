/**
 * Writes a VALL-E v1 model with random weights in the exact released layout (plain safetensors,
 * state-dict keys, `__metadata__.config` as the original exporter writes it), at any size: tiny
 * for tests, full (1024 × 16 heads × 12 layers, ~456 MB in F16) for benchmarks, since the real
 * weights cannot be downloaded here. Importable (tests build models in memory) and runnable:
 *
 *   deno run -A tools/make_valle_model.ts --out /tmp/valle-full.sft [--size full|tiny|D/H/L]
 *     [--layout ar+nar-len|ar+nar] [--dtype F16|BF16|F32] [--seed 1] [--levels 8] [--audio 1024]
 *
 * Weights: linear layers N(0, 1/fan_in), embeddings N(0, 1), norms 1 + N(0, 0.1²), biases
 * N(0, 0.1²): logits of order one, so greedy decisions are not near-ties. Outputs are noise.
 */

import { parseArgs } from "node:util";
import { f32ToF16 } from "../src/io/dtype.ts";
import { serializeSafetensors, type TensorData } from "../src/io/safetensors.ts";

/** What to build. */
export interface RandomValleOptions {
  /** Model width. Default 32. */
  dim?: number;
  /** Attention heads. Default 4. */
  heads?: number;
  /** Blocks. Default 2. */
  layers?: number;
  /** RVQ levels. Default 8. */
  levels?: number;
  /** Codes per level. Default 1024. */
  audioTokens?: number;
  /** Phoneme vocabulary. Default 256. */
  phonemes?: number;
  /** Language rows. Default 6. */
  langs?: number;
  /** "ar+nar-len" (NAR-len and duration heads) or the older "ar+nar". Default "ar+nar-len". */
  layout?: "ar+nar-len" | "ar+nar";
  /** Storage dtype. Default "F16". */
  dtype?: "F16" | "BF16" | "F32";
  /** Weight seed. Default 1. */
  seed?: number;
  /** `experimental` overrides (noncausal_masks, unified_position_ids, audio_embedding_sums). */
  experimental?: Record<string, boolean>;
}

/** Deterministic normals (mulberry32 + Box-Muller). */
class Normals {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  #uniform(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  fill(n: number, scale: number, offset = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - this.#uniform())) * scale;
      const a = 2 * Math.PI * this.#uniform();
      out[i] = offset + r * Math.cos(a);
      if (i + 1 < n) out[i + 1] = offset + r * Math.sin(a);
    }
    return out;
  }
}

function encode(values: Float32Array, shape: number[], dtype: "F16" | "BF16" | "F32"): TensorData {
  if (dtype === "F32") return { dtype, shape, data: values };
  if (dtype === "F16") return { dtype, shape, data: f32ToF16(values) };
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    bits[i] = (w + 0x7fff + ((w >>> 16) & 1)) >>> 16; // round to nearest even
  }
  return { dtype, shape, data: bits };
}

/**
 * Builds the file in memory.
 *
 * @returns The safetensors bytes.
 */
export function makeRandomValle(options: RandomValleOptions = {}): Uint8Array {
  const d = options.dim ?? 32;
  const heads = options.heads ?? 4;
  const layers = options.layers ?? 2;
  const levels = options.levels ?? 8;
  const audio = options.audioTokens ?? 1024;
  const phn = options.phonemes ?? 256;
  const langs = options.langs ?? 6;
  const layout = options.layout ?? "ar+nar-len";
  const dtype = options.dtype ?? "F16";
  const len = layout === "ar+nar-len";
  const rng = new Normals(options.seed ?? 1);
  const tensors: Record<string, TensorData> = {};
  const put = (key: string, shape: number[], scale: number, offset = 0) => {
    tensors[key] = encode(rng.fill(shape.reduce((a, b) => a * b, 1), scale, offset), shape, dtype);
  };
  const linear = (key: string, out: number, inp: number) =>
    put(key, [out, inp], 1 / Math.sqrt(inp));

  put("text_emb.weight", [phn, d], 1);
  put("langs_emb.weight", [langs, d], 1);
  put("tasks_emb.weight", [9, d], 1);
  put("tones_emb.weight", [1, d], 1);
  put("rvq_l_emb.weight", [levels, d], 1);
  if (len) put("len_emb.weight", [11, d], 1);
  put("sep", [d], 1);
  put("dropout_token", [d], 1);
  for (let k = 0; k < levels; k++) put(`proms_emb.embeddings.${k}.weight`, [audio, d], 1);
  const resp = len ? levels + 1 : levels;
  for (let k = 0; k < resp; k++) {
    put(`resps_emb.embeddings.${k}.weight`, [k === 0 || k === levels ? audio + 1 : audio, d], 1);
  }
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [d], 0.1, 1);
    for (const x of ["q", "k", "v", "o"]) linear(`${p}.self_attn.${x}_proj.weight`, d, d);
    put(`${p}.post_attention_layernorm.weight`, [d], 0.1, 1);
    linear(`${p}.mlp.gate_proj.weight`, 4 * d, d);
    linear(`${p}.mlp.up_proj.weight`, 4 * d, d);
    linear(`${p}.mlp.down_proj.weight`, d, 4 * d);
  }
  put("model.norm.weight", [d], 0.1, 1);
  const outputs = [audio + 1];
  for (let k = 1; k < levels; k++) outputs.push(audio);
  if (len) outputs.push(audio, phn, 11);
  else outputs.push(phn);
  outputs.forEach((n, i) => {
    linear(`classifiers.proj.${i}.weight`, n, d);
    put(`classifiers.proj.${i}.bias`, [n], 0.1);
  });

  const config = {
    name: layout,
    version: 5,
    size: { dim: d, heads, layers, ffn: 4 },
    tasks: 9,
    langs,
    tones: 1,
    experts: 1,
    arch_type: "llama",
    capabilities: len ? ["ar", "nar", "len"] : ["ar", "nar"],
    experimental: {
      split_classifiers: true,
      audio_embedding_sums: true,
      unified_position_ids: false,
      noncausal_masks: true,
      classifiers_bias: true,
      causal_size: 1,
      ...options.experimental,
    },
  };
  return serializeSafetensors(tensors, {
    config: JSON.stringify(config),
    stats: JSON.stringify({ global_step: 0 }),
  });
}

/** Named sizes: [dim, heads, layers]. */
const SIZES: Record<string, [number, number, number]> = {
  tiny: [32, 4, 2],
  full: [1024, 16, 12],
};

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      out: { type: "string" },
      size: { type: "string", default: "tiny" },
      layout: { type: "string", default: "ar+nar-len" },
      dtype: { type: "string", default: "F16" },
      seed: { type: "string", default: "1" },
      levels: { type: "string", default: "8" },
      audio: { type: "string", default: "1024" },
    },
  });
  if (!values.out) {
    console.error(
      "usage: deno run -A tools/make_valle_model.ts --out <file> [--size full|tiny|D/H/L]",
    );
    Deno.exit(2);
  }
  const [dim, heads, layers] = SIZES[values.size] ?? values.size.split("/").map(Number);
  const bytes = makeRandomValle({
    dim,
    heads,
    layers,
    levels: Number(values.levels),
    audioTokens: Number(values.audio),
    layout: values.layout as "ar+nar-len" | "ar+nar",
    dtype: values.dtype as "F16" | "BF16" | "F32",
    seed: Number(values.seed),
  });
  await Deno.writeFile(values.out, bytes);
  console.log(
    `${values.out}: ${
      (bytes.length / 1e6).toFixed(1)
    } MB, d ${dim}, ${heads} heads, ${layers} layers`,
  );
}
