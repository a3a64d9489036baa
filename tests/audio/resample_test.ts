import { resample, toMono } from "../../src/audio/resample.ts";
import { OptionError } from "../../src/errors.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert";

/**
 * Band-limited interpolation written in continuous time: y[n] = Σ_i x[i] · (b/o) · sinc(π t) ·
 * cos²(π t / 12), t = (i/o − n/m) · b over |t| < 6, with o, m the gcd-reduced rates and
 * b = 0.99 · min(o, m) — what torchaudio's polyphase kernels sample.
 */
function oracle(x: Float32Array, from: number, to: number): Float64Array {
  let [a, b] = [from, to];
  while (b) [a, b] = [b, a % b];
  const o = from / a;
  const m = to / a;
  const base = 0.99 * Math.min(o, m);
  const out = new Float64Array(Math.ceil((m * x.length) / o));
  for (let n = 0; n < out.length; n++) {
    let acc = 0;
    for (let i = 0; i < x.length; i++) {
      const t = (i / o - n / m) * base;
      if (Math.abs(t) >= 6) continue;
      const sinc = t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t);
      acc += x[i] * sinc * Math.cos((Math.PI * t) / 12) ** 2 * (base / o);
    }
    out[n] = acc;
  }
  return out;
}

for (
  const [from, to] of [[44100, 24000], [16000, 24000], [48000, 24000], [8000, 24000], [
    22050,
    24000,
  ], [24000, 16000]]
) {
  Deno.test(`resample() matches band-limited interpolation from ${from} to ${to} Hz`, () => {
    const x = new Rng(from).normals(301, 0.5);
    const y = resample(x, from, to);
    strictEqual(y.length, Math.ceil((301 * to) / from));
    assertClose(y, oracle(x, from, to), { atol: 2e-6, rtol: 1e-5 });
  });
}

Deno.test("resample() keeps a tone below the new Nyquist and removes one above it", () => {
  const tone = (hz: number, rate: number, n: number) =>
    Float32Array.from({ length: n }, (_, i) => Math.sin((2 * Math.PI * hz * i) / rate));
  const kept = resample(tone(1000, 48000, 4800), 48000, 24000);
  const expected = tone(1000, 24000, 2400);
  assertClose(kept.subarray(100, 2300), expected.subarray(100, 2300), { atol: 2e-3 });
  const removed = resample(tone(15000, 48000, 4800), 48000, 24000);
  ok(Math.max(...removed.subarray(100, 2300).map(Math.abs)) < 1e-2);
});

Deno.test("resample() returns the input at equal rates and refuses bad rates", () => {
  const x = new Float32Array([1, 2]);
  strictEqual(resample(x, 24000, 24000), x);
  throws(() => resample(x, 0, 24000), OptionError);
  throws(() => resample(x, 44100.5, 24000), OptionError);
});

Deno.test("toMono() keeps channel 0 of stereo, averages three or more, then resamples", () => {
  const a = new Float32Array([1, 2, 3, 4]);
  const b = new Float32Array([3, 4, 5, 6]);
  const c = new Float32Array([5, 6, 7, 8]);
  deepStrictEqual(toMono([a, b], 24000, 24000), a);
  deepStrictEqual(Array.from(toMono([a, b, c], 24000, 24000)), [3, 4, 5, 6]);
  deepStrictEqual(toMono([a, b], 48000, 24000), resample(a, 48000, 24000));
  throws(() => toMono([a, new Float32Array(3)], 24000, 24000), OptionError);
  throws(() => toMono([], 24000, 24000), OptionError);
});
