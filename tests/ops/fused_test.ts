import { gateUpGelu, normLinear, qkvRope } from "../../src/ops/fused.ts";
import { createRopeTable } from "../../src/ops/rope.ts";
import { Recorder } from "../../src/gpu/recorder.ts";
import { createTensor, uploadTensor } from "../../src/gpu/buffers.ts";
import { readF32 } from "../../src/gpu/readback.ts";
import { gpuTest, uploadWeights, WEIGHT_DTYPES } from "../_gpu.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { gelu } from "../reference/erf.ts";
import * as ref from "../reference/ops.ts";

const EPS = 1e-6;

for (const dtype of WEIGHT_DTYPES) {
  for (const [m, n, k] of [[1, 1025, 1024], [3, 37, 32], [1, 11, 8]]) {
    gpuTest(
      `normLinear() equals rmsNorm then linear for M=${m} N=${n} K=${k} ${dtype}`,
      async (gpu) => {
        const rng = new Rng(m + n + k);
        const x = rng.normals(m * k, 2);
        const nw = uploadWeights(gpu, rng.normals(k), [k], dtype, "nw");
        const w = uploadWeights(gpu, rng.normals(n * k, 0.05), [n, k], dtype, "w");
        const b = uploadWeights(gpu, rng.normals(n), [n], dtype, "b");
        const y0 = rng.normals(m * n);
        const y = uploadTensor(gpu, y0, [m, n], "f32", "y");
        const rec = new Recorder(gpu);
        normLinear(rec, y, uploadTensor(gpu, x, [m, k], "f32", "x"), nw.tensor, w.tensor, {
          eps: EPS,
          bias: b.tensor,
          accumulate: true,
        });
        rec.submit();
        const h = ref.rmsNorm(x, nw.values, k, EPS);
        const expected = ref.linear(h, w.values, b.values, m, n, k).map((v, i) => v + y0[i]);
        assertClose(await readF32(gpu, y), expected, { atol: 1e-4, rtol: 1e-4 });
      },
    );
  }

  // [rows, d, heads]: the real model's attention, a tiny head_dim (half 4), an odd pair count.
  for (const [m, d, heads] of [[1, 1024, 16], [2, 32, 4], [1, 48, 4]]) {
    gpuTest(
      `qkvRope() equals norm, projections, RoPE and cache writes for M=${m} d=${d} heads=${heads} ${dtype}`,
      async (gpu) => {
        const rng = new Rng(m * d + heads);
        const headDim = d / heads;
        const x = rng.normals(m * d, 2);
        const nw = uploadWeights(gpu, rng.normals(d), [d], dtype, "nw");
        const wqkv = uploadWeights(
          gpu,
          rng.normals(3 * d * d, 1 / Math.sqrt(d)),
          [3 * d, d],
          dtype,
          "wqkv",
        );
        const positions = Uint32Array.from({ length: m }, (_, i) => 700 + 13 * i);
        const capacity = 9;
        const kvRow = 5;
        const q = createTensor(gpu, [m, d], "f32", "q");
        const kCache = createTensor(gpu, [capacity, d], "f32", "k");
        const vCache = createTensor(gpu, [capacity, d], "f32", "v");
        const rec = new Recorder(gpu);
        qkvRope(
          rec,
          q,
          kCache,
          vCache,
          uploadTensor(gpu, x, [m, d], "f32", "x"),
          nw.tensor,
          wqkv.tensor,
          {
            heads,
            eps: EPS,
            positions: uploadTensor(gpu, positions, [m], "u32", "pos"),
            table: createRopeTable(gpu, headDim, 10000, 800),
            kvRow,
          },
        );
        rec.submit();
        const h = ref.rmsNorm(x, nw.values, d, EPS);
        const proj = (part: number) =>
          ref.linear(h, wqkv.values.subarray(part * d * d, (part + 1) * d * d), undefined, m, d, d);
        const opts = { heads, headDim, width: d };
        const tol = { atol: 1e-4, rtol: 1e-4 };
        assertClose(await readF32(gpu, q), ref.rope(proj(0), positions, opts), {
          ...tol,
          label: "q",
        });
        const cached = (values: Float64Array) => {
          const all = new Float64Array(capacity * d);
          all.set(values, kvRow * d);
          return all;
        };
        assertClose(await readF32(gpu, kCache), cached(ref.rope(proj(1), positions, opts)), {
          ...tol,
          label: "k",
        });
        assertClose(await readF32(gpu, vCache), cached(proj(2)), { ...tol, label: "v" });
      },
    );
  }

  for (const [m, d, f] of [[1, 1024, 4096], [3, 32, 128], [1, 8, 6]]) {
    gpuTest(
      `gateUpGelu() equals norm, gate/up projections and GELU for M=${m} d=${d} F=${f} ${dtype}`,
      async (gpu) => {
        const rng = new Rng(m + d + f);
        const x = rng.normals(m * d, 2);
        const nw = uploadWeights(gpu, rng.normals(d), [d], dtype, "nw");
        const w = uploadWeights(
          gpu,
          rng.normals(2 * f * d, 1 / Math.sqrt(d)),
          [2 * f, d],
          dtype,
          "w",
        );
        const out = createTensor(gpu, [m, f], "f32", "out");
        const rec = new Recorder(gpu);
        gateUpGelu(rec, out, uploadTensor(gpu, x, [m, d], "f32", "x"), nw.tensor, w.tensor, EPS);
        rec.submit();
        const h = ref.rmsNorm(x, nw.values, d, EPS);
        const g = ref.linear(h, w.values.subarray(0, f * d), undefined, m, f, d);
        const u = ref.linear(h, w.values.subarray(f * d), undefined, m, f, d);
        const expected = g.map((v, i) => gelu(v) * u[i]);
        assertClose(await readF32(gpu, out), expected, { atol: 1e-4, rtol: 1e-4 });
      },
    );
  }
}
