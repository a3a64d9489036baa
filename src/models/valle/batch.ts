/**
 * The TTS pipeline for several rows (pieces of text) at once: duration → NAR-len → NAR levels,
 * or AR → NAR levels, each stage one batch over all rows (see {@linkcode ./batch_decode.ts} and
 * {@linkcode ./batch_nar.ts}). Every row has its own conditioning and seed and gets the codes the
 * same request alone gives (`ValleModel.generate` with that seed in every stage).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import { writeTensor } from "../../backends/tensor.ts";
import { batchDecodePositions, decodeBatch } from "./batch_decode.ts";
import {
  narLenSequences,
  narSequences,
  packedPositions,
  type PackedRow,
  runNarBatch,
  runNarLenBatch,
} from "./batch_nar.ts";
import type { CfgOptions } from "./cfg.ts";
import type { ValleModelParts } from "./forward.ts";
import { assembleSequence, type GeneratedCodes } from "./inputs.ts";
import { type Duration, DURATION_DIGITS, DURATION_FRAMES, readDuration } from "./len.ts";
import type { GenerateRequest, GenerateResult, ValleConditioning } from "./model.ts";
import type { Conditioning } from "./nar.ts";
import { checkNarLenSampler } from "./nar_len.ts";
import { tokenRow, type ValleContext } from "./pass.ts";
import { phaseBoundary } from "./progress.ts";
import { narLenTemperature, positiveInt } from "./request_checks.ts";
import { resolveSamplerOptions, STREAM } from "./sampler.ts";

/** One row of a batch: its conditioning and the seed of all its stages. */
export interface BatchRow extends ValleConditioning {
  /** Random seed of every stage of this row. Default: the stages' seeds in the request, else 0. */
  seed?: number;
}

/** A batched pipeline call: the settings of {@linkcode GenerateRequest}, shared by the rows. */
export interface GenerateBatchRequest
  extends Omit<GenerateRequest, keyof ValleConditioning | "prefix"> {
  /** The rows, each with its own phonemes, language, prompt and seed. */
  rows: readonly BatchRow[];
}

/** What the batched pipeline needs from the model. */
export interface BatchModel {
  /** Config and weights. */
  readonly parts: ValleModelParts;
  /** The loop context with the run state grown to `positions`. */
  context(positions: number): ValleContext;
  /** A request's conditioning with the model's defaults. */
  conditioning(request: ValleConditioning): Conditioning;
  /** Whether "auto" means NAR-len for this model. */
  readonly prefersNarLen: boolean;
}

/**
 * Runs the pipeline for every row as one batch per stage.
 *
 * @param model The model's parts.
 * @param request The rows and the shared settings.
 * @returns One result per row, in order.
 * @throws {OptionError} No rows, or settings `ValleModel.generate` refuses.
 *
 * @example
 * ```ts ignore
 * const results = await generateBatch(parts, { rows: [{ phonemes, seed: 1 }, { phonemes: other, seed: 2 }] });
 * ```
 */
export async function generateBatch(
  model: BatchModel,
  request: GenerateBatchRequest,
): Promise<GenerateResult[]> {
  const { config, weights } = model.parts;
  if (request.rows.length === 0) {
    throw new OptionError("Cannot generate a batch: no rows given, expected at least one");
  }
  for (const stage of [request.ar, request.nar, request.narLen]) {
    resolveSamplerOptions(stage?.sampler);
  }
  const modality = request.modality ?? "auto";
  const narLen = modality === "nar-len" || (modality === "auto" && model.prefersNarLen);
  const nar = request.nar ?? {};
  const rows = request.rows.map((row) => ({ row, conditioning: model.conditioning(row) }));
  const seedOf = (row: BatchRow, stageSeed: number | undefined) => row.seed ?? stageSeed ?? 0;

  if (!narLen) {
    const ar = request.ar ?? {};
    const maxSteps = positiveInt("maxSteps", ar.maxSteps ?? 500);
    const seqs = rows.map(({ conditioning }) =>
      assembleSequence(config, weights.layout, {
        ...conditioning,
        mode: "ar",
        responseFrames: maxSteps,
      })
    );
    const out = await decodeBatch(model.context(batchDecodePositions(seqs)), {
      seqs,
      seeds: rows.map(({ row }) => seedOf(row, ar.seed)),
      initial: [],
      maxSteps,
      stopToken: config.nAudio,
      sampler: resolveSamplerOptions(ar.sampler),
      lengthPenaltyToken: config.nAudio,
      stream: STREAM.ar,
      checkEvery: positiveInt("checkEvery", ar.checkEvery ?? 32),
      boundary: phaseBoundary(request, "level0", maxSteps),
    });
    const level0 = out.map((o) => o.sampled.slice(0, o.stoppedAt >= 0 ? o.stoppedAt : undefined));
    const codes = await narLevels(model, request, rows, level0, nar.cfg, seedOf);
    return codes.map((c) => ({ codes: c, modality: "ar+nar" }));
  }

  const settings = request.narLen ?? {};
  const temperature = narLenTemperature(settings.temperature);
  const sampler = resolveSamplerOptions(settings.sampler);
  checkNarLenSampler(sampler);
  const steps = positiveInt("steps", settings.steps ?? 25);
  const durations = await predictDurations(model, request, rows.map((r) => r.conditioning));
  const frames = durations.map((d) => {
    const padded = Math.trunc(
      Math.max(d.frames, request.minFrames ?? 75) * (request.durationPadding ?? 1.05),
    );
    return Math.max(1, Math.min(request.maxFrames ?? 500, padded));
  });
  const packedRows: PackedRow[] = rows.map(({ row, conditioning }, r) => ({
    conditioning,
    frames: frames[r],
    seed: seedOf(row, settings.seed),
  }));
  const [cond] = narLenSequences(model.parts, packedRows);
  const level0 = await runNarLenBatch(model.context(packedPositions(cond)), {
    rows: packedRows,
    steps,
    temperature,
    annealed: settings.annealed ?? true,
    cfg: {
      strength: Math.max(settings.cfg?.strength ?? 2.5, 2.5),
      rescale: settings.cfg?.rescale ?? 0.75,
    },
    remask: settings.remask ?? false,
    maskedOnly: settings.maskedOnly ?? false,
    sampler,
    boundary: phaseBoundary(request, "level0", steps),
  });
  // As ValleModel.generate: the NAR levels get the strength asked for NAR-len, without its floor.
  const asked = settings.cfg?.strength;
  const guidance = nar.cfg ??
    (asked === undefined ? undefined : { strength: asked, rescale: settings.cfg?.rescale ?? 0.7 });
  const codes = await narLevels(model, request, rows, level0, guidance, seedOf);
  return codes.map((c, r) => ({ codes: c, modality: "nar-len", duration: durations[r] }));
}

/** The duration of every row, one batched decoding loop of digits. */
async function predictDurations(
  model: BatchModel,
  request: GenerateBatchRequest,
  conditionings: readonly Conditioning[],
): Promise<Duration[]> {
  const { config, weights } = model.parts;
  const seqs = conditionings.map((c) =>
    assembleSequence(config, weights.layout, { ...c, mode: "len", responseFrames: DURATION_FRAMES })
  );
  const out = await decodeBatch(model.context(batchDecodePositions(seqs)), {
    seqs,
    seeds: seqs.map(() => 0),
    initial: [0],
    maxSteps: DURATION_DIGITS.max,
    stopToken: DURATION_DIGITS.stop,
    sampler: resolveSamplerOptions({ temperature: 0 }),
    stream: STREAM.len,
    checkEvery: DURATION_DIGITS.max,
    boundary: phaseBoundary(request, "duration", DURATION_DIGITS.max),
  });
  return out.map((o) => readDuration(o.sampled));
}

/** NAR levels 1.. for the rows with frames; rows without get empty codes. */
async function narLevels(
  model: BatchModel,
  request: GenerateBatchRequest,
  rows: readonly { row: BatchRow; conditioning: Conditioning }[],
  level0: readonly Int32Array[],
  guidance: CfgOptions | undefined,
  seedOf: (row: BatchRow, stageSeed: number | undefined) => number,
): Promise<GeneratedCodes[]> {
  const { nLevels } = model.parts.config;
  const nar = request.nar ?? {};
  const top = Math.min(nar.maxLevel ?? nLevels - 1, nLevels - 1);
  const withFrames = rows.flatMap(({ row, conditioning }, r) =>
    level0[r].length > 0
      ? [{ index: r, conditioning, frames: level0[r].length, seed: seedOf(row, nar.seed) }]
      : []
  );
  const results: GeneratedCodes[] = level0.map(() => ({
    data: new Int32Array(0),
    frames: 0,
    levels: nLevels,
  }));
  if (withFrames.length === 0) return results;
  const ctx = model.context(packedPositions(narSequences(model.parts, withFrames, 1)));
  let at = 0;
  for (const row of withFrames) {
    writeTensor(
      ctx.backend,
      tokenRow(ctx.state, 0, at, row.frames),
      Uint32Array.from(level0[row.index]),
    );
    at += row.frames;
  }
  const codes = await runNarBatch(ctx, {
    rows: withFrames,
    fromLevel: 1,
    toLevel: top,
    sampler: resolveSamplerOptions({ temperature: 0, ...nar.sampler }),
    cfg: guidance,
    boundary: phaseBoundary(request, "nar", top),
  });
  withFrames.forEach((row, i) => (results[row.index] = codes[i]));
  return results;
}
