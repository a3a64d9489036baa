/**
 * The VALL-E sampler on the GPU (kernel `sample`): repetition and length penalties, min-p, top-k,
 * top-p, temperature (plain or dynamic), top-nσ, then argmax or a seeded categorical draw, with
 * the chosen token's probability as its score. Stage order, in-place semantics and quirks follow
 * the original `Base.sample` (valle-spec §6 and Corrections 3-6):
 *
 * - the repetition penalty divides once per occurrence, whatever the logit's sign; with exactly
 *   one previous token and one row (AR step 1) it penalises nothing (the original takes its NAR
 *   branch there);
 * - min-p keeps at least the 32 largest logits; top-k keeps every logit equal to the k-th;
 * - top-nσ uses n = 1 whatever value turns it on; after any filter it filters everything (the
 *   original's std is NaN there), giving token 0 with a NaN score;
 * - top-k/top-p and dynamic temperature modify the logits in place, so a second call on the same
 *   logits (NAR-len scoring) applies them again, as the original does.
 *
 * Random draws hash (seed, stream, counter, row) with pcg4d, a counter-based generator: the same
 * seed gives the same tokens whatever the batching of steps, and no state lives on the CPU.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkRanges, type NumberRange, withDefaults } from "../../_options.ts";
import { OptionError } from "../../errors.ts";
import type { KernelSpec, Recorder, Tensor } from "../../backends/backend.ts";
import { createTensor, readBytes, rows, uploadTensor, writeTensor } from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { expectDtype, expectShape } from "../../ops/_check.ts";
import type { OpKernel } from "../../ops/_kernels.ts";

/**
 * Random stream ids: draws hash (seed, stream, counter, row), the counter being the step (AR,
 * STT, NAR-len) or the level (NAR), so every mode draws independent numbers under one seed.
 */
export const STREAM = { ar: 1, nar: 2, narLen: 3, stt: 4, len: 5 } as const;

/** Sampler settings, named after the original's `sampling_kwargs` in camelCase. */
export interface SamplerOptions {
  /** Temperature ≥ 0; 0 picks the argmax. Default 1. */
  temperature?: number;
  /** Dynamic temperature's lower end, ≥ -1; negative means "same as temperature" (off). Default -1. */
  minTemperature?: number;
  /** Keep the k largest logits (ties kept); 0 is off. Default 0. */
  topK?: number;
  /** Nucleus filtering threshold; 1 is off. Default 1. */
  topP?: number;
  /** Drop tokens below minP · p_max (keeping 32); 0 is off. Default 0. */
  minP?: number;
  /** Divide logits of previous tokens by this · distance^decay; 1 is off. Default 1. */
  repetitionPenalty?: number;
  /** Distance exponent of the repetition penalty. Default 0. */
  repetitionPenaltyDecay?: number;
  /** AR only: divide the stop logit by (length + 1)^this; 0 is off. Default 0. */
  lengthPenalty?: number;
  /** Top-nσ: any value > 0 turns it on, with n = 1 as in the original. Default 0 (off). */
  topNSigma?: number;
}

/** Sampler settings with every default filled in. */
export type ResolvedSamplerOptions = Required<SamplerOptions>;

/** The defaults of {@linkcode SamplerOptions}. */
export const SAMPLER_DEFAULTS: Readonly<ResolvedSamplerOptions> = Object.freeze({
  temperature: 1,
  minTemperature: -1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  repetitionPenaltyDecay: 0,
  lengthPenalty: 0,
  topNSigma: 0,
});

/**
 * The values each sampler option accepts; the product's options take theirs from here too.
 * Negative temperatures are refused (the original treats them as greedy, which is 0 here). The
 * upper bounds keep every quantity the kernels form finite in f32 (largest 3.4e38): logits ÷
 * temperature, penalty · distance^decay and (length + 1)^lengthPenalty over 9,000 frames (120 s),
 * and are far past any useful setting (a temperature of 100 is already uniform sampling).
 */
export const SAMPLER_RANGES: { readonly [K in keyof SamplerOptions]-?: NumberRange } = {
  temperature: { min: 0, max: 100 },
  minTemperature: { min: -1, max: 100 },
  topK: { integer: true, min: 0, max: 65536 },
  topP: { above: 0, max: 1 },
  minP: { min: 0, below: 1 },
  repetitionPenalty: { above: 0, max: 100 },
  repetitionPenaltyDecay: { min: -8, max: 8 },
  lengthPenalty: { min: -8, max: 8 },
  topNSigma: { min: 0, max: 100 },
};

/**
 * Fills in defaults and checks ranges ({@linkcode SAMPLER_RANGES}).
 *
 * @throws {OptionError} A value outside its range, naming the option, the value and the range.
 *
 * @example
 * ```ts
 * import { resolveSamplerOptions } from "@valle/core/valle";
 * const options = resolveSamplerOptions({ temperature: 0 });
 * console.assert(options.topP === 1);
 * ```
 */
export function resolveSamplerOptions(options: SamplerOptions = {}): ResolvedSamplerOptions {
  const o: ResolvedSamplerOptions = withDefaults(SAMPLER_DEFAULTS, options);
  checkRanges("sample", o, SAMPLER_RANGES);
  return o;
}

/** Whether these options need the row sorted (and so at most 2048 columns). */
function sorts(o: ResolvedSamplerOptions): boolean {
  return o.minP > 0 || o.topK > 0 || o.topP < 1;
}

/** The widest row the sorting stages handle (the kernel sorts in workgroup memory). */
export const MAX_SORTED_COLUMNS = 2048;

/**
 * The repetition-penalty divisors by distance d = 0..n: f32(factor · d^decay), as the original
 * computes them in double before dividing the float32 logits. Upload before a loop.
 *
 * @example
 * ```ts
 * import { penaltyTable } from "@valle/core/valle";
 * console.assert(penaltyTable(1.5, 0, 3)[2] === 1.5);
 * ```
 */
export function penaltyTable(factor: number, decay: number, n: number): Float32Array {
  const table = new Float32Array(n + 1);
  for (let d = 1; d <= n; d++) table[d] = factor * d ** decay;
  return table;
}

const SAMPLE: KernelSpec = {
  shader: "sample",
  bindings: ["write", "write", "write", "read"],
  params: [
    "u32", // rows
    "u32", // cols
    "u32", // logits_off
    "u32", // work_off
    "u32", // prev_off
    "u32", // n_prev
    "u32", // rep_mode
    "u32", // pen_off
    "f32", // len_pen_div
    "u32", // len_pen_token
    "f32", // min_p
    "u32", // top_k
    "f32", // top_p
    "u32", // temp_mode
    "f32", // temperature
    "f32", // min_temperature
    "u32", // top_no
    "u32", // greedy
    "u32", // seed
    "u32", // stream
    "u32", // counter
    "u32", // out_off
    "u32", // score_off
  ],
};

/** The kernels the sampler may dispatch, for warming at load (`kernelUses`). */
export const SAMPLE_KERNELS: readonly OpKernel[] = [{ spec: SAMPLE }];

/** The buffers of one sampler call. */
export interface SampleIo {
  /** Logits (rows, cols) f32, processed in place by the in-place stages. */
  logits: Tensor;
  /** Working rows (rows, cols) f32 in the same buffer as `logits`; holds the final logits when a copying stage ran. */
  work: Tensor;
  /** Chosen tokens (rows) u32. */
  out: Tensor;
  /** Their probabilities (rows) f32. */
  scores: Tensor;
  /** Previous tokens (nPrev) u32 in the same buffer as `out`, for the repetition penalty. */
  prev?: Tensor;
  /**
   * Divisors from {@linkcode penaltyTable} (at least nPrev + 1 when the repetition penalty is on;
   * bound in every call, so it must be a buffer no other binding uses).
   */
  penalties: Tensor;
}

/** Per-call settings of {@linkcode sample}. */
export interface SampleCall {
  /** Resolved options. */
  options: ResolvedSamplerOptions;
  /** Length penalty target: the current length (the original passes len(prev) + 1) and stop token. */
  lengthPenalty?: { length: number; token: number };
  /** Random stream: seed, a stream id per mode and a counter per step. */
  seed: number;
  /** Stream id (distinguishes AR, NAR levels, NAR-len … under one seed). */
  stream: number;
  /** Step counter. */
  counter: number;
}

/**
 * Records one sampler call over `io.logits`' rows.
 *
 * @param rec The recorder.
 * @param io Logits, work rows, outputs, previous tokens.
 * @param call Options and random stream.
 * @throws {OptionError} Buffers that do not fit, or a sorting stage on rows wider than 2048.
 *
 * @example
 * ```ts ignore
 * sample(rec, { logits, work, out, scores }, { options, seed: 1, stream: 1, counter: step });
 * ```
 */
export function sample(rec: Recorder, io: SampleIo, call: SampleCall): void {
  const op = "sample";
  const { logits, work, out, scores, prev } = io;
  const [n, cols] = logits.shape;
  const o = call.options;
  expectShape(op, "logits", logits, [-1, -1]);
  expectShape(op, "work", work, [n, cols]);
  expectShape(op, "out", out, [n]);
  expectShape(op, "scores", scores, [n]);
  expectDtype(op, "logits", logits, "f32");
  expectDtype(op, "out", out, "u32");
  expectDtype(op, "scores", scores, "f32");
  if (work.buffer !== logits.buffer || (prev && prev.buffer !== out.buffer)) {
    throw new OptionError(
      "Cannot record sample: work must share the logits buffer and prev the output buffer",
    );
  }
  if (sorts(o) && cols > MAX_SORTED_COLUMNS) {
    throw new OptionError(
      `Cannot record sample: min-p/top-k/top-p on rows of ${cols} logits, expected at most ${MAX_SORTED_COLUMNS}`,
    );
  }
  const nPrev = prev ? prev.shape[0] : 0;
  const penalize = o.repetitionPenalty !== 1 && nPrev > 0;
  if (penalize && io.penalties.shape[0] < nPrev + 1) {
    throw new OptionError(
      `Cannot record sample: the repetition penalty needs ${nPrev + 1} divisors`,
    );
  }
  const minT = o.minTemperature < 0 ? o.temperature : o.minTemperature;
  const tempMode = Math.abs(o.temperature - minT) >= 0.001 ? 2 : o.temperature > 0 ? 1 : 0;
  const lp = call.lengthPenalty;
  const lenDiv = o.lengthPenalty !== 0 && lp ? lp.length ** o.lengthPenalty : 0;
  const penalties = io.penalties;
  const params = [
    n,
    cols,
    logits.offset,
    work.offset,
    prev ? prev.offset : 0,
    nPrev,
    penalize ? (nPrev === n ? 2 : 1) : 0,
    penalties.offset,
    lenDiv,
    lp ? lp.token : 0,
    o.minP,
    Math.min(o.topK, cols), // a u32; k ≥ cols keeps every column anyway
    o.topP,
    tempMode,
    o.temperature,
    minT,
    o.topNSigma > 0 ? 1 : 0,
    o.temperature <= 0 ? 1 : 0,
    call.seed >>> 0,
    call.stream >>> 0,
    call.counter >>> 0,
    out.offset,
    scores.offset,
  ];
  rec.dispatch(SAMPLE, [logits, out, scores, penalties], params, [n]);
}

/** The result of {@linkcode sampleLogits}. */
export interface SampledLogits {
  /** The chosen token per row. */
  tokens: Int32Array;
  /** softmax(final logits)[token] per row (NaN when every logit was filtered). */
  scores: Float32Array;
  /** The final processed logits (rows · cols), filtered entries as -Infinity. */
  processed: Float32Array;
  /** The logits rows after the call: the in-place stages' effect (filtered as -Infinity). */
  inPlace: Float32Array;
}

/**
 * Runs the GPU sampler once on logits given from the CPU, for debugging and checking sampler
 * settings (the generation loops call {@linkcode sample} on logits that never leave the GPU).
 * Creates and frees its own buffers.
 *
 * @param backend The device.
 * @param logits Row-major logits (rows · cols).
 * @param shape [rows, cols].
 * @param options Sampler options.
 * @param extra Previous tokens, the length penalty target, and the random draw's seed, stream
 * and counter (the generation loops use stream 1 for AR, 2 NAR, 3 NAR-len, 4 STT, counter =
 * step or level).
 * @returns Tokens, scores and the processed logits.
 *
 * @example
 * ```ts ignore
 * const { tokens } = await sampleLogits(backend, logits, [1, 1025], { temperature: 0, topK: 50 });
 * ```
 */
export async function sampleLogits(
  backend: Backend,
  logits: Float32Array,
  shape: [number, number],
  options: SamplerOptions,
  extra: {
    previous?: ArrayLike<number>;
    lengthPenalty?: { length: number; token: number };
    seed?: number;
    stream?: number;
    counter?: number;
  } = {},
): Promise<SampledLogits> {
  const [n, cols] = shape;
  const o = resolveSamplerOptions(options);
  const prev = Uint32Array.from(extra.previous ?? []);
  const buf = createTensor(backend, [2 * n, cols], "f32", "valle.sample.logits");
  writeTensor(backend, buf, logits);
  const tokens = createTensor(backend, [prev.length + n], "u32", "valle.sample.tokens");
  if (prev.length > 0) writeTensor(backend, tokens, prev);
  const scores = createTensor(backend, [n], "f32", "valle.sample.scores");
  const table = penaltyTable(o.repetitionPenalty, o.repetitionPenaltyDecay, prev.length);
  const penalties = uploadTensor(backend, table, [table.length], "f32", "valle.sample.penalties");
  const rec = backend.createRecorder({ label: "valle.sample" });
  const work = rows(buf, n, n);
  const io: SampleIo = {
    logits: rows(buf, 0, n),
    work,
    out: rows(tokens, prev.length, n),
    scores,
    prev: prev.length > 0 ? rows(tokens, 0, prev.length) : undefined,
    penalties,
  };
  // The final logits are in the work rows when a copying stage ran, else in the logits rows.
  rec.clear(work);
  sample(rec, io, {
    options: o,
    lengthPenalty: extra.lengthPenalty,
    seed: extra.seed ?? 0,
    stream: extra.stream ?? 0,
    counter: extra.counter ?? 0,
  });
  rec.submit();
  const [all, ids, sc] = await readBytes(backend, [buf, io.out, scores]);
  rec.destroy();
  for (const t of [buf, tokens, scores, penalties]) t.buffer.destroy();
  const values = new Float32Array(all);
  const minT = o.minTemperature < 0 ? o.temperature : o.minTemperature;
  const copied = o.minP > 0 || o.topNSigma > 0 ||
    (Math.abs(o.temperature - minT) < 0.001 && o.temperature > 0);
  const unfilter = (a: Float32Array) => a.map((v) => (v <= -1e38 ? -Infinity : v));
  const inPlace = unfilter(values.slice(0, n * cols));
  return {
    tokens: new Int32Array(ids),
    scores: new Float32Array(sc),
    processed: copied ? unfilter(values.slice(n * cols)) : inPlace,
    inPlace,
  };
}
