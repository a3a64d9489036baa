/**
 * The CPU backend's codec kernels (wasm/conv1d.c, depthwise_conv1d.c, lstm.c, rvq.c, istft.c)
 * against the float64 oracles of tests/reference/codec.ts, on the cases, shapes and tolerances
 * of tests/ops/{conv1d,depthwise_conv1d,lstm,rvq,istft}_test.ts, plus the CPU kernels' own
 * paths (several row blocks, long K, the direct loop for very wide inputs, views at offsets),
 * with one and two threads and both weight types.
 *
 * Dispatches are recorded as the ops in src/ops/ record them: the kernel specs below are copies
 * of the ops' (unexported) ones, and the parameters are built the same way.
 */

import { type CpuBackend, createCpuBackend } from "../../src/backends/cpu/backend.ts";
import type { KernelSpec, Recorder, Tensor } from "../../src/backends/backend.ts";
import { createTensor, readF32, readU32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import {
  conv1dLength,
  type Conv1dOptions,
  convTransposeWeightLayout,
  convWeightLayout,
} from "../../src/ops/conv1d.ts";
import { grid1d } from "../../src/ops/_grid.ts";
import { istftBasis } from "../../src/ops/istft.ts";
import { transposeCodebooks } from "../../src/ops/rvq.ts";
import { f16ToF32, f32ToF16 } from "../../src/io/dtype.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";
import { deepStrictEqual } from "node:assert";

const WEIGHT_DTYPES = ["f32", "f16"] as const;
type WeightDtype = (typeof WEIGHT_DTYPES)[number];

/**
 * Registers `name` once per thread count, on a fresh backend destroyed afterwards. A timer keeps
 * the event loop alive meanwhile: the pool's workers are unref'd and `Atomics.waitAsync` does not
 * hold Deno's loop open, so without it `deno test` ends a test that awaits the workers' start or
 * a readback with "Promise resolution is still pending" (src/backends/cpu/runner.ts).
 */
function cpuTest(name: string, fn: (cpu: CpuBackend, t: Deno.TestContext) => Promise<void>): void {
  for (const threads of [1, 2]) {
    Deno.test({
      name: `${name} (${threads} thread${threads === 1 ? "" : "s"})`,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: async (t) => {
        const keep = setInterval(() => {}, 1000);
        const cpu = await createCpuBackend({ threads });
        try {
          await fn(cpu, t);
          cpu.assertHealthy();
        } finally {
          cpu.destroy();
          clearInterval(keep);
        }
      },
    });
  }
}

/**
 * Uploads `values` as `dtype` after `offset` elements of junk, returning the view and the values
 * the backend holds (f16-rounded for "f16"), which is what the oracle must use.
 */
function upload(
  cpu: CpuBackend,
  values: Float32Array,
  shape: readonly number[],
  dtype: WeightDtype,
  offset = 0,
): { tensor: Tensor; values: Float32Array } {
  const padded = new Float32Array(offset + values.length).fill(-7.5);
  padded.set(values, offset);
  const label = `data+${offset}`;
  const stored = dtype === "f16" ? f16ToF32(f32ToF16(values)) : values;
  const tensor = dtype === "f16"
    ? uploadTensor(cpu, f32ToF16(padded), [padded.length], "f16", label)
    : uploadTensor(cpu, padded, [padded.length], "f32", label);
  return { tensor: { ...tensor, shape, offset }, values: stored };
}

// --- conv1d ---------------------------------------------------------------------------------

/** src/ops/conv1d.ts's CONV1D. */
const CONV1D: KernelSpec = {
  shader: "conv1d",
  bindings: ["write", "read", "read", "read"],
  params: [
    "u32", // m
    "u32", // n
    "u32", // cin
    "u32", // taps
    "u32", // in_len
    "u32", // stride
    "i32", // dilation
    "i32", // pad_left
    "u32", // reflect_len
    "u32", // x_off
    "u32", // y_off
    "u32", // w_off
    "u32", // b_off
    "u32", // w_phase
    "u32", // out_stride
    "i32", // out_start
    "u32", // out_rows
    "u32", // flags
  ],
};

interface Geometry {
  m: number;
  inLength: number;
  stride: number;
  dilation: number;
  padLeft: number;
  reflectLength: number;
  phases: number;
  outStride: number;
  outStart: number;
  flags: number;
}

/** src/ops/conv1d.ts's `record`. */
function recordConv(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  g: Geometry,
  weights: WeightDtype,
): void {
  const cout = y.shape[1];
  const [taps, cin] = w.shape.slice(-2);
  const bias = b ?? w;
  const narrow = cout <= 4;
  const nt = narrow ? 0 : cout <= 16 ? 16 : cout <= 32 ? 32 : 64;
  const params = [
    g.m,
    cout,
    cin,
    taps,
    g.inLength,
    g.stride,
    g.dilation,
    g.padLeft,
    g.reflectLength,
    x.offset,
    y.offset,
    w.offset,
    bias.offset,
    cout * taps * cin,
    g.outStride,
    g.outStart,
    y.shape[0],
    g.flags | (b ? 4 : 0),
  ];
  const grid: [number, number, number] = narrow
    ? [...grid1d(Math.ceil(g.m / 256)), g.phases]
    : [Math.ceil(cout / nt), Math.ceil(g.m / 64), g.phases];
  rec.dispatch(CONV1D, [y, x, w, bias], params, grid, { weights, constants: { NT: nt } });
}

function convFlags(options: { elu?: boolean; accumulate?: boolean }): number {
  return (options.elu ? 1 : 0) | (options.accumulate ? 2 : 0);
}

/** src/ops/conv1d.ts's `conv1d`. */
function recordConv1d(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  o: Conv1dOptions,
  weights: WeightDtype,
): void {
  const { stride = 1, dilation = 1, padLeft = 0, padRight = 0, padMode = "zero" } = o;
  const length = x.shape[0];
  let reflectLength = 0;
  if (padMode === "reflect") {
    const maxPad = Math.max(padLeft, padRight);
    reflectLength = length <= maxPad ? maxPad + 1 : length;
  }
  recordConv(rec, y, x, w, b, {
    m: conv1dLength(length, w.shape[1], o),
    inLength: length,
    stride,
    dilation,
    padLeft,
    reflectLength,
    phases: 1,
    outStride: 1,
    outStart: 0,
    flags: convFlags(o),
  }, weights);
}

/** src/ops/conv1d.ts's `convTranspose1d`. */
function recordConvTranspose1d(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  w: Tensor,
  b: Tensor | undefined,
  o: { stride: number; trimLeft: number; elu: boolean },
  weights: WeightDtype,
): void {
  recordConv(rec, y, x, w, b, {
    m: Math.floor((y.shape[0] - 1 + o.trimLeft) / o.stride) + 1,
    inLength: x.shape[0],
    stride: 1,
    dilation: -1,
    padLeft: 0,
    reflectLength: 0,
    phases: o.stride,
    outStride: o.stride,
    outStart: -o.trimLeft,
    flags: convFlags(o),
  }, weights);
}

interface ConvCase {
  length: number;
  cin: number;
  cout: number;
  k: number;
  options: Conv1dOptions;
  /** Weight scale (default 0.3); long K takes 1/√K so that sums and their rounding stay O(1). */
  scale?: number;
}

/** EnCodec's causal padding for a conv: left k_eff − s, right the "extra" that fills the last window. */
function causal(length: number, k: number, stride = 1, dilation = 1): Conv1dOptions {
  const span = (k - 1) * dilation + 1;
  const total = span - stride;
  const frames = (length - span + total) / stride + 1;
  const extra = (Math.ceil(frames) - 1) * stride + span - total - length;
  return { stride, dilation, padLeft: total, padRight: extra, padMode: "reflect" };
}

const CONV_CASES: ConvCase[] = [
  // tests/ops/conv1d_test.ts: EnCodec's first/last convs around the short-input rule (L ≤ 6
  // pads through zeros), strided down-sampling, a dilated conv on a short input, wide outputs,
  // one output channel with ELU, Vocos's zero-padded embedding conv.
  ...[1, 2, 6, 7, 20].map((length) => ({
    length,
    cin: 3,
    cout: 5,
    k: 7,
    options: causal(length, 7),
  })),
  { length: 9, cin: 4, cout: 6, k: 4, options: causal(9, 4, 2) },
  { length: 23, cin: 3, cout: 8, k: 10, options: causal(23, 10, 5) },
  { length: 3, cin: 2, cout: 4, k: 16, options: causal(3, 16, 8) },
  { length: 3, cin: 4, cout: 2, k: 3, options: causal(3, 3, 1, 2) },
  { length: 150, cin: 20, cout: 70, k: 3, options: { ...causal(150, 3), elu: true } },
  { length: 70, cin: 33, cout: 17, k: 1, options: {} },
  { length: 300, cin: 32, cout: 1, k: 7, options: { ...causal(300, 7), elu: true } },
  { length: 11, cin: 8, cout: 32, k: 7, options: { padLeft: 3, padRight: 3, elu: true } },
  // The CPU kernel's own paths: several row blocks per thread (dilated taps, then a window of
  // few rows), few rows split by channel, K beyond one packed panel (4096, wide and narrow), and
  // a window of one row too wide for the scratch memory (the direct loop).
  { length: 700, cin: 24, cout: 40, k: 7, options: { ...causal(700, 7, 1, 3), elu: true } },
  { length: 230, cin: 700, cout: 12, k: 3, options: causal(230, 3), scale: 1 / Math.sqrt(2100) },
  { length: 12, cin: 40, cout: 75, k: 5, options: { padLeft: 2, padRight: 2 } },
  {
    length: 9,
    cin: 1100,
    cout: 9,
    k: 4,
    options: { ...causal(9, 4, 2), elu: true },
    scale: 1 / Math.sqrt(4400),
  },
  { length: 6, cin: 2100, cout: 3, k: 2, options: causal(6, 2), scale: 1 / Math.sqrt(4200) },
  {
    length: 5,
    cin: 1200,
    cout: 3,
    k: 2,
    options: { dilation: 200, padLeft: 200, elu: true },
    scale: 1 / Math.sqrt(2400),
  },
];

for (const dtype of WEIGHT_DTYPES) {
  cpuTest(`conv1d matches the oracle (${dtype} weights)`, async (cpu, t) => {
    for (const c of CONV_CASES) {
      const o = c.options;
      const label = `L=${c.length} ${c.cin}→${c.cout} k=${c.k} s=${o.stride ?? 1} d=${
        o.dilation ?? 1
      } pad ${o.padLeft ?? 0}+${o.padRight ?? 0} ${o.padMode ?? "zero"}${o.elu ? " elu" : ""}`;

      await t.step(label, async () => {
        const rng = new Rng(c.length * 131 + c.cin * 7 + c.cout + c.k);
        const x = rng.normals(c.length * c.cin);
        const w = rng.normals(c.cout * c.cin * c.k, c.scale ?? 0.3);
        const bias = rng.normals(c.cout);
        const shape = [c.cout, c.cin, c.k] as const;
        // Views at offsets (odd ones for f16) of every input.
        const wt = upload(cpu, convWeightLayout(w, shape), [c.cout, c.k, c.cin], dtype, 3);
        const bt = upload(cpu, bias, [c.cout], dtype, 5);
        const xt = upload(cpu, x, [c.length, c.cin], "f32", 7).tensor;
        const outLength = conv1dLength(c.length, c.k, o);
        const y = createTensor(cpu, [outLength, c.cout], "f32", "y");
        const rec = cpu.createRecorder();
        recordConv1d(rec, y, xt, wt.tensor, bt.tensor, o, dtype);
        rec.submit();
        // The oracle sees the weights as the backend holds them (f16-rounded for f16).
        const back = new Float32Array(w.length);
        for (let i = 0; i < c.cout; i++) {
          for (let j = 0; j < c.k; j++) {
            for (let ci = 0; ci < c.cin; ci++) {
              back[(i * c.cin + ci) * c.k + j] = wt.values[(i * c.k + j) * c.cin + ci];
            }
          }
        }
        const expected = ref.conv1d(x, c.length, back, bt.values, shape, o);
        assertClose(await readF32(cpu, y), expected.y, { atol: 1e-5, rtol: 1e-5, label });
      });
    }
  });
}

cpuTest("conv1d accumulates into a row view of the output", async (cpu, t) => {
  // 4 channels (tests/ops/conv1d_test.ts's), and 11: a full 8-channel panel and a tail.
  for (const cout of [4, 11]) {
    await t.step(`${cout} channels`, async () => {
      const rng = new Rng(5);
      const [length, cin, k] = [12, 3, 3];
      const x = rng.normals(length * cin);
      const w = rng.normals(cout * cin * k);
      const shape = [cout, cin, k] as const;
      const before = rng.normals(16 * cout);
      const y = uploadTensor(cpu, before, [16, cout], "f32", "y");
      const rec = cpu.createRecorder();
      const options = { ...causal(length, k), elu: true, accumulate: true };
      recordConv1d(
        rec,
        rows(y, 2, length),
        uploadTensor(cpu, x, [length, cin], "f32", "x"),
        uploadTensor(cpu, convWeightLayout(w, shape), [cout, k, cin], "f32", "w"),
        undefined,
        options,
        "f32",
      );
      rec.submit();
      const conv = ref.conv1d(x, length, w, undefined, shape, options).y;
      const expected = Float64Array.from(before);
      for (let i = 0; i < conv.length; i++) expected[2 * cout + i] += conv[i];
      assertClose(await readF32(cpu, y), expected, { atol: 1e-5, rtol: 1e-5 });
    });
  }
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
  // tests/ops/conv1d_test.ts: EnCodec's causal upsampling (k = 2s) at small lengths, a kernel
  // that is not a multiple of the stride, trims at both ends, one output channel.
  { length: 1, cin: 6, cout: 3, stride: 8, k: 16, trimLeft: 0 },
  { length: 7, cin: 5, cout: 4, stride: 5, k: 10, trimLeft: 0 },
  { length: 20, cin: 8, cout: 20, stride: 2, k: 4, trimLeft: 0 },
  { length: 3, cin: 4, cout: 70, stride: 4, k: 8, trimLeft: 0 },
  { length: 6, cin: 3, cout: 2, stride: 2, k: 5, trimLeft: 1 },
  { length: 300, cin: 5, cout: 1, stride: 2, k: 4, trimLeft: 0 },
  { length: 4, cin: 2, cout: 3, stride: 3, k: 6, trimLeft: 1 },
  // Several row blocks of one window shared by the phases.
  { length: 400, cin: 300, cout: 20, stride: 4, k: 8, trimLeft: 2 },
];

for (const dtype of WEIGHT_DTYPES) {
  cpuTest(`convTranspose1d matches the oracle (${dtype} weights)`, async (cpu, t) => {
    for (const c of TRANSPOSE_CASES) {
      for (const act of [false, true]) {
        const label = `L=${c.length} ${c.cin}→${c.cout} k=${c.k} s=${c.stride} trim ${c.trimLeft}${
          act ? " elu" : ""
        }`;
        console.log(label);
        await t.step(label, async () => {
          const rng = new Rng(c.length * 17 + c.k * 3 + c.cout + (act ? 1 : 0));
          const x = rng.normals(c.length * c.cin);
          const w = rng.normals(c.cin * c.cout * c.k, 0.3);
          const bias = rng.normals(c.cout);
          const shape = [c.cin, c.cout, c.k] as const;
          const taps = Math.ceil(c.k / c.stride);
          const layout = convTransposeWeightLayout(w, shape, c.stride);
          const wt = upload(cpu, layout, [c.stride, c.cout, taps, c.cin], dtype, 1);
          const bt = upload(cpu, bias, [c.cout], dtype, 2);
          const xt = upload(cpu, x, [c.length, c.cin], "f32", 9).tensor;
          const outLength = c.length * c.stride;
          const y = createTensor(cpu, [outLength, c.cout], "f32", "y");
          const rec = cpu.createRecorder();
          const options = { stride: c.stride, trimLeft: c.trimLeft, elu: act };
          recordConvTranspose1d(rec, y, xt, wt.tensor, bt.tensor, options, dtype);
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
          assertClose(await readF32(cpu, y), expected, { atol: 1e-5, rtol: 1e-5, label });
        });
      }
    }
  });
}

// --- depthwise_conv1d -----------------------------------------------------------------------

/** src/ops/depthwise_conv1d.ts's DEPTHWISE_CONV1D. */
const DEPTHWISE_CONV1D: KernelSpec = {
  shader: "depthwise_conv1d",
  bindings: ["write", "read", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};

// [length, channels, taps]: tests/ops/depthwise_conv1d_test.ts's, then channels in several
// blocks with vector tails (65537 taps: 3 channels a block), and taps too many to transpose
// into the scratch memory.
const DEPTHWISE_CASES: [number, number, number][] = [
  [1, 32, 7],
  [2, 5, 7],
  [40, 384, 7],
  [4, 5, 65537],
  [3, 2, 262145],
];

for (const dtype of WEIGHT_DTYPES) {
  cpuTest(`depthwise_conv1d matches the oracle (${dtype} weights)`, async (cpu, t) => {
    for (const [len, ch, taps] of DEPTHWISE_CASES) {
      await t.step(`L=${len} C=${ch} k=${taps}`, async () => {
        const rng = new Rng(len * ch);
        const x = rng.normals(len * ch);
        const w = upload(cpu, rng.normals(ch * taps), [ch, taps], dtype);
        const b = upload(cpu, rng.normals(ch), [ch], dtype);
        // x and y are views at offsets; the op takes w and b at element 0.
        const xt = upload(cpu, x, [len, ch], "f32", 6).tensor;
        const y = rows(createTensor(cpu, [len + 2, ch], "f32", "y"), 1, len);
        const rec = cpu.createRecorder();
        const params = [len, ch, taps, (taps - 1) / 2, xt.offset, y.offset];
        const grid = grid1d(Math.ceil((len * ch) / 256));
        rec.dispatch(DEPTHWISE_CONV1D, [y, xt, w.tensor, b.tensor], params, grid, {
          weights: dtype,
        });
        rec.submit();
        const expected = ref.depthwiseConv1d(x, len, ch, w.values, b.values, taps);
        const got = await readF32(cpu, { ...y, shape: [(len + 2) * ch], offset: 0 });
        assertClose(got.subarray(ch, (len + 1) * ch), expected, { atol: 1e-5, rtol: 1e-5 });
        assertClose(got.subarray(0, ch), new Float32Array(ch), { atol: 0, label: "row before" });
      });
    }
  });
}

// --- lstm_step ------------------------------------------------------------------------------

/** src/ops/lstm.ts's LSTM_STEP. */
const LSTM_STEP: KernelSpec = {
  shader: "lstm_step",
  bindings: ["write", "write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};

// [steps, input size, hidden]: tests/ops/lstm_test.ts's (EnCodec-tiny's 64, a hidden size that
// is not a multiple of 8, one step, the full model's 512). Weights scale as 3/√fan-in.
const LSTM_SHAPES: [number, number, number][] = [[9, 64, 64], [5, 12, 13], [1, 7, 8], [
  3,
  512,
  512,
]];

for (const dtype of WEIGHT_DTYPES) {
  cpuTest(`lstm_step matches the oracle (${dtype} weights)`, async (cpu, t) => {
    for (const [steps, input, hidden] of LSTM_SHAPES) {
      await t.step(`T=${steps} In=${input} H=${hidden}`, async () => {
        const rng = new Rng(steps * 100 + hidden);
        const x = rng.normals(steps * input);
        const wih = rng.normals(4 * hidden * input, 3 / Math.sqrt(input));
        const whh = upload(
          cpu,
          rng.normals(4 * hidden * hidden, 3 / Math.sqrt(hidden)),
          [4 * hidden, hidden],
          dtype,
          3,
        );
        const bih = rng.normals(4 * hidden, 0.5);
        const bhh = rng.normals(4 * hidden, 0.5);
        const h0 = rng.normals(hidden);
        const c0 = rng.normals(hidden);
        const bias = bih.map((v, i) => v + bhh[i]);
        // The input projection is a 1×1 convolution computed in f32; the states are views.
        const gx = rows(createTensor(cpu, [steps + 1, 4 * hidden], "f32", "gx"), 1, steps);
        const hs = rows(createTensor(cpu, [steps + 3, hidden], "f32", "hs"), 2, steps + 1);
        const c = upload(cpu, c0, [hidden], "f32", 5).tensor;
        const rec = cpu.createRecorder();
        recordConv1d(
          rec,
          gx,
          uploadTensor(cpu, x, [steps, input], "f32", "x"),
          uploadTensor(cpu, wih, [4 * hidden, 1, input], "f32", "wih"),
          uploadTensor(cpu, bias, [4 * hidden], "f32", "bias"),
          {},
          "f32",
        );
        rec.submit();
        cpu.write(rows(hs, 0, 1), h0);
        for (let step = 0; step < steps; step++) {
          const params = [hidden, step, hs.offset, c.offset, gx.offset, whh.tensor.offset];
          rec.dispatch(LSTM_STEP, [hs, c, gx, whh.tensor], params, [Math.ceil(hidden / 8)], {
            weights: dtype,
          });
        }
        rec.submit();
        const state = { h: [Float64Array.from(h0)], c: [Float64Array.from(c0)] };
        const layer = { wih, whh: whh.values, bih, bhh };
        const expected = ref.lstm(x, steps, input, hidden, [layer], state);
        const got = await readF32(cpu, hs);
        // f32 rounding of the gate dot products grows as √K (K = input + hidden terms).
        const tol = 2e-6 * Math.max(1, Math.sqrt((input + hidden) / 128));
        assertClose(got.subarray(hidden), expected, { atol: tol, rtol: tol });
        assertClose(await readF32(cpu, c), state.c[0], { atol: tol, rtol: tol });
      });
    }
  });
}

// --- rvq_encode -----------------------------------------------------------------------------

/** src/ops/rvq.ts's RVQ_ENCODE. */
const RVQ_ENCODE: KernelSpec = {
  shader: "rvq_encode",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"],
};

/** src/ops/rvq.ts's `rvqEncode`: codes (nq, columns) from column `column`. */
function recordRvq(
  rec: Recorder,
  codes: Tensor,
  x: Tensor,
  codebooks: Tensor,
  column = 0,
): void {
  const [frames, d] = x.shape;
  const [nq, columns] = codes.shape;
  const params = [frames, d, codebooks.shape[2], nq, x.offset, codes.offset, columns, column];
  rec.dispatch(RVQ_ENCODE, [codes, x, codebooks], params, [frames]);
}

// [frames, d, bins, nq]: tests/ops/rvq_test.ts's, then bins that leave a tail after the
// 8-codeword vectors (a long and a short codebook), and one frame.
const RVQ_CASES: [number, number, number, number][] = [
  [7, 8, 1024, 4],
  [10, 33, 1021, 3],
  [10, 5, 13, 3],
  [1, 128, 64, 8],
];

cpuTest("rvq_encode picks the nearest codewords of every codebook in turn", async (cpu, t) => {
  for (const [frames, d, bins, nq] of RVQ_CASES) {
    await t.step(`${frames} frames, d=${d}, ${bins} bins, ${nq} codebooks`, async () => {
      const rng = new Rng(3 + d);
      const codebooks = rng.normals(nq * bins * d);
      const x = rng.normals(frames * d, 1.5);
      // A view of the code matrix (after a row of junk) and of the frames.
      const all = uploadTensor(
        cpu,
        new Uint32Array((nq + 1) * (frames + 3)).fill(77),
        [nq + 1, frames + 3],
        "u32",
        "codes",
      );
      const codes = rows(all, 1, nq);
      const rec = cpu.createRecorder();
      const transposed = transposeCodebooks(codebooks, bins, d);
      recordRvq(
        rec,
        codes,
        upload(cpu, x, [frames, d], "f32", 11).tensor,
        uploadTensor(cpu, transposed, [nq, d, bins], "f32", "cb"),
        2,
      );
      rec.submit();
      const got = await readU32(cpu, all);
      const expected = ref.rvqEncode(x, frames, d, codebooks, bins, nq);
      const width = frames + 3;
      for (let q = 0; q < nq; q++) {
        const row = Array.from(got.subarray((q + 1) * width + 2, (q + 1) * width + 2 + frames));
        deepStrictEqual(row, Array.from(expected.subarray(q * frames, (q + 1) * frames)));
      }
      const untouched = [...got.subarray(0, width)];
      for (let q = 1; q <= nq; q++) {
        untouched.push(got[q * width], got[q * width + 1], got[(q + 1) * width - 1]);
      }
      deepStrictEqual(untouched, new Array(untouched.length).fill(77));
    });
  }
});

cpuTest(
  "rvq_encode breaks exact ties toward the lowest index, as torch's argmax does",
  async (cpu, t) => {
    // [bins, identical nearest codewords, the expected code]: tests/ops/rvq_test.ts's, then
    // ties inside one 8-codeword vector, and between a vector and the scalar tail.
    const CASES: [number, number[], number][] = [
      [1000, [900, 300, 5], 5],
      [1000, [14, 13, 10], 10],
      [1021, [1018, 1013], 1013],
    ];
    for (const [bins, tied, code] of CASES) {
      await t.step(`${bins} bins, codewords ${tied}`, async () => {
        const d = 130;
        const codebooks = new Float32Array(bins * d).fill(10);
        for (const j of tied) codebooks.fill(0.5, j * d, (j + 1) * d);
        // Five identical frames: blocks of several frames and a single one.
        const x = new Float32Array(5 * d).fill(0.25);
        const codes = createTensor(cpu, [1, 5], "u32", "codes");
        const rec = cpu.createRecorder();
        recordRvq(
          rec,
          codes,
          uploadTensor(cpu, x, [5, d], "f32", "x"),
          uploadTensor(cpu, transposeCodebooks(codebooks, bins, d), [1, d, bins], "f32", "cb"),
        );
        rec.submit();
        deepStrictEqual(Array.from(await readU32(cpu, codes)), new Array(5).fill(code));
      });
    }
  },
);

// --- istft ----------------------------------------------------------------------------------

/** src/ops/istft.ts's SPECTRUM and OVERLAP_ADD. */
const SPECTRUM: KernelSpec = {
  shader: "istft_spectrum",
  bindings: ["write"],
  params: ["u32", "u32", "u32"],
};

const OVERLAP_ADD: KernelSpec = {
  shader: "istft_overlap_add",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"],
};

/** src/ops/linear.ts's kernels (its GEMV, GEMV_VEC4 and GEMM) and choice between them. */
const LINEAR_PARAMS = ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"] as const;
const LINEAR_BINDINGS = ["write", "read", "read", "read"] as const;

function recordLinear(rec: Recorder, y: Tensor, x: Tensor, w: Tensor): void {
  const [n, k] = w.shape;
  const m = x.shape[0];
  const params = [m, n, k, x.offset, y.offset, w.offset, w.offset, 0, 0];
  const vec4 = k % 4 === 0 && x.offset % 4 === 0 && w.offset % 4 === 0;
  const shader = m > 4 ? "gemm" : vec4 ? "gemv_vec4" : "gemv";
  const spec: KernelSpec = { shader, bindings: LINEAR_BINDINGS, params: LINEAR_PARAMS };
  const grid: [number, number] = m > 4
    ? [Math.ceil(n / 64), Math.ceil(m / 64)]
    : [Math.ceil(n / (vec4 ? 8 : 4)), m];
  rec.dispatch(spec, [y, x, w, w], params, grid, { weights: "f32" });
}

function recordSpectrum(rec: Recorder, x: Tensor): void {
  const [frames, width] = x.shape;
  const nb = width / 2;
  rec.dispatch(SPECTRUM, [x], [frames, nb, x.offset], grid1d(Math.ceil((frames * nb) / 256)));
}

/** src/ops/istft.ts's `istftOverlapAdd`. */
function recordOverlapAdd(
  rec: Recorder,
  out: Tensor,
  frames: Tensor,
  window: Tensor,
  o: { hop: number; pad: number; totalFrames: number; firstFrame?: number; firstSample?: number },
): void {
  const { firstFrame = 0, firstSample = 0 } = o;
  const count = out.shape[0];
  const params = [
    count,
    frames.shape[1],
    o.hop,
    o.pad,
    o.totalFrames,
    firstFrame,
    firstSample,
    frames.offset,
    out.offset,
  ];
  rec.dispatch(OVERLAP_ADD, [out, frames, window], params, grid1d(Math.ceil(count / 256)));
}

function hann(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
}

cpuTest(
  "istft_spectrum computes min(exp, 100)·e^{iφ} for phases far outside [−π, π]",
  async (cpu) => {
    const rng = new Rng(4);
    const [frames, nb] = [3, 641];
    const x = rng.normals(frames * 2 * nb, 3);
    for (let t = 0; t < frames; t++) {
      for (let k = 0; k < nb; k++) x[t * 2 * nb + nb + k] *= 10; // phases up to ±100 rad
    }
    x[0] = 20; // clipped magnitude
    const t = upload(cpu, x, [frames, 2 * nb], "f32", 9).tensor;
    const rec = cpu.createRecorder();
    recordSpectrum(rec, t);
    rec.submit();
    const expected = new Float64Array(x.length);
    for (let f = 0; f < frames; f++) {
      for (let k = 0; k < nb; k++) {
        const mag = Math.min(Math.exp(x[f * 2 * nb + k]), 100);
        const phase = x[f * 2 * nb + nb + k];
        expected[f * 2 * nb + k] = mag * Math.cos(phase);
        expected[f * 2 * nb + nb + k] = mag * Math.sin(phase);
      }
    }
    // Relative to the magnitude: f32 rounding of exp and of the reduced phase.
    assertClose(await readF32(cpu, t), expected, { atol: 1e-6, rtol: 2e-6 });
  },
);

cpuTest("ISTFT head (spectrum, basis GEMM, overlap-add) matches the oracle", async (cpu, t) => {
  for (const [frames, nFft, hop] of [[1, 16, 4], [6, 16, 4], [5, 1280, 320], [3, 12, 6]]) {
    await t.step(`T=${frames} n_fft=${nFft} hop=${hop}`, async () => {
      const rng = new Rng(frames * nFft);
      const nb = nFft / 2 + 1;
      const head = rng.normals(frames * 2 * nb);
      for (let i = 0; i < head.length; i++) if (i % (2 * nb) >= nb) head[i] *= 6;
      const window = hann(nFft);
      const spec = uploadTensor(cpu, head, [frames, 2 * nb], "f32", "spec");
      const basis = uploadTensor(cpu, istftBasis(window), [nFft, 2 * nb], "f32", "basis");
      const framesT = createTensor(cpu, [frames, nFft], "f32", "frames");
      const out = rows(createTensor(cpu, [frames * hop + 3], "f32", "out"), 3, frames * hop);
      const rec = cpu.createRecorder();
      recordSpectrum(rec, spec);
      recordLinear(rec, framesT, spec, basis);
      recordOverlapAdd(rec, out, framesT, uploadTensor(cpu, window, [nFft], "f32", "w"), {
        hop,
        pad: (nFft - hop) / 2,
        totalFrames: frames,
      });
      rec.submit();
      const expected = ref.istftHead(head, frames, window, hop);
      assertClose(await readF32(cpu, out), expected, { atol: 2e-6, rtol: 1e-5 });
    });
  }
});

cpuTest(
  "istft_overlap_add of a chunk of frames equals the same samples of the whole",
  async (cpu) => {
    const rng = new Rng(9);
    const [frames, nFft, hop] = [12, 16, 4];
    const pad = (nFft - hop) / 2;
    const x = rng.normals(frames * nFft);
    const window = uploadTensor(cpu, hann(nFft), [nFft], "f32", "w");
    const all = uploadTensor(cpu, x, [frames, nFft], "f32", "frames");
    const whole = createTensor(cpu, [frames * hop], "f32", "whole");
    const part = createTensor(cpu, [3 * hop], "f32", "part");
    const rec = cpu.createRecorder();
    recordOverlapAdd(rec, whole, all, window, { hop, pad, totalFrames: frames });
    // Output frames 5..7 need frames 3..9: pass rows 2..10 of the buffer as the chunk.
    recordOverlapAdd(rec, part, rows(all, 2, 9), window, {
      hop,
      pad,
      totalFrames: frames,
      firstFrame: 2,
      firstSample: 5 * hop,
    });
    rec.submit();
    const w = await readF32(cpu, whole);
    assertClose(await readF32(cpu, part), w.subarray(5 * hop, 8 * hop), { atol: 0 });
  },
);
