import { deepStrictEqual, ok, strictEqual, throws } from "node:assert";
import type { Backend, Tensor } from "../../src/backends/backend.ts";
import {
  attention,
  attentionPartialsSize,
  attentionPassBytes,
  attentionTileQueries,
  MAX_SPLIT_QUERIES,
} from "../../src/ops/attention.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

// [S, kvLen, heads, headDim, causal]: single decode steps over a cache, prefill, key counts that
// are not multiples of the 64-key chunk or of a key tile, long sequences, tiny heads, head sizes
// that are not multiples of 8 or 4 (the CPU kernel's vector tails), query counts just over a tile
// (65 queries of a 64-query tile, 33 of a 32-query tile with two lanes per query, 17 of a
// 16-query tile), a decode step whose 1000 keys are split over 16 heads × 16 workgroups.
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
  [65, 65, 2, 64, true],
  [65, 90, 2, 64, false],
  [33, 50, 2, 128, true],
  [17, 40, 1, 256, false],
  [3, 37, 2, 100, true],
  [1, 1000, 16, 64, true],
  [4, 1000, 2, 64, false],
];

/** The partials scratch of split decoding for passes of up to `queries` queries. */
function createPartials(backend: Backend, heads: number, headDim: number, queries: number): Tensor {
  return createTensor(
    backend,
    [attentionPartialsSize(heads, headDim, queries)],
    "f32",
    "partials",
  );
}

for (const [s, kvLen, heads, headDim, causal] of CASES) {
  for (const split of s <= MAX_SPLIT_QUERIES ? [false, true] : [false]) {
    backendTest(
      `attention() matches CPU for S=${s} kv=${kvLen} heads=${heads} headDim=${headDim} ${
        causal ? "causal" : "bidirectional"
      }${split ? ", keys split" : ""}`,
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
          {
            heads,
            headDim,
            kvLen,
            causal,
            partials: split ? createPartials(backend, heads, headDim, s) : undefined,
          },
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
    // prefill the first 25 rows, then one row at a time, each step's keys split (one scratch)
    const partials = createPartials(backend, heads, headDim, 1);
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
        partials,
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
    const [heads, headDim] = [2, 16];
    const width = heads * headDim;
    const lengths = [5, 300, 1, 37]; // more than one 256-key chunk, and a single key
    for (const causal of [false, true]) {
      const { q, k, v, got } = await packedVsAlone(backend, 23, lengths, heads, headDim, causal);
      let at = 0;
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

/**
 * Rows of `lengths` queries and keys (seeded normals) attended packed, through a span table, and
 * each alone: asserts the two equal bit for bit, and returns the inputs, the table and the packed
 * output for the caller's oracle.
 */
async function packedVsAlone(
  backend: Backend,
  seed: number,
  lengths: readonly number[],
  heads: number,
  headDim: number,
  causal: boolean,
) {
  const rng = new Rng(seed);
  const width = heads * headDim;
  const total = lengths.reduce((a, b) => a + b, 0);
  const q = rng.normals(total * width);
  const k = rng.normals(total * width);
  const v = rng.normals(total * width);
  const qT = uploadTensor(backend, q, [total, width], "f32", "q");
  const kT = uploadTensor(backend, k, [total, width], "f32", "k");
  const vT = uploadTensor(backend, v, [total, width], "f32", "v");
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
  return { q, k, v, table, got };
}

/** float64 attention of each query over its own span of keys `[first, first + count)`. */
function spanOracle(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  table: Uint32Array,
  heads: number,
  headDim: number,
): Float64Array {
  const width = heads * headDim;
  const s = table.length / 2;
  const out = new Float64Array(s * width);
  for (let i = 0; i < s; i++) {
    const [first, count] = [table[2 * i], table[2 * i + 1]];
    const part = (a: Float32Array, row: number, n: number) =>
      a.slice(row * width, (row + n) * width);
    const one = ref.attention(part(q, i, 1), part(k, first, count), part(v, first, count), {
      s: 1,
      kvLen: count,
      heads,
      headDim,
      causal: false,
      qStart: 0,
    });
    out.set(one, i * width);
  }
  return out;
}

for (const headDim of [16, 64, 128, 256]) {
  backendTest(
    `attention() with spans: query tiles across span boundaries, spans of one key, headDim ${headDim}`,
    async (backend) => {
      const heads = 2;
      // Tiles of 64, 32 or 16 queries start inside rows; rows of 1 key; 266 queries in all.
      const lengths = [70, 1, 1, 60, 3, 130, 1];
      for (const causal of [false, true]) {
        const { q, k, v, table, got } = await packedVsAlone(
          backend,
          headDim,
          lengths,
          heads,
          headDim,
          causal,
        );
        assertClose(got, spanOracle(q, k, v, table, heads, headDim), { atol: 2e-5, rtol: 1e-4 });
      }
    },
  );
}

backendTest(
  "attention() split over the keys: a batch's decode step (a query per row over its own region) equals each row's step alone",
  async (backend) => {
    const rng = new Rng(5);
    const [heads, headDim] = [4, 64];
    const width = heads * headDim;
    // Regions of 1, 700, 33, 64 and 1000 keys; each row's query sees all of its region.
    const lengths = [1, 700, 33, 64, 1000];
    const total = lengths.reduce((a, b) => a + b, 0);
    const b = lengths.length;
    const q = rng.normals(b * width);
    const k = rng.normals(total * width);
    const v = rng.normals(total * width);
    const qT = uploadTensor(backend, q, [b, width], "f32", "q");
    const kT = uploadTensor(backend, k, [total, width], "f32", "k");
    const vT = uploadTensor(backend, v, [total, width], "f32", "v");
    const table = new Uint32Array(2 * b);
    const starts: number[] = [];
    let at = 0;
    lengths.forEach((n, r) => {
      starts.push(at);
      table.set([at, n], 2 * r);
      at += n;
    });
    const spans = uploadTensor(backend, table, [b, 2], "u32", "spans");
    const partials = createPartials(backend, heads, headDim, b);
    const batch = createTensor(backend, [b, width], "f32", "batch");
    const alone = createTensor(backend, [b, width], "f32", "alone");
    const rec = backend.createRecorder();
    attention(rec, batch, qT, kT, vT, {
      heads,
      headDim,
      kvLen: total,
      causal: true,
      spans,
      partials,
    });
    lengths.forEach((n, r) => {
      const [kr, vr] = [rows(kT, starts[r], n), rows(vT, starts[r], n)];
      attention(rec, rows(alone, r, 1), rows(qT, r, 1), kr, vr, {
        heads,
        headDim,
        kvLen: n,
        causal: true,
        partials,
      });
    });
    rec.submit();
    const got = await readF32(backend, batch);
    deepStrictEqual(got, await readF32(backend, alone));
    assertClose(got, spanOracle(q, k, v, table, heads, headDim), { atol: 2e-5, rtol: 1e-4 });
  },
);

backendTest("attention() refuses partials too small for the pass", (backend) => {
  const [heads, headDim, s] = [2, 16, 3];
  const width = heads * headDim;
  const x = createTensor(backend, [s, width], "f32", "x");
  const small = createTensor(backend, [attentionPartialsSize(heads, headDim, s) - 1], "f32", "p");
  const rec = backend.createRecorder();
  throws(
    () => attention(rec, x, x, x, x, { heads, headDim, kvLen: s, causal: true, partials: small }),
    /partials/,
  );
  rec.destroy();
});

Deno.test("attentionPassBytes() counts each key row once per tile of queries", () => {
  strictEqual(attentionTileQueries(64), 64);
  strictEqual(attentionTileQueries(128), 32);
  strictEqual(attentionTileQueries(6), 64);
  const shape = { queries: 100, keys: 100, heads: 2, headDim: 8, causal: false };
  const io = 4 * 2 * 8 * 2 * 100; // queries read, outputs written
  // One query per workgroup reads the 100 keys 100 times; tiles of 64 read them twice.
  strictEqual(attentionPassBytes(shape, 1), 4 * 2 * 8 * 2 * 100 * 100 + io);
  strictEqual(attentionPassBytes(shape, 64), 4 * 2 * 8 * 2 * 200 + io);
  // Causal: the tiles read their hulls, 64 keys and 100.
  const causal = { ...shape, causal: true };
  strictEqual(attentionPassBytes(causal, 64), 4 * 2 * 8 * 2 * 164 + io);
  ok(attentionPassBytes(causal, 1) < attentionPassBytes(shape, 1));
});
