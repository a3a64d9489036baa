import { rmsNorm } from "../../src/ops/norm.ts";
import { createTensor, readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

for (const dtype of WEIGHT_DTYPES) {
  for (const [r, d] of [[1, 1], [3, 17], [5, 1024], [2, 1000], [1, 4097]]) {
    backendTest(`rmsNorm() matches CPU for R=${r} D=${d} ${dtype}`, async (backend) => {
      const rng = new Rng(r * 31 + d);
      const x = rng.normals(r * d, 3);
      const w = uploadWeights(backend, rng.normals(d), [d], dtype, "w");
      const xt = uploadTensor(backend, x, [r, d], "f32", "x");
      const y = createTensor(backend, [r, d], "f32", "y");
      const rec = backend.createRecorder();
      rmsNorm(rec, y, xt, w.tensor, 1e-6);
      rec.submit();
      assertClose(await readF32(backend, y), ref.rmsNorm(x, w.values, d, 1e-6), {
        atol: 1e-5,
        rtol: 1e-5,
      });
    });
  }
}
