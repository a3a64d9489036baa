import { depthwiseConv1d } from "../../src/ops/depthwise_conv1d.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { createTensor, uploadTensor } from "../../src/gpu/buffers.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { gpuTest, uploadWeights, WEIGHT_DTYPES } from "../_gpu.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";

for (const dtype of WEIGHT_DTYPES) {
  for (const [len, ch] of [[1, 32], [2, 5], [40, 384]]) {
    gpuTest(`depthwiseConv1d() matches CPU for L=${len} C=${ch} k=7 ${dtype}`, async (gpu) => {
      const rng = new Rng(len * ch);
      const x = rng.normals(len * ch);
      const w = uploadWeights(gpu, rng.normals(ch * 7), [ch, 7], dtype, "w");
      const b = uploadWeights(gpu, rng.normals(ch), [ch], dtype, "b");
      const y = createTensor(gpu, [len, ch], "f32", "y");
      const rec = new Recorder(gpu);
      depthwiseConv1d(rec, y, uploadTensor(gpu, x, [len, ch], "f32", "x"), w.tensor, b.tensor);
      rec.submit();
      const expected = ref.depthwiseConv1d(x, len, ch, w.values, b.values, 7);
      assertClose(await readF32(gpu, y), expected, { atol: 1e-5, rtol: 1e-5 });
    });
  }
}
