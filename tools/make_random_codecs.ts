/**
 * Writes full-size codec checkpoints with seeded random weights in the real layouts, for
 * benchmarks and load tests (never committed: ~93 MB + ~40 MB):
 *
 *   <out>/encodec_24khz/model.safetensors + config.json   facebook/encodec_24khz: the 252 F32
 *       tensors of codec-spec.md §3.3 under Hugging Face names with the 2023 weight_g/weight_v
 *       spelling (transposed convs: v [in, out, k], g per input channel), quantizer buffers
 *       inited / cluster_size / embed / embed_avg for 32 codebooks
 *   <out>/vocos_encodec_24khz/model.safetensors + config.json   charactr/vocos-encodec-24khz: the
 *       82 tensors of §5.5 (codebook_weights = the EnCodec embeds 0..15, periodic Hann window)
 *
 *   deno run -A tools/make_random_codecs.ts [--out /tmp/valle-codecs]
 *
 * Scales keep activations of order one through the stacks (weight-normed rows of unit norm,
 * LSTM weights U(±1/√H), Vocos linears N(0, 0.02) as its initializer); the numbers mean nothing.
 */

import { parseArgs } from "node:util";
import { serializeSafetensors, type TensorData } from "../src/io/safetensors.ts";
import { ENCODEC_24KHZ } from "../src/models/encodec/config.ts";
import { VOCOS_ENCODEC_24KHZ } from "../src/models/vocos/config.ts";

/** mulberry32 + Box-Muller, seeded. */
function random(seed: number): { uniform: () => number; normal: () => number } {
  let s = seed >>> 0;
  const uniform = () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

type Tensors = Record<string, TensorData>;

function f32(shape: number[], fill: (i: number) => number): TensorData {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: "F32", shape, data: Float32Array.from({ length: n }, (_, i) => fill(i)) };
}

/** The EnCodec 24 kHz checkpoint (252 tensors). */
export function randomEncodec(seed = 1): Tensors {
  const r = random(seed);
  const t: Tensors = {};
  const conv = (prefix: string, cout: number, cin: number, k: number) => {
    t[`${prefix}.weight_g`] = f32([cout, 1, 1], () => 0.5 + r.uniform());
    t[`${prefix}.weight_v`] = f32([cout, cin, k], () => r.normal());
    t[`${prefix}.bias`] = f32([cout], () => 0.1 * r.normal());
  };
  const convTranspose = (prefix: string, cin: number, cout: number, k: number) => {
    t[`${prefix}.weight_g`] = f32([cin, 1, 1], () => 0.5 + r.uniform());
    t[`${prefix}.weight_v`] = f32([cin, cout, k], () => r.normal());
    t[`${prefix}.bias`] = f32([cout], () => 0.1 * r.normal());
  };
  const residual = (prefix: string, dim: number) => {
    conv(`${prefix}.block.1.conv`, dim / 2, dim, 3);
    conv(`${prefix}.block.3.conv`, dim, dim / 2, 1);
    conv(`${prefix}.shortcut.conv`, dim, dim, 1);
  };
  const lstm = (prefix: string, h: number) => {
    const a = 1 / Math.sqrt(h);
    for (const l of [0, 1]) {
      t[`${prefix}.weight_ih_l${l}`] = f32([4 * h, h], () => a * (2 * r.uniform() - 1));
      t[`${prefix}.weight_hh_l${l}`] = f32([4 * h, h], () => a * (2 * r.uniform() - 1));
      t[`${prefix}.bias_ih_l${l}`] = f32([4 * h], () => a * (2 * r.uniform() - 1));
      t[`${prefix}.bias_hh_l${l}`] = f32([4 * h], () => a * (2 * r.uniform() - 1));
    }
  };
  // Encoder: conv 1→32 k7; per ratio 2, 4, 5, 8: resblock, ELU, conv C→2C k=2r s=r; LSTM; ELU; conv 512→128 k7.
  conv("encoder.layers.0.conv", 32, 1, 7);
  let n = 1;
  let c = 32;
  for (const ratio of [2, 4, 5, 8]) {
    residual(`encoder.layers.${n}`, c);
    conv(`encoder.layers.${n + 2}.conv`, 2 * c, c, 2 * ratio);
    n += 3;
    c *= 2;
  }
  lstm(`encoder.layers.${n}.lstm`, c);
  conv(`encoder.layers.${n + 2}.conv`, 128, c, 7);
  // Decoder: conv 128→512 k7; LSTM; per ratio 8, 5, 4, 2: ELU, convtr C→C/2 k=2r, resblock; ELU; conv 32→1 k7.
  conv("decoder.layers.0.conv", 512, 128, 7);
  lstm("decoder.layers.1.lstm", 512);
  n = 2;
  c = 512;
  for (const ratio of [8, 5, 4, 2]) {
    convTranspose(`decoder.layers.${n + 1}.conv`, c, c / 2, 2 * ratio);
    residual(`decoder.layers.${n + 2}`, c / 2);
    n += 3;
    c /= 2;
  }
  conv(`decoder.layers.${n + 1}.conv`, 1, 32, 7);
  for (let q = 0; q < 32; q++) {
    const p = `quantizer.layers.${q}.codebook`;
    const embed = f32([1024, 128], () => r.normal() / (q + 1));
    const size = f32([1024], () => 1 + 100 * r.uniform());
    t[`${p}.inited`] = f32([1], () => 1);
    t[`${p}.cluster_size`] = size;
    t[`${p}.embed`] = embed;
    t[`${p}.embed_avg`] = f32(
      [1024, 128],
      (i) => (embed.data as Float32Array)[i] * (size.data as Float32Array)[Math.floor(i / 128)],
    );
  }
  return t;
}

/** The Vocos EnCodec-variant checkpoint (82 tensors), codebooks from `encodec`. */
export function randomVocos(encodec: Tensors, seed = 2): Tensors {
  const r = random(seed);
  const t: Tensors = {};
  const normal = (shape: number[], s: number) => f32(shape, () => s * r.normal());
  const codebooks = new Float32Array(16 * 1024 * 128);
  for (let q = 0; q < 16; q++) {
    codebooks.set(
      encodec[`quantizer.layers.${q}.codebook.embed`].data as Float32Array,
      q * 1024 * 128,
    );
  }
  t["feature_extractor.codebook_weights"] = { dtype: "F32", shape: [16384, 128], data: codebooks };
  t["backbone.embed.weight"] = normal([384, 128, 7], 0.02);
  t["backbone.embed.bias"] = normal([384], 0.02);
  const ada = (p: string) => {
    t[`${p}.scale.weight`] = f32([4, 384], () => 1 + 0.1 * r.normal());
    t[`${p}.shift.weight`] = normal([4, 384], 0.1);
  };
  ada("backbone.norm");
  for (let i = 0; i < 8; i++) {
    const p = `backbone.convnext.${i}`;
    t[`${p}.dwconv.weight`] = normal([384, 1, 7], 0.2);
    t[`${p}.dwconv.bias`] = normal([384], 0.02);
    ada(`${p}.norm`);
    t[`${p}.pwconv1.weight`] = normal([1152, 384], 0.02);
    t[`${p}.pwconv1.bias`] = normal([1152], 0.02);
    t[`${p}.pwconv2.weight`] = normal([384, 1152], 0.02);
    t[`${p}.pwconv2.bias`] = normal([384], 0.02);
    t[`${p}.gamma`] = f32([384], () => 1 / 8);
  }
  t["backbone.final_layer_norm.weight"] = f32([384], () => 1 + 0.1 * r.normal());
  t["backbone.final_layer_norm.bias"] = normal([384], 0.1);
  t["head.out.weight"] = normal([1282, 384], 0.02);
  t["head.out.bias"] = normal([1282], 0.02);
  t["head.istft.window"] = f32([1280], (i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / 1280));
  return t;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { out: { type: "string", default: "/tmp/valle-codecs" } },
  });
  const out = values.out!.replace(/\/$/, "");
  const encodec = randomEncodec();
  const vocos = randomVocos(encodec);
  for (
    const [dir, tensors, config] of [
      [`${out}/encodec_24khz`, encodec, ENCODEC_24KHZ],
      [`${out}/vocos_encodec_24khz`, vocos, VOCOS_ENCODEC_24KHZ],
    ] as const
  ) {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(
      `${dir}/model.safetensors`,
      serializeSafetensors(tensors, { format: "pt" }),
    );
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2) + "\n");
    console.log(`${dir}: ${Object.keys(tensors).length} tensors`);
  }
}
