import { deepStrictEqual, throws } from "node:assert";
import { matmul } from "../../src/ops/matmul.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { OptionError } from "../../src/errors.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/gemm.ts";

// [M, N, K]: below, at and past the 64 × 64 tile and the K step of 16; the LoRA shapes in small
// (t = x · Aᵀ: K = in; dB = dYᵀ · t and dA = dtᵀ · x: K = rows; dx += dt · A: K = rank); K past
// the CPU's block of 2048 k, rows past its block of 512 per thread.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [5, 7, 9],
  [70, 33, 17],
  [65, 130, 40],
  [3, 128, 200],
  [130, 8, 64],
  [6, 9, 2100],
  [1100, 20, 30],
];

for (const [m, n, k] of SHAPES) {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const name = `${transA ? "aᵀ" : "a"}·${transB ? "bᵀ" : "b"}`;
      backendTest(`matmul() ${name} matches float64 for M=${m} N=${n} K=${k}`, async (backend) => {
        const rng = new Rng(m * 1000 + n * 10 + k + (transA ? 1 : 0) + (transB ? 2 : 0));
        const a = rng.normals(m * k);
        const b = rng.normals(k * n);
        const c0 = rng.normals(m * n);
        const at = uploadTensor(backend, a, transA ? [k, m] : [m, k], "f32", "a");
        const bt = uploadTensor(backend, b, transB ? [n, k] : [k, n], "f32", "b");
        const plain = createTensor(backend, [m, n], "f32", "plain");
        const scaled = uploadTensor(backend, c0, [m, n], "f32", "scaled");
        const rec = backend.createRecorder();
        matmul(rec, plain, at, bt, { transA, transB });
        matmul(rec, scaled, at, bt, { transA, transB, alpha: -0.375, accumulate: true });
        rec.submit();
        const tol = { atol: 1e-5 * Math.sqrt(k), rtol: 1e-5 };
        const opts = { transA, transB };
        assertClose(await readF32(backend, plain), ref.matmul(a, b, [m, n, k], opts), tol);
        assertClose(
          await readF32(backend, scaled),
          ref.matmul(a, b, [m, n, k], { ...opts, alpha: -0.375, c0 }),
          tol,
        );
      });
    }
  }
}

for (const transB of [false, true]) {
  backendTest(
    `matmul() rows in chunks equal the rows together bit for bit${transB ? ", bᵀ" : ""}`,
    async (backend) => {
      // Each output's sum runs over K in one order whatever M is and wherever its row falls in
      // a tile; chunks start inside tiles and cross them, K = 67 puts rows at unaligned offsets.
      const rng = new Rng(transB ? 11 : 12);
      const [m, n, k] = [150, 70, 67];
      const at = uploadTensor(backend, rng.normals(m * k), [m, k], "f32", "a");
      const bt = uploadTensor(backend, rng.normals(k * n), transB ? [n, k] : [k, n], "f32", "b");
      const whole = createTensor(backend, [m, n], "f32", "whole");
      const chunked = createTensor(backend, [m, n], "f32", "chunked");
      const rec = backend.createRecorder();
      matmul(rec, whole, at, bt, { transB, alpha: 0.5 });
      for (const [start, count] of [[0, 1], [1, 4], [5, 64], [69, 7], [76, 74]]) {
        matmul(rec, rows(chunked, start, count), rows(at, start, count), bt, {
          transB,
          alpha: 0.5,
        });
      }
      rec.submit();
      deepStrictEqual(await readF32(backend, chunked), await readF32(backend, whole));
    },
  );
}

backendTest("matmul() reads and writes views at offsets", async (backend) => {
  const rng = new Rng(5);
  const [m, n, k] = [9, 11, 13];
  const a = rng.normals(20 * k);
  const b = rng.normals(30 * n);
  const at = uploadTensor(backend, a, [20, k], "f32", "a");
  const bt = uploadTensor(backend, b, [30, n], "f32", "b");
  const c = createTensor(backend, [12, n], "f32", "c");
  const rec = backend.createRecorder();
  matmul(rec, rows(c, 2, m), rows(at, 3, m), rows(bt, 7, k));
  rec.submit();
  const expected = new Float64Array(12 * n);
  expected.set(
    ref.matmul(a.subarray(3 * k, (3 + m) * k), b.subarray(7 * n, (7 + k) * n), [m, n, k]),
    2 * n,
  );
  assertClose(await readF32(backend, c), expected, { atol: 1e-5, rtol: 1e-5 });
});

backendTest("matmul() refuses shapes that do not chain, naming them", (backend) => {
  const a = createTensor(backend, [4, 5], "f32", "a");
  const b = createTensor(backend, [6, 4], "f32", "b");
  const c = createTensor(backend, [4, 3], "f32", "c");
  const rec = backend.createRecorder();
  throws(() => matmul(rec, c, a, b), (e) => e instanceof OptionError && /\[6,4\]/.test(e.message));
  throws(
    () => matmul(rec, c, a, b, { transA: true, transB: true }),
    (e) => e instanceof OptionError && /c has shape \[4,3\], expected \[5, 6\]/.test(e.message),
  );
  rec.destroy();
});
