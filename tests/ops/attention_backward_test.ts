import { deepStrictEqual, throws } from "node:assert";
import type { Backend } from "../../src/backends/backend.ts";
import { attention } from "../../src/ops/attention.ts";
import {
  attentionBackward,
  attentionBackwardScratchSize,
  packedAttentionTables,
} from "../../src/ops/attention_backward.ts";
import { createTensor, readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/backward.ts";

/** An item of a packed sequence: its rows, and whether it is causal. */
type Item = readonly [rows: number, causal: boolean];

/**
 * The tables of packed `items`; with `wide`, each key's queries are its whole item (the kernels
 * must then drop the queries whose own span misses the key).
 */
function tables(items: readonly Item[], wide = false) {
  const packed = packedAttentionTables(items.map(([rows, causal]) => ({ rows, causal })));
  const total = packed.spans.length / 2;
  const keyQueries = wide
    ? packedAttentionTables(items.map(([rows]) => ({ rows, causal: false }))).keyQueries
    : packed.keyQueries;
  return { total, spans: packed.spans, keyQueries };
}

// f32 dot products and exponentials against float64: the forward's tolerance.
const TOLERANCE = { atol: 2e-5, rtol: 1e-4 };

/** Runs attentionBackward on seeded inputs and compares dq, dk, dv with the float64 oracle. */
async function check(
  backend: Backend,
  items: readonly Item[],
  heads: number,
  headDim: number,
  { seed = 1, wide = false, scale = 1 / Math.sqrt(headDim) } = {},
) {
  const { total: s, spans, keyQueries } = tables(items, wide);
  const width = heads * headDim;
  const rng = new Rng(seed);
  const [q, k, v, dOut] = [0, 0, 0, 0].map(() => rng.normals(s * width));
  const expected = ref.attentionBackward(q, k, v, dOut, spans, heads, headDim, scale);
  const up = (x: ArrayLike<number>, label: string) =>
    uploadTensor(backend, Float32Array.from(x), [s, width], "f32", label);
  const grads = {
    dq: createTensor(backend, [s, width], "f32", "dq"),
    dk: createTensor(backend, [s, width], "f32", "dk"),
    dv: createTensor(backend, [s, width], "f32", "dv"),
  };
  const size = attentionBackwardScratchSize(s, heads);
  const rec = backend.createRecorder();
  attentionBackward(
    rec,
    grads,
    up(dOut, "dOut"),
    up(q, "q"),
    up(k, "k"),
    up(v, "v"),
    up(expected.out, "out"),
    createTensor(backend, [size], "f32", "scratch"),
    {
      heads,
      headDim,
      scale,
      spans: uploadTensor(backend, spans, [s, 2], "u32", "spans"),
      keyQueries: uploadTensor(backend, keyQueries, [s, 2], "u32", "keyQueries"),
    },
  );
  rec.submit();
  for (const name of ["dq", "dk", "dv"] as const) {
    assertClose(await readF32(backend, grads[name]), expected[name], { ...TOLERANCE, label: name });
  }
}

// A causal (AR) item, a bidirectional (NAR) one, a one-row item and another causal one: tiles of
// 64, 32, 16 or 8 rows start inside items and cover several.
const PACKED: Item[] = [[20, true], [30, false], [1, true], [19, true]];

for (const headDim of [4, 16, 64, 128, 256]) {
  backendTest(
    `attentionBackward() matches float64 for a causal and a bidirectional item packed, headDim ${headDim}`,
    (backend) => check(backend, PACKED, 2, headDim, { seed: headDim }),
  );
}

backendTest(
  "attentionBackward() on the model's heads (16 × 64), items of 40 and 33 rows",
  (b) => check(b, [[40, false], [33, true]], 16, 64),
);

backendTest(
  "attentionBackward() drops the queries of a wide keyQueries range whose span misses the key",
  (b) => check(b, PACKED, 2, 16, { wide: true, seed: 7 }),
);

backendTest(
  "attentionBackward() takes the output of the forward attention() over the same spans",
  async (b) => {
    const [heads, headDim] = [2, 32];
    const width = heads * headDim;
    const { total: s, spans, keyQueries } = tables(PACKED);
    const rng = new Rng(31);
    const [q, k, v, dOut] = [0, 0, 0, 0].map(() => rng.normals(s * width));
    const expected = ref.attentionBackward(
      q,
      k,
      v,
      dOut,
      spans,
      heads,
      headDim,
      1 / Math.sqrt(headDim),
    );
    const up = (x: Float32Array, label: string) => uploadTensor(b, x, [s, width], "f32", label);
    const [qT, kT, vT] = [up(q, "q"), up(k, "k"), up(v, "v")];
    const spansT = uploadTensor(b, spans, [s, 2], "u32", "spans");
    const out = createTensor(b, [s, width], "f32", "out");
    const grads = {
      dq: createTensor(b, [s, width], "f32", "dq"),
      dk: createTensor(b, [s, width], "f32", "dk"),
      dv: createTensor(b, [s, width], "f32", "dv"),
    };
    const rec = b.createRecorder();
    attention(rec, out, qT, kT, vT, { heads, headDim, kvLen: s, causal: false, spans: spansT });
    attentionBackward(
      rec,
      grads,
      up(dOut, "dOut"),
      qT,
      kT,
      vT,
      out,
      createTensor(b, [attentionBackwardScratchSize(s, heads)], "f32", "scratch"),
      {
        heads,
        headDim,
        spans: spansT,
        keyQueries: uploadTensor(b, keyQueries, [s, 2], "u32", "kq"),
      },
    );
    rec.submit();
    assertClose(await readF32(b, out), expected.out, { ...TOLERANCE, label: "out" });
    for (const name of ["dq", "dk", "dv"] as const) {
      assertClose(await readF32(b, grads[name]), expected[name], { ...TOLERANCE, label: name });
    }
  },
);

backendTest("attentionBackward() with a given scale and one item of one row", async (b) => {
  await check(b, [[1, false]], 3, 8, { scale: 0.3 });
  await check(b, [[9, true]], 1, 8, { scale: 2 });
});

backendTest(
  "attentionBackward() reads q, k, v and writes dq, dk, dv as columns of fused rows",
  async (b) => {
    const [heads, headDim] = [3, 8];
    const width = heads * headDim;
    const { total: s, spans, keyQueries } = tables([[6, true], [5, false]]);
    const rng = new Rng(12);
    const qkv = rng.normals(s * 3 * width);
    const dOut = rng.normals(s * width);
    const column = (x: Float32Array, c: number) =>
      Float32Array.from(
        { length: s * width },
        (_, i) => x[Math.floor(i / width) * 3 * width + c + (i % width)],
      );
    const [q, k, v] = [0, width, 2 * width].map((c) => column(qkv, c));
    const scale = 1 / Math.sqrt(headDim);
    const expected = ref.attentionBackward(q, k, v, dOut, spans, heads, headDim, scale);
    const qkvT = uploadTensor(b, qkv, [s, 3 * width], "f32", "qkv");
    const dqkv = createTensor(b, [s, 3 * width], "f32", "dqkv");
    const rec = b.createRecorder();
    attentionBackward(
      rec,
      { dq: dqkv, dk: dqkv, dv: dqkv },
      uploadTensor(b, dOut, [s, width], "f32", "dOut"),
      qkvT,
      qkvT,
      qkvT,
      uploadTensor(b, Float32Array.from(expected.out), [s, width], "f32", "out"),
      createTensor(b, [attentionBackwardScratchSize(s, heads)], "f32", "scratch"),
      {
        heads,
        headDim,
        spans: uploadTensor(b, spans, [s, 2], "u32", "spans"),
        keyQueries: uploadTensor(b, keyQueries, [s, 2], "u32", "keyQueries"),
        kColumn: width,
        vColumn: 2 * width,
      },
    );
    rec.submit();
    const got = await readF32(b, dqkv);
    for (const [name, c] of [["dq", 0], ["dk", width], ["dv", 2 * width]] as const) {
      assertClose(column(got, c), expected[name], { ...TOLERANCE, label: name });
    }
  },
);

backendTest(
  "attentionBackward() refuses an odd head size, a small scratch, a misfit table, an output over an input",
  (b) => {
    const [s, heads] = [4, 2];
    const t = (shape: number[], dtype: "f32" | "u32" = "f32") =>
      createTensor(b, shape, dtype, `[${shape}]`);
    const x = t([s, 16]);
    const call = (headDim: number, scratch: number, spans = t([s, 2], "u32")) => {
      const rec = b.createRecorder();
      try {
        attentionBackward(rec, { dq: x, dk: x, dv: x }, x, x, x, x, x, t([scratch]), {
          heads,
          headDim,
          spans,
          keyQueries: t([s, 2], "u32"),
        });
      } finally {
        rec.destroy();
      }
    };
    const size = attentionBackwardScratchSize(s, heads);
    throws(() => call(6, size), /head dim 6 is not a multiple of 4/);
    throws(() => call(8, size - 1), /scratch of 31 elements cannot hold 32/);
    throws(() => call(8, size, t([s, 2])), /spans is f32, expected u32/);
    throws(() => call(12, size), /q rows of 16 cannot hold 2×12 from column 0/);
    throws(() => call(8, size), /dq shares a buffer with q, which it reads/);
  },
);

Deno.test("packedAttentionTables() gives causal and bidirectional items their rows, both ways", () => {
  const { spans, keyQueries } = packedAttentionTables([
    { rows: 3, causal: true },
    { rows: 2, causal: false },
    { rows: 1, causal: true },
  ]);
  deepStrictEqual([...spans], [0, 1, 0, 2, 0, 3, 3, 2, 3, 2, 5, 1]);
  deepStrictEqual([...keyQueries], [0, 3, 1, 2, 2, 1, 3, 2, 3, 2, 5, 1]);
});

Deno.test("attentionBackward's oracle agrees with finite differences of its forward", () => {
  const [heads, headDim, scale, h] = [2, 4, 0.7, 1e-6];
  const { total: s, spans } = tables([[3, true], [2, false]]);
  const rng = new Rng(2);
  const inputs = [0, 0, 0].map(() => Float64Array.from(rng.normals(s * heads * headDim)));
  const dOut = rng.normals(s * heads * headDim);
  const loss = ([q, k, v]: Float64Array[]) =>
    ref.attentionBackward(q, k, v, dOut, spans, heads, headDim, scale).out.reduce(
      (a, o, i) => a + o * dOut[i],
      0,
    );
  const [q, k, v] = inputs;
  const analytic = ref.attentionBackward(q, k, v, dOut, spans, heads, headDim, scale);
  (["dq", "dk", "dv"] as const).forEach((name, which) => {
    const numeric = inputs[which].map((_, i) => {
      const moved = (delta: number) =>
        inputs.map((x, w) => w === which ? x.map((e, j) => j === i ? e + delta : e) : x);
      return (loss(moved(h)) - loss(moved(-h))) / (2 * h);
    });
    assertClose(analytic[name], numeric, { atol: 1e-8, label: name });
  });
});
