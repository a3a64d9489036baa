/**
 * Progress and cancellation of the long calls on the tiny golden model: the reports of each phase
 * (after each AR stop check, NAR-len step and NAR level, no extra readback), an abort mid-run
 * rejecting with the signal's reason at the next boundary, and the model afterwards giving the
 * same result as a freshly loaded one.
 */

import assert from "node:assert/strict";
import { ValleModel } from "../../../src/models/valle/model.ts";
import type { ValleProgress } from "../../../src/models/valle/progress.ts";
import { backendTest } from "../../_backends.ts";
import { TINY_COND, TINY_MODEL } from "./_tiny.ts";

const MODEL = TINY_MODEL;
const COND = TINY_COND;
const GREEDY = { temperature: 0 };

const steps = (reports: ValleProgress[], phase: string) =>
  reports.filter((p) => p.phase === phase).map((p) => `${p.step}/${p.steps}`);

backendTest("AR reports after each stop check, with no extra readback", async (backend) => {
  const valle = await ValleModel.load(MODEL, { backend });
  const reports: ValleProgress[] = [];
  const before = backend.stats.readbacks;
  const r = await valle.generateAr({
    ...COND,
    maxSteps: 40,
    checkEvery: 8,
    sampler: GREEDY,
    onProgress: (p) => reports.push(p),
  });
  const readbacks = backend.stats.readbacks - before;
  valle.dispose();
  // The stop comes at step 23: chunks [0, 8) and [8, 16) are read, then [16, 24) holds it.
  assert.equal(r.tokens.length, 23);
  assert.deepEqual(steps(reports, "level0"), ["0/40", "8/40", "16/40", "40/40"]);
  assert.equal(reports.length, 4);
  assert.equal(readbacks, 3, "one readback per chunk, none for the reports");
});

backendTest(
  "an abort mid-AR rejects with its reason; the model then matches a fresh one",
  async (backend) => {
    const valle = await ValleModel.load(MODEL, { backend });
    const controller = new AbortController();
    const reason = new Error("stop here");
    const reports: number[] = [];
    const aborted = valle.generateAr({
      ...COND,
      maxSteps: 40,
      checkEvery: 4,
      sampler: GREEDY,
      signal: controller.signal,
      onProgress: (p) => {
        reports.push(p.step);
        if (p.step === 4) controller.abort(reason);
      },
    });
    await assert.rejects(aborted, (e) => e === reason);
    // Stopped at the next check: nothing after step 4 was reported.
    assert.deepEqual(reports, [0, 4]);
    const request = { ...COND, maxSteps: 30, checkEvery: 4, sampler: { temperature: 1 }, seed: 5 };
    const after = await valle.generateAr(request);
    const fresh = await ValleModel.load(MODEL, { backend });
    const expected = await fresh.generateAr(request);
    fresh.dispose();
    valle.dispose();
    assert.deepEqual(Array.from(after.sampled), Array.from(expected.sampled));
    assert.ok(after.sampled.length > 4);
    backend.assertHealthy();
  },
);

backendTest(
  "generate reports duration, NAR-len steps and NAR levels in order; aborts there too",
  async (backend) => {
    const valle = await ValleModel.load(MODEL, { backend });
    const reports: ValleProgress[] = [];
    const before = backend.stats.readbacks;
    const request = { ...COND, modality: "nar-len" as const, maxFrames: 8, narLen: { steps: 4 } };
    const out = await valle.generate({ ...request, onProgress: (p) => reports.push(p) });
    const readbacks = backend.stats.readbacks - before;
    assert.deepEqual(reports.map((p) => p.phase), [
      ...new Array(2).fill("duration"),
      ...new Array(5).fill("level0"),
      ...new Array(8).fill("nar"),
    ]);
    assert.deepEqual(steps(reports, "duration"), ["0/10", "10/10"]);
    assert.deepEqual(steps(reports, "level0"), ["0/4", "1/4", "2/4", "3/4", "4/4"]);
    assert.deepEqual(steps(reports, "nar"), Array.from({ length: 8 }, (_, l) => `${l}/7`));
    assert.equal(readbacks, 3, "the digits, level 0 and the codes: one readback each");

    // Abort after NAR-len step 2, then after NAR level 3: each stops at the next boundary.
    for (const [phase, at] of [["level0", 2], ["nar", 3]] as const) {
      const controller = new AbortController();
      const seen: string[] = [];
      await assert.rejects(
        valle.generate({
          ...request,
          signal: controller.signal,
          onProgress: (p) => {
            seen.push(`${p.phase} ${p.step}`);
            if (p.phase === phase && p.step === at) controller.abort();
          },
        }),
        (e) => e instanceof DOMException && e.name === "AbortError",
      );
      assert.equal(seen.at(-1), `${phase} ${at}`);
    }
    const again = await valle.generate(request);
    valle.dispose();
    assert.deepEqual(Array.from(again.codes.data), Array.from(out.codes.data));
  },
);

backendTest("an already aborted signal rejects before any GPU work", async (backend) => {
  const valle = await ValleModel.load(MODEL, { backend });
  const before = { ...backend.stats };
  const signal = AbortSignal.abort(new Error("never started"));
  await assert.rejects(valle.generateAr({ ...COND, signal }), /never started/);
  await assert.rejects(valle.generateNarLen({ ...COND, frames: 4, signal }), /never started/);
  await assert.rejects(
    valle.generateNar({ ...COND, codes: { data: [1, 2], frames: 2, levels: 1 }, signal }),
    /never started/,
  );
  assert.equal(backend.stats.submits, before.submits);
  assert.equal(backend.stats.dispatches, before.dispatches);
  valle.dispose();
});
