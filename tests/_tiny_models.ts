/**
 * The tiny models of the end-to-end tests, in the released layouts: VALL-E valle-tiny (d 32,
 * 8 levels, 1024 codes), EnCodec encodec-tiny (8 codebooks at 6 kbps) and a tiny Vocos for 8
 * codebooks (vocos-tiny's backbone and head with encodec-tiny's 8 codebooks and bandwidths
 * 1.5/3/6 kbps, so that bandwidth id 2 means 8 codebooks as in the released model), and tiny
 * Vocos models over other codebooks.
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
  const vocoderConfig = await text("vocos-tiny/config.json");
  vocoderConfig.feature_extractor.init_args.bandwidths = [1.5, 3.0, 6.0];
  return {
    model: await readFixture("valle-tiny/model.sft") as Uint8Array<ArrayBuffer>,
    codec: await readFixture("encodec-tiny/model.safetensors") as Uint8Array<ArrayBuffer>,
    codecConfig: await text("encodec-tiny/config.json"),
    vocoder: await tinyVocoder(8, 1024),
    vocoderConfig,
  };
}

/**
 * vocos-tiny's backbone and head over other codebooks: `feature_extractor.codebook_weights` is
 * the first `bins` codewords of each of encodec-tiny's first `count` codebooks, stacked as
 * upstream's `EncodecFeatures` does ((count · bins, 8), codeword j of codebook q at row q·bins + j).
 */
export async function tinyVocoder(count: number, bins: number): Promise<Uint8Array<ArrayBuffer>> {
  const vocos = parseSafetensors(await readFixture("vocos-tiny/model.safetensors"));
  const encodec = parseSafetensors(await readFixture("encodec-tiny/model.safetensors"));
  const tensors: Record<string, TensorData> = {};
  for (const name of vocos.names) {
    const info = vocos.info(name);
    tensors[name] = { dtype: "F32", shape: info.shape, data: vocos.toFloat32(name) };
  }
  const name = (q: number) => `quantizer.layers.${q}.codebook.embed`;
  const dim = encodec.info(name(0)).shape[1];
  const codebooks = new Float32Array(count * bins * dim);
  for (let q = 0; q < count; q++) {
    codebooks.set(encodec.toFloat32(name(q)).subarray(0, bins * dim), q * bins * dim);
  }
  tensors["feature_extractor.codebook_weights"] = {
    dtype: "F32",
    shape: [count * bins, dim],
    data: codebooks,
  };
  return serializeSafetensors(tensors);
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
