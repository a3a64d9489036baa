/**
 * NaN canaries around tensor views: the kernels read their inputs as row views in the middle of
 * buffers whose every other element is NaN, and write outputs into views whose neighbours must
 * stay NaN. A kernel that reads one element outside its view (an off-by-one tile edge, a vec4
 * load past the end of a row) turns its output into NaN; one that writes outside it overwrites a
 * canary. Both are caught here, on every backend, at shapes that are not multiples of the tiles.
 */

import assert from "node:assert/strict";
import type { Backend, Tensor } from "../../src/backends/backend.ts";
import { readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { adamw, SUM_SQUARES_PARTIALS, sumSquares } from "../../src/ops/adamw.ts";
import { attention, attentionPartialsSize } from "../../src/ops/attention.ts";
import { crossEntropy } from "../../src/ops/cross_entropy.ts";
import { linear } from "../../src/ops/linear.ts";
import { linearBackward } from "../../src/ops/linear_backward.ts";
import { matmul } from "../../src/ops/matmul.ts";
import { rmsNorm } from "../../src/ops/norm.ts";
import * as gemm from "../reference/gemm.ts";
import * as reference from "../reference/ops.ts";
import { assertClose } from "../_helpers.ts";
import { backendTest } from "../_backends.ts";

/** Rows of NaN before and after every view. */
const PAD = 3;

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 0.37));
}

/** `data` (count rows of `width`) as rows [PAD, PAD + count) of a buffer padded with NaN rows. */
function padded(backend: Backend, data: Float32Array, width: number, label: string): Tensor {
  const count = data.length / width;
  const all = new Float32Array((count + 2 * PAD) * width).fill(NaN);
  all.set(data, PAD * width);
  return rows(uploadTensor(backend, all, [count + 2 * PAD, width], "f32", label), PAD, count);
}

/** The whole buffer behind a view made by {@linkcode padded}. */
function whole(t: Tensor): Tensor {
  return { ...t, offset: 0, shape: [t.shape[0] + 2 * PAD, t.shape[1]] };
}

/** Reads an output view: its values, and whether every canary around it is still NaN. */
async function readView(backend: Backend, t: Tensor): Promise<Float32Array> {
  const all = await readF32(backend, whole(t));
  const width = t.shape[1];
  const inside = all.subarray(PAD * width, (PAD + t.shape[0]) * width);
  const outside = [...all.subarray(0, PAD * width), ...all.subarray((PAD + t.shape[0]) * width)];
  assert.ok(outside.every(Number.isNaN), "a kernel wrote outside its output view");
  return inside;
}

for (const [m, n, k] of [[1, 67, 33], [3, 130, 68], [70, 65, 96], [67, 129, 100]]) {
  backendTest(`linear() reads only its views: M=${m} N=${n} K=${k}`, async (backend) => {
    const x = values(m * k, 1);
    const w = values(n * k, 2);
    const y = padded(backend, new Float32Array(m * n), n, "y");
    const rec = backend.createRecorder();
    linear(rec, y, padded(backend, x, k, "x"), padded(backend, w, k, "w"));
    rec.submit();
    const got = await readView(backend, y);
    assertClose(got, reference.linear(x, w, undefined, m, n, k), { atol: 1e-4, label: "linear" });
  });
}

backendTest("rmsNorm() reads only its views", async (backend) => {
  const [count, d] = [5, 72];
  const x = values(count * d, 3);
  const w = values(d, 4);
  const y = padded(backend, new Float32Array(count * d), d, "y");
  const rec = backend.createRecorder();
  rmsNorm(rec, y, padded(backend, x, d, "x"), uploadTensor(backend, w, [d], "f32", "w"), 1e-6);
  rec.submit();
  assertClose(await readView(backend, y), reference.rmsNorm(x, w, d, 1e-6), {
    atol: 1e-5,
    label: "rmsNorm",
  });
});

for (const [s, split] of [[1, false], [5, false], [70, false], [1, true], [5, true]] as const) {
  const how = split ? ", keys split over workgroups" : "";
  backendTest(
    `attention() reads only its views: ${s} queries over ${s + 3} keys${how}`,
    async (b) => {
      const [heads, headDim] = [2, 16];
      const width = heads * headDim;
      const kvLen = s + 3;
      const q = values(s * width, 5);
      const k = values(kvLen * width, 6);
      const v = values(kvLen * width, 7);
      const out = padded(b, new Float32Array(s * width), width, "out");
      const rec = b.createRecorder();
      const options = { heads, headDim, kvLen, causal: true };
      const partials = split
        ? uploadTensor(
          b,
          new Float32Array(attentionPartialsSize(heads, headDim, s)).fill(NaN),
          [attentionPartialsSize(heads, headDim, s)],
          "f32",
          "partials",
        )
        : undefined;
      attention(
        rec,
        out,
        padded(b, q, width, "q"),
        padded(b, k, width, "k"),
        padded(b, v, width, "v"),
        { ...options, partials },
      );
      rec.submit();
      const expected = reference.attention(q, k, v, { ...options, s, qStart: kvLen - s });
      assertClose(await readView(b, out), expected, { atol: 1e-5, label: "attention" });
    },
  );
}

for (const [m, n, k] of [[1, 67, 33], [70, 65, 18], [67, 9, 100]]) {
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
    backendTest(
      `matmul() reads only its views: M=${m} N=${n} K=${k}${transA ? " aᵀ" : ""}${
        transB ? " bᵀ" : ""
      }`,
      async (backend) => {
        const a = values(m * k, 8);
        const b = values(k * n, 9);
        const c = padded(backend, new Float32Array(m * n), n, "c");
        const rec = backend.createRecorder();
        const options = { transA, transB, alpha: 0.5 };
        const at = padded(backend, a, transA ? m : k, "a");
        matmul(rec, c, at, padded(backend, b, transB ? k : n, "b"), options);
        rec.submit();
        assertClose(await readView(backend, c), gemm.matmul(a, b, [m, n, k], options), {
          atol: 1e-5,
          rtol: 1e-5,
          label: "matmul",
        });
      },
    );
  }
}

for (const [m, n, k] of [[1, 33, 67], [70, 65, 130]]) {
  backendTest(`linearBackward() reads only its views: M=${m} N=${n} K=${k}`, async (backend) => {
    const dy = values(m * n, 10);
    const w = values(n * k, 11);
    const dx = padded(backend, new Float32Array(m * k), k, "dx");
    const rec = backend.createRecorder();
    linearBackward(rec, dx, padded(backend, dy, n, "dy"), padded(backend, w, k, "w"));
    rec.submit();
    assertClose(await readView(backend, dx), gemm.matmul(dy, w, [m, k, n]), {
      atol: 1e-5,
      label: "linearBackward",
    });
  });
}

backendTest("crossEntropy() reads only its views", async (backend) => {
  const [m, v] = [5, 300];
  const x = values(m * v, 12).map((e) => 4 * e);
  const labels = Uint32Array.of(0, 299, 17, 0xffffffff, 150);
  const dx = padded(backend, new Float32Array(m * v), v, "dx");
  const stats = padded(backend, new Float32Array(2 * m), 2, "stats");
  const column = (data: Float32Array, label: string) => {
    const t = padded(backend, data, 1, label);
    return { ...t, shape: [m] };
  };
  const rec = backend.createRecorder();
  crossEntropy(
    rec,
    dx,
    stats,
    padded(backend, x, v, "x"),
    { ...column(new Float32Array(labels.buffer), "labels"), dtype: "u32" },
    column(new Float32Array(m).fill(0.5), "weights"),
  );
  rec.submit();
  const gotStats = await readView(backend, stats);
  const gotDx = await readView(backend, dx);
  for (let r = 0; r < m; r++) {
    const row = Array.from(x.subarray(r * v, (r + 1) * v));
    const scored = labels[r] < v;
    const max = Math.max(...row);
    const sum = row.reduce((s, e) => s + Math.exp(e - max), 0);
    const loss = scored ? 0.5 * (max + Math.log(sum) - row[labels[r]]) : 0;
    assertClose([gotStats[2 * r]], [loss], { atol: 1e-5, rtol: 1e-5, label: `loss ${r}` });
    const grad = row.map((e, j) =>
      scored ? 0.5 * (Math.exp(e - max) / sum - (j === labels[r] ? 1 : 0)) : 0
    );
    assertClose(gotDx.subarray(r * v, (r + 1) * v), grad, { atol: 1e-6, label: `dx ${r}` });
  }
});

backendTest("adamw() and sumSquares() read only their views", async (backend) => {
  const n = 5000;
  const vector = (data: Float32Array, label: string) => padded(backend, data, n, label);
  const flat = (t: Tensor) => ({ ...t, shape: [t.shape[1]] });
  const g = values(n, 13);
  const [p, m, v] = [
    vector(values(n, 14), "p"),
    vector(new Float32Array(n), "m"),
    vector(new Float32Array(n), "v"),
  ];
  const sumsq = padded(backend, new Float32Array(1), 1, "sumsq");
  const partials = padded(
    backend,
    new Float32Array(SUM_SQUARES_PARTIALS),
    SUM_SQUARES_PARTIALS,
    "partials",
  );
  const scale = padded(backend, Float32Array.of(1), 1, "scale");
  const rec = backend.createRecorder();
  const gt = flat(vector(g, "g"));
  sumSquares(rec, flat(sumsq), gt, { partials: flat(partials) });
  adamw(rec, flat(p), gt, flat(m), flat(v), flat(scale), {
    lr: 0.01,
    beta1: 0.9,
    beta2: 0.96,
    eps: 1e-7,
    weightDecay: 0.01,
    step: 1,
  });
  rec.submit();
  const expected = g.reduce((s, e) => s + e * e, 0);
  assertClose(await readView(backend, sumsq), [expected], { rtol: 2e-6, label: "sumSquares" });
  const moments = await readView(backend, m);
  assertClose(moments, g.map((e) => 0.1 * e), { atol: 1e-7, rtol: 1e-6, label: "adamw m" });
  await readView(backend, p);
  await readView(backend, v);
  await readView(backend, partials);
});
