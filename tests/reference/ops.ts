/**
 * CPU oracles for the GPU ops, written from the math (llama2.c style), in float64.
 * Shapes are row-major; weights use PyTorch's [out, in] layout.
 */

import { gelu } from "./erf.ts";

/** y (M, N) = x (M, K) · wᵀ (w is N×K) + b. */
export function linear(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | undefined,
  m: number,
  n: number,
  k: number,
): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = b ? b[j] : 0;
      for (let t = 0; t < k; t++) acc += x[i * k + t] * w[j * k + t];
      y[i * n + j] = acc;
    }
  }
  return y;
}

/** RMSNorm per row of length d. */
export function rmsNorm(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  d: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let ss = 0;
    for (let i = 0; i < d; i++) ss += x[r * d + i] ** 2;
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = x[r * d + i] * inv * w[i];
  }
  return y;
}

/**
 * Rotate-half RoPE on rows of `width` elements holding `heads` heads from `column`. The angle is
 * rounded to float32 as PyTorch's LLaMA computes it (f32 inv_freq times f32 position); the rest
 * is float64. `inverse` rotates by −angle (the rotation's gradient).
 */
export function rope(
  x: ArrayLike<number>,
  positions: ArrayLike<number>,
  opts: {
    heads: number;
    headDim: number;
    width: number;
    column?: number;
    theta?: number;
    inverse?: boolean;
  },
): Float64Array {
  const { heads, headDim, width, column = 0, theta = 10000, inverse = false } = opts;
  const y = Float64Array.from(x);
  const half = headDim / 2;
  for (let s = 0; s < positions.length; s++) {
    for (let h = 0; h < heads; h++) {
      const base = s * width + column + h * headDim;
      for (let j = 0; j < half; j++) {
        const invFreq = Math.fround(1 / Math.fround(theta ** Math.fround((2 * j) / headDim)));
        const angle = (inverse ? -1 : 1) * Math.fround(positions[s] * invFreq);
        const a = x[base + j];
        const b = x[base + j + half];
        y[base + j] = a * Math.cos(angle) - b * Math.sin(angle);
        y[base + j + half] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
  }
  return y;
}

/**
 * Multi-head attention of s query rows over kvLen key rows (row width heads·headDim), causal
 * with query i at key index qStart + i.
 */
export function attention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  opts: {
    s: number;
    kvLen: number;
    heads: number;
    headDim: number;
    causal: boolean;
    qStart: number;
  },
): Float64Array {
  const { s, kvLen, heads, headDim, causal, qStart } = opts;
  const width = heads * headDim;
  const out = new Float64Array(s * width);
  const scale = 1 / Math.sqrt(headDim);
  for (let i = 0; i < s; i++) {
    const keys = causal ? Math.min(kvLen, qStart + i + 1) : kvLen;
    for (let h = 0; h < heads; h++) {
      const scores = new Float64Array(keys);
      let max = -Infinity;
      for (let j = 0; j < keys; j++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++) {
          dot += q[i * width + h * headDim + d] * k[j * width + h * headDim + d];
        }
        scores[j] = dot * scale;
        max = Math.max(max, scores[j]);
      }
      let sum = 0;
      for (let j = 0; j < keys; j++) sum += scores[j] = Math.exp(scores[j] - max);
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        for (let j = 0; j < keys; j++) acc += scores[j] * v[j * width + h * headDim + d];
        out[i * width + h * headDim + d] = acc / sum;
      }
    }
  }
  return out;
}

/** down(gelu(gate · x) ⊙ (up · x)) for s rows of width d, hidden f. */
export function gatedMlp(
  x: ArrayLike<number>,
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  down: ArrayLike<number>,
  s: number,
  d: number,
  f: number,
): Float64Array {
  const g = linear(x, gate, undefined, s, f, d);
  const u = linear(x, up, undefined, s, f, d);
  for (let i = 0; i < g.length; i++) g[i] = gelu(g[i]) * u[i];
  return linear(g, down, undefined, s, d, f);
}

/** out[r] = Σ_t table[ids[r·terms + t]] over rows of width d, skipping 0xffffffff. */
export function embeddingSum(
  ids: ArrayLike<number>,
  table: ArrayLike<number>,
  rows: number,
  terms: number,
  d: number,
): Float64Array {
  const out = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < terms; t++) {
      const id = ids[r * terms + t];
      if (id === 0xffffffff) continue;
      for (let c = 0; c < d; c++) out[r * d + c] += table[id * d + c];
    }
  }
  return out;
}

/** Softmax per row of `cols`. */
export function softmax(x: ArrayLike<number>, cols: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[r * cols + c]);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += y[r * cols + c] = Math.exp(x[r * cols + c] - max);
    for (let c = 0; c < cols; c++) y[r * cols + c] /= sum;
  }
  return y;
}

/** First index of the maximum per row of `cols`. */
export function argmax(x: ArrayLike<number>, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / cols; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (x[r * cols + c] > x[r * cols + best]) best = c;
    out.push(best);
  }
  return out;
}
