/**
 * The tiny models of the end-to-end tests, in the released layouts: VALL-E valle-tiny (d 32,
 * 8 levels, 1024 codes), EnCodec encodec-tiny (8 codebooks at 6 kbps) and a tiny Vocos for 8
 * codebooks (vocos-tiny's backbone and head with encodec-tiny's 8 codebooks and bandwidths
 * 1.5/3/6 kbps, so that bandwidth id 2 means 8 codebooks as in the released model).
 */

import { parseSafetensors, serializeSafetensors, type TensorData } from "../src/io/safetensors.ts";
import { readFixture } from "./_helpers.ts";

/** Weight files and configurations, as a user would pass them. */
export interface TinyModels {
  model: Uint8Array<ArrayBuffer>;
  codec: Uint8Array<ArrayBuffer>;
  codecConfig: Record<string, unknown>;
  vocoder: Uint8Array<ArrayBuffer>;
  vocoderConfig: Record<string, unknown>;
}

/** Builds the tiny models from the fixtures. */
export async function tinyModels(): Promise<TinyModels> {
  const text = async (path: string) =>
    JSON.parse(new TextDecoder().decode(await readFixture(path)));
  const codec = await readFixture("encodec-tiny/model.safetensors");
  const vocos = parseSafetensors(await readFixture("vocos-tiny/model.safetensors"));
  const encodec = parseSafetensors(codec);
  const tensors: Record<string, TensorData> = {};
  for (const name of vocos.names) {
    const info = vocos.info(name);
    tensors[name] = { dtype: "F32", shape: info.shape, data: vocos.toFloat32(name) };
  }
  const embeds = Array.from(
    { length: 8 },
    (_, q) => encodec.toFloat32(`quantizer.layers.${q}.codebook.embed`),
  );
  const codebooks = new Float32Array(embeds.reduce((n, e) => n + e.length, 0));
  embeds.reduce((at, e) => (codebooks.set(e, at), at + e.length), 0);
  tensors["feature_extractor.codebook_weights"] = {
    dtype: "F32",
    shape: [8 * 1024, 8],
    data: codebooks,
  };
  const vocoderConfig = await text("vocos-tiny/config.json");
  vocoderConfig.feature_extractor.init_args.bandwidths = [1.5, 3.0, 6.0];
  return {
    model: await readFixture("valle-tiny/model.sft") as Uint8Array<ArrayBuffer>,
    codec: codec as Uint8Array<ArrayBuffer>,
    codecConfig: await text("encodec-tiny/config.json"),
    vocoder: serializeSafetensors(tensors),
    vocoderConfig,
  };
}

/** A 1.2 s reference clip: a chirp with harmonics, as 16-bit WAV-ready samples at 16 kHz. */
export function referenceClip(): { samples: Float32Array; sampleRate: number } {
  const sampleRate = 16000;
  const samples = Float32Array.from({ length: 1.2 * sampleRate }, (_, i) => {
    const t = i / sampleRate;
    const f = 120 + 80 * t;
    return 0.4 * Math.sin(2 * Math.PI * f * t) + 0.2 * Math.sin(4 * Math.PI * f * t + 1);
  });
  return { samples, sampleRate };
}
