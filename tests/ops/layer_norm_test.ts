import { layerNorm } from "../../src/ops/layer_norm.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";

for (const dtype of WEIGHT_DTYPES) {
  for (const [r, d] of [[3, 32], [5, 384], [2, 1000]]) {
    backendTest(
      `layerNorm() matches CPU with table rows (AdaLayerNorm) R=${r} D=${d} ${dtype}`,
      async (backend) => {
        const rng = new Rng(r * d);
        // An offset mean exercises the two-pass variance.
        const x = rng.normals(r * d, 2).map((v) => v + 3);
        const scale = uploadWeights(backend, rng.normals(4 * d), [4, d], dtype, "scale");
        const shift = uploadWeights(backend, rng.normals(4 * d), [4, d], dtype, "shift");
        const y = createTensor(backend, [r, d], "f32", "y");
        const rec = backend.createRecorder();
        const id = 2;
        layerNorm(
          rec,
          y,
          uploadTensor(backend, x, [r, d], "f32", "x"),
          rows(scale.tensor, id, 1),
          rows(shift.tensor, id, 1),
          1e-6,
        );
        rec.submit();
        const expected = ref.layerNorm(
          x,
          d,
          scale.values.subarray(id * d, (id + 1) * d),
          shift.values.subarray(id * d, (id + 1) * d),
          1e-6,
        );
        assertClose(await readF32(backend, y), expected, { atol: 1e-5, rtol: 1e-5 });
      },
    );
  }
}
