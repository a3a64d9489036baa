/**
 * The VALL-E (e-c-k-e-r/vall-e v1) hyper-parameters, read from a weight file: the
 * `__metadata__.config` JSON that the original exporter writes, with every size that a shape can
 * tell taken from the tensor shapes instead (they win where both exist). It does not read tensor
 * data; {@linkcode ./weights.ts} does.
 *
 * Two layouts exist: with the `len` capability (`ar+nar-len-llama-8`: nine response tables, heads
 * `proj.0..L+2` = AR, NAR 1..L-1, NAR-len, STT, duration) and the older one (`ar+nar-llama-8`:
 * L response tables, `proj.L` is the STT head).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { type WeightProblem, WeightsError } from "../../errors.ts";
import type { ValleCheckpoint } from "./checkpoint.ts";

/** Everything about a VALL-E model that changes how it is run. */
export interface ValleConfig {
  /** `config.name` (e.g. "ar+nar-len-llama-8"), or "" when the file has no config. */
  readonly name: string;
  /** `config.version` (5 for the released v1 models), or 5 when absent. */
  readonly version: number;
  /** Model width d (`text_emb.weight` columns). */
  readonly dModel: number;
  /** Attention heads (from `config.size`; d/64 when the file has no config). */
  readonly nHeads: number;
  /** dModel / nHeads. */
  readonly headDim: number;
  /** Transformer blocks. */
  readonly nLayers: number;
  /** MLP width (`mlp.gate_proj.weight` rows). */
  readonly dFf: number;
  /** RVQ levels (number of `proms_emb.embeddings.*` tables). */
  readonly nLevels: number;
  /** Codes per RVQ level; also the AR stop id and the NAR-len mask id. */
  readonly nAudio: number;
  /** Phoneme vocabulary (`text_emb.weight` rows). */
  readonly nPhn: number;
  /** Language ids (`langs_emb.weight` rows). */
  readonly nLangs: number;
  /**
   * Duration tokens: 11 (digits 0-9 and the stop 10, upstream's fixed `n_len_tokens`; the file's
   * `len_emb.weight` and duration head are checked against it), 0 without the len layout.
   */
  readonly nLen: number;
  /** The len layout: NAR-len (`resps_emb.embeddings.L`) and duration heads exist. */
  readonly hasNarLen: boolean;
  /** `experimental.audio_embedding_sums`: NAR inputs sum the lower RVQ levels' embeddings. */
  readonly audioEmbeddingSums: boolean;
  /** `experimental.unified_position_ids`: positions run 0..N-1 instead of restarting per segment. */
  readonly unifiedPositionIds: boolean;
  /** `experimental.noncausal_masks`: NAR and NAR-len attend bidirectionally. */
  readonly noncausalMasks: boolean;
  /** `experimental.classifiers_bias`: heads have biases. */
  readonly classifiersBias: boolean;
  /** RMSNorm epsilon (1e-6, the LlamaConfig default the original uses). */
  readonly rmsEps: number;
  /** RoPE base (10000). */
  readonly ropeTheta: number;
  /** `config.capabilities` as written in the file (the original appends "lang" at run time). */
  readonly capabilities: readonly string[];
}

/** Which head (`classifiers.proj.N`) serves each mode. */
export interface ValleHeads {
  /** AR level 0 (nAudio + 1 outputs, last = stop). */
  readonly ar: number;
  /** NAR level L (1..nLevels-1) is head L. */
  readonly nar: (level: number) => number;
  /** NAR-len demasking (nAudio outputs), -1 without the len layout. */
  readonly narLen: number;
  /** Speech-to-text phoneme head (nPhn outputs). */
  readonly stt: number;
  /** Duration digits (nLen outputs), -1 without the len layout. */
  readonly len: number;
  /** Number of heads the layout has. */
  readonly count: number;
}

/**
 * The head indices of a config's layout.
 *
 * @example
 * ```ts ignore
 * const heads = valleHeads(config);
 * console.log(`STT reads classifiers.proj.${heads.stt}`);
 * ```
 */
export function valleHeads(config: ValleConfig): ValleHeads {
  const l = config.nLevels;
  return {
    ar: 0,
    nar: (level: number) => level,
    narLen: config.hasNarLen ? l : -1,
    stt: config.hasNarLen ? l + 1 : l,
    len: config.hasNarLen ? l + 2 : -1,
    count: config.hasNarLen ? l + 3 : l + 1,
  };
}

/** Duration tokens of the len layout: digits 0-9 and the stop 10 (the duration loop's ids). */
const LEN_TOKENS = 11;

/** Heads per `config.size` preset, as HEAD's `Model.heads` property defines them. */
const PRESET_HEADS: Readonly<Record<string, number>> = { quarter: 4, half: 8 };

/**
 * Reads the config of a VALL-E weight file: sizes from tensor shapes, flags and the head count
 * from `__metadata__.config`.
 *
 * @param st The parsed weight file (safetensors, or a GGUF through `ggufCheckpoint`).
 * @returns The validated config.
 * @throws {WeightsError} Listing every problem: unreadable config JSON, a model family this port
 * does not run (`arch_type` other than llama, version ≥ 7, single classifier), or sizes that
 * cannot be derived (no width, no layers, a head count that does not divide d).
 *
 * @example
 * ```ts ignore
 * const st = await readSafetensors("ar+nar-len-llama-8.sft");
 * const config = readValleConfig(st);
 * console.log(config.dModel, config.nHeads, config.nLayers);
 * ```
 */
export function readValleConfig(st: ValleCheckpoint): ValleConfig {
  const problems: WeightProblem[] = [];
  const config = deriveValleConfig(st, problems);
  if (problems.length > 0) throw new WeightsError(st.source, problems);
  return config;
}

/**
 * Derives the config like {@linkcode readValleConfig} but appends problems to `problems` instead
 * of throwing, so that the weight loader reports them together with the tensor problems.
 */
export function deriveValleConfig(
  st: ValleCheckpoint,
  problems: WeightProblem[],
): ValleConfig {
  const meta = parseMetadataConfig(st, problems);
  const experimental = isRecord(meta.experimental) ? meta.experimental : {};

  const shape = (name: string): readonly number[] | undefined =>
    st.has(name) ? st.info(name).shape : undefined;
  const count = (template: (i: number) => string): number => {
    let n = 0;
    while (st.has(template(n))) n++;
    return n;
  };

  // The width from the first tensor that has it; the tensor checks report the others.
  const dModel = shape("text_emb.weight")?.[1] ?? shape("sep")?.[0] ??
    shape("model.norm.weight")?.[0] ?? 0;
  if (dModel === 0) {
    problems.push({
      tensor: "text_emb.weight",
      expected: "[n_phonemes, d_model]",
      found: "missing (and no sep or model.norm.weight to take d_model from)",
    });
  }
  const nLayers = count((i) => `model.layers.${i}.input_layernorm.weight`);
  if (nLayers === 0) {
    problems.push({
      tensor: "model.layers.0.input_layernorm.weight",
      expected: `[${dModel}] (at least one layer)`,
      found: "missing",
    });
  }
  const nLevels = count((i) => `proms_emb.embeddings.${i}.weight`);
  if (nLevels < 2) {
    problems.push({
      tensor: `proms_emb.embeddings.${nLevels}.weight`,
      expected: "prompt tables for at least 2 RVQ levels",
      found: "missing",
    });
  }
  const nResp = count((i) => `resps_emb.embeddings.${i}.weight`);
  if (nLevels >= 2 && nResp !== nLevels && nResp !== nLevels + 1) {
    problems.push({
      tensor: `resps_emb.embeddings.${nResp}.weight`,
      expected: `${nLevels} response tables (ar+nar) or ${nLevels + 1} (ar+nar-len)`,
      found: `${nResp} tables`,
    });
  }
  const hasNarLen = nResp === nLevels + 1;
  const nHeads = headCount(meta.size, dModel, problems);
  const archType = meta.arch_type ?? "llama";
  if (archType !== "llama") {
    problems.push({
      tensor: "__metadata__.config.arch_type",
      expected: '"llama"',
      found: JSON.stringify(archType),
    });
  }
  const version = typeof meta.version === "number" ? meta.version : 5;
  if (version >= 7) {
    problems.push({
      tensor: "__metadata__.config.version",
      expected: "a v1 model (version < 7)",
      found: `${version} (a v2 model)`,
    });
  }
  if (experimental.split_classifiers === false) {
    problems.push({
      tensor: "__metadata__.config.experimental.split_classifiers",
      expected: "true (one head per mode)",
      found: "false",
    });
  }

  return {
    name: typeof meta.name === "string" ? meta.name : "",
    version,
    dModel,
    nHeads,
    headDim: dModel / nHeads,
    nLayers,
    dFf: shape("model.layers.0.mlp.gate_proj.weight")?.[0] ?? 4 * dModel,
    nLevels,
    nAudio: shape("proms_emb.embeddings.0.weight")?.[0] ?? 1024,
    nPhn: shape("text_emb.weight")?.[0] ?? 256,
    nLangs: shape("langs_emb.weight")?.[0] ?? 1,
    nLen: hasNarLen ? LEN_TOKENS : 0,
    hasNarLen,
    audioEmbeddingSums: experimental.audio_embedding_sums !== false,
    unifiedPositionIds: experimental.unified_position_ids === true,
    noncausalMasks: experimental.noncausal_masks === true,
    classifiersBias: experimental.classifiers_bias !== false,
    rmsEps: 1e-6,
    ropeTheta: 10000,
    capabilities: Array.isArray(meta.capabilities)
      ? meta.capabilities.filter((c): c is string => typeof c === "string")
      : [],
  };
}

/** The `config` metadata entry as an object; `{}` when absent (then shapes decide everything). */
function parseMetadataConfig(
  st: ValleCheckpoint,
  problems: WeightProblem[],
): Record<string, unknown> {
  const text = st.metadata.config;
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    problems.push({
      tensor: "__metadata__.config",
      expected: "a JSON object",
      found: `unparsable JSON (${(e as Error).message})`,
    });
    return {};
  }
  if (!isRecord(value)) {
    problems.push({
      tensor: "__metadata__.config",
      expected: "a JSON object",
      found: value === null ? "null" : typeof value,
    });
    return {};
  }
  return value;
}

/**
 * The head count, following HEAD's `Model.heads`: a dict `size` gives `heads` (16 when missing),
 * a number s gives floor(16·s), a preset name gives its count (16 by default). Without any `size`
 * the head dimension is assumed to be 64.
 */
function headCount(size: unknown, dModel: number, problems: WeightProblem[]): number {
  let heads: unknown;
  if (size === undefined) heads = dModel / 64;
  else if (isRecord(size)) heads = size.heads ?? 16;
  else if (typeof size === "number") heads = Math.floor(16 * size);
  else if (typeof size === "string") heads = PRESET_HEADS[size] ?? 16;
  else heads = NaN;
  const ok = typeof heads === "number" && Number.isInteger(heads) && heads > 0 &&
    dModel % heads === 0 && (dModel / heads) % 2 === 0 && dModel / heads <= 256;
  if (!ok && dModel > 0) {
    problems.push({
      tensor: "__metadata__.config.size",
      expected: `a head count that splits d_model ${dModel} into even heads of at most 256`,
      found: `${JSON.stringify(size)} (${String(heads)} heads)`,
    });
  }
  return ok ? heads as number : 1;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
