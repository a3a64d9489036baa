/**
 * Quantized VALL-E models (`dtype: "q8" | "q4"`) on every backend: the policy's layouts and sizes,
 * every mode (AR, NAR, NAR-len, duration, batches above and below the fused row limit) close to
 * the f16 model, a GGUF from `deno task quantize` giving the same codes as quantizing at load, and
 * the typed errors of files and options that do not fit.
 */

import assert from "node:assert/strict";
import type { Backend, Tensor } from "../../../src/backends/backend.ts";
import { readBytes } from "../../../src/backends/tensor.ts";
import { FormatError, OptionError, WeightsError } from "../../../src/errors.ts";
import { type GgufTensorData, parseGguf, serializeGguf } from "../../../src/io/gguf.ts";
import { f16ToF32 } from "../../../src/io/dtype.ts";
import {
  parseSafetensors,
  serializeSafetensors,
  type TensorData,
} from "../../../src/io/safetensors.ts";
import { ggufCheckpoint } from "../../../src/models/valle/checkpoint.ts";
import { ValleModel } from "../../../src/models/valle/model.ts";
import type { ValleDtype } from "../../../src/models/valle/quant_policy.ts";
import { valleWeightBytes } from "../../../src/models/valle/weights.ts";
import { makeRandomValle } from "../../../tools/make_valle_model.ts";
import { quantizeValle } from "../../../tools/quantize.ts";
import { quantGoldenReport } from "../../../tools/golden/quant.ts";
import { backendTest, WEIGHT_DTYPES } from "../../_backends.ts";
import { assertClose } from "../../_helpers.ts";
import { makeTinyLora, mergeOracle, POLICY_MODULES } from "../../_tiny_lora.ts";
import { TINY_MODEL } from "./_tiny.ts";

const AUDIO = 64;
/** The smallest width whose projections take Q4_K (rows of 256). */
const BYTES = makeRandomValle({ dim: 256, heads: 4, layers: 2, levels: 4, audioTokens: AUDIO });
const PROMPT = {
  data: Array.from({ length: 12 * 4 }, (_, i) => (i * 7) % AUDIO),
  frames: 12,
  levels: 4,
};
const COND = { phonemes: [1, 40, 41, 42, 43, 44, 2], language: 1, prompt: PROMPT };
const CODES = {
  data: Array.from({ length: 10 * 4 }, (_, i) => (i * 13) % AUDIO),
  frames: 10,
  levels: 4,
};

/** Mean KL(p ‖ q) of row-wise softmaxes and the fraction of rows with the same argmax. */
function compare(p: Float32Array, q: Float32Array, columns: number): { kl: number; top1: number } {
  let kl = 0;
  let same = 0;
  const rows = p.length / columns;
  for (let r = 0; r < rows; r++) {
    const a = softmax(p.subarray(r * columns, (r + 1) * columns));
    const b = softmax(q.subarray(r * columns, (r + 1) * columns));
    for (let i = 0; i < columns; i++) if (a[i] > 0) kl += a[i] * Math.log(a[i] / b[i]);
    if (argmax(a) === argmax(b)) same++;
  }
  return { kl: kl / rows, top1: same / rows };
}

function softmax(x: Float32Array): Float64Array {
  const m = Math.max(...x);
  const e = Float64Array.from(x, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** The logits of every pass kind. */
async function allLogits(valle: ValleModel): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  out.ar = (await valle.logits({ ...COND, mode: "ar", response: [3, 5, 9, 1, 7, 7] })).logits;
  for (const level of [1, 3]) {
    out[`nar${level}`] = (await valle.logits({ ...COND, mode: "nar", level, response: CODES }))
      .logits;
  }
  out["nar-len"] =
    (await valle.logits({ ...COND, mode: "nar-len", response: [AUDIO, 3, AUDIO, 8, AUDIO] }))
      .logits;
  out.len = (await valle.logits({ ...COND, mode: "len", lengthDigits: [0, 4] })).logits;
  return out;
}

const COLUMNS: Record<string, number> = {
  ar: AUDIO + 1,
  nar1: AUDIO,
  nar3: AUDIO,
  "nar-len": AUDIO,
  len: 11,
};

backendTest("q8 and q4: every pass stays close to the f16 model", async (backend) => {
  const load = (dtype: ValleDtype) => ValleModel.load(BYTES, { backend, dtype });
  // f16 where the device has it (f32 on a device without shader-f16: twice the bytes).
  const float = WEIGHT_DTYPES.at(-1)!;
  const f16 = await load(float);
  const reference = await allLogits(f16);
  const f16Bytes = valleWeightBytes(f16.weights) / (float === "f32" ? 2 : 1);
  await f16.dispose();
  // Random weights quantize worse than trained ones; these bounds are 5-10x what they measure.
  const bounds = { q8: 0.01, q4: 0.1 };
  for (const dtype of ["q8", "q4"] as const) {
    const valle = await load(dtype);
    try {
      const layer = valle.weights.layers[0];
      assert.equal(layer.qProj.dtype, dtype === "q8" ? "q8_0" : "q4_k");
      assert.equal(layer.vProj.dtype, "q8_0");
      assert.equal(valle.weights.heads[0].weight.dtype, "q8_0");
      assert.equal(valle.weights.embeddings.dtype, "q8_0");
      assert.equal(valle.weights.norm.dtype, backend.weightDtype);
      assert.equal(valle.weights.heads[0].bias?.dtype, backend.weightDtype);
      assert.equal(layer.qkv, undefined);
      const ratio = valleWeightBytes(valle.weights) / f16Bytes;
      assert.ok(ratio < (dtype === "q8" ? 0.54 : 0.36), `${dtype}: ${ratio} of the f16 bytes`);
      const logits = await allLogits(valle);
      for (const [pass, values] of Object.entries(logits)) {
        const { kl, top1 } = compare(reference[pass], values, COLUMNS[pass]);
        assert.ok(kl < bounds[dtype], `${dtype} ${pass}: mean KL ${kl}`);
        assert.ok(top1 >= 0.5, `${dtype} ${pass}: top-1 agreement ${top1}`);
      }
    } finally {
      await valle.dispose();
    }
  }
});

backendTest("q4: every mode runs, batches above and below the fused row limit", async (backend) => {
  const valle = await ValleModel.load(BYTES, { backend, dtype: "q4" });
  try {
    const ar = await valle.generateAr({ ...COND, maxSteps: 12, seed: 1 });
    assert.ok(ar.sampled.length > 0);
    const nar = await valle.generateNar({ ...COND, codes: { ...CODES, levels: 1 } });
    assert.equal(nar.levels, 4);
    const narLen = await valle.generateNarLen({ ...COND, frames: 6, steps: 3 });
    assert.equal(narLen.tokens.length, 6);
    const duration = await valle.predictDuration(COND);
    assert.ok(duration.frames >= 0);
    for (const count of [2, 6]) {
      const rows = Array.from({ length: count }, (_, i) => ({ ...COND, seed: i }));
      const batch = await valle.generateBatch({
        rows,
        modality: "ar+nar",
        ar: { maxSteps: 8 },
      });
      assert.equal(batch.length, count);
      // A row of a batch of at most 4 rows is the row alone, bit for bit, as with float weights.
      if (count <= 4) {
        const alone = await valle.generate({
          ...rows[1],
          modality: "ar+nar",
          ar: { maxSteps: 8, seed: 1 },
          nar: { seed: 1 },
        });
        assert.deepEqual([...batch[1].codes.data], [...alone.codes.data]);
      }
    }
  } finally {
    await valle.dispose();
  }
});

/** Every weight buffer's bytes, by tensor path. */
async function deviceBytes(backend: Backend, valle: ValleModel): Promise<Uint8Array[]> {
  const w = valle.weights;
  const tensors = [
    w.embeddings,
    w.norm,
    ...w.heads.flatMap((h) => [h.weight, h.bias!]),
    ...w.layers.flatMap((l) => [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.downProj]),
  ];
  return (await readBytes(backend, tensors)).map((b) => new Uint8Array(b));
}

backendTest("a GGUF from deno task quantize loads as quantizing at load does", async (backend) => {
  for (const dtype of ["q8", "q4"] as const) {
    const gguf = quantizeValle(parseSafetensors(BYTES), dtype, "random.sft");
    assert.equal(parseGguf(gguf).string("valle.dtype"), dtype);
    const fromGguf = await ValleModel.load(gguf, { backend });
    const atLoad = await ValleModel.load(BYTES, { backend, dtype });
    try {
      assert.deepEqual(await deviceBytes(backend, fromGguf), await deviceBytes(backend, atLoad));
      const request = { ...COND, modality: "ar+nar" as const, ar: { maxSteps: 10, seed: 3 } };
      const a = await fromGguf.generate(request);
      const b = await atLoad.generate(request);
      assert.deepEqual([...a.codes.data], [...b.codes.data]);
    } finally {
      await fromGguf.dispose();
      await atLoad.dispose();
    }
  }
  // The same file dequantized to float on request.
  const gguf = quantizeValle(parseSafetensors(BYTES), "q4", "random.sft");
  const float = await ValleModel.load(gguf, { backend, dtype: "f32" });
  assert.equal(float.weights.layers[0].qProj.dtype, "f32");
  assert.ok(float.weights.layers[0].qkv);
  await float.dispose();
});

backendTest("the tiny model: rows too short for a layout stay float", async (backend) => {
  const valle = await ValleModel.load(TINY_MODEL, { backend, dtype: "q4" });
  try {
    const layer = valle.weights.layers[0];
    assert.equal(layer.qProj.dtype, backend.weightDtype); // d 32: not whole 64-blocks
    assert.equal(layer.downProj.dtype, "q8_0"); // rows of 128: Q4_K needs 256, Q8_0 takes them
    assert.ok(layer.qkv, "float q, k, v stay stacked for the fused kernels");
    const { codes } = await valle.generate({
      phonemes: [1, 40, 41, 2],
      modality: "ar+nar",
      ar: { maxSteps: 6 },
    });
    assert.ok(codes.frames > 0);
  } finally {
    await valle.dispose();
  }
});

/** The GGUF of the random model at q8 with one tensor changed. */
function changed(key: string, change: (t: GgufTensorData) => GgufTensorData | undefined) {
  const file = parseGguf(quantizeValle(parseSafetensors(BYTES), "q8", "random.sft"));
  const tensors: Record<string, GgufTensorData> = {};
  for (const name of file.names) {
    const { type, shape } = file.info(name);
    const t = { type, shape, bytes: file.bytes(name) };
    const out = name === key ? change(t) : t;
    if (out) tensors[name] = out;
  }
  return serializeGguf(tensors, { "valle.config": file.string("valle.config")! });
}

async function refusal(bytes: Uint8Array): Promise<Error> {
  try {
    const valle = await ValleModel.load(bytes, { backend: "cpu" });
    await valle.dispose();
  } catch (e) {
    return e as Error;
  }
  throw new Error("loaded");
}

Deno.test("GGUF models that do not fit are WeightsErrors naming each tensor", async () => {
  const norm = "model.layers.1.post_attention_layernorm.weight";
  const quantizedNorm = await refusal(changed(norm, () => ({
    type: "Q8_0",
    shape: [256],
    bytes: new Uint8Array(8 * 34),
  })));
  assert.ok(quantizedNorm instanceof WeightsError);
  assert.deepEqual(quantizedNorm.problems, [{
    tensor: norm,
    expected: "a float dtype (norms and biases are never quantized)",
    found: "Q8_0",
  }]);

  const up = "model.layers.0.mlp.up_proj.weight";
  const shape = await refusal(changed(up, (t) => ({
    ...t,
    shape: [512, 256],
    bytes: t.bytes.subarray(0, 512 * 8 * 34),
  })));
  assert.ok(shape instanceof WeightsError);
  assert.deepEqual(shape.problems, [{ tensor: up, expected: "[1024, 256]", found: "[512, 256]" }]);

  const missing = await refusal(changed("classifiers.proj.2.weight", () => undefined));
  assert.ok(missing instanceof WeightsError);
  assert.equal(missing.problems[0].found, "missing");
});

Deno.test("damaged GGUF models are FormatErrors naming the tensor and byte offset", async () => {
  const bytes = quantizeValle(parseSafetensors(BYTES), "q4", "random.sft");
  const last = parseGguf(bytes);
  const name = last.names.at(-1)!;
  const cut = await refusal(bytes.subarray(0, last.info(name).byteOffset + 10));
  assert.ok(cut instanceof FormatError);
  assert.equal(cut.details.entry, name);
  assert.equal(cut.details.offset, last.info(name).byteOffset);
  const path = await Deno.makeTempFile({ suffix: ".gguf" });
  try {
    await Deno.writeFile(path, bytes.subarray(0, 100));
    const e = await ValleModel.load(path, { backend: "cpu" }).catch((e) => e);
    assert.ok(e instanceof FormatError, String(e));
    assert.match(e.message, /Cannot read GGUF/);
  } finally {
    await Deno.remove(path);
  }
  assert.equal(ggufCheckpoint(last).info(name).dtype, last.info(name).type);
});

Deno.test("dtype is checked before any file is read", async () => {
  const bogus = await ValleModel.load("/nonexistent.sft", {
    dtype: "q3" as ValleDtype,
  }).catch((e) => e);
  assert.ok(bogus instanceof OptionError);
  assert.match(bogus.message, /dtype is "q3", expected "f32", "f16", "q8" or "q4"/);
  const conflict = await ValleModel.load("/nonexistent.sft", { dtype: "f16", precision: "f32" })
    .catch((e) => e);
  assert.ok(conflict instanceof OptionError);
  assert.match(conflict.message, /dtype is "f16" but precision is "f32"/);
});

/** The random model as its q4 GGUF dequantizes it, as F32 safetensors (the LoRA oracle's base). */
function dequantizedBase(): Uint8Array {
  const gguf = ggufCheckpoint(parseGguf(quantizeValle(parseSafetensors(BYTES), "q4", "random")));
  const st = parseSafetensors(BYTES);
  const tensors: Record<string, TensorData> = {};
  for (const name of st.names) {
    const source = gguf.has(name) ? gguf : st;
    tensors[name] = { dtype: "F32", shape: st.info(name).shape, data: source.toFloat32(name) };
  }
  return serializeSafetensors(tensors, { ...st.metadata });
}

backendTest("a LoRA on a q4 model merges into float copies and leaves the base exact", async (
  backend,
) => {
  const valle = await ValleModel.load(BYTES, { backend, dtype: "q4" });
  try {
    const base = await deviceBytes(backend, valle);
    const baseLogits = (await valle.logits({ ...COND, mode: "ar", response: [3, 5] })).logits;
    const modules = [...POLICY_MODULES, "self_attn.k_proj"].map((m) => `model.layers.1.${m}`);
    const lora = makeTinyLora(parseSafetensors(BYTES), {
      modules,
      extra: ["resps_emb.embeddings.1.weight"],
      seed: 9,
    });
    const active = await valle.setLora(lora.bytes, { strength: 0.5 });
    const layer = valle.weights.layers[1];
    const float = backend.weightDtype;
    for (const t of [layer.qProj, layer.kProj, layer.vProj, layer.downProj]) {
      assert.equal(t.dtype, float);
    }
    assert.equal(valle.weights.layers[0].qProj.dtype, "q4_k", "untouched layers stay quantized");
    assert.equal(valle.weights.embeddings.dtype, float, "the stacked table, dequantized");
    // Held: float copies of 7 projections and of the whole stacked table.
    const d = 256;
    const elements = 4 * d * d + 3 * 4 * d * d + valle.weights.layout.rows * d;
    assert.equal(active?.heldBytes, elements * (float === "f16" ? 2 : 4));

    // The merged tensors are the float64 merge into the dequantized base, in the float type.
    const oracle = parseSafetensors(
      mergeOracle(dequantizedBase(), [{ lora, strength: 0.5 }], float),
    );
    const read = async (t: Tensor) => {
      const [bytes] = await readBytes(backend, [t]);
      return float === "f16" ? f16ToF32(new Uint16Array(bytes)) : new Float32Array(bytes);
    };
    const tolerance = { atol: 1e-6, rtol: float === "f16" ? 2 ** -10 : 1e-6 };
    assertClose(
      await read(layer.upProj),
      oracle.toFloat32("model.layers.1.mlp.up_proj.weight"),
      tolerance,
    );
    const table = await read(valle.weights.embeddings);
    const resp1 = valle.weights.layout.resp[1];
    assertClose(
      table.subarray(resp1 * d, (resp1 + AUDIO) * d),
      oracle.toFloat32("resps_emb.embeddings.1.weight"),
      tolerance,
    );
    assertClose(
      table.subarray(0, 256 * d),
      oracle.toFloat32("text_emb.weight"),
      { atol: 1e-6, rtol: 2 ** -10 },
    );
    const merged = (await valle.logits({ ...COND, mode: "ar", response: [3, 5] })).logits;
    assert.ok(merged.some((v, i) => v !== baseLogits[i]), "the LoRA changes the logits");

    // Removed: the quantized base again, bit for bit.
    await valle.setLora(null);
    assert.equal(valle.weights.layers[1].qProj.dtype, "q4_k");
    assert.equal(valle.weights.embeddings.dtype, "q8_0");
    assert.deepEqual(await deviceBytes(backend, valle), base);
    const again = (await valle.logits({ ...COND, mode: "ar", response: [3, 5] })).logits;
    assert.deepEqual(again, baseLogits);
  } finally {
    await valle.dispose();
  }
});

backendTest("teacher-forced AR logits are each prefix's next-token logits", async (backend) => {
  const valle = await ValleModel.load(BYTES, { backend, dtype: "q8" });
  try {
    const response = [3, 5, 9, 1, 7, 7];
    const all = await valle.logits({ ...COND, mode: "ar", response, teacherForced: true });
    assert.equal(all.rows, response.length + 1);
    for (const t of [0, 2, 6]) {
      const one = await valle.logits({ ...COND, mode: "ar", response: response.slice(0, t) });
      assertClose(
        all.logits.subarray(t * all.columns, (t + 1) * all.columns),
        one.logits,
        { atol: 1e-4, rtol: 1e-4 },
      );
    }
    await assert.rejects(
      valle.logits({ ...COND, mode: "nar", level: 1, response: CODES, teacherForced: true }),
      OptionError,
    );
  } finally {
    await valle.dispose();
  }
});

Deno.test("deno task golden --dtype reports each pass kind against f16", async () => {
  const folder = new URL("../../fixtures/valle-tiny/", import.meta.url);
  const lines = [];
  for await (const line of quantGoldenReport(folder, "q8", "cpu")) lines.push(line);
  assert.match(
    lines[0],
    /^valle-tiny \[q8 vs f16, CPU .*\]: weights .* MB \(matrices: f16 .*, q8_0/,
  );
  const passes = lines.filter((l) => / mean KL /.test(l));
  assert.equal(passes.length, 1 + 7 + 1); // AR, NAR levels 1-7, NAR-len
  for (const line of passes) {
    const kl = Number(/mean KL (\S+),/.exec(line)![1]);
    assert.ok(kl >= 0 && kl < 1e-3, line);
  }
  assert.equal(lines.filter((l) => / synthesis: /.test(l)).length, 2);
});
