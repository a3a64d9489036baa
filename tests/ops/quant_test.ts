/**
 * The quantized kernels (gemv/gemm for q8_0 and q4_k, embedding_sum_q8_0) on every backend, each
 * against the oracle of its own arithmetic: the integer block math of the CPU and of the WebGPU
 * GEMMs where WGSL has packed_4x8_integer_dot_product (activations quantized the same way, integer
 * block sums, the same scale products; only the summation order of block terms may differ), and
 * the dequantized weights times the float activations for the WebGPU kernels of a device without
 * the feature (here: one that refuses it, `integerDot: false`).
 */

import { deepStrictEqual, ok } from "node:assert";
import type { Backend, QuantDtype } from "../../src/backends/backend.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { embeddingSum, NO_ROW } from "../../src/ops/embedding.ts";
import { GEMV_MAX_ROWS, linear } from "../../src/ops/linear.ts";
import { dequantizeDeviceWords, quantizeBlocks, toDeviceWords } from "../../src/quant/device.ts";
import { backendTest, integerMath, quantTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";
import { checkLinearQuant, quantizeActivations, randomQuantWeight } from "../reference/quant.ts";

/** Checks y against the oracle of the backend's arithmetic for M rows. */
function check(
  backend: Backend,
  got: Float32Array,
  dtype: QuantDtype,
  x: Float32Array,
  w: { words: Uint32Array; values: Float32Array },
  b: Float32Array | undefined,
  shape: readonly [number, number, number],
  base?: Float32Array,
): void {
  checkLinearQuant(got, integerMath(backend), dtype, x, w, b, shape, base);
}

// [M, N, K]: decode rows (GEMV, M <= 4) and passes (GEMM), odd N, the model's shapes.
const SHAPES: [number, number, number][] = [
  [1, 7, 256],
  [2, 33, 512],
  [4, 1025, 1024],
  [1, 1024, 4096],
  [3, 65, 768],
  [5, 17, 256],
  [70, 130, 512],
  [64, 1025, 256],
  // More rows than one block of quantized activations holds (the CPU kernel's scratch).
  [300, 9, 4096],
];
/** Q8_0 only: K % 128 == 64, a last pair of blocks alone (GEMV and GEMM). */
const Q8_SHAPES: [number, number, number][] = [[2, 9, 320], [37, 21, 320]];

for (const dtype of ["q8_0", "q4_k"] as const) {
  for (const [m, n, k] of dtype === "q8_0" ? [...SHAPES, ...Q8_SHAPES] : SHAPES) {
    for (const bias of ["none", ...WEIGHT_DTYPES] as const) {
      quantTest(
        `linear() ${dtype} matches its oracle for M=${m} N=${n} K=${k} bias ${bias}`,
        async (backend) => {
          const rng = new Rng(m * 1000 + n * 10 + k + (dtype === "q8_0" ? 0 : 7));
          const x = rng.normals(m * k);
          const w = randomQuantWeight(rng, dtype, n, k, 0.05);
          const b = bias === "none"
            ? undefined
            : uploadWeights(backend, rng.normals(n), [n], bias, "b");
          const y = createTensor(backend, [m, n], "f32", "y");
          const rec = backend.createRecorder();
          linear(
            rec,
            y,
            uploadTensor(backend, x, [m, k], "f32", "x"),
            uploadTensor(backend, w.words, [n, k], dtype, "w"),
            b?.tensor,
          );
          rec.submit();
          check(backend, await readF32(backend, y), dtype, x, w, b?.values, [m, n, k]);
        },
        bias === "f16",
      );
    }
  }
  quantTest(
    `linear() ${dtype} reads row views of x, w and y, and accumulates`,
    async (backend) => {
      const rng = new Rng(dtype === "q8_0" ? 11 : 12);
      const [n, k] = [40, 512];
      const x = rng.normals(9 * k);
      const w = randomQuantWeight(rng, dtype, n + 6, k, 0.05);
      const xt = uploadTensor(backend, x, [9, k], "f32", "x");
      const wt = uploadTensor(backend, w.words, [n + 6, k], dtype, "w");
      // Rows 6.. of the weight: an offset in words, past whole rows.
      const wordsPerRow = w.words.length / (n + 6);
      const view = {
        words: w.words.subarray(6 * wordsPerRow),
        values: w.values.subarray(6 * k),
      };
      for (const m of [1, 3, 9 - 2]) {
        const base = rng.normals(m * n);
        const y = uploadTensor(backend, new Float32Array(12 * n), [12, n], "f32", "y");
        backend.write(rows(y, 2, m), base);
        const rec = backend.createRecorder();
        linear(rec, rows(y, 2, m), rows(xt, 2, m), rows(wt, 6, n), undefined, { accumulate: true });
        rec.submit();
        const got = (await readF32(backend, y)).subarray(2 * n, (2 + m) * n);
        check(
          backend,
          got,
          dtype,
          x.subarray(2 * k, (2 + m) * k),
          view,
          undefined,
          [m, n, k],
          base,
        );
      }
    },
    true,
  );
}

for (const dtype of ["q8_0", "q4_k"] as const) {
  quantTest(
    `linear() ${dtype} GEMM rows in chunks equal the rows together bit for bit`,
    async (backend) => {
      // Chunks of more than GEMV_MAX_ROWS rows, starting inside a tile or at its start, some
      // crossing tiles: each output's sum must not depend on M or on where its row falls.
      const rng = new Rng(dtype === "q8_0" ? 13 : 14);
      const [m, n, k] = [150, 70, 512];
      const w = uploadTensor(
        backend,
        randomQuantWeight(rng, dtype, n, k, 0.05).words,
        [n, k],
        dtype,
        "w",
      );
      const xt = uploadTensor(backend, rng.normals(m * k), [m, k], "f32", "x");
      const whole = createTensor(backend, [m, n], "f32", "whole");
      const chunked = createTensor(backend, [m, n], "f32", "chunked");
      const rec = backend.createRecorder();
      linear(rec, whole, xt, w);
      for (const [start, count] of [[0, 5], [5, 64], [69, 7], [76, 74]]) {
        linear(rec, rows(chunked, start, count), rows(xt, start, count), w);
      }
      rec.submit();
      deepStrictEqual(await readF32(backend, chunked), await readF32(backend, whole));
    },
    true,
  );
}

/**
 * A q8_0 weight (K, K) whose row n is the unit vector e_n with scale 1: y = x · wᵀ is then each
 * activation's quantized value xq · dx, exactly (one integer product per output, one term).
 */
function unitWeight(k: number): Uint32Array {
  const pairWords = 17;
  const words = new Uint32Array(k * (k / 64) * pairWords);
  for (let n = 0; n < k; n++) {
    const row = n * (k / 64) * pairWords;
    for (let pair = 0; pair < k / 64; pair++) words[row + pair * pairWords] = 0x3c003c00;
    const r = n % 64;
    words[row + Math.floor(n / 64) * pairWords + 1 + 8 * Math.floor(r / 32) + (r % 32 >> 2)] = 1 <<
      (8 * (r % 4));
  }
  return words;
}

backendTest(
  "the integer GEMMs and GEMVs quantize activations exactly as the CPU does (scales, ties, zero blocks)",
  async (backend) => {
    const [m, k] = [70, 256];
    ok(integerMath(backend), `${backend.description} lacks packed_4x8_integer_dot_product`);
    const rng = new Rng(5);
    const x = new Float32Array(m * k);
    for (let block = 0; block < x.length / 32; block++) {
      const at = 32 * block;
      const kind = block % 8;
      if (kind === 0) {
        // max |x| 127 (dx 1, id 1): halves are ties, rounded to even.
        for (let i = 0; i < 32; i++) x[at + i] = rng.int(254) - 127 + (i % 3 === 0 ? 0.5 : 0);
        x[at + rng.int(32)] = rng.next() < 0.5 ? 127 : -127;
      } else if (kind === 1) {
        // All zeros but one value, or all zeros.
        if (block % 16 === 1) x[at + rng.int(32)] = rng.normal();
      } else {
        // Any scale from 2^-40 to 2^40: dx and 1/dx over many exponents and significands.
        const scale = 2 ** rng.uniform(-40, 40);
        for (let i = 0; i < 32; i++) x[at + i] = rng.normal() * scale;
      }
    }
    const y = createTensor(backend, [m, k], "f32", "y");
    const xt = uploadTensor(backend, x, [m, k], "f32", "x");
    const w = uploadTensor(backend, unitWeight(k), [k, k], "q8_0", "w");
    const rec = backend.createRecorder();
    // Rows 0..GEMV_MAX_ROWS - 1 again by the GEMV, over what the GEMM wrote: the same values.
    linear(rec, y, xt, w);
    linear(rec, rows(y, 0, GEMV_MAX_ROWS), rows(xt, 0, GEMV_MAX_ROWS), w);
    rec.submit();
    const { xq, dx } = quantizeActivations(x, k);
    const expected = Float32Array.from(xq, (q, i) => q * dx[Math.floor(i / 32)]);
    deepStrictEqual(await readF32(backend, y), expected);
  },
);

// [rows, terms, d, tableRows]: a plain gather and RVQ sums over 8 levels.
for (const [r, terms, d, tableRows] of [[5, 1, 64, 9], [37, 8, 320, 900]]) {
  backendTest(
    `embeddingSum() q8_0 matches CPU for R=${r} terms=${terms} D=${d}`,
    async (backend) => {
      const rng = new Rng(r + terms + d);
      const words = toDeviceWords("q8_0", quantizeBlocks("q8_0", rng.normals(tableRows * d)));
      const values = dequantizeDeviceWords("q8_0", words);
      const ids = Uint32Array.from(
        { length: r * terms },
        () => rng.next() < 0.2 ? NO_ROW : rng.int(tableRows),
      );
      const out = createTensor(backend, [r, d], "f32", "out");
      const rec = backend.createRecorder();
      embeddingSum(
        rec,
        out,
        uploadTensor(backend, ids, [r, terms], "u32", "ids"),
        uploadTensor(backend, words, [tableRows, d], "q8_0", "table"),
      );
      rec.submit();
      // The dequantized values are exact; only the float sums of up to 8 terms round.
      const expected = ref.embeddingSum(ids, values, r, terms, d);
      assertClose(await readF32(backend, out), expected, { atol: 1e-5, rtol: 1e-6 });
    },
  );
}
