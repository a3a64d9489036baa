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
  backendTest(
    `rope() matches CPU for S=${s} heads=${heads} headDim=${headDim} column=${column}`,
    async (backend) => {
      const rng = new Rng(s + heads + headDim);
      const x = rng.normals(s * width);
      // Segment-relative positions restart, repeat and reach the thousands.
      const positions = Uint32Array.from({ length: s }, (_, i) => (i * 997) % 3001);
      const table = createRopeTable(backend, headDim, 10000, 3001);
      const xt = uploadTensor(backend, x, [s, width], "f32", "x");
      const pt = uploadTensor(backend, positions, [s], "u32", "positions");
      const rec = backend.createRecorder();
      rope(rec, xt, pt, table, { heads, headDim, column });
      rec.submit();
      const expected = ref.rope(x, positions, { heads, headDim, width, column });
      assertClose(await readF32(backend, xt), expected, { atol: 1e-5 });
    },
  );
}

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
