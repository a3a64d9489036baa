import assert from "node:assert/strict";
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
