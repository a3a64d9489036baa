/**
 * `loraMerge` and `blendWeight` against a float64 CPU oracle, with f32 and f16 weights, on a view
 * inside a larger buffer (as the stacked Q/K/V and embedding tables are), for both element orders
 * upstream writes (LoRALinear's B (out, r) · A (r, in), ParameterizedLoRA's B (in, r) · A (r, out)
 * viewed as (out, in)).
 */

import { throws } from "node:assert";
import type { Backend, Tensor } from "../../src/backends/backend.ts";
import { readBytes, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { OptionError } from "../../src/errors.ts";
import { f16ToF32 } from "../../src/io/dtype.ts";
import { blendWeight, loraMerge } from "../../src/ops/lora.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";

/** f16 keeps 11 significant bits: its rounding moves a value by up to 2^-11 of itself. */
const TOLERANCE = { f32: { atol: 1e-6, rtol: 1e-6 }, f16: { atol: 2 ** -24, rtol: 2 ** -11 } };

async function readWeights(backend: Backend, t: Tensor) {
  const [bytes] = await readBytes(backend, [t]);
  return t.dtype === "f16" ? f16ToF32(new Uint16Array(bytes)) : new Float32Array(bytes);
}

for (const dtype of WEIGHT_DTYPES) {
  for (
    const [rowsB, rank, cols, label] of [[6, 3, 10, "B (out, r) · A (r, in)"], [
      10,
      3,
      6,
      "B (in, r) · A (r, out), viewed",
    ], [96, 70, 40, "rank 70"]] as const
  ) {
    backendTest(`loraMerge() matches float64 for ${label} with ${dtype} weights`, async (be) => {
      const rng = new Rng(rank * 100 + cols);
      const n = rowsB * cols;
      // The target is rows 2..2+n/8 of a stacked (·, 8) table, like q_proj inside qkv.
      const stacked = uploadWeights(be, rng.normals(n + 40), [(n + 40) / 8, 8], dtype, "w");
      const w = rows(stacked.tensor, 2, n / 8);
      const a = rng.normals(rank * cols);
      const b = rng.normals(rowsB * rank);
      const scale = 0.75 * 16 / rank;
      const rec = be.createRecorder();
      loraMerge(
        rec,
        w,
        uploadTensor(be, a, [rank, cols], "f32", "a"),
        uploadTensor(be, b, [rowsB, rank], "f32", "b"),
        scale,
      );
      rec.submit();
      const expected = Float64Array.from(stacked.values);
      for (let k = 0; k < n; k++) {
        let delta = 0;
        for (let j = 0; j < rank; j++) {
          delta += b[Math.floor(k / cols) * rank + j] * a[j * cols + (k % cols)];
        }
        expected[16 + k] += scale * delta;
      }
      const tol = TOLERANCE[dtype];
      assertClose(await readWeights(be, stacked.tensor), expected, { ...tol, label: "w" });
    });
  }

  backendTest(`blendWeight() matches float64 with ${dtype} weights`, async (be) => {
    const rng = new Rng(5);
    const base = uploadWeights(be, rng.normals(300), [30, 10], dtype, "w");
    const d = rng.normals(100);
    for (const s of [0.3, 1]) {
      const rec = be.createRecorder();
      blendWeight(rec, rows(base.tensor, 10, 10), uploadTensor(be, d, [10, 10], "f32", "d"), s);
      rec.submit();
      const expected = Float64Array.from(
        base.values,
        (v, i) => i >= 100 && i < 200 ? (1 - s) * v + s * d[i - 100] : v,
      );
      assertClose(await readWeights(be, base.tensor), expected, TOLERANCE[dtype]);
      base.values.set(await readWeights(be, base.tensor));
    }
    // Strength 1 stores the replacement exactly as the weight type rounds it.
    const stored = (await readWeights(be, base.tensor)).subarray(100, 200);
    const rounded = dtype === "f16" ? uploadWeights(be, d, [100], "f16", "r").values : d;
    assertClose(stored, rounded, { atol: 0 });
  });
}

backendTest(
  "loraMerge() refuses factors that do not make the weight's shape or have no rank",
  (backend) => {
    const rec = backend.createRecorder();
    const w = uploadTensor(backend, new Float32Array(12), [3, 4], "f32", "w");
    const t = (shape: number[]) =>
      uploadTensor(backend, new Float32Array(shape[0] * shape[1]), shape, "f32", "t");
    throws(() => loraMerge(rec, w, t([2, 4]), t([4, 2]), 1), OptionError); // 16 elements
    throws(() => loraMerge(rec, w, t([2, 4]), t([3, 3]), 1), OptionError); // rank 2 vs 3
    // Rank 0 makes w's element count, but no update: said as such.
    throws(
      () => loraMerge(rec, w, t([0, 4]), t([3, 0]), 1),
      /Cannot record loraMerge: a \[0,4\] has rank 0, expected at least 1/,
    );
    rec.destroy();
  },
);
