import { rmsNorm } from "../../src/ops/norm.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { createTensor, uploadTensor } from "../../src/gpu/buffers.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { gpuTest, uploadWeights, WEIGHT_DTYPES } from "../_gpu.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

for (const dtype of WEIGHT_DTYPES) {
  for (const [r, d] of [[1, 1], [3, 17], [5, 1024], [2, 1000], [1, 4097]]) {
    gpuTest(`rmsNorm() matches CPU for R=${r} D=${d} ${dtype}`, async (gpu) => {
      const rng = new Rng(r * 31 + d);
      const x = rng.normals(r * d, 3);
      const w = uploadWeights(gpu, rng.normals(d), [d], dtype, "w");
      const xt = uploadTensor(gpu, x, [r, d], "f32", "x");
      const y = createTensor(gpu, [r, d], "f32", "y");
      const rec = new Recorder(gpu);
      rmsNorm(rec, y, xt, w.tensor, 1e-6);
      rec.submit();
      assertClose(await readF32(gpu, y), ref.rmsNorm(x, w.values, d, 1e-6), {
        atol: 1e-5,
        rtol: 1e-5,
      });
    });
  }
}
