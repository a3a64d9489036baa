/**
 * The error classes @valle/core throws. Every failure a caller can cause (a bad file, a missing
 * GPU feature, an unsupported option) is a {@linkcode ValleError} subclass whose message names the
 * thing that was wrong, what was expected and what was found.
 *
 * This module is browser compatible.
 *
 * @module
 */

/**
 * Base class of every error @valle/core throws on purpose.
 *
 * @example Catch anything the library reports
 * ```ts
 * import { ValleError } from "@valle/core";
 * try {
 *   throw new ValleError("Cannot load model: file is empty");
 * } catch (e) {
 *   if (!(e instanceof ValleError)) throw e;
 * }
 * ```
 */
export class ValleError extends Error {
  /**
   * Creates an error with a message in the form "Cannot <action>: <what was found>".
   *
   * @param message What failed and why.
   * @param options The underlying cause, when there is one.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * WebGPU is missing, lacks a feature, a pipeline failed to compile, or the device was lost.
 *
 * @example
 * ```ts
 * import { GpuError } from "@valle/core";
 * const e = new GpuError("Cannot run: WebGPU is not available");
 * console.assert(e.name === "GpuError");
 * ```
 */
export class GpuError extends ValleError {}

/** Where in a file a {@linkcode FormatError} was found. */
export interface FormatErrorDetails {
  /** The file (path, URL or label) being read. */
  file?: string;
  /** The entry inside the file (tensor name, chunk id, …). */
  entry?: string;
  /** The byte offset of the problem, when it has one. */
  offset?: number;
  /** What was expected there. */
  expected?: string;
  /** What was found instead. */
  found?: string;
}

/**
 * A file could not be parsed: a truncated or malformed safetensors, WAV or checkpoint file.
 * The structured fields repeat what the message says, for callers that want to react to them.
 *
 * @example
 * ```ts
 * import { FormatError } from "@valle/core";
 * const e = new FormatError("Cannot read safetensors: file is truncated", {
 *   file: "model.sft",
 *   expected: "at least 8 bytes",
 *   found: "3 bytes",
 * });
 * console.assert(e.details.file === "model.sft");
 * ```
 */
export class FormatError extends ValleError {
  /** Where the problem is, and what was expected vs found. */
  readonly details: FormatErrorDetails;

  /**
   * Creates a format error.
   *
   * @param message The full human-readable message.
   * @param details Structured copy of the facts in the message.
   * @param options The underlying cause, when there is one.
   */
  constructor(message: string, details: FormatErrorDetails = {}, options?: ErrorOptions) {
    super(message, options);
    this.details = details;
  }
}

/** One problem found while checking a model's weights against what the model needs. */
export interface WeightProblem {
  /** The checkpoint key, verbatim. */
  tensor: string;
  /** Expected shape (or description), e.g. `[1024, 1024]`. */
  expected: string;
  /** What the file holds, e.g. `[512, 1024]` or `missing`. */
  found: string;
}

/**
 * A weight file parsed, but does not hold the model that was asked for: tensors are missing,
 * mis-shaped, or the configuration is invalid. Lists every problem at once.
 *
 * @example
 * ```ts
 * import { WeightsError } from "@valle/core";
 * const e = new WeightsError("model.sft", [
 *   { tensor: "sep", expected: "[1024]", found: "missing" },
 * ]);
 * console.assert(e.problems.length === 1);
 * ```
 */
export class WeightsError extends ValleError {
  /** Every problem found. */
  readonly problems: readonly WeightProblem[];

  /**
   * Creates an error listing every problem, one per line.
   *
   * @param file The weight file (path, URL or label).
   * @param problems Every problem found, each naming the tensor.
   * @param options The underlying cause, when there is one.
   */
  constructor(file: string, problems: readonly WeightProblem[], options?: ErrorOptions) {
    const lines = problems.map((p) => `  ${p.tensor}: expected ${p.expected}, found ${p.found}`);
    super(
      `Cannot load weights from "${file}": ${problems.length} problem(s)\n${lines.join("\n")}`,
      options,
    );
    this.problems = problems;
  }
}

/**
 * A LoRA file parsed, but does not fit the model it was applied to: an unknown key layout, a
 * module the model does not have, factor shapes that do not make the weight's shape, `lora_A` and
 * `lora_B` of different ranks, rank 0, NaN or infinite values, two updates of one weight, or a
 * configuration that cannot be honoured (an alpha out of range, per-level activation). Lists every
 * problem at once, each naming the tensor with what was expected and what was found.
 *
 * @example
 * ```ts
 * import { LoraError } from "@valle/core";
 * const e = new LoraError("lora.sft", [
 *   { tensor: "model.layers.0.self_attn.q_proj.lora_B", expected: "[1024, 128]", found: "[1024, 64]" },
 * ]);
 * console.assert(e.problems.length === 1);
 * ```
 */
export class LoraError extends ValleError {
  /** Every problem found. */
  readonly problems: readonly WeightProblem[];

  /**
   * Creates an error listing every problem, one per line.
   *
   * @param file The LoRA file (path, URL or label).
   * @param problems Every problem found, each naming the tensor.
   */
  constructor(file: string, problems: readonly WeightProblem[]) {
    const lines = problems.map((p) => `  ${p.tensor}: expected ${p.expected}, found ${p.found}`);
    super(`Cannot apply the LoRA "${file}": ${problems.length} problem(s)\n${lines.join("\n")}`);
    this.problems = problems;
  }
}

/**
 * An option or argument is outside what is supported (an unknown language, a negative
 * temperature, text that is too long, …).
 *
 * @example
 * ```ts
 * import { OptionError } from "@valle/core";
 * const e = new OptionError('Cannot synthesize: language is "xx", expected one of en, ja');
 * console.assert(e instanceof Error);
 * ```
 */
export class OptionError extends ValleError {}

/**
 * A file could not be downloaded or failed its integrity check (size, SHA-256). The message says
 * where the file comes from and where to put a copy by hand when there is no network.
 *
 * @example
 * ```ts
 * import { DownloadError } from "@valle/core";
 * const e = new DownloadError("Cannot download model.sft: offline", "https://example.com/model.sft");
 * console.assert(e.url === "https://example.com/model.sft");
 * ```
 */
export class DownloadError extends ValleError {
  /** The URL the file was fetched from. */
  readonly url: string;

  /**
   * Creates a download error.
   *
   * @param message What failed and what to do about it.
   * @param url The URL the file was fetched from.
   * @param options The underlying cause, when there is one.
   */
  constructor(message: string, url: string, options?: ErrorOptions) {
    super(message, options);
    this.url = url;
  }
}

/**
 * The CPU backend failed: WebAssembly memory is exhausted (4 GiB at most), a worker thread could
 * not start or stopped, or the backend was used after it was destroyed.
 *
 * @example
 * ```ts
 * import { CpuError } from "@valle/core";
 * const e = new CpuError("Cannot allocate 5 GiB: WebAssembly memory holds at most 4 GiB");
 * console.assert(e.name === "CpuError");
 * ```
 */
export class CpuError extends ValleError {}

/** One training clip (or manifest line) that cannot be used, and why. */
export interface DataProblem {
  /** The clip's name, or the file and line (`manifest.jsonl:3`) it came from. */
  name: string;
  /** What is wrong, e.g. "the audio is silent (peak −92 dBFS)". */
  reason: string;
}

/**
 * Training data was refused: clips that are silent, too short or too long, without transcript,
 * in a language the model lacks or undecodable, or a data folder with missing files or bad
 * manifest lines. Lists every problem at once, each naming the clip.
 *
 * @example
 * ```ts
 * import { DataError } from "@valle/core";
 * const e = new DataError("prepare training data", [{ name: "a", reason: "the transcript is empty" }]);
 * console.assert(e.problems[0].name === "a");
 * ```
 */
export class DataError extends ValleError {
  /** Every problem found. */
  readonly problems: readonly DataProblem[];

  /**
   * Creates an error listing every problem, one per line.
   *
   * @param action What failed, as the message's start: `Cannot ${action}: …`.
   * @param problems Every problem found, each naming its clip.
   */
  constructor(action: string, problems: readonly DataProblem[]) {
    const lines = problems.map((p) => `  ${p.name}: ${p.reason}`);
    super(`Cannot ${action}: ${problems.length} problem(s)\n${lines.join("\n")}`);
    this.problems = problems;
  }
}
