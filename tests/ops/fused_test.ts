import { gateUpGelu, normLinear, qkvRope } from "../../src/ops/fused.ts";
import { createRopeTable } from "../../src/ops/rope.ts";
import { createTensor, readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { gelu } from "../reference/erf.ts";
import * as ref from "../reference/ops.ts";

const EPS = 1e-6;

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
        const cached = (values: Float64Array) => {
          const all = new Float64Array(capacity * d);
          all.set(values, kvRow * d);
          return all;
        };
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
