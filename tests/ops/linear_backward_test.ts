/**
 * linearBackward (dx = dy · w) through float and quantized weights on every backend, against a
 * float64 product with the weight as the backend holds it (f16-rounded, or dequantized by the
 * TypeScript reference of its block format).
 */

import { deepStrictEqual, throws } from "node:assert";
import type { Backend, QuantDtype, Tensor } from "../../src/backends/backend.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { OptionError } from "../../src/errors.ts";
import { linearBackward } from "../../src/ops/linear_backward.ts";
import { dequantizeDeviceWords, quantizeBlocks, toDeviceWords } from "../../src/quant/device.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/gemm.ts";

type WeightType = "f16" | "f32" | QuantDtype;

/** A random (N, K) weight of `dtype` on the backend, and the values it stands for. */
function weight(
  backend: Backend,
  rng: Rng,
  dtype: WeightType,
  [n, k]: readonly [number, number],
): { tensor: Tensor; values: Float32Array } {
  const values = rng.normals(n * k, 0.05);
  if (dtype === "f16" || dtype === "f32") return uploadWeights(backend, values, [n, k], dtype, "w");
  const words = toDeviceWords(dtype, quantizeBlocks(dtype, values));
  return {
    tensor: uploadTensor(backend, words, [n, k], dtype, "w"),
    values: dequantizeDeviceWords(dtype, words),
  };
}

// [M, N, K]: one row and many, across the 64 × 64 tile, K whole blocks of each layout (K % 128
// == 64: a q8_0 pair alone at the end).
const FLOAT_SHAPES: [number, number, number][] = [[1, 3, 5], [5, 7, 9], [70, 33, 65], [3, 17, 200]];
const QUANT_SHAPES: Record<QuantDtype, [number, number, number][]> = {
  q8_0: [[1, 3, 64], [5, 9, 320], [70, 33, 128]],
  q4_k: [[1, 3, 256], [5, 9, 512], [70, 33, 256]],
};

for (const dtype of [...WEIGHT_DTYPES, "q8_0", "q4_k"] as const) {
  const shapes = dtype === "q8_0" || dtype === "q4_k" ? QUANT_SHAPES[dtype] : FLOAT_SHAPES;
  for (const [m, n, k] of shapes) {
    backendTest(
      `linearBackward() ${dtype} matches float64 for M=${m} N=${n} K=${k}`,
      async (backend) => {
        const rng = new Rng(m * 1000 + n * 10 + k);
        const dy = rng.normals(m * n);
        const w = weight(backend, rng, dtype, [n, k]);
        const dx0 = rng.normals(m * k);
        const dyt = uploadTensor(backend, dy, [m, n], "f32", "dy");
        const dx = createTensor(backend, [m, k], "f32", "dx");
        const sum = uploadTensor(backend, dx0, [m, k], "f32", "sum");
        const rec = backend.createRecorder();
        linearBackward(rec, dx, dyt, w.tensor);
        linearBackward(rec, sum, dyt, w.tensor, { accumulate: true });
        rec.submit();
        const expected = ref.matmul(dy, w.values, [m, k, n]);
        const tol = { atol: 1e-5, rtol: 1e-5 };
        assertClose(await readF32(backend, dx), expected, tol);
        assertClose(await readF32(backend, sum), expected.map((v, i) => v + dx0[i]), tol);
      },
    );
  }
}

for (const dtype of [...WEIGHT_DTYPES, "q8_0", "q4_k"] as const) {
  backendTest(`linearBackward() reads views of dy, w and dx, ${dtype}`, async (backend) => {
    // Rows 1..1+N of a larger weight (a word offset for the quantized ones, an odd element offset
    // for the float ones: K = 37), rows of dy and dx.
    const rng = new Rng(21);
    const [m, n, k] = [6, 5, dtype === "q8_0" || dtype === "q4_k" ? 256 : 37];
    const dy = rng.normals(10 * n);
    const w = weight(backend, rng, dtype, [n + 4, k]);
    const dx = createTensor(backend, [9, k], "f32", "dx");
    const rec = backend.createRecorder();
    const dyt = uploadTensor(backend, dy, [10, n], "f32", "dy");
    linearBackward(rec, rows(dx, 1, m), rows(dyt, 3, m), rows(w.tensor, 1, n));
    rec.submit();
    const expected = new Float64Array(9 * k);
    expected.set(
      ref.matmul(dy.subarray(3 * n, (3 + m) * n), w.values.subarray(k, (1 + n) * k), [m, k, n]),
      k,
    );
    assertClose(await readF32(backend, dx), expected, { atol: 1e-5, rtol: 1e-5 });
  });
}

backendTest(
  "linearBackward() rows in chunks equal the rows together bit for bit",
  async (backend) => {
    const rng = new Rng(31);
    const [m, n, k] = [140, 40, 256];
    const w = weight(backend, rng, "q4_k", [n, k]);
    const dy = uploadTensor(backend, rng.normals(m * n), [m, n], "f32", "dy");
    const whole = createTensor(backend, [m, k], "f32", "whole");
    const chunked = createTensor(backend, [m, k], "f32", "chunked");
    const rec = backend.createRecorder();
    linearBackward(rec, whole, dy, w.tensor);
    for (const [start, count] of [[0, 3], [3, 64], [67, 73]]) {
      linearBackward(rec, rows(chunked, start, count), rows(dy, start, count), w.tensor);
    }
    rec.submit();
    deepStrictEqual(await readF32(backend, chunked), await readF32(backend, whole));
  },
);

backendTest("linearBackward() refuses mismatched shapes, naming them", (backend) => {
  const w = createTensor(backend, [4, 6], "f32", "w");
  const rec = backend.createRecorder();
  throws(
    () =>
      linearBackward(
        rec,
        createTensor(backend, [2, 6], "f32", "dx"),
        createTensor(backend, [2, 5], "f32", "dy"),
        w,
      ),
    (e) => e instanceof OptionError && /dy has shape \[2,5\], expected \[\*, 4\]/.test(e.message),
  );
  throws(
    () =>
      linearBackward(
        rec,
        createTensor(backend, [2, 4], "f32", "dx"),
        createTensor(backend, [2, 4], "f32", "dy"),
        w,
      ),
    (e) => e instanceof OptionError && /dx has shape \[2,4\], expected \[2, 6\]/.test(e.message),
  );
  rec.destroy();
});
