/**
 * LoRA adapters on a tiny random VALL-E, on every backend: logits with a LoRA equal the logits of
 * the base with the LoRA merged in float64 on the CPU (both upstream spellings, f32 and f16
 * weights, every head), strength 0 and removal give the base bit for bit, a swap equals the
 * second LoRA alone, embeddings saved with a LoRA replace the base's while it is active, and
 * LoRAs that do not fit give a `LoraError` naming the tensor and the shapes.
 */

import assert from "node:assert/strict";
import { LoraError, OptionError } from "../../../src/errors.ts";
import { parseSafetensors, serializeSafetensors } from "../../../src/io/safetensors.ts";
import { type LogitsRequest, ValleModel } from "../../../src/models/valle/model.ts";
import type { Backend } from "../../../src/backends/backend.ts";
import { makeRandomValle } from "../../../tools/make_valle_model.ts";
import { backendTest, WEIGHT_DTYPES } from "../../_backends.ts";
import { assertClose } from "../../_helpers.ts";
import { makeTinyLora, mergeOracle, type TinyLora } from "../../_tiny_lora.ts";

const AUDIO = 64;
const BASE = makeRandomValle({ levels: 4, audioTokens: AUDIO, dtype: "F32", seed: 5 });
const BASE_ST = parseSafetensors(BASE);
const PROMPT = {
  data: Array.from({ length: 6 * 4 }, (_, i) => (i * 7) % AUDIO),
  frames: 6,
  levels: 4,
};
const COND = { phonemes: [1, 30, 31, 40, 2], language: 0, prompt: PROMPT };
const RESPONSE = {
  data: Array.from({ length: 5 * 4 }, (_, i) => (i * 3 + 1) % AUDIO),
  frames: 5,
  levels: 4,
};
/** Passes through every head the model has: AR, a NAR level, NAR-len, duration. */
const PASSES: LogitsRequest[] = [
  { ...COND, mode: "ar", response: [3, 9, 27] },
  { ...COND, mode: "nar", level: 2, response: RESPONSE },
  { ...COND, mode: "nar-len", response: [5, AUDIO, AUDIO, 7] },
  { ...COND, mode: "len", lengthDigits: [0, 4] },
];

/** The logits of every pass, concatenated. */
async function allLogits(valle: ValleModel): Promise<Float32Array> {
  const parts = [];
  for (const pass of PASSES) parts.push((await valle.logits(pass)).logits);
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Logits of the float64-merged oracle model. */
async function oracleLogits(
  backend: Backend,
  precision: "f32" | "f16",
  loras: { lora: TinyLora; strength: number }[],
): Promise<Float32Array> {
  const oracle = await ValleModel.load(mergeOracle(BASE, loras, precision), { backend, precision });
  try {
    return await allLogits(oracle);
  } finally {
    await oracle.dispose();
  }
}

/**
 * The logits tests' tolerance (golden_test.ts). The merged weights differ from the oracle's only
 * where the f32 sum and the float64 sum round to different neighbours of the weight type
 * (measured: at most 1.7e-5 on these logits with f16 weights, 1e-6 with f32).
 */
const LOGIT_TOLERANCE = { atol: 1e-4 };

for (const spelling of ["linear", "parametrize"] as const) {
  for (const precision of WEIGHT_DTYPES) {
    backendTest(
      `a ${spelling} LoRA's logits equal a float64 merge, ${precision} weights`,
      async (backend) => {
        const valle = await ValleModel.load(BASE, { backend, precision });
        const lora = makeTinyLora(BASE_ST, { spelling, rank: 4, alpha: 8, seed: 3 });
        const base = await allLogits(valle);
        const active = await valle.setLora(lora.bytes, { strength: 0.7 });
        assert.equal(active?.targets.length, 12);
        assert.equal(active?.rank, 4);
        const merged = await allLogits(valle);
        const expected = await oracleLogits(backend, precision, [{ lora, strength: 0.7 }]);
        assertClose(merged, expected, { ...LOGIT_TOLERANCE, label: "logits" });
        // The LoRA changes the logits far beyond the tolerance.
        assert.ok(Math.max(...merged.map((v, i) => Math.abs(v - base[i]))) > 0.05);
        await valle.dispose();
      },
    );
  }
}

backendTest("strength 0 and removal give the base logits bit for bit", async (backend) => {
  for (const precision of WEIGHT_DTYPES) {
    const valle = await ValleModel.load(BASE, { backend, precision });
    const base = await allLogits(valle);
    const lora = makeTinyLora(BASE_ST, { seed: 4 });
    await valle.setLora(lora.bytes, { strength: 0 });
    assert.deepEqual(await allLogits(valle), base);
    await valle.setLora(lora.bytes);
    assert.notDeepEqual(await allLogits(valle), base);
    assert.equal(await valle.setLora(null), null);
    assert.equal(valle.lora, null);
    assert.deepEqual(await allLogits(valle), base);
    await valle.dispose();
  }
});

backendTest("overlapping setLora calls merge in call order", async (backend) => {
  const dir = await Deno.makeTempDir();
  const valle = await ValleModel.load(BASE, { backend, precision: "f32" });
  try {
    const base = await allLogits(valle);
    const a = makeTinyLora(BASE_ST, { seed: 4 });
    const b = makeTinyLora(BASE_ST, { seed: 5, rank: 2, alpha: 2 });
    // A path is read more slowly than bytes: the calls must not race to the weights.
    await Deno.writeFile(`${dir}/a.sft`, a.bytes);
    await Promise.all([valle.setLora(`${dir}/a.sft`), valle.setLora(null)]);
    assert.equal(valle.lora, null);
    assert.deepEqual(await allLogits(valle), base);
    await Promise.all([
      valle.setLora(`${dir}/a.sft`, { strength: 0.2 }),
      valle.setLora(b.bytes, { strength: 0.9 }),
    ]);
    const expected = await oracleLogits(backend, "f32", [{ lora: b, strength: 0.9 }]);
    assertClose(await allLogits(valle), expected, { ...LOGIT_TOLERANCE, label: "b at 0.9" });
  } finally {
    await valle.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

backendTest("swapping LoRA A for LoRA B equals B alone", async (backend) => {
  const precision = WEIGHT_DTYPES.at(-1)!; // f16 where the device has it
  const valle = await ValleModel.load(BASE, { backend, precision });
  const a = makeTinyLora(BASE_ST, { seed: 6, extra: ["text_emb.weight"] });
  // B adapts fewer modules (the MLPs of layer 1 only) than A, in the other spelling.
  const b = makeTinyLora(BASE_ST, {
    seed: 7,
    rank: 2,
    alpha: 2,
    spelling: "parametrize",
    modules: ["model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj"],
  });
  await valle.setLora(b.bytes, { strength: 1.5 });
  const bAlone = await allLogits(valle);
  await valle.setLora(null);
  await valle.setLora(a.bytes);
  const active = await valle.setLora(b.bytes, { strength: 1.5 });
  assert.deepEqual(active?.targets.toSorted(), [
    "model.layers.1.mlp.down_proj.weight",
    "model.layers.1.mlp.up_proj.weight",
  ]);
  // Two (32, 128) / (128, 32) weights of the model's precision.
  assert.equal(active?.heldBytes, (precision === "f16" ? 2 : 4) * 2 * 32 * 128);
  assert.deepEqual(await allLogits(valle), bAlone);
  await valle.dispose();
});

backendTest(
  "embeddings saved with a LoRA replace the base's while it is active",
  async (backend) => {
    const valle = await ValleModel.load(BASE, { backend, precision: "f32" });
    const base = await allLogits(valle);
    const extra = ["text_emb.weight", "resps_emb.embeddings.0.weight", "sep"];
    const lora = makeTinyLora(BASE_ST, {
      seed: 8,
      extra,
      modules: ["model.layers.0.self_attn.q_proj"],
    });
    for (const strength of [1, 0.25]) {
      await valle.setLora(lora.bytes, { strength });
      const expected = await oracleLogits(backend, "f32", [{ lora, strength }]);
      assertClose(await allLogits(valle), expected, {
        ...LOGIT_TOLERANCE,
        label: `s ${strength}`,
      });
    }
    // The input embeddings are exactly the LoRA's rows at strength 1.
    await valle.setLora(lora.bytes);
    const { embeddings, kinds } = await valle.inputs({ ...COND, mode: "ar", response: [] });
    const d = 32;
    const phonemeRow = kinds.indexOf(0) + 1; // the first phoneme after <bos>
    const table = lora.extra.get("text_emb.weight")!;
    assertClose(
      embeddings.subarray(phonemeRow * d, phonemeRow * d + d),
      table.subarray(30 * d, 31 * d),
      { atol: 0 },
    );
    await valle.setLora(null);
    assert.deepEqual(await allLogits(valle), base);
    await valle.dispose();
  },
);

/** A LoRA file with one tensor changed or added. */
function edited(
  lora: TinyLora,
  edit: (tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }>) => void,
  metadata?: Record<string, string>,
): Uint8Array {
  const st = parseSafetensors(lora.bytes);
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const name of st.names) {
    // A copy: F32 values may be views of the file, which other cases edit too.
    tensors[name] = {
      dtype: "F32",
      shape: [...st.info(name).shape],
      data: st.toFloat32(name).slice(),
    };
  }
  edit(tensors);
  return serializeSafetensors(tensors, metadata ?? { ...st.metadata });
}

const Q = "model.layers.0.self_attn.q_proj";

/** A LoRA with one value of one tensor changed. */
function withValue(lora: TinyLora, key: string, at: number, value: number): Uint8Array {
  return edited(lora, (t) => (t[key].data[at] = value));
}

/** The tensors of a LoRA of rank `rank` on `module`, in the given spelling, zero-filled. */
function factorTensors(
  module: string,
  rank: number,
  spelling: "linear" | "parametrize",
): Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> {
  const prefix = spelling === "linear" ? module : `${module}.parametrizations.weight.0`;
  const t = (shape: number[]) => ({
    dtype: "F32" as const,
    shape,
    data: new Float32Array(32 * rank),
  });
  return { [`${prefix}.lora_A`]: t([rank, 32]), [`${prefix}.lora_B`]: t([32, rank]) };
}

backendTest(
  "LoRAs that do not fit give a LoraError naming the tensor and the shapes",
  async (backend) => {
    const valle = await ValleModel.load(BASE, { backend, precision: "f32" });
    // A refused LoRA leaves the one before active, bit for bit.
    const active = await valle.setLora(makeTinyLora(BASE_ST, { seed: 10 }).bytes, {
      strength: 0.6,
    });
    const before = await allLogits(valle);
    const lora = makeTinyLora(BASE_ST, {
      seed: 9,
      modules: [Q, "model.layers.1.mlp.down_proj"],
      extra: ["sep"],
    });
    const cases: [string, Uint8Array, RegExp][] = [
      [
        "wrong shape",
        edited(
          lora,
          (t) => (t[`${Q}.lora_A`] = { dtype: "F32", shape: [4, 16], data: new Float32Array(64) }),
        ),
        /model\.layers\.0\.self_attn\.q_proj\.lora_A: expected \[4, 32\] for model\.layers\.0\.self_attn\.q_proj\.weight \[32, 32\], found \[4, 16\]/,
      ],
      [
        "rank mismatch",
        edited(
          lora,
          (t) => (t[`${Q}.lora_B`] = { dtype: "F32", shape: [32, 3], data: new Float32Array(96) }),
        ),
        /q_proj\.lora_B: expected \[32, 4\] \(rank 4 of model\.layers\.0\.self_attn\.q_proj\.lora_A \[4, 32\]\), found \[32, 3\]: rank 3, a rank mismatch/,
      ],
      [
        "unknown key",
        edited(
          lora,
          (
            t,
          ) => (t["model.layers.0.self_attn.q_proj.lora_down.weight"] = {
            dtype: "F32",
            shape: [4],
            data: new Float32Array(4),
          }),
        ),
        /q_proj\.lora_down\.weight: expected .*lora_A.*, found an unknown key/,
      ],
      [
        "module not in the base",
        edited(lora, (t) => {
          t["model.layers.7.self_attn.q_proj.lora_A"] = {
            dtype: "F32",
            shape: [4, 32],
            data: new Float32Array(128),
          };
          t["model.layers.7.self_attn.q_proj.lora_B"] = {
            dtype: "F32",
            shape: [32, 4],
            data: new Float32Array(128),
          };
        }),
        /model\.layers\.7\.self_attn\.q_proj: expected a linear layer of the model .*, found no such module/,
      ],
      [
        "not a linear layer",
        edited(lora, (t) => {
          t["text_emb.lora_A"] = { dtype: "F32", shape: [4, 32], data: new Float32Array(128) };
          t["text_emb.lora_B"] = { dtype: "F32", shape: [256, 4], data: new Float32Array(1024) };
        }),
        /text_emb: expected a linear layer .*, found text_emb\.weight \[256, 32\], not a linear layer/,
      ],
      [
        "half a pair",
        edited(lora, (t) => delete t[`${Q}.lora_B`]),
        /q_proj\.lora_B: expected a tensor \(lora_A is there\), found missing/,
      ],
      [
        "embedding of the wrong shape",
        edited(lora, (t) => (t["sep"] = { dtype: "F32", shape: [16], data: new Float32Array(16) })),
        /sep: expected \[32\], found \[16\]/,
      ],
      [
        "per-level activation",
        edited(lora, () => {}, { config: JSON.stringify({ rank: 4, alpha: 8, rvq_levels: [0] }) }),
        /__metadata__\.config\.rvq_levels: expected \[\] .*, found \[0\]/,
      ],
      [
        "rank other than the config's",
        edited(lora, () => {}, { config: JSON.stringify({ rank: 8, alpha: 8 }) }),
        /lora_A: expected rank 8 \(__metadata__\.config\.rank\), found rank 4/,
      ],
      [
        "no alpha anywhere",
        makeTinyLora(BASE_ST, { modules: [Q], config: null }).bytes,
        /__metadata__\.config\.alpha: expected a number .*, found missing/,
      ],
      [
        "NaN in a factor",
        withValue(lora, `${Q}.lora_A`, 32 + 5, NaN),
        /q_proj\.lora_A: expected finite values, found NaN at \[1, 5\] \(1 non-finite value\)/,
      ],
      [
        "infinities in a factor",
        edited(lora, (t) => t[`${Q}.lora_B`].data.fill(-Infinity, 8, 12)),
        /q_proj\.lora_B: expected finite values, found -Infinity at \[2, 0\] \(4 non-finite values\)/,
      ],
      [
        "NaN in a replaced tensor",
        withValue(lora, "sep", 3, NaN),
        /sep: expected finite values, found NaN at \[3\] \(1 non-finite value\)/,
      ],
      [
        "alpha 1e30",
        edited(lora, () => {}, { config: JSON.stringify({ rank: 4, alpha: 1e30 }) }),
        /__metadata__\.config\.alpha: expected a number in \(0, 256\] .*, found 1e\+30/,
      ],
      [
        "negative alpha",
        edited(lora, () => {}, { config: JSON.stringify({ rank: 4, alpha: -8 }) }),
        /__metadata__\.config\.alpha: expected a number in \(0, 256\] .*, found -8/,
      ],
      [
        "alpha 1e400, once",
        edited(lora, () => {}, { config: '{"rank": 4, "alpha": 1e400}' }),
        /: 1 problem\(s\)\n {2}__metadata__\.config\.alpha: expected a number in \(0, 256\] .*, found Infinity$/,
      ],
      [
        "both spellings for one module",
        edited(lora, (t) => Object.assign(t, factorTensors(Q, 4, "parametrize")), {
          config: JSON.stringify({ rank: 4, alpha: 8 }),
        }),
        /: 1 problem\(s\)\n {2}model\.layers\.0\.self_attn\.q_proj\.weight: expected one update, found 2: model\.layers\.0\.self_attn\.q_proj\.lora_A\/B and model\.layers\.0\.self_attn\.q_proj\.parametrizations\.weight\.0\.lora_A\/B$/,
      ],
      [
        "a weight both replaced and adapted",
        edited(
          lora,
          (
            t,
          ) => (t[`${Q}.weight`] = { dtype: "F32", shape: [32, 32], data: new Float32Array(1024) }),
        ),
        /q_proj\.weight: expected one update, found 2: model\.layers\.0\.self_attn\.q_proj\.lora_A\/B and model\.layers\.0\.self_attn\.q_proj\.weight$/m,
      ],
      [
        "rank 0",
        serializeSafetensors(factorTensors(Q, 0, "linear"), {
          config: JSON.stringify({ alpha: 8 }),
        }),
        /: 1 problem\(s\)\n {2}model\.layers\.0\.self_attn\.q_proj\.lora_A: expected rank ≥ 1, found \[0, 32\]$/,
      ],
    ];
    for (const [what, bytes, message] of cases) {
      await assert.rejects(valle.setLora(bytes), (e: Error) => {
        assert.ok(e instanceof LoraError, `${what}: ${e}`);
        assert.match(e.message, message, what);
        return true;
      });
    }
    await assert.rejects(valle.setLora(lora.bytes, { strength: NaN }), OptionError);
    await assert.rejects(
      valle.setLora(lora.bytes, { strength: 1e9 }),
      {
        name: "OptionError",
        message: "Cannot apply a LoRA: strength is 1000000000, expected a number in [-10, 10]",
      },
    );
    assert.deepEqual(valle.lora, active);
    assert.deepEqual(await allLogits(valle), before);
    await valle.dispose();
  },
);

backendTest(
  "a LoRA read for another model is refused before anything of it is merged",
  async (backend) => {
    const wide = makeRandomValle({ dim: 64, levels: 4, audioTokens: AUDIO, dtype: "F32" });
    const other = await ValleModel.load(wide, { backend, precision: "f32" });
    const forWide = await other.readLora(makeTinyLora(parseSafetensors(wide), { seed: 2 }).bytes);
    await other.dispose();
    const valle = await ValleModel.load(BASE, { backend, precision: "f32" });
    const active = await valle.setLora(makeTinyLora(BASE_ST, { seed: 10 }).bytes);
    const before = await allLogits(valle);
    await assert.rejects(valle.setLora(forWide), (e: Error) => {
      assert.ok(e instanceof LoraError, String(e));
      assert.match(
        e.message,
        /model\.layers\.0\.self_attn\.q_proj\.lora_A\/B: expected model\.layers\.0\.self_attn\.q_proj\.weight \[32, 32\], found B \[64, 4\] · A \[4, 64\]/,
      );
      return true;
    });
    assert.deepEqual(valle.lora, active);
    assert.deepEqual(await allLogits(valle), before);
    await valle.dispose(); // threw when the refusal left the undoing of the old LoRA unsubmitted
  },
);

Deno.test("a folder name of another rank than the tensors' is a rank mismatch", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lora = makeTinyLora(BASE_ST, { modules: [Q], rank: 4, config: null });
    await Deno.mkdir(`${dir}/lora-x-r8-a8`);
    const path = `${dir}/lora-x-r8-a8/lora.sft`;
    await Deno.writeFile(path, lora.bytes);
    const valle = await ValleModel.load(BASE, { backend: "cpu", precision: "f32" });
    await assert.rejects(valle.readLora(path), (e: Error) => {
      assert.ok(e instanceof LoraError, String(e));
      assert.match(
        e.message,
        /: 1 problem\(s\)\n {2}folder lora-x-r8-a8: expected -r4 \(the rank of the tensors, for its alpha to apply\), found -r8$/,
      );
      return true;
    });
    await valle.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("alpha comes from upstream's folder name when the file has no config", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lora = makeTinyLora(BASE_ST, { modules: [Q], rank: 4, config: null });
    await Deno.mkdir(`${dir}/lora-tiny-r4-a12`);
    const path = `${dir}/lora-tiny-r4-a12/lora.sft`;
    await Deno.writeFile(path, lora.bytes);
    const valle = await ValleModel.load(BASE, { backend: "cpu", precision: "f32" });
    const parsed = await valle.readLora(path);
    assert.equal(parsed.alpha, 12);
    assert.equal(parsed.rank, 4);
    await valle.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
