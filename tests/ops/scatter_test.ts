import { deepStrictEqual, throws } from "node:assert";
import { scatterRows } from "../../src/ops/scatter.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { Rng } from "../_helpers.ts";

backendTest("scatterRows() moves each row to its table row and nothing else", async (backend) => {
  const rng = new Rng(5);
  const [n, width, total] = [5, 300, 40];
  const values = rng.normals(total * width);
  const buf = uploadTensor(backend, values, [total, width], "f32", "buf");
  const destinations = [3, 17, 0, 30, 9]; // rows 35..39 go there
  const table = uploadTensor(backend, Uint32Array.from(destinations), [n], "u32", "table");
  const rec = backend.createRecorder();
  scatterRows(rec, rows(buf, 0, 34), rows(buf, 35, n), table);
  rec.submit();
  const expected = values.slice();
  destinations.forEach((d, i) =>
    expected.set(values.subarray((35 + i) * width, (36 + i) * width), d * width)
  );
  deepStrictEqual(await readF32(backend, buf), expected);
  const other = createTensor(backend, [n, width], "f32", "other");
  throws(() => scatterRows(rec, buf, other, table), /same buffer/);
});
