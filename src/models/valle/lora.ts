/**
 * Reading a VALL-E LoRA (e-c-k-e-r/vall-e `lora.sft`) and checking it against the model it is
 * applied to. The layouts, what upstream writes and where it is ambiguous are in `LORA.md` beside
 * this file. Every problem of a file is reported at once in one {@linkcode LoraError}; a file that
 * passes can be merged without further checks (`adapter.ts`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { describeRange, formatValue, inRange, type NumberRange } from "../../_options.ts";
import { LoraError, type WeightProblem } from "../../errors.ts";
import { numel } from "../../backends/tensor.ts";
import type { Safetensors } from "../../io/safetensors.ts";
import { FLOAT_DTYPES, sameShape, showShape } from "./weights.ts";

/** One adapted linear layer: W += scaling · B · A, read in W's element order. */
export interface LoraFactors {
  /** The weight it adapts, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly target: string;
  /** How upstream spelled it: `LoRALinear` (`….lora_A`) or `ParameterizedLoRA` (`….parametrizations.weight.0.lora_A`). */
  readonly spelling: "linear" | "parametrize";
  /** The rank r. */
  readonly rank: number;
  /** `lora_A` (r, cols), row-major. */
  readonly a: Float32Array;
  /** A's columns: the weight's inputs (linear) or outputs (parametrize). */
  readonly cols: number;
  /** `lora_B` (rows, r), row-major. */
  readonly b: Float32Array;
  /** B's rows. */
  readonly rows: number;
}

/** A model tensor saved with the LoRA (an embedding table trained with it), replacing the base's. */
export interface LoraReplacement {
  /** The checkpoint key, e.g. `resps_emb.embeddings.0.weight`. */
  readonly target: string;
  /** Its values, with the base tensor's shape. */
  readonly values: Float32Array;
}

/** A LoRA checked against a model, ready to merge. */
export interface ValleLora {
  /** The file, for messages. */
  readonly source: string;
  /** `__metadata__.config.name`, when the file has it. */
  readonly name?: string;
  /** The rank (every module has the same). */
  readonly rank: number;
  /** alpha: the update is scaled by alpha / rank. */
  readonly alpha: number;
  /** The adapted linear layers. */
  readonly factors: readonly LoraFactors[];
  /** Tensors replaced while the LoRA is active. */
  readonly replacements: readonly LoraReplacement[];
}

/** The configuration upstream stores as JSON in `__metadata__.config` (its `LoRA` dataclass). */
interface LoraConfigJson {
  name?: unknown;
  rank?: unknown;
  alpha?: unknown;
  parametrize?: unknown;
  rvq_levels?: unknown;
}

/** Modules upstream's `apply_lora` can adapt here: the `nn.Linear`s of the model. */
const LINEAR_MODULE =
  /^(model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)|classifiers\.proj\.\d+)$/;

/** `<module>.parametrizations.weight.0.lora_A` or `<module>.lora_A` (and `_B`). */
const FACTOR_KEY = /^(.+?)(\.parametrizations\.weight\.0)?\.lora_([AB])$/;

/** `lora-<name>-r128-a128`: the folder name upstream saves a LoRA under (`LoRA.full_name`). */
const FOLDER_NAME = /-r(\d+)-a(\d+(?:\.\d+)?)$/;

/**
 * The largest alpha / rank accepted. Upstream trains at alpha = rank (scaling 1, the released
 * LoRAs are `r128-a128`) and LoRA trainers in general at a few times the rank at most; 64 leaves
 * room for any of them, while an alpha beyond it (1e30) is no trained value but a corrupt file,
 * whose update would swamp the weights or overflow them. Alpha must also be positive: 0 is no
 * update at all, and a negative one turns the trained update around (a negative strength does
 * that on purpose).
 */
const MAX_SCALING = 64;

/** The parts of `__metadata__.config` that matter here, each present only when valid. */
interface LoraConfig {
  name?: string;
  rank?: number;
  alpha?: number;
  parametrize?: boolean;
  /** Whether the config gives an alpha at all (valid or not): then it alone counts. */
  hasAlpha: boolean;
}

/**
 * Checks a LoRA file against a model's tensors and reads it.
 *
 * @param st The parsed file.
 * @param base The model's tensors by checkpoint key, with their shapes.
 * @returns The factors and replacements, in file order.
 * @throws {LoraError} Every problem at once: unknown keys, modules the model does not have,
 * shapes that do not fit, A and B of different ranks, rank 0, a missing half, a missing alpha
 * or one outside (0, 64 · rank], values that are NaN or infinite, two updates of one weight
 * (both key spellings, or a factor pair and the weight itself), per-level activation.
 *
 * @example
 * ```ts ignore
 * const lora = parseValleLora(await readSafetensors("lora.sft"), shapes);
 * console.log(lora.rank, lora.alpha, lora.factors.length);
 * ```
 */
export function parseValleLora(
  st: Safetensors,
  base: ReadonlyMap<string, readonly number[]>,
): ValleLora {
  const problems: WeightProblem[] = [];
  const config = readConfig(st, problems);
  const pairs = new Map<string, { spelling: LoraFactors["spelling"]; A?: string; B?: string }>();
  const replacements: LoraReplacement[] = [];
  for (const key of st.names) {
    const dtype = st.info(key).dtype;
    if (!FLOAT_DTYPES.includes(dtype)) {
      problems.push({ tensor: key, expected: "a float dtype", found: dtype });
      continue;
    }
    const factor = FACTOR_KEY.exec(key);
    if (factor) {
      const [, module, parametrized, half] = factor;
      const spelling = parametrized ? "parametrize" : "linear";
      const id = `${module}\0${spelling}`;
      const pair = pairs.get(id) ?? { spelling };
      pair[half as "A" | "B"] = key;
      pairs.set(id, pair);
    } else if (base.has(key)) {
      const shape = st.info(key).shape;
      const want = base.get(key)!;
      if (!sameShape(shape, want)) {
        problems.push({ tensor: key, expected: showShape(want), found: showShape(shape) });
      } else {
        replacements.push({ target: key, values: readValues(st, key, problems) });
      }
    } else {
      problems.push({
        tensor: key,
        expected: "<module>.lora_A / .lora_B, <module>.parametrizations.weight.0.lora_A / " +
          ".lora_B, or a tensor of the model (an embedding table)",
        found: "an unknown key",
      });
    }
  }
  const factors: LoraFactors[] = [];
  for (const [id, pair] of pairs) {
    const read = readFactors(st, id.split("\0")[0], pair, base, problems);
    if (read) factors.push(read);
  }
  if (factors.length === 0 && replacements.length === 0 && problems.length === 0) {
    problems.push({ tensor: "(file)", expected: "lora_A / lora_B tensors", found: "none" });
  }
  const rank = config.rank ?? factors[0]?.rank ?? 0;
  for (const f of factors) {
    if (f.rank !== rank) {
      problems.push({
        tensor: `${f.target.replace(/\.weight$/, "")}.lora_A`,
        expected: `rank ${rank} (${
          config.rank ? "__metadata__.config.rank" : "the other modules"
        })`,
        found: `rank ${f.rank}`,
      });
    }
    if (config.parametrize !== undefined && (f.spelling === "parametrize") !== config.parametrize) {
      problems.push({
        tensor: f.target.replace(/\.weight$/, ""),
        expected: `the ${config.parametrize ? "parametrizations.weight.0.lora_*" : "lora_*"} ` +
          `keys of __metadata__.config.parametrize = ${config.parametrize}`,
        found: `the ${f.spelling === "parametrize" ? "parametrizations" : "LoRALinear"} keys`,
      });
    }
  }
  const rankFrom = config.rank ? "__metadata__.config.rank" : "the rank of the tensors";
  const alpha = factors.length > 0
    ? readAlpha(st.source, config, { value: rank, from: rankFrom }, problems)
    : undefined;
  problems.push(...fitProblems({ factors, replacements }, base));
  if (problems.length > 0) throw new LoraError(st.source, problems);
  return { source: st.source, name: config.name, rank, alpha: alpha ?? 0, factors, replacements };
}

/** The parts of `__metadata__.config` that matter here, checked. */
function readConfig(st: Safetensors, problems: WeightProblem[]): LoraConfig {
  const text = st.metadata.config;
  if (text === undefined) return { hasAlpha: false };
  let json: LoraConfigJson;
  try {
    json = JSON.parse(text);
  } catch (e) {
    problems.push({ tensor: "__metadata__.config", expected: "JSON", found: String(e) });
    return { hasAlpha: false };
  }
  const out: LoraConfig = { hasAlpha: json.alpha !== undefined && json.alpha !== null };
  const field = (name: keyof LoraConfigJson, ok: boolean, expected: string) => {
    if (json[name] === undefined || json[name] === null) return false;
    if (!ok) {
      problems.push({
        tensor: `__metadata__.config.${name}`,
        expected,
        found: formatValue(json[name]),
      });
    }
    return ok;
  };
  if (field("name", typeof json.name === "string", "a string")) out.name = json.name as string;
  const rank = json.rank;
  if (field("rank", Number.isInteger(rank) && (rank as number) > 0, "a positive integer")) {
    out.rank = rank as number;
  }
  // Its range depends on the rank: checked by readAlpha (1e400 parses as Infinity).
  if (field("alpha", typeof json.alpha === "number", "a number")) out.alpha = json.alpha as number;
  if (field("parametrize", typeof json.parametrize === "boolean", "true or false")) {
    out.parametrize = json.parametrize as boolean;
  }
  const levels = json.rvq_levels;
  field(
    "rvq_levels",
    Array.isArray(levels) && levels.length === 0,
    "[] (active at every RVQ level; a LoRA active at some levels only is not supported)",
  );
  return out;
}

/** Reads and checks one module's pair; undefined (with problems) when it does not fit. */
function readFactors(
  st: Safetensors,
  module: string,
  pair: { spelling: LoraFactors["spelling"]; A?: string; B?: string },
  base: ReadonlyMap<string, readonly number[]>,
  problems: WeightProblem[],
): LoraFactors | undefined {
  const target = `${module}.weight`;
  const prefix = pair.spelling === "parametrize" ? `${module}.parametrizations.weight.0` : module;
  if (!pair.A || !pair.B) {
    const missing = pair.A ? "B" : "A";
    problems.push({
      tensor: `${prefix}.lora_${missing}`,
      expected: `a tensor (lora_${missing === "A" ? "B" : "A"} is there)`,
      found: "missing",
    });
    return undefined;
  }
  const weight = base.get(target);
  if (!weight || !LINEAR_MODULE.test(module)) {
    problems.push({
      tensor: module,
      expected: "a linear layer of the model (model.layers.<l>.self_attn.{q,k,v,o}_proj, " +
        "model.layers.<l>.mlp.{gate,up,down}_proj, classifiers.proj.<n>)",
      found: weight ? `${target} ${showShape(weight)}, not a linear layer` : "no such module",
    });
    return undefined;
  }
  const a = st.info(pair.A).shape;
  const b = st.info(pair.B).shape;
  if (a.length !== 2 || b.length !== 2) {
    const bad = a.length !== 2 ? pair.A : pair.B;
    problems.push({ tensor: bad, expected: "a matrix", found: showShape(st.info(bad).shape) });
    return undefined;
  }
  const [out, inp] = weight;
  // LoRALinear: B (out, r) · A (r, in). ParameterizedLoRA: B (in, r) · A (r, out), viewed as W.
  const [rows, cols] = pair.spelling === "linear" ? [out, inp] : [inp, out];
  const rank = a[0];
  if (b[1] !== rank) {
    problems.push({
      tensor: pair.B,
      expected: `[${rows}, ${rank}] (rank ${rank} of ${pair.A} ${showShape(a)})`,
      found: `${showShape(b)}: rank ${b[1]}, a rank mismatch`,
    });
    return undefined;
  }
  let fits = true;
  if (a[1] !== cols) {
    problems.push({
      tensor: pair.A,
      expected: `[${rank}, ${cols}] for ${target} ${showShape(weight)}`,
      found: showShape(a),
    });
    fits = false;
  }
  if (b[0] !== rows) {
    problems.push({
      tensor: pair.B,
      expected: `[${rows}, ${rank}] for ${target} ${showShape(weight)}`,
      found: showShape(b),
    });
    fits = false;
  }
  if (!fits) return undefined;
  return {
    target,
    spelling: pair.spelling,
    rank,
    a: readValues(st, pair.A, problems),
    cols,
    b: readValues(st, pair.B, problems),
    rows,
  };
}

/**
 * A tensor's values as f32, with a problem when any is NaN or infinite (or overflows f32): checked
 * here, on the CPU, while the file is read, so that no merged weight is ever read back for it.
 */
function readValues(st: Safetensors, key: string, problems: WeightProblem[]): Float32Array {
  const values = st.toFloat32(key);
  let first = -1;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    // v − v is 0 for every finite v, NaN for NaN and ±Infinity.
    if (values[i] - values[i] !== 0) {
      if (count++ === 0) first = i;
    }
  }
  if (count > 0) {
    const shape = st.info(key).shape;
    const at = shape.map((size, d) => Math.floor(first / numel(shape.slice(d + 1))) % size);
    const many = count > 1 ? "s" : "";
    problems.push({
      tensor: key,
      expected: "finite values",
      found: `${values[first]} at ${showShape(at)} (${count} non-finite value${many})`,
    });
  }
  return values;
}

/**
 * alpha: the config's when it gives one, else the folder name's; in (0, MAX_SCALING · rank].
 * Undefined (with a problem) when it is missing or out of range.
 */
function readAlpha(
  source: string,
  config: LoraConfig,
  rank: { value: number; from: string },
  problems: WeightProblem[],
): number | undefined {
  // An alpha readConfig refused (a string, …) is reported already.
  const given = config.hasAlpha
    ? config.alpha === undefined
      ? undefined
      : { alpha: config.alpha, where: "__metadata__.config.alpha" }
    : folderAlpha(source, rank, problems);
  if (given === undefined) return undefined;
  const problem = alphaProblem(given.alpha, rank.value, given.where);
  if (problem) problems.push(problem);
  return problem ? undefined : given.alpha;
}

/**
 * alpha from upstream's folder name (`…/lora-<name>-r<rank>-a<alpha>/lora.sft`) when its rank
 * is the LoRA's; undefined with a problem when there is no such folder or its rank differs.
 */
function folderAlpha(
  source: string,
  rank: { value: number; from: string },
  problems: WeightProblem[],
): { alpha: number; where: string } | undefined {
  const folder = source.split(/[/\\]/).slice(0, -1).findLast((name) => FOLDER_NAME.test(name));
  if (folder === undefined) {
    problems.push({
      tensor: "__metadata__.config.alpha",
      expected: "a number (or a folder name lora-<name>-r<rank>-a<alpha>, as upstream saves it)",
      found: "missing",
    });
    return undefined;
  }
  const [, folderRank, alpha] = FOLDER_NAME.exec(folder)!;
  if (Number(folderRank) !== rank.value) {
    problems.push({
      tensor: `folder ${folder}`,
      expected: `-r${rank.value} (${rank.from}, for its alpha to apply)`,
      found: `-r${folderRank}`,
    });
    return undefined;
  }
  return { alpha: Number(alpha), where: `folder ${folder}` };
}

/** The problem of an alpha outside (0, MAX_SCALING · rank], if any (none at rank 0: reported). */
function alphaProblem(alpha: number, rank: number, where: string): WeightProblem | undefined {
  const range: NumberRange = { above: 0, max: MAX_SCALING * rank };
  if (rank < 1 || inRange(alpha, range)) return undefined;
  return {
    tensor: where,
    expected: `${describeRange(range)} (alpha / rank scales the update: at most ${MAX_SCALING} ` +
      `at rank ${rank})`,
    found: formatValue(alpha),
  };
}

/** A factor pair's keys as the file spells them, e.g. `<module>.lora_A/B`. */
function factorKeys(f: LoraFactors, half: "A" | "A/B"): string {
  const module = f.target.replace(/\.weight$/, "");
  return f.spelling === "parametrize"
    ? `${module}.parametrizations.weight.0.lora_${half}`
    : `${module}.lora_${half}`;
}

/**
 * What keeps a LoRA's tensors from being merged into `base` one after another: a target the model
 * lacks, factors or a replacement without the target's element count, rank 0, and a tensor with
 * two updates (both key spellings of one module, or a factor pair and the weight itself), which
 * would be applied twice.
 */
function fitProblems(
  lora: Pick<ValleLora, "factors" | "replacements">,
  base: ReadonlyMap<string, readonly number[]>,
): WeightProblem[] {
  const problems: WeightProblem[] = [];
  const updates = new Map<string, string[]>();
  const tensors = [
    ...lora.factors.map((f) => ({
      target: f.target,
      label: factorKeys(f, "A/B"),
      elements: f.rows * f.cols,
      found: `B [${f.rows}, ${f.rank}] · A [${f.rank}, ${f.cols}]`,
    })),
    ...lora.replacements.map((r) => ({
      target: r.target,
      label: r.target,
      elements: r.values.length,
      found: `${r.values.length} values`,
    })),
  ];
  for (const { target, label, elements, found } of tensors) {
    updates.set(target, [...updates.get(target) ?? [], label]);
    const shape = base.get(target);
    if (!shape || numel(shape) !== elements) {
      problems.push({
        tensor: label,
        expected: shape ? `${target} ${showShape(shape)}` : `a tensor of the model (${target})`,
        found: shape ? found : "no such tensor",
      });
    }
  }
  for (const f of lora.factors.filter((f) => f.rank < 1)) {
    problems.push({
      tensor: factorKeys(f, "A"),
      expected: "rank ≥ 1",
      found: showShape([f.rank, f.cols]),
    });
  }
  for (const [target, labels] of updates) {
    if (labels.length > 1) {
      problems.push({
        tensor: target,
        expected: "one update",
        found: `${labels.length}: ${labels.join(" and ")}`,
      });
    }
  }
  return problems;
}

/**
 * Checks a LoRA read by {@linkcode parseValleLora}, for this model or for another one, against a
 * model's tensors before anything of it is merged, so that merging cannot fail half-way.
 *
 * @param lora The LoRA.
 * @param base The model's tensors by checkpoint key, with their shapes.
 * @throws {LoraError} Targets the model lacks or of other shapes (a LoRA read for another model),
 * rank 0, two updates of one tensor, alpha outside (0, 64 · rank].
 *
 * @example
 * ```ts ignore
 * checkValleLora(await otherModel.readLora("lora.sft"), shapes); // throws: other shapes
 * ```
 */
export function checkValleLora(
  lora: ValleLora,
  base: ReadonlyMap<string, readonly number[]>,
): void {
  const problems = fitProblems(lora, base);
  const alpha = lora.factors.length > 0 && alphaProblem(lora.alpha, lora.rank, "alpha");
  if (alpha) problems.push(alpha);
  if (problems.length > 0) throw new LoraError(lora.source, problems);
}
