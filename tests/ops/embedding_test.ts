import { embeddingSum, NO_ROW } from "../../src/ops/embedding.ts";
import { createTensor, readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

for (const dtype of WEIGHT_DTYPES) {
  // [rows, terms, d, tableRows]: a plain gather, RVQ sums over 8 levels, odd widths.
  for (const [r, terms, d, tableRows] of [[5, 1, 16, 9], [37, 8, 300, 8200], [3, 3, 1, 4]]) {
    backendTest(
      `embeddingSum() matches CPU for R=${r} terms=${terms} D=${d} ${dtype}`,
      async (backend) => {
        const rng = new Rng(r + terms + d);
        const table = uploadWeights(
          backend,
          rng.normals(tableRows * d),
          [tableRows, d],
          dtype,
          "table",
        );
        const ids = Uint32Array.from(
          { length: r * terms },
          () => rng.next() < 0.2 ? NO_ROW : rng.int(tableRows),
        );
        const out = createTensor(backend, [r, d], "f32", "out");
        const rec = backend.createRecorder();
        embeddingSum(rec, out, uploadTensor(backend, ids, [r, terms], "u32", "ids"), table.tensor);
        rec.submit();
        const expected = ref.embeddingSum(ids, table.values, r, terms, d);
        assertClose(await readF32(backend, out), expected, { atol: 1e-5, rtol: 1e-6 });
      },
    );
  }
}

backendTest("embeddingSum() accumulates into the output when asked", async (backend) => {
  const rng = new Rng(2);
  const [r, d] = [4, 10];
  const table = rng.normals(6 * d);
  const base = rng.normals(r * d);
  const ids = Uint32Array.from([0, 5, 2, 2]);
  const out = uploadTensor(backend, base, [r, d], "f32", "out");
  const rec = backend.createRecorder();
  embeddingSum(
    rec,
    out,
    uploadTensor(backend, ids, [r, 1], "u32", "ids"),
    uploadTensor(backend, table, [6, d], "f32", "t"),
    true,
  );
  rec.submit();
  const expected = ref.embeddingSum(ids, table, r, 1, d).map((v, i) => v + base[i]);
  assertClose(await readF32(backend, out), expected, { atol: 1e-6 });
});
