import { embeddingSum, NO_ROW } from "../../src/ops/embedding.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { createTensor, uploadTensor } from "../../src/gpu/buffers.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { gpuTest, uploadWeights, WEIGHT_DTYPES } from "../_gpu.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

for (const dtype of WEIGHT_DTYPES) {
  // [rows, terms, d, tableRows]: a plain gather, RVQ sums over 8 levels, odd widths.
  for (const [r, terms, d, tableRows] of [[5, 1, 16, 9], [37, 8, 300, 8200], [3, 3, 1, 4]]) {
    gpuTest(`embeddingSum() matches CPU for R=${r} terms=${terms} D=${d} ${dtype}`, async (gpu) => {
      const rng = new Rng(r + terms + d);
      const table = uploadWeights(gpu, rng.normals(tableRows * d), [tableRows, d], dtype, "table");
      const ids = Uint32Array.from(
        { length: r * terms },
        () => rng.next() < 0.2 ? NO_ROW : rng.int(tableRows),
      );
      const out = createTensor(gpu, [r, d], "f32", "out");
      const rec = new Recorder(gpu);
      embeddingSum(rec, out, uploadTensor(gpu, ids, [r, terms], "u32", "ids"), table.tensor);
      rec.submit();
      const expected = ref.embeddingSum(ids, table.values, r, terms, d);
      assertClose(await readF32(gpu, out), expected, { atol: 1e-5, rtol: 1e-6 });
    });
  }
}

gpuTest("embeddingSum() accumulates into the output when asked", async (gpu) => {
  const rng = new Rng(2);
  const [r, d] = [4, 10];
  const table = rng.normals(6 * d);
  const base = rng.normals(r * d);
  const ids = Uint32Array.from([0, 5, 2, 2]);
  const out = uploadTensor(gpu, base, [r, d], "f32", "out");
  const rec = new Recorder(gpu);
  embeddingSum(
    rec,
    out,
    uploadTensor(gpu, ids, [r, 1], "u32", "ids"),
    uploadTensor(gpu, table, [6, d], "f32", "t"),
    true,
  );
  rec.submit();
  const expected = ref.embeddingSum(ids, table, r, 1, d).map((v, i) => v + base[i]);
  assertClose(await readF32(gpu, out), expected, { atol: 1e-6 });
});
