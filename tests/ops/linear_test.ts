import { deepStrictEqual } from "node:assert";
import { linear } from "../../src/ops/linear.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import type { KernelSpec } from "../../src/backends/backend.ts";
import { backendTest, gpuTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

// [M, N, K]: decode rows (GEMV paths, M <= 4: 4-wide when K % 4 == 0), odd sizes, and the
// model's shapes. GEMM (M > 4): M and N below, at and past its 64 × 64 tile, K % 16 (its K step)
// and K % 4 (4-wide loads when 0) each zero and not.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 17, 3],
  [2, 9, 36],
  [4, 33, 1028],
  [3, 1025, 64],
  [1, 1024, 1024],
  [1, 1024, 4096],
  [5, 7, 9],
  [17, 33, 65],
  [70, 130, 100],
  [64, 1025, 256],
  [65, 67, 18],
  [130, 129, 44],
  [129, 64, 1027],
];

for (const dtype of WEIGHT_DTYPES) {
  for (const [m, n, k] of SHAPES) {
    for (const bias of [false, true]) {
      backendTest(
        `linear() matches CPU for M=${m} N=${n} K=${k} ${dtype}${bias ? " +bias" : ""}`,
        async (backend) => {
          const rng = new Rng(m * 1000 + n * 10 + k);
          const x = rng.normals(m * k);
          const w = uploadWeights(backend, rng.normals(n * k, 0.05), [n, k], dtype, "w");
          const b = bias ? uploadWeights(backend, rng.normals(n), [n], dtype, "b") : undefined;
          const xt = uploadTensor(backend, x, [m, k], "f32", "x");
          const y = createTensor(backend, [m, n], "f32", "y");
          const rec = backend.createRecorder();
          linear(rec, y, xt, w.tensor, b?.tensor);
          rec.submit();
          const expected = ref.linear(x, w.values, b?.values, m, n, k);
          assertClose(await readF32(backend, y), expected, { atol: 1e-4, rtol: 1e-4 });
        },
      );
    }
  }
}

for (const k of [12, 13]) {
  backendTest(`linear() reads and writes row views at offsets, K=${k}`, async (backend) => {
    const rng = new Rng(7 + k);
    const n = 10;
    const x = rng.normals(80 * k);
    const wv = rng.normals(n * k);
    const xt = uploadTensor(backend, x, [80, k], "f32", "x");
    const wt = uploadTensor(backend, wv, [n, k], "f32", "w");
    const y = createTensor(backend, [85, n], "f32", "y");
    // GEMV and GEMM rows; x's rows start at element 2K (4-aligned for K = 12 only).
    for (const m of [1, 3, 70]) {
      const rec = backend.createRecorder();
      rec.clear(y);
      linear(rec, rows(y, 4, m), rows(xt, 2, m), wt);
      rec.submit();
      const got = await readF32(backend, y);
      const expected = new Float64Array(85 * n);
      expected.set(ref.linear(x.subarray(2 * k, (2 + m) * k), wv, undefined, m, n, k), 4 * n);
      assertClose(got, expected, { atol: 1e-4, rtol: 1e-4 });
    }
  });
}

for (const dtype of WEIGHT_DTYPES) {
  for (const k of [100, 67]) {
    backendTest(
      `linear() GEMM rows in chunks equal the rows together bit for bit, K=${k} ${dtype}`,
      async (backend) => {
        // Each output's sum runs over K in one order whatever M is and wherever its row falls in
        // a tile. Every chunk has more than GEMV_MAX_ROWS rows (the GEMV rounds otherwise), starts
        // inside a tile or at its start, and some cross tiles; K = 67 puts rows at unaligned
        // offsets.
        const rng = new Rng(k);
        const [m, n] = [150, 70];
        const w = uploadWeights(backend, rng.normals(n * k, 0.05), [n, k], dtype, "w");
        const b = uploadWeights(backend, rng.normals(n), [n], dtype, "b");
        const xt = uploadTensor(backend, rng.normals(m * k), [m, k], "f32", "x");
        const whole = createTensor(backend, [m, n], "f32", "whole");
        const chunked = createTensor(backend, [m, n], "f32", "chunked");
        const rec = backend.createRecorder();
        linear(rec, whole, xt, w.tensor, b.tensor);
        for (const [start, count] of [[0, 5], [5, 64], [69, 7], [76, 74]]) {
          linear(rec, rows(chunked, start, count), rows(xt, start, count), w.tensor, b.tensor);
        }
        rec.submit();
        deepStrictEqual(await readF32(backend, chunked), await readF32(backend, whole));
      },
    );
  }
  for (const parts of [2, 3]) {
    backendTest(
      `linear() GEMM over ${parts} stacked weights gives each part's bits, whole or in row ` +
        `chunks, ${dtype}`,
      async (backend) => {
        // A full pass's one GEMM over the stacked Q/K/V (or gate/up) weights: each output column
        // sums over K in the order of the part's own GEMM, whatever tile it falls in (n = 70
        // puts part boundaries inside tiles), and rows in chunks give the same bits as together.
        const rng = new Rng(10 * parts);
        const [m, n, k] = [150, 70, 67];
        const values = Array.from({ length: parts }, () => rng.normals(n * k, 0.05));
        const stackedValues = new Float32Array(parts * n * k);
        values.forEach((v, i) => stackedValues.set(v, i * n * k));
        const stacked = uploadWeights(backend, stackedValues, [parts * n, k], dtype, "stacked");
        const xt = uploadTensor(backend, rng.normals(m * k), [m, k], "f32", "x");
        const apart = values.map((v, i) => ({
          w: uploadWeights(backend, v, [n, k], dtype, `w${i}`).tensor,
          y: createTensor(backend, [m, n], "f32", `y${i}`),
        }));
        const chunked = createTensor(backend, [m, parts * n], "f32", "chunked");
        const rec = backend.createRecorder();
        for (const { w, y } of apart) linear(rec, y, xt, w);
        for (const [start, count] of [[0, 5], [5, 64], [69, 7], [76, 74]]) {
          linear(rec, rows(chunked, start, count), rows(xt, start, count), stacked.tensor);
        }
        rec.submit();
        const got = await readF32(backend, chunked);
        for (const [i, { y }] of apart.entries()) {
          const part = Float32Array.from(
            { length: m * n },
            (_, e) => got[Math.floor(e / n) * parts * n + i * n + (e % n)],
          );
          deepStrictEqual(part, await readF32(backend, y), `part ${i}`);
        }
      },
    );
  }
  backendTest(
    `linear() GEMM gives the same bits with 4-wide and scalar loads, ${dtype}`,
    async (backend) => {
      // K % 4 == 0: x and w at offset 0 take the 4-wide loads, at offset 1 the scalar ones.
      const rng = new Rng(3);
      const [m, n, k] = [70, 66, 36];
      const x = rng.normals(m * k);
      const wValues = rng.normals(n * k, 0.05);
      const shifted = (values: Float32Array) => {
        const out = new Float32Array(values.length + 1);
        out.set(values, 1);
        return out;
      };
      const xt = uploadTensor(backend, x, [m, k], "f32", "x");
      const w = uploadWeights(backend, wValues, [n, k], dtype, "w").tensor;
      const xu = uploadTensor(backend, shifted(x), [m * k + 1], "f32", "x+1");
      const wu = uploadWeights(backend, shifted(wValues), [n * k + 1], dtype, "w+1").tensor;
      const aligned = createTensor(backend, [m, n], "f32", "aligned");
      const unaligned = createTensor(backend, [m, n], "f32", "unaligned");
      const rec = backend.createRecorder();
      linear(rec, aligned, xt, w);
      linear(
        rec,
        unaligned,
        { ...xu, shape: [m, k], offset: 1 },
        { ...wu, shape: [n, k], offset: 1 },
      );
      rec.submit();
      deepStrictEqual(await readF32(backend, unaligned), await readF32(backend, aligned));
    },
  );
}

for (const [m, n, k] of [[1, 13, 12], [1, 20, 30], [80, 70, 33]]) {
  backendTest(`linear() accumulates into y for M=${m} N=${n} K=${k}`, async (backend) => {
    const rng = new Rng(m + n + k);
    const x = rng.normals(m * k);
    const w = rng.normals(n * k);
    const b = rng.normals(n);
    const y0 = rng.normals(m * n);
    const y = uploadTensor(backend, y0, [m, n], "f32", "y");
    const rec = backend.createRecorder();
    linear(
      rec,
      y,
      uploadTensor(backend, x, [m, k], "f32", "x"),
      uploadTensor(backend, w, [n, k], "f32", "w"),
      uploadTensor(backend, b, [n], "f32", "b"),
      { accumulate: true },
    );
    rec.submit();
    const expected = ref.linear(x, w, b, m, n, k).map((v, i) => v + y0[i]);
    assertClose(await readF32(backend, y), expected, { atol: 1e-4, rtol: 1e-4 });
  });
}

backendTest("linear() uses the 4-wide GEMV only at 4-aligned offsets", async (backend) => {
  // Rows of K = 8 starting at row 1 of x: offset 8 is aligned; a view at element 2 is not.
  const rng = new Rng(4);
  const [n, k] = [5, 8];
  const x = rng.normals(3 * k);
  const w = rng.normals(n * k);
  const xt = uploadTensor(backend, x, [3, k], "f32", "x");
  const wt = uploadTensor(backend, w, [n, k], "f32", "w");
  for (const offset of [8, 2]) {
    const y = createTensor(backend, [1, n], "f32", "y");
    const rec = backend.createRecorder();
    linear(rec, y, { ...xt, shape: [1, k], offset }, wt);
    rec.submit();
    const expected = ref.linear(x.subarray(offset, offset + k), w, undefined, 1, n, k);
    assertClose(await readF32(backend, y), expected, { atol: 1e-5 });
  }
});

gpuTest(
  "the float GEMMs' other tile shapes (overrides WX, WY) give the default's bits",
  async (gpu) => {
    // linear() runs 8 × 8 threads; 16 × 8 and 8 × 16 are the other shapes within 16 KiB of
    // workgroup memory, for devices that want them.
    const rng = new Rng(9);
    const [m, n] = [150, 140];
    for (const dtype of WEIGHT_DTYPES) {
      for (const k of [40, 37]) {
        const x = rng.normals(m * k);
        const w = uploadWeights(gpu, rng.normals(n * k, 0.05), [n, k], dtype, "w");
        const xt = uploadTensor(gpu, x, [m, k], "f32", "x");
        const spec: KernelSpec = {
          shader: k % 4 === 0 ? "gemm_vec4" : "gemm",
          bindings: ["write", "read", "read", "read"],
          params: Array(9).fill("u32"),
        };
        const results: Float32Array[] = [];
        for (const [wx, wy] of [[8, 8], [16, 8], [8, 16]]) {
          const y = createTensor(gpu, [m, n], "f32", "y");
          const rec = gpu.createRecorder();
          rec.dispatch(
            spec,
            [y, xt, w.tensor, w.tensor],
            [m, n, k, 0, 0, 0, 0, 0, 0],
            [Math.ceil(n / (8 * wx)), Math.ceil(m / (8 * wy))],
            { weights: dtype, constants: { WX: wx, WY: wy } },
          );
          rec.submit();
          results.push(await readF32(gpu, y));
        }
        assertClose(results[0], ref.linear(x, w.values, undefined, m, n, k), {
          atol: 1e-4,
          rtol: 1e-4,
        });
        deepStrictEqual(results[1], results[0]);
        deepStrictEqual(results[2], results[0]);
      }
    }
  },
);
