import assert from "node:assert/strict";
import type { Backend, QuantDtype } from "../../src/backends/backend.ts";
import { gateUpGelu, normLinear, qkRope, qkvRope } from "../../src/ops/fused.ts";
import { linear } from "../../src/ops/linear.ts";
import { geluMul } from "../../src/ops/mlp.ts";
import { rmsNorm } from "../../src/ops/norm.ts";
import { createRopeTable, rope } from "../../src/ops/rope.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, integerMath, quantTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { gelu } from "../reference/erf.ts";
import * as ref from "../reference/ops.ts";
import { checkWithin, linearQuantOracle, randomQuantWeight } from "../reference/quant.ts";

const EPS = 1e-6;

/** Rows of width d as rows kvRow.. of a zeroed cache of `capacity` rows. */
function cacheRows(values: Float64Array, capacity: number, kvRow: number, d: number) {
  const all = new Float64Array(capacity * d);
  all.set(values, kvRow * d);
  return all;
}

for (const dtype of WEIGHT_DTYPES) {
  for (const [m, n, k] of [[1, 1025, 1024], [3, 37, 32], [1, 11, 8]]) {
    backendTest(
      `normLinear() equals rmsNorm then linear for M=${m} N=${n} K=${k} ${dtype}`,
      async (backend) => {
        const rng = new Rng(m + n + k);
        const x = rng.normals(m * k, 2);
        const nw = uploadWeights(backend, rng.normals(k), [k], dtype, "nw");
        const w = uploadWeights(backend, rng.normals(n * k, 0.05), [n, k], dtype, "w");
        const b = uploadWeights(backend, rng.normals(n), [n], dtype, "b");
        const y0 = rng.normals(m * n);
        const y = uploadTensor(backend, y0, [m, n], "f32", "y");
        const rec = backend.createRecorder();
        normLinear(rec, y, uploadTensor(backend, x, [m, k], "f32", "x"), nw.tensor, w.tensor, {
          eps: EPS,
          bias: b.tensor,
          accumulate: true,
        });
        rec.submit();
        const h = ref.rmsNorm(x, nw.values, k, EPS);
        const expected = ref.linear(h, w.values, b.values, m, n, k).map((v, i) => v + y0[i]);
        assertClose(await readF32(backend, y), expected, { atol: 1e-4, rtol: 1e-4 });
      },
    );
  }

  // [rows, d, heads]: the real model's attention, a tiny head_dim (half 4), an odd pair count.
  for (const [m, d, heads] of [[1, 1024, 16], [2, 32, 4], [1, 48, 4]]) {
    backendTest(
      `qkvRope() equals norm, projections, RoPE and cache writes for M=${m} d=${d} heads=${heads} ${dtype}`,
      async (backend) => {
        const rng = new Rng(m * d + heads);
        const headDim = d / heads;
        const x = rng.normals(m * d, 2);
        const nw = uploadWeights(backend, rng.normals(d), [d], dtype, "nw");
        const wqkv = uploadWeights(
          backend,
          rng.normals(3 * d * d, 1 / Math.sqrt(d)),
          [3 * d, d],
          dtype,
          "wqkv",
        );
        const positions = Uint32Array.from({ length: m }, (_, i) => 700 + 13 * i);
        const capacity = 9;
        const kvRow = 5;
        const q = createTensor(backend, [m, d], "f32", "q");
        const kCache = createTensor(backend, [capacity, d], "f32", "k");
        const vCache = createTensor(backend, [capacity, d], "f32", "v");
        const rec = backend.createRecorder();
        qkvRope(
          rec,
          q,
          kCache,
          vCache,
          uploadTensor(backend, x, [m, d], "f32", "x"),
          nw.tensor,
          wqkv.tensor,
          {
            heads,
            eps: EPS,
            positions: uploadTensor(backend, positions, [m], "u32", "pos"),
            table: createRopeTable(backend, headDim, 10000, 800),
            kvRow,
          },
        );
        rec.submit();
        const h = ref.rmsNorm(x, nw.values, d, EPS);
        const proj = (part: number) =>
          ref.linear(h, wqkv.values.subarray(part * d * d, (part + 1) * d * d), undefined, m, d, d);
        const opts = { heads, headDim, width: d };
        const tol = { atol: 1e-4, rtol: 1e-4 };
        assertClose(await readF32(backend, q), ref.rope(proj(0), positions, opts), {
          ...tol,
          label: "q",
        });
        const cached = (values: Float64Array) => cacheRows(values, capacity, kvRow, d);
        assertClose(await readF32(backend, kCache), cached(ref.rope(proj(1), positions, opts)), {
          ...tol,
          label: "k",
        });
        assertClose(await readF32(backend, vCache), cached(proj(2)), { ...tol, label: "v" });
      },
    );
  }

  for (const [m, d, f] of [[1, 1024, 4096], [3, 32, 128], [1, 8, 6]]) {
    backendTest(
      `gateUpGelu() equals norm, gate/up projections and GELU for M=${m} d=${d} F=${f} ${dtype}`,
      async (backend) => {
        const rng = new Rng(m + d + f);
        const x = rng.normals(m * d, 2);
        const nw = uploadWeights(backend, rng.normals(d), [d], dtype, "nw");
        const w = uploadWeights(
          backend,
          rng.normals(2 * f * d, 1 / Math.sqrt(d)),
          [2 * f, d],
          dtype,
          "w",
        );
        const out = createTensor(backend, [m, f], "f32", "out");
        const rec = backend.createRecorder();
        gateUpGelu(
          rec,
          out,
          uploadTensor(backend, x, [m, d], "f32", "x"),
          nw.tensor,
          w.tensor,
          EPS,
        );
        rec.submit();
        const h = ref.rmsNorm(x, nw.values, d, EPS);
        const g = ref.linear(h, w.values.subarray(0, f * d), undefined, m, f, d);
        const u = ref.linear(h, w.values.subarray(f * d), undefined, m, f, d);
        const expected = g.map((v, i) => gelu(v) * u[i]);
        assertClose(await readF32(backend, out), expected, { atol: 1e-4, rtol: 1e-4 });
      },
    );
  }
}

// --- Over quantized weights: each fused kernel against the op chain it replaces, on the same
// backend (the CPU computes the same functions in the same order, so the same bits; WebGPU sums
// in another order), and against the oracle of the backend's arithmetic (tests/reference/quant.ts)
// over the normed rows that the backend's rmsNorm gives, whose bits the kernels must reproduce:
// the integer block math on the CPU and on WebGPU with packed_4x8_integer_dot_product, float
// activations on a device without it (`integerDot: false`).

/** A random weight quantized to a device layout, uploaded, with its words and values. */
function quantWeight(backend: Backend, rng: Rng, dtype: QuantDtype, n: number, k: number) {
  const w = randomQuantWeight(rng, dtype, n, k, 1 / Math.sqrt(k));
  return { ...w, dtype, tensor: uploadTensor(backend, w.words, [n, k], dtype, dtype) };
}

/** Both results equal (CPU) or within 1e-4 (WebGPU). */
function expectSame(backend: Backend, a: Float32Array, b: Float32Array, label: string) {
  if (backend.kind === "cpu") assert.deepEqual(a, b, label);
  else assertClose(a, b, { atol: 1e-4, rtol: 1e-4, label });
}

/** Oracle values and the error allowed each (tests/reference/quant.ts). */
type Oracle = { y: Float64Array; allowed: Float64Array };

/** The oracle of the normed rows h (M, d) times a quantized weight (N, d) on this backend. */
function project(
  backend: Backend,
  h: Float32Array,
  w: ReturnType<typeof quantWeight>,
  shape: [m: number, n: number, d: number],
  b?: Float32Array,
  base?: Float32Array,
): Oracle {
  return linearQuantOracle(integerMath(backend), w.dtype, h, w, b, shape, base);
}

/**
 * RoPE of projected rows (heads of headDim, pairs (j, j + headDim / 2)) by the backend's table
 * (cos, sin per position and pair): a pair's errors rotate with it, plus the float32 roundings of
 * the rotation.
 */
function rotate(
  p: Oracle,
  table: Float32Array,
  positions: Uint32Array,
  heads: number,
  headDim: number,
): Oracle {
  const half = headDim / 2;
  const y = new Float64Array(p.y.length);
  const allowed = new Float64Array(p.y.length);
  for (let r = 0; r < positions.length; r++) {
    for (let head = 0; head < heads; head++) {
      for (let j = 0; j < half; j++) {
        const [i, k] = [(r * heads + head) * headDim + j, (r * heads + head) * headDim + j + half];
        const at = 2 * (positions[r] * half + j);
        const [c, s] = [table[at], table[at + 1]];
        const [a, b] = [p.y[i], p.y[k]];
        y[i] = a * c - b * s;
        y[k] = b * c + a * s;
        // The rotation in float32: two products and a sum, each rounded.
        allowed[i] = Math.abs(c) * p.allowed[i] + Math.abs(s) * p.allowed[k] +
          2 ** -22 * (Math.abs(a * c) + Math.abs(b * s));
        allowed[k] = Math.abs(c) * p.allowed[k] + Math.abs(s) * p.allowed[i] +
          2 ** -22 * (Math.abs(b * c) + Math.abs(a * s));
      }
    }
  }
  return { y, allowed };
}

/**
 * gelu(g) · u: the errors of g (|gelu'| < 1.13) and u carried through, plus 1e-5 of the result
 * for the kernels' erfc fit and float32 GELU.
 */
function gated(g: Oracle, u: Oracle): Oracle {
  const y = g.y.map((v, i) => gelu(v) * u.y[i]);
  const allowed = y.map((v, i) =>
    1.13 * g.allowed[i] * (Math.abs(u.y[i]) + u.allowed[i]) +
    Math.abs(gelu(g.y[i])) * u.allowed[i] + 1e-5 * Math.abs(v)
  );
  return { y, allowed };
}

/** An oracle's rows of width d as rows kvRow.. of a zeroed cache of `capacity` rows. */
function cached(p: Oracle, capacity: number, kvRow: number, d: number): Oracle {
  return {
    y: cacheRows(p.y, capacity, kvRow, d),
    allowed: cacheRows(p.allowed, capacity, kvRow, d),
  };
}

// [rows, d, heads, q/k layouts, v layout]
const QUANT_DECODE: [number, number, number, QuantDtype, QuantDtype][] = [
  [1, 1024, 16, "q4_k", "q8_0"],
  [3, 256, 4, "q8_0", "q8_0"],
  [2, 512, 8, "q4_k", "q4_k"],
];
for (const dtype of WEIGHT_DTYPES) {
  for (const [m, d, heads, qk, vl] of QUANT_DECODE) {
    const shape = `M=${m} d=${d} ${qk}/${vl} norm ${dtype}`;
    quantTest(
      `qkRope() + normLinear() equal the op chain and the oracle over quantized weights, ${shape}`,
      async (backend) => {
        const rng = new Rng(m * d + heads + 3);
        const headDim = d / heads;
        const x = uploadTensor(backend, rng.normals(m * d, 2), [m, d], "f32", "x");
        const nw = uploadWeights(backend, rng.normals(d), [d], dtype, "nw").tensor;
        const [wq, wk, wv] = [qk, qk, vl].map((l) => quantWeight(backend, rng, l, d, d));
        const pos = Uint32Array.from({ length: m }, (_, i) => 700 + 13 * i);
        const positions = uploadTensor(backend, pos, [m], "u32", "pos");
        const table = createRopeTable(backend, headDim, 10000, 800);
        const [capacity, kvRow] = [9, 5];
        const fused = [[m, d], [capacity, d], [capacity, d]].map((s) =>
          createTensor(backend, s, "f32", "fused")
        );
        const chain = [[m, d], [capacity, d], [capacity, d]].map((s) =>
          createTensor(backend, s, "f32", "chain")
        );
        const h = createTensor(backend, [m, d], "f32", "h");
        const rec = backend.createRecorder();
        const eps = EPS;
        qkRope(rec, fused[0], fused[1], x, nw, wq.tensor, wk.tensor, {
          heads,
          eps,
          positions,
          table,
          kvRow,
        });
        normLinear(rec, rows(fused[2], kvRow, m), x, nw, wv.tensor, { eps });
        rmsNorm(rec, h, x, nw, eps);
        linear(rec, chain[0], h, wq.tensor);
        linear(rec, rows(chain[1], kvRow, m), h, wk.tensor);
        linear(rec, rows(chain[2], kvRow, m), h, wv.tensor);
        rope(rec, chain[0], positions, table, { heads, headDim });
        rope(rec, rows(chain[1], kvRow, m), positions, table, { heads, headDim });
        rec.submit();
        const hv = await readF32(backend, h);
        const tableValues = await readF32(backend, table);
        const rotated = (w: ReturnType<typeof quantWeight>) =>
          rotate(project(backend, hv, w, [m, d, d]), tableValues, pos, heads, headDim);
        const oracles = [
          rotated(wq),
          cached(rotated(wk), capacity, kvRow, d),
          cached(project(backend, hv, wv, [m, d, d]), capacity, kvRow, d),
        ];
        for (const [i, name] of ["q", "k", "v"].entries()) {
          const got = await readF32(backend, fused[i]);
          expectSame(backend, got, await readF32(backend, chain[i]), name);
          checkWithin(got, oracles[i], name);
        }
      },
      true,
    );

    const f = 2 * d;
    quantTest(
      `gateUpGelu() equals the op chain and the oracle over quantized weights, ${shape}`,
      async (backend) => {
        const rng = new Rng(m + d + 5);
        const x = uploadTensor(backend, rng.normals(m * d, 2), [m, d], "f32", "x");
        const nw = uploadWeights(backend, rng.normals(d), [d], dtype, "nw").tensor;
        const gate = quantWeight(backend, rng, qk, f, d);
        const up = quantWeight(backend, rng, vl, f, d);
        const [out, g, u, h] = [[m, f], [m, f], [m, f], [m, d]].map((s) =>
          createTensor(backend, s, "f32", "t")
        );
        const rec = backend.createRecorder();
        gateUpGelu(rec, out, x, nw, [gate.tensor, up.tensor], EPS);
        rmsNorm(rec, h, x, nw, EPS);
        linear(rec, g, h, gate.tensor);
        linear(rec, u, h, up.tensor);
        geluMul(rec, g, u);
        rec.submit();
        const got = await readF32(backend, out);
        expectSame(backend, got, await readF32(backend, g), "out");
        const hv = await readF32(backend, h);
        const oracle = gated(
          project(backend, hv, gate, [m, f, d]),
          project(backend, hv, up, [m, f, d]),
        );
        checkWithin(got, oracle, "out");
      },
      true,
    );

    quantTest(
      `normLinear() equals the op chain and the oracle over a quantized weight with a bias, ${shape}`,
      async (backend) => {
        const rng = new Rng(m + d + 7);
        const n = 1025;
        const x = uploadTensor(backend, rng.normals(m * d, 2), [m, d], "f32", "x");
        const nw = uploadWeights(backend, rng.normals(d), [d], dtype, "nw").tensor;
        const b = uploadWeights(backend, rng.normals(n), [n], dtype, "b");
        const w = quantWeight(backend, rng, qk, n, d);
        const y0 = rng.normals(m * n);
        const [y, chain] = [0, 1].map(() => uploadTensor(backend, y0, [m, n], "f32", "y"));
        const h = createTensor(backend, [m, d], "f32", "h");
        const rec = backend.createRecorder();
        normLinear(rec, y, x, nw, w.tensor, { eps: EPS, bias: b.tensor, accumulate: true });
        rmsNorm(rec, h, x, nw, EPS);
        linear(rec, chain, h, w.tensor, b.tensor, { accumulate: true });
        rec.submit();
        const got = await readF32(backend, y);
        expectSame(backend, got, await readF32(backend, chain), "y");
        const hv = await readF32(backend, h);
        checkWithin(got, project(backend, hv, w, [m, n, d], b.values, y0), "y");
      },
      true,
    );
  }
}
