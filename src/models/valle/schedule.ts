/**
 * The NAR-len demasking schedule (valle-spec §5.4a with Correction 1): per step k of S, the
 * timestep t_k, the number of positions to (re)mask n_k = clamp(int((cos(t_k·π/2) + ρ)·L), 1,
 * L − k) and the annealed temperature T0·(1 − t_k).
 *
 * The original takes t from `torch.linspace(0, 1, S)` on the CPU in float32, whose values are not
 * f32(k/(S−1)): ATen uses step = f32(1/(S−1)), fills the first half as fma(step, k, 0) and the
 * second as fma(−step, S−1−k, 1), and for S ≥ 16 fills blocks of two 8-lane vectors as
 * base + f32(step·lane) from the block's first index (AVX2 builds). The cosine argument t·π·0.5
 * is float32 (π rounded to float32); only the cosine runs in double. With exact k/(S−1) some
 * counts differ (e.g. L = 12, S = 10, step 6: 5 vs 6). AVX-512 builds (16 lanes) may differ for
 * S ≥ 32; this emulates the 8-lane kernel, which the golden data were made with.
 *
 * This module is browser compatible.
 *
 * @module
 */

const f32 = Math.fround;

/**
 * fma(a, b, c) rounded once to float32, for float32 inputs: the product is exact in double; the
 * double sum's rounding error (TwoSum) decides the rare case of a sum exactly halfway between two
 * float32 values, where rounding the double sum again would round twice.
 */
function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bv = s - p;
  const err = (p - (s - bv)) + (c - bv); // p + c = s + err exactly
  const r = f32(s);
  if (err === 0 || r === s) return r;
  const other = r > s ? nextDown(r) : nextUp(r);
  if ((r + other) / 2 !== s) return r;
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

function nextUp(x: number): number {
  const b = new Float32Array([x]);
  const u = new Uint32Array(b.buffer);
  if (x >= 0) u[0] += 1;
  else u[0] -= 1;
  return b[0];
}

function nextDown(x: number): number {
  return -nextUp(-x);
}

/**
 * The float32 values of PyTorch's CPU `torch.linspace(0, 1, steps)`.
 *
 * @param steps Number of steps S ≥ 1.
 * @returns S timesteps from 0 to 1.
 *
 * @example
 * ```ts
 * import { demaskTimesteps } from "@valle/core/valle";
 * const t = demaskTimesteps(25);
 * console.assert(t[0] === 0 && t[24] === 1);
 * ```
 */
export function demaskTimesteps(steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) return out; // linspace(0, 1, 1) = [0]
  const step = f32(1 / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const scalar = (k: number) => k < halfway ? fmaf(step, k, 0) : fmaf(-step, steps - k - 1, 1);
  const lanes = 8;
  const vectorized = Math.floor(steps / (2 * lanes)) * 2 * lanes;
  for (let block = 0; block < vectorized; block += lanes) {
    const base = scalar(block);
    for (let lane = 0; lane < lanes; lane++) out[block + lane] = f32(base + f32(step * lane));
  }
  for (let k = vectorized; k < steps; k++) out[k] = scalar(k);
  return out;
}

/** One step of the schedule. */
export interface DemaskStep {
  /** The float32 timestep t_k. */
  readonly t: number;
  /** Positions to mask at this step. */
  readonly count: number;
  /** Sampling temperature T0 · (1 − t_k) in float32 (annealed), or T0. */
  readonly temperature: number;
}

/** Options of {@linkcode demaskSchedule}. */
export interface DemaskScheduleOptions {
  /** Steps S (the original's max_steps). */
  steps: number;
  /** Utterance length L in frames. */
  length: number;
  /** Base temperature T0. Default 0. */
  temperature?: number;
  /** Anneal the temperature as T0 · (1 − t). Default true. */
  annealed?: boolean;
  /** Remasking: add 1/(2S) to the mask ratio (`sampling_scores_remask`). Default false. */
  remask?: boolean;
}

/**
 * The whole schedule for an utterance.
 *
 * @example
 * ```ts
 * import { demaskSchedule } from "@valle/core/valle";
 * const s = demaskSchedule({ steps: 25, length: 100 });
 * console.assert(s[0].count === 100 && s[24].count === 1);
 * ```
 */
export function demaskSchedule(options: DemaskScheduleOptions): DemaskStep[] {
  const { steps, length } = options;
  const t0 = f32(options.temperature ?? 0);
  const remask = options.remask ? 1 / (steps * 2) : 0;
  const pi = f32(Math.PI);
  return Array.from(demaskTimesteps(steps), (t, k) => {
    const noise = Math.cos(f32(f32(t * pi) * 0.5));
    // utils.clamp(x, lo, hi) = max(lo, min(hi, x)): 1 even when L − k < 1.
    const count = Math.max(1, Math.min(length - k, Math.trunc((noise + remask) * length)));
    const temperature = options.annealed === false ? t0 : f32(t0 * f32(1 - t));
    return { t, count, temperature };
  });
}
