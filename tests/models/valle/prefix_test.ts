/**
 * Rolling context (`prefix`, the original's `context_history`) on the tiny golden model: AR and
 * NAR-len runs with a prefix equal runs assembled by hand from single forward passes (phonemes
 * `prefix[:-1] ++ current[1:]`, the prefix's level 0 before the response, CFG and sampling on the
 * new frames only), the prefix never appears in the output, and `generate` gives the duration and
 * the NAR levels the plain phonemes and the new frames.
 */

import assert from "node:assert/strict";
import { OptionError } from "../../../src/errors.ts";
import { ValleModel } from "../../../src/models/valle/model.ts";
import { sampleLogits, STREAM } from "../../../src/models/valle/sampler.ts";
import { demaskSchedule } from "../../../src/models/valle/schedule.ts";
import { backendTest } from "../../_backends.ts";
import { assertClose } from "../../_helpers.ts";
import { TINY_COND, TINY_MODEL, TINY_TARGET } from "./_tiny.ts";

const MODEL = TINY_MODEL;
const COND = TINY_COND;
const TARGET = TINY_TARGET; // (30, 8)
const P = 6;
const PREFIX = {
  phonemes: [1, 22, 111, 100, 4, 37, 2],
  codes: { data: TARGET.slice(0, P * 8), frames: P, levels: 8 },
};
const PREFIX_LEVEL0 = Array.from({ length: P }, (_, t) => TARGET[t * 8]);
/** prefix.phonemes[:-1] ++ phonemes[1:], assembled independently of the library. */
const MERGED = [...PREFIX.phonemes.slice(0, -1), ...Array.from(COND.phonemes).slice(1)];
const MASK = 1024;

backendTest("AR with a prefix equals recomputation after the prefix's level 0", async (backend) => {
  const valle = await ValleModel.load(MODEL, { backend });
  const sampler = {
    temperature: 0,
    repetitionPenalty: 1.25,
    repetitionPenaltyDecay: 0.5,
    lengthPenalty: 0.5,
  };
  const maxSteps = 10;
  const run = await valle.generateAr({
    ...COND,
    prefix: PREFIX,
    maxSteps,
    sampler,
    checkEvery: 4,
  });
  // By hand: full passes over merged phonemes and prefix ++ tokens; the penalties see the prefix
  // as previous tokens and the length includes it (forward_ar's prev_list is the whole sequence).
  const expected: number[] = [];
  for (let s = 0; s < maxSteps; s++) {
    const previous = [...PREFIX_LEVEL0, ...expected];
    const { logits, columns } = await valle.logits({
      ...COND,
      phonemes: MERGED,
      mode: "ar",
      response: previous,
    });
    const r = await sampleLogits(backend, logits, [1, columns], sampler, {
      previous,
      lengthPenalty: { length: previous.length + 1, token: MASK },
      stream: STREAM.ar,
      counter: s,
    });
    expected.push(r.tokens[0]);
    if (r.tokens[0] === MASK) break;
  }
  const plain = await valle.generateAr({ ...COND, maxSteps, sampler });
  valle.dispose();
  assert.deepEqual(Array.from(run.sampled), expected);
  assert.equal(run.stopped, expected.at(-1) === MASK);
  assert.ok(run.tokens.length <= maxSteps, "maxSteps counts new tokens");
  assert.notDeepEqual(Array.from(run.sampled), Array.from(plain.sampled), "the prefix matters");
});

/**
 * Guided logits after element `from` as the original's cfg_logits computes them over the new
 * frames (float64), and the rescale factor.
 */
function guide(
  cond: Float32Array,
  uncond: Float32Array,
  from: number,
  strength: number,
  rescale: number,
): { z: Float64Array; factor: number } {
  const c = cond.subarray(from);
  const u = uncond.subarray(from);
  const z = Float64Array.from(c, (v, i) => u[i] + (v - u[i]) * strength);
  const std = (a: ArrayLike<number>) => {
    let mean = 0;
    for (let i = 0; i < a.length; i++) mean += a[i];
    mean /= a.length;
    let ss = 0;
    for (let i = 0; i < a.length; i++) ss += (a[i] - mean) ** 2;
    return Math.sqrt(ss / (a.length - 1));
  };
  const factor = rescale * (std(c) / std(z)) + (1 - rescale);
  return { z: z.map((v) => v * factor), factor };
}

backendTest(
  "NAR-len with a prefix equals a demasking loop assembled by hand; the CFG floor stays 2.5",
  async (backend) => {
    const valle = await ValleModel.load(MODEL, { backend, precision: "f32" });
    const frames = 10;
    const steps = 4;
    // Requested strength 1 with a prefix: the original's exception for this case is computed
    // but never used, so the logits are guided with 2.5.
    const run = await valle.generateNarLen({
      ...COND,
      prefix: PREFIX,
      frames,
      steps,
      cfg: { strength: 1, rescale: 0.75 },
      trace: true,
    });
    let tokens: number[] = new Array(frames).fill(MASK);
    let scores: number[] = new Array(frames).fill(1);
    const perStep: number[][] = [];
    const factors: number[] = [];
    for (const step of demaskSchedule({ steps, length: frames })) {
      // Mask the `count` lowest scores (ties in index order, as the kernel does).
      const order = tokens.map((_, i) => i).sort((a, b) => scores[a] - scores[b] || a - b);
      for (const i of order.slice(0, step.count)) tokens[i] = MASK;
      const masked = tokens.map((t) => t === MASK);
      const response = [...PREFIX_LEVEL0, ...tokens];
      const cond = await valle.logits({ ...COND, phonemes: MERGED, mode: "nar-len", response });
      const uncond = await valle.logits({
        ...COND,
        phonemes: [1, 2],
        prompt: null,
        mode: "nar-len",
        response,
      });
      assert.equal(cond.rows, P + frames);
      const cols = cond.columns;
      const { z, factor } = guide(cond.logits, uncond.logits, P * cols, 2.5, 0.75);
      factors.push(factor);
      const next: number[] = [];
      scores = [];
      for (let r = 0; r < frames; r++) {
        const row = z.subarray(r * cols, (r + 1) * cols);
        let best = 0;
        for (let c = 1; c < cols; c++) if (row[c] > row[best]) best = c;
        let sum = 0;
        for (const v of row) sum += Math.exp(v - row[best]);
        next.push(best);
        scores.push(1 / sum);
      }
      tokens = tokens.map((t, i) => (masked[i] ? next[i] : t));
      perStep.push([...tokens]);
    }
    const plain = await valle.generateNarLen({ ...COND, frames, steps });
    valle.dispose();
    assert.deepEqual(Array.from(run.tokens), tokens);
    assert.deepEqual(Array.from(run.trace!.tokens), perStep.flat());
    // The factor depends on the strength and on which rows the std covers.
    assertClose(run.trace!.cfgFactor, factors, { atol: 1e-5, label: "CFG factors" });
    assert.equal(run.tokens.length, frames, "only the new frames come back");
    assert.notDeepEqual(Array.from(run.tokens), Array.from(plain.tokens), "the prefix matters");
  },
);

backendTest(
  "generate with a prefix: duration and NAR levels see the plain phonemes and the new frames",
  async (backend) => {
    const valle = await ValleModel.load(MODEL, { backend });
    // AR + NAR: the NAR levels run on the AR tokens after the prefix, with the plain phonemes.
    const ar = { maxSteps: 6, sampler: { temperature: 0 } };
    const arNar = await valle.generate({ ...COND, prefix: PREFIX, modality: "ar+nar", ar });
    const level0 = await valle.generateAr({ ...COND, prefix: PREFIX, ...ar });
    const byHand = await valle.generateNar({
      ...COND,
      codes: { data: level0.tokens, frames: level0.tokens.length, levels: 1 },
    });
    assert.equal(arNar.codes.frames, level0.tokens.length);
    assert.deepEqual(Array.from(arNar.codes.data), Array.from(byHand.data));

    // NAR-len: the duration comes from the plain phonemes, level 0 from the prefixed run (CFG
    // raised to 2.5), the NAR levels from the plain phonemes with the strength asked for (1,
    // no floor) and its rescale, as upstream's forward_nar takes them from sampling_kwargs.
    const narLen = { steps: 3, cfg: { strength: 1, rescale: 0.75 } };
    const out = await valle.generate({
      ...COND,
      prefix: PREFIX,
      modality: "nar-len",
      maxFrames: 9,
      narLen,
    });
    const plainDuration = await valle.predictDuration(COND);
    const mergedDuration = await valle.predictDuration({ ...COND, phonemes: MERGED });
    assert.notEqual(plainDuration.frames, mergedDuration.frames, "the check can tell them apart");
    assert.equal(out.duration!.frames, plainDuration.frames);
    const l0 = await valle.generateNarLen({ ...COND, prefix: PREFIX, frames: 9, ...narLen });
    const codes = await valle.generateNar({
      ...COND,
      codes: { data: l0.tokens, frames: 9, levels: 1 },
      cfg: { strength: 1, rescale: 0.75 },
    });
    // No strength asked: NAR-len still uses its 2.5 floor, the NAR levels use no CFG.
    const unguided = await valle.generate({
      ...COND,
      prefix: PREFIX,
      modality: "nar-len",
      maxFrames: 9,
      narLen: { steps: 3 },
    });
    const plain = await valle.generateNar({
      ...COND,
      codes: { data: l0.tokens, frames: 9, levels: 1 },
    });
    valle.dispose();
    assert.deepEqual(Array.from(out.codes.data), Array.from(codes.data));
    assert.deepEqual(Array.from(unguided.codes.data), Array.from(plain.data));
  },
);

backendTest("a prefix with bad codes is an OptionError before any GPU work", async (backend) => {
  const valle = await ValleModel.load(MODEL, { backend });
  const submits = backend.stats.submits;
  const bad = [
    { ...PREFIX, codes: { data: [1024, 0], frames: 2, levels: 1 } },
    { ...PREFIX, codes: { data: [5], frames: 2, levels: 1 } },
    { ...PREFIX, codes: { data: [], frames: 0, levels: 0 } },
  ];
  for (const prefix of bad) {
    await assert.rejects(valle.generateAr({ ...COND, prefix }), OptionError);
    await assert.rejects(valle.generateNarLen({ ...COND, prefix, frames: 4 }), OptionError);
  }
  assert.equal(backend.stats.submits, submits);
  valle.dispose();
});
