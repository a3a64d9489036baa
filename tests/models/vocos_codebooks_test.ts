/**
 * Vocos's codebook size and count come from its weights (upstream takes them from its EnCodec;
 * `config.yaml` does not say them): a Vocos over 256-entry codebooks loads and decodes like the
 * CPU oracle, and a Vocos whose codebooks conflict with the paired EnCodec's is refused by name.
 */

import { WeightsError } from "../../src/errors.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { type EncodecConfigJson, parseEncodecConfig } from "../../src/models/encodec/config.ts";
import { Vocos } from "../../src/models/vocos/vocos.ts";
import { tolerance } from "../../tools/golden/codec.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, readFixture, Rng } from "../_helpers.ts";
import { tinyVocoder } from "../_tiny_models.ts";
import { vocosDecode } from "../reference/vocos.ts";
import { deepStrictEqual, match, ok, rejects } from "node:assert";

const text = async (path: string) => JSON.parse(new TextDecoder().decode(await readFixture(path)));
/** vocos-tiny: bandwidths 0.75, 1.5, 3 kbps, codeword dimension 8, hop 320. */
const CONFIG = await text("vocos-tiny/config.json");
/** encodec-tiny: 8 codebooks of 1024 codewords of 8. */
const ENCODEC: EncodecConfigJson = await text("encodec-tiny/config.json");

function randomCodes(rng: Rng, nQ: number, frames: number, bins: number) {
  return { codes: Int32Array.from({ length: nQ * frames }, () => rng.int(bins)), nQ, frames };
}

backendTest(
  "Vocos reads 256-entry codebooks from its weights and decodes like the CPU oracle",
  async (backend) => {
    // 3 kbps at 75 Hz with 8-bit codes: ⌊3000 / (8 · 75)⌋ = 5 codebooks of 256, (1280, 8).
    const bytes = await tinyVocoder(5, 256);
    const vocos = await Vocos.load(backend, bytes, { config: CONFIG });
    deepStrictEqual(vocos.codebooks, { bins: 256, count: 5, perBandwidth: [1, 2, 5] });
    const st = parseSafetensors(bytes);
    const oracle = { ...vocos.config, bins: 256 };
    for (const nQ of [5, 2]) {
      const codes = randomCodes(new Rng(nQ), nQ, 11, 256);
      let features: ArrayLike<number> = [];
      const audio = await vocos.decode(codes, {
        onStage: (stage, values) => stage === "features" && (features = values),
      });
      const expected = vocosDecode((n) => st.toFloat32(n), oracle, codes, nQ === 5 ? 2 : 1);
      assertClose(features, expected.features, {
        atol: tolerance("vocos", "features"),
        label: `features of ${nQ} codebooks`,
      });
      assertClose(audio, expected.audio, {
        atol: tolerance("vocos", "audio"),
        label: `audio of ${nQ} codebooks`,
      });
    }
    // The paired EnCodec of the same codebook size agrees.
    const encodec = parseEncodecConfig({ ...ENCODEC, codebook_size: 256 });
    const paired = await Vocos.load(backend, bytes, { config: CONFIG, encodec });
    deepStrictEqual(paired.codebooks, vocos.codebooks);
  },
);

backendTest(
  "Vocos.load() refuses a paired EnCodec whose codebooks or frame conflict, naming tensor and shapes",
  async (backend) => {
    const check = (expected: RegExp, found: string) => (e: unknown) => {
      ok(e instanceof WeightsError, String(e));
      deepStrictEqual(e.problems.length, 1, e.message);
      deepStrictEqual(e.problems[0].tensor, "feature_extractor.codebook_weights");
      match(e.problems[0].expected, expected);
      deepStrictEqual(e.problems[0].found, found);
      match(e.message, /feature_extractor\.codebook_weights: expected \[\d+,\d+\] .*, found \[/);
      return true;
    };
    const vocoder = await tinyVocoder(5, 256);
    // encodec-tiny has 1024-entry codebooks: the Vocos would hold 4 of them, (4096, 8).
    await rejects(
      Vocos.load(backend, vocoder, { config: CONFIG, encodec: parseEncodecConfig(ENCODEC) }),
      check(
        /^\[4096,8\] \(the paired EnCodec's first 4 codebooks of 1024 codewords of 8/,
        "[1280,8]",
      ),
    );
    // Same codebooks, but frames of 8 samples instead of 320.
    const fast = parseEncodecConfig({ ...ENCODEC, codebook_size: 256, upsampling_ratios: [4, 2] });
    await rejects(
      Vocos.load(backend, vocoder, { config: CONFIG, encodec: fast }),
      (e) => {
        ok(e instanceof WeightsError, String(e));
        // At 3000 frames per second 3 kbps is one codebook, so the table conflicts too.
        deepStrictEqual(e.problems.map((p) => p.tensor), [
          "head.init_args.hop_length",
          "feature_extractor.codebook_weights",
        ]);
        deepStrictEqual(e.problems[0], {
          tensor: "head.init_args.hop_length",
          expected: "8 samples at 24000 Hz (the paired EnCodec's frame)",
          found: "320 samples at 24000 Hz",
        });
        return true;
      },
    );
    // Same codebook size, other codeword dimension.
    const wide = parseEncodecConfig({
      ...ENCODEC,
      codebook_size: 256,
      hidden_size: 16,
      codebook_dim: 16,
    });
    await rejects(
      Vocos.load(backend, vocoder, { config: CONFIG, encodec: wide }),
      check(
        /^\[1280,16\] \(the paired EnCodec's first 5 codebooks of 256 codewords of 16/,
        "[1280,8]",
      ),
    );
  },
);

backendTest("Vocos.load() names codebook tables that fit no size, or several", async (backend) => {
  // 3 codebooks of 256 fit no power-of-two size at 3 kbps (5 of 256 or 4 of 1024 would).
  await rejects(
    Vocos.load(backend, await tinyVocoder(3, 256), { config: CONFIG }),
    (e) => {
      ok(e instanceof WeightsError, String(e));
      deepStrictEqual(e.problems[0].found, "[768,8]");
      match(e.problems[0].expected, /power-of-two bins, e\.g\. \[4096,8\] for 1024/);
      return true;
    },
  );
  // At 0.6 kbps, (16, 8) is 8 codebooks of 2, 4 of 4 or 2 of 8: only the EnCodec can tell.
  const config = { ...CONFIG, feature_extractor: { init_args: { bandwidths: [0.6] } } };
  const vocoder = await tinyVocoder(4, 4);
  await rejects(Vocos.load(backend, vocoder, { config }), (e) => {
    ok(e instanceof WeightsError, String(e));
    match(
      e.problems[0].expected,
      /3 fit \(8 codebooks of 2, 4 codebooks of 4, 2 codebooks of 8\): pass the paired EnCodec/,
    );
    return true;
  });
  const encodec = parseEncodecConfig({ ...ENCODEC, codebook_size: 4 });
  const paired = await Vocos.load(backend, vocoder, { config, encodec });
  deepStrictEqual(paired.codebooks, { bins: 4, count: 4, perBandwidth: [4] });
});

Deno.test("the CPU oracle reproduces the golden vocos-tiny audio of the original", async () => {
  const model = parseSafetensors(await readFixture("vocos-tiny/model.safetensors"));
  const config = { inputChannels: 8, dim: 32, intermediateDim: 96, numLayers: 2, hopLength: 320 };
  for (const file of ["decode_bw2_T7.safetensors", "decode_bw0_T20.safetensors"]) {
    const st = parseSafetensors(await readFixture(`vocos-tiny/${file}`));
    const [nQ, frames] = st.info("codes").shape;
    const { audio } = vocosDecode(
      (n) => model.toFloat32(n),
      { ...config, bins: 1024 },
      { codes: st.toInt32("codes"), nQ, frames },
      st.toInt32("bandwidth_id")[0],
    );
    assertClose(audio, st.toFloat32("audio"), { atol: tolerance("vocos", "audio"), label: file });
  }
});
