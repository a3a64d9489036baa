/**
 * The GPU sampler's random draws (the golden files check every deterministic stage): frequencies
 * follow the softmax of the processed logits, filters remove what they should, seeds reproduce,
 * and bad options are OptionErrors.
 */

import assert from "node:assert/strict";
import { OptionError } from "../../../src/errors.ts";
import { resolveSamplerOptions, sampleLogits } from "../../../src/models/valle/sampler.ts";
import { backendTest } from "../../_backends.ts";

const ROWS = 8192;
const ROW = [2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -4.0];

function softmax(x: number[]): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Draws ROWS tokens from ROW and checks the counts against `expected` within 4.5 sigma. */
async function checkFrequencies(
  backend: Parameters<typeof sampleLogits>[0],
  options: Parameters<typeof sampleLogits>[3],
  expected: number[],
): Promise<void> {
  const logits = new Float32Array(ROWS * ROW.length);
  for (let r = 0; r < ROWS; r++) logits.set(ROW, r * ROW.length);
  const { tokens, scores } = await sampleLogits(backend, logits, [ROWS, ROW.length], options, {
    seed: 3,
  });
  const counts = new Array(ROW.length).fill(0);
  tokens.forEach((t, r) => {
    counts[t]++;
    assert.ok(Math.abs(scores[r] - expected[t]) < 1e-5, `score of token ${t}`);
  });
  counts.forEach((c, i) => {
    const p = expected[i];
    const sigma = Math.sqrt(ROWS * p * (1 - p));
    assert.ok(
      Math.abs(c - ROWS * p) <= 4.5 * sigma + 1e-9,
      `token ${i}: ${c} draws, expected ${ROWS * p}`,
    );
  });
}

backendTest("categorical draws follow softmax(logits / T)", async (backend) => {
  await checkFrequencies(backend, { temperature: 1 }, softmax(ROW));
  await checkFrequencies(backend, { temperature: 0.5 }, softmax(ROW.map((v) => v / 0.5)));
});

backendTest(
  "draws after top-k and top-p only pick the kept tokens, renormalized",
  async (backend) => {
    const top3 = softmax(ROW.slice(0, 3));
    await checkFrequencies(backend, { temperature: 1, topK: 3 }, [...top3, 0, 0, 0, 0, 0]);
    // softmax(ROW) = 0.405, 0.246, 0.149, …: the cumulative sum first exceeds 0.7 at index 2.
    await checkFrequencies(backend, { temperature: 1, topP: 0.7 }, [...top3, 0, 0, 0, 0, 0]);
  },
);

backendTest(
  "a seed reproduces the draws; another seed and another counter change them",
  async (backend) => {
    const logits = new Float32Array(256 * 64).map((_, i) => Math.sin(i * 0.37) * 3);
    const draw = async (seed: number, counter: number) =>
      Array.from(
        (await sampleLogits(backend, logits, [256, 64], { temperature: 1 }, { seed, counter }))
          .tokens,
      );
    const a = await draw(1, 0);
    assert.deepEqual(await draw(1, 0), a);
    assert.notDeepEqual(await draw(2, 0), a);
    assert.notDeepEqual(await draw(1, 1), a);
  },
);

Deno.test("bad sampler options are OptionErrors", () => {
  for (
    const bad of [{ topP: 0 }, { topP: 1.5 }, { topK: -1 }, { topK: 2.5 }, { temperature: NaN }, {
      minP: 1,
    }, { repetitionPenalty: 0 }]
  ) {
    assert.throws(() => resolveSamplerOptions(bad), OptionError, JSON.stringify(bad));
  }
});

backendTest("sorting stages refuse rows wider than 2048 at record time", async (backend) => {
  const wide = new Float32Array(4096);
  await assert.rejects(sampleLogits(backend, wide, [1, 4096], { topK: 5 }), OptionError);
  const { tokens } = await sampleLogits(backend, wide.map((_, i) => (i === 3000 ? 1 : 0)), [
    1,
    4096,
  ], {
    temperature: 0,
  });
  assert.equal(tokens[0], 3000);
});
