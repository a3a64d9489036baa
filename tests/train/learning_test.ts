/**
 * Training learns what it is shown: a teacher (the tiny model with a random LoRA merged) samples a
 * training set of codes (AR level 0 and NAR levels 1..7 at temperature 0.3, so the samples carry
 * the teacher's preferences rather than the near-uniform noise of a random model's tails), a fresh
 * LoRA is trained on it from upstream's initialisation, and on held-out samples of the teacher the
 * student's loss must close most of the gap between the base model's loss and the teacher's own,
 * while its greedy AR choices (teacher-forced argmax) move to the teacher's. A run that only
 * lowered the loss on its own batches would pass neither. Measured on the CPU: base 7.76, teacher
 * 4.92, student after 150 steps 5.33 (85% of the gap); greedy agreement 0.003 → 0.27.
 */

import assert from "node:assert/strict";
import { mulberry32 } from "../../src/_random.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { exportLora, initLora, loraLayout } from "../../src/train/lora_params.ts";
import { evaluateLora, trainLora } from "../../src/train/trainer.ts";
import type { Utterance } from "../../src/train/utterance.ts";
import { backendTest, testBackend } from "../_backends.ts";
import { readFixture } from "../_helpers.ts";

/** The part of the base-to-teacher loss gap the student must close on held-out utterances. */
const GAP_CLOSED = 0.75;
/** How much more often the student's greedy AR token must equal the teacher's than the base's. */
const AGREEMENT_GAIN = 0.15;

/** The teacher's LoRA and its samples, made once (on the CPU backend) for every backend's run. */
const teacher: Promise<{ file: Uint8Array<ArrayBuffer>; data: Utterance[] }> = (async () => {
  const model = await ValleModel.load(await readFixture("valle-tiny/model.sft"), {
    backend: await testBackend("cpu"),
    precision: "f32",
  });
  try {
    // A random rank-4 LoRA whose B is not zero, so that it changes the model.
    const layout = loraLayout(model.config, 4, 8);
    const random = mulberry32(11);
    const values = initLora(layout, random);
    for (const s of layout.slots) {
      for (let i = 0; i < s.outFeatures * layout.rank; i++) values[s.b + i] = 12 * (random() - 0.5);
    }
    const file = exportLora(layout, values, { dtype: "f32" });
    // Its samples: level 0 by the AR, levels 1..7 by the NAR. Every utterance is its own
    // speaker, so items are prompt-less, as the samples were made.
    await model.setLora(file);
    const data: Utterance[] = [];
    for (let seed = 0; data.length < 184; seed++) {
      const phonemes = [
        1,
        ...Array.from({ length: 4 + seed % 5 }, () => 3 + Math.floor(random() * 200)),
        2,
      ];
      const request = { phonemes, language: 0, seed, sampler: { temperature: 0.3 } };
      const ar = await model.generateAr({ ...request, maxSteps: 16 });
      if (ar.tokens.length < 4) continue;
      const frames = ar.tokens.length;
      const codes = await model.generateNar({
        ...request,
        codes: { data: ar.tokens, frames, levels: 1 },
      });
      data.push({
        name: `u${seed}`,
        speaker: `s${seed}`,
        language: "en",
        languageId: 0,
        text: "",
        ipa: "",
        phonemes: Uint16Array.from(phonemes),
        codes: Int16Array.from(codes.data),
        frames,
        levels: 8,
      });
    }
    return { file, data };
  } finally {
    await model.dispose();
  }
})();

backendTest("a LoRA trained on a teacher's samples approaches the teacher", async (backend) => {
  const { file: teacherFile, data } = await teacher;
  const model = await ValleModel.load(await readFixture("valle-tiny/model.sft"), {
    backend,
    precision: "f32",
  });
  try {
    const [train, heldOut] = [data.slice(0, 160), data.slice(160)];

    const student = await trainLora(model, train, {
      rank: 4,
      alpha: 8,
      steps: 150,
      batchSize: 16,
      learningRate: 0.01,
      // Off, so that the margins measure learning alone (dropout's gradients are checked in
      // dropout_step_test.ts); with upstream's 0.1 the student closes 78% of the gap here.
      loraDropout: 0,
      seed: 5,
    });
    const studentFile = student.toFile({ dtype: "f32" });
    const loss = (lora: Uint8Array | null) => evaluateLora(model, heldOut, { lora, seed: 9 });
    const [base, teacher, learned] = [
      await loss(null),
      await loss(teacherFile),
      await loss(studentFile),
    ];
    const gap = base - teacher;
    assert.ok(gap > 0.5, `the teacher's samples are far from the base: ${base} vs ${teacher}`);
    assert.ok(
      learned < base - GAP_CLOSED * gap,
      `held-out loss: base ${base.toFixed(3)}, teacher ${teacher.toFixed(3)}, student ${
        learned.toFixed(3)
      }`,
    );
    assert.ok(student.history[0].loss > student.history.at(-1)!.loss);

    // Greedy AR choices (teacher-forced argmax over the held-out responses).
    const choices = async (lora: Uint8Array | null): Promise<number[]> => {
      await model.setLora(lora);
      const out: number[] = [];
      for (const u of heldOut) {
        const response = Array.from({ length: u.frames }, (_, t) => u.codes[t * 8]);
        const { logits, rows, columns } = await model.logits({
          mode: "ar",
          phonemes: u.phonemes,
          language: 0,
          response,
          teacherForced: true,
        });
        for (let r = 0; r < rows; r++) {
          const row = logits.subarray(r * columns, (r + 1) * columns);
          out.push(row.indexOf(Math.max(...row)));
        }
      }
      return out;
    };
    const teacherChoices = await choices(teacherFile);
    const agreement = (c: number[]) =>
      c.filter((t, i) => t === teacherChoices[i]).length / c.length;
    const [fromBase, fromStudent] = [
      agreement(await choices(null)),
      agreement(await choices(studentFile)),
    ];
    await model.setLora(null);
    assert.ok(
      fromStudent > fromBase + AGREEMENT_GAIN,
      `greedy agreement with the teacher: base ${fromBase.toFixed(3)}, student ${
        fromStudent.toFixed(3)
      }`,
    );
  } finally {
    await model.dispose();
  }
});
