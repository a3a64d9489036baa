import { linear } from "../../src/ops/linear.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { createTensor, uploadTensor } from "../../src/gpu/buffers.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { rows } from "../../src/gpu/tensor.ts";
import { gpuTest, uploadWeights, WEIGHT_DTYPES } from "../_gpu.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

// [M, N, K]: decode rows (GEMV path, M <= 4), odd sizes, and the model's shapes.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 17, 3],
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
      gpuTest(
        `linear() matches CPU for M=${m} N=${n} K=${k} ${dtype}${bias ? " +bias" : ""}`,
        async (gpu) => {
          const rng = new Rng(m * 1000 + n * 10 + k);
          const x = rng.normals(m * k);
          const w = uploadWeights(gpu, rng.normals(n * k, 0.05), [n, k], dtype, "w");
          const b = bias ? uploadWeights(gpu, rng.normals(n), [n], dtype, "b") : undefined;
          const xt = uploadTensor(gpu, x, [m, k], "f32", "x");
          const y = createTensor(gpu, [m, n], "f32", "y");
          const rec = new Recorder(gpu);
          linear(rec, y, xt, w.tensor, b?.tensor);
          rec.submit();
          const expected = ref.linear(x, w.values, b?.values, m, n, k);
          assertClose(await readF32(gpu, y), expected, { atol: 1e-4, rtol: 1e-4 });
        },
      );
    }
  }
}

gpuTest("linear() reads and writes row views at offsets", async (gpu) => {
  const rng = new Rng(7);
  const [m, n, k] = [3, 10, 12];
  const x = rng.normals(8 * k);
  const wv = rng.normals(n * k);
  const xt = uploadTensor(gpu, x, [8, k], "f32", "x");
  const wt = uploadTensor(gpu, wv, [n, k], "f32", "w");
  const y = createTensor(gpu, [9, n], "f32", "y");
  for (const rowsM of [1, m]) {
    const rec = new Recorder(gpu);
    rec.clear(y);
    linear(rec, rows(y, 4, rowsM), rows(xt, 2, rowsM), wt);
    rec.submit();
    const got = await readF32(gpu, y);
    const expected = new Float64Array(9 * n);
    expected.set(ref.linear(x.subarray(2 * k, (2 + rowsM) * k), wv, undefined, rowsM, n, k), 4 * n);
    assertClose(got, expected, { atol: 1e-4, rtol: 1e-4 });
  }
});
