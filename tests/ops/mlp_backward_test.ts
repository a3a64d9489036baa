import { throws } from "node:assert";
import { geluMulBackward } from "../../src/ops/mlp.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { gelu } from "../reference/erf.ts";
import { geluDerivative } from "../reference/backward.ts";

/** g from -12 to 12 (both tails and the zero of gelu' near -0.75), random u and dm. */
function inputs(n: number) {
  const g = Float32Array.from({ length: n }, (_, i) => -12 + (24 * i) / (n - 1));
  const rng = new Rng(8);
  const [u, dm] = [rng.normals(n), rng.normals(n)];
  const dg = Float64Array.from(g, (z, i) => dm[i] * u[i] * geluDerivative(z));
  const du = Float64Array.from(g, (z, i) => dm[i] * gelu(z));
  return { g, u, dm, dg, du };
}

// erfc to 1.2e-7 relative and f32 rounding: ~1e-6 relative; gelu' cancels (Φ + zφ) near its zero
// and in the negative tail, where the absolute error is that of its terms, ~1e-7.
const TOLERANCE = { atol: 2e-7, rtol: 2e-6 };

backendTest(
  "geluMulBackward() matches the exact erf GELU's derivative from -12 to 12",
  async (b) => {
    const n = 4801;
    const { g, u, dm, dg, du } = inputs(n);
    const [dgT, duT] = [createTensor(b, [n], "f32", "dg"), createTensor(b, [n], "f32", "du")];
    const rec = b.createRecorder();
    const up = (x: Float32Array, label: string) => uploadTensor(b, x, [n], "f32", label);
    geluMulBackward(rec, dgT, duT, up(dm, "dm"), up(g, "g"), up(u, "u"));
    rec.submit();
    assertClose(await readF32(b, dgT), dg, { ...TOLERANCE, label: "dg" });
    assertClose(await readF32(b, duT), du, { ...TOLERANCE, label: "du" });
  },
);

backendTest("geluMulBackward() writes dg over dm and du over u", async (b) => {
  const n = 1003;
  const { g, u, dm, dg, du } = inputs(n);
  // dm and u are rows of one buffer (with g): the outputs overwrite them in place.
  const all = uploadTensor(b, Float32Array.from([...dm, ...g, ...u]), [3, n], "f32", "all");
  const view = (r: number) => ({ ...rows(all, r, 1), shape: [n] });
  const rec = b.createRecorder();
  geluMulBackward(rec, view(0), view(2), view(0), view(1), view(2));
  rec.submit();
  const got = await readF32(b, all);
  assertClose(got.subarray(0, n), dg, { ...TOLERANCE, label: "dg" });
  assertClose(got.subarray(2 * n), du, { ...TOLERANCE, label: "du" });
});

backendTest("geluMulBackward() refuses tensors overlapping in part, and misfit shapes", (b) => {
  const buffer = createTensor(b, [20], "f32", "buffer");
  const at = (offset: number) => ({ ...buffer, shape: [8], offset });
  const t = (shape: number[]) => createTensor(b, shape, "f32", `[${shape}]`);
  const rec = b.createRecorder();
  throws(
    () => geluMulBackward(rec, at(0), t([8]), at(4), t([8]), t([8])),
    /Cannot record geluMulBackward: dg \(offset 0\) and dm \(offset 4\) overlap in part/,
  );
  throws(
    () => geluMulBackward(rec, t([8]), t([8]), t([8]), t([9]), t([8])),
    /Cannot record geluMulBackward: g has shape \[9\], expected \[8\]/,
  );
  rec.destroy();
});

Deno.test("geluDerivative() agrees with finite differences of gelu", () => {
  const zs = Array.from({ length: 61 }, (_, i) => -6 + i / 5);
  const h = 1e-5;
  const numeric = zs.map((z) => (gelu(z + h) - gelu(z - h)) / (2 * h));
  assertClose(zs.map(geluDerivative), numeric, { atol: 1e-9 });
});
