import { elu, gelu } from "../../src/ops/activation.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { createTensor, uploadTensor } from "../../src/gpu/buffers.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { rows } from "../../src/gpu/tensor.ts";
import { gpuTest } from "../_gpu.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";
import { gelu as geluRef } from "../reference/erf.ts";

gpuTest("elu() matches CPU, including large negative and positive inputs", async (gpu) => {
  const rng = new Rng(1);
  const x = rng.normals(1000, 3);
  x.set([-100, -20, -1e-8, 0, 1e-8, 50, 3e38, -3e38]);
  const y = createTensor(gpu, [1000], "f32", "y");
  const rec = new Recorder(gpu);
  elu(rec, y, uploadTensor(gpu, x, [1000], "f32", "x"));
  rec.submit();
  assertClose(await readF32(gpu, y), Array.from(x, ref.elu), { atol: 2e-7, rtol: 2e-7 });
});

gpuTest("gelu() matches the exact erf GELU in place on a view", async (gpu) => {
  const rng = new Rng(2);
  const x = rng.normals(3 * 333, 3);
  x.set([-10, -5, 0, 5, 10]);
  const t = uploadTensor(gpu, x, [3, 333], "f32", "x");
  const rec = new Recorder(gpu);
  gelu(rec, rows(t, 1, 2));
  rec.submit();
  const expected = Array.from(x, (v, i) => (i < 333 ? v : geluRef(v)));
  assertClose(await readF32(gpu, t), expected, { atol: 1e-6, rtol: 1e-6 });
});
