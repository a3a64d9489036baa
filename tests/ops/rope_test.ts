import { createRopeTable, rope } from "../../src/ops/rope.ts";
import { readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

// [rows, heads, headDim, column, width]: plain rows, odd head counts, and K inside fused QKV rows.
const CASES: [number, number, number, number, number][] = [
  [1, 1, 2, 0, 2],
  [7, 3, 16, 0, 48],
  [5, 16, 64, 0, 1024],
  [9, 4, 8, 32, 96],
];

for (const [s, heads, headDim, column, width] of CASES) {
  for (const inverse of [false, true]) {
    backendTest(
      `rope() matches CPU for S=${s} heads=${heads} headDim=${headDim} column=${column}${
        inverse ? " inverse" : ""
      }`,
      async (backend) => {
        const rng = new Rng(s + heads + headDim);
        const x = rng.normals(s * width);
        // Segment-relative positions restart, repeat and reach the thousands.
        const positions = Uint32Array.from({ length: s }, (_, i) => (i * 997) % 3001);
        const table = createRopeTable(backend, headDim, 10000, 3001);
        const xt = uploadTensor(backend, x, [s, width], "f32", "x");
        const pt = uploadTensor(backend, positions, [s], "u32", "positions");
        const rec = backend.createRecorder();
        rope(rec, xt, pt, table, { heads, headDim, column, inverse });
        rec.submit();
        const expected = ref.rope(x, positions, { heads, headDim, width, column, inverse });
        assertClose(await readF32(backend, xt), expected, { atol: 1e-5 });
      },
    );
  }
}

backendTest("rope() then rope({ inverse }) gives the rows back", async (backend) => {
  const [s, heads, headDim, width] = [6, 2, 8, 16];
  const x = new Rng(4).normals(s * width);
  const xt = uploadTensor(backend, x, [s, width], "f32", "x");
  const pt = uploadTensor(backend, Uint32Array.of(0, 1, 2, 500, 1000, 2999), [s], "u32", "pos");
  const table = createRopeTable(backend, headDim, 10000, 3001);
  const rec = backend.createRecorder();
  rope(rec, xt, pt, table, { heads, headDim });
  rope(rec, xt, pt, table, { heads, headDim, inverse: true });
  rec.submit();
  assertClose(await readF32(backend, xt), x, { atol: 1e-6 });
});

Deno.test("rope's inverse is its gradient: <dy, R x> = <R⁻¹ dy, x> in float64", () => {
  const [s, heads, headDim, width] = [3, 2, 8, 16];
  const rng = new Rng(9);
  const [x, dy] = [rng.normals(s * width), rng.normals(s * width)];
  const positions = [7, 0, 1234];
  const opts = { heads, headDim, width };
  const dot = (a: ArrayLike<number>, b: ArrayLike<number>) =>
    Array.from(a).reduce((acc, v, i) => acc + v * b[i], 0);
  const forward = dot(dy, ref.rope(x, positions, opts));
  const backward = dot(ref.rope(dy, positions, { ...opts, inverse: true }), x);
  assertClose([forward], [backward], { atol: 1e-12 });
});
