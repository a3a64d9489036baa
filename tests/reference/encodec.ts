/**
 * A float64 CPU EnCodec (SEANet encoder + decoder, Hugging Face layer order and names), written
 * from codec-spec.md §1 with the primitives of codec.ts, for configurations no golden folder
 * covers. Activations are time-major (L, C).
 */

import * as ref from "./codec.ts";

/** The HF config fields the oracle reads (all required). */
export interface OracleConfig {
  num_filters: number;
  upsampling_ratios: number[];
  num_residual_layers: number;
  kernel_size: number;
  last_kernel_size: number;
  residual_kernel_size: number;
  dilation_growth_rate: number;
  compress: number;
  num_lstm_layers: number;
  hidden_size: number;
  use_conv_shortcut: boolean;
  trim_right_ratio: number;
}

type Weights = (name: string) => Float32Array;

interface Signal {
  x: ArrayLike<number>;
  length: number;
  channels: number;
}

/** g · v / ‖v‖ per slice of dim 0. */
function folded(w: Weights, prefix: string, slices: number): Float64Array {
  const g = w(`${prefix}.weight_g`);
  const v = w(`${prefix}.weight_v`);
  const per = v.length / slices;
  const out = new Float64Array(v.length);
  for (let o = 0; o < slices; o++) {
    let sum = 0;
    for (let i = 0; i < per; i++) sum += v[o * per + i] ** 2;
    for (let i = 0; i < per; i++) out[o * per + i] = (g[o] * v[o * per + i]) / Math.sqrt(sum);
  }
  return out;
}

/** SConv1d: causal reflect padding (plus the extra that completes the last window). */
function sconv(
  w: Weights,
  prefix: string,
  s: Signal,
  cout: number,
  k: number,
  opts: { stride?: number; dilation?: number; elu?: boolean } = {},
): Signal {
  const { stride = 1, dilation = 1 } = opts;
  const span = (k - 1) * dilation + 1;
  const total = span - stride;
  const frames = (s.length - span + total) / stride + 1;
  const extra = (Math.ceil(frames) - 1) * stride + span - total - s.length;
  const { y, length } = ref.conv1d(s.x, s.length, folded(w, prefix, cout), w(`${prefix}.bias`), [
    cout,
    s.channels,
    k,
  ], { stride, dilation, padLeft: total, padRight: extra, padMode: "reflect", elu: opts.elu });
  return { x: y, length, channels: cout };
}

function residual(w: Weights, prefix: string, s: Signal, c: OracleConfig, j: number): Signal {
  const hidden = Math.floor(s.channels / c.compress);
  const a = sconv(w, `${prefix}.block.1.conv`, s, hidden, c.residual_kernel_size, {
    dilation: c.dilation_growth_rate ** j,
    elu: true,
  });
  const b = sconv(w, `${prefix}.block.3.conv`, a, s.channels, 1, { elu: true });
  const short = c.use_conv_shortcut ? sconv(w, `${prefix}.shortcut.conv`, s, s.channels, 1) : s;
  return { ...s, x: Float64Array.from(b.x, (v, i) => v + short.x[i]) };
}

function slstm(w: Weights, prefix: string, s: Signal, layers: number): Signal {
  const all = Array.from({ length: layers }, (_, l) => ({
    wih: w(`${prefix}.weight_ih_l${l}`),
    whh: w(`${prefix}.weight_hh_l${l}`),
    bih: w(`${prefix}.bias_ih_l${l}`),
    bhh: w(`${prefix}.bias_hh_l${l}`),
  }));
  const h = ref.lstm(s.x, s.length, s.channels, s.channels, all);
  return { ...s, x: Float64Array.from(h, (v, i) => v + s.x[i]) };
}

/** The encoder: audio (L) → latent (T, hidden_size). */
export function encode(w: Weights, c: OracleConfig, audio: ArrayLike<number>): Signal {
  let n = 0;
  const at = () => `encoder.layers.${n}`;
  let s: Signal = { x: audio, length: audio.length, channels: 1 };
  s = sconv(w, `${at()}.conv`, s, c.num_filters, c.kernel_size);
  n++;
  for (const ratio of [...c.upsampling_ratios].reverse()) {
    for (let j = 0; j < c.num_residual_layers; j++, n++) s = residual(w, at(), s, c, j);
    n++; // ELU, applied by the next conv
    s = sconv(w, `${at()}.conv`, s, 2 * s.channels, 2 * ratio, { stride: ratio, elu: true });
    n++;
  }
  s = slstm(w, `${at()}.lstm`, s, c.num_lstm_layers);
  n += 2;
  return sconv(w, `${at()}.conv`, s, c.hidden_size, c.last_kernel_size, { elu: true });
}

/** The decoder: latent (T, hidden_size) → audio (T · hop). */
export function decode(w: Weights, c: OracleConfig, latent: ArrayLike<number>, frames: number) {
  let s: Signal = { x: latent, length: frames, channels: c.hidden_size };
  const width = c.num_filters * 2 ** c.upsampling_ratios.length;
  s = sconv(w, "decoder.layers.0.conv", s, width, c.kernel_size);
  s = slstm(w, "decoder.layers.1.lstm", s, c.num_lstm_layers);
  let n = 2;
  for (const ratio of c.upsampling_ratios) {
    const prefix = `decoder.layers.${n + 1}.conv`;
    const k = 2 * ratio;
    const cout = s.channels / 2;
    const total = k - ratio;
    const right = Math.ceil(total * c.trim_right_ratio);
    const y = ref.convTranspose1d(
      s.x,
      s.length,
      folded(w, prefix, s.channels),
      w(`${prefix}.bias`),
      [
        s.channels,
        cout,
        k,
      ],
      ratio,
      { left: total - right, length: s.length * ratio },
      true,
    );
    s = { x: y, length: s.length * ratio, channels: cout };
    n += 2;
    for (let j = 0; j < c.num_residual_layers; j++, n++) {
      s = residual(w, `decoder.layers.${n}`, s, c, j);
    }
  }
  return sconv(w, `decoder.layers.${n + 1}.conv`, s, 1, c.last_kernel_size, { elu: true });
}
