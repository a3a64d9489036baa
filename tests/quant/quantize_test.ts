import assert from "node:assert/strict";
import { createCpuBackend } from "../../src/backends/cpu/backend.ts";
import { f16ToF32, f32ToF16 } from "../../src/io/dtype.ts";
import { quantizeOnCpu } from "../../src/quant/cpu.ts";
import { quantizeBlocks, toDeviceWords } from "../../src/quant/device.ts";
import { dequantizeQ8_0, quantizeQ8_0 } from "../../src/quant/q8_0.ts";
import { dequantizeQ4K, quantizeQ4K, scaleMinK4 } from "../../src/quant/q4_k.ts";
import { Rng } from "../_helpers.ts";

Deno.test("Q8_0: d = amax / 127, q rounds halves away from zero, w = d · q", () => {
  const x = new Float32Array(32);
  x.set([127, -127, 0.5, -0.5, 1.5, 2.5, -2.5, 0.49, 3.7]);
  const block = quantizeQ8_0(x);
  assert.deepEqual(block.length, 34);
  assert.deepEqual(block[0] | (block[1] << 8), 0x3c00); // d = 1.0 as f16
  const q = new Int8Array(block.buffer, 2, 9);
  assert.deepEqual([...q], [127, -127, 1, -1, 2, 3, -3, 0, 4]);
  assert.deepEqual([...dequantizeQ8_0(block).subarray(0, 9)], [127, -127, 1, -1, 2, 3, -3, 0, 4]);
});

Deno.test("Q8_0: an all-zero block has d = 0 and q = 0", () => {
  const block = quantizeQ8_0(new Float32Array(64));
  assert.deepEqual([...block], new Array(68).fill(0));
});

Deno.test("Q8_0: round trip error is below half a step per block", () => {
  const rng = new Rng(1);
  const x = rng.normals(32 * 50);
  const y = dequantizeQ8_0(quantizeQ8_0(x));
  for (let b = 0; b < 50; b++) {
    const block = x.subarray(32 * b, 32 * b + 32);
    const amax = Math.max(...block.map(Math.abs));
    for (let j = 0; j < 32; j++) {
      // Half a step of d = amax / 127, plus the f16 rounding of d times |q| ≤ 127.
      const bound = amax / 254 + amax * 2 ** -11 + 1e-7;
      const err = Math.abs(y[32 * b + j] - block[j]);
      if (err > bound) throw new Error(`block ${b} value ${j}: error ${err} > ${bound}`);
    }
  }
});

Deno.test("Q8_0: refuses a length that is not whole blocks", () => {
  assert.throws(() => quantizeQ8_0(new Float32Array(33)), /multiple of 32/);
});

/** A super-block whose every sub-block is 16 values 0, 0.5, …, 7.5, twice, shifted by `offset`. */
function steps(offset: number): Float32Array {
  return Float32Array.from({ length: 256 }, (_, i) => (i % 16) * 0.5 + offset);
}

Deno.test("Q4_K: exact levels give scale 0.5 / 63 in f16 and sub-block codes 63", () => {
  // Each sub-block fits scale 0.5 and min 0 with no error, so the search keeps them; the
  // super-block scale d = f16(0.5 / 63) = 1.015625 · 2^-7 (bits 0x2010), every 6-bit scale 63,
  // every min 0, and requantizing against d · 63 = 0.4998779296875 gives the same levels.
  const block = quantizeQ4K(steps(0));
  assert.deepEqual(block.length, 144);
  assert.deepEqual(block[0] | (block[1] << 8), 0x2010);
  assert.deepEqual(block[2] | (block[3] << 8), 0);
  assert.deepEqual([...block.subarray(4, 16)], [255, 255, 255, 255, 0, 0, 0, 0, 15, 15, 15, 15]);
  for (let j = 0; j < 8; j++) assert.deepEqual(scaleMinK4(block.subarray(4, 16), j), [63, 0]);
  for (let l = 0; l < 128; l++) assert.deepEqual(block[16 + l], (l % 16) * 17, `qs[${l}]`);
  const w = dequantizeQ4K(block);
  for (let i = 0; i < 256; i++) assert.deepEqual(w[i], (i % 16) * 0.4998779296875);
});

Deno.test("Q4_K: a negative minimum is coded in dmin and the 6-bit mins", () => {
  // Values -2 … 5.5: min -2 (coded 63 · f16(2 / 63) = 63 · 0.03173828125), scale as above.
  const block = quantizeQ4K(steps(-2));
  assert.deepEqual(block[0] | (block[1] << 8), 0x2010);
  assert.deepEqual(block[2] | (block[3] << 8), 0x2810);
  for (let j = 0; j < 8; j++) assert.deepEqual(scaleMinK4(block.subarray(4, 16), j), [63, 63]);
  const w = dequantizeQ4K(block);
  assert.deepEqual(w[0], -1.99951171875);
  assert.deepEqual(w[15], 15 * 0.4998779296875 - 1.99951171875);
  assert.deepEqual(w[47], w[15]);
});

Deno.test("Q4_K: element order is llama.cpp's (low nibbles, then high nibbles, per 64)", () => {
  const x = new Float32Array(256);
  x[40] = 1; // chunk 0, high nibble of qs[8]
  x[200] = 1; // chunk 3, low nibble of qs[96 + 8]
  const block = quantizeQ4K(x);
  const qs = block.subarray(16);
  assert.deepEqual(qs[8] >> 4, 15);
  assert.deepEqual(qs[104] & 15, 15);
  const w = dequantizeQ4K(block);
  assert.deepEqual(w.findIndex((v) => v > 0.5), 40);
  assert.deepEqual(w.findLastIndex((v) => v > 0.5), 200);
});

Deno.test("Q4_K: round trip of normals keeps about 4 bits", () => {
  const rng = new Rng(3);
  const x = rng.normals(256 * 40, 0.05);
  const y = dequantizeQ4K(quantizeQ4K(x));
  let err = 0;
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    err += (y[i] - x[i]) ** 2;
    sum += x[i] ** 2;
  }
  const rel = Math.sqrt(err / sum);
  if (!(rel < 0.09)) throw new Error(`relative RMS error ${rel}`);
});

Deno.test("Q4_K: an all-zero super-block dequantizes to zeros", () => {
  const block = quantizeQ4K(new Float32Array(256));
  assert.deepEqual([...dequantizeQ4K(block)], new Array(256).fill(0));
});

/**
 * Super-blocks of awkward values, 256 each: zeros, constants of either sign, steps that land on
 * rounding ties, a lone outlier, values near the f16 range's ends (d subnormal, d near 65504 /
 * 63), sub-blocks of mixed scales and signs, and plain normals.
 */
function awkwardValues(rng: Rng): Float32Array {
  const blocks: ((i: number) => number)[] = [
    () => 0,
    () => 0.75,
    () => -0.3,
    (i) => (i % 16) * 0.5,
    (i) => (i % 16) * 0.5 - 2,
    (i) => (i % 32) / 127 - 0.5,
    (i) => i === 77 ? 40 : rng.normal() * 0.01,
    () => rng.normal() * 1e-6,
    () => rng.normal() * 2e-9,
    () => rng.uniform(-60000, 60000),
    (i) => (i >> 5) % 2 === 0 ? rng.normal() * 3 : rng.normal() * 0.001,
    (i) => (i >> 5) % 3 === 0 ? -Math.abs(rng.normal()) : (i >> 5) % 3 === 1 ? 0.25 : rng.normal(),
  ];
  const out = new Float32Array(256 * (blocks.length + 20));
  blocks.forEach((fill, b) => {
    for (let i = 0; i < 256; i++) out[256 * b + i] = fill(i);
  });
  for (let i = 256 * blocks.length; i < out.length; i++) out[i] = rng.normal() * 0.05;
  return out;
}

for (const relaxedSimd of [true, false]) {
  Deno.test({
    name: `the CPU backend's C quantizers give the reference's bytes (${
      relaxedSimd ? "relaxed SIMD" : "SIMD128"
    } build, f16 and f32 values)`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const cpu = await createCpuBackend({ threads: 2, relaxedSimd });
      try {
        const values = awkwardValues(new Rng(21));
        const halves = f32ToF16(values);
        for (const layout of ["q8_0", "q4_k"] as const) {
          for (const [source, exact] of [[values, values], [halves, f16ToF32(halves)]] as const) {
            const k = 1024;
            const got = await quantizeOnCpu(cpu, layout, source, values.length / k, k);
            const expected = toDeviceWords(layout, quantizeBlocks(layout, exact));
            assert.deepEqual(got.length, expected.length);
            const first = got.findIndex((w, i) => w !== expected[i]);
            assert.deepEqual(first, -1, `${layout} from ${source.constructor.name}: word ${first}`);
          }
        }
      } finally {
        cpu.destroy();
      }
    },
  });
}
