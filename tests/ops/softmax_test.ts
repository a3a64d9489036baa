import { argmax, softmax } from "../../src/ops/softmax.ts";
import { createTensor, readF32, readU32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";
import { deepStrictEqual } from "node:assert";

for (const [r, c] of [[1, 1], [3, 1025], [7, 11], [2, 8575]]) {
  backendTest(`softmax() matches CPU for R=${r} C=${c}`, async (backend) => {
    const x = new Rng(r * c).normals(r * c, 5);
    const xt = uploadTensor(backend, x, [r, c], "f32", "x");
    const rec = backend.createRecorder();
    softmax(rec, xt);
    rec.submit();
    assertClose(await readF32(backend, xt), ref.softmax(x, c), { atol: 1e-7, rtol: 1e-5 });
  });

  backendTest(`argmax() matches CPU for R=${r} C=${c}`, async (backend) => {
    const x = new Rng(r + c).normals(r * c);
    const out = createTensor(backend, [r], "u32", "out");
    const rec = backend.createRecorder();
    argmax(rec, out, uploadTensor(backend, x, [r, c], "f32", "x"));
    rec.submit();
    deepStrictEqual([...await readU32(backend, out)], ref.argmax(x, c));
  });
}

backendTest("argmax() resolves ties to the first index, like torch.argmax", async (backend) => {
  const c = 1000;
  const x = new Float32Array(3 * c).fill(-1);
  for (const i of [700, 300, 999]) x[i] = 5; // row 0: max at 300, 700 and 999
  x[c + 0] = 0; // row 1: everything -1 but column 0
  for (let i = 2 * c; i < 3 * c; i++) x[i] = 2; // row 2: all equal
  const out = createTensor(backend, [3], "u32", "out");
  const rec = backend.createRecorder();
  argmax(rec, out, uploadTensor(backend, x, [3, c], "f32", "x"));
  rec.submit();
  deepStrictEqual([...await readU32(backend, out)], [300, 0, 0]);
});
