/**
 * Golden checker of the VALL-E family: runs every case file of a folder in the valle-tiny format
 * (model.sft + manifest.json + case files made by the original implementation) through the
 * library's public API, under every weight precision the device offers, and yields one result per
 * comparison. Case parameters come from the files' settings and tensor names, so other folders of
 * the same format run unchanged; a file, tensor, setting or description it does not understand is
 * a failure. The one thing reported as skipped instead: a pipeline part that needs a capability
 * the model lacks, when the file holds no tensors for it (a file written for another model of the
 * family). The tests (tests/models/valle/golden_test.ts) run the same functions.
 */

import type { Backend } from "../../src/backends/backend.ts";
import { createBackend } from "../../src/backends/select.ts";
import { readSafetensors, type Safetensors } from "../../src/io/safetensors.ts";
import {
  type Codes,
  demaskSchedule,
  demaskTimesteps,
  guideLogits,
  type LogitsRequest,
  sampleLogits,
  type SamplerOptions,
  type ValleConditioning,
  ValleModel,
} from "../../src/models/valle/mod.ts";
import type { CaseResult, GoldenFamily } from "./types.ts";
import {
  checkFreeRun,
  classifyTokens,
  type FreeRunCheck,
  type TokenClassification,
  type TokenMiss,
  tokenVerdict,
} from "./ties.ts";

/** Tolerances, in one place. */
export const TOLERANCE = {
  /** Logits, logsumexp, row max, sampler stage values, embeddings (issue 3: 1e-4 absolute). */
  logits: 1e-4,
  /** Probabilities, scores and CFG factors. */
  probability: 1e-5,
  /** Tokens, counts, masks, positions, timesteps: exact. */
  exact: 0,
  /**
   * Greedy tokens, step by step on teacher-forced logits: a golden token that loses to another by
   * at most this much is a tie, not a failure (tools/golden/ties.ts). Twice the logits tolerance:
   * each of the two logits may be that far from the reference's. Guided (CFG) logits scale it by
   * |w| + |1 − w|.
   */
  tie: 2e-4,
  /** NAR-len mask boundaries: scores (probabilities) this close are a tie. Twice `probability`. */
  scoreTie: 2e-5,
} as const;

/** Options of {@linkcode runValleGolden}. */
export interface ValleGoldenOptions {
  /** The backend (default: a new one of `kind`, destroyed at the end). */
  backend?: Backend;
  /** The kind of backend to create when none is given. Default `"webgpu"`. */
  kind?: "webgpu" | "cpu";
  /** Weight precisions to run (default: f32, and f16 when the device has shader-f16). */
  precisions?: readonly ("f32" | "f16")[];
  /** Only these case files (default: every file of the manifest). */
  files?: readonly string[];
  /**
   * Whether a greedy token that differs from the golden one within {@linkcode TOLERANCE}.tie (a
   * near-tie another device may flip) passes; it is reported in the case's detail either way.
   * Default: not on the CPU backend and software adapters (lavapipe, SwiftShader, WARP), which
   * reproduce every golden token today, so a new tie there is a regression; allowed on hardware
   * adapters, whose FMA contraction, `exp` and reduction orders differ.
   */
  allowTies?: boolean;
  /** The tie tolerance of plain logits. Default {@linkcode TOLERANCE}.tie (tests widen it). */
  tieTolerance?: number;
}

/** The default of {@linkcode ValleGoldenOptions.allowTies} for a backend. */
export function tiesAllowed(backend: Backend): boolean {
  if (backend.kind === "cpu") return false;
  const adapter = (backend as { adapter?: { software?: boolean } }).adapter;
  return adapter?.software !== true;
}

/** The manifest fields this checker reads. */
interface Manifest {
  config: Record<string, unknown>;
  files: Record<string, ManifestFile>;
}

interface ManifestFile {
  settings: Record<string, unknown>;
  tensors: Record<string, { shape: number[]; dtype: string; doc?: string }>;
}

/** Everything a file checker needs. */
interface Ctx {
  valle: ValleModel;
  backend: Backend;
  file: string;
  st: Safetensors;
  settings: Record<string, unknown>;
  docs: Record<string, string | undefined>;
  /** The shared inputs (phonemes, language, prompt, resp_target), when the folder has them. */
  inputs: Safetensors | undefined;
  folder: URL;
  tag: string;
  /** Tensors compared so far (the rest are reported as unchecked). */
  used: Set<string>;
  /** Whether token ties pass ({@linkcode ValleGoldenOptions.allowTies}). */
  allowTies: boolean;
  /** The tie tolerance of plain logits ({@linkcode ValleGoldenOptions.tieTolerance}). */
  tie: number;
}

type Checker = (ctx: Ctx) => AsyncGenerator<CaseResult>;

const CHECKERS: Readonly<Record<string, Checker>> = {
  "ar.safetensors": checkAr,
  "nar.safetensors": checkNar,
  "len.safetensors": checkLen,
  "nar_len.safetensors": checkNarLen,
  "samplers.safetensors": checkSamplers,
  "layout.safetensors": checkLayout,
  "pipeline.safetensors": checkPipeline,
};

/** Files that hold inputs, not cases. */
const DATA_FILES = new Set(["inputs.safetensors"]);

/** The valle family for tools/golden.ts. */
export const valleFamily: GoldenFamily = {
  name: "valle",
  accepts: (manifest) => {
    const config = manifest.config as Record<string, unknown> | undefined;
    return typeof config === "object" && config !== null && "n_audio" in config &&
      "n_levels" in config && typeof manifest.files === "object";
  },
  run: (folder, manifest, options) =>
    runValleGolden(folder, manifest, { kind: options.backend, allowTies: options.allowTies }),
};

/**
 * Runs every case file of a valle golden folder, yielding one result per comparison.
 *
 * @param folder The folder (with a trailing slash).
 * @param manifest Its parsed manifest.json.
 * @param options Device, precisions, file subset.
 */
export async function* runValleGolden(
  folder: URL,
  manifest: Record<string, unknown>,
  options: ValleGoldenOptions = {},
): AsyncGenerator<CaseResult> {
  const m = manifest as unknown as Manifest;
  const backend = options.backend ?? await createBackend({ backend: options.kind ?? "webgpu" });
  try {
    const allowTies = options.allowTies ?? tiesAllowed(backend);
    const precisions = options.precisions ?? (backend.supportsF16 ? ["f32", "f16"] : ["f32"]);
    const names = Object.keys(m.files).filter((f) => !options.files || options.files.includes(f));
    const inputs = "inputs.safetensors" in m.files
      ? await readSafetensors(new URL("inputs.safetensors", folder))
      : undefined;
    for (const precision of precisions) {
      const valle = await ValleModel.load(new URL("model.sft", folder), { backend, precision });
      try {
        for (const file of names) {
          if (DATA_FILES.has(file)) continue;
          const checker = CHECKERS[file];
          const tag = `[${precision}]`;
          if (!checker) {
            yield fail(`${file} ${tag}`, "no checker knows this case file");
            continue;
          }
          const st = await readSafetensors(new URL(file, folder));
          const info = m.files[file];
          const docs = Object.fromEntries(
            Object.entries(info.tensors ?? {}).map(([k, v]) => [k, v.doc]),
          );
          const ctx: Ctx = {
            valle,
            backend,
            file,
            st,
            settings: info.settings ?? {},
            docs,
            inputs,
            folder,
            tag,
            used: new Set(),
            allowTies,
            tie: options.tieTolerance ?? TOLERANCE.tie,
          };
          try {
            yield* checker(ctx);
          } catch (e) {
            yield fail(`${file} ${tag}`, `threw ${e instanceof Error ? e.stack : e}`);
          }
          const unchecked = st.names.filter((n) => !ctx.used.has(n));
          if (unchecked.length > 0) {
            yield fail(
              `${file}:unchecked ${tag}`,
              `tensors no case compared: ${unchecked.join(", ")}`,
            );
          }
        }
      } finally {
        valle.dispose();
      }
    }
  } finally {
    if (!options.backend) backend.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Comparisons

function fail(name: string, detail: string): CaseResult {
  return { name, maxError: NaN, tolerance: 0, passed: false, detail };
}

function skip(name: string, reason: string): CaseResult {
  return { name, maxError: NaN, tolerance: 0, passed: false, skipped: reason };
}

/**
 * Compares values: -Infinity and NaN must match exactly, the rest within `tolerance`
 * (0 = exact).
 */
export function compareValues(
  name: string,
  got: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
): CaseResult {
  if (got.length !== expected.length) {
    return fail(name, `${got.length} values, expected ${expected.length}`);
  }
  let maxError = 0;
  let mismatches = 0;
  let first = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = got[i];
    const b = expected[i];
    let bad: boolean;
    if (Number.isNaN(b) || !Number.isFinite(b)) bad = !Object.is(a, b) && !(a !== a && b !== b);
    else if (!Number.isFinite(a)) bad = true;
    else {
      const d = Math.abs(a - b);
      maxError = Math.max(maxError, d);
      bad = d > tolerance;
    }
    if (bad) {
      mismatches++;
      if (first < 0) first = i;
    }
  }
  const detail = mismatches > 0
    ? `${mismatches} of ${expected.length} differ (first [${first}]: ${got[first]} vs ${
      expected[first]
    })`
    : undefined;
  return { name, maxError, tolerance, passed: mismatches === 0, detail };
}

/** Reads a tensor (marking it used) as numbers. */
function tensor(ctx: Ctx, name: string): Float32Array | Int32Array {
  ctx.used.add(name);
  const dtype = ctx.st.info(name).dtype;
  return dtype.startsWith("F") || dtype === "BF16" ? ctx.st.toFloat32(name) : ctx.st.toInt32(name);
}

function compare(
  ctx: Ctx,
  tensorName: string,
  got: ArrayLike<number>,
  tolerance: number,
): CaseResult {
  return compareValues(
    `${ctx.file}:${tensorName} ${ctx.tag}`,
    got,
    tensor(ctx, tensorName),
    tolerance,
  );
}

/** Teacher-forced logits of a golden token sequence: row r is the choice of token `expected[r]`. */
interface ForcedRows {
  logits: Float32Array;
  columns: number;
  expected: ArrayLike<number>;
}

/**
 * A greedy token case (tools/golden/ties.ts): the golden tokens against teacher-forced logits,
 * and the free run against both. Its max error is the largest margin by which a golden token
 * lost, its tolerance the tie tolerance.
 */
function tokenCase(
  ctx: Ctx,
  tensorName: string,
  cls: TokenClassification,
  free: FreeRunCheck | undefined,
  tolerance: number,
): CaseResult {
  const v = tokenVerdict(cls, free, ctx.allowTies);
  return { name: `${ctx.file}:${tensorName} ${ctx.tag}`, tolerance, ...v };
}

/** {@linkcode tokenCase} of one block of teacher-forced rows, with the free run's tokens. */
function forcedCase(
  ctx: Ctx,
  tensorName: string,
  rows: ForcedRows,
  got: ArrayLike<number> | undefined,
  tolerance: number,
): CaseResult {
  const cls = classifyTokens(rows.logits, rows.columns, rows.expected, tolerance);
  const free = got === undefined
    ? undefined
    : checkFreeRun(rows.logits, rows.columns, rows.expected, got, tolerance);
  return tokenCase(ctx, tensorName, cls, free, tolerance);
}

/** A case that holds no more than another case's verdict (`stopped_at` of a diverged free run). */
function follows(ctx: Ctx, tensorName: string, of: CaseResult, why: string): CaseResult {
  ctx.used.add(tensorName);
  return {
    name: `${ctx.file}:${tensorName} ${ctx.tag}`,
    maxError: NaN,
    tolerance: 0,
    passed: of.passed,
    detail: `not compared on its own: ${why} (see ${of.name})`,
  };
}

function sameTokens(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  return a.length === b.length && Array.from(a).every((x, i) => x === b[i]);
}

/**
 * Whether the choice of a greedy sampler is the argmax of the raw (or guided) logits: temperature
 * 0 and no repetition or length penalty (filters keep the best token). Sampled runs (temperature
 * > 0) stay compared exactly: with the same seed, a draw near a boundary of the cumulative
 * distribution flips as easily as an argmax, and no teacher forcing can reproduce the draw's
 * tie-free neighbour, so such cases are not tie-aware (none of valle-tiny's is sampled).
 */
function plainGreedy(sampler: SamplerOptions): boolean {
  return sampler.temperature === 0 && (sampler.repetitionPenalty ?? 1) === 1 &&
    (sampler.lengthPenalty ?? 0) === 0;
}

/**
 * AR teacher-forced on `golden` (the sampled tokens, stop token included): one causal pass gives
 * the logits of every step, then each step's penalties are applied as the AR loop applies them
 * (previous = the golden tokens before it, length penalty on the stop token).
 */
async function arForced(
  ctx: Ctx,
  cond: ValleConditioning,
  golden: ArrayLike<number>,
  sampler: SamplerOptions,
): Promise<ForcedRows> {
  const n = golden.length;
  const { logits, rows, columns } = await ctx.valle.logits({
    ...cond,
    mode: "ar",
    response: Array.from(golden).slice(0, Math.max(0, n - 1)),
    teacherForced: true,
  });
  if (rows < n) throw new Error(`teacher-forced AR gave ${rows} rows for ${n} tokens`);
  const out = logits.slice(0, n * columns);
  if (!plainGreedy(sampler)) {
    for (let s = 0; s < n; s++) {
      const r = await sampleLogits(
        ctx.backend,
        out.slice(s * columns, (s + 1) * columns),
        [1, columns],
        { ...sampler, temperature: 0, minTemperature: -1 },
        {
          previous: Array.from(golden).slice(0, s),
          lengthPenalty: { length: s + 1, token: columns - 1 },
        },
      );
      out.set(r.processed, s * columns);
    }
  }
  return { logits: out, columns, expected: golden };
}

/**
 * NAR levels 1..top teacher-forced on golden codes (frame-major, every level): rows level-major
 * (level 1's frames, then level 2's, …), each level's logits from the golden levels below it.
 */
async function narForced(
  ctx: Ctx,
  cond: ValleConditioning,
  golden: Codes,
  rule: "head" | "dec2024" | undefined,
  cfg: { strength: number; rescale: number } | undefined,
): Promise<ForcedRows> {
  const parts: Float32Array[] = [];
  const expected: number[] = [];
  let columns = 0;
  for (let l = 1; l < golden.levels; l++) {
    const r = await ctx.valle.logits({
      ...cond,
      mode: "nar",
      level: l,
      embeddingRule: rule,
      response: golden,
      cfg,
    });
    columns = r.columns;
    parts.push(r.logits);
    expected.push(...level(golden, l));
  }
  const logits = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((o, p) => (logits.set(p, o), o + p.length), 0);
  return { logits, columns, expected };
}

/** Levels 1.. of frame-major codes, level-major (the row order of {@linkcode narForced}). */
function upperLevels(c: Codes): number[] {
  const out: number[] = [];
  for (let l = 1; l < c.levels; l++) out.push(...level(c, l));
  return out;
}

/** The free-run groups of {@linkcode narForced} rows: one per level. */
function levelGroups(frames: number, levels: number): Int32Array {
  return Int32Array.from({ length: frames * (levels - 1) }, (_, i) => Math.floor(i / frames));
}

/** The tie tolerance of guided logits z = u + (c − u) · w (each of c, u off by the logits one). */
function guidedTie(ctx: Ctx, strength: number): number {
  return ctx.tie * (Math.abs(strength) + Math.abs(1 - strength));
}

/** Names of tensors matching a pattern, with their captures. */
function matching(ctx: Ctx, pattern: RegExp): RegExpExecArray[] {
  return ctx.st.names.map((n) => pattern.exec(n)).filter((m): m is RegExpExecArray => m !== null);
}

// ---------------------------------------------------------------------------------------------
// Inputs and settings

function conditioning(ctx: Ctx): ValleConditioning {
  const inputs = ctx.inputs;
  if (!inputs) throw new Error("the folder has no inputs.safetensors");
  return {
    phonemes: inputs.toInt32("phn"),
    language: inputs.has("lang") ? inputs.toInt32("lang")[0] : 0,
    prompt: inputs.has("prom") ? codes(inputs, "prom") : null,
  };
}

function codes(st: Safetensors, name: string): Codes {
  const [frames, levels] = st.info(name).shape;
  return { data: st.toInt32(name), frames, levels };
}

function level(c: Codes, l: number): Int32Array {
  return Int32Array.from({ length: c.frames }, (_, t) => c.data[t * c.levels + l]);
}

const SAMPLER_KEYS: Readonly<Record<string, keyof SamplerOptions>> = {
  temperature: "temperature",
  min_temperature: "minTemperature",
  top_k: "topK",
  top_p: "topP",
  min_p: "minP",
  repetition_penalty: "repetitionPenalty",
  repetition_penalty_decay: "repetitionPenaltyDecay",
  length_penalty: "lengthPenalty",
  top_no: "topNSigma",
};

/**
 * Sampler options from a settings object; `other` lists the non-sampler keys the caller handles.
 * Any other key is an error (a setting this checker cannot reproduce).
 */
function samplerOf(settings: unknown, other: readonly string[] = []): SamplerOptions {
  const out: SamplerOptions = { temperature: 1, topNSigma: 0 };
  for (const [k, v] of Object.entries(settings as Record<string, unknown> ?? {})) {
    if (other.includes(k)) continue;
    const key = SAMPLER_KEYS[k];
    if (!key || typeof v !== "number") throw new Error(`unsupported sampler setting ${k}=${v}`);
    out[key] = v;
  }
  return out;
}

function num(settings: unknown, key: string, fallback?: number): number {
  const v = (settings as Record<string, unknown> | undefined)?.[key];
  if (typeof v === "number") return v;
  if (fallback !== undefined) return fallback;
  throw new Error(`setting "${key}" is missing`);
}

/** CPU-side row statistics of logits. */
function rowStats(logits: Float32Array, rows: number, cols: number) {
  const argmax = new Int32Array(rows);
  const max = new Float64Array(rows);
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    let a = 0;
    for (let c = 0; c < cols; c++) {
      const v = logits[r * cols + c];
      if (v > m) {
        m = v;
        a = c;
      }
    }
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(logits[r * cols + c] - m);
    argmax[r] = a;
    max[r] = m;
    lse[r] = m + Math.log(s);
  }
  return { argmax, max, lse };
}

function selectRows(logits: Float32Array, cols: number, which: ArrayLike<number>): Float32Array {
  const out = new Float32Array(which.length * cols);
  Array.from(which).forEach((r, i) => out.set(logits.subarray(r * cols, (r + 1) * cols), i * cols));
  return out;
}

// ---------------------------------------------------------------------------------------------
// ar.safetensors: last-position logits of AR prefixes; AR runs (greedy and with penalties).

async function* checkAr(ctx: Ctx): AsyncGenerator<CaseResult> {
  const cond = conditioning(ctx);
  for (const [, n] of matching(ctx, /^prefix(\d+)\.logits$/)) {
    const response = tensor(ctx, `prefix${n}.resp`);
    const { logits } = await ctx.valle.logits({ ...cond, mode: "ar", response });
    yield compare(ctx, `prefix${n}.logits`, logits, TOLERANCE.logits);
  }
  const maxSteps = num(ctx.settings, "max_steps");
  const meta = ["mode", "max_steps", "stop_bias"];
  for (const [run, settings] of Object.entries(ctx.settings)) {
    if (meta.includes(run)) continue;
    const sampler = samplerOf(settings);
    const out = await ctx.valle.generateAr({ ...cond, maxSteps, sampler });
    const golden = tensor(ctx, `${run}.sampled`);
    let sampled: CaseResult;
    if (sampler.temperature !== 0) {
      // Sampled: exact (see plainGreedy).
      sampled = compare(ctx, `${run}.sampled`, out.sampled, TOLERANCE.exact);
    } else {
      const rows = await arForced(ctx, cond, golden, sampler);
      sampled = forcedCase(ctx, `${run}.sampled`, rows, out.sampled, ctx.tie);
    }
    yield sampled;
    if (sameTokens(out.sampled, golden)) {
      const stoppedAt = out.stopped ? out.sampled.length - 1 : -1;
      yield compare(ctx, `${run}.stopped_at`, [stoppedAt], TOLERANCE.exact);
      if (ctx.st.has(`${run}.output`)) {
        yield compare(ctx, `${run}.output`, out.tokens, TOLERANCE.exact);
      }
    } else {
      // The free run diverged (at a tie, or the case failed): what follows from its tokens is
      // another run's; the teacher-forced steps checked the golden one, stop token included.
      const why = "the free run diverged from the golden tokens";
      yield follows(ctx, `${run}.stopped_at`, sampled, why);
      if (ctx.st.has(`${run}.output`)) yield follows(ctx, `${run}.output`, sampled, why);
    }
    const stats = ["stop_logit", "max_logit", "lse"].filter((s) => ctx.st.has(`${run}.${s}`));
    if (stats.length > 0) {
      // Per step: the logits after the tokens sampled so far (full recomputation, no cache).
      const steps = tensor(ctx, `${run}.sampled`);
      const per = { stop_logit: [] as number[], max_logit: [] as number[], lse: [] as number[] };
      for (let s = 0; s < steps.length; s++) {
        const { logits, columns } = await ctx.valle.logits({
          ...cond,
          mode: "ar",
          response: steps.subarray(0, s),
        });
        const st = rowStats(logits, 1, columns);
        per.stop_logit.push(logits[columns - 1]);
        per.max_logit.push(st.max[0]);
        per.lse.push(st.lse[0]);
      }
      for (const s of stats) {
        yield compare(ctx, `${run}.${s}`, per[s as keyof typeof per], TOLERANCE.logits);
      }
    }
  }
}

/**
 * Greedy NAR codes (frame-major, every level, level 0 given): levels 1.. teacher-forced on the
 * golden codes, the free run's levels in causal groups (a level saw the levels below it). Level 0
 * must come back unchanged. A sampler that is not plain greedy is compared exactly.
 */
async function narCodesCase(
  ctx: Ctx,
  tensorName: string,
  cond: ValleConditioning,
  rule: "head" | "dec2024" | undefined,
  out: Codes,
  sampler: SamplerOptions,
  cfg: { strength: number; rescale: number } | undefined,
): Promise<CaseResult> {
  const data = tensor(ctx, tensorName);
  const [frames, levels] = ctx.st.info(tensorName).shape;
  const golden: Codes = { data, frames, levels };
  if (!plainGreedy(sampler) || out.frames !== frames || out.levels !== levels) {
    return compare(ctx, tensorName, out.data, TOLERANCE.exact);
  }
  if (!sameTokens(level(out, 0), level(golden, 0))) {
    return fail(`${ctx.file}:${tensorName} ${ctx.tag}`, "level 0 came back changed");
  }
  const tol = cfg ? guidedTie(ctx, cfg.strength) : ctx.tie;
  const rows = await narForced(ctx, cond, golden, rule, cfg);
  const cls = classifyTokens(rows.logits, rows.columns, rows.expected, tol);
  const free = checkFreeRun(
    rows.logits,
    rows.columns,
    rows.expected,
    upperLevels(out),
    tol,
    levelGroups(frames, levels),
  );
  return tokenCase(ctx, tensorName, cls, free, tol);
}

// ---------------------------------------------------------------------------------------------
// nar.safetensors: NAR-level logits with teacher-forced lower levels, per summation rule; greedy NAR.

async function* checkNar(ctx: Ctx): AsyncGenerator<CaseResult> {
  const cond = conditioning(ctx);
  const target = codes(ctx.inputs!, "resp_target");
  const sums = ctx.valle.config.audioEmbeddingSums;
  for (const key of ["prom_sums", "resp_sums"]) {
    const v = ctx.settings[key];
    if (v !== undefined && v !== sums) {
      yield fail(`${ctx.file}:${key} ${ctx.tag}`, `settings say ${v}, the model file says ${sums}`);
    }
  }
  const rules = Object.keys((ctx.settings.rules ?? {}) as Record<string, unknown>);
  const which = tensor(ctx, "rows");
  for (const rule of rules) {
    if (rule !== "head" && rule !== "dec2024") {
      yield fail(`${ctx.file}:${rule} ${ctx.tag}`, `unknown summation rule "${rule}"`);
      continue;
    }
    for (const [, l] of matching(ctx, new RegExp(`^${rule}\\.L(\\d+)\\.logits_rows$`))) {
      const p = `${rule}.L${l}`;
      const { logits, rows, columns } = await ctx.valle.logits({
        ...cond,
        mode: "nar",
        level: Number(l),
        embeddingRule: rule,
        response: target,
      });
      const st = rowStats(logits, rows, columns);
      yield compare(ctx, `${p}.logits_rows`, selectRows(logits, columns, which), TOLERANCE.logits);
      const argmax = { logits, columns, expected: tensor(ctx, `${p}.argmax`) };
      yield forcedCase(ctx, `${p}.argmax`, argmax, undefined, ctx.tie);
      yield compare(ctx, `${p}.max`, st.max, TOLERANCE.logits);
      yield compare(ctx, `${p}.lse`, st.lse, TOLERANCE.logits);
    }
    if (ctx.st.has(`${rule}.greedy.codes`)) {
      const greedy = ctx.settings.greedy as Record<string, unknown>;
      const strength = num(greedy, "cfg_strength", 0);
      const sampler = samplerOf(greedy, ["cfg_strength", "cfg_rescale"]);
      const cfg = strength > 0 ? { strength, rescale: num(greedy, "cfg_rescale", 0.7) } : undefined;
      const out = await ctx.valle.generateNar({
        ...cond,
        embeddingRule: rule,
        codes: { data: level(target, 0), frames: target.frames, levels: 1 },
        sampler,
        cfg,
      });
      yield await narCodesCase(ctx, `${rule}.greedy.codes`, cond, rule, out, sampler, cfg);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// len.safetensors: duration digits and the logits of every iteration.

async function* checkLen(ctx: Ctx): AsyncGenerator<CaseResult> {
  const cond = conditioning(ctx);
  const expected = tensor(ctx, "digits");
  if (
    num(ctx.settings, "max_iterations", 10) !== 10 || num(ctx.settings, "stop_token", 10) !== 10
  ) {
    yield fail(`${ctx.file}:settings ${ctx.tag}`, "only 10 iterations with stop digit 10 exist");
  }
  const duration = await ctx.valle.predictDuration(cond);
  // The logits of every iteration, teacher-forced on the golden digits: iteration i chooses
  // digits[i + 1] (digits[0] is the leading 0 every run starts with).
  const n = ctx.st.info("step_logits").shape[0];
  const all: number[] = [];
  let columns = 0;
  for (let i = 0; i < n; i++) {
    const r = await ctx.valle.logits({
      ...cond,
      mode: "len",
      lengthDigits: expected.subarray(0, i + 1),
    });
    columns = r.columns;
    all.push(...r.logits);
  }
  let digits: CaseResult;
  if (expected.length !== n + 1 || duration.digits[0] !== expected[0]) {
    digits = compare(ctx, "digits", duration.digits, TOLERANCE.exact);
  } else {
    const rows = { logits: Float32Array.from(all), columns, expected: expected.subarray(1) };
    digits = forcedCase(ctx, "digits", rows, duration.digits.slice(1), ctx.tie);
  }
  yield digits;
  if (sameTokens(duration.digits, expected)) {
    const frames = Number.isSafeInteger(duration.frames) && duration.frames < 2 ** 31
      ? duration.frames
      : -1;
    yield compare(ctx, "duration", [frames], TOLERANCE.exact);
  } else {
    yield follows(ctx, "duration", digits, "the free run's digits differ from the golden ones");
  }
  yield compare(ctx, "step_logits", all, TOLERANCE.logits);
}

// ---------------------------------------------------------------------------------------------
// nar_len.safetensors: traced demasking runs; the cond/uncond/CFG logits of single steps.

async function* checkNarLen(ctx: Ctx): AsyncGenerator<CaseResult> {
  const cond = conditioning(ctx);
  const s = ctx.settings;
  const base = s.base as Record<string, unknown>;
  const frames = num(s, "L");
  const guidance = {
    strength: Math.max(num(base, "cfg_strength"), 2.5),
    rescale: num(base, "cfg_rescale"),
  };
  for (const [run, extra] of Object.entries((s.runs ?? {}) as Record<string, unknown>)) {
    const e = extra as Record<string, unknown>;
    for (const key of Object.keys(e)) {
      if (!["remask", "masked_only", "sampler_kwargs"].includes(key)) {
        throw new Error(`unsupported NAR-len run setting ${run}.${key}`);
      }
    }
    const out = await ctx.valle.generateNarLen({
      ...cond,
      frames,
      steps: num(base, "steps"),
      temperature: num(base, "temperature"),
      cfg: guidance,
      remask: e.remask === true,
      maskedOnly: e.masked_only === true,
      sampler: samplerOf(e.sampler_kwargs ?? {}),
      trace: true,
    });
    const t = out.trace!;
    yield compare(ctx, `${run}.timesteps`, t.timesteps, TOLERANCE.exact);
    yield compare(ctx, `${run}.n_masked`, t.counts, TOLERANCE.exact);
    const sampler = samplerOf(e.sampler_kwargs ?? {});
    if (num(base, "temperature") !== 0 || !plainGreedy({ ...sampler, temperature: 0 })) {
      // Sampled demasking: exact (see plainGreedy).
      yield compare(ctx, `${run}.masked`, t.masked, TOLERANCE.exact);
      yield compare(ctx, `${run}.tokens`, t.tokens, TOLERANCE.exact);
      yield compare(ctx, `${run}.scores`, t.scores, TOLERANCE.probability);
      yield compare(ctx, `${run}.cfg_factor`, t.cfgFactor, TOLERANCE.probability);
      yield compare(ctx, `${run}.final`, out.tokens, TOLERANCE.exact);
      continue;
    }
    yield* narLenRunCases(ctx, run, cond, frames, guidance, out.tokens, t);
  }
  for (const [run, why] of Object.entries((s.skipped_runs ?? {}) as Record<string, unknown>)) {
    yield fail(`${ctx.file}:${run} ${ctx.tag}`, `no reference: the generator skipped it (${why})`);
  }
  const which = ctx.st.has("rows") ? tensor(ctx, "rows") : undefined;
  for (const [, k] of matching(ctx, /^step(\d+)\.resp_in$/)) {
    const p = `step${k}`;
    const response = tensor(ctx, `${p}.resp_in`);
    const request: LogitsRequest = { ...cond, mode: "nar-len", response };
    const variants = {
      cond: await ctx.valle.logits(request),
      uncond: await ctx.valle.logits({ ...request, phonemes: [1, 2], prompt: null }),
      cfg: await ctx.valle.logits({ ...request, cfg: guidance }),
    };
    for (const [name, r] of Object.entries(variants)) {
      const st = rowStats(r.logits, r.rows, r.columns);
      if (which) {
        yield compare(
          ctx,
          `${p}.${name}_rows`,
          selectRows(r.logits, r.columns, which),
          TOLERANCE.logits,
        );
      }
      const tol = name === "cfg" ? guidedTie(ctx, guidance.strength) : ctx.tie;
      const argmax = {
        logits: r.logits,
        columns: r.columns,
        expected: tensor(ctx, `${p}.${name}_argmax`),
      };
      yield forcedCase(ctx, `${p}.${name}_argmax`, argmax, undefined, tol);
      yield compare(ctx, `${p}.${name}_lse`, st.lse, TOLERANCE.logits);
    }
    const stats = variants.cfg.cfg!;
    yield compare(ctx, `${p}.std_cond`, [stats.stdCond], TOLERANCE.logits);
    yield compare(ctx, `${p}.std_cfg_unscaled`, [stats.stdGuided], TOLERANCE.logits);
    yield compare(ctx, `${p}.factor`, [stats.factor], TOLERANCE.probability);
  }
}

/**
 * A greedy NAR-len demasking run against its golden trace. Step s reads the golden tokens of step
 * s − 1 with the golden mask of step s (step 0: every frame masked); the golden tokens of its
 * masked frames are classified on our guided logits of that input (teacher-forced, every step).
 * The free run's trace must equal the golden one up to its first differing step d, and that
 * difference must be a tie: a token whose guided logit is within the tie tolerance of the golden
 * token's, or a mask boundary where the frames masked instead have scores (ours, of step d − 1)
 * within {@linkcode TOLERANCE}.scoreTie of those the reference masked. The free run's masks,
 * scores and factors are compared before d only; `final` follows `tokens` after a divergence.
 * Rows in the detail are step · L + frame.
 */
async function* narLenRunCases(
  ctx: Ctx,
  run: string,
  cond: ValleConditioning,
  frames: number,
  guidance: { strength: number; rescale: number },
  final: Int32Array,
  t: { masked: Uint8Array; tokens: Int32Array; scores: Float32Array; cfgFactor: Float32Array },
): AsyncGenerator<CaseResult> {
  const L = frames;
  const gTokens = tensor(ctx, `${run}.tokens`);
  const gMasked = tensor(ctx, `${run}.masked`);
  const steps = gTokens.length / L;
  const mask = ctx.valle.config.nAudio;
  const tol = guidedTie(ctx, guidance.strength);
  // Teacher-forced guided logits of every step; the masked frames' rows are classified.
  const stepLogits: Float32Array[] = [];
  const rows: number[] = [];
  const parts: Float32Array[] = [];
  const expected: number[] = [];
  let columns = 0;
  for (let s = 0; s < steps; s++) {
    const input = Int32Array.from(
      { length: L },
      (_, i) => gMasked[s * L + i] !== 0 || s === 0 ? mask : gTokens[(s - 1) * L + i],
    );
    const r = await ctx.valle.logits({ ...cond, mode: "nar-len", response: input, cfg: guidance });
    columns = r.columns;
    stepLogits.push(r.logits);
    for (let i = 0; i < L; i++) {
      if (input[i] !== mask) continue;
      rows.push(s * L + i);
      parts.push(r.logits.subarray(i * columns, (i + 1) * columns));
      expected.push(gTokens[s * L + i]);
    }
  }
  const logits = new Float32Array(parts.length * columns);
  parts.forEach((p, k) => logits.set(p, k * columns));
  const cls = classifyTokens(logits, columns, expected, tol);
  const relabel = (x: TokenMiss) => ({ ...x, row: rows[x.row] });
  cls.ties = cls.ties.map(relabel);
  cls.failures = cls.failures.map(relabel);
  cls.closest = { ...cls.closest, row: rows[cls.closest.row] ?? -1 };
  // The free run's first differing step.
  const rowDiffers = (a: ArrayLike<number>, b: ArrayLike<number>, s: number) => {
    for (let i = s * L; i < (s + 1) * L; i++) if (a[i] !== b[i]) return true;
    return false;
  };
  let d = -1;
  for (let s = 0; s < steps && d < 0; s++) {
    if (rowDiffers(t.masked, gMasked, s) || rowDiffers(t.tokens, gTokens, s)) d = s;
  }
  let free: FreeRunCheck = { diverged: -1, consistent: true };
  if (t.tokens.length !== gTokens.length) {
    free = {
      diverged: 0,
      consistent: false,
      detail: `free run traced ${t.tokens.length / L} steps`,
    };
  } else if (d >= 0 && rowDiffers(t.masked, gMasked, d)) {
    // A mask boundary: frames the reference masked (A) against those we masked instead (B).
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < L; i++) {
      const ours = t.masked[d * L + i] !== 0;
      if (ours !== (gMasked[d * L + i] !== 0)) (ours ? b : a).push(i);
    }
    const score = (i: number) => t.scores[(d - 1) * L + i];
    const gap = d === 0 || a.length === 0 || b.length === 0
      ? Infinity
      : Math.max(...a.map(score)) - Math.min(...b.map(score));
    const tie = gap <= TOLERANCE.scoreTie;
    free = {
      diverged: d,
      consistent: tie,
      detail: `free run's mask diverged at step ${d} (frames [${b}] instead of [${a}], score gap ${
        gap.toExponential(2)
      }${tie ? "): a tie, the rest checked teacher-forced" : ", clear)"}`,
    };
  } else if (d >= 0) {
    const row = (i: number) => stepLogits[d].subarray(i * columns, (i + 1) * columns);
    const deficit = (r: Float32Array, k: number) =>
      Math.max(...r) - (k >= 0 && k < r.length ? r[k] : -Infinity);
    const misses: string[] = [];
    let consistent = true;
    for (let i = 0; i < L; i++) {
      const [ours, want] = [t.tokens[d * L + i], gTokens[d * L + i]];
      if (ours === want) continue;
      const margin = Math.max(deficit(row(i), ours), deficit(row(i), want));
      consistent &&= margin <= tol;
      misses.push(`frame ${i} ${ours} vs ${want} (${margin.toExponential(2)})`);
    }
    free = {
      diverged: d,
      consistent,
      detail: `free run's tokens diverged at step ${d}: ${misses.slice(0, 4).join(", ")}${
        consistent ? ": a tie, the rest checked teacher-forced" : ""
      }`,
    };
  }
  const tokens = tokenCase(ctx, `${run}.tokens`, cls, free, tol);
  yield tokens;
  // Masks, scores and factors of the free run up to its divergence.
  const upTo = d < 0 ? steps : d;
  const partial = (name: string, got: ArrayLike<number>, per: number, tolerance: number) => {
    const want = tensor(ctx, name);
    const r = compareValues(
      `${ctx.file}:${name} ${ctx.tag}`,
      Array.from(got).slice(0, upTo * per),
      want.subarray(0, upTo * per),
      tolerance,
    );
    if (d < 0) return r;
    const note = `steps ${d}.. not compared: the free run diverged (see ${tokens.name})`;
    return {
      ...r,
      passed: r.passed && tokens.passed,
      detail: r.detail ? `${r.detail}; ${note}` : note,
    };
  };
  yield partial(`${run}.masked`, t.masked, L, TOLERANCE.exact);
  yield partial(`${run}.scores`, t.scores, L, TOLERANCE.probability);
  yield partial(`${run}.cfg_factor`, t.cfgFactor, 1, TOLERANCE.probability);
  if (d < 0) yield compare(ctx, `${run}.final`, final, TOLERANCE.exact);
  else yield follows(ctx, `${run}.final`, tokens, "the free run diverged from the golden trace");
}

// ---------------------------------------------------------------------------------------------
// samplers.safetensors: pipelines stage by stage, isolated stages, CFG, demask schedules.

/** The settings keys each pipeline stage turns on. */
const STAGE_KEYS: Readonly<Record<string, readonly string[]>> = {
  input: [],
  repetition_penalty: ["repetition_penalty", "repetition_penalty_decay"],
  length_penalty: ["length_penalty"],
  min_p: ["min_p"],
  top_k_top_p: ["top_k", "top_p"],
  temperature: ["temperature", "min_temperature"],
  dynamic_temperature: ["temperature", "min_temperature"],
  top_no: ["top_no"],
};

const PIPELINE_META = ["prev", "input", "nar", "stage_order"];

async function* checkSamplers(ctx: Ctx): AsyncGenerator<CaseResult> {
  for (const [name, value] of Object.entries(ctx.settings)) {
    const v = value as Record<string, unknown>;
    if (typeof v === "object" && v !== null && Array.isArray(v.stage_order)) {
      yield* checkPipeline_(ctx, name, v);
    }
  }
  if (ctx.settings.iso) yield* checkIso(ctx, ctx.settings.iso as Record<string, string>);
  if (ctx.settings.cfg) yield* checkCfg(ctx, ctx.settings.cfg as Record<string, unknown>);
  if (ctx.st.has("schedule.L")) yield* checkSchedule(ctx);
  for (const [, name] of matching(ctx, /^(\w+)\.output$/)) {
    yield* checkDocumented(ctx, name);
  }
}

async function* checkPipeline_(
  ctx: Ctx,
  name: string,
  s: Record<string, unknown>,
): AsyncGenerator<CaseResult> {
  const input = tensor(ctx, s.input as string) as Float32Array;
  const shape = ctx.st.info(s.input as string).shape as [number, number];
  const previous = tensor(ctx, s.prev as string);
  const stages = s.stage_order as string[];
  const unknown = stages.filter((x) => !(x in STAGE_KEYS));
  if (unknown.length > 0) {
    yield fail(`${ctx.file}:${name} ${ctx.tag}`, `unknown stages ${unknown.join(", ")}`);
    return;
  }
  // The AR length penalty targets the stop token (the last column), length = len(prev) + 1.
  const lengthPenalty = s.nar === true
    ? undefined
    : { length: previous.length + 1, token: shape[1] - 1 };
  const upTo = (count: number): SamplerOptions => {
    const on = new Set(stages.slice(0, count).flatMap((x) => STAGE_KEYS[x]));
    const settings = Object.fromEntries(
      Object.entries(s).filter(([k]) => !PIPELINE_META.includes(k) && on.has(k)),
    );
    return {
      ...samplerOf(settings),
      temperature: on.has("temperature") ? num(s, "temperature") : 0,
    };
  };
  for (let i = 0; i < stages.length; i++) {
    const r = await sampleLogits(ctx.backend, input, shape, upTo(i + 1), {
      previous,
      lengthPenalty,
    });
    yield compare(ctx, `${name}.stage.${stages[i]}`, r.processed, TOLERANCE.logits);
  }
  const all = upTo(stages.length);
  const final = await sampleLogits(ctx.backend, input, shape, all, { previous, lengthPenalty });
  yield compare(
    ctx,
    `${name}.final_probs`,
    softmaxRows(final.processed, shape),
    TOLERANCE.probability,
  );
  // "Greedy": the same pipeline with temperature 0, as the golden data define it (the dynamic
  // temperature is off then: the original would still apply one with T = 0 and T_min > 0,
  // which changes the score but not the argmax).
  const greedy = await sampleLogits(ctx.backend, input, shape, {
    ...all,
    temperature: 0,
    minTemperature: -1,
  }, { previous, lengthPenalty });
  yield compare(ctx, `${name}.greedy.ids`, greedy.tokens, TOLERANCE.exact);
  yield compare(ctx, `${name}.greedy.scores`, greedy.scores, TOLERANCE.probability);
}

function softmaxRows(x: Float32Array, [rows, cols]: [number, number]): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const m = Math.max(...row);
    let s = 0;
    for (const v of row) s += Math.exp(v - m);
    row.forEach((v, c) => (out[r * cols + c] = Math.exp(v - m) / s));
  }
  return out;
}

/** Parses an isolated-stage description of the samplers settings into sampler arguments. */
export function parseStageDescription(description: string): {
  options: SamplerOptions;
  previous?: number[];
  lengthPenalty?: { length: number; token: number };
} {
  const grab = (re: RegExp) => re.exec(description)?.[1];
  const n = (re: RegExp) => {
    const g = grab(re);
    return g === undefined ? undefined : Number(g);
  };
  const previous = grab(/previous=\[([\d,\s]*)\]/)?.split(",").map(Number);
  const options: SamplerOptions = { temperature: 0 };
  let understood = false;
  if (previous) {
    options.repetitionPenalty = n(/factor ([\d.]+)/);
    options.repetitionPenaltyDecay = n(/decay ([\d.]+)/) ?? 0;
    understood = options.repetitionPenalty !== undefined;
  }
  const length = n(/length (\d+)/);
  const token = n(/token (\d+)/);
  if (length !== undefined && token !== undefined) {
    options.lengthPenalty = n(/factor ([\d.]+)/);
    understood = options.lengthPenalty !== undefined;
  }
  const minP = n(/^min_p ([\d.]+)/);
  if (minP !== undefined) [options.minP, understood] = [minP, true];
  const topK = n(/top_k (\d+)/);
  if (topK !== undefined) [options.topK, understood] = [topK, true];
  const topP = n(/top_p ([\d.]+)/);
  if (topP !== undefined) [options.topP, understood] = [topP, true];
  const divide = n(/^divide by ([\d.]+)/);
  if (divide !== undefined) [options.temperature, understood] = [divide, true];
  const dynT = n(/dynamic temperature T ([\d.]+)/);
  const dynMin = n(/Tmin ([\d.]+)/);
  if (dynT !== undefined && dynMin !== undefined) {
    if (n(/k (\d+)/) !== 10 || n(/center ([\d.]+)/) !== 0.5) {
      throw new Error(`dynamic temperature with k/center other than 10/0.5: "${description}"`);
    }
    [options.temperature, options.minTemperature, understood] = [dynT, dynMin, true];
  }
  if (/^top-n-sigma with n = 1/.test(description)) [options.topNSigma, understood] = [1, true];
  if (!understood) throw new Error(`cannot read the stage description "${description}"`);
  return {
    options,
    previous,
    lengthPenalty: length !== undefined && token !== undefined ? { length, token } : undefined,
  };
}

async function* checkIso(ctx: Ctx, iso: Record<string, string>): AsyncGenerator<CaseResult> {
  const input = tensor(ctx, "iso.input") as Float32Array;
  const shape = ctx.st.info("iso.input").shape as [number, number];
  for (const [name, description] of Object.entries(iso)) {
    let parsed;
    try {
      parsed = parseStageDescription(description);
    } catch (e) {
      yield fail(`${ctx.file}:iso.${name} ${ctx.tag}`, (e as Error).message);
      continue;
    }
    const r = await sampleLogits(ctx.backend, input, shape, parsed.options, parsed);
    yield compare(ctx, `iso.${name}`, r.processed, TOLERANCE.logits);
  }
}

/** Cases described only by their tensor's doc, e.g. "rep-pen 2.0 with prev=[5]: unchanged". */
async function* checkDocumented(ctx: Ctx, name: string): AsyncGenerator<CaseResult> {
  const doc = ctx.docs[`${name}.output`] ?? "";
  const m = /rep-pen ([\d.]+) with prev=\[([\d,\s]*)\]/.exec(doc);
  const [kind] = name.split("_");
  const inputName = `${kind}.input`;
  if (!m || !ctx.st.has(inputName)) {
    yield fail(`${ctx.file}:${name}.output ${ctx.tag}`, `cannot read the case from "${doc}"`);
    return;
  }
  const input = tensor(ctx, inputName) as Float32Array;
  const shape = ctx.st.info(inputName).shape as [number, number];
  const r = await sampleLogits(ctx.backend, input, shape, {
    temperature: 0,
    repetitionPenalty: Number(m[1]),
  }, { previous: m[2].split(",").map(Number) });
  yield compare(ctx, `${name}.output`, r.processed, TOLERANCE.logits);
}

async function* checkCfg(ctx: Ctx, s: Record<string, unknown>): AsyncGenerator<CaseResult> {
  const pos = tensor(ctx, "cfg.pos") as Float32Array;
  const neg = tensor(ctx, "cfg.neg") as Float32Array;
  const strength = num(s, "strength");
  const rescales = Array.isArray(s.rescale) ? s.rescale as number[] : [num(s, "rescale")];
  for (const rescale of rescales) {
    const r = await guideLogits(ctx.backend, pos, neg, { strength, rescale });
    yield compare(ctx, `cfg.out_rescale_${rescale}`, r.logits, TOLERANCE.logits);
    if (rescale > 0 && ctx.st.has("cfg.factor") && !ctx.used.has("cfg.factor")) {
      yield compare(ctx, "cfg.factor", [r.factor], TOLERANCE.probability);
    }
  }
}

async function* checkSchedule(ctx: Ctx): AsyncGenerator<CaseResult> {
  const lengths = tensor(ctx, "schedule.L");
  for (const [, s] of matching(ctx, /^schedule\.S(\d+)\.timesteps$/)) {
    const steps = Number(s);
    yield compare(ctx, `schedule.S${s}.timesteps`, demaskTimesteps(steps), TOLERANCE.exact);
    for (const [suffix, remask] of [["counts", false], ["counts_remask", true]] as const) {
      const all: number[] = [];
      for (const length of lengths) {
        all.push(...demaskSchedule({ steps, length, remask }).map((x) => x.count));
      }
      yield compare(ctx, `schedule.S${s}.${suffix}`, all, TOLERANCE.exact);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// layout.safetensors: positions, kinds and layer-0 embeddings of assembled sequences.

async function* checkLayout(ctx: Ctx): AsyncGenerator<CaseResult> {
  const cond = conditioning(ctx);
  const target = codes(ctx.inputs!, "resp_target");
  for (const [, name] of matching(ctx, /^(\w+)\.pos$/)) {
    let request: LogitsRequest;
    let m: RegExpExecArray | null;
    if ((m = /^ar_prefix(\d+)$/.exec(name))) {
      request = { ...cond, mode: "ar", response: await arPrefix(ctx, Number(m[1])) };
    } else if ((m = /^nar_L(\d+)(?:_(head|dec2024))?$/.exec(name))) {
      request = {
        ...cond,
        mode: "nar",
        level: Number(m[1]),
        embeddingRule: (m[2] ?? "head") as "head" | "dec2024",
        response: target,
      };
    } else if ((m = /^nar_len_\w+?(_null)?$/.exec(name)) && ctx.st.has(`${name}.resp`)) {
      const response = tensor(ctx, `${name}.resp`);
      request = { ...cond, mode: "nar-len", response };
      if (m[1]) request = { ...request, phonemes: [1, 2], prompt: null };
    } else if ((m = /^len_(\d+(?:_\d+)*)$/.exec(name))) {
      request = { ...cond, mode: "len", lengthDigits: m[1].split("_").map(Number) };
    } else {
      yield fail(`${ctx.file}:${name} ${ctx.tag}`, "unknown layout case name");
      continue;
    }
    const r = await ctx.valle.inputs(request);
    yield compare(ctx, `${name}.pos`, r.positions, TOLERANCE.exact);
    yield compare(ctx, `${name}.kinds`, r.kinds, TOLERANCE.exact);
    yield compare(ctx, `${name}.x`, r.embeddings, TOLERANCE.logits);
  }
}

/** The AR prefix of `n` greedy tokens, from ar.safetensors of the same folder. */
async function arPrefix(ctx: Ctx, n: number): Promise<Int32Array> {
  const ar = await readSafetensors(new URL("ar.safetensors", ctx.folder));
  if (ar.has(`prefix${n}.resp`)) return ar.toInt32(`prefix${n}.resp`);
  return ar.toInt32("greedy.sampled").slice(0, n);
}

// ---------------------------------------------------------------------------------------------
// pipeline.safetensors: AR → NAR and duration → NAR-len → NAR end to end.

/** The parts a pipeline file's settings describe, each with the capability it needs. */
const PIPELINE_PARTS: Readonly<
  Record<string, {
    needs?: "len";
    check: (ctx: Ctx, settings: Record<string, unknown>) => AsyncGenerator<CaseResult>;
  }>
> = {
  ar_nar: { check: checkArNarPipeline },
  nar_len: { needs: "len", check: checkNarLenPipeline },
};

/**
 * Runs every part the settings describe. A part the model cannot run (no `len` capability) and
 * the file holds no tensors for is reported as skipped: the file was made for a model that has
 * it. A part with tensors always runs, and an unknown part is a failure.
 */
async function* checkPipeline(ctx: Ctx): AsyncGenerator<CaseResult> {
  for (const [part, settings] of Object.entries(ctx.settings)) {
    const name = `${ctx.file}:${part} ${ctx.tag}`;
    const entry = PIPELINE_PARTS[part];
    if (!entry) {
      yield fail(name, `unknown pipeline part "${part}"`);
      continue;
    }
    const hasTensors = ctx.st.names.some((n) => n.startsWith(`${part}.`));
    if (entry.needs === "len" && !ctx.valle.config.hasNarLen && !hasTensors) {
      yield skip(name, `model has no len capability, file has no ${part} tensors`);
      continue;
    }
    yield* entry.check(ctx, settings as Record<string, unknown>);
  }
}

async function* checkArNarPipeline(
  ctx: Ctx,
  p: Record<string, unknown>,
): AsyncGenerator<CaseResult> {
  const nar = p.nar as Record<string, unknown>;
  const strength = num(nar, "cfg_strength", 0);
  const cond = conditioning(ctx);
  const maxSteps = num(p.ar, "max_steps");
  const arSampler = samplerOf(p.ar, ["max_steps"]);
  const narSampler = samplerOf(nar, ["cfg_strength", "cfg_rescale"]);
  const cfg = strength > 0 ? { strength, rescale: num(nar, "cfg_rescale", 0.7) } : undefined;
  const out = await ctx.valle.generate({
    ...cond,
    modality: "ar+nar",
    ar: { maxSteps, sampler: arSampler },
    nar: { sampler: narSampler, cfg },
  });
  const name = "ar_nar.codes";
  const data = tensor(ctx, name);
  const [frames, levels] = ctx.st.info(name).shape;
  const golden: Codes = { data, frames, levels };
  if (arSampler.temperature !== 0 || !plainGreedy(narSampler)) {
    yield compare(ctx, name, out.codes.data, TOLERANCE.exact);
    return;
  }
  // Level 0 as the AR sampled it (the stop token ends a run shorter than max_steps), then the
  // NAR levels, each teacher-forced on the golden codes.
  const stop = ctx.valle.config.nAudio;
  const arTokens = (c: Codes) => [...level(c, 0), ...(c.frames < maxSteps ? [stop] : [])];
  const arRows = await arForced(ctx, cond, arTokens(golden), arSampler);
  const narTol = cfg ? guidedTie(ctx, cfg.strength) : ctx.tie;
  const narRows = await narForced(ctx, cond, golden, undefined, cfg);
  const arCls = classifyTokens(arRows.logits, arRows.columns, arRows.expected, ctx.tie);
  const narCls = classifyTokens(narRows.logits, narRows.columns, narRows.expected, narTol);
  const cls: TokenClassification = {
    rows: arCls.rows + narCls.rows,
    matched: arCls.matched + narCls.matched,
    ties: [...arCls.ties, ...narCls.ties.map((x) => ({ ...x, row: x.row + arCls.rows }))],
    failures: [
      ...arCls.failures,
      ...narCls.failures.map((x) => ({ ...x, row: x.row + arCls.rows })),
    ],
    closest: arCls.closest.margin <= narCls.closest.margin
      ? arCls.closest
      : { ...narCls.closest, row: narCls.closest.row + arCls.rows },
  };
  // The free run: its level 0 against the AR rows; its upper levels only when level 0 is golden.
  let free = checkFreeRun(
    arRows.logits,
    arRows.columns,
    arRows.expected,
    arTokens(out.codes),
    ctx.tie,
  );
  if (free.diverged < 0) {
    const nf = checkFreeRun(
      narRows.logits,
      narRows.columns,
      narRows.expected,
      upperLevels(out.codes),
      narTol,
      levelGroups(frames, levels),
    );
    free = nf.diverged < 0 ? nf : { ...nf, diverged: nf.diverged + arCls.rows };
  }
  yield tokenCase(ctx, name, cls, free, Math.max(ctx.tie, narTol));
}

async function* checkNarLenPipeline(
  ctx: Ctx,
  p: Record<string, unknown>,
): AsyncGenerator<CaseResult> {
  const nar = p.nar as Record<string, unknown>;
  const meta = [
    "steps",
    "temperature",
    "cfg_strength",
    "cfg_rescale",
    "duration_padding",
    "min_frames",
    "max_duration",
    "nar",
  ];
  const out = await ctx.valle.generate({
    ...conditioning(ctx),
    modality: "nar-len",
    minFrames: num(p, "min_frames"),
    durationPadding: num(p, "duration_padding"),
    maxFrames: num(p, "max_duration"),
    narLen: {
      steps: num(p, "steps"),
      temperature: num(p, "temperature"),
      cfg: { strength: num(p, "cfg_strength"), rescale: num(p, "cfg_rescale") },
      sampler: samplerOf(p, meta),
    },
    nar: {
      sampler: samplerOf(nar, ["cfg_strength", "cfg_rescale"]),
      cfg: { strength: num(nar, "cfg_strength"), rescale: num(nar, "cfg_rescale") },
    },
  });
  yield compare(ctx, "nar_len.duration", [out.duration!.frames], TOLERANCE.exact);
  yield compare(ctx, "nar_len.length", [out.codes.frames], TOLERANCE.exact);
  yield compare(ctx, "nar_len.level0", level(out.codes, 0), TOLERANCE.exact);
  yield compare(ctx, "nar_len.codes", out.codes.data, TOLERANCE.exact);
}
