/**
 * EnCodec configurations no golden folder covers run through the same code: other ratios,
 * widths, kernels, residual layers with dilation growth, one LSTM layer, identity shortcuts,
 * trim_right_ratio 0.5 (a decoder that reads one frame ahead), compared with the float64 oracle
 * of tests/reference/encodec.ts.
 */

import { Encodec } from "../../src/models/encodec/encodec.ts";
import type { EncodecConfigJson } from "../../src/models/encodec/config.ts";
import { WeightsError } from "../../src/errors.ts";
import { serializeSafetensors, type TensorData } from "../../src/io/safetensors.ts";
import type { Backend } from "../../src/backends/backend.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";
import * as oracle from "../reference/encodec.ts";
import { deepStrictEqual, ok } from "node:assert";

const CONFIG = {
  sampling_rate: 24000,
  num_filters: 2,
  upsampling_ratios: [4, 2],
  num_residual_layers: 2,
  kernel_size: 5,
  last_kernel_size: 3,
  residual_kernel_size: 5,
  dilation_growth_rate: 3,
  compress: 2,
  num_lstm_layers: 1,
  hidden_size: 4,
  codebook_dim: 4,
  codebook_size: 1024,
  target_bandwidths: [30, 60], // frame rate 3000: 1 and 2 codebooks
  use_conv_shortcut: false,
  trim_right_ratio: 0.5,
} satisfies EncodecConfigJson & oracle.OracleConfig;

/** Random weights for every tensor the loader asks for (taken from its own error listing). */
async function randomWeights(backend: Backend): Promise<Record<string, TensorData>> {
  const empty = serializeSafetensors({
    unused: { dtype: "F32", shape: [1], data: new Float32Array(1) },
  });
  let problems: readonly { tensor: string; expected: string }[] = [];
  await Encodec.load(backend, empty, { config: CONFIG }).catch((e) => {
    ok(e instanceof WeightsError);
    problems = e.problems;
  });
  const rng = new Rng(99);
  const tensors: Record<string, TensorData> = {};
  const add = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    tensors[name] = { dtype: "F32", shape, data: rng.normals(n, scale).map((v) => v + offset) };
  };
  for (const p of problems) {
    const shape = JSON.parse(p.expected.split(" ")[0]) as number[];
    if (p.tensor.endsWith(".weight_v")) {
      add(p.tensor, shape, 1);
      add(p.tensor.replace(/_v$/, "_g"), [shape[0], 1, 1], 0.2, 1);
    } else if (p.tensor.includes(".lstm.")) add(p.tensor, shape, 0.5);
    else if (p.tensor.endsWith(".embed")) add(p.tensor, shape, 1);
    else add(p.tensor, shape, 0.1);
  }
  return tensors;
}

backendTest(
  "Encodec runs a non-default configuration like the float64 oracle, chunked or not",
  async (backend) => {
    const tensors = await randomWeights(backend);
    const weights = (name: string) => {
      ok(name in tensors, `the oracle needs "${name}", which the loader did not ask for`);
      return tensors[name].data as Float32Array;
    };
    const bytes = serializeSafetensors(tensors);
    const codec = await Encodec.load(backend, bytes, { config: CONFIG });
    deepStrictEqual([codec.config.hopLength, codec.config.numQuantizers], [8, 2]);
    const audio = new Rng(1).normals(8 * 25 + 3, 0.5); // 26 frames, the last one partial
    const frames = 26;

    const expected = oracle.encode(weights, CONFIG, audio);
    const latent = await codec.encodeLatent(audio);
    assertClose(latent, expected.x, { atol: 1e-5, rtol: 1e-5, label: "latent" });

    const table = new Float32Array(2 * 1024 * 4);
    table.set(weights("quantizer.layers.0.codebook.embed"), 0);
    table.set(weights("quantizer.layers.1.codebook.embed"), 1024 * 4);
    const codes = await codec.encode(audio, 24000, { bandwidth: 60 });
    deepStrictEqual(
      Array.from(codes.codes),
      Array.from(ref.rvqEncode(expected.x, frames, 4, table, 1024, 2)),
    );

    const quantized = ref.codebookSum(codes.codes, 2, frames, table, 1024, 4);
    const audioOut = await codec.decode(codes, { length: audio.length });
    const expectedAudio = oracle.decode(weights, CONFIG, quantized, frames).x;
    assertClose(audioOut, Array.from(expectedAudio).slice(0, audio.length), {
      atol: 1e-5,
      rtol: 1e-5,
      label: "audio",
    });

    // Chunks of the smallest allowed size; the decoder reads a frame ahead, so it runs whole.
    const chunked = await Encodec.load(backend, bytes, { config: CONFIG, chunkFrames: 5 });
    deepStrictEqual(await chunked.encodeLatent(audio), latent);
    deepStrictEqual(await chunked.decode(codes, { length: audio.length }), audioOut);
  },
);
