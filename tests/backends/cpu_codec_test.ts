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
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import {
  conv1dLength,
  type Conv1dOptions,
  convTransposeWeightLayout,
  convWeightLayout,
} from "../../src/ops/conv1d.ts";
import { grid1d } from "../../src/gpu/recorder.ts";
import { f16ToF32, f32ToF16 } from "../../src/io/dtype.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";

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

cpuTest("conv1d accumulates into a row view of the output", async (cpu) => {
  const rng = new Rng(5);
  const [length, cin, cout, k] = [12, 3, 4, 3];
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
