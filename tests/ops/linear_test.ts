import { linear } from "../../src/ops/linear.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

// [M, N, K]: decode rows (GEMV paths, M <= 4: 4-wide when K % 4 == 0), odd sizes, and the
// model's shapes.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 17, 3],
  [2, 9, 36],
  [4, 33, 1028],
  [3, 1025, 64],
  [1, 1024, 1024],
  [1, 1024, 4096],
  [5, 7, 9],
  [17, 33, 65],
  [70, 130, 100],
  [64, 1025, 256],
];

for (const dtype of WEIGHT_DTYPES) {
  for (const [m, n, k] of SHAPES) {
    for (const bias of [false, true]) {
      backendTest(
        `linear() matches CPU for M=${m} N=${n} K=${k} ${dtype}${bias ? " +bias" : ""}`,
        async (backend) => {
          const rng = new Rng(m * 1000 + n * 10 + k);
          const x = rng.normals(m * k);
          const w = uploadWeights(backend, rng.normals(n * k, 0.05), [n, k], dtype, "w");
          const b = bias ? uploadWeights(backend, rng.normals(n), [n], dtype, "b") : undefined;
          const xt = uploadTensor(backend, x, [m, k], "f32", "x");
          const y = createTensor(backend, [m, n], "f32", "y");
          const rec = backend.createRecorder();
          linear(rec, y, xt, w.tensor, b?.tensor);
          rec.submit();
          const expected = ref.linear(x, w.values, b?.values, m, n, k);
          assertClose(await readF32(backend, y), expected, { atol: 1e-4, rtol: 1e-4 });
        },
      );
    }
  }
}

backendTest("linear() reads and writes row views at offsets", async (backend) => {
  const rng = new Rng(7);
  const [m, n, k] = [3, 10, 12];
  const x = rng.normals(8 * k);
  const wv = rng.normals(n * k);
  const xt = uploadTensor(backend, x, [8, k], "f32", "x");
  const wt = uploadTensor(backend, wv, [n, k], "f32", "w");
  const y = createTensor(backend, [9, n], "f32", "y");
  for (const rowsM of [1, m]) {
    const rec = backend.createRecorder();
    rec.clear(y);
    linear(rec, rows(y, 4, rowsM), rows(xt, 2, rowsM), wt);
    rec.submit();
    const got = await readF32(backend, y);
    const expected = new Float64Array(9 * n);
    expected.set(ref.linear(x.subarray(2 * k, (2 + rowsM) * k), wv, undefined, rowsM, n, k), 4 * n);
    assertClose(got, expected, { atol: 1e-4, rtol: 1e-4 });
  }
});

for (const [m, n, k] of [[1, 13, 12], [1, 20, 30], [80, 70, 33]]) {
  backendTest(`linear() accumulates into y for M=${m} N=${n} K=${k}`, async (backend) => {
    const rng = new Rng(m + n + k);
    const x = rng.normals(m * k);
    const w = rng.normals(n * k);
    const b = rng.normals(n);
    const y0 = rng.normals(m * n);
    const y = uploadTensor(backend, y0, [m, n], "f32", "y");
    const rec = backend.createRecorder();
    linear(
      rec,
      y,
      uploadTensor(backend, x, [m, k], "f32", "x"),
      uploadTensor(backend, w, [n, k], "f32", "w"),
      uploadTensor(backend, b, [n], "f32", "b"),
      { accumulate: true },
    );
    rec.submit();
    const expected = ref.linear(x, w, b, m, n, k).map((v, i) => v + y0[i]);
    assertClose(await readF32(backend, y), expected, { atol: 1e-4, rtol: 1e-4 });
  });
}

backendTest("linear() uses the 4-wide GEMV only at 4-aligned offsets", async (backend) => {
  // Rows of K = 8 starting at row 1 of x: offset 8 is aligned; a view at element 2 is not.
  const rng = new Rng(4);
  const [n, k] = [5, 8];
  const x = rng.normals(3 * k);
  const w = rng.normals(n * k);
  const xt = uploadTensor(backend, x, [3, k], "f32", "x");
  const wt = uploadTensor(backend, w, [n, k], "f32", "w");
  for (const offset of [8, 2]) {
    const y = createTensor(backend, [1, n], "f32", "y");
    const rec = backend.createRecorder();
    linear(rec, y, { ...xt, shape: [1, k], offset }, wt);
    rec.submit();
    const expected = ref.linear(x.subarray(offset, offset + k), w, undefined, 1, n, k);
    assertClose(await readF32(backend, y), expected, { atol: 1e-5 });
  }
});
