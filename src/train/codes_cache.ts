/**
 * The cache of training codes, so that a second preparation of the same clips skips EnCodec. An
 * entry is one clip's codes (int16, frame-major) stored in a {@linkcode FileCache} (a directory
 * in Deno, the Cache API in browsers) under a key made of the codec's fingerprint, the number of
 * levels and the SHA-256 of the clip's audio; like downloads, it is used only after its size and
 * SHA-256 match what was recorded, and a bad entry is deleted and encoded again.
 *
 * The codec's fingerprint hashes its configuration and the codes it gives for a fixed one-second
 * probe signal, so other weights (or a backend that rounds differently enough to change a code)
 * never read another codec's entries.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { mulberry32 } from "../_random.ts";
import type { FileCache } from "../io/cache.ts";
import { sha256Hex } from "../io/download.ts";
import type { AudioCodes } from "../models/_codec.ts";

/** What the cache needs of a codec: its configuration and its encoder. */
export interface TrainingCodec {
  /** The configuration: its rate, and what the fingerprint hashes. */
  readonly config: {
    readonly sampleRate: number;
    readonly hopLength: number;
    readonly frameRate: number;
  };
  /** Encodes mono samples into `nQ` codebooks (as `Encodec.encode`). */
  encode(samples: Float32Array, sampleRate: number, options: { nQ: number }): Promise<AudioCodes>;
}

/** Codes read back from the cache. */
export interface CachedCodes {
  /** Frame-major codes. */
  codes: Int16Array;
  /** Frames. */
  frames: number;
}

/**
 * The codec's fingerprint: 16 hex digits of the SHA-256 of its configuration and of the codes
 * it gives for one second of a fixed signal (a chirp over seeded noise), taken once per codec
 * object and number of levels.
 *
 * @param codec The codec.
 * @param levels Codebooks the codes use.
 * @returns The fingerprint.
 *
 * @example
 * ```ts ignore
 * const id = await codecFingerprint(valle.encodec, 8);
 * ```
 */
export function codecFingerprint(codec: TrainingCodec, levels: number): Promise<string> {
  let known = fingerprints.get(codec);
  if (!known) fingerprints.set(codec, known = new Map());
  let id = known.get(levels);
  if (!id) {
    id = probe(codec, levels);
    known.set(levels, id);
    id.catch(() => known.delete(levels)); // a failed probe is tried again
  }
  return id;
}

/** Fingerprints already taken, per codec and number of levels. */
const fingerprints = new WeakMap<TrainingCodec, Map<number, Promise<string>>>();

async function probe(codec: TrainingCodec, levels: number): Promise<string> {
  const rate = codec.config.sampleRate;
  const noise = mulberry32(0x5eed);
  const probe = Float32Array.from({ length: rate }, (_, i) => {
    const t = i / rate;
    return 0.3 * Math.sin(2 * Math.PI * (100 + 400 * t) * t) + 0.05 * (2 * noise() - 1);
  });
  const { codes } = await codec.encode(probe, rate, { nQ: levels });
  const config = new TextEncoder().encode(JSON.stringify(codec.config));
  const bytes = new Uint8Array(config.length + codes.byteLength);
  bytes.set(config);
  bytes.set(new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength), config.length);
  return (await sha256Hex(bytes)).slice(0, 16);
}

/**
 * The cache key of one clip's codes.
 *
 * @param codecId The codec's fingerprint (or a name the caller chose for the codec).
 * @param levels Codebooks the codes use.
 * @param audioSha256 The SHA-256 of the clip's audio.
 * @returns A relative key such as `train-codes/v1/<codec>/q8/<sha>.i16`.
 *
 * @example
 * ```ts
 * import { codesCacheKey } from "./codes_cache.ts";
 * console.assert(codesCacheKey("abc", 8, "0f") === "train-codes/v1/abc/q8/0f.i16");
 * ```
 */
export function codesCacheKey(codecId: string, levels: number, audioSha256: string): string {
  const codec = codecId.replace(/[^\w.-]/g, "_");
  return `train-codes/${PREPARATION}/${codec}/q${levels}/${audioSha256}.i16`;
}

/**
 * The version of how a clip's audio becomes the codec's input (the downmix, the resampler): a
 * change there must not reuse entries made before it.
 */
const PREPARATION = "v1";

/**
 * Reads one clip's codes from the cache; an entry that does not verify is deleted.
 *
 * @param cache The cache.
 * @param key The entry's key ({@linkcode codesCacheKey}).
 * @param levels Codebooks per frame.
 * @returns The codes, or undefined when absent or bad.
 *
 * @example
 * ```ts ignore
 * const hit = await readCachedCodes(cache, codesCacheKey(id, 8, sha), 8);
 * ```
 */
export async function readCachedCodes(
  cache: FileCache,
  key: string,
  levels: number,
): Promise<CachedCodes | undefined> {
  const entry = await cache.get(key);
  if (!entry) return undefined;
  const { bytes, meta } = entry;
  const frameBytes = 2 * levels;
  if (
    bytes.length !== meta.size || bytes.length === 0 || bytes.length % frameBytes !== 0 ||
    await sha256Hex(bytes) !== meta.sha256
  ) {
    await cache.delete(key);
    return undefined;
  }
  const codes = new Int16Array(bytes.slice().buffer); // a copy: the entry may sit at an odd offset
  return { codes, frames: bytes.length / frameBytes };
}

/**
 * Stores one clip's codes in the cache.
 *
 * @param cache The cache.
 * @param key The entry's key ({@linkcode codesCacheKey}).
 * @param codes Frame-major codes.
 * @param source Where the codes come from (the clip's name), recorded with the entry.
 *
 * @example
 * ```ts ignore
 * await writeCachedCodes(cache, codesCacheKey(id, 8, sha), utterance.codes, "hello.wav");
 * ```
 */
export async function writeCachedCodes(
  cache: FileCache,
  key: string,
  codes: Int16Array,
  source: string,
): Promise<void> {
  const bytes = new Uint8Array(codes.byteLength);
  bytes.set(new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength));
  await cache.put(key, bytes, {
    url: `encoded:${source}`,
    size: bytes.length,
    sha256: await sha256Hex(bytes),
  });
}
