/**
 * The CPU backend's codec kernels (wasm/conv1d.c, depthwise_conv1d.c, lstm.c, rvq.c, istft.c)
 * through the ops of src/ops/, against the float64 oracles of tests/reference/codec.ts with the
 * tolerances of tests/ops/, on the CPU backends of ./_cpu.ts: a pool of 1 worker, of 2, and the
 * single-thread runner of a host without SharedArrayBuffer.
 *
 * tests/ops/{conv1d,depthwise_conv1d,lstm,rvq,istft}_test.ts already run their cases on both
 * backends (the CPU with a pool of 2) on tensors at element 0. What only this file checks, on
 * every runner (how the kernels split work changes with the thread count):
 * - conv1d: several row blocks per thread, few rows split by output channel, inner dimensions
 *   (taps · Cin) beyond one packed panel of 4096, a window too wide for the scratch memory (the
 *   direct loop), accumulation into a full 8-channel panel; the transposed conv over several row
 *   blocks of one window shared by the phases;
 * - depthwise_conv1d: channels in several blocks with vector tails, taps too many for the scratch
 *   memory;
 * - lstm_step: a hidden size with a tail after the 8-unit shares, and 512 split across threads;
 * - rvq_encode: codebooks that leave a tail after the 8-codeword vectors, one frame, exact ties
 *   inside one vector and between a vector and the tail, in blocks of frames;
 * - the ISTFT head (spectrum, basis GEMM, overlap-add) at n_fft 16 and 1280;
 * with every tensor a view at an offset into its buffer (odd ones for f16) where the op allows
 * it, and the elements around the outputs left alone.
 */

import { deepStrictEqual } from "node:assert";
import type { Backend, Tensor } from "../../src/backends/backend.ts";
import { createTensor, readF32, readU32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { f16ToF32, f32ToF16 } from "../../src/io/dtype.ts";
import {
  conv1d,
  conv1dLength,
  type Conv1dOptions,
  convTranspose1d,
  convTransposeWeightLayout,
  convWeightLayout,
} from "../../src/ops/conv1d.ts";
import { depthwiseConv1d } from "../../src/ops/depthwise_conv1d.ts";
import { istftBasis, istftOverlapAdd, istftSpectrum } from "../../src/ops/istft.ts";
import { linear } from "../../src/ops/linear.ts";
import { lstmLayer } from "../../src/ops/lstm.ts";
import { rvqEncode, transposeCodebooks } from "../../src/ops/rvq.ts";
import { WEIGHT_DTYPES } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";
import { cpuTest } from "./_cpu.ts";

type WeightDtype = (typeof WEIGHT_DTYPES)[number];

/** What weights of type `dtype` hold for `values` (f16-rounded for "f16"): the oracle's weights. */
function stored(values: Float32Array, dtype: WeightDtype): Float32Array {
  return dtype === "f16" ? f16ToF32(f32ToF16(values)) : values;
}

/** The marker in the elements around a view: they must come back unchanged. */
const JUNK = -7.5;

/** `values` as `dtype`, a view of `shape` at element `offset` of a buffer of JUNK around it. */
function uploadAt(
  backend: Backend,
  values: Float32Array,
  shape: readonly number[],
  dtype: "f32" | "f16",
  offset: number,
): Tensor {
  const padded = new Float32Array(offset + values.length + 3).fill(JUNK);
  padded.set(values, offset);
  const data = dtype === "f16" ? f32ToF16(padded) : padded;
  const t = uploadTensor(backend, data, [padded.length], dtype, `test.data+${offset}`);
  return { ...t, shape, offset };
}

/** The whole buffer of an f32 view created by {@linkcode uploadAt} or `createTensor`. */
async function readBuffer(backend: Backend, t: Tensor): Promise<Float32Array> {
  return await readF32(backend, { ...t, shape: [t.buffer.size / 4], offset: 0 });
}

/** Asserts the elements of `all` outside [from, to) are JUNK. */
function assertUntouched(all: Float32Array, from: number, to: number, label: string): void {
  const outside = [...all.subarray(0, from), ...all.subarray(to)];
  deepStrictEqual(outside, new Array(outside.length).fill(JUNK), `${label}: elements around`);
}

// --- conv1d ---------------------------------------------------------------------------------

/** EnCodec's causal padding for a conv: left k_eff − s, right the "extra" that fills the last window. */
function causal(length: number, k: number, stride = 1, dilation = 1): Conv1dOptions {
  const span = (k - 1) * dilation + 1;
  const total = span - stride;
  const frames = (length - span + total) / stride + 1;
  const extra = (Math.ceil(frames) - 1) * stride + span - total - length;
  return { stride, dilation, padLeft: total, padRight: extra, padMode: "reflect" };
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

const CONV_CASES: ConvCase[] = [
  // Several row blocks per thread (dilated taps, then a window of few rows), few rows split by
  // output channel, K beyond one packed panel (4096, wide and narrow), and a window of one row
  // too wide for the scratch memory (the direct loop).
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
  cpuTest(`conv1d() matches the oracle on the CPU kernel's paths, ${dtype}`, async (cpu, t) => {
    for (const c of CONV_CASES) {
      const o = c.options;
      const label = `L=${c.length} ${c.cin}→${c.cout} k=${c.k} s=${o.stride ?? 1} d=${
        o.dilation ?? 1
      } pad ${o.padLeft ?? 0}+${o.padRight ?? 0} ${o.padMode ?? "zero"}${o.elu ? " elu" : ""}`;
      await t.step(label, async () => {
        const rng = new Rng(c.length * 131 + c.cin * 7 + c.cout + c.k);
        const x = rng.normals(c.length * c.cin);
        const w = stored(rng.normals(c.cout * c.cin * c.k, c.scale ?? 0.3), dtype);
        const bias = stored(rng.normals(c.cout), dtype);
        const shape = [c.cout, c.cin, c.k] as const;
        const outLength = conv1dLength(c.length, c.k, o);
        const y = uploadAt(
          cpu,
          new Float32Array(outLength * c.cout),
          [outLength, c.cout],
          "f32",
          1,
        );
        const rec = cpu.createRecorder();
        conv1d(
          rec,
          y,
          uploadAt(cpu, x, [c.length, c.cin], "f32", 7),
          uploadAt(cpu, convWeightLayout(w, shape), [c.cout, c.k, c.cin], dtype, 3),
          uploadAt(cpu, bias, [c.cout], dtype, 5),
          o,
        );
        rec.submit();
        rec.destroy();
        const all = await readBuffer(cpu, y);
        const expected = ref.conv1d(x, c.length, w, bias, shape, o).y;
        const got = all.subarray(1, 1 + expected.length);
        assertClose(got, expected, { atol: 1e-5, rtol: 1e-5, label });
        assertUntouched(all, 1, 1 + expected.length, label);
      });
    }
  });
}

cpuTest("conv1d() accumulates into a row view: a full 8-channel panel and a tail", async (cpu) => {
  const rng = new Rng(5);
  const [length, cin, cout, k] = [12, 3, 11, 3];
  const x = rng.normals(length * cin);
  const w = rng.normals(cout * cin * k);
  const shape = [cout, cin, k] as const;
  const before = rng.normals(16 * cout);
  const y = uploadTensor(cpu, before, [16, cout], "f32", "y");
  const rec = cpu.createRecorder();
  const options = { ...causal(length, k), elu: true, accumulate: true };
  conv1d(
    rec,
    rows(y, 2, length),
    uploadTensor(cpu, x, [length, cin], "f32", "x"),
    uploadTensor(cpu, convWeightLayout(w, shape), [cout, k, cin], "f32", "w"),
    undefined,
    options,
  );
  rec.submit();
  rec.destroy();
  const conv = ref.conv1d(x, length, w, undefined, shape, options).y;
  const expected = Float64Array.from(before);
  for (let i = 0; i < conv.length; i++) expected[2 * cout + i] += conv[i];
  assertClose(await readF32(cpu, y), expected, { atol: 1e-5, rtol: 1e-5 });
});

for (const dtype of WEIGHT_DTYPES) {
  cpuTest(
    `convTranspose1d() matches the oracle over several row blocks of one window, ${dtype}`,
    async (cpu, t) => {
      const [length, cin, cout, stride, k, trimLeft] = [400, 300, 20, 4, 8, 2];
      for (const elu of [false, true]) {
        const label = `L=${length} ${cin}→${cout} k=${k} s=${stride} trim ${trimLeft}${
          elu ? " elu" : ""
        }`;
        await t.step(label, async () => {
          const rng = new Rng(length * 17 + k * 3 + cout + (elu ? 1 : 0));
          const x = rng.normals(length * cin);
          const w = stored(rng.normals(cin * cout * k, 0.3), dtype);
          const bias = stored(rng.normals(cout), dtype);
          const shape = [cin, cout, k] as const;
          const taps = Math.ceil(k / stride);
          const layout = convTransposeWeightLayout(w, shape, stride);
          const outLength = length * stride;
          const y = uploadAt(cpu, new Float32Array(outLength * cout), [outLength, cout], "f32", 2);
          const rec = cpu.createRecorder();
          convTranspose1d(
            rec,
            y,
            uploadAt(cpu, x, [length, cin], "f32", 9),
            uploadAt(cpu, layout, [stride, cout, taps, cin], dtype, 1),
            uploadAt(cpu, bias, [cout], dtype, 2),
            { stride, trimLeft, elu },
          );
          rec.submit();
          rec.destroy();
          const all = await readBuffer(cpu, y);
          const expected = ref.convTranspose1d(x, length, w, bias, shape, stride, {
            left: trimLeft,
            length: outLength,
          }, elu);
          const got = all.subarray(2, 2 + expected.length);
          assertClose(got, expected, { atol: 1e-5, rtol: 1e-5, label });
          assertUntouched(all, 2, 2 + expected.length, label);
        });
      }
    },
  );
}

// --- depthwise_conv1d -----------------------------------------------------------------------

// [length, channels, taps]: channels in several blocks with vector tails (65537 taps: 3 channels
// a block), and taps too many to transpose into the scratch memory.
const DEPTHWISE_CASES: [number, number, number][] = [[4, 5, 65537], [3, 2, 262145]];

for (const dtype of WEIGHT_DTYPES) {
  cpuTest(`depthwiseConv1d() matches the oracle for 65537+ taps, ${dtype}`, async (cpu, t) => {
    for (const [len, ch, taps] of DEPTHWISE_CASES) {
      const label = `L=${len} C=${ch} k=${taps}`;
      await t.step(label, async () => {
        const rng = new Rng(len * ch);
        const x = rng.normals(len * ch);
        const w = stored(rng.normals(ch * taps), dtype);
        const b = stored(rng.normals(ch), dtype);
        // x and y are views at offsets; the op takes w and b at element 0.
        const y = uploadAt(cpu, new Float32Array(len * ch), [len, ch], "f32", ch);
        const rec = cpu.createRecorder();
        depthwiseConv1d(
          rec,
          y,
          uploadAt(cpu, x, [len, ch], "f32", 6),
          uploadTensor(cpu, dtype === "f16" ? f32ToF16(w) : w, [ch, taps], dtype, "w"),
          uploadTensor(cpu, dtype === "f16" ? f32ToF16(b) : b, [ch], dtype, "b"),
        );
        rec.submit();
        rec.destroy();
        const all = await readBuffer(cpu, y);
        const expected = ref.depthwiseConv1d(x, len, ch, w, b, taps);
        assertClose(all.subarray(ch, (len + 1) * ch), expected, { atol: 1e-5, rtol: 1e-5, label });
        assertUntouched(all, ch, (len + 1) * ch, label);
      });
    }
  });
}

// --- lstm_step ------------------------------------------------------------------------------

// [steps, input size, hidden]: a hidden size that is not a multiple of the 8 units a share holds,
// and the full model's 512 (split across threads). Weights scale as 3/√fan-in.
const LSTM_SHAPES: [number, number, number][] = [[5, 12, 13], [3, 512, 512]];

for (const dtype of WEIGHT_DTYPES) {
  cpuTest(`lstmLayer() matches the oracle on state views, ${dtype}`, async (cpu, t) => {
    for (const [steps, input, hidden] of LSTM_SHAPES) {
      await t.step(`T=${steps} In=${input} H=${hidden}`, async () => {
        const rng = new Rng(steps * 100 + hidden);
        const x = rng.normals(steps * input);
        const wih = rng.normals(4 * hidden * input, 3 / Math.sqrt(input));
        const whh = stored(rng.normals(4 * hidden * hidden, 3 / Math.sqrt(hidden)), dtype);
        const bih = rng.normals(4 * hidden, 0.5);
        const bhh = rng.normals(4 * hidden, 0.5);
        const h0 = rng.normals(hidden);
        const c0 = rng.normals(hidden);
        const bias = bih.map((v, i) => v + bhh[i]);
        // The input projection is a 1×1 convolution computed in f32; the states are views.
        const gx = rows(createTensor(cpu, [steps + 1, 4 * hidden], "f32", "gx"), 1, steps);
        const hs = rows(createTensor(cpu, [steps + 3, hidden], "f32", "hs"), 2, steps + 1);
        const c = uploadAt(cpu, c0, [hidden], "f32", 5);
        const rec = cpu.createRecorder();
        conv1d(
          rec,
          gx,
          uploadTensor(cpu, x, [steps, input], "f32", "x"),
          uploadTensor(cpu, wih, [4 * hidden, 1, input], "f32", "wih"),
          uploadTensor(cpu, bias, [4 * hidden], "f32", "bias"),
        );
        rec.submit();
        cpu.write(rows(hs, 0, 1), h0);
        lstmLayer(rec, hs, c, gx, uploadAt(cpu, whh, [4 * hidden, hidden], dtype, 3));
        rec.submit();
        rec.destroy();
        const state = { h: [Float64Array.from(h0)], c: [Float64Array.from(c0)] };
        const layer = { wih, whh, bih, bhh };
        const expected = ref.lstm(x, steps, input, hidden, [layer], state);
        const got = await readF32(cpu, hs);
        // f32 rounding of the gate dot products grows as √K (K = input + hidden terms).
        const tol = 2e-6 * Math.max(1, Math.sqrt((input + hidden) / 128));
        assertClose(got.subarray(hidden), expected, { atol: tol, rtol: tol });
        const cAll = await readBuffer(cpu, c);
        assertClose(cAll.subarray(5, 5 + hidden), state.c[0], { atol: tol, rtol: tol });
        assertUntouched(cAll, 5, 5 + hidden, "c");
      });
    }
  });
}

// --- rvq_encode -----------------------------------------------------------------------------

// [frames, d, bins, nq]: bins that leave a tail after the 8-codeword vectors (a long and a short
// codebook), and one frame.
const RVQ_CASES: [number, number, number, number][] = [
  [10, 33, 1021, 3],
  [10, 5, 13, 3],
  [1, 128, 64, 8],
];

cpuTest("rvqEncode() picks the nearest codewords with tails and one frame", async (cpu, t) => {
  for (const [frames, d, bins, nq] of RVQ_CASES) {
    await t.step(`${frames} frames, d=${d}, ${bins} bins, ${nq} codebooks`, async () => {
      const rng = new Rng(3 + d);
      const codebooks = rng.normals(nq * bins * d);
      const x = rng.normals(frames * d, 1.5);
      // A view of the code matrix (after a row of junk) and of the frames.
      const width = frames + 3;
      const all = uploadTensor(
        cpu,
        new Uint32Array((nq + 1) * width).fill(77),
        [nq + 1, width],
        "u32",
        "codes",
      );
      const rec = cpu.createRecorder();
      rvqEncode(
        rec,
        rows(all, 1, nq),
        uploadAt(cpu, x, [frames, d], "f32", 11),
        uploadTensor(cpu, transposeCodebooks(codebooks, bins, d), [nq, d, bins], "f32", "cb"),
        { column: 2 },
      );
      rec.submit();
      rec.destroy();
      const got = await readU32(cpu, all);
      const expected = ref.rvqEncode(x, frames, d, codebooks, bins, nq);
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
  "rvqEncode() breaks exact ties toward the lowest index at vector boundaries",
  async (cpu, t) => {
    // [bins, identical nearest codewords, the expected code]: ties inside one 8-codeword vector,
    // and between a vector and the scalar tail.
    const CASES: [number, number[], number][] = [
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
        rvqEncode(
          rec,
          codes,
          uploadTensor(cpu, x, [5, d], "f32", "x"),
          uploadTensor(cpu, transposeCodebooks(codebooks, bins, d), [1, d, bins], "f32", "cb"),
        );
        rec.submit();
        rec.destroy();
        deepStrictEqual(Array.from(await readU32(cpu, codes)), new Array(5).fill(code));
      });
    }
  },
);

// --- istft ----------------------------------------------------------------------------------

function hann(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
}

cpuTest("ISTFT head (spectrum, basis GEMM, overlap-add) on views at offsets", async (cpu, t) => {
  for (const [frames, nFft, hop] of [[6, 16, 4], [5, 1280, 320]]) {
    const label = `T=${frames} n_fft=${nFft} hop=${hop}`;
    await t.step(label, async () => {
      const rng = new Rng(frames * nFft);
      const nb = nFft / 2 + 1;
      const head = rng.normals(frames * 2 * nb);
      for (let i = 0; i < head.length; i++) if (i % (2 * nb) >= nb) head[i] *= 6;
      const window = hann(nFft);
      const spec = uploadAt(cpu, head, [frames, 2 * nb], "f32", 9);
      const basis = uploadTensor(cpu, istftBasis(window), [nFft, 2 * nb], "f32", "basis");
      const framesT = rows(createTensor(cpu, [frames + 2, nFft], "f32", "frames"), 1, frames);
      const out = uploadAt(cpu, new Float32Array(frames * hop), [frames * hop], "f32", 3);
      const rec = cpu.createRecorder();
      istftSpectrum(rec, spec);
      linear(rec, framesT, spec, basis);
      istftOverlapAdd(rec, out, framesT, uploadTensor(cpu, window, [nFft], "f32", "w"), {
        hop,
        pad: (nFft - hop) / 2,
        totalFrames: frames,
      });
      rec.submit();
      rec.destroy();
      const all = await readBuffer(cpu, out);
      const expected = ref.istftHead(head, frames, window, hop);
      assertClose(all.subarray(3, 3 + frames * hop), expected, { atol: 2e-6, rtol: 1e-5, label });
      assertUntouched(all, 3, 3 + frames * hop, label);
      const specAll = await readBuffer(cpu, spec);
      assertUntouched(specAll, 9, 9 + head.length, `${label}: spectrum`);
    });
  }
});
