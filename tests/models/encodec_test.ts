import { Encodec } from "../../src/models/encodec/encodec.ts";
import { parseEncodecConfig } from "../../src/models/encodec/config.ts";
import { OptionError, ValleError, WeightsError } from "../../src/errors.ts";
import {
  parseSafetensors,
  serializeSafetensors,
  type TensorData,
} from "../../src/io/safetensors.ts";
import { goldenTests } from "./_golden.ts";
import { runGoldenFolder } from "../../tools/golden.ts";
import { backendTest } from "../_backends.ts";
import { FIXTURES, readFixture, Rng } from "../_helpers.ts";
import type { Backend } from "../../src/backends/backend.ts";
import { deepStrictEqual, ok, rejects, throws } from "node:assert";

const FOLDER = new URL("encodec-tiny/", FIXTURES);
await goldenTests("Encodec", "encodec-tiny");

async function tiny(backend: Backend, chunkFrames?: number): Promise<Encodec> {
  const config = JSON.parse(await Deno.readTextFile(new URL("config.json", FOLDER)));
  return await Encodec.load(backend, await readFixture("encodec-tiny/model.safetensors"), {
    config,
    chunkFrames,
  });
}

backendTest(
  "Encodec: chunked encode and decode equal the unchunked results exactly",
  async (backend) => {
    const whole = await tiny(backend);
    const chunked = await tiny(backend, 7); // the smallest chunk the frame-rate convolutions allow
    const rng = new Rng(11);
    // 41 frames, the last one partial: chunks of 7 frames cut through every stage.
    const samples = rng.normals(40 * 320 + 123, 0.3);
    const latent = await whole.encodeLatent(samples);
    deepStrictEqual(await chunked.encodeLatent(samples), latent);
    const codes = await whole.encode(samples, 24000, { nQ: 8 });
    deepStrictEqual(await chunked.encode(samples, 24000, { nQ: 8 }), codes);
    const audio = await whole.decode(codes, { length: samples.length });
    deepStrictEqual(await chunked.decode(codes, { length: samples.length }), audio);
    deepStrictEqual(await chunked.dequantize(codes), await whole.dequantize(codes));
    deepStrictEqual(await chunked.quantize(latent, 8), codes);
  },
);

backendTest(
  "Encodec.encode() resamples and picks codebooks from the bandwidth",
  async (backend) => {
    const codec = await tiny(backend);
    const rng = new Rng(3);
    const samples = rng.normals(2000, 0.3);
    deepStrictEqual((await codec.encode(samples, 24000, { bandwidth: 0.75 })).nQ, 1);
    deepStrictEqual((await codec.encode(samples, 24000)).nQ, 8); // 6 kbps
    const from16k = await codec.encode(samples, 16000, { bandwidth: 1.5 });
    deepStrictEqual([from16k.nQ, from16k.frames], [2, Math.ceil(3000 / 320)]);
    await rejects(codec.encode(samples, 24000, { bandwidth: 12 }), OptionError);
    await rejects(codec.encode(samples, 24000, { nQ: 9 }), OptionError);
    await rejects(codec.encode(new Float32Array(0), 24000), OptionError);
  },
);

backendTest(
  "Encodec.encode() refuses non-finite samples, and codes outside the codebooks from bad weights",
  async (backend) => {
    const codec = await tiny(backend);
    const samples = new Rng(5).normals(2000, 0.3);
    for (const [index, value] of [[17, NaN], [1999, -Infinity]]) {
      const bad = samples.slice();
      bad[index] = value;
      await rejects(
        codec.encode(bad, 24000),
        (e: Error) =>
          e instanceof OptionError &&
          e.message ===
            `Cannot encode audio: sample ${index} is ${value}, expected a finite number`,
      );
    }
    await codec.dispose();
    // NaN arithmetic is implementation-defined in WGSL (lavapipe's fast math turns this bias into
    // numbers); the CPU kernels keep IEEE semantics, so the quantizer sees NaN and finds no code.
    if (backend.kind !== "cpu") return;
    const st = parseSafetensors(await readFixture("encodec-tiny/model.safetensors"));
    const config = JSON.parse(await Deno.readTextFile(new URL("config.json", FOLDER)));
    const poisoned: Record<string, TensorData> = {};
    for (const name of st.names) {
      poisoned[name] = { dtype: "F32", shape: st.info(name).shape, data: st.toFloat32(name) };
    }
    (poisoned["encoder.layers.0.conv.bias"].data as Float32Array).fill(NaN);
    const broken = await Encodec.load(backend, serializeSafetensors(poisoned), { config });
    await rejects(
      broken.encode(samples, 24000),
      (e: Error) =>
        e instanceof ValleError && !(e instanceof OptionError) &&
        /^Cannot encode audio: the quantizer returned code -?\d+ at frame 0, level 0, expected 0\.\.1023/
          .test(e.message),
    );
    await broken.dispose();
  },
);

backendTest(
  "Encodec.decode() refuses codes out of range and inconsistent shapes",
  async (backend) => {
    const codec = await tiny(backend);
    const codes = new Int32Array(2 * 3);
    codes[4] = 1024;
    await rejects(codec.decode({ codes, nQ: 2, frames: 3 }), /code 1024 at codebook 1, frame 1/);
    await rejects(codec.decode({ codes: new Int32Array(5), nQ: 2, frames: 3 }), OptionError);
    await rejects(codec.decode({ codes: new Int32Array(27), nQ: 9, frames: 3 }), OptionError);
    await rejects(
      codec.decode({ codes: new Int32Array(6), nQ: 2, frames: 3 }, { length: 961 }),
      OptionError,
    );
  },
);

backendTest(
  "Encodec.load() accepts parametrized weight-norm names and lists every bad tensor",
  async (backend) => {
    const st = parseSafetensors(await readFixture("encodec-tiny/model.safetensors"));
    const config = JSON.parse(await Deno.readTextFile(new URL("config.json", FOLDER)));
    const renamed: Record<string, TensorData> = {};
    for (const name of st.names) {
      const key = name.replace(/\.weight_g$/, ".parametrizations.weight.original0")
        .replace(/\.weight_v$/, ".parametrizations.weight.original1");
      renamed[key] = { dtype: "F32", shape: st.info(name).shape, data: st.toFloat32(name) };
    }
    const a = await Encodec.load(backend, serializeSafetensors(renamed), { config });
    const b = await tiny(backend);
    const codes = { codes: new Int32Array(8 * 4).map((_, i) => (i * 37) % 1024), nQ: 8, frames: 4 };
    deepStrictEqual(await a.decode(codes), await b.decode(codes));

    delete renamed["decoder.layers.1.lstm.weight_hh_l1"];
    renamed["encoder.layers.0.conv.bias"] = { dtype: "F32", shape: [5], data: new Float32Array(5) };
    await rejects(Encodec.load(backend, serializeSafetensors(renamed), { config }), (e) => {
      ok(e instanceof WeightsError, String(e));
      deepStrictEqual(e.problems.map((p) => `${p.tensor}: ${p.found}`).sort(), [
        "decoder.layers.1.lstm.weight_hh_l1: missing",
        "encoder.layers.0.conv.bias: [5]",
      ]);
      return true;
    });
  },
);

backendTest(
  "Encodec.load() refuses LSTM layers beyond num_lstm_layers instead of dropping them",
  async (backend) => {
    const config = JSON.parse(await Deno.readTextFile(new URL("config.json", FOLDER)));
    await rejects(
      Encodec.load(backend, await readFixture("encodec-tiny/model.safetensors"), {
        config: { ...config, num_lstm_layers: 1 },
      }),
      (e) => {
        ok(e instanceof WeightsError, String(e));
        deepStrictEqual(
          e.problems,
          ["encoder.layers.13.lstm", "decoder.layers.1.lstm"].map((p) => ({
            tensor: `${p}.weight_ih_l1`,
            expected: "absent (num_lstm_layers is 1)",
            found: "[256,64]",
          })),
        );
        return true;
      },
    );
  },
);

Deno.test("parseEncodecConfig() derives the 24 kHz constants and refuses the 48 kHz family", () => {
  const c = parseEncodecConfig();
  deepStrictEqual([c.hopLength, c.frameRate, c.numQuantizers, c.dim], [320, 75, 32, 128]);
  throws(
    () =>
      parseEncodecConfig({ use_causal_conv: false, norm_type: "time_group_norm", normalize: true }),
    (e) => {
      ok(e instanceof WeightsError);
      deepStrictEqual(e.problems.map((p) => p.tensor), [
        "use_causal_conv",
        "norm_type",
        "normalize",
      ]);
      return true;
    },
  );
});

backendTest(
  "the golden runner fails, never skips, a case kind or expected tensor it does not know",
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", FOLDER)));
      const entry = manifest.files["decode_K8_T1.safetensors"];
      manifest.files = {
        "a.safetensors": { ...entry, kind: "encodec.mystery" },
        "b.safetensors": {
          ...entry,
          tensors: { ...entry.tensors, extra: { role: "expected", shape: [1], dtype: "float32" } },
        },
      };
      for (const name of ["model.safetensors", "config.json"]) {
        await Deno.copyFile(new URL(name, FOLDER), `${dir}/${name}`);
      }
      for (const name of ["a.safetensors", "b.safetensors"]) {
        await Deno.copyFile(new URL("decode_K8_T1.safetensors", FOLDER), `${dir}/${name}`);
      }
      await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest));
      const results = [];
      for await (const r of runGoldenFolder(new URL(`file://${dir}/`))) results.push(r);
      deepStrictEqual(results.map((r) => [r.name, r.passed]), [
        ["a.safetensors", false],
        ["b.safetensors:quantized", true],
        ["b.safetensors:audio", true],
        ["b.safetensors:extra", false],
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
