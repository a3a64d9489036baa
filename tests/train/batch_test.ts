/**
 * Packed training batches: each item's rows are what `assembleSequence` gives for its pass, its
 * labels are upstream's (AR and len shifted by one and ending in their stop token, NAR the target
 * level in place, NAR-len only the masked frames), its loss weights average each item's mean over
 * the items, and attention spans keep every item to itself. Errors name the item.
 */

import assert from "node:assert/strict";
import { OptionError } from "../../src/errors.ts";
import { assembleSequence } from "../../src/models/valle/inputs.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { IGNORE_LABEL } from "../../src/ops/cross_entropy.ts";
import { lengthDigits, packBatch, type TrainingItem } from "../../src/train/batch.ts";
import { testBackend } from "../_backends.ts";
import { readFixture } from "../_helpers.ts";

const model = await ValleModel.load(await readFixture("valle-tiny/model.sft"), {
  backend: await testBackend("cpu"),
});
const { config } = model;
const layout = model.weights.layout;
const codes = (frames: number, seed: number) => ({
  data: Array.from({ length: frames * 8 }, (_, i) => (i * 37 + seed * 11) % 1024),
  frames,
  levels: 8,
});
const common = { phonemes: [1, 30, 31, 32, 2], language: 2, prompt: codes(3, 1) };
const column = (c: ReturnType<typeof codes>, k: number) =>
  Array.from({ length: c.frames }, (_, t) => c.data[t * 8 + k]);

Deno.test("each item's rows, labels, weights and spans are upstream's", () => {
  const items: TrainingItem[] = [
    { ...common, kind: "ar", response: codes(5, 2) },
    { ...common, kind: "nar", level: 3, response: codes(4, 3) },
    {
      ...common,
      kind: "nar-len",
      response: codes(6, 4),
      mask: [true, false, true, true, false, false],
    },
    { ...common, kind: "len", response: codes(123, 5) },
  ];
  const batch = packBatch(config, layout, items, { lossScale: 0.5 });
  const sequences = [
    assembleSequence(config, layout, {
      ...common,
      mode: "ar",
      response: {
        data: [...column(items[0].response as ReturnType<typeof codes>, 0), 1024],
        frames: 6,
        levels: 1,
      },
    }),
    assembleSequence(config, layout, {
      ...common,
      mode: "nar",
      level: 3,
      response: items[1].response,
    }),
    assembleSequence(config, layout, {
      ...common,
      mode: "nar-len",
      response: {
        data: column(items[2].response as ReturnType<typeof codes>, 0).map((c, t) =>
          items[2].mask![t] ? 1024 : c
        ),
        frames: 6,
        levels: 1,
      },
    }),
    assembleSequence(config, layout, { ...common, mode: "len", lengthDigits: [0, 1, 2, 3, 10] }),
  ];
  assert.deepEqual(lengthDigits(123), [0, 1, 2, 3, 10]);
  let start = 0;
  const labels: number[][] = [
    [...column(items[0].response as ReturnType<typeof codes>, 0), 1024],
    column(items[1].response as ReturnType<typeof codes>, 3),
    column(items[2].response as ReturnType<typeof codes>, 0).map((c, t) =>
      items[2].mask![t] ? c : IGNORE_LABEL
    ),
    [0, 1, 2, 3, 10],
  ];
  const scored = [6, 4, 3, 5];
  const heads = [0, 3, 8, 10];
  batch.items.forEach((item, i) => {
    const seq = sequences[i];
    assert.equal(item.start, start);
    assert.equal(item.length, seq.length);
    assert.deepEqual(batch.ids.slice(start * 8, (start + seq.length) * 8), seq.ids);
    assert.deepEqual(batch.positions.slice(start, start + seq.length), seq.positions);
    assert.equal(item.causal, seq.causal);
    assert.equal(item.head, heads[i]);
    assert.equal(item.scored, scored[i]);
    // AR and len: the row before the output segment predicts its first token.
    const shifted = i === 0 || i === 3 ? 1 : 0;
    assert.equal(item.readStart, start + seq.outputStart - shifted);
    assert.deepEqual(
      Array.from(batch.labels.slice(item.readStart, item.readStart + item.readLength)),
      labels[i],
    );
    for (let r = start; r < start + seq.length; r++) {
      const scoredRow = batch.labels[r] !== IGNORE_LABEL;
      assert.equal(batch.weights[r], scoredRow ? Math.fround(0.5 / (scored[i] * 4)) : 0);
      // Each row's keys lie inside its own item.
      const [from, count] = [batch.spans[2 * r], batch.spans[2 * r + 1]];
      assert.ok(from === start && from + count <= start + seq.length);
      assert.equal(count, seq.causal ? r - start + 1 : seq.length);
    }
    start += seq.length;
  });
  assert.equal(batch.rows, start);
  assert.deepEqual([...batch.items.map((it) => it.causal)], [true, false, false, true]);
});

Deno.test("an item without a scored row weighs nothing, and the others average without it", () => {
  const batch = packBatch(config, layout, [
    { ...common, kind: "nar-len", response: codes(3, 1), mask: [false, false, false] },
    { ...common, kind: "nar", level: 1, response: codes(4, 2) },
  ]);
  assert.equal(batch.items[0].scored, 0);
  const weights = Array.from(batch.weights).filter((w) => w > 0);
  assert.deepEqual(weights, [0.25, 0.25, 0.25, 0.25]);
});

Deno.test("bad items are refused naming the item", () => {
  assert.throws(() => packBatch(config, layout, []), OptionError);
  assert.throws(
    () =>
      packBatch(config, layout, [{
        ...common,
        kind: "nar-len",
        response: codes(3, 1),
        mask: [true],
      }]),
    /Training item 0 \(nar-len\): a NAR-len item needs a mask of 3 frames, got 1/,
  );
  assert.throws(
    () =>
      packBatch(config, layout, [
        { ...common, kind: "ar", response: codes(3, 1) },
        { ...common, kind: "nar", level: 8, response: codes(3, 1) },
      ]),
    /Training item 1 \(nar\): .*level is 8, expected 1\.\.7/,
  );
  assert.throws(
    () =>
      packBatch(config, layout, [{
        ...common,
        kind: "nar",
        level: 2,
        response: { data: [1, 2], frames: 1, levels: 2 },
      }]),
    /Training item 0 \(nar\): the response has 2 levels, level 2 is needed/,
  );
});

globalThis.addEventListener("unload", () => void model.dispose());
