import { lstmLayer } from "../../src/ops/lstm.ts";
import { conv1d } from "../../src/ops/conv1d.ts";
import {
  createTensor,
  readF32,
  rows,
  uploadTensor,
  writeTensor,
} from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";

// [steps, input size, hidden]: EnCodec-tiny's 64, a hidden size that is not a multiple of the
// 8 units a workgroup owns, one step, the full model's 512. Weights scale as 3/√fan-in.
const SHAPES: [number, number, number][] = [[9, 64, 64], [5, 12, 13], [1, 7, 8], [3, 512, 512]];

for (const dtype of WEIGHT_DTYPES) {
  for (const [steps, input, hidden] of SHAPES) {
    backendTest(
      `lstmLayer() matches CPU for T=${steps} In=${input} H=${hidden} ${dtype}`,
      async (backend) => {
        const rng = new Rng(steps * 100 + hidden);
        const x = rng.normals(steps * input);
        const wih = rng.normals(4 * hidden * input, 3 / Math.sqrt(input));
        const whh = uploadWeights(
          backend,
          rng.normals(4 * hidden * hidden, 3 / Math.sqrt(hidden)),
          [4 * hidden, hidden],
          dtype,
          "whh",
        );
        const bih = rng.normals(4 * hidden, 0.5);
        const bhh = rng.normals(4 * hidden, 0.5);
        const h0 = rng.normals(hidden);
        const c0 = rng.normals(hidden);
        const bias = bih.map((v, i) => v + bhh[i]);
        // The input projection is a 1×1 convolution computed in f32.
        const gx = createTensor(backend, [steps, 4 * hidden], "f32", "gx");
        const hs = createTensor(backend, [steps + 1, hidden], "f32", "hs");
        const rec = backend.createRecorder();
        conv1d(
          rec,
          gx,
          uploadTensor(backend, x, [steps, input], "f32", "x"),
          uploadTensor(backend, wih, [4 * hidden, 1, input], "f32", "wih"),
          uploadTensor(backend, bias, [4 * hidden], "f32", "bias"),
        );
        const c = uploadTensor(backend, c0, [hidden], "f32", "c");
        rec.submit();
        writeTensor(backend, rows(hs, 0, 1), h0);
        lstmLayer(rec, hs, c, gx, whh.tensor);
        rec.submit();
        const state = { h: [Float64Array.from(h0)], c: [Float64Array.from(c0)] };
        const layer = { wih, whh: whh.values, bih, bhh };
        const expected = ref.lstm(x, steps, input, hidden, [layer], state);
        const got = await readF32(backend, hs);
        // f32 rounding of the gate dot products grows as √K (K = input + hidden terms).
        const tol = 2e-6 * Math.max(1, Math.sqrt((input + hidden) / 128));
        assertClose(got.subarray(hidden), expected, { atol: tol, rtol: tol });
        assertClose(await readF32(backend, c), state.c[0], { atol: tol, rtol: tol });
      },
    );
  }
}
