import { Vocos } from "../../src/models/vocos/vocos.ts";
import { parseVocosConfig } from "../../src/models/vocos/config.ts";
import { OptionError, WeightsError } from "../../src/errors.ts";
import { goldenTests } from "./_golden.ts";
import { backendTest } from "../_backends.ts";
import { FIXTURES, readFixture, Rng } from "../_helpers.ts";
import { deepStrictEqual, ok, rejects, throws } from "node:assert";

const FOLDER = new URL("vocos-tiny/", FIXTURES);
await goldenTests("Vocos", "vocos-tiny");

const CONFIG = JSON.parse(await Deno.readTextFile(new URL("config.json", FOLDER)));

function randomCodes(rng: Rng, nQ: number, frames: number) {
  return { codes: Int32Array.from({ length: nQ * frames }, () => rng.int(1024)), nQ, frames };
}

backendTest("Vocos: chunked decode equals the unchunked result exactly", async (backend) => {
  const bytes = await readFixture("vocos-tiny/model.safetensors");
  const whole = await Vocos.load(backend, bytes, { config: CONFIG });
  const chunked = await Vocos.load(backend, bytes, { config: CONFIG, chunkFrames: 5 });
  const codes = randomCodes(new Rng(5), 4, 40);
  const expected = await whole.decode(codes);
  deepStrictEqual(expected.length, 40 * 320);
  deepStrictEqual(await chunked.decode(codes), expected);
});

backendTest(
  "Vocos.load() reads the PyTorch pytorch_model.bin like the safetensors",
  async (backend) => {
    const codes = randomCodes(new Rng(6), 2, 9);
    const st = await Vocos.load(backend, await readFixture("vocos-tiny/model.safetensors"), {
      config: CONFIG,
    });
    const bin = await Vocos.load(backend, await readFixture("vocos-tiny/pytorch_model.bin"), {
      config: CONFIG,
    });
    deepStrictEqual(await bin.decode(codes), await st.decode(codes));
  },
);

backendTest(
  "Vocos.decode() infers the bandwidth id from the codebook count and refuses bad codes",
  async (backend) => {
    const vocos = await Vocos.load(backend, await readFixture("vocos-tiny/model.safetensors"), {
      config: CONFIG,
    });
    deepStrictEqual(vocos.codebooks, { bins: 1024, count: 4, perBandwidth: [1, 2, 4] });
    const codes = randomCodes(new Rng(7), 2, 5);
    deepStrictEqual(await vocos.decode(codes), await vocos.decode(codes, { bandwidthId: 1 }));
    await rejects(vocos.decode(randomCodes(new Rng(8), 3, 5)), /3 codebooks match no bandwidth id/);
    await rejects(vocos.decode(codes, { bandwidthId: 3 }), OptionError);
    await rejects(vocos.decode({ codes: new Int32Array([0, -1]), nQ: 1, frames: 2 }), /code -1/);
  },
);

backendTest("Vocos.load() lists missing and mis-shaped tensors", async (backend) => {
  await rejects(
    Vocos.load(backend, await readFixture("vocos-tiny/model.safetensors"), {
      config: {
        ...CONFIG,
        backbone: {
          ...CONFIG.backbone,
          init_args: { ...CONFIG.backbone.init_args, num_layers: 3 },
        },
      },
    }),
    (e) => {
      ok(e instanceof WeightsError, String(e));
      ok(e.problems.some((p) => p.tensor === "backbone.convnext.2.gamma" && p.found === "missing"));
      return true;
    },
  );
});

backendTest(
  "Vocos.load() refuses blocks beyond num_layers instead of ignoring them",
  async (backend) => {
    await rejects(
      Vocos.load(backend, await readFixture("vocos-tiny/model.safetensors"), {
        config: {
          ...CONFIG,
          backbone: {
            ...CONFIG.backbone,
            init_args: { ...CONFIG.backbone.init_args, num_layers: 1 },
          },
        },
      }),
      (e) => {
        ok(e instanceof WeightsError, String(e));
        deepStrictEqual(e.problems, [{
          tensor: "backbone.convnext.1.dwconv.weight",
          expected: "absent (backbone.init_args.num_layers is 1)",
          found: "[32,1,7]",
        }]);
        return true;
      },
    );
  },
);

Deno.test("parseVocosConfig() refuses other variants and more bandwidths than norm rows", () => {
  deepStrictEqual(parseVocosConfig(CONFIG).frameRate, 75);
  throws(
    () =>
      parseVocosConfig({
        head: { class_path: "vocos.heads.ISTFTHead", init_args: { padding: "center" } },
      }),
    (e) => e instanceof WeightsError && e.problems[0].tensor === "head.init_args.padding",
  );
  throws(
    () =>
      parseVocosConfig({
        ...CONFIG,
        feature_extractor: { init_args: { bandwidths: [0.75, 1.5, 3, 6] } },
      }),
    (e) =>
      e instanceof WeightsError &&
      e.problems.length === 1 &&
      e.problems[0].tensor === "feature_extractor.init_args.bandwidths" &&
      /at most 3 bandwidths/.test(e.problems[0].expected),
  );
});
