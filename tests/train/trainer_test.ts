/**
 * The training loop as a user drives it: a run resumed from a checkpoint ends with the LoRA of the
 * uninterrupted run, bit for bit; progress reports every step with a held-out loss where asked; an
 * AbortSignal stops a run between micro-batches and leaves the model usable; bad options, a
 * foreign checkpoint and an active LoRA are refused with typed errors before anything runs; and
 * the file a run writes is upstream's layout, which `setLora` applies.
 */

import assert from "node:assert/strict";
import { OptionError } from "../../src/errors.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { evaluateLora, trainLora, type TrainProgress } from "../../src/train/trainer.ts";
import { backendTest, testBackend } from "../_backends.ts";
import { readFixture } from "../_helpers.ts";
import { randomUtterances } from "./_utterances.ts";

const OPTIONS = { rank: 4, alpha: 8, batchSize: 4, learningRate: 0.01, seed: 3 };

async function tinyModel(kind: "cpu" | "webgpu" = "cpu"): Promise<ValleModel> {
  return await ValleModel.load(await readFixture("valle-tiny/model.sft"), {
    backend: await testBackend(kind),
    precision: "f32",
  });
}

backendTest(
  "a run resumed from its checkpoint ends with the uninterrupted run's LoRA",
  async (backend) => {
    const model = await ValleModel.load(await readFixture("valle-tiny/model.sft"), {
      backend,
      precision: "f32",
    });
    try {
      const data = randomUtterances(10, 1);
      const whole = await trainLora(model, data, { ...OPTIONS, steps: 6 });
      const checkpoints = new Map<number, Uint8Array>();
      await trainLora(model, data, {
        ...OPTIONS,
        steps: 6,
        checkpointEvery: 2,
        onCheckpoint: (bytes, step) => void checkpoints.set(step, bytes),
      });
      assert.deepEqual([...checkpoints.keys()], [2, 4, 6]);
      const resumed = await trainLora(model, data, {
        ...OPTIONS,
        steps: 6,
        resume: checkpoints.get(4),
      });
      assert.deepEqual(resumed.values, whole.values);
      assert.deepEqual(resumed.history.map((p) => p.step), [5, 6]);
      assert.notDeepEqual(
        whole.values,
        (await trainLora(model, data, { ...OPTIONS, steps: 5 })).values,
      );
    } finally {
      await model.dispose();
    }
  },
);

Deno.test("progress comes after every step, with the held-out loss every evaluateEvery steps", async () => {
  const model = await tinyModel();
  try {
    const data = randomUtterances(12, 2);
    const seen: TrainProgress[] = [];
    const heldOut = data.slice(10);
    const result = await trainLora(model, data.slice(0, 10), {
      ...OPTIONS,
      steps: 5,
      evaluation: heldOut,
      evaluateEvery: 2,
      onProgress: (p) => seen.push(p),
    });
    assert.deepEqual(seen.map((p) => p.step), [1, 2, 3, 4, 5]);
    assert.deepEqual(seen, result.history);
    assert.deepEqual(seen.map((p) => p.evalLoss !== undefined), [false, true, false, true, true]);
    assert.equal(seen.at(-1)!.etaMs, 0);
    for (const p of seen) {
      assert.ok(p.loss > 0 && p.accuracy >= 0 && p.accuracy <= 1 && p.gradNorm > 0);
      assert.ok(p.tokensPerSecond > 0 && p.steps === 5);
    }
    // The held-out loss is evaluateLora's for the LoRA of that step.
    const final = await evaluateLora(model, heldOut, {
      lora: result.toFile({ dtype: "f32" }),
      pool: data.slice(0, 10),
      seed: OPTIONS.seed,
    });
    assert.ok(
      Math.abs(final - seen.at(-1)!.evalLoss!) < 1e-5,
      `${final} vs ${seen.at(-1)!.evalLoss}`,
    );
  } finally {
    await model.dispose();
  }
});

Deno.test("the trained LoRA is upstream's lora.sft layout and setLora applies it", async () => {
  const model = await tinyModel();
  try {
    const result = await trainLora(model, randomUtterances(6, 4), { ...OPTIONS, steps: 2 });
    const file = parseSafetensors(result.toFile(), { source: "trained" });
    const config = JSON.parse(file.metadata.config);
    assert.deepEqual(
      {
        name: config.name,
        rank: config.rank,
        alpha: config.alpha,
        parametrize: config.parametrize,
      },
      { name: "lora", rank: 4, alpha: 8, parametrize: false },
    );
    assert.equal(file.names.length, 2 * 6 * model.config.nLayers);
    assert.deepEqual(file.info("model.layers.1.mlp.down_proj.lora_A"), {
      ...file.info("model.layers.1.mlp.down_proj.lora_A"),
      dtype: "F16",
      shape: [4, model.config.dFf],
    });
    const active = await model.setLora(result.toFile());
    assert.equal(active?.targets.length, 6 * model.config.nLayers);
    // Training refuses to run over an active LoRA (it trains against the base).
    await assert.rejects(trainLora(model, randomUtterances(4, 5), OPTIONS), OptionError);
    await model.setLora(null);
  } finally {
    await model.dispose();
  }
});

Deno.test("an aborted run checkpoints its last finished step, rejects, and resumes exactly", async () => {
  const model = await tinyModel();
  try {
    const data = randomUtterances(8, 6);
    const controller = new AbortController();
    const saved: number[] = [];
    let last: Uint8Array | undefined;
    const run = trainLora(model, data, {
      ...OPTIONS,
      steps: 50,
      signal: controller.signal,
      onProgress: (p) => p.step === 2 && controller.abort(new Error("stop here")),
      onCheckpoint: (bytes, step) => {
        saved.push(step);
        last = bytes;
      },
    });
    await assert.rejects(run, /stop here/);
    assert.deepEqual(saved, [2]);
    const resumed = await trainLora(model, data, { ...OPTIONS, steps: 4, resume: last });
    const whole = await trainLora(model, data, { ...OPTIONS, steps: 4 });
    assert.deepEqual(resumed.values, whole.values);
  } finally {
    await model.dispose();
  }
});

Deno.test("bad options and foreign checkpoints are refused before a step runs", async () => {
  const model = await tinyModel();
  try {
    const data = randomUtterances(6, 7);
    for (
      const bad of [
        { steps: 0 },
        { rank: 0 },
        { rank: 1.5 },
        { alpha: -1 },
        { learningRate: 0 },
        { levels: [] },
        { levels: [8] },
        { maskingRatio: 2 },
        { batchSize: 0 },
        { maxRows: 10 },
      ]
    ) {
      await assert.rejects(
        trainLora(model, data, { ...OPTIONS, ...bad }),
        OptionError,
        JSON.stringify(bad),
      );
    }
    await assert.rejects(trainLora(model, [], OPTIONS), OptionError);
    let checkpoint: Uint8Array | undefined;
    await trainLora(model, data, {
      ...OPTIONS,
      steps: 1,
      onCheckpoint: (b) => void (checkpoint = b),
    });
    await assert.rejects(
      trainLora(model, data, { ...OPTIONS, rank: 2, steps: 2, resume: checkpoint }),
      /checkpoint's rank is 4, this run's 2/,
    );
    await assert.rejects(
      trainLora(model, data, {
        ...OPTIONS,
        steps: 2,
        resume: await readFixture("train-golden/lora.sft"),
      }),
      /expected a valle-lora-checkpoint-1 checkpoint/,
    );
  } finally {
    await model.dispose();
  }
});
