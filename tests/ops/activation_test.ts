import { elu, gelu } from "../../src/ops/activation.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";
import { gelu as geluRef } from "../reference/erf.ts";

backendTest("elu() matches CPU, including large negative and positive inputs", async (backend) => {
  const rng = new Rng(1);
  const x = rng.normals(1000, 3);
  x.set([-100, -20, -1e-8, 0, 1e-8, 50, 3e38, -3e38]);
  const y = createTensor(backend, [1000], "f32", "y");
  const rec = backend.createRecorder();
  elu(rec, y, uploadTensor(backend, x, [1000], "f32", "x"));
  rec.submit();
  assertClose(await readF32(backend, y), Array.from(x, ref.elu), { atol: 2e-7, rtol: 2e-7 });
});

backendTest("gelu() matches the exact erf GELU in place on a view", async (backend) => {
  const rng = new Rng(2);
  const x = rng.normals(3 * 333, 3);
  x.set([-10, -5, 0, 5, 10]);
  const t = uploadTensor(backend, x, [3, 333], "f32", "x");
  const rec = backend.createRecorder();
  gelu(rec, rows(t, 1, 2));
  rec.submit();
  const expected = Array.from(x, (v, i) => (i < 333 ? v : geluRef(v)));
  assertClose(await readF32(backend, t), expected, { atol: 1e-6, rtol: 1e-6 });
});
