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

/** Attention over packed rows and its gradients, see {@linkcode attentionBackward}. */
export interface AttentionGrads {
  /** The forward output (S, heads·headDim). */
  out: Float64Array;
  /** ∂L/∂q, ∂L/∂k, ∂L/∂v (S, heads·headDim). */
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/**
 * Self-attention of S rows (width heads·headDim) where row i's query sees keys
 * `[table[2i], table[2i] + table[2i + 1])`, and, given dOut = ∂L/∂out, the analytic gradients:
 * D_i = dOut_i · out_i, dS_ij = P_ij (dOut_i · v_j − D_i), dq_i = scale Σ_j dS_ij k_j,
 * dk_j = scale Σ_i dS_ij q_i, dv_j = Σ_i P_ij dOut_i.
 */
export function attentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dOut: ArrayLike<number>,
  table: ArrayLike<number>,
  heads: number,
  headDim: number,
  scale: number,
): AttentionGrads {
  const s = table.length / 2;
  const width = heads * headDim;
  const [out, dq, dk, dv] = [0, 0, 0, 0].map(() => new Float64Array(s * width));
  const dot = (a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number, h: number) => {
    let acc = 0;
    for (let d = 0; d < headDim; d++) {
      acc += a[i * width + h * headDim + d] * b[j * width + h * headDim + d];
    }
    return acc;
  };
  for (let i = 0; i < s; i++) {
    const [first, count] = [table[2 * i], table[2 * i + 1]];
    for (let h = 0; h < heads; h++) {
      const x = Array.from({ length: count }, (_, j) => scale * dot(q, i, k, first + j, h));
      const max = Math.max(...x);
      const e = x.map((xj) => Math.exp(xj - max));
      const sum = e.reduce((a, b) => a + b, 0);
      const p = e.map((ej) => ej / sum);
      const o = i * width + h * headDim;
      for (let j = 0; j < count; j++) {
        for (let d = 0; d < headDim; d++) {
          out[o + d] += p[j] * v[(first + j) * width + h * headDim + d];
        }
      }
      let dRow = 0;
      for (let d = 0; d < headDim; d++) dRow += dOut[o + d] * out[o + d];
      for (let j = 0; j < count; j++) {
        const kj = (first + j) * width + h * headDim;
        const ds = p[j] * (dot(dOut, i, v, first + j, h) - dRow);
        for (let d = 0; d < headDim; d++) {
          dq[o + d] += scale * ds * k[kj + d];
          dk[kj + d] += scale * ds * q[o + d];
          dv[kj + d] += p[j] * dOut[o + d];
        }
      }
    }
  }
  return { out, dq, dk, dv };
}
