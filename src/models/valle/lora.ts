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

import { formatValue } from "../../_options.ts";
import { LoraError, type WeightProblem } from "../../errors.ts";
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
const FOLDER_NAME = /-r(\d+)-a(\d+(?:\.\d+)?)(?:[/\\]|$)/;

/**
 * Checks a LoRA file against a model's tensors and reads it.
 *
 * @param st The parsed file.
 * @param base The model's tensors by checkpoint key, with their shapes.
 * @returns The factors and replacements, in file order.
 * @throws {LoraError} Every problem at once: unknown keys, modules the model does not have,
 * shapes that do not fit, A and B of different ranks, a missing half, a missing alpha,
 * per-level activation.
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
        replacements.push({ target: key, values: st.toFloat32(key) });
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
  const alpha = config.alpha ?? folderAlpha(st.source, rank);
  if (alpha === undefined && factors.length > 0) {
    problems.push({
      tensor: "__metadata__.config.alpha",
      expected: "a number (or a folder name lora-<name>-r<rank>-a<alpha>, as upstream saves it)",
      found: "missing",
    });
  }
  if (problems.length > 0) throw new LoraError(st.source, problems);
  return { source: st.source, name: config.name, rank, alpha: alpha ?? 0, factors, replacements };
}

/** The parts of `__metadata__.config` that matter here, checked. */
function readConfig(
  st: Safetensors,
  problems: WeightProblem[],
): { name?: string; rank?: number; alpha?: number; parametrize?: boolean } {
  const text = st.metadata.config;
  if (text === undefined) return {};
  let json: LoraConfigJson;
  try {
    json = JSON.parse(text);
  } catch (e) {
    problems.push({ tensor: "__metadata__.config", expected: "JSON", found: String(e) });
    return {};
  }
  const out: { name?: string; rank?: number; alpha?: number; parametrize?: boolean } = {};
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
  const alpha = json.alpha;
  if (field("alpha", typeof alpha === "number" && Number.isFinite(alpha), "a number")) {
    out.alpha = alpha as number;
  }
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
    a: st.toFloat32(pair.A),
    cols,
    b: st.toFloat32(pair.B),
    rows,
  };
}

/** alpha from upstream's folder name `…-r<rank>-a<alpha>/lora.sft`, when the rank agrees. */
function folderAlpha(source: string, rank: number): number | undefined {
  const match = FOLDER_NAME.exec(source.replace(/[/\\][^/\\]*$/, ""));
  return match && Number(match[1]) === rank ? Number(match[2]) : undefined;
}
