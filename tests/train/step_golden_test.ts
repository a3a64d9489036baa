/**
 * One training step against upstream's own (tests/fixtures/train-golden, made by
 * tools/golden/train_lora.py): the batch of an AR item, NAR items at levels 1, 3 and 7 and a
 * NAR-len item, packed as one sequence, gives upstream's per-item losses, top-10 accuracies, every
 * LoRA gradient and gradient norm, and three AdamW steps (the first clipped) give upstream's LoRA
 * after each, on every backend. Tolerances are the folder README's, from the measured float32 vs
 * float64 noise floor of upstream's step.
 */

import { readF32, writeTensor } from "../../src/backends/tensor.ts";
import { parseSafetensors, type Safetensors } from "../../src/io/safetensors.ts";
import type { EmbeddingRule } from "../../src/models/valle/inputs.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { packBatch, type TrainingItem } from "../../src/train/batch.ts";
import { loraLayout, readLora } from "../../src/train/lora_params.ts";
import { createTrainState } from "../../src/train/state.ts";
import { batchLoss, recordOptimizerStep, recordStep, uploadBatch } from "../../src/train/step.ts";
import { destroyTensors } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, readFixture } from "../_helpers.ts";

const DIR = "train-golden/";
const SETTINGS = {
  learningRate: 0.02,
  beta1: 0.9,
  beta2: 0.96,
  eps: 1e-7,
  weightDecay: 0.01,
  maxGradNorm: 1.3,
};

async function load(file: string): Promise<Safetensors> {
  return parseSafetensors(await readFixture(DIR + file), { source: file });
}

/** The golden batch's items as upstream drew them. */
function goldenItems(train: Safetensors): TrainingItem[] {
  const levels = train.toFloat32("levels");
  const kinds = train.toFloat32("kinds");
  return Array.from(levels, (level, i) => {
    const ints = (name: string) => Array.from(train.toFloat32(`item${i}.${name}`));
    const codes = (name: string) => {
      const data = ints(name);
      return { data, frames: data.length / 8, levels: 8 };
    };
    const kind = (["ar", "nar", "nar-len"] as const)[kinds[i]];
    return {
      kind,
      level,
      phonemes: ints("phn"),
      language: ints("lang")[0],
      prompt: codes("prom"),
      response: codes("resp"),
      mask: kind === "nar-len" ? ints("mask").map((m) => m !== 0) : undefined,
    };
  });
}

for (const rule of ["head", "dec2024"] as const) {
  backendTest(
    `a training step gives upstream's losses, gradients and AdamW steps (${rule} rule)`,
    async (backend) => {
      await checkSteps(backend, rule);
    },
  );
}

async function checkSteps(
  backend: Parameters<Parameters<typeof backendTest>[1]>[0],
  rule: EmbeddingRule,
) {
  const train = await load("train.safetensors");
  const golden = rule === "head" ? train : await load("dec2024.safetensors");
  const grads = rule === "head" ? await load("grads.safetensors") : golden;
  const valle = await ValleModel.load(await readFixture("valle-tiny/model.sft"), {
    backend,
    precision: "f32",
  });
  const { config, weights } = valle;
  const layout = loraLayout(config, 4, 8);
  const state = createTrainState(backend, config, layout, 128);
  try {
    writeTensor(backend, state.params, readLora(layout, await load("lora_init.safetensors")));
    const batch = packBatch(config, weights.layout, goldenItems(train), { rule });
    const n = batch.items.length;
    for (let step = 1; step <= 3; step++) {
      uploadBatch(backend, state, batch);
      const rec = backend.createRecorder();
      recordStep(rec, { config, weights }, state, layout, batch);
      rec.submit();
      const [stats, g] = await Promise.all([
        readF32(backend, state.stats),
        readF32(backend, state.grads),
      ]);
      const loss = batchLoss(batch, stats);
      const label = `${rule} step ${step}`;
      assertClose([loss.loss], [golden.toFloat32("loss")[step - 1]], {
        atol: 1e-5,
        label: `${label} loss`,
      });
      assertClose(loss.itemLosses, golden.toFloat32("loss_items").slice((step - 1) * n, step * n), {
        atol: 1e-5,
        label: `${label} item losses`,
      });
      assertClose([loss.accuracy], [golden.toFloat32("acc")[step - 1]], {
        atol: 1e-6,
        label: `${label} accuracy`,
      });
      if (rule === "head" || step === 1) {
        const prefix = step === 1 ? "" : `step${step}.`;
        for (const s of layout.slots) {
          for (
            const [half, at, size] of [["A", s.a, layout.rank * s.inFeatures], [
              "B",
              s.b,
              s.outFeatures * layout.rank,
            ]] as const
          ) {
            const key = `${s.key}.lora_${half}`;
            assertClose(g.subarray(at, at + size), grads.toFloat32(`${prefix}${key}.grad`), {
              atol: 2e-6,
              label: `${label} ${key} gradient`,
            });
          }
        }
      }
      const opt = backend.createRecorder();
      recordOptimizerStep(opt, state, SETTINGS, step);
      opt.submit();
      const [sumSquares, params] = await Promise.all([
        readF32(backend, state.sumSquares),
        readF32(backend, state.params),
      ]);
      assertClose([Math.sqrt(sumSquares[0])], [golden.toFloat32("grad_norm")[step - 1]], {
        rtol: 1e-5,
        label: `${label} gradient norm`,
      });
      const expected = rule === "head"
        ? readLora(layout, await load(`lora_step${step}.safetensors`))
        : readLora(layout, golden, `step${step}.`);
      assertClose(params, expected, { atol: 1e-4, label: `${label} LoRA after the update` });
    }
  } finally {
    destroyTensors(state);
    await valle.dispose();
  }
}
