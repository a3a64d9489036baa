/**
 * Records the SEANet layers of EnCodec on time-major activations `(L, C)`: the convolutional
 * stages before and after the LSTM (an ELU that precedes a convolution is fused into that
 * convolution's input), the LSTM with its state carried between calls, and the receptive-field
 * arithmetic that tells a chunked run how much left context each stage needs to reproduce the
 * unchunked result exactly.
 *
 * mirrors encodec/modules/{conv,seanet,lstm}.py: SConv1d, SConvTranspose1d, SEANetResnetBlock, SLSTM
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import type { Recorder, Tensor } from "../../backends/backend.ts";
import { rows } from "../../backends/tensor.ts";
import { elu } from "../../ops/activation.ts";
import { conv1d, conv1dLength, convTranspose1d } from "../../ops/conv1d.ts";
import { add } from "../../ops/elementwise.ts";
import { lstmLayer } from "../../ops/lstm.ts";
import type { Workspace } from "../_codec.ts";
import type { ConvLayer, LstmLayer, SeanetLayer } from "./weights.ts";

/** Called with a layer's index and its output, to record a copy (the buffer is reused later). */
export type LayerTrace = (rec: Recorder, index: number, output: Tensor) => void;

/**
 * Records `layers[from, to)` (no LSTM among them) on `x`, ping-ponging between workspace
 * buffers `a` and `b` (plus `hidden` inside residual blocks).
 *
 * @returns The output, a view of `a` or `b`.
 */
export function recordStage(
  rec: Recorder,
  ws: Workspace,
  layers: readonly SeanetLayer[],
  range: readonly [number, number],
  x: Tensor,
  trace?: LayerTrace,
): Tensor {
  let pendingElu = false;
  for (let i = range[0]; i < range[1]; i++) {
    const layer = layers[i];
    const out = x.buffer === ws.tensor("a", [1]).buffer ? "b" : "a";
    const length = x.shape[0];
    switch (layer.kind) {
      case "conv": {
        const y = ws.tensor(out, [convOutLength(layer, length), layer.cout]);
        causalConv(rec, y, x, layer, { elu: pendingElu });
        x = y;
        break;
      }
      case "convtr": {
        const y = ws.tensor(out, [length * layer.stride, layer.cout]);
        convTranspose1d(rec, y, x, layer.w, layer.b, {
          stride: layer.stride,
          trimLeft: layer.trimLeft,
          elu: pendingElu,
        });
        x = y;
        break;
      }
      case "residual": {
        if (pendingElu) throw new OptionError(`Cannot record ${layer.name}: an ELU precedes it`);
        const [first, second] = layer.convs;
        const h = ws.tensor("hidden", [length, first.cout]);
        const y = ws.tensor(out, [length, second.cout]);
        causalConv(rec, h, x, first, { elu: true });
        if (layer.shortcut) causalConv(rec, y, x, layer.shortcut, {});
        else rec.copy(x, y);
        causalConv(rec, y, h, second, { elu: true, accumulate: true });
        x = y;
        break;
      }
      case "elu": {
        const next = layers[i + 1]?.kind;
        if (i + 1 < range[1] && (next === "conv" || next === "convtr")) {
          // Fused into the next convolution's input; materialized only for a trace.
          pendingElu = true;
          if (trace) {
            const t = ws.tensor("trace", x.shape);
            elu(rec, t, x);
            trace(rec, i, t);
          }
          continue;
        }
        const y = ws.tensor(out, x.shape);
        elu(rec, y, x);
        x = y;
        break;
      }
      case "lstm":
        throw new OptionError(`Cannot record ${layer.name} in a convolutional stage`);
    }
    pendingElu = false;
    trace?.(rec, i, x);
  }
  return x;
}

function convOutLength(layer: ConvLayer, length: number): number {
  return conv1dLength(length, layer.taps, {
    stride: layer.stride,
    dilation: layer.dilation,
    padLeft: layer.padLeft,
    padRight: extraPadding(layer, length),
  });
}

/** SConv1d's extra right padding: enough for the last window to be complete. */
function extraPadding(layer: ConvLayer, length: number): number {
  const span = (layer.taps - 1) * layer.dilation + 1;
  const frames = (length - span + layer.padLeft) / layer.stride + 1;
  return (Math.ceil(frames) - 1) * layer.stride + span - layer.padLeft - length;
}

/** SConv1d: causal reflect padding on the left, the extra padding on the right, then the conv. */
function causalConv(
  rec: Recorder,
  y: Tensor,
  x: Tensor,
  layer: ConvLayer,
  options: { elu?: boolean; accumulate?: boolean },
): void {
  conv1d(rec, y, x, layer.w, layer.b, {
    stride: layer.stride,
    dilation: layer.dilation,
    padLeft: layer.padLeft,
    padRight: extraPadding(layer, x.shape[0]),
    padMode: "reflect",
    ...options,
  });
}

/** The recurrent state of one SLSTM: h and c per layer. */
export interface LstmState {
  /** (H) per layer. */
  readonly h: readonly Tensor[];
  /** (H) per layer. */
  readonly c: readonly Tensor[];
}

/** Allocates (zeroed) state for an SLSTM in the workspace, under `prefix`. */
export function lstmState(
  rec: Recorder,
  ws: Workspace,
  layer: LstmLayer,
  prefix: string,
): LstmState {
  const h = layer.layers.map((_, n) => ws.tensor(`${prefix}.h${n}`, [layer.hidden]));
  const c = layer.layers.map((_, n) => ws.tensor(`${prefix}.c${n}`, [layer.hidden]));
  for (const t of [...h, ...c]) rec.clear(t);
  return { h, c };
}

/**
 * Records SLSTM: y = LSTM(x) + x over the frames of `x`, continuing from `state` and leaving the
 * final state in it.
 *
 * @param y Output (T, C), another buffer than `x` and the workspace's LSTM buffers.
 */
export function recordLstm(
  rec: Recorder,
  ws: Workspace,
  layer: LstmLayer,
  state: LstmState,
  x: Tensor,
  y: Tensor,
): void {
  const steps = x.shape[0];
  const hidden = layer.hidden;
  const gx = ws.tensor("lstm.gates", [steps, 4 * hidden]);
  let input = x;
  layer.layers.forEach((weights, n) => {
    // Two sequence buffers alternate, so layer n + 1 reads layer n's outputs while writing.
    const hs = ws.tensor(`lstm.hs${n % 2}`, [steps + 1, hidden]);
    conv1d(rec, gx, input, weights.wih, weights.bias);
    rec.copy(state.h[n], rows(hs, 0, 1));
    lstmLayer(rec, hs, state.c[n], gx, weights.whh);
    rec.copy(rows(hs, steps, 1), state.h[n]);
    input = rows(hs, 1, steps);
  });
  rec.copy(input, y);
  add(rec, y, x);
}

/**
 * The input positions [lo, hi] that output position `o` of `layers[from, to)` reads through
 * every path (as if the signal went on forever: no padding involved). A chunk whose input starts
 * o − lo positions before its first output computes that output exactly as the whole signal
 * does, once it is away from the true start; hi tells whether the stage is causal.
 */
export function inputSpan(
  layers: readonly SeanetLayer[],
  range: readonly [number, number],
  o: number,
): [number, number] {
  let [lo, hi] = [o, o];
  for (let i = range[1] - 1; i >= range[0]; i--) {
    const layer = layers[i];
    if (layer.kind === "conv") {
      const span = (layer.taps - 1) * layer.dilation + 1;
      [lo, hi] = [lo * layer.stride - layer.padLeft, hi * layer.stride + span - 1 - layer.padLeft];
    } else if (layer.kind === "convtr") {
      lo = Math.floor((lo + layer.trimLeft) / layer.stride) - (layer.taps - 1);
      hi = Math.floor((hi + layer.trimLeft) / layer.stride);
    } else if (layer.kind === "residual") {
      for (const conv of layer.convs) {
        const span = (conv.taps - 1) * conv.dilation + 1;
        [lo, hi] = [lo - conv.padLeft, hi + span - 1 - conv.padLeft];
      }
    }
  }
  return [lo, hi];
}
