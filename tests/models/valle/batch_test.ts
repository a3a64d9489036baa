/**
 * Batched generation: every row of a batch gets the codes the same request alone gives with its
 * seed, for each modality, greedy and sampled, with rows of very different lengths and rows that
 * stop before the others (on the tiny golden model, which stops by itself).
 */

import assert, { deepStrictEqual } from "node:assert/strict";
import { OptionError } from "../../../src/errors.ts";
import type { BatchRow, GenerateBatchRequest } from "../../../src/models/valle/batch.ts";
import { type GenerateResult, ValleModel } from "../../../src/models/valle/model.ts";
import type { ValleProgress } from "../../../src/models/valle/progress.ts";
import { backendTest } from "../../_backends.ts";
import { TINY_COND, TINY_MODEL } from "./_tiny.ts";

const phonemes = Array.from(TINY_COND.phonemes);
const prompt = TINY_COND.prompt!;
/** Rows of very different lengths: no prompt and 3 phonemes, the golden case, a long one. */
const ROWS: BatchRow[] = [
  { phonemes: [1, 40, 2], language: 0, prompt: null, seed: 3 },
  { ...TINY_COND, seed: 4 },
  {
    phonemes: [...phonemes.slice(0, -1), ...phonemes.slice(1, -1), ...phonemes.slice(1)],
    language: 1,
    prompt: { data: Array.from(prompt.data).slice(0, 12 * 8), frames: 12, levels: 8 },
    seed: 5,
  },
];

/** NAR-len rows: the middle one is predicted 6 frames long, the others longer than `maxFrames`. */
const NAR_LEN_ROWS: BatchRow[] = [
  ROWS[0],
  { phonemes: [1, 45, 46, 2], language: 0, prompt, seed: 6 },
  ROWS[2],
];

/** The same rows alone, one `generate` call each with the row's seed in every stage. */
async function alone(valle: ValleModel, request: GenerateBatchRequest): Promise<GenerateResult[]> {
  const out: GenerateResult[] = [];
  for (const { seed, ...conditioning } of request.rows) {
    const { rows: _, ...settings } = request;
    out.push(
      await valle.generate({
        ...conditioning,
        ...settings,
        ar: { ...settings.ar, seed },
        nar: { ...settings.nar, seed },
        narLen: { ...settings.narLen, seed },
      }),
    );
  }
  return out;
}

function assertSameResults(batch: GenerateResult[], single: GenerateResult[]): void {
  assert.equal(batch.length, single.length);
  batch.forEach((b, r) => {
    assert.equal(b.modality, single[r].modality);
    assert.deepEqual(b.duration, single[r].duration, `row ${r} duration`);
    assert.deepEqual(
      { frames: b.codes.frames, levels: b.codes.levels, data: Array.from(b.codes.data) },
      {
        frames: single[r].codes.frames,
        levels: single[r].codes.levels,
        data: Array.from(single[r].codes.data),
      },
      `row ${r} codes`,
    );
  });
}

for (const temperature of [0, 1]) {
  backendTest(
    `generateBatch() AR + NAR rows equal each row alone (temperature ${temperature})`,
    async (backend) => {
      const valle = await ValleModel.load(TINY_MODEL, { backend });
      const request: GenerateBatchRequest = {
        rows: ROWS,
        modality: "ar+nar",
        ar: { maxSteps: 60, checkEvery: 8, sampler: { temperature } },
        nar: { sampler: { temperature: temperature / 2 } },
      };
      const reports: ValleProgress[] = [];
      const batch = await valle.generateBatch({ ...request, onProgress: (p) => reports.push(p) });
      const single = await alone(valle, request);
      assertSameResults(batch, single);
      // Rows of different lengths, one stopping chunks before another.
      const frames = batch.map((b) => b.codes.frames);
      assert.ok(Math.max(...frames) - Math.min(...frames) >= 8, `frames ${frames}`);
      const level0 = reports.filter((p) => p.phase === "level0");
      assert.deepEqual(level0[0], { phase: "level0", step: 0, steps: 60, running: 3 });
      assert.ok(level0.some((p) => p.running! > 0 && p.running! < 3), JSON.stringify(level0));
      await valle.dispose();
    },
  );
}

for (const temperature of [0, 1]) {
  backendTest(
    `generateBatch() NAR-len rows equal each row alone (temperature ${temperature})`,
    async (backend) => {
      const valle = await ValleModel.load(TINY_MODEL, { backend });
      const request: GenerateBatchRequest = {
        rows: NAR_LEN_ROWS,
        modality: "nar-len",
        minFrames: 1,
        durationPadding: 1,
        maxFrames: 40,
        narLen: { steps: 5, temperature, cfg: { strength: 3, rescale: 0.75 } },
      };
      const batch = await valle.generateBatch(request);
      assertSameResults(batch, await alone(valle, request));
      assert.deepEqual(batch.map((b) => b.codes.frames), [40, 6, 40]);
      await valle.dispose();
    },
  );
}

backendTest(
  "generateBatch() with more rows than the fused decode kernels take",
  async (backend) => {
    const valle = await ValleModel.load(TINY_MODEL, { backend });
    const rows = [...ROWS, ...ROWS.map((r) => ({ ...r, seed: r.seed! + 10 }))];
    const request: GenerateBatchRequest = {
      rows,
      modality: "ar+nar",
      ar: { maxSteps: 40, checkEvery: 16, sampler: { temperature: 1 } },
    };
    assertSameResults(await valle.generateBatch(request), await alone(valle, request));
    await valle.dispose();
  },
);

backendTest("generateBatch() refuses no rows and bad settings", async (backend) => {
  const valle = await ValleModel.load(TINY_MODEL, { backend });
  await assert.rejects(valle.generateBatch({ rows: [] }), OptionError);
  await assert.rejects(
    valle.generateBatch({ rows: ROWS, modality: "ar+nar", ar: { maxSteps: 0 } }),
    /maxSteps is 0/,
  );
  await assert.rejects(
    valle.generateBatch({ rows: ROWS, narLen: { sampler: { repetitionPenalty: 1.2 } } }),
    OptionError,
  );
  await valle.dispose();
});

backendTest("a row that has stopped stops costing dispatches", async (backend) => {
  const valle = await ValleModel.load(TINY_MODEL, { backend });
  const request = (rows: BatchRow[]): GenerateBatchRequest => ({
    rows,
    modality: "ar+nar",
    ar: { maxSteps: 60, checkEvery: 8, sampler: { temperature: 0 } },
  });
  const dispatches = async (rows: BatchRow[]) => {
    const before = backend.stats.dispatches;
    const out = await valle.generateBatch(request(rows));
    return { count: backend.stats.dispatches - before, frames: out.map((o) => o.codes.frames) };
  };
  // The shortest row next to the longest, and the longest twice: the same passes, except that
  // the short row leaves the steps once its stop was read.
  const single = await Promise.all(ROWS.map((r) => valle.generate({ ...r, ...request([]) })));
  const frames = single.map((s) => s.codes.frames);
  const short = ROWS[frames.indexOf(Math.min(...frames))];
  const long = ROWS[frames.indexOf(Math.max(...frames))];
  const mixed = await dispatches([long, short]);
  const same = await dispatches([long, long]);
  deepStrictEqual(mixed.frames, [Math.max(...frames), Math.min(...frames)]);
  assert.ok(mixed.count < same.count, `${mixed.count} vs ${same.count} dispatches`);
  await valle.dispose();
});
