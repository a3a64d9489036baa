/**
 * Modes beyond the golden cases: sampled NAR-len (seeded, annealed), NAR-len's refusals, the
 * older ar+nar layout (STT on proj.L, AR + NAR pipeline, no NAR-len), and STT decoding with the
 * KV cache against full recomputation.
 */

import assert from "node:assert/strict";
import { OptionError } from "../../../src/errors.ts";
import { ValleModel } from "../../../src/models/valle/model.ts";
import { makeRandomValle } from "../../../tools/make_valle_model.ts";
import { backendTest } from "../../_backends.ts";

const AUDIO = 64;
const PROMPT = {
  data: Array.from({ length: 10 * 4 }, (_, i) => (i * 5) % AUDIO),
  frames: 10,
  levels: 4,
};
const COND = { phonemes: [1, 30, 31, 2], language: 0, prompt: PROMPT };

backendTest("sampled NAR-len is reproducible per seed and differs from greedy", async (backend) => {
  const valle = await ValleModel.load(makeRandomValle({ levels: 4, audioTokens: AUDIO, seed: 2 }), {
    backend,
  });
  const run = (temperature: number, seed: number) =>
    valle.generateNarLen({ ...COND, frames: 24, steps: 6, temperature, seed, trace: true });
  const [a, b, greedy] = [await run(1.5, 4), await run(1.5, 4), await run(0, 4)];
  assert.deepEqual(Array.from(a.tokens), Array.from(b.tokens));
  assert.notDeepEqual(Array.from(a.tokens), Array.from(greedy.tokens));
  // Every frame is masked at step 0 and the last step masks one frame.
  assert.deepEqual([a.trace!.counts[0], a.trace!.counts[5]], [24, 1]);
  assert.ok(a.trace!.scores.every((s) => s > 0 && s <= 1));
  await assert.rejects(
    valle.generateNarLen({ ...COND, frames: 8, sampler: { repetitionPenalty: 1.1 } }),
    OptionError,
  );
  valle.dispose();
});

backendTest(
  "the ar+nar layout runs AR + NAR, transcribes on proj.L, and has no NAR-len",
  async (backend) => {
    const bytes = makeRandomValle({ layout: "ar+nar", levels: 4, audioTokens: AUDIO, seed: 9 });
    const valle = await ValleModel.load(bytes, { backend });
    assert.equal(valle.heads.stt, 4);
    const out = await valle.generate({
      ...COND,
      ar: { maxSteps: 12, sampler: { temperature: 0 } },
    });
    assert.equal(out.modality, "ar+nar");
    assert.equal(out.codes.levels, 4);
    assert.ok(out.codes.frames > 0 && out.codes.data.length === out.codes.frames * 4);
    assert.ok(out.codes.data.every((c) => c >= 0 && c < AUDIO));
    const { columns } = await valle.logits({ mode: "stt", phonemes: [1], response: PROMPT });
    assert.equal(columns, 256);
    await assert.rejects(valle.predictDuration(COND), OptionError);
    await assert.rejects(valle.generateNarLen({ ...COND, frames: 8 }), OptionError);
    valle.dispose();
  },
);

backendTest(
  "STT with the KV cache equals greedy recomputation on the phoneme head",
  async (backend) => {
    const valle = await ValleModel.load(
      makeRandomValle({ levels: 4, audioTokens: AUDIO, seed: 4 }),
      {
        backend,
      },
    );
    const { phonemes, stopped } = await valle.transcribe({
      codes: PROMPT,
      maxSteps: 20,
      checkEvery: 8,
    });
    const expected: number[] = [];
    for (let s = 0; s < 20; s++) {
      const { logits } = await valle.logits({
        mode: "stt",
        phonemes: [1, ...expected],
        response: PROMPT,
      });
      const next = logits.indexOf(Math.max(...logits));
      if (next === 2) break;
      expected.push(next);
    }
    valle.dispose();
    assert.ok(expected.length > 3, `${expected.length} phonemes`);
    assert.deepEqual(Array.from(phonemes), expected);
    assert.equal(stopped, expected.length < 20);
  },
);
