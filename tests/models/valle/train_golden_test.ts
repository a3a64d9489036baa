/**
 * The training golden (tests/fixtures/train-golden, made by running upstream's own LoRA training
 * step with tools/golden/train_lora.py): its files are what the manifest says, its numbers agree
 * with each other, and the LoRA that upstream trained and exported gives upstream's AR logits
 * through `setLora`.
 */

import assert from "node:assert/strict";
import { parseSafetensors, type Safetensors } from "../../../src/io/safetensors.ts";
import { ValleModel } from "../../../src/models/valle/model.ts";
import { backendTest } from "../../_backends.ts";
import { assertClose, readFixture } from "../../_helpers.ts";

const DIR = "train-golden/";

interface TensorDoc {
  shape: number[];
  dtype: string;
  doc: string;
}
interface Manifest {
  tensors: Record<string, Record<string, TensorDoc>>;
  sequence_length_N: number;
  items: { kind: string; level: number; n: number; P: number; T: number; lang: number }[];
}

const manifest: Manifest = JSON.parse(
  new TextDecoder().decode(await readFixture(`${DIR}manifest.json`)),
);

async function load(file: string): Promise<Safetensors> {
  return parseSafetensors(await readFixture(DIR + file), { source: file });
}

/** The 24 LoRA tensor names upstream's default llama policy gives the 2-layer model. */
const LORA_KEYS = [0, 1].flatMap((i) =>
  [
    "self_attn.q_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
  ]
    .flatMap((m) => ["A", "B"].map((ab) => `model.layers.${i}.${m}.lora_${ab}`))
);

Deno.test("train golden: every file holds the tensors its manifest lists", async () => {
  for (const [file, tensors] of Object.entries(manifest.tensors)) {
    const st = await load(file);
    assert.deepEqual([...st.names].sort(), Object.keys(tensors).sort(), file);
    for (const [name, doc] of Object.entries(tensors)) {
      const info = st.info(name);
      assert.deepEqual([...info.shape], doc.shape, `${file} ${name}`);
      assert.equal(info.dtype, doc.dtype, `${file} ${name}`);
    }
  }
  for (const file of ["lora_init", "lora_step1", "lora_step2", "lora_step3"]) {
    const st = await load(`${file}.safetensors`);
    assert.deepEqual([...st.names].sort(), [...LORA_KEYS].sort());
    assert.equal(JSON.parse(st.metadata.config).rank, 4);
  }
});

Deno.test("train golden: upstream's export equals the LoRA after step 3", async () => {
  const exported = await load("lora.sft");
  const step3 = await load("lora_step3.safetensors");
  assert.deepEqual([...exported.names].sort(), [...LORA_KEYS].sort());
  const config = JSON.parse(exported.metadata.config);
  assert.equal(config.rank, 4);
  assert.equal(config.alpha, 8);
  for (const k of LORA_KEYS) {
    assert.equal(exported.info(k).dtype, "F32");
    assert.deepEqual(exported.toFloat32(k), step3.toFloat32(k), k);
  }
});

Deno.test("train golden: losses, accuracies and gradient norm agree with each other", async () => {
  const train = await load("train.safetensors");
  const grads = await load("grads.safetensors");
  const loss = train.toFloat32("loss");
  const items = train.toFloat32("loss_items");
  const acc = train.toFloat32("acc");
  const accItems = train.toFloat32("acc_items");
  const n = manifest.items.length;
  for (let s = 0; s < 3; s++) {
    const mean = (a: Float32Array) => a.slice(s * n, (s + 1) * n).reduce((x, y) => x + y, 0) / n;
    assertClose([loss[s]], [mean(items)], { atol: 2e-6, label: `loss step ${s + 1}` });
    assertClose([acc[s]], [mean(accItems)], { atol: 1e-6, label: `acc step ${s + 1}` });
    const prefix = s === 0 ? "" : `step${s + 1}.`;
    let sq = 0;
    for (const k of LORA_KEYS) for (const g of grads.toFloat32(`${prefix}${k}.grad`)) sq += g * g;
    assertClose([Math.sqrt(sq)], [train.toFloat32("grad_norm")[s]], {
      atol: 1e-6,
      label: `grad norm step ${s + 1}`,
    });
  }
  // Every item has the same sequence length (no padding in upstream's batch).
  for (const it of manifest.items) {
    assert.equal(it.n + it.P + it.T + (it.kind === "ar" ? 7 : 6), manifest.sequence_length_N);
  }
});

backendTest(
  "train golden: upstream's trained lora.sft gives upstream's AR logits",
  async (backend) => {
    const train = await load("train.safetensors");
    const valle = await ValleModel.load(await readFixture("valle-tiny/model.sft"), {
      backend,
      precision: "f32",
    });
    try {
      const resp = train.toFloat32("item0.resp");
      const prom = train.toFloat32("item0.prom");
      const frames = resp.length / 8;
      const request = {
        mode: "ar" as const,
        phonemes: Array.from(train.toFloat32("item0.phn")),
        language: train.toFloat32("item0.lang")[0],
        prompt: { data: Array.from(prom), frames: prom.length / 8, levels: 8 },
        response: Array.from({ length: frames }, (_, t) => resp[t * 8]),
        teacherForced: true,
      };
      const base = await valle.logits(request);
      const active = await valle.setLora(await readFixture(`${DIR}lora.sft`));
      assert.equal(active?.rank, 4);
      assert.equal(active?.targets.length, 12);
      const result = await valle.logits(request);
      // Upstream's rows 14..22 (the separator before the response, then r_0..r_7) are the rows that
      // predict the response and the stop token; row 23 (the stop token's own output) has no match.
      const all = train.toFloat32("ar_logits");
      const start = manifest.sequence_length_N - (frames + 2);
      const expected = all.slice(start * 1025, (start + frames + 1) * 1025);
      assert.equal(result.rows, frames + 1);
      assert.equal(result.columns, 1025);
      assertClose(result.logits, expected, {
        atol: 1e-4,
        label: "AR logits with the trained LoRA",
      });
      // The trained LoRA moves these logits far beyond the tolerance.
      assert.ok(Math.max(...expected.map((v, i) => Math.abs(v - base.logits[i]))) > 0.05);
    } finally {
      await valle.dispose();
    }
  },
);
