import { add, mul } from "../../src/ops/elementwise.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { uploadTensor } from "../../src/gpu/buffers.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { OptionError } from "../../src/errors.ts";
import { gpuTest, uploadWeights, WEIGHT_DTYPES } from "../_gpu.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { throws } from "node:assert";

for (const [n, m] of [[1, 1], [1000, 1000], [4096, 1024], [17 * 300000, 17]]) {
  gpuTest(`add() matches CPU for n=${n} broadcasting ${m}`, async (gpu) => {
    const rng = new Rng(n + m);
    const x = rng.normals(n);
    const y = rng.normals(m);
    const xt = uploadTensor(gpu, x, [n], "f32", "x");
    const rec = new Recorder(gpu);
    add(rec, xt, uploadTensor(gpu, y, [m], "f32", "y"));
    rec.submit();
    assertClose(await readF32(gpu, xt), x.map((v, i) => v + y[i % m]), { atol: 1e-6 });
  });
}

for (const dtype of WEIGHT_DTYPES) {
  gpuTest(`mul() matches CPU with ${dtype} weights`, async (gpu) => {
    const rng = new Rng(9);
    const x = rng.normals(3 * 37);
    const y = uploadWeights(gpu, rng.normals(37), [37], dtype, "y");
    const xt = uploadTensor(gpu, x, [3, 37], "f32", "x");
    const rec = new Recorder(gpu);
    mul(rec, xt, y.tensor);
    rec.submit();
    assertClose(await readF32(gpu, xt), x.map((v, i) => v * y.values[i % 37]), { atol: 1e-6 });
  });
}

gpuTest("add() refuses shapes that do not broadcast", (gpu) => {
  const rec = new Recorder(gpu);
  const x = uploadTensor(gpu, new Float32Array(10), [10], "f32", "x");
  const y = uploadTensor(gpu, new Float32Array(3), [3], "f32", "y");
  throws(() => add(rec, x, y), OptionError);
});
