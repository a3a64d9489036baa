/**
 * What EnCodec and Vocos share: the codes type, their validation and codeword sums, the chunk
 * size that fits the device's binding limit, and {@linkcode Workspace}, named scratch buffers
 * that grow on demand.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { byteSize, writeTensor } from "../backends/tensor.ts";
import type { Backend, DeviceBuffer, Dtype, Recorder, Tensor } from "../backends/backend.ts";
import { embeddingSum } from "../ops/embedding.ts";

/**
 * Codes of a residual vector quantizer: `nQ` codebooks × `frames`, codebook-major (the layout
 * Vocos takes, EnCodec's `[B, K, T]` without the batch).
 *
 * @example
 * ```ts
 * import type { AudioCodes } from "@valle/core";
 * const codes: AudioCodes = { codes: new Int32Array(8 * 75), nQ: 8, frames: 75 };
 * ```
 */
export interface AudioCodes {
  /** Code of codebook q at frame t is `codes[q · frames + t]`. */
  readonly codes: Int32Array;
  /** Codebooks. */
  readonly nQ: number;
  /** Frames. */
  readonly frames: number;
}

/** Throws an {@linkcode OptionError} unless `c` holds 1…`maxQ` codebooks of codes in [0, bins). */
export function checkCodes(c: AudioCodes, maxQ: number, bins: number): void {
  if (
    !Number.isInteger(c.nQ) || c.nQ < 1 || c.nQ > maxQ || !Number.isInteger(c.frames) ||
    c.frames < 1 || c.codes.length !== c.nQ * c.frames
  ) {
    throw new OptionError(
      `Cannot decode ${c.nQ} × ${c.frames} codes held in ${c.codes.length} values: expected ` +
        `1 to ${maxQ} codebooks, at least one frame, and nQ · frames values`,
    );
  }
  const bad = c.codes.findIndex((v) => !(v >= 0 && v < bins));
  if (bad >= 0) {
    throw new OptionError(
      `Cannot decode: code ${c.codes[bad]} at codebook ${Math.floor(bad / c.frames)}, frame ` +
        `${bad % c.frames}, expected 0 to ${bins - 1}`,
    );
  }
}

/**
 * Records out[r] = Σ_q table[q · bins + codes[q, first + r]] for the rows r of `out` (the ids go
 * through workspace buffer "ids").
 */
export function recordCodewordSum(
  rec: Recorder,
  ws: Workspace,
  out: Tensor,
  c: AudioCodes,
  first: number,
  table: Tensor,
  bins: number,
): void {
  const n = out.shape[0];
  const ids = new Uint32Array(n * c.nQ);
  for (let r = 0; r < n; r++) {
    for (let q = 0; q < c.nQ; q++) ids[r * c.nQ + q] = q * bins + c.codes[q * c.frames + first + r];
  }
  const t = ws.tensor("ids", [n, c.nQ], "u32");
  writeTensor(rec.backend, t, ids);
  embeddingSum(rec, out, t, table);
}

/**
 * Frames per chunk: `requested`, or by default as many as keep the largest buffer (with its
 * context) at half the binding limit, so the pool's power-of-two rounding stays within it;
 * never more than 1500 (20 s at 75 Hz).
 *
 * @throws {OptionError} A requested count outside [minimum, what fits].
 */
export function chunkFrames(
  backend: Backend,
  options: { requested?: number; bytesPerFrame: number; context: number; minimum: number },
): number {
  const limit = backend.maxBindingBytes;
  const fits = Math.max(
    options.minimum,
    Math.floor(limit / 2 / options.bytesPerFrame) - options.context,
  );
  const frames = options.requested ?? Math.min(1500, fits);
  if (!Number.isInteger(frames) || frames < options.minimum || frames > fits) {
    throw new OptionError(
      `Cannot use chunks of ${frames} frames: expected an integer in [${options.minimum}, ${fits}]`,
    );
  }
  return frames;
}

/** Scratch buffers by name, grown (to powers of two) when a call needs more, kept until released. */
export class Workspace {
  #backend: Backend;
  #buffers = new Map<string, DeviceBuffer>();
  /** Buffers outgrown during the running call; recorded work may still use them. */
  #retired: DeviceBuffer[] = [];

  /**
   * Creates an empty workspace.
   *
   * @param backend The backend its buffers live on.
   */
  constructor(backend: Backend) {
    this.#backend = backend;
  }

  /** A tensor of `shape` at the start of buffer `name`, grown when too small. */
  tensor(name: string, shape: readonly number[], dtype: Dtype = "f32"): Tensor {
    const bytes = Math.max(4, byteSize(shape, dtype));
    let buffer = this.#buffers.get(name);
    if (!buffer || buffer.size < bytes) {
      if (buffer) this.#retired.push(buffer);
      buffer = this.#backend.createBuffer(2 ** Math.ceil(Math.log2(Math.max(bytes, 256))), name);
      this.#buffers.set(name, buffer);
    }
    return { buffer, dtype, shape, offset: 0 };
  }

  /**
   * Runs one call that takes its tensors from here, then frees the buffers it outgrew (its work
   * is submitted by then; a buffer must not be freed while unsubmitted work still binds it).
   */
  async during<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } finally {
      for (const buffer of this.#retired) buffer.destroy();
      this.#retired = [];
    }
  }

  /** Frees every buffer. */
  release(): void {
    for (const buffer of this.#buffers.values()) buffer.destroy();
    this.#buffers.clear();
  }
}
