import { add, mul } from "../../src/ops/elementwise.ts";
import { readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { OptionError } from "../../src/errors.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { throws } from "node:assert";

for (const [n, m] of [[1, 1], [1000, 1000], [4096, 1024], [17 * 300000, 17]]) {
  backendTest(`add() matches CPU for n=${n} broadcasting ${m}`, async (backend) => {
    const rng = new Rng(n + m);
    const x = rng.normals(n);
    const y = rng.normals(m);
    const xt = uploadTensor(backend, x, [n], "f32", "x");
    const rec = backend.createRecorder();
    add(rec, xt, uploadTensor(backend, y, [m], "f32", "y"));
    rec.submit();
    assertClose(await readF32(backend, xt), x.map((v, i) => v + y[i % m]), { atol: 1e-6 });
  });
}

for (const dtype of WEIGHT_DTYPES) {
  backendTest(`mul() matches CPU with ${dtype} weights`, async (backend) => {
    const rng = new Rng(9);
    const x = rng.normals(3 * 37);
    const y = uploadWeights(backend, rng.normals(37), [37], dtype, "y");
    const xt = uploadTensor(backend, x, [3, 37], "f32", "x");
    const rec = backend.createRecorder();
    mul(rec, xt, y.tensor);
    rec.submit();
    assertClose(await readF32(backend, xt), x.map((v, i) => v * y.values[i % 37]), { atol: 1e-6 });
  });
}

backendTest("add() refuses shapes that do not broadcast", (backend) => {
  const rec = backend.createRecorder();
  const x = uploadTensor(backend, new Float32Array(10), [10], "f32", "x");
  const y = uploadTensor(backend, new Float32Array(3), [3], "f32", "y");
  throws(() => add(rec, x, y), OptionError);
});
