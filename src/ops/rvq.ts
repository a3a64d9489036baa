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
import type { KernelSpec } from "../gpu/kernels.ts";
import type { Recorder } from "../gpu/recorder.ts";
import type { GpuTensor } from "../gpu/tensor.ts";
import { expectDtype, expectShape } from "./_check.ts";

const RVQ_ENCODE: KernelSpec = {
  shader: "rvq_encode",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The largest codeword dimension the kernel holds in workgroup memory. */
const MAX_DIM = 1024;

/**
 * Records the codes of `x`'s frames in the first `nQ` codebooks.
 *
 * @param rec The recorder.
 * @param codes Output (nQ, columns), u32, codebook-major; frames go to columns
 * `column .. column + frames`.
 * @param x Latent frames (frames, D), f32.
 * @param codebooks Stacked codebooks (n · bins, D), f32, starting at element 0 of its buffer:
 * codeword j of codebook q is row `q · bins + j`.
 * @param options `bins` (codewords per codebook) and the first output `column`.
 *
 * @example
 * ```ts ignore
 * rvqEncode(rec, codes, latent, codebooks, { bins: 1024 });
 * ```
 */
export function rvqEncode(
  rec: Recorder,
  codes: GpuTensor,
  x: GpuTensor,
  codebooks: GpuTensor,
  options: { bins: number; column?: number },
): void {
  const op = "rvqEncode";
  const { bins, column = 0 } = options;
  const [frames, d] = x.shape;
  const [nq, columns] = codes.shape;
  expectShape(op, "x", x, [-1, -1]);
  expectShape(op, "codebooks", codebooks, [-1, d]);
  expectShape(op, "codes", codes, [-1, -1]);
  expectDtype(op, "codes", codes, "u32");
  expectDtype(op, "x", x, "f32");
  expectDtype(op, "codebooks", codebooks, "f32");
  if (d > MAX_DIM || nq * bins > codebooks.shape[0] || column + frames > columns) {
    throw new OptionError(
      `Cannot record ${op}: ${nq} codebooks of ${bins} × ${d} into columns ` +
        `[${column}, ${column + frames}) of ${columns}, with ${codebooks.shape[0]} codewords ` +
        `stored, expected d ≤ ${MAX_DIM} and everything in range`,
    );
  }
  const params = [frames, d, bins, nq, x.offset, codes.offset, columns, column];
  rec.dispatch(rec.gpu.kernels.get(RVQ_ENCODE), [codes, x, codebooks], params, [frames]);
}
