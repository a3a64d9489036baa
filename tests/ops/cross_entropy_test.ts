/**
 * crossEntropy on every backend against a float64 oracle of the formula: the weighted loss, the
 * top-k hit (fewer than k logits strictly above the label's) and the gradient, for scored rows,
 * ignored rows and labels past the vocabulary.
 */

import { deepStrictEqual, throws } from "node:assert";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { OptionError } from "../../src/errors.ts";
import { crossEntropy, IGNORE_LABEL } from "../../src/ops/cross_entropy.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";

/** The stats (M, 2) and gradient (M, V) of the formula, in float64. */
function oracle(
  x: Float32Array,
  labels: Uint32Array,
  weights: Float32Array,
  v: number,
  topK: number,
): { stats: Float64Array; dx: Float64Array } {
  const m = labels.length;
  const stats = new Float64Array(2 * m);
  const dx = new Float64Array(m * v);
  for (let r = 0; r < m; r++) {
    const label = labels[r];
    if (label >= v) continue;
    const row = x.subarray(r * v, (r + 1) * v);
    const max = Math.max(...row);
    let sum = 0;
    for (const value of row) sum += Math.exp(value - max);
    const above = row.filter((value) => value > row[label]).length;
    stats[2 * r] = weights[r] * (max + Math.log(sum) - row[label]);
    stats[2 * r + 1] = above < topK ? 1 : 0;
    for (let j = 0; j < v; j++) {
      dx[r * v + j] = weights[r] * (Math.exp(row[j] - max) / sum - (j === label ? 1 : 0));
    }
  }
  return { stats, dx };
}

// [M, V]: the len head (11), the audio heads (1025), one class, sizes off the workgroup's 256.
const SHAPES: [number, number][] = [[3, 1], [7, 11], [5, 1025], [4, 300], [9, 4]];

for (const [m, v] of SHAPES) {
  for (const inPlace of [true, false]) {
    backendTest(
      `crossEntropy() matches float64 for M=${m} V=${v}${inPlace ? " in place" : ""}`,
      async (backend) => {
        const rng = new Rng(m * 100 + v);
        const x = rng.normals(m * v, 3);
        // Scored rows, an ignored row and a label past V among them.
        const labels = Uint32Array.from(
          { length: m },
          (_, r) => r === 1 ? IGNORE_LABEL : r === 2 ? v + r : rng.int(v),
        );
        const weights = Float32Array.from({ length: m }, () => rng.uniform(0.1, 2));
        const xt = uploadTensor(backend, x, [m, v], "f32", "x");
        const dx = inPlace ? xt : createTensor(backend, [m, v], "f32", "dx");
        const stats = createTensor(backend, [m, 2], "f32", "stats");
        const rec = backend.createRecorder();
        crossEntropy(
          rec,
          dx,
          stats,
          xt,
          uploadTensor(backend, labels, [m], "u32", "labels"),
          uploadTensor(backend, weights, [m], "f32", "weights"),
        );
        rec.submit();
        const expected = oracle(x, labels, weights, v, 10);
        assertClose(await readF32(backend, stats), expected.stats, { atol: 1e-5, rtol: 1e-5 });
        assertClose(await readF32(backend, dx), expected.dx, { atol: 1e-6, rtol: 1e-5 });
        if (!inPlace) deepStrictEqual(await readF32(backend, xt), x);
      },
    );
  }
}

backendTest(
  "crossEntropy() counts a hit while fewer than topK logits are larger",
  async (backend) => {
    // Row r has its label's logit with exactly r logits above it and one equal (a tie counts for
    // the label); topK 3 → rows 0..2 hit, 3..5 miss.
    const [m, v] = [6, 20];
    const x = new Float32Array(m * v);
    const labels = new Uint32Array(m);
    for (let r = 0; r < m; r++) {
      for (let j = 0; j < v; j++) x[r * v + j] = -j;
      labels[r] = r + 1; // logit −(r + 1): r + 1 above... minus the tie below
      x[r * v + r] = x[r * v + r + 1]; // the logit just above becomes a tie
    }
    const xt = uploadTensor(backend, x, [m, v], "f32", "x");
    const stats = createTensor(backend, [m, 2], "f32", "stats");
    const rec = backend.createRecorder();
    crossEntropy(
      rec,
      xt,
      stats,
      xt,
      uploadTensor(backend, labels, [m], "u32", "labels"),
      uploadTensor(backend, new Float32Array(m).fill(1), [m], "f32", "weights"),
      { topK: 3 },
    );
    rec.submit();
    const hits = Array.from(await readF32(backend, stats)).filter((_, i) => i % 2 === 1);
    deepStrictEqual(hits, [1, 1, 1, 0, 0, 0]);
  },
);

backendTest("crossEntropy() reads and writes row views", async (backend) => {
  const rng = new Rng(3);
  const [m, v] = [3, 11];
  const x = rng.normals(8 * v);
  const labels = Uint32Array.of(9, 9, 0, 4, 10, 9);
  const weights = Float32Array.of(9, 9, 9, 0.5, 1, 2);
  const xt = uploadTensor(backend, x, [8, v], "f32", "x");
  const dx = createTensor(backend, [5, v], "f32", "dx");
  const stats = createTensor(backend, [6, 2], "f32", "stats");
  const rec = backend.createRecorder();
  crossEntropy(
    rec,
    rows(dx, 2, m),
    rows(stats, 1, m),
    rows(xt, 4, m),
    rows(uploadTensor(backend, labels, [6], "u32", "labels"), 2, m),
    rows(uploadTensor(backend, weights, [6], "f32", "weights"), 3, m),
  );
  rec.submit();
  const expected = oracle(
    x.subarray(4 * v, 7 * v),
    labels.subarray(2, 5),
    weights.subarray(3),
    v,
    10,
  );
  const wantDx = new Float64Array(5 * v);
  wantDx.set(expected.dx, 2 * v);
  const wantStats = new Float64Array(12);
  wantStats.set(expected.stats, 2);
  assertClose(await readF32(backend, dx), wantDx, { atol: 1e-6, rtol: 1e-5 });
  assertClose(await readF32(backend, stats), wantStats, { atol: 1e-5, rtol: 1e-5 });
});

backendTest("crossEntropy() refuses mismatched shapes and a dx that overlaps x", (backend) => {
  const x = createTensor(backend, [4, 5], "f32", "x");
  const labels = createTensor(backend, [4], "u32", "labels");
  const weights = createTensor(backend, [4], "f32", "weights");
  const stats = createTensor(backend, [4, 2], "f32", "stats");
  const rec = backend.createRecorder();
  throws(
    () => crossEntropy(rec, x, createTensor(backend, [4, 1], "f32", "s"), x, labels, weights),
    (e) => e instanceof OptionError && /stats has shape \[4,1\], expected \[4, 2\]/.test(e.message),
  );
  throws(
    () => crossEntropy(rec, x, stats, x, createTensor(backend, [4], "f32", "l"), weights),
    (e) => e instanceof OptionError && /labels is f32, expected u32/.test(e.message),
  );
  const big = createTensor(backend, [6, 5], "f32", "big");
  throws(
    () => crossEntropy(rec, rows(big, 1, 4), stats, rows(big, 0, 4), labels, weights),
    (e) => e instanceof OptionError && /overlaps x/.test(e.message),
  );
  rec.destroy();
});
