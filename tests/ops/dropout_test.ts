/**
 * dropout(): the mask of (seed, index) is the same on every backend and equals the TS draw
 * (`dropoutKeeps`), kept elements are scaled by 1 / (1 − p), about p of them are dropped, the same
 * seed redraws the same mask (what the backward pass relies on), and `accumulate` adds.
 */

import assert from "node:assert/strict";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { OptionError } from "../../src/errors.ts";
import { dropout, dropoutKeeps } from "../../src/ops/dropout.ts";
import { backendTest } from "../_backends.ts";
import { Rng } from "../_helpers.ts";

for (const p of [0, 0.1, 0.5]) {
  backendTest(
    `dropout(p=${p}) keeps the mask of (seed, index) and scales by 1 / (1 - p)`,
    async (backend) => {
      const n = 70_001;
      const x = new Rng(3).normals(n + 5);
      const base = new Rng(4).normals(n);
      const xt = uploadTensor(backend, x, [n + 5], "f32", "x");
      const y = createTensor(backend, [n], "f32", "y");
      const acc = uploadTensor(backend, base, [n], "f32", "acc");
      const rec = backend.createRecorder();
      const view = { ...xt, shape: [n], offset: 5 };
      dropout(rec, y, view, { p, seed: 1234 });
      dropout(rec, acc, view, { p, seed: 1234, accumulate: true });
      rec.submit();
      const [got, added] = [await readF32(backend, y), await readF32(backend, acc)];
      const scale = Math.fround(1 / (1 - p));
      let dropped = 0;
      for (let i = 0; i < n; i++) {
        const keep = dropoutKeeps(1234, p, i);
        const want = keep ? Math.fround(x[i + 5] * scale) : 0;
        if (!keep) dropped++;
        if (got[i] !== want || added[i] !== Math.fround(base[i] + want)) {
          assert.fail(
            `element ${i}: ${got[i]} / ${added[i]}, expected ${want} / ${base[i] + want}`,
          );
        }
      }
      // Binomial(n, p): within 5 standard deviations.
      assert.ok(
        Math.abs(dropped - n * p) <= 5 * Math.sqrt(n * p * (1 - p)) + 1e-9,
        `${dropped} dropped`,
      );
    },
  );
}

backendTest(
  "dropout() masks depend on the seed, and on the element, not on the call",
  async (backend) => {
    const n = 4096;
    const x = uploadTensor(backend, new Float32Array(2 * n).fill(1), [2, n], "f32", "x");
    const y = createTensor(backend, [3, n], "f32", "y");
    const rec = backend.createRecorder();
    dropout(rec, rows(y, 0, 1), rows(x, 0, 1), { p: 0.5, seed: 1 });
    dropout(rec, rows(y, 1, 1), rows(x, 1, 1), { p: 0.5, seed: 1 });
    dropout(rec, rows(y, 2, 1), rows(x, 0, 1), { p: 0.5, seed: 2 });
    rec.submit();
    const got = await readF32(backend, y);
    assert.deepEqual(got.slice(0, n), got.slice(n, 2 * n));
    assert.notDeepEqual(got.slice(0, n), got.slice(2 * n));
    const rec2 = backend.createRecorder();
    assert.throws(
      () => dropout(rec2, rows(y, 0, 1), rows(x, 0, 1), { p: 1, seed: 1 }),
      OptionError,
    );
    assert.throws(
      () => dropout(rec2, rows(y, 0, 1), rows(x, 0, 1), { p: 0.1, seed: -1 }),
      OptionError,
    );
    assert.throws(() => dropout(rec2, y, x, { p: 0.1, seed: 1 }), OptionError);
    rec2.destroy();
  },
);
