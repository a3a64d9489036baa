import { deepStrictEqual } from "node:assert";
import { createRopeTable, rope, splitQkv } from "../../src/ops/rope.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
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

for (const [s, heads, headDim] of [[1, 1, 2], [7, 3, 16], [5, 16, 64]]) {
  backendTest(
    `splitQkv() gives rope()'s bits on Q and K and copies V, S=${s} heads=${heads} ` +
      `headDim=${headDim}`,
    async (backend) => {
      const rng = new Rng(s * heads + headDim);
      const d = heads * headDim;
      const qkv = rng.normals(s * 3 * d);
      const positions = Uint32Array.from({ length: s }, (_, i) => (i * 997) % 3001);
      const table = createRopeTable(backend, headDim, 10000, 3001);
      const pt = uploadTensor(backend, positions, [s], "u32", "positions");
      const part = (i: number) =>
        Float32Array.from(
          { length: s * d },
          (_, e) => qkv[Math.floor(e / d) * 3 * d + i * d + e % d],
        );
      const [q, k] = [0, 1].map((i) => uploadTensor(backend, part(i), [s, d], "f32", `rope${i}`));
      // The split's outputs sit at row offsets, as the cache rows of a pass do.
      const out = [0, 1, 2].map((i) => createTensor(backend, [s + 2, d], "f32", `out${i}`));
      const rec = backend.createRecorder();
      rope(rec, q, pt, table, { heads, headDim });
      rope(rec, k, pt, table, { heads, headDim });
      const [qs, ks, vs] = out.map((t) => rows(t, 2, s));
      splitQkv(rec, qs, ks, vs, uploadTensor(backend, qkv, [s, 3 * d], "f32", "qkv"), pt, table, {
        heads,
        headDim,
      });
      rec.submit();
      const got = await Promise.all(out.map(async (t) => (await readF32(backend, t)).slice(2 * d)));
      deepStrictEqual(got[0], await readF32(backend, q));
      deepStrictEqual(got[1], await readF32(backend, k));
      deepStrictEqual(got[2], part(2));
    },
  );
}
