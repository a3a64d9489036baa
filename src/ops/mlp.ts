/**
 * The gated MLP of LLaMA blocks with VALL-E's exact (erf) GELU:
 * out = down(gelu(gate(x)) ⊙ up(x)), and the gradient of its activation for training.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { KernelSpec, Recorder, Tensor } from "../backends/backend.ts";
import { numel } from "../backends/tensor.ts";
import { grid1d } from "./_grid.ts";
import { OptionError } from "../errors.ts";
import { expectDtype, expectShape, weightType } from "./_check.ts";
import { linear } from "./linear.ts";
import type { OpKernel } from "./_kernels.ts";

const GELU_MUL: KernelSpec = {
  shader: "gelu_mul",
  bindings: ["write", "read"],
  params: ["u32", "u32", "u32"],
};

const GELU_MUL_BACKWARD: KernelSpec = {
  shader: "gelu_mul_backward",
  // All read_write, so that an output may alias an input (see geluMulBackward).
  bindings: ["write", "write", "write", "write", "write"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};

const GELU_MUL_STACKED: KernelSpec = {
  shader: "gelu_mul_stacked",
  bindings: ["write", "read"],
  params: ["u32", "u32", "u32", "u32"],
};

/** The kernels the MLP (besides `linear`'s) may dispatch, for warming at load (`kernelUses`). */
export const MLP_KERNELS: readonly OpKernel[] = [{ spec: GELU_MUL }, { spec: GELU_MUL_STACKED }];

/** The kernels of the MLP's backward pass (besides `linear`'s), for warming (`kernelUses`). */
export const MLP_BACKWARD_KERNELS: readonly OpKernel[] = [{ spec: GELU_MUL_BACKWARD }];

/**
 * Records g = gelu(g) ⊙ u in place, GELU in its exact erf form.
 *
 * @example
 * ```ts ignore
 * geluMul(rec, gate, up);
 * ```
 */
export function geluMul(rec: Recorder, g: Tensor, u: Tensor): void {
  expectDtype("geluMul", "g", g, "f32");
  expectDtype("geluMul", "u", u, "f32");
  expectShape("geluMul", "u", u, g.shape);
  const n = numel(g.shape);
  rec.dispatch(
    GELU_MUL,
    [g, u],
    [n, g.offset, u.offset],
    grid1d(Math.ceil(n / 256)),
  );
}

/**
 * Records the gradient of m = gelu(g) ⊙ u (what {@linkcode geluMul} leaves in `g`), exact erf
 * GELU: dg = dm ⊙ u ⊙ gelu'(g) and du = dm ⊙ gelu(g), gelu'(z) = Φ(z) + z φ(z).
 *
 * An output may be the very elements of an input (`dg` over `dm`, `du` over `u`, ...): each
 * element is read before it is written. Tensors sharing a buffer otherwise must not overlap.
 *
 * @param rec The recorder.
 * @param dg Gradient of the gate projection's output, f32, written.
 * @param du Gradient of the up projection's output, f32 (the shape of `dg`), written.
 * @param dm Gradient of m, f32 (the shape of `dg`).
 * @param g The gate projection's output before {@linkcode geluMul}, f32 (the shape of `dg`).
 * @param u The up projection's output, f32 (the shape of `dg`).
 * @throws {OptionError} A tensor of another shape or type, or partly overlapping another.
 *
 * @example
 * ```ts ignore
 * geluMulBackward(rec, dm, du, dm, gate, up); // dg written over dm
 * ```
 */
export function geluMulBackward(
  rec: Recorder,
  dg: Tensor,
  du: Tensor,
  dm: Tensor,
  g: Tensor,
  u: Tensor,
): void {
  const op = "geluMulBackward";
  const tensors = [["dg", dg], ["du", du], ["dm", dm], ["g", g], ["u", u]] as const;
  const n = numel(dg.shape);
  for (const [name, t] of tensors) {
    expectDtype(op, name, t, "f32");
    expectShape(op, name, t, dg.shape);
  }
  for (const [i, [a, ta]] of tensors.entries()) {
    for (const [b, tb] of tensors.slice(i + 1)) {
      const overlap = Math.abs(ta.offset - tb.offset) < n;
      if (ta.buffer === tb.buffer && overlap && ta.offset !== tb.offset) {
        throw new OptionError(
          `Cannot record ${op}: ${a} (offset ${ta.offset}) and ${b} (offset ${tb.offset}) overlap in part`,
        );
      }
    }
  }
  rec.dispatch(
    GELU_MUL_BACKWARD,
    [dg, du, dm, g, u],
    [n, dg.offset, du.offset, dm.offset, g.offset, u.offset],
    grid1d(Math.ceil(n / 256)),
  );
}

/**
 * Records out = gelu(gate) ⊙ up from stacked rows [gate | up] (one GEMM over the stacked gate
 * and up weights): the bits of {@linkcode geluMul} on the two halves apart.
 *
 * @param rec The recorder.
 * @param out Output (S, F), f32.
 * @param gateUp Stacked rows (S, 2F), f32.
 *
 * @example
 * ```ts ignore
 * linear(rec, gateUp, h, layer.gateUp);
 * geluMulStacked(rec, g, gateUp);
 * ```
 */
export function geluMulStacked(rec: Recorder, out: Tensor, gateUp: Tensor): void {
  const op = "geluMulStacked";
  expectDtype(op, "out", out, "f32");
  expectDtype(op, "gateUp", gateUp, "f32");
  expectShape(op, "out", out, [-1, -1]);
  const [s, f] = out.shape;
  expectShape(op, "gateUp", gateUp, [s, 2 * f]);
  const n = s * f;
  rec.dispatch(
    GELU_MUL_STACKED,
    [out, gateUp],
    [n, f, out.offset, gateUp.offset],
    grid1d(Math.ceil(n / 256)),
  );
}

/** The three projections of a gated MLP, PyTorch layout `[out, in]`. */
export interface MlpWeights {
  /** (F, D) */
  gate: Tensor;
  /** (F, D) */
  up: Tensor;
  /** (D, F) */
  down: Tensor;
}

/**
 * Records out = down(gelu(gate · x) ⊙ (up · x)).
 *
 * @param rec The recorder.
 * @param out Output (S, D), f32.
 * @param x Input (S, D), f32.
 * @param w The projections.
 * @param scratch Two (S, F) f32 tensors in different buffers, overwritten.
 * @throws {OptionError} A tensor of the wrong shape or type; nothing is recorded then.
 *
 * @example
 * ```ts ignore
 * gatedMlp(rec, ff, h, layer.mlp, [gateOut, upOut]);
 * ```
 */
export function gatedMlp(
  rec: Recorder,
  out: Tensor,
  x: Tensor,
  w: MlpWeights,
  scratch: readonly [Tensor, Tensor],
): void {
  // Every tensor is checked before the first projection is recorded: a refusal records nothing.
  const op = "gatedMlp";
  expectShape(op, "x", x, [-1, -1]);
  const [s, d] = x.shape;
  const f = w.gate.shape[0];
  const [g, u] = scratch;
  const expect = (name: string, t: Tensor, shape: number[], weight = false) => {
    expectShape(op, name, t, shape);
    if (weight) weightType(op, name, t);
    else expectDtype(op, name, t, "f32");
  };
  expect("x", x, [s, d]);
  expect("out", out, [s, d]);
  expect("scratch[0]", g, [s, f]);
  expect("scratch[1]", u, [s, f]);
  expect("gate", w.gate, [f, d], true);
  expect("up", w.up, [f, d], true);
  expect("down", w.down, [d, f], true);
  linear(rec, g, x, w.gate);
  linear(rec, u, x, w.up);
  geluMul(rec, g, u);
  linear(rec, out, g, w.down);
}
