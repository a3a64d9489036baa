/**
 * Weight-file checks of the VALL-E loader: the config derived from metadata and shapes, both
 * layouts, and one typed error listing every problem of a bad file.
 */

import assert from "node:assert/strict";
import { WeightsError } from "../../../src/errors.ts";
import {
  parseSafetensors,
  type Safetensors,
  serializeSafetensors,
  type TensorData,
} from "../../../src/io/safetensors.ts";
import { readValleConfig, valleHeads } from "../../../src/models/valle/config.ts";
import { checkValleWeights } from "../../../src/models/valle/weights.ts";
import { ValleModel } from "../../../src/models/valle/model.ts";
import { makeRandomValle } from "../../../tools/make_valle_model.ts";
import { readFixture } from "../../_helpers.ts";
import { backendTest } from "../../_backends.ts";

const TINY = parseSafetensors(await readFixture("valle-tiny/model.sft"), { source: "model.sft" });

/** The file with tensors dropped, replaced, and metadata overridden. */
function edit(
  st: Safetensors,
  change: {
    drop?: string[];
    replace?: Record<string, TensorData>;
    metadata?: Record<string, string>;
  },
): Safetensors {
  const tensors: Record<string, TensorData> = {};
  for (const name of st.names) {
    if (change.drop?.includes(name)) continue;
    const info = st.info(name);
    tensors[name] = change.replace?.[name] ??
      { dtype: info.dtype, shape: info.shape, data: st.bytes(name) };
  }
  const bytes = serializeSafetensors(tensors, { ...st.metadata, ...change.metadata });
  return parseSafetensors(bytes, { source: "edited.sft" });
}

/** The WeightsError that checking `st` throws. */
function errorOf(st: Safetensors): WeightsError {
  try {
    checkValleWeights(st);
  } catch (e) {
    assert.ok(e instanceof WeightsError, `expected a WeightsError, got ${e}`);
    return e;
  }
  throw new Error("checkValleWeights() accepted a bad file");
}

function problemsOf(st: Safetensors): { tensor: string; expected: string; found: string }[] {
  return [...errorOf(st).problems];
}

Deno.test("readValleConfig() derives the golden tiny model's config from metadata and shapes", () => {
  const c = readValleConfig(TINY);
  assert.deepEqual(
    [
      c.dModel,
      c.nHeads,
      c.headDim,
      c.nLayers,
      c.dFf,
      c.nLevels,
      c.nAudio,
      c.nPhn,
      c.nLangs,
      c.nLen,
    ],
    [32, 4, 8, 2, 128, 8, 1024, 256, 6, 11],
  );
  assert.deepEqual(
    [c.hasNarLen, c.audioEmbeddingSums, c.unifiedPositionIds, c.noncausalMasks, c.classifiersBias],
    [true, true, false, true, true],
  );
  assert.deepEqual(c.name, "ar+nar-len");
  const heads = valleHeads(c);
  assert.deepEqual([heads.ar, heads.nar(7), heads.narLen, heads.stt, heads.len, heads.count], [
    0,
    7,
    8,
    9,
    10,
    11,
  ]);
});

Deno.test("the older ar+nar layout has no NAR-len/len heads and its STT head is proj.L", () => {
  const st = parseSafetensors(makeRandomValle({ layout: "ar+nar", levels: 4, audioTokens: 16 }));
  const c = checkValleWeights(st);
  assert.deepEqual([c.hasNarLen, c.nLevels, c.nAudio, c.nLen], [false, 4, 16, 0]);
  const heads = valleHeads(c);
  assert.deepEqual([heads.stt, heads.narLen, heads.len, heads.count], [4, -1, -1, 5]);
});

Deno.test("a missing tensor is reported with its name and expected shape", () => {
  const problems = problemsOf(edit(TINY, { drop: ["model.layers.1.mlp.up_proj.weight"] }));
  assert.deepEqual(problems, [
    { tensor: "model.layers.1.mlp.up_proj.weight", expected: "[128, 32]", found: "missing" },
  ]);
});

Deno.test("a mis-shaped tensor is reported with expected and found shapes", () => {
  const bad = { dtype: "F16" as const, shape: [1023, 32], data: new Uint16Array(1023 * 32) };
  const problems = problemsOf(edit(TINY, { replace: { "classifiers.proj.3.weight": bad } }));
  assert.deepEqual(problems, [
    { tensor: "classifiers.proj.3.weight", expected: "[1024, 32]", found: "[1023, 32]" },
  ]);
});

Deno.test("a duration table of other than 11 tokens (digits and stop) is refused", () => {
  const f16 = (shape: number[]): TensorData => ({
    dtype: "F16",
    shape,
    data: new Uint16Array(shape.reduce((a, b) => a * b, 1)),
  });
  const problems = problemsOf(edit(TINY, {
    replace: {
      "len_emb.weight": f16([12, 32]),
      "classifiers.proj.10.weight": f16([12, 32]),
      "classifiers.proj.10.bias": f16([12]),
    },
  }));
  assert.deepEqual(problems, [
    { tensor: "len_emb.weight", expected: "[11, 32]", found: "[12, 32]" },
    { tensor: "classifiers.proj.10.weight", expected: "[11, 32]", found: "[12, 32]" },
    { tensor: "classifiers.proj.10.bias", expected: "[11]", found: "[12]" },
  ]);
});

Deno.test("bad config JSON is a WeightsError, not a SyntaxError", () => {
  const problems = problemsOf(edit(TINY, { metadata: { config: '{"size": {"dim": 32,' } }));
  assert.deepEqual(problems[0].tensor, "__metadata__.config");
  assert.ok(problems[0].found.startsWith("unparsable JSON"), problems[0].found);
  // Without the config the head count cannot be known (d 32 is no multiple of 64): also listed.
  assert.deepEqual(problems.map((p) => p.tensor), [
    "__metadata__.config",
    "__metadata__.config.size",
  ]);
});

Deno.test("every problem of a file is listed in one WeightsError", () => {
  const bad = { dtype: "F16" as const, shape: [32, 31], data: new Uint16Array(32 * 31) };
  const st = edit(TINY, {
    drop: ["sep", "classifiers.proj.10.bias"],
    replace: { "model.layers.0.self_attn.k_proj.weight": bad },
    metadata: {
      config: JSON.stringify({ size: { dim: 32, heads: 4, layers: 2 }, arch_type: "retnet" }),
    },
  });
  const e = errorOf(st);
  assert.deepEqual(e.problems.map((p) => p.tensor).sort(), [
    "__metadata__.config.arch_type",
    "classifiers.proj.10.bias",
    "model.layers.0.self_attn.k_proj.weight",
    "sep",
  ]);
  assert.ok(e.message.startsWith('Cannot load weights from "edited.sft": 4 problem(s)'), e.message);
});

Deno.test("v2 models and a head count that does not divide d are refused", () => {
  const st = edit(TINY, {
    metadata: { config: JSON.stringify({ version: 7, size: { dim: 32, heads: 5 } }) },
  });
  assert.deepEqual(problemsOf(st).map((p) => p.tensor).sort(), [
    "__metadata__.config.size",
    "__metadata__.config.version",
  ]);
});

Deno.test("without a config the head dimension is taken as 64 and flags keep their defaults", () => {
  const st = parseSafetensors(makeRandomValle({ dim: 128, heads: 2, layers: 1 }));
  const tensors = st.names.map((n) => [n, { ...st.info(n), data: st.bytes(n) }]);
  const noConfig = parseSafetensors(serializeSafetensors(Object.fromEntries(tensors)));
  assert.equal(noConfig.metadata.config, undefined);
  const c = checkValleWeights(noConfig);
  assert.deepEqual([c.dModel, c.nHeads, c.headDim, c.noncausalMasks, c.audioEmbeddingSums], [
    128,
    2,
    64,
    false,
    true,
  ]);
});

backendTest(
  "ValleModel.load() rejects bad weights with the typed error before uploading",
  async (backend) => {
    const st = edit(TINY, { drop: ["model.norm.weight"] });
    await assert.rejects(ValleModel.load(st, { backend }), (e) => {
      assert.ok(e instanceof WeightsError);
      assert.deepEqual(e.problems, [
        { tensor: "model.norm.weight", expected: "[32]", found: "missing" },
      ]);
      return true;
    });
  },
);

backendTest(
  "F16, BF16 and F32 files load; F16 and F32 roundings of one model give close logits",
  async (backend) => {
    const phonemes = [1, 5, 9, 2];
    const results: Float32Array[] = [];
    for (const dtype of ["F16", "F32"] as const) {
      const bytes = makeRandomValle({ dtype, seed: 3, audioTokens: 64 });
      const valle = await ValleModel.load(bytes, { backend, precision: "f32" });
      results.push((await valle.logits({ mode: "ar", phonemes })).logits);
      valle.dispose();
    }
    const bf16 = await ValleModel.load(
      makeRandomValle({ dtype: "BF16", seed: 3, audioTokens: 64 }),
      {
        backend,
      },
    );
    const { logits } = await bf16.logits({ mode: "ar", phonemes });
    bf16.dispose();
    assert.deepEqual(logits.length, 65);
    // F16 values are exactly representable in F32: the two files hold different roundings of the
    // same normals, so they agree only roughly; BF16 runs and stays finite.
    assert.ok(results[0].every((v, i) => Math.abs(v - results[1][i]) < 0.05), "F16 vs F32 logits");
    assert.ok(logits.every(Number.isFinite), "BF16 logits are finite");
  },
);
