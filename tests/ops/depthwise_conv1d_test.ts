import { depthwiseConv1d } from "../../src/ops/depthwise_conv1d.ts";
import { createTensor, readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";

for (const dtype of WEIGHT_DTYPES) {
  for (const [len, ch] of [[1, 32], [2, 5], [40, 384]]) {
    backendTest(
      `depthwiseConv1d() matches CPU for L=${len} C=${ch} k=7 ${dtype}`,
      async (backend) => {
        const rng = new Rng(len * ch);
        const x = rng.normals(len * ch);
        const w = uploadWeights(backend, rng.normals(ch * 7), [ch, 7], dtype, "w");
        const b = uploadWeights(backend, rng.normals(ch), [ch], dtype, "b");
        const y = createTensor(backend, [len, ch], "f32", "y");
        const rec = backend.createRecorder();
        depthwiseConv1d(
          rec,
          y,
          uploadTensor(backend, x, [len, ch], "f32", "x"),
          w.tensor,
          b.tensor,
        );
        rec.submit();
        const expected = ref.depthwiseConv1d(x, len, ch, w.values, b.values, 7);
        assertClose(await readF32(backend, y), expected, { atol: 1e-5, rtol: 1e-5 });
      },
    );
  }
}
