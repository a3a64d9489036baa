/**
 * `rvqEncode`: residual vector quantization of latent frames, nearest codeword by squared L2
 * distance in every codebook in turn, subtracting each chosen codeword from the residual
 * (shaders/rvq_encode.wgsl). Decoding (the sum of the chosen codewords) is
 * `embeddingSum` with ids `q · bins + code`.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { expectDtype, expectShape } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const RVQ_ENCODE: KernelSpec = {
  shader: "rvq_encode",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The kernels the RVQ encoder may dispatch, for warming at load (`kernelUses`). */
export const RVQ_KERNELS: readonly OpKernel[] = [{ spec: RVQ_ENCODE }];

/** The largest codeword dimension the kernel holds in workgroup memory. */
const MAX_DIM = 1024;

/**
 * Records the codes of `x`'s frames in the first `nQ` codebooks.
 *
 * @param rec The recorder.
 * @param codes Output (nQ, columns), u32, codebook-major; frames go to columns
 * `column .. column + frames`.
 * @param x Latent frames (frames, D), f32.
 * @param codebooks Codebooks transposed (n, D, bins), f32, starting at element 0 of its buffer
 * (from {@linkcode transposeCodebooks}).
 * @param options `bins` (codewords per codebook) and the first output `column`.
 *
 * @example
 * ```ts ignore
 * rvqEncode(rec, codes, latent, transposedCodebooks, { column: 0 });
 * ```
 */
export function rvqEncode(
  rec: Recorder,
  codes: Tensor,
  x: Tensor,
  codebooks: Tensor,
  options: { column?: number } = {},
): void {
  const op = "rvqEncode";
  const { column = 0 } = options;
  const [frames, d] = x.shape;
  const [nq, columns] = codes.shape;
  const bins = codebooks.shape[2];
  expectShape(op, "x", x, [-1, -1]);
  expectShape(op, "codebooks", codebooks, [-1, d, -1]);
  expectShape(op, "codes", codes, [-1, -1]);
  expectDtype(op, "codes", codes, "u32");
  expectDtype(op, "x", x, "f32");
  expectDtype(op, "codebooks", codebooks, "f32");
  if (d > MAX_DIM || nq > codebooks.shape[0] || column + frames > columns) {
    throw new OptionError(
      `Cannot record ${op}: ${nq} codebooks of ${bins} × ${d} into columns ` +
        `[${column}, ${column + frames}) of ${columns}, with ${codebooks.shape[0]} codewords ` +
        `stored, expected d ≤ ${MAX_DIM} and everything in range`,
    );
  }
  const params = [frames, d, bins, nq, x.offset, codes.offset, columns, column];
  rec.dispatch(RVQ_ENCODE, [codes, x, codebooks], params, [frames]);
}

/**
 * Transposes stacked codebooks (n · bins, D) into the (n, D, bins) layout of {@linkcode rvqEncode}.
 *
 * @example
 * ```ts
 * import { transposeCodebooks } from "@valle/core/backends";
 * // 1 codebook of 2 codewords [1, 2] and [3, 4]
 * const t = transposeCodebooks(new Float32Array([1, 2, 3, 4]), 2, 2);
 * console.assert(t.join() === "1,3,2,4");
 * ```
 */
export function transposeCodebooks(table: Float32Array, bins: number, d: number): Float32Array {
  const n = table.length / (bins * d);
  const out = new Float32Array(table.length);
  for (let q = 0; q < n; q++) {
    for (let j = 0; j < bins; j++) {
      for (let c = 0; c < d; c++) out[(q * d + c) * bins + j] = table[(q * bins + j) * d + c];
    }
  }
  return out;
}
