import {
  conv1d,
  conv1dLength,
  type Conv1dOptions,
  convTranspose1d,
  convTransposeWeightLayout,
  convWeightLayout,
} from "../../src/ops/conv1d.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest, uploadWeights, WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";
import { throws } from "node:assert";
import { OptionError } from "../../src/errors.ts";

interface ConvCase {
  length: number;
  cin: number;
  cout: number;
  k: number;
  options: Conv1dOptions;
}

/** EnCodec's causal padding for a conv: left k_eff − s, right the "extra" that fills the last window. */
function causal(length: number, k: number, stride = 1, dilation = 1): Conv1dOptions {
  const span = (k - 1) * dilation + 1;
  const total = span - stride;
  const frames = (length - span + total) / stride + 1;
  const extra = (Math.ceil(frames) - 1) * stride + span - total - length;
  return { stride, dilation, padLeft: total, padRight: extra, padMode: "reflect" };
}

const CASES: ConvCase[] = [
  // EnCodec's first/last convs at lengths around the short-input rule (L ≤ 6 pads through zeros).
  ...[1, 2, 6, 7, 20].map((length) => ({
    length,
    cin: 3,
    cout: 5,
    k: 7,
    options: causal(length, 7),
  })),
  // Strided down-sampling convs, lengths not multiples of the stride (extra right reflection).
  { length: 9, cin: 4, cout: 6, k: 4, options: causal(9, 4, 2) },
  { length: 23, cin: 3, cout: 8, k: 10, options: causal(23, 10, 5) },
  { length: 3, cin: 2, cout: 4, k: 16, options: causal(3, 16, 8) },
  // Dilated residual conv on a short input; then wide outputs over several tiles.
  { length: 3, cin: 4, cout: 2, k: 3, options: causal(3, 3, 1, 2) },
  { length: 150, cin: 20, cout: 70, k: 3, options: { ...causal(150, 3), elu: true } },
  { length: 70, cin: 33, cout: 17, k: 1, options: {} },
  // One output channel (EnCodec's last decoder conv) on the narrow kernel, with ELU.
  { length: 300, cin: 32, cout: 1, k: 7, options: { ...causal(300, 7), elu: true } },
  // Vocos's embedding conv: zero padding on both sides.
  { length: 11, cin: 8, cout: 32, k: 7, options: { padLeft: 3, padRight: 3, elu: true } },
];

for (const dtype of WEIGHT_DTYPES) {
  for (const c of CASES) {
    const o = c.options;
    const label = `L=${c.length} ${c.cin}→${c.cout} k=${c.k} s=${o.stride ?? 1} d=${
      o.dilation ?? 1
    } pad ${o.padLeft ?? 0}+${o.padRight ?? 0} ${o.padMode ?? "zero"}${o.elu ? " elu" : ""}`;
    backendTest(`conv1d() matches CPU for ${label} ${dtype}`, async (backend) => {
      const rng = new Rng(c.length * 131 + c.cin * 7 + c.cout + c.k);
      const x = rng.normals(c.length * c.cin);
      const w = rng.normals(c.cout * c.cin * c.k, 0.3);
      const bias = rng.normals(c.cout);
      const shape = [c.cout, c.cin, c.k] as const;
      const wt = uploadWeights(
        backend,
        convWeightLayout(w, shape),
        [c.cout, c.k, c.cin],
        dtype,
        "w",
      );
      const bt = uploadWeights(backend, bias, [c.cout], dtype, "b");
      const outLength = conv1dLength(c.length, c.k, o);
      const y = createTensor(backend, [outLength, c.cout], "f32", "y");
      const rec = backend.createRecorder();
      conv1d(
        rec,
        y,
        uploadTensor(backend, x, [c.length, c.cin], "f32", "x"),
        wt.tensor,
        bt.tensor,
        o,
      );
      rec.submit();
      // The oracle sees the weights as the GPU holds them (f16-rounded for f16).
      const wRounded = new Float32Array(w.length);
      const stored = wt.values;
      for (let i = 0; i < c.cout; i++) {
        for (let j = 0; j < c.k; j++) {
          for (let ci = 0; ci < c.cin; ci++) {
            wRounded[(i * c.cin + ci) * c.k + j] = stored[(i * c.k + j) * c.cin + ci];
          }
        }
      }
      const expected = ref.conv1d(x, c.length, wRounded, bt.values, shape, o);
      assertClose(await readF32(backend, y), expected.y, { atol: 1e-5, rtol: 1e-5 });
    });
  }
}

backendTest("conv1d() accumulates into a row view of the output", async (backend) => {
  const rng = new Rng(5);
  const [length, cin, cout, k] = [12, 3, 4, 3];
  const x = rng.normals(length * cin);
  const w = rng.normals(cout * cin * k);
  const shape = [cout, cin, k] as const;
  const before = rng.normals(16 * cout);
  const y = uploadTensor(backend, before, [16, cout], "f32", "y");
  const rec = backend.createRecorder();
  const options = { ...causal(length, k), elu: true, accumulate: true };
  conv1d(
    rec,
    rows(y, 2, length),
    uploadTensor(backend, x, [length, cin], "f32", "x"),
    uploadTensor(backend, convWeightLayout(w, shape), [cout, k, cin], "f32", "w"),
    undefined,
    options,
  );
  rec.submit();
  const conv = ref.conv1d(x, length, w, undefined, shape, options).y;
  const expected = Float64Array.from(before);
  for (let i = 0; i < conv.length; i++) expected[2 * cout + i] += conv[i];
  assertClose(await readF32(backend, y), expected, { atol: 1e-5, rtol: 1e-5 });
});

interface TransposeCase {
  length: number;
  cin: number;
  cout: number;
  stride: number;
  k: number;
  trimLeft: number;
}

const TRANSPOSE_CASES: TransposeCase[] = [
  // EnCodec's causal upsampling (k = 2s, all trimming on the right) at small lengths.
  { length: 1, cin: 6, cout: 3, stride: 8, k: 16, trimLeft: 0 },
  { length: 7, cin: 5, cout: 4, stride: 5, k: 10, trimLeft: 0 },
  { length: 20, cin: 8, cout: 20, stride: 2, k: 4, trimLeft: 0 },
  { length: 3, cin: 4, cout: 70, stride: 4, k: 8, trimLeft: 0 },
  // A kernel that is not a multiple of the stride, and a trim split between both ends
  // (trim_right_ratio 0.5).
  { length: 6, cin: 3, cout: 2, stride: 2, k: 5, trimLeft: 1 },
  { length: 300, cin: 5, cout: 1, stride: 2, k: 4, trimLeft: 0 },
  { length: 4, cin: 2, cout: 3, stride: 3, k: 6, trimLeft: 1 },
];

for (const dtype of WEIGHT_DTYPES) {
  for (const c of TRANSPOSE_CASES) {
    for (const act of [false, true]) {
      const label = `L=${c.length} ${c.cin}→${c.cout} k=${c.k} s=${c.stride} trim ${c.trimLeft}${
        act ? " elu" : ""
      }`;
      backendTest(`convTranspose1d() matches CPU for ${label} ${dtype}`, async (backend) => {
        const rng = new Rng(c.length * 17 + c.k * 3 + c.cout + (act ? 1 : 0));
        const x = rng.normals(c.length * c.cin);
        const w = rng.normals(c.cin * c.cout * c.k, 0.3);
        const bias = rng.normals(c.cout);
        const shape = [c.cin, c.cout, c.k] as const;
        const taps = Math.ceil(c.k / c.stride);
        const layout = convTransposeWeightLayout(w, shape, c.stride);
        const wt = uploadWeights(backend, layout, [c.stride, c.cout, taps, c.cin], dtype, "w");
        const bt = uploadWeights(backend, bias, [c.cout], dtype, "b");
        const outLength = c.length * c.stride;
        const y = createTensor(backend, [outLength, c.cout], "f32", "y");
        const rec = backend.createRecorder();
        const xt = uploadTensor(backend, x, [c.length, c.cin], "f32", "x");
        convTranspose1d(rec, y, xt, wt.tensor, bt.tensor, {
          stride: c.stride,
          trimLeft: c.trimLeft,
          elu: act,
        });
        rec.submit();
        const back = new Float32Array(w.length);
        for (let r = 0; r < c.stride; r++) {
          for (let o = 0; o < c.cout; o++) {
            for (let m = 0; m < taps; m++) {
              if (r + m * c.stride >= c.k) continue;
              for (let i = 0; i < c.cin; i++) {
                back[(i * c.cout + o) * c.k + r + m * c.stride] =
                  wt.values[((r * c.cout + o) * taps + m) * c.cin + i];
              }
            }
          }
        }
        const expected = ref.convTranspose1d(x, c.length, back, bt.values, shape, c.stride, {
          left: c.trimLeft,
          length: outLength,
        }, act);
        assertClose(await readF32(backend, y), expected, { atol: 1e-5, rtol: 1e-5 });
      });
    }
  }
}

backendTest("conv1d() and convTranspose1d() refuse shapes that give no output", (backend) => {
  const rec = backend.createRecorder();
  const x = createTensor(backend, [3, 2], "f32", "x");
  const w = createTensor(backend, [4, 7, 2], "f32", "w");
  throws(
    () => conv1d(rec, createTensor(backend, [1, 4], "f32", "y"), x, w, undefined),
    OptionError,
  );
  const wt = createTensor(backend, [2, 4, 2, 2], "f32", "wt");
  const y = createTensor(backend, [9, 4], "f32", "y");
  throws(() => convTranspose1d(rec, y, x, wt, undefined, { stride: 2 }), OptionError);
});
