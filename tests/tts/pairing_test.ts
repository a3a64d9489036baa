/**
 * A VALL-E model and an EnCodec that do not speak the same codes: the model's audio vocabulary
 * (1024 tokens in valle-tiny) against a codec with 512-entry codebooks. Loading them together is
 * a `WeightsError` naming the tensor and both sizes, not speech from the wrong codewords.
 */

import { equal, ok, rejects } from "node:assert/strict";
import { WeightsError } from "../../src/errors.ts";
import {
  parseSafetensors,
  serializeSafetensors,
  type TensorData,
} from "../../src/io/safetensors.ts";
import { Valle } from "../../src/tts/valle.ts";
import { tinyModels } from "../_tiny_models.ts";

/** encodec-tiny with each codebook cut to its first `bins` entries. */
function smallerCodebooks(codec: Uint8Array, bins: number): Uint8Array<ArrayBuffer> {
  const st = parseSafetensors(codec);
  const tensors: Record<string, TensorData> = {};
  for (const name of st.names) {
    const { shape } = st.info(name);
    const data = st.toFloat32(name);
    if (/^quantizer\.layers\.\d+\.codebook\.(embed|embed_avg|cluster_size)$/.test(name)) {
      const width = shape.slice(1).reduce((a, b) => a * b, 1);
      tensors[name] = {
        dtype: "F32",
        shape: [bins, ...shape.slice(1)],
        data: data.slice(0, bins * width),
      };
    } else {
      tensors[name] = { dtype: "F32", shape, data };
    }
  }
  return serializeSafetensors(tensors);
}

Deno.test("a model whose audio vocabulary is not the codec's codebook size is a WeightsError", async () => {
  const tiny = await tinyModels();
  const codec = smallerCodebooks(tiny.codec, 512);
  const error = await rejects(
    Valle.load({
      ...tiny,
      codec,
      codecConfig: { ...tiny.codecConfig, codebook_size: 512 },
      backend: "cpu",
      threads: 1,
      cache: false,
    }),
    (e: unknown) => {
      ok(e instanceof WeightsError, String(e));
      ok(e.message.includes("proms_emb.embeddings.0.weight"), e.message);
      ok(e.message.includes("expected 512 audio tokens"), e.message);
      ok(e.message.includes("found 1024"), e.message);
      equal(e.problems.length, 1);
      return true;
    },
  );
  equal(error, undefined);
});

Deno.test("a vocoder without a bandwidth for the model's levels is a WeightsError before generating", async () => {
  const tiny = await tinyModels();
  const vocoderConfig = structuredClone(tiny.vocoderConfig) as {
    feature_extractor: { init_args: { bandwidths: number[] } };
  };
  vocoderConfig.feature_extractor.init_args.bandwidths = [1.5, 3.0]; // 2 and 4 codebooks
  const st = parseSafetensors(tiny.vocoder);
  const tensors: Record<string, TensorData> = {};
  for (const name of st.names) {
    const { shape } = st.info(name);
    const data = st.toFloat32(name);
    tensors[name] = name === "feature_extractor.codebook_weights"
      ? { dtype: "F32", shape: [4 * 1024, shape[1]], data: data.slice(0, 4 * 1024 * shape[1]) }
      : { dtype: "F32", shape, data };
  }
  const phases: string[] = [];
  const valle = await Valle.load({
    ...tiny,
    vocoder: serializeSafetensors(tensors),
    vocoderConfig,
    backend: "cpu",
    threads: 1,
    cache: false,
    onProgress: (p) => phases.push(p.phase),
  });
  await rejects(valle.synthesize("Hello.", { language: "en", maxSeconds: 0.2 }), (e: unknown) => {
    ok(e instanceof WeightsError, String(e));
    equal(
      e.problems[0].expected,
      "a bandwidth of 8 codebooks (the model's RVQ levels)",
    );
    equal(e.problems[0].found, "bandwidths of 2, 4 codebooks");
    return true;
  });
  ok(!phases.includes("level0"), `generated before failing: ${phases}`);
  // The instance stays usable with the EnCodec decoder.
  const speech = await valle.synthesize("Hello.", {
    language: "en",
    maxSeconds: 0.2,
    decoder: "encodec",
  });
  ok(speech.samples.length > 0);
  await valle.dispose();
});
