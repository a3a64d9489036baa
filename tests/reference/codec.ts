/**
 * CPU oracles for the codec ops and models, in float64, written from the PyTorch semantics that
 * codec-spec.md describes (F.pad reflect + EnCodec's pad1d, Conv1d, ConvTranspose1d, nn.LSTM,
 * RVQ, LayerNorm, torch.fft.irfft + fold). Activations are time-major (L, C) like the GPU's;
 * weights keep PyTorch's layouts.
 */

import type { Conv1dOptions } from "../../src/ops/conv1d.ts";

/** PyTorch F.pad of one channel: zeros, or reflect (edge sample not repeated). */
export function pad(x: readonly number[], left: number, right: number, mode: "zero" | "reflect") {
  const n = x.length;
  const out: number[] = [];
  for (let i = -left; i < n + right; i++) {
    if (i >= 0 && i < n) out.push(x[i]);
    else if (mode === "zero") out.push(0);
    else out.push(x[i < 0 ? -i : 2 * (n - 1) - i]);
  }
  return out;
}

/** EnCodec's pad1d: reflect padding of a signal shorter than the padding goes through zeros. */
export function pad1d(x: readonly number[], left: number, right: number, mode: "zero" | "reflect") {
  if (mode !== "reflect") return pad(x, left, right, mode);
  const maxPad = Math.max(left, right);
  const extra = x.length <= maxPad ? maxPad - x.length + 1 : 0;
  const padded = pad([...x, ...new Array(extra).fill(0)], left, right, "reflect");
  return padded.slice(0, padded.length - extra);
}

/** ELU with alpha 1. */
export function elu(v: number): number {
  return v > 0 ? v : Math.expm1(v);
}

/** Conv1d over x (L, Cin) with PyTorch weight w [Cout, Cin, k]; returns (Lout, Cout). */
export function conv1d(
  x: ArrayLike<number>,
  length: number,
  w: ArrayLike<number>,
  b: ArrayLike<number> | undefined,
  shape: readonly [number, number, number],
  options: Conv1dOptions = {},
): { y: Float64Array; length: number } {
  const [cout, cin, k] = shape;
  const { stride = 1, dilation = 1, padLeft = 0, padRight = 0, padMode = "zero" } = options;
  const channels: number[][] = [];
  for (let c = 0; c < cin; c++) {
    const ch: number[] = [];
    for (let t = 0; t < length; t++) {
      const v = x[t * cin + c];
      ch.push(options.elu ? elu(v) : v);
    }
    channels.push(pad1d(ch, padLeft, padRight, padMode));
  }
  const padded = length + padLeft + padRight;
  const outLength = Math.floor((padded - dilation * (k - 1) - 1) / stride) + 1;
  const y = new Float64Array(outLength * cout);
  for (let t = 0; t < outLength; t++) {
    for (let o = 0; o < cout; o++) {
      let acc = b ? b[o] : 0;
      for (let i = 0; i < cin; i++) {
        for (let j = 0; j < k; j++) {
          acc += w[(o * cin + i) * k + j] * channels[i][t * stride + j * dilation];
        }
      }
      y[t * cout + o] = acc;
    }
  }
  return { y, length: outLength };
}

/**
 * ConvTranspose1d over x (Lin, Cin) with PyTorch weight w [Cin, Cout, k], full output
 * ((Lin − 1)·stride + k, Cout) by scattering, then samples [trimLeft, trimLeft + outLength).
 */
export function convTranspose1d(
  x: ArrayLike<number>,
  length: number,
  w: ArrayLike<number>,
  b: ArrayLike<number> | undefined,
  shape: readonly [number, number, number],
  stride: number,
  trim: { left: number; length: number },
  act = false,
): Float64Array {
  const [cin, cout, k] = shape;
  const full = (length - 1) * stride + k;
  const y = new Float64Array(full * cout);
  for (let t = 0; t < full; t++) for (let o = 0; o < cout; o++) y[t * cout + o] = b ? b[o] : 0;
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < cin; i++) {
      const v = act ? elu(x[t * cin + i]) : x[t * cin + i];
      for (let o = 0; o < cout; o++) {
        for (let j = 0; j < k; j++) y[(t * stride + j) * cout + o] += v * w[(i * cout + o) * k + j];
      }
    }
  }
  return y.slice(trim.left * cout, (trim.left + trim.length) * cout);
}

/** One nn.LSTM layer's weights, PyTorch layouts. */
export interface LstmWeights {
  wih: ArrayLike<number>; // [4H, In]
  whh: ArrayLike<number>; // [4H, H]
  bih: ArrayLike<number>; // [4H]
  bhh: ArrayLike<number>; // [4H]
}

function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

/** A stack of LSTM layers over x (T, In) from state (h, c) per layer; returns the last layer's h (T, H). */
export function lstm(
  x: ArrayLike<number>,
  steps: number,
  inputSize: number,
  hidden: number,
  layers: readonly LstmWeights[],
  state?: { h: Float64Array[]; c: Float64Array[] },
): Float64Array {
  let input: ArrayLike<number> = x;
  let size = inputSize;
  let out = new Float64Array(0);
  layers.forEach((l, li) => {
    out = new Float64Array(steps * hidden);
    const h = state?.h[li] ?? new Float64Array(hidden);
    const c = state?.c[li] ?? new Float64Array(hidden);
    const gates = new Float64Array(4 * hidden);
    for (let t = 0; t < steps; t++) {
      for (let r = 0; r < 4 * hidden; r++) {
        let acc = l.bih[r] + l.bhh[r];
        for (let k = 0; k < size; k++) acc += l.wih[r * size + k] * input[t * size + k];
        for (let k = 0; k < hidden; k++) acc += l.whh[r * hidden + k] * h[k];
        gates[r] = acc;
      }
      for (let u = 0; u < hidden; u++) {
        const i = sigmoid(gates[u]);
        const f = sigmoid(gates[hidden + u]);
        const g = Math.tanh(gates[2 * hidden + u]);
        const o = sigmoid(gates[3 * hidden + u]);
        c[u] = f * c[u] + i * g;
        h[u] = o * Math.tanh(c[u]);
        out[t * hidden + u] = h[u];
      }
    }
    input = out;
    size = hidden;
  });
  return out;
}

/** RVQ encode of x (T, D) against codebooks (n·bins, D): codes (nq, T), first minimum on ties. */
export function rvqEncode(
  x: ArrayLike<number>,
  frames: number,
  d: number,
  codebooks: ArrayLike<number>,
  bins: number,
  nq: number,
): Int32Array {
  const codes = new Int32Array(nq * frames);
  for (let t = 0; t < frames; t++) {
    const r = Array.from({ length: d }, (_, c) => x[t * d + c]);
    for (let q = 0; q < nq; q++) {
      let best = Infinity;
      let index = -1;
      for (let j = 0; j < bins; j++) {
        let dist = 0;
        for (let c = 0; c < d; c++) dist += (r[c] - codebooks[(q * bins + j) * d + c]) ** 2;
        if (dist < best) {
          best = dist;
          index = j;
        }
      }
      codes[q * frames + t] = index;
      for (let c = 0; c < d; c++) r[c] -= codebooks[(q * bins + index) * d + c];
    }
  }
  return codes;
}

/** LayerNorm per row of length d with affine w, b. */
export function layerNorm(
  x: ArrayLike<number>,
  d: number,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  eps: number,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = (x[r * d + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

/** Depthwise conv with zero "same" padding over x (L, C), weight [C, 1, k]. */
export function depthwiseConv1d(
  x: ArrayLike<number>,
  length: number,
  ch: number,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  k: number,
): Float64Array {
  const half = (k - 1) / 2;
  const y = new Float64Array(length * ch);
  for (let t = 0; t < length; t++) {
    for (let c = 0; c < ch; c++) {
      let acc = b[c];
      for (let j = 0; j < k; j++) {
        const s = t + j - half;
        if (s >= 0 && s < length) acc += w[c * k + j] * x[s * ch + c];
      }
      y[t * ch + c] = acc;
    }
  }
  return y;
}

/**
 * Vocos ISTFTHead from the head output (T, n_fft + 2) = [log-magnitude | phase]: clip, irfft
 * (imaginary DC/Nyquist ignored), window, fold at hop, trim (n_fft − hop)/2 per side, divide by
 * the folded squared window. Returns T·hop samples.
 */
export function istftHead(
  head: ArrayLike<number>,
  frames: number,
  window: ArrayLike<number>,
  hop: number,
): Float64Array {
  const n = window.length;
  const nb = n / 2 + 1;
  const padding = (n - hop) / 2;
  const total = (frames - 1) * hop + n;
  const y = new Float64Array(total);
  const env = new Float64Array(total);
  for (let f = 0; f < frames; f++) {
    const re = new Float64Array(nb);
    const im = new Float64Array(nb);
    for (let k = 0; k < nb; k++) {
      const mag = Math.min(Math.exp(head[f * 2 * nb + k]), 100);
      const phase = head[f * 2 * nb + nb + k];
      re[k] = mag * Math.cos(phase);
      im[k] = mag * Math.sin(phase);
    }
    for (let i = 0; i < n; i++) {
      let acc = re[0] + (i % 2 === 0 ? 1 : -1) * re[nb - 1];
      for (let k = 1; k < nb - 1; k++) {
        const a = (2 * Math.PI * ((k * i) % n)) / n;
        acc += 2 * (re[k] * Math.cos(a) - im[k] * Math.sin(a));
      }
      y[f * hop + i] += (acc / n) * window[i];
      env[f * hop + i] += window[i] ** 2;
    }
  }
  const out = new Float64Array(frames * hop);
  for (let m = 0; m < out.length; m++) out[m] = y[m + padding] / env[m + padding];
  return out;
}

/** Σ_q table[q·bins + codes[q, t]] for codes (K, T): the summed codewords (T, D). */
export function codebookSum(
  codes: ArrayLike<number>,
  k: number,
  frames: number,
  table: ArrayLike<number>,
  bins: number,
  d: number,
): Float64Array {
  const out = new Float64Array(frames * d);
  for (let t = 0; t < frames; t++) {
    for (let q = 0; q < k; q++) {
      const row = q * bins + codes[q * frames + t];
      for (let c = 0; c < d; c++) out[t * d + c] += table[row * d + c];
    }
  }
  return out;
}
