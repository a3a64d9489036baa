import { gatedMlp, geluMul } from "../../src/ops/mlp.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { createTensor, uploadTensor } from "../../src/gpu/buffers.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { gpuTest, uploadWeights, WEIGHT_DTYPES } from "../_gpu.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { gelu } from "../reference/erf.ts";
import * as ref from "../reference/ops.ts";

gpuTest("geluMul() matches the exact erf GELU from -12 to 12", async (gpu) => {
  const n = 4801;
  const g = Float32Array.from({ length: n }, (_, i) => -12 + (24 * i) / (n - 1));
  const u = new Rng(5).normals(n);
  const gt = uploadTensor(gpu, g, [n], "f32", "g");
  const rec = new Recorder(gpu);
  geluMul(rec, gt, uploadTensor(gpu, u, [n], "f32", "u"));
  rec.submit();
  const expected = Float64Array.from(g, (v, i) => gelu(v) * u[i]);
  // erfc to 1.2e-7 relative plus f32 rounding: relative error ~1e-6 even deep in the tail.
  assertClose(await readF32(gpu, gt), expected, { atol: 1e-7, rtol: 2e-6 });
});

for (const dtype of WEIGHT_DTYPES) {
  for (const [s, d, f] of [[1, 8, 32], [3, 17, 50], [9, 64, 256], [1, 1024, 4096]]) {
    gpuTest(`gatedMlp() matches CPU for S=${s} D=${d} F=${f} ${dtype}`, async (gpu) => {
      const rng = new Rng(s + d + f);
      const x = rng.normals(s * d);
      const gate = uploadWeights(gpu, rng.normals(f * d, 1 / Math.sqrt(d)), [f, d], dtype, "gate");
      const up = uploadWeights(gpu, rng.normals(f * d, 1 / Math.sqrt(d)), [f, d], dtype, "up");
      const down = uploadWeights(gpu, rng.normals(d * f, 1 / Math.sqrt(f)), [d, f], dtype, "down");
      const out = createTensor(gpu, [s, d], "f32", "out");
      const rec = new Recorder(gpu);
      gatedMlp(
        rec,
        out,
        uploadTensor(gpu, x, [s, d], "f32", "x"),
        { gate: gate.tensor, up: up.tensor, down: down.tensor },
        [createTensor(gpu, [s, f], "f32", "g"), createTensor(gpu, [s, f], "f32", "u")],
      );
      rec.submit();
      const expected = ref.gatedMlp(x, gate.values, up.values, down.values, s, d, f);
      assertClose(await readF32(gpu, out), expected, { atol: 1e-4, rtol: 1e-4 });
    });
  }
}
