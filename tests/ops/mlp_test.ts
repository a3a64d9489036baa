import { deepStrictEqual, throws } from "node:assert";
import { gatedMlp, geluMul, geluMulStacked } from "../../src/ops/mlp.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { gelu } from "../reference/erf.ts";
import * as ref from "../reference/ops.ts";

backendTest("geluMul() matches the exact erf GELU from -12 to 12", async (backend) => {
  const n = 4801;
  const g = Float32Array.from({ length: n }, (_, i) => -12 + (24 * i) / (n - 1));
  const u = new Rng(5).normals(n);
  const gt = uploadTensor(backend, g, [n], "f32", "g");
  const rec = backend.createRecorder();
  geluMul(rec, gt, uploadTensor(backend, u, [n], "f32", "u"));
  rec.submit();
  const expected = Float64Array.from(g, (v, i) => gelu(v) * u[i]);
  // erfc to 1.2e-7 relative plus f32 rounding: relative error ~1e-6 even deep in the tail.
  assertClose(await readF32(backend, gt), expected, { atol: 1e-7, rtol: 2e-6 });
});

backendTest("geluMulStacked() gives geluMul()'s bits on the stacked halves", async (backend) => {
  // F = 37 puts rows at unaligned offsets (the CPU kernel's 4-wide body and scalar tail).
  const [s, f] = [6, 37];
  const gu = new Rng(9).normals(s * 2 * f, 3);
  const half = (i: number) =>
    Float32Array.from({ length: s * f }, (_, e) => gu[Math.floor(e / f) * 2 * f + i * f + e % f]);
  const g = uploadTensor(backend, half(0), [s, f], "f32", "g");
  const out = createTensor(backend, [s + 1, f], "f32", "out");
  const rec = backend.createRecorder();
  geluMul(rec, g, uploadTensor(backend, half(1), [s, f], "f32", "u"));
  geluMulStacked(rec, rows(out, 1, s), uploadTensor(backend, gu, [s, 2 * f], "f32", "gu"));
  rec.submit();
  deepStrictEqual((await readF32(backend, out)).slice(f), await readF32(backend, g));
});

for (const dtype of WEIGHT_DTYPES) {
  for (const [s, d, f] of [[1, 8, 32], [3, 17, 50], [9, 64, 256], [1, 1024, 4096]]) {
    backendTest(`gatedMlp() matches CPU for S=${s} D=${d} F=${f} ${dtype}`, async (backend) => {
      const rng = new Rng(s + d + f);
      const x = rng.normals(s * d);
      const gate = uploadWeights(
        backend,
        rng.normals(f * d, 1 / Math.sqrt(d)),
        [f, d],
        dtype,
        "gate",
      );
      const up = uploadWeights(backend, rng.normals(f * d, 1 / Math.sqrt(d)), [f, d], dtype, "up");
      const down = uploadWeights(
        backend,
        rng.normals(d * f, 1 / Math.sqrt(f)),
        [d, f],
        dtype,
        "down",
      );
      const out = createTensor(backend, [s, d], "f32", "out");
      const rec = backend.createRecorder();
      gatedMlp(
        rec,
        out,
        uploadTensor(backend, x, [s, d], "f32", "x"),
        { gate: gate.tensor, up: up.tensor, down: down.tensor },
        [createTensor(backend, [s, f], "f32", "g"), createTensor(backend, [s, f], "f32", "u")],
      );
      rec.submit();
      const expected = ref.gatedMlp(x, gate.values, up.values, down.values, s, d, f);
      assertClose(await readF32(backend, out), expected, { atol: 1e-4, rtol: 1e-4 });
    });
  }
}

backendTest("gatedMlp() refuses a misfit projection before recording anything", (backend) => {
  const [s, d, f] = [2, 8, 16];
  const t = (shape: number[]) => createTensor(backend, shape, "f32", `[${shape}]`);
  const rec = backend.createRecorder();
  // gate and up fit; down (D, F + 1) does not take the (S, F) hidden rows.
  throws(
    () =>
      gatedMlp(rec, t([s, d]), t([s, d]), { gate: t([f, d]), up: t([f, d]), down: t([d, f + 1]) }, [
        t([s, f]),
        t([s, f]),
      ]),
    /Cannot record gatedMlp: down has shape \[8,17\], expected \[8, 16\]/,
  );
  rec.destroy(); // throws when the gate and up projections were recorded before the refusal
});
