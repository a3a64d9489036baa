/**
 * How close a quantized VALL-E model (`dtype: "q8" | "q4"`) stays to the same model in f16: for
 * each kind of pass, the mean KL divergence KL(f16 ‖ quantized) of the output distributions and
 * the fraction of rows whose most likely code agrees; and the fraction of identical codes in a
 * seeded synthesis (the default sampler: AR temperature 1, where any change of the distribution
 * can move the sampled code, and the run diverges from there) and in a greedy one. Used by `deno task golden --dtype` (on golden folders) and by
 * tools/quant_report.ts (on a full-size random model).
 *
 * Passes: AR level 0 teacher-forced (every response position of one causal pass), each NAR level
 * (levels below it given), NAR-len with every other frame masked.
 */

import { createBackend } from "../../src/backends/select.ts";
import { readSafetensors } from "../../src/io/safetensors.ts";
import {
  type Codes,
  type ValleConditioning,
  ValleModel,
  valleWeightBytes,
} from "../../src/models/valle/mod.ts";

/** One pass kind's agreement. */
export interface PassAgreement {
  /** The pass, e.g. "AR level 0 (teacher-forced)", "NAR level 3". */
  pass: string;
  /** Output distributions compared. */
  rows: number;
  /** Mean KL(f16 ‖ quantized), in nats. */
  kl: number;
  /** Fraction of rows with the same argmax. */
  top1: number;
}

/** Two syntheses compared code by code. */
export interface SynthesisAgreement {
  /** "seeded" (the default sampler, AR temperature 1) or "greedy" (temperature 0). */
  kind: string;
  /** Codes (frame, level) equal in both, over the longer one's frames × levels. */
  identical: number;
  /** Frames × levels of the longer synthesis. */
  codes: number;
  /** Seconds each took (same machine, one run: compare as a ratio). */
  seconds: { reference: number; quantized: number };
}

/** Everything {@linkcode quantAgreement} measures. */
export interface QuantAgreement {
  /** Per pass kind. */
  passes: PassAgreement[];
  /** A seeded synthesis with the default sampler, and a greedy one. */
  syntheses: SynthesisAgreement[];
}

/** What the comparison runs on. */
export interface AgreementInput {
  /** Phonemes, language, prompt. */
  cond: ValleConditioning;
  /** The response codes the passes are teacher-forced with (all levels). */
  response: Codes;
  /** Seed of the synthesis. */
  seed: number;
  /** AR frames at most in the synthesis. */
  maxSteps: number;
}

/**
 * Compares `quantized` with `reference` (the same weights in f16) on one input.
 *
 * @example
 * ```ts ignore
 * const { passes, identical, codes } = await quantAgreement(f16, q4, input);
 * ```
 */
export async function quantAgreement(
  reference: ValleModel,
  quantized: ValleModel,
  input: AgreementInput,
): Promise<QuantAgreement> {
  const { cond, response } = input;
  const { nLevels, nAudio } = reference.config;
  const level0 = Int32Array.from(
    { length: response.frames },
    (_, t) => response.data[t * response.levels],
  );
  const requests: [string, Parameters<ValleModel["logits"]>[0]][] = [
    ["AR level 0 (teacher-forced)", { ...cond, mode: "ar", response: level0, teacherForced: true }],
  ];
  for (let level = 1; level < Math.min(nLevels, response.levels + 1); level++) {
    requests.push([`NAR level ${level}`, { ...cond, mode: "nar", level, response }]);
  }
  if (reference.config.hasNarLen) {
    const masked = level0.map((code, t) => t % 2 === 1 ? nAudio : code);
    requests.push(["NAR-len (every other frame masked)", {
      ...cond,
      mode: "nar-len",
      response: masked,
    }]);
  }
  const passes: PassAgreement[] = [];
  for (const [pass, request] of requests) {
    const a = await reference.logits(request);
    const b = await quantized.logits(request);
    passes.push({ pass, rows: a.rows, ...compareRows(a.logits, b.logits, a.columns) });
  }
  const syntheses: SynthesisAgreement[] = [];
  for (const kind of ["seeded", "greedy"]) {
    const synthesize = async (valle: ValleModel) => {
      const start = performance.now();
      const { codes } = await valle.generate({
        ...cond,
        modality: "ar+nar",
        ar: {
          seed: input.seed,
          maxSteps: input.maxSteps,
          sampler: kind === "greedy" ? { temperature: 0 } : undefined,
        },
        nar: { seed: input.seed },
      });
      return { codes, seconds: (performance.now() - start) / 1000 };
    };
    const a = await synthesize(reference);
    const b = await synthesize(quantized);
    const frames = Math.min(a.codes.frames, b.codes.frames);
    let identical = 0;
    for (let i = 0; i < frames * nLevels; i++) {
      if (a.codes.data[i] === b.codes.data[i]) identical++;
    }
    syntheses.push({
      kind,
      identical,
      codes: Math.max(a.codes.frames, b.codes.frames) * nLevels,
      seconds: { reference: a.seconds, quantized: b.seconds },
    });
  }
  return { passes, syntheses };
}

/** Mean KL(p ‖ q) of row-wise softmaxes, and the fraction of rows with the same argmax. */
export function compareRows(
  p: Float32Array,
  q: Float32Array,
  columns: number,
): { kl: number; top1: number } {
  const rows = p.length / columns;
  let kl = 0;
  let same = 0;
  for (let r = 0; r < rows; r++) {
    const a = logSoftmax(p.subarray(r * columns, (r + 1) * columns));
    const b = logSoftmax(q.subarray(r * columns, (r + 1) * columns));
    let sum = 0;
    for (let i = 0; i < columns; i++) sum += Math.exp(a[i]) * (a[i] - b[i]);
    kl += sum;
    if (argmax(a) === argmax(b)) same++;
  }
  return { kl: kl / rows, top1: same / rows };
}

function logSoftmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  const log = max + Math.log(sum);
  return Float64Array.from(x, (v) => v - log);
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** The lines a report prints for one comparison. */
export function agreementLines(label: string, result: QuantAgreement): string[] {
  const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
  const lines = result.passes.map((p) =>
    `${label} ${p.pass}: mean KL ${p.kl.toExponential(2)}, top-1 ${
      percent(p.top1)
    } (${p.rows} rows)`
  );
  for (const s of result.syntheses) {
    lines.push(
      `${label} ${s.kind} synthesis: ${percent(s.identical / s.codes)} identical codes ` +
        `(${s.identical} of ${s.codes}); ${s.seconds.quantized.toFixed(1)} s vs ` +
        `${s.seconds.reference.toFixed(1)} s for f16`,
    );
  }
  return lines;
}

/**
 * The agreement report of a golden folder in the valle-tiny format at `dtype`, against f16 (f32
 * where the device has no f16), on its shared inputs (phonemes, language, prompt, `resp_target`);
 * other folders (the codecs, which are never quantized) get one line saying so.
 *
 * @example
 * ```ts ignore
 * for await (const line of quantGoldenReport(folder, "q4", "cpu")) console.log(line);
 * ```
 */
export async function* quantGoldenReport(
  folder: URL,
  dtype: "q8" | "q4",
  kind: "webgpu" | "cpu",
): AsyncGenerator<string> {
  const name = folder.pathname.split("/").filter(Boolean).at(-1);
  if (!(await exists(new URL("inputs.safetensors", folder)))) {
    yield `${name}: no VALL-E inputs (codec folders are not quantized: dtype applies to VALL-E)`;
    return;
  }
  const inputs = await readSafetensors(new URL("inputs.safetensors", folder));
  const codes = (key: string): Codes => {
    const [frames, levels] = inputs.info(key).shape;
    return { data: inputs.toInt32(key), frames, levels };
  };
  const backend = await createBackend({ backend: kind });
  try {
    const float = backend.supportsF16 ? "f16" : "f32";
    const model = new URL("model.sft", folder);
    const reference = await ValleModel.load(model, { backend, dtype: float });
    const quantized = await ValleModel.load(model, { backend, dtype });
    try {
      const response = codes("resp_target");
      const result = await quantAgreement(reference, quantized, {
        cond: {
          phonemes: inputs.toInt32("phn"),
          language: inputs.has("lang") ? inputs.toInt32("lang")[0] : 0,
          prompt: inputs.has("prom") ? codes("prom") : null,
        },
        response,
        seed: 1,
        maxSteps: response.frames,
      });
      const bytes = (v: ValleModel) => (valleWeightBytes(v.weights) / 1e6).toFixed(2);
      yield `${name} [${dtype} vs ${float}, ${backend.description}]: weights ${
        bytes(quantized)
      } MB vs ${bytes(reference)} MB (matrices: ${storageShares(quantized)})`;
      yield* agreementLines(`${name} ${dtype}`, result);
    } finally {
      await reference.dispose();
      await quantized.dispose();
    }
  } finally {
    backend.destroy();
  }
}

async function exists(url: URL): Promise<boolean> {
  return await Deno.stat(url).then(() => true, () => false);
}

/**
 * What each storage type holds of a model's matrices (projections, heads, the stacked table), as
 * fractions of their weights, e.g. `q4_k 84%, q8_0 16%`.
 *
 * @example
 * ```ts ignore
 * console.log(storageShares(valle)); // "q4_k 84.0%, q8_0 16.0%"
 * ```
 */
export function storageShares(valle: ValleModel): string {
  const { weights } = valle;
  const matrices = [
    weights.embeddings,
    ...weights.heads.map((h) => h.weight),
    ...weights.layers.flatMap((l) => [
      l.qProj,
      l.kProj,
      l.vProj,
      l.oProj,
      l.gateProj,
      l.upProj,
      l.downProj,
    ]),
  ];
  const totals = new Map<string, number>();
  let all = 0;
  for (const t of matrices) {
    const n = t.shape[0] * t.shape[1];
    totals.set(t.dtype, (totals.get(t.dtype) ?? 0) + n);
    all += n;
  }
  return [...totals].sort((a, b) => b[1] - a[1])
    .map(([dtype, n]) => `${dtype} ${(100 * n / all).toFixed(1)}%`).join(", ");
}
