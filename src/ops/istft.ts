/**
 * The inverse STFT of Vocos's ISTFTHead ("same" padding) in three steps:
 * 1. {@linkcode istftSpectrum}: head output [log|mag, phase] → complex spectrum [Re | Im], in place;
 * 2. `linear` against {@linkcode istftBasis}: the inverse real DFT of every frame with the window
 *    applied, one GEMM (n_fft need not be a power of two; the basis is computed in float64);
 * 3. {@linkcode istftOverlapAdd}: overlap-add, trim and division by the exact window envelope.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { grid1d } from "./_grid.ts";
import { expectDtype, expectShape } from "./_check.ts";
import type { OpKernel } from "./_kernels.ts";

const SPECTRUM: KernelSpec = {
  shader: "istft_spectrum",
  bindings: ["write"],
  params: ["u32", "u32", "u32"],
};

const OVERLAP_ADD: KernelSpec = {
  shader: "istft_overlap_add",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"],
};

/** The kernels `istft` may dispatch, for warming at load (`kernelUses`). */
export const ISTFT_KERNELS: readonly OpKernel[] = [{ spec: SPECTRUM }, { spec: OVERLAP_ADD }];

/**
 * Records, in place on rows [log-magnitude (nb) | phase (nb)], the spectrum
 * [Re S (nb) | Im S (nb)] with S = min(exp(log-magnitude), 100) · e^{i·phase}.
 *
 * @param rec The recorder.
 * @param x Head output (T, 2·nb), f32, overwritten.
 *
 * @example
 * ```ts ignore
 * istftSpectrum(rec, headOut); // (T, 1282) for n_fft 1280
 * ```
 */
export function istftSpectrum(rec: Recorder, x: Tensor): void {
  expectShape("istftSpectrum", "x", x, [-1, -1]);
  expectDtype("istftSpectrum", "x", x, "f32");
  const [frames, width] = x.shape;
  const nb = width / 2;
  rec.dispatch(
    SPECTRUM,
    [x],
    [frames, nb, x.offset],
    grid1d(Math.ceil((frames * nb) / 256)),
  );
}

/**
 * The matrix (n_fft, 2·nb), nb = n_fft/2 + 1, that maps a spectrum row [Re S | Im S] to its
 * windowed inverse real DFT (norm "backward", i.e. 1/n_fft), for `linear`:
 * frame[n] = w[n]/N · (Re S₀ + (−1)ⁿ Re S_{N/2} + 2 Σ_{0<k<N/2} (Re S_k cos 2πkn/N − Im S_k sin 2πkn/N)).
 * The imaginary parts of bins 0 and N/2 are ignored, as `torch.fft.irfft` does.
 *
 * @param window The synthesis window (n_fft), e.g. Vocos's `head.istft.window`.
 * @returns Row-major (n_fft, 2·nb), computed in float64 and rounded once.
 *
 * @example
 * ```ts
 * import { istftBasis } from "@valle/core/backends";
 * const basis = istftBasis(new Float32Array([1, 1, 1, 1])); // (4, 6)
 * console.assert(basis.length === 24 && basis[0] === 0.25);
 * ```
 */
export function istftBasis(window: Float32Array): Float32Array {
  const n = window.length;
  if (n < 2 || n % 2 !== 0) {
    throw new OptionError(`Cannot build an inverse DFT basis: n_fft is ${n}, expected even`);
  }
  const nb = n / 2 + 1;
  const out = new Float32Array(n * 2 * nb);
  for (let i = 0; i < n; i++) {
    const scale = window[i] / n;
    for (let k = 0; k < nb; k++) {
      const edge = k === 0 || k === nb - 1;
      // Reduce k·i modulo n before the angle is formed, so the float64 argument stays small.
      const angle = (2 * Math.PI * ((k * i) % n)) / n;
      out[i * 2 * nb + k] = (edge ? 1 : 2) * scale * Math.cos(angle);
      out[i * 2 * nb + nb + k] = edge ? 0 : -2 * scale * Math.sin(angle);
    }
  }
  return out;
}

/** Where a chunk of frames and output samples sits in the whole signal. */
export interface OverlapAddOptions {
  /** Hop between frames. */
  hop: number;
  /** Samples trimmed at each end of the overlap-added signal ((n_fft − hop) / 2 for "same"). */
  pad: number;
  /** Frames in the whole signal. */
  totalFrames: number;
  /** The global index of `frames`' first row. Default 0. */
  firstFrame?: number;
  /** The global index of `out`'s first sample in the trimmed signal. Default 0. */
  firstSample?: number;
}

/**
 * Records out[i] = Σ_f frames[f, u − f·hop] / Σ_f window²[u − f·hop] with u = firstSample + i + pad,
 * over the frames f < totalFrames that cover u (all of them must be among `frames`' rows).
 *
 * @param rec The recorder.
 * @param out Output samples (count), f32.
 * @param frames Windowed frames (nf, n_fft), f32.
 * @param window The window (n_fft), f32, at element 0 of its buffer.
 * @param options Hop, trim, and where the chunk is.
 *
 * @example
 * ```ts ignore
 * istftOverlapAdd(rec, audio, frames, window, { hop: 320, pad: 480, totalFrames: T });
 * ```
 */
export function istftOverlapAdd(
  rec: Recorder,
  out: Tensor,
  frames: Tensor,
  window: Tensor,
  options: OverlapAddOptions,
): void {
  const op = "istftOverlapAdd";
  const { hop, pad, totalFrames, firstFrame = 0, firstSample = 0 } = options;
  const [nf, nFft] = frames.shape;
  const count = out.shape[0];
  expectShape(op, "out", out, [-1]);
  expectShape(op, "frames", frames, [-1, -1]);
  expectShape(op, "window", window, [nFft]);
  for (const [name, t] of [["out", out], ["frames", frames], ["window", window]] as const) {
    expectDtype(op, name, t, "f32");
  }
  const firstU = firstSample + pad;
  const lastU = firstSample + count - 1 + pad;
  const needFirst = Math.max(0, Math.ceil((firstU - nFft + 1) / hop));
  const needLast = Math.min(totalFrames - 1, Math.floor(lastU / hop));
  if (needFirst < firstFrame || needLast >= firstFrame + nf || hop > nFft - 2 * pad) {
    throw new OptionError(
      `Cannot record ${op}: samples [${firstSample}, ${firstSample + count}) need frames ` +
        `[${needFirst}, ${needLast}], found [${firstFrame}, ${firstFrame + nf - 1}]`,
    );
  }
  const params = [
    count,
    nFft,
    hop,
    pad,
    totalFrames,
    firstFrame,
    firstSample,
    frames.offset,
    out.offset,
  ];
  rec.dispatch(
    OVERLAP_ADD,
    [out, frames, window],
    params,
    grid1d(Math.ceil(count / 256)),
  );
}
