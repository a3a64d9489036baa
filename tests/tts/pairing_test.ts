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
