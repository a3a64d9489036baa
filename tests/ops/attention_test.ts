import { deepStrictEqual } from "node:assert";
import { attention } from "../../src/ops/attention.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

// [S, kvLen, heads, headDim, causal]: single decode steps over a cache, prefill, key counts that
// are not multiples of the 64-key chunk, long sequences, tiny heads, head sizes that are not
// multiples of 8 or 4 (the CPU kernel's vector tails).
const CASES: [number, number, number, number, boolean][] = [
  [1, 1, 1, 4, true],
  [9, 23, 3, 12, false],
  [10, 141, 2, 6, true],
  [1, 65, 4, 16, true],
  [7, 7, 2, 8, true],
  [7, 7, 2, 8, false],
  [130, 130, 3, 16, true],
  [33, 200, 4, 32, false],
  [1, 300, 16, 64, true],
  [20, 150, 2, 256, true],
];

for (const [s, kvLen, heads, headDim, causal] of CASES) {
  backendTest(
    `attention() matches CPU for S=${s} kv=${kvLen} heads=${heads} headDim=${headDim} ${
      causal ? "causal" : "bidirectional"
    }`,
    async (backend) => {
      const rng = new Rng(s * 7 + kvLen + headDim);
      const width = heads * headDim;
      const q = rng.normals(s * width);
      const k = rng.normals(kvLen * width);
      const v = rng.normals(kvLen * width);
      const out = createTensor(backend, [s, width], "f32", "out");
      const rec = backend.createRecorder();
      attention(
        rec,
        out,
        uploadTensor(backend, q, [s, width], "f32", "q"),
        uploadTensor(backend, k, [kvLen, width], "f32", "k"),
        uploadTensor(backend, v, [kvLen, width], "f32", "v"),
        { heads, headDim, kvLen, causal },
      );
      rec.submit();
      const expected = ref.attention(q, k, v, {
        s,
        kvLen,
        heads,
        headDim,
        causal,
        qStart: kvLen - s,
      });
      assertClose(await readF32(backend, out), expected, { atol: 2e-5, rtol: 1e-4 });
    },
  );
}

backendTest(
  "attention() over a growing cache equals attention over the whole sequence",
  async (backend) => {
    const rng = new Rng(11);
    const [n, heads, headDim] = [40, 2, 16];
    const width = heads * headDim;
    // Fused rows [q | k | v] as a fused projection would write them; the cache is the k/v columns.
    const qkv = rng.normals(n * 3 * width);
    const qkvT = uploadTensor(backend, qkv, [n, 3 * width], "f32", "qkv");
    const out = createTensor(backend, [n, width], "f32", "out");
    const rec = backend.createRecorder();
    // prefill the first 25 rows, then one row at a time
    attention(rec, rows(out, 0, 25), rows(qkvT, 0, 25), qkvT, qkvT, {
      heads,
      headDim,
      kvLen: 25,
      causal: true,
      kColumn: width,
      vColumn: 2 * width,
    });
    for (let t = 25; t < n; t++) {
      attention(rec, rows(out, t, 1), rows(qkvT, t, 1), qkvT, qkvT, {
        heads,
        headDim,
        kvLen: t + 1,
        causal: true,
        kColumn: width,
        vColumn: 2 * width,
      });
    }
    rec.submit();
    const pick = (col: number) =>
      Float32Array.from(
        { length: n * width },
        (_, i) => qkv[Math.floor(i / width) * 3 * width + col + (i % width)],
      );
    const expected = ref.attention(pick(0), pick(width), pick(2 * width), {
      s: n,
      kvLen: n,
      heads,
      headDim,
      causal: true,
      qStart: 0,
    });
    assertClose(await readF32(backend, out), expected, { atol: 2e-5, rtol: 1e-4 });
  },
);

backendTest(
  "attention() with spans gives each packed row exactly its attention alone",
  async (backend) => {
    const rng = new Rng(23);
    const [heads, headDim] = [2, 16];
    const width = heads * headDim;
    const lengths = [5, 300, 1, 37]; // more than one 256-key chunk, and a single key
    const total = lengths.reduce((a, b) => a + b, 0);
    const q = rng.normals(total * width);
    const k = rng.normals(total * width);
    const v = rng.normals(total * width);
    const qT = uploadTensor(backend, q, [total, width], "f32", "q");
    const kT = uploadTensor(backend, k, [total, width], "f32", "k");
    const vT = uploadTensor(backend, v, [total, width], "f32", "v");
    for (const causal of [false, true]) {
      const table = new Uint32Array(2 * total);
      let at = 0;
      for (const n of lengths) {
        for (let i = 0; i < n; i++) table.set([at, causal ? i + 1 : n], 2 * (at + i));
        at += n;
      }
      const spans = uploadTensor(backend, table, [total, 2], "u32", "spans");
      const packed = createTensor(backend, [total, width], "f32", "packed");
      const alone = createTensor(backend, [total, width], "f32", "alone");
      const rec = backend.createRecorder();
      attention(rec, packed, qT, kT, vT, { heads, headDim, kvLen: total, causal, spans });
      at = 0;
      for (const n of lengths) {
        attention(rec, rows(alone, at, n), rows(qT, at, n), rows(kT, at, n), rows(vT, at, n), {
          heads,
          headDim,
          kvLen: n,
          causal,
        });
        at += n;
      }
      rec.submit();
      const got = await readF32(backend, packed);
      deepStrictEqual(got, await readF32(backend, alone));
      at = 0;
      for (const n of lengths) {
        const part = (a: Float32Array) => a.slice(at * width, (at + n) * width);
        const expected = ref.attention(part(q), part(k), part(v), {
          s: n,
          kvLen: n,
          heads,
          headDim,
          causal,
          qStart: 0,
        });
        assertClose(part(got), expected, { atol: 2e-5, rtol: 1e-4 });
        at += n;
      }
    }
  },
);
