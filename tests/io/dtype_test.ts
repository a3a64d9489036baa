/**
 * Tests of the float16 / bfloat16 conversions: the portable path against the native
 * `Float16Array` on every float16 bit pattern and on random and edge float32 values, and both
 * against values computed here independently in float64.
 */

import assert from "node:assert/strict";
import * as portable from "../../src/io/_f16.ts";
import { bf16ToF32, DTYPE_SIZES, f16ToF32, f32ToF16 } from "../../src/io/dtype.ts";
import { Rng } from "../_helpers.ts";

Deno.test("the runtime has a native Float16Array to compare the portable path with", () => {
  // Deno 2.9 (the pinned version) and current browsers do; the comparisons below need it.
  assert.equal(typeof globalThis.Float16Array, "function");
});

/** Every float16 bit pattern, 0 to 0xffff. */
const ALL_F16 = Uint16Array.from({ length: 65536 }, (_, i) => i);

/** The value of a float16 bit pattern, from the IEEE 754 definition. */
function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** The float16 nearest to `x` (ties to even), found by search over the finite values. */
function f16Nearest(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  // Finite non-negative float16 values are increasing in their bit pattern 0 .. 0x7bff.
  let lo = 0;
  let hi = 0x7bff;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (f16Value(mid) <= a) lo = mid;
    else hi = mid;
  }
  const below = a - f16Value(lo);
  const above = f16Value(hi) - a;
  const h = below < above ? lo : above < below ? hi : (lo & 1 ? hi : lo);
  return sign | h;
}

/** Asserts two float16 bit arrays are equal, where a NaN only has to meet a NaN. */
function assertSameF16(actual: Uint16Array, expected: Uint16Array, inputs: Float32Array): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const bothNaN = (a & 0x7fff) > 0x7c00 && (e & 0x7fff) > 0x7c00;
    if (a !== e && !bothNaN) {
      assert.fail(
        `f32ToF16(${inputs[i]}) [${i}]: 0x${a.toString(16)}, expected 0x${e.toString(16)}`,
      );
    }
  }
}

/** Float32 inputs that probe every rounding branch. */
function edgeValues(): Float32Array {
  const values: number[] = [0, -0, Infinity, -Infinity, NaN, 65504, 65519, 65520, 65536, 1e9];
  values.push(2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -26, 1e-10, 3.4e38, 1.4e-45);
  // Each finite float16, the midpoint to the next one (a tie), and one float32 ulp either side.
  const below = new Float32Array(1);
  const bits = new Uint32Array(below.buffer);
  for (let h = 0; h < 0x7c00; h++) {
    const v = f16Value(h);
    const mid = Math.fround((v + f16Value(h + 1)) / 2);
    values.push(v, mid);
    below[0] = mid;
    bits[0] += 1;
    values.push(below[0]);
    bits[0] -= 2;
    values.push(below[0]);
  }
  const positive = Float32Array.from(values);
  return Float32Array.from([...positive, ...positive.map((v) => -v)]);
}

/** Random float32 bit patterns, NaNs included. */
function randomValues(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const bits = Uint32Array.from({ length: n }, () => rng.int(2 ** 32));
  return new Float32Array(bits.buffer);
}

Deno.test("DTYPE_SIZES gives each element size, as the matching typed array does", () => {
  const arrays = {
    F64: Float64Array,
    F32: Float32Array,
    F16: Uint16Array,
    BF16: Uint16Array,
    I64: BigInt64Array,
    I32: Int32Array,
    I16: Int16Array,
    I8: Int8Array,
    U8: Uint8Array,
    BOOL: Uint8Array,
  };
  assert.deepEqual(Object.keys(DTYPE_SIZES).sort(), Object.keys(arrays).sort());
  for (const [dtype, array] of Object.entries(arrays)) {
    assert.equal(DTYPE_SIZES[dtype as keyof typeof arrays], array.BYTES_PER_ELEMENT, dtype);
  }
});

Deno.test("portable f16ToF32 matches the IEEE definition on all 65536 patterns", () => {
  const out = portable.f16ToF32(ALL_F16);
  for (let h = 0; h < 65536; h++) {
    const expected = f16Value(h);
    if (Number.isNaN(expected)) assert.ok(Number.isNaN(out[h]), `0x${h.toString(16)}`);
    else assert.ok(Object.is(out[h], expected), `0x${h.toString(16)}: ${out[h]} vs ${expected}`);
  }
});

Deno.test({
  name: "portable f16ToF32 matches native Float16Array on all 65536 patterns",
  fn() {
    const manual = new Uint32Array(portable.f16ToF32(ALL_F16).buffer);
    const native = new Uint32Array(f16ToF32(ALL_F16).buffer);
    for (let h = 0; h < 65536; h++) {
      const nan = (h & 0x7fff) > 0x7c00;
      if (nan) assert.ok((manual[h] & 0x7fffffff) > 0x7f800000, `0x${h.toString(16)}`);
      else assert.equal(manual[h], native[h], `0x${h.toString(16)}`);
    }
  },
});

Deno.test("f16ToF32 reads a view at an offset", () => {
  const bits = new Uint16Array([0xffff, 0x3c00, 0xc000, 0x0001]).subarray(1);
  assert.deepEqual([...f16ToF32(bits)], [1, -2, 2 ** -24]);
  assert.deepEqual([...portable.f16ToF32(bits)], [1, -2, 2 ** -24]);
});

Deno.test("portable f32ToF16 round-trips every float16 value", () => {
  const values = portable.f16ToF32(ALL_F16);
  const back = portable.f32ToF16(values);
  assertSameF16(back, ALL_F16, values);
});

Deno.test("portable f32ToF16 rounds edge values like an independent float64 search", () => {
  const values = edgeValues();
  const expected = Uint16Array.from(values, f16Nearest);
  assertSameF16(portable.f32ToF16(values), expected, values);
  assertSameF16(f32ToF16(values), expected, values);
});

Deno.test("portable f32ToF16 rounds random values like an independent float64 search", () => {
  const values = randomValues(20000, 7);
  assertSameF16(portable.f32ToF16(values), Uint16Array.from(values, f16Nearest), values);
});

Deno.test({
  name: "portable f32ToF16 matches native Float16Array on edge and random values",
  fn() {
    for (const values of [edgeValues(), randomValues(1_000_000, 11)]) {
      assertSameF16(portable.f32ToF16(values), f32ToF16(values), values);
    }
  },
});

Deno.test("f32ToF16 handles overflow, ties and subnormals", () => {
  const values = new Float32Array([
    65504,
    65519.996,
    65520,
    -1e6,
    2 ** -24,
    2 ** -25,
    3 * 2 ** -25,
  ]);
  const expected = [0x7bff, 0x7bff, 0x7c00, 0xfc00, 0x0001, 0x0000, 0x0002];
  assert.deepEqual([...portable.f32ToF16(values)], expected);
  assert.deepEqual([...f32ToF16(values)], expected);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
  assert.equal(portable.f32ToF16(new Float32Array([1 + 2 ** -11]))[0], 0x3c00);
  assert.equal(portable.f32ToF16(new Float32Array([1 + 3 * 2 ** -11]))[0], 0x3c02);
  // The largest subnormal rounds up into the smallest normal.
  assert.equal(portable.f32ToF16(new Float32Array([2 ** -14 - 2 ** -26]))[0], 0x0400);
});

Deno.test("bf16ToF32 keeps the top half of a float32", () => {
  const values = randomValues(1000, 3);
  const bits = new Uint32Array(values.buffer);
  const top = Uint16Array.from(bits, (b) => b >>> 16);
  const widened = new Uint32Array(bf16ToF32(top).buffer);
  for (let i = 0; i < bits.length; i++) assert.equal(widened[i], (bits[i] & 0xffff0000) >>> 0);
  assert.deepEqual([...bf16ToF32(new Uint16Array([0x3f80, 0xc040, 0x7f80, 0x8000]))], [
    1,
    -3,
    Infinity,
    -0,
  ]);
});
