/**
 * The AR decoding loop: the KV-cache run equals full recomputation token for token (greedy and
 * sampled, 60 steps), seeded runs reproduce, the stop check interval does not change the result,
 * and the loop reads back once per chunk.
 */

import assert from "node:assert/strict";
import { parseSafetensors } from "../../../src/io/safetensors.ts";
import { decode } from "../../../src/models/valle/ar.ts";
import { assembleSequence } from "../../../src/models/valle/inputs.ts";
import { ValleModel } from "../../../src/models/valle/model.ts";
import {
  resolveSamplerOptions,
  sampleLogits,
  type SamplerOptions,
  STREAM,
} from "../../../src/models/valle/sampler.ts";
import { createRunState, destroyRunState } from "../../../src/models/valle/state.ts";
import { destroyValleWeights, uploadValleWeights } from "../../../src/models/valle/weights.ts";
import { makeRandomValle } from "../../../tools/make_valle_model.ts";
import { backendTest } from "../../_backends.ts";
import { TINY_COND, TINY_MODEL } from "./_tiny.ts";

const AUDIO = 64; // codes per level; the stop token is 64
const BYTES = makeRandomValle({
  dim: 32,
  heads: 4,
  layers: 2,
  levels: 4,
  audioTokens: AUDIO,
  seed: 5,
});
const PROMPT = {
  data: Array.from({ length: 12 * 4 }, (_, i) => (i * 7) % AUDIO),
  frames: 12,
  levels: 4,
};
const COND = { phonemes: [1, 40, 41, 42, 2], language: 1, prompt: PROMPT };
const STEPS = 60;

/** 60 cached AR steps that ignore the stop token, so every step is compared. */
async function cachedRun(
  backend: Parameters<typeof createRunState>[0],
  sampler: SamplerOptions,
  seed: number,
): Promise<Int32Array> {
  const { config, weights } = await uploadValleWeights(
    backend,
    parseSafetensors(BYTES),
    backend.weightDtype,
  );
  const state = createRunState(backend, config, 128);
  const rec = backend.createRecorder({ capacity: 8192 });
  const seq = assembleSequence(config, weights.layout, {
    ...COND,
    mode: "ar",
    responseFrames: STEPS,
  });
  const out = await decode({ backend, model: { config, weights }, state, rec }, {
    seq,
    initial: [],
    maxSteps: STEPS,
    stopToken: -1,
    sampler: resolveSamplerOptions(sampler),
    lengthPenaltyToken: AUDIO,
    seed,
    stream: STREAM.ar,
    checkEvery: 16,
  });
  rec.destroy();
  destroyRunState(state);
  destroyValleWeights(weights);
  assert.equal(out.sampled.length, STEPS);
  return out.sampled;
}

/** The same steps recomputed from scratch every time (no cache), sampled with the same draw. */
async function recomputed(
  backend: Parameters<typeof createRunState>[0],
  valle: ValleModel,
  tokens: Int32Array,
  sampler: SamplerOptions,
  seed: number,
): Promise<Int32Array> {
  const out = new Int32Array(STEPS);
  for (let s = 0; s < STEPS; s++) {
    const previous = tokens.subarray(0, s);
    const { logits, columns } = await valle.logits({ ...COND, mode: "ar", response: previous });
    const r = await sampleLogits(backend, logits, [1, columns], sampler, {
      previous,
      lengthPenalty: { length: s + 1, token: AUDIO },
      seed,
      stream: STREAM.ar,
      counter: s,
    });
    out[s] = r.tokens[0];
  }
  return out;
}

for (
  const [name, sampler] of [
    ["greedy", { temperature: 0 }],
    [
      "sampled (T 1, top-k 20, repetition and length penalties)",
      {
        temperature: 1,
        topK: 20,
        repetitionPenalty: 1.2,
        repetitionPenaltyDecay: 0.3,
        lengthPenalty: 0.5,
      },
    ],
  ] as const
) {
  backendTest(
    `AR with the KV cache equals full recomputation over ${STEPS} steps, ${name}`,
    async (backend) => {
      const cached = await cachedRun(backend, sampler, 11);
      const valle = await ValleModel.load(BYTES, { backend });
      const fresh = await recomputed(backend, valle, cached, sampler, 11);
      valle.dispose();
      assert.deepEqual(Array.from(cached), Array.from(fresh));
      assert.ok(new Set(cached).size > 5, "the run is not degenerate");
    },
  );
}

backendTest(
  "a seeded sampled AR run is reproducible, and another seed differs",
  async (backend) => {
    const valle = await ValleModel.load(BYTES, { backend });
    const run = (seed: number) =>
      valle.generateAr({ ...COND, maxSteps: 40, sampler: { temperature: 1.2 }, seed });
    const [a, b, c] = [await run(7), await run(7), await run(8)];
    valle.dispose();
    assert.deepEqual(Array.from(a.sampled), Array.from(b.sampled));
    assert.notDeepEqual(Array.from(a.sampled), Array.from(c.sampled));
  },
);

backendTest(
  "the stop check interval changes neither tokens nor the stop; one readback per chunk",
  async (backend) => {
    const valle = await ValleModel.load(TINY_MODEL, { backend });
    const cond = TINY_COND;
    const results = [];
    for (const checkEvery of [1, 7, 64]) {
      const before = { ...backend.stats };
      const r = await valle.generateAr({
        ...cond,
        maxSteps: 40,
        sampler: { temperature: 0 },
        checkEvery,
      });
      const readbacks = backend.stats.readbacks - before.readbacks;
      // The stop (step 23) is found in the chunk holding it, read while the next chunk runs.
      const chunks = Math.min(Math.ceil(40 / checkEvery), Math.floor(23 / checkEvery) + 1);
      assert.equal(readbacks, chunks, `checkEvery ${checkEvery}`);
      results.push(Array.from(r.sampled));
      assert.equal(r.stopped, true);
      assert.equal(r.tokens.length, 23);
    }
    valle.dispose();
    assert.deepEqual(results[1], results[0]);
    assert.deepEqual(results[2], results[0]);
  },
);
