import { argmax, softmax } from "../../src/ops/softmax.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { createTensor, uploadTensor } from "../../src/gpu/buffers.ts";
import { readF32, readU32 } from "../../src/gpu/readback.ts";
import { gpuTest } from "../_gpu.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";
import { deepStrictEqual } from "node:assert";

for (const [r, c] of [[1, 1], [3, 1025], [7, 11], [2, 8575]]) {
  gpuTest(`softmax() matches CPU for R=${r} C=${c}`, async (gpu) => {
    const x = new Rng(r * c).normals(r * c, 5);
    const xt = uploadTensor(gpu, x, [r, c], "f32", "x");
    const rec = new Recorder(gpu);
    softmax(rec, xt);
    rec.submit();
    assertClose(await readF32(gpu, xt), ref.softmax(x, c), { atol: 1e-7, rtol: 1e-5 });
  });

  gpuTest(`argmax() matches CPU for R=${r} C=${c}`, async (gpu) => {
    const x = new Rng(r + c).normals(r * c);
    const out = createTensor(gpu, [r], "u32", "out");
    const rec = new Recorder(gpu);
    argmax(rec, out, uploadTensor(gpu, x, [r, c], "f32", "x"));
    rec.submit();
    deepStrictEqual([...await readU32(gpu, out)], ref.argmax(x, c));
  });
}

gpuTest("argmax() resolves ties to the first index, like torch.argmax", async (gpu) => {
  const c = 1000;
  const x = new Float32Array(3 * c).fill(-1);
  for (const i of [700, 300, 999]) x[i] = 5; // row 0: max at 300, 700 and 999
  x[c + 0] = 0; // row 1: everything -1 but column 0
  for (let i = 2 * c; i < 3 * c; i++) x[i] = 2; // row 2: all equal
  const out = createTensor(gpu, [3], "u32", "out");
  const rec = new Recorder(gpu);
  argmax(rec, out, uploadTensor(gpu, x, [3, c], "f32", "x"));
  rec.submit();
  deepStrictEqual([...await readU32(gpu, out)], [300, 0, 0]);
});
