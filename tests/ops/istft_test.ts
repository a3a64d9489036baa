import { istftBasis, istftOverlapAdd, istftSpectrum } from "../../src/ops/istft.ts";
import { linear } from "../../src/ops/linear.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";

function hann(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
}

backendTest(
  "istftSpectrum() computes min(exp, 100)·e^{iφ} for phases far outside [−π, π]",
  async (backend) => {
    const rng = new Rng(4);
    const [frames, nb] = [3, 641];
    const x = rng.normals(frames * 2 * nb, 3);
    for (let t = 0; t < frames; t++) {
      for (let k = 0; k < nb; k++) x[t * 2 * nb + nb + k] *= 10; // phases up to ±100 rad
    }
    x[0] = 20; // clipped magnitude
    const t = uploadTensor(backend, x, [frames, 2 * nb], "f32", "x");
    const rec = backend.createRecorder();
    istftSpectrum(rec, t);
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
    assertClose(await readF32(backend, t), expected, { atol: 1e-6, rtol: 2e-6 });
  },
);

for (const [frames, nFft, hop] of [[1, 16, 4], [6, 16, 4], [5, 1280, 320], [3, 12, 6]]) {
  backendTest(
    `ISTFT head (spectrum, basis GEMM, overlap-add) matches CPU for T=${frames} n_fft=${nFft} hop=${hop}`,
    async (backend) => {
      const rng = new Rng(frames * nFft);
      const nb = nFft / 2 + 1;
      const head = rng.normals(frames * 2 * nb);
      for (let i = 0; i < head.length; i++) if (i % (2 * nb) >= nb) head[i] *= 6;
      const window = hann(nFft);
      const spec = uploadTensor(backend, head, [frames, 2 * nb], "f32", "spec");
      const basis = uploadTensor(backend, istftBasis(window), [nFft, 2 * nb], "f32", "basis");
      const framesT = createTensor(backend, [frames, nFft], "f32", "frames");
      const out = createTensor(backend, [frames * hop], "f32", "out");
      const rec = backend.createRecorder();
      istftSpectrum(rec, spec);
      linear(rec, framesT, spec, basis);
      istftOverlapAdd(rec, out, framesT, uploadTensor(backend, window, [nFft], "f32", "w"), {
        hop,
        pad: (nFft - hop) / 2,
        totalFrames: frames,
      });
      rec.submit();
      const expected = ref.istftHead(head, frames, window, hop);
      assertClose(await readF32(backend, out), expected, { atol: 2e-6, rtol: 1e-5 });
    },
  );
}

backendTest(
  "istftOverlapAdd() of a chunk of frames equals the same samples of the whole",
  async (backend) => {
    const rng = new Rng(9);
    const [frames, nFft, hop] = [12, 16, 4];
    const pad = (nFft - hop) / 2;
    const x = rng.normals(frames * nFft);
    const window = uploadTensor(backend, hann(nFft), [nFft], "f32", "w");
    const all = uploadTensor(backend, x, [frames, nFft], "f32", "frames");
    const whole = createTensor(backend, [frames * hop], "f32", "whole");
    const part = createTensor(backend, [3 * hop], "f32", "part");
    const rec = backend.createRecorder();
    istftOverlapAdd(rec, whole, all, window, { hop, pad, totalFrames: frames });
    // Output frames 5..7 need frames 3..9: pass rows 2..10 of the buffer as the chunk.
    istftOverlapAdd(rec, part, rows(all, 2, 9), window, {
      hop,
      pad,
      totalFrames: frames,
      firstFrame: 2,
      firstSample: 5 * hop,
    });
    rec.submit();
    const w = await readF32(backend, whole);
    assertClose(await readF32(backend, part), w.subarray(5 * hop, 8 * hop), { atol: 0 });
  },
);
