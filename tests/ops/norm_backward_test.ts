import { throws } from "node:assert";
import { rmsNormBackward } from "../../src/ops/norm_backward.ts";
import { rmsNorm } from "../reference/ops.ts";
import { createTensor, readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/backward.ts";

for (const dtype of WEIGHT_DTYPES) {
  for (const [r, d] of [[1, 1], [3, 17], [5, 1024], [2, 1000], [1, 4097]]) {
    for (const accumulate of [false, true]) {
      backendTest(
        `rmsNormBackward() matches CPU for R=${r} D=${d} ${dtype}${
          accumulate ? " accumulate" : ""
        }`,
        async (backend) => {
          const rng = new Rng(r * 31 + d);
          const x = rng.normals(r * d, 3);
          const dy = rng.normals(r * d);
          const before = rng.normals(r * d);
          // The weight starts past element 0 of its buffer: its offset is honoured.
          const wAll = uploadWeights(backend, rng.normals(d + 3), [d + 3], dtype, "w");
          const w = { ...wAll.tensor, shape: [d], offset: 3 };
          const dx = uploadTensor(backend, before, [r, d], "f32", "dx");
          const rec = backend.createRecorder();
          rmsNormBackward(
            rec,
            dx,
            uploadTensor(backend, dy, [r, d], "f32", "dy"),
            uploadTensor(backend, x, [r, d], "f32", "x"),
            w,
            1e-6,
            { accumulate },
          );
          rec.submit();
          const expected = ref.rmsNormBackward(dy, x, wAll.values.subarray(3), d, 1e-6);
          if (accumulate) expected.forEach((v, i) => expected[i] = v + before[i]);
          assertClose(await readF32(backend, dx), expected, { atol: 1e-5, rtol: 1e-5 });
        },
      );
    }
  }
}

Deno.test("rmsNormBackward's oracle agrees with finite differences of the forward", () => {
  const [r, d, eps, h] = [2, 7, 1e-6, 1e-6];
  const rng = new Rng(3);
  const x = Float64Array.from(rng.normals(r * d));
  const w = rng.normals(d);
  const dy = rng.normals(r * d);
  const loss = (xs: Float64Array) => rmsNorm(xs, w, d, eps).reduce((a, y, i) => a + y * dy[i], 0);
  const numeric = x.map((_, i) => {
    const [up, down] = [Float64Array.from(x), Float64Array.from(x)];
    up[i] += h;
    down[i] -= h;
    return (loss(up) - loss(down)) / (2 * h);
  });
  assertClose(ref.rmsNormBackward(dy, x, w, d, eps), numeric, { atol: 1e-8 });
});

backendTest("rmsNormBackward() names a misfit tensor", (backend) => {
  const t = (shape: number[]) => createTensor(backend, shape, "f32", `[${shape}]`);
  const rec = backend.createRecorder();
  throws(
    () => rmsNormBackward(rec, t([2, 8]), t([2, 9]), t([2, 8]), t([8]), 1e-6),
    /Cannot record rmsNormBackward: dy has shape \[2,9\], expected \[2, 8\]/,
  );
  const x = t([2, 8]);
  throws(
    () => rmsNormBackward(rec, x, t([2, 8]), x, t([8]), 1e-6),
    /Cannot record rmsNormBackward: dx shares a buffer with x, which it reads/,
  );
  rec.destroy();
});
