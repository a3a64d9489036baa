/**
 * Random quantized blocks for the kernel benchmarks (bench/kernels.ts): GGUF Q8_0 or Q4_K blocks of
 * a chosen root mean square, made in a blink on any backend (the kernels' speed does not depend on
 * the values, and quantizing needs the CPU backend's C quantizers).
 */

import type { QuantDtype } from "../src/backends/backend.ts";
import { f32ToF16 } from "../src/io/dtype.ts";
import { Q4_K_BLOCK, Q4_K_BYTES } from "../src/quant/q4_k.ts";
import { Q8_0_BLOCK, Q8_0_BYTES } from "../src/quant/q8_0.ts";

/**
 * Q4_K scale bytes 4–15 coding every sub-block's scale and min as 32 (get_scale_min_k4: bytes 0–7
 * carry the low 6 bits and, in bits 6–7, the high 2 bits of sub-blocks 4–7; bytes 8–11 their low
 * 4 bits).
 */
const Q4_K_SCALES = [0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0xa0, 0, 0, 0, 0];

/** Standard deviation of a uniform int8 level in −127..127, and of a nibble 0..15. */
const Q8_LEVEL_STD = Math.sqrt((255 ** 2 - 1) / 12);
const Q4_LEVEL_STD = Math.sqrt((16 ** 2 - 1) / 12);

/** Fills `bytes` (a multiple of 4 long) with xorshift32 output from a nonzero seed. */
function fillRandom(bytes: Uint8Array, seed: number): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2);
  let s = seed;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s;
  }
}

/**
 * Random GGUF blocks of `layout` for `count` weights of root mean square `rms`: Q8_0 levels
 * uniform bytes (−128 made 0, so −127..127) under one scale; Q4_K nibbles uniform in 0..15 with
 * every sub-block's scale and min code 32 and `dmin = 7.5 d`, so weights `32 d (q − 7.5)` have
 * mean 0.
 *
 * @param layout The block type.
 * @param count Weights, whole blocks.
 * @param rms Their root mean square.
 * @param seed Nonzero: which random bytes.
 * @returns The blocks.
 */
export function randomBlocks(
  layout: QuantDtype,
  count: number,
  rms: number,
  seed: number,
): Uint8Array {
  if (layout === "q8_0") {
    const bytes = new Uint8Array(count / Q8_0_BLOCK * Q8_0_BYTES);
    fillRandom(bytes, seed);
    const d = f32ToF16(Float32Array.of(rms / Q8_LEVEL_STD))[0];
    for (let at = 0; at < bytes.length; at += Q8_0_BYTES) {
      bytes[at] = d & 0xff;
      bytes[at + 1] = d >> 8;
      for (let i = at + 2; i < at + Q8_0_BYTES; i++) if (bytes[i] === 0x80) bytes[i] = 0;
    }
    return bytes;
  }
  const bytes = new Uint8Array(count / Q4_K_BLOCK * Q4_K_BYTES);
  fillRandom(bytes, seed);
  const d = rms / (32 * Q4_LEVEL_STD);
  const [dBits, dminBits] = f32ToF16(Float32Array.of(d, 7.5 * d));
  for (let at = 0; at < bytes.length; at += Q4_K_BYTES) {
    bytes[at] = dBits & 0xff;
    bytes[at + 1] = dBits >> 8;
    bytes[at + 2] = dminBits & 0xff;
    bytes[at + 3] = dminBits >> 8;
    bytes.set(Q4_K_SCALES, at + 4);
  }
  return bytes;
}
