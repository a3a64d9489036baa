/**
 * float64 oracles of the backward ops (input gradients, weights frozen), written from the
 * analytic derivatives of the forward math in ./ops.ts.
 */

import { erfc } from "./erf.ts";

/** ∂L/∂x of RMSNorm per row of length d, given dy = ∂L/∂y. */
export function rmsNormBackward(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  d: number,
  eps: number,
): Float64Array {
  const dx = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let ss = 0;
    let gx = 0;
    for (let i = 0; i < d; i++) {
      ss += x[r * d + i] ** 2;
      gx += dy[r * d + i] * w[i] * x[r * d + i];
    }
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) {
      dx[r * d + i] = inv * dy[r * d + i] * w[i] - (x[r * d + i] * inv ** 3 * gx) / d;
    }
  }
  return dx;
}

/** The derivative of the exact GELU, Φ(z) + z φ(z). */
export function geluDerivative(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2) + (z * Math.exp(-0.5 * z * z)) / Math.sqrt(2 * Math.PI);
}
