/**
 * {@linkcode ValleModel}: a loaded VALL-E v1 model (e-c-k-e-r/vall-e `ar+nar-len-llama-8` or
 * `ar+nar-llama-8`, any size) on the GPU, with one call per inference mode and a low-level call
 * that returns the logits of one forward pass. Inputs are phoneme ids (tokenize text with the
 * text front end) and EnCodec codes; outputs are codes.
 *
 * Calls on one model run one at a time (they share the preallocated run state).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { Lifetime } from "../_lifetime.ts";
import { checkRanges } from "../../_options.ts";
import { GpuError, OptionError } from "../../errors.ts";
import type { KernelUse, Recorder, Tensor } from "../../backends/backend.ts";
import { valleKernelUses } from "./kernels.ts";
import { readBytes, rows, writeTensor } from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { type BackendSource, resolveBackend } from "../../backends/select.ts";
import type { Precision } from "../../backends/backend.ts";
import {
  readSafetensors,
  type ReadSafetensorsOptions,
  Safetensors,
  type SafetensorsSource,
} from "../../io/safetensors.ts";
import { readValleFile, type ValleFileInput } from "./checkpoint.ts";
import { checkDtype, type ValleDtype } from "./quant_policy.ts";
import { embeddingSum } from "../../ops/embedding.ts";
import { decode } from "./ar.ts";
import { generateBatch, type GenerateBatchRequest } from "./batch.ts";
import { cfg, CFG_STAT, type CfgOptions } from "./cfg.ts";
import { type ValleConfig, type ValleHeads, valleHeads } from "./config.ts";
import { logitRows } from "./heads.ts";
import {
  assembleSequence,
  type Codes,
  type EmbeddingRule,
  type GeneratedCodes,
  type Sequence,
  type SequenceSpec,
  type ValleMode,
} from "./inputs.ts";
import { type Duration, DURATION_FRAMES, predictDuration } from "./len.ts";
import { type Conditioning, runNar } from "./nar.ts";
import { type NarLenResult, runNarLen } from "./nar_len.ts";
import { recordPass, tokenRow, uploadSequence, type ValleContext } from "./pass.ts";
import { phaseBoundary, type ProgressOptions } from "./progress.ts";
import { narLenTemperature, positiveInt } from "./request_checks.ts";
import { resolveSamplerOptions, type SamplerOptions, STREAM } from "./sampler.ts";
import { createRunState, destroyRunState, ensureCapacity, type ValleRunState } from "./state.ts";
import { transcribe } from "./stt.ts";
import {
  destroyValleWeights,
  quantizeAtLoad,
  uploadValleWeights,
  type ValleWeights,
  valleWeightTensors,
} from "./weights.ts";
import { type ActiveLora, LORA_STRENGTH, LoraSlot } from "./adapter.ts";
import { parseValleLora, type ValleLora } from "./lora.ts";

/** Options of {@linkcode ValleModel.load}. */
export interface ValleModelOptions extends ReadSafetensorsOptions, BackendSource {
  /**
   * Weight storage: "auto" (default) uses f16 where the backend supports it (WebGPU with
   * `shader-f16`, or the CPU), "f32" always f32, "f16" requires support. Activations are f32 in
   * every case.
   */
  precision?: Precision;
  /**
   * Weight storage: `"f32"`/`"f16"` (as `precision`), or quantized at load, `"q8"` (every matrix
   * Q8_0) or `"q4"` (the transformer projections Q4_K, `v_proj`, heads and embedding tables Q8_0);
   * norms and biases stay float (`src/quant/FORMATS.md`). Default: float, or what a GGUF stores.
   */
  dtype?: ValleDtype;
  /** Sequence positions to preallocate (grown on demand, outside generation loops). Default 1024. */
  capacity?: number;
  /** Default NAR summation rule. Default "head" (current upstream). */
  embeddingRule?: EmbeddingRule;
  /** Default for inserting the language segment. Default true (upstream HEAD behaviour). */
  includeLanguage?: boolean;
}

/**
 * What conditions a TTS pass: phonemes, language, prompt codes, and the embedding switches (which
 * default to the model's load options).
 */
export interface ValleConditioning {
  /** Phoneme ids including `<bos>`=1 … `</eos>`=2. */
  phonemes: ArrayLike<number>;
  /** Language id (en 0, ja 1, de 2, fr 3, zh 4, ko 5); `null` leaves the segment out. Default 0. */
  language?: number | null;
  /** Prompt (reference voice) codes, frame-major; none for a random voice. */
  prompt?: Codes | null;
  /** NAR summation rule. */
  embeddingRule?: EmbeddingRule;
  /** Insert the language segment. */
  includeLanguage?: boolean;
}

/**
 * Rolling context (the original's `context_history` for multi-sentence text): the phonemes and
 * codes of the previous utterance(s). AR and NAR-len read the phonemes
 * `prefix.phonemes[:-1] ++ phonemes[1:]` (the inner `</eos><bos>` dropped) and continue after the
 * prefix's level-0 codes; the duration prediction and the NAR levels read the plain phonemes and
 * the new frames only. The prefix never appears in the output.
 */
export interface ContextPrefix {
  /** Phoneme ids of the previous utterance(s), with `<bos>` … `</eos>`. */
  phonemes: ArrayLike<number>;
  /** Their codes, frame-major (level 0 is read). */
  codes: Codes;
}

/** A request for the logits of one forward pass ({@linkcode ValleModel.logits}). */
export interface LogitsRequest extends ValleConditioning {
  /** The pass: "ar", "nar" (with `level`), "nar-len", "len" or "stt". */
  mode: ValleMode;
  /** NAR target level 1..nLevels-1. */
  level?: number;
  /**
   * The response segment: AR/NAR-len level-0 tokens (NAR-len: the mask id where masked), NAR codes
   * with the levels below `level`, STT the input audio. A plain array is level 0.
   */
  response?: Codes | ArrayLike<number> | null;
  /** "len": the digits so far, starting with 0. Default [0]. */
  lengthDigits?: ArrayLike<number>;
  /** Combine with the null-input pass (NAR, NAR-len). */
  cfg?: CfgOptions;
  /**
   * AR only: the logits of every response position from one causal pass (teacher forcing):
   * row t predicts response token t (row 0 is the position before the response, the last row
   * what follows it). Without it, only the last row.
   */
  teacherForced?: boolean;
}

/** The logits of one pass. */
export interface LogitsResult {
  /** Row-major logits (rows · columns). */
  logits: Float32Array;
  /** Rows: 1 for AR/len/STT (the last position; AR teacher-forced: frames + 1), the response frames for NAR/NAR-len. */
  rows: number;
  /** Head outputs. */
  columns: number;
  /** With `cfg`: std of the conditional logits, of the unscaled guided logits, and the factor. */
  cfg?: { stdCond: number; stdGuided: number; factor: number };
}

/** The assembled input of one pass ({@linkcode ValleModel.inputs}). */
export interface InputsResult {
  /** Position ids (N). */
  positions: Int32Array;
  /** Segment kinds (N): 0 phn, 1 lang, 2 rvq, 3 prom, 4 resp, 5 len, 6 sep. */
  kinds: Int32Array;
  /** Input embeddings fed to layer 0 (N · d). */
  embeddings: Float32Array;
}

/** Options shared by the sampling calls. */
export interface SamplingRequest {
  /** Sampler settings. */
  sampler?: SamplerOptions;
  /** Random seed (same seed, same tokens). Default 0. */
  seed?: number;
}

/** AR level 0 ({@linkcode ValleModel.generateAr}); the sampler defaults to temperature 1. */
export interface ArRequest extends ValleConditioning, SamplingRequest, ProgressOptions {
  /**
   * Rolling context: generation continues after the prefix's level-0 codes (the sampler's
   * penalties see them as previous tokens); `maxSteps` counts new tokens.
   */
  prefix?: ContextPrefix | null;
  /** Frames at most. Default 500 (the original's max_duration). */
  maxSteps?: number;
  /** Steps between stop checks (one readback each). Default 32. */
  checkEvery?: number;
}

/** AR output. */
export interface ArResult {
  /** Level-0 tokens before the stop token. */
  tokens: Int32Array;
  /** Every sampled token, including the stop token if one came. */
  sampled: Int32Array;
  /** Whether the stop token came within `maxSteps`. */
  stopped: boolean;
}

/** NAR levels ({@linkcode ValleModel.generateNar}); the sampler defaults to greedy (temperature 0). */
export interface NarRequest extends ValleConditioning, SamplingRequest, ProgressOptions {
  /** The known levels (at least level 0), frame-major. */
  codes: Codes;
  /** The highest level to produce. Default nLevels − 1. */
  maxLevel?: number;
  /** Guidance (a second pass with the null input); off by default. */
  cfg?: CfgOptions;
}

/** NAR-len demasking ({@linkcode ValleModel.generateNarLen}). */
export interface NarLenRequest extends ValleConditioning, SamplingRequest, ProgressOptions {
  /**
   * Rolling context: the prefix's level-0 codes precede the `frames` new frames in the
   * conditional and the null pass of every step; masking, scores and sampling act on the new
   * frames only. The CFG strength is still raised to 2.5: the original computes an exception for
   * a prefix (the requested strength) but never uses it.
   */
  prefix?: ContextPrefix | null;
  /** Frames L. */
  frames: number;
  /** Demasking steps. Default 25 (model default; the web UI uses 50). */
  steps?: number;
  /** Base temperature T0 ≥ 0, annealed to 0. Default 0 (greedy, model default; web UI 1). */
  temperature?: number;
  /** Anneal the temperature. Default true. */
  annealed?: boolean;
  /** Guidance: strength is raised to at least 2.5 as in the original. Default 2.5 / 0.75. */
  cfg?: Partial<CfgOptions>;
  /** Remask: mask ratio + 1/(2S). Default false. */
  remask?: boolean;
  /** Keep score 1 for frames that were not masked. Default false. */
  maskedOnly?: boolean;
  /** Return every step's tokens, scores, masks and CFG factor. Default false. */
  trace?: boolean;
}

/** Speech-to-text ({@linkcode ValleModel.transcribe}); the sampler defaults to greedy. */
export interface SttRequest extends SamplingRequest {
  /** The input audio codes, all levels. */
  codes: Codes;
  /** Language id; `null` leaves the segment out. Default 0. */
  language?: number | null;
  /** Insert the language segment. */
  includeLanguage?: boolean;
  /** Phonemes at most. Default 20 per second of audio (the web UI's rule). */
  maxSteps?: number;
  /** Steps between stop checks. Default 32. */
  checkEvery?: number;
}

/** The whole TTS pipeline ({@linkcode ValleModel.generate}). */
export interface GenerateRequest extends ValleConditioning, ProgressOptions {
  /** Rolling context for level 0 (AR or NAR-len); see {@linkcode ContextPrefix}. */
  prefix?: ContextPrefix | null;
  /**
   * "auto": NAR-len when the model has it (and its name is not exactly "ar+nar"), else AR + NAR.
   * Default "auto".
   */
  modality?: "auto" | "ar+nar" | "nar-len";
  /** AR settings (AR + NAR). */
  ar?: Omit<ArRequest, keyof ValleConditioning | keyof ProgressOptions | "prefix">;
  /**
   * NAR-level settings. Default greedy. Without `cfg`, a NAR-len run passes the strength asked
   * for NAR-len (`narLen.cfg`, before its 2.5 floor; rescale 0.7 unless given) on to the levels,
   * as the original does; an AR run uses none.
   */
  nar?: SamplingRequest & { cfg?: CfgOptions; maxLevel?: number };
  /** NAR-len settings; `frames` defaults to the predicted duration. */
  narLen?: Partial<Omit<NarLenRequest, keyof ValleConditioning | keyof ProgressOptions | "prefix">>;
  /** NAR-len: minimum frames before padding. Default 75. */
  minFrames?: number;
  /** NAR-len: duration padding factor. Default 1.05. */
  durationPadding?: number;
  /** NAR-len: maximum frames. Default 500. */
  maxFrames?: number;
}

/** Pipeline output. */
export interface GenerateResult {
  /** Codes, frame-major (frames × nLevels). */
  codes: GeneratedCodes;
  /** The modality that ran. */
  modality: "ar+nar" | "nar-len";
  /** NAR-len: the predicted duration. */
  duration?: Duration;
}

/** Options of {@linkcode ValleModel.setLora}. */
export interface LoraOptions extends ReadSafetensorsOptions {
  /**
   * Multiplies the LoRA's update (and blends its embeddings), in [-10, 10] (`LORA_STRENGTH`).
   * Default 1; 0 is the base model.
   */
  strength?: number;
}

/** The model as loaded, given to {@linkcode ValleModel.withBase}'s call. */
export interface ValleBase {
  /** The device. */
  readonly backend: Backend;
  /** Hyper-parameters. */
  readonly config: ValleConfig;
  /** The weights, without a LoRA. */
  readonly weights: ValleWeights;
  /** The NAR summation rule of the model's passes. */
  readonly rule: EmbeddingRule;
  /** Whether its sequences carry the language segment. */
  readonly includeLanguage: boolean;
}

/**
 * A VALL-E v1 model on the GPU.
 *
 * @example Low-level logits and the NAR-len pipeline
 * ```ts ignore
 * import { ValleModel } from "@valle/core/valle";
 * const valle = await ValleModel.load("ar+nar-len-llama-8.sft");
 * const phonemes = [1, 22, 111, 100, 4, 37, 115, 169, 11, 2]; // "həlˈoʊ wˈɜːld."
 * const { logits } = await valle.logits({ mode: "ar", phonemes, language: 0, prompt });
 * const { codes } = await valle.generate({ phonemes, language: 0, prompt });
 * valle.dispose();
 * ```
 */
export class ValleModel {
  /** The device. */
  readonly backend: Backend;
  /** Hyper-parameters read from the file. */
  readonly config: ValleConfig;
  /** Which head serves which mode. */
  readonly heads: ValleHeads;
  #base: ValleWeights;
  #state: ValleRunState;
  #rec: Recorder;
  #rule: EmbeddingRule;
  #includeLanguage: boolean;
  #ownsBackend: boolean;
  /** Every checkpoint tensor by key, as views of the weights: what a LoRA addresses. */
  #tensors: ReadonlyMap<string, Tensor>;
  #lora: LoraSlot;
  #life = new Lifetime("VALL-E model");

  private constructor(
    backend: Backend,
    { config, weights }: { config: ValleConfig; weights: ValleWeights },
    options: ValleModelOptions,
    ownsBackend: boolean,
  ) {
    this.backend = backend;
    this.config = config;
    this.#base = weights;
    this.heads = valleHeads(config);
    this.#state = createRunState(backend, config, options.capacity ?? 1024);
    this.#rec = backend.createRecorder({ label: "valle", capacity: 16384 });
    this.#rule = options.embeddingRule ?? "head";
    this.#includeLanguage = options.includeLanguage ?? true;
    this.#ownsBackend = ownsBackend;
    this.#tensors = valleWeightTensors(config, weights);
    this.#lora = new LoraSlot(backend, config, weights);
  }

  /**
   * Loads a VALL-E file onto the device: a `.sft` / `.safetensors` file (F16, BF16 or F32
   * tensors) or a GGUF written by `deno task quantize` (recognized by its magic or a `.gguf`
   * name), stored as `dtype` asks.
   *
   * @param source A path, URL, bytes, Blob, Response, stream, or an already parsed file.
   * @param options Device, precision, dtype, capacity, defaults; download progress and abort.
   * @returns The model.
   * @throws {WeightsError} Missing or mis-shaped tensors or a bad config, all listed at once.
   * @throws {FormatError} The file is neither safetensors nor a valid GGUF.
   * @throws {OptionError} A dtype that is not "f32", "f16", "q8" or "q4", or one that
   * contradicts `precision`.
   * @throws {GpuError} No WebGPU adapter, or f16 asked for without `shader-f16`.
   *
   * @example
   * ```ts ignore
   * const valle = await ValleModel.load("https://example.com/ar+nar-len-llama-8.sft", {
   *   onProgress: (loaded, total) => console.log(loaded, total),
   * });
   * ```
   */
  static async load(
    source: ValleFileInput,
    options: ValleModelOptions = {},
  ): Promise<ValleModel> {
    checkDtype(options);
    const st = await readValleFile(source, options);
    const { backend, owned } = await resolveBackend(options);
    try {
      const quantized = await quantizeAtLoad(backend, st, options.dtype);
      const { dtype, precision } = options;
      const float = dtype === "f16" || dtype === "f32"
        ? dtype
        : precision === "f32" || precision === "f16"
        ? precision
        : backend.weightDtype;
      if (float === "f16" && !backend.supportsF16) {
        throw new GpuError(`Cannot load f16 weights: ${backend.description} lacks "shader-f16"`);
      }
      const uploaded = await uploadValleWeights(backend, st, float, dtype, quantized);
      return new ValleModel(backend, uploaded, options, owned);
    } catch (e) {
      if (owned) backend.destroy();
      throw e;
    }
  }

  /**
   * The kernel variants this model may dispatch (for its weight types and quantized layouts),
   * for {@linkcode Backend.warm}.
   */
  kernels(): KernelUse[] {
    return valleKernelUses(this.backend, this.#tensors.values());
  }

  /**
   * Compiles every kernel the model may dispatch, ahead of the first generation (WebGPU; the
   * CPU has nothing to compile).
   *
   * @param onProgress Called as compiles finish, with the number done and the total.
   * @throws {GpuError} A kernel that fails to compile, named.
   */
  async warm(onProgress?: (done: number, total: number) => void): Promise<void> {
    this.#life.check();
    await this.backend.warm(this.kernels(), onProgress);
  }

  /**
   * The weights on the device: the loaded ones, or while a LoRA touches quantized tensors, those
   * with dequantized float copies in their place.
   */
  get weights(): ValleWeights {
    return this.#lora.weights;
  }

  /** The LoRA merged into the weights now (source, rank, alpha, strength, bytes held), or null. */
  get lora(): ActiveLora | null {
    return this.#lora.active;
  }

  /**
   * Runs `fn` as one call of the model (calls made meanwhile wait for it) with the model as
   * loaded: its device, config, weights without a LoRA, and the sequence options its passes use.
   * LoRA training (`src/train/`) runs through it, so that no `setLora` or disposal changes the
   * weights under a run.
   *
   * @param what What the call does, for the error ("train a LoRA").
   * @param fn The call.
   * @throws {OptionError} A LoRA is active (remove it with `setLora(null)` first).
   * @throws {GpuError} The model was disposed.
   */
  withBase<T>(what: string, fn: (base: ValleBase) => Promise<T>): Promise<T> {
    return this.#life.run(() => {
      if (this.#lora.active) {
        throw new OptionError(
          `Cannot ${what}: the LoRA "${this.#lora.active.source}" is active, and this runs on ` +
            `the model as loaded; remove it with setLora(null) first`,
        );
      }
      return fn({
        backend: this.backend,
        config: this.config,
        weights: this.#base,
        rule: this.#rule,
        includeLanguage: this.#includeLanguage,
      });
    });
  }

  /**
   * Merges a LoRA (e-c-k-e-r/vall-e `lora.sft`) into the weights on the device, replacing the one
   * merged before, or removes it (`null`). W += strength · alpha / rank · B · A in f32, stored in
   * the weight precision; embedding tables saved with the LoRA replace the base's (blended by
   * strength). The base tensors it touches are kept as device copies while it is active, so
   * removing or swapping it restores the base bit for bit. Runs after the calls made before it.
   *
   * @param source A `.sft` file (path, URL, bytes, …, or parsed), a LoRA read by
   * {@linkcode ValleModel.readLora}, or null to remove the active one.
   * @param options `strength` (default 1; 0 leaves the base) and file reading options.
   * @returns What is merged now.
   * @throws {LoraError} The file (or a LoRA read by another model) does not fit this model (all
   * problems at once, each naming the tensor and the shapes); the model is left as it was.
   * @throws {OptionError} A strength outside [-10, 10].
   *
   * @example
   * ```ts ignore
   * await valle.setLora("loras/ckpt/lora-glados-r128-a128/lora.sft", { strength: 0.8 });
   * await valle.setLora(null); // the base model again
   * ```
   */
  setLora(
    source: SafetensorsSource | Safetensors | ValleLora | null,
    options: LoraOptions = {},
  ): Promise<ActiveLora | null> {
    const strength = options.strength ?? 1;
    try {
      checkRanges("apply a LoRA", { strength }, { strength: LORA_STRENGTH });
    } catch (e) {
      return Promise.reject(e);
    }
    const read = source === null || isValleLora(source) ? source : this.readLora(source, options);
    // Read before queueing (a download does not hold up generation); a refused call still
    // observes a failed read.
    if (read instanceof Promise) read.catch(() => {});
    return this.#life.run(async () => {
      const lora = await read;
      await this.#lora.set(this.#rec, lora, strength);
      await this.backend.fence();
      return this.#lora.active;
    });
  }

  /**
   * Reads a LoRA file and checks it against this model, without applying it (to apply it later,
   * or several times at different strengths, without reading it again).
   *
   * @param source A `.sft` file (path, URL, bytes, …) or a parsed one.
   * @param options File reading options.
   * @returns The checked LoRA.
   * @throws {LoraError} The file does not fit this model.
   *
   * @example
   * ```ts ignore
   * const glados = await valle.readLora("lora.sft");
   * await valle.setLora(glados, { strength: 0.5 });
   * ```
   */
  async readLora(
    source: SafetensorsSource | Safetensors,
    options: ReadSafetensorsOptions = {},
  ): Promise<ValleLora> {
    const st = source instanceof Safetensors ? source : await readSafetensors(source, options);
    const shapes = new Map([...this.#tensors].map(([key, t]) => [key, t.shape]));
    return parseValleLora(st, shapes);
  }

  /**
   * The logits of one forward pass, for debugging voices and checking against the original: the
   * rows the mode reads (the last position for AR/len/STT, every response frame for NAR and
   * NAR-len) through the mode's head, optionally combined with the null-input pass by CFG.
   *
   * @param request Mode, conditioning, response segment, optional CFG.
   * @returns Row-major logits and their shape (and the CFG statistics).
   * @throws {OptionError} Ids out of range, a level or mode the model lacks.
   *
   * @example
   * ```ts ignore
   * const { logits, rows, columns } = await valle.logits({
   *   mode: "nar", level: 3, phonemes, language: 0, prompt, response: codes,
   * });
   * ```
   */
  logits(request: LogitsRequest): Promise<LogitsResult> {
    return this.#life.run(async () => {
      const seq = this.#assemble(request);
      const nullSeq = request.cfg
        ? this.#assemble({ ...request, phonemes: [1, 2], prompt: null })
        : undefined;
      const ctx = this.#context(Math.max(seq.length, nullSeq?.length ?? 0));
      const { state, rec, backend } = ctx;
      const columns = this.weights.heads[seq.head].weight.shape[0];
      const out = logitRows(state.logits, 0, seq.readLength, columns);
      uploadSequence(backend, state, "cond", seq);
      recordPass(rec, ctx.model, state, "cond", seq, out);
      if (nullSeq && request.cfg) {
        const nullOut = logitRows(state.nullLogits, 0, nullSeq.readLength, columns);
        uploadSequence(backend, state, "null", nullSeq);
        recordPass(rec, ctx.model, state, "null", nullSeq, nullOut);
        cfg(rec, out, nullOut, state.cfgStats, request.cfg);
      }
      rec.submit();
      const [bytes, stats] = await readBytes(backend, [out, state.cfgStats]);
      const s = new Float32Array(stats);
      return {
        logits: new Float32Array(bytes),
        rows: seq.readLength,
        columns,
        cfg: request.cfg
          ? {
            stdCond: s[CFG_STAT.stdCond],
            stdGuided: s[CFG_STAT.stdGuided],
            factor: s[CFG_STAT.factor],
          }
          : undefined,
      };
    });
  }

  /**
   * The assembled input of one pass: position ids, segment kinds and the embeddings fed to the
   * first layer (sums of table rows, `sep` between segments).
   *
   * @example
   * ```ts ignore
   * const { positions, kinds, embeddings } = await valle.inputs({ mode: "len", phonemes, lengthDigits: [0, 4] });
   * ```
   */
  inputs(request: LogitsRequest): Promise<InputsResult> {
    return this.#life.run(async () => {
      const seq = this.#assemble(request);
      const { backend, state, rec } = this.#context(seq.length);
      uploadSequence(backend, state, "cond", seq);
      const x = rows(state.x, 0, seq.length);
      embeddingSum(rec, x, rows(state.ids, 0, seq.length), this.weights.embeddings);
      rec.submit();
      const [bytes] = await readBytes(backend, [x]);
      return {
        positions: Int32Array.from(seq.positions),
        kinds: Int32Array.from(seq.kinds),
        embeddings: new Float32Array(bytes),
      };
    });
  }

  /**
   * AR level 0 with the KV cache: tokens are sampled on the GPU until the stop token. Progress
   * comes after each stop check; an abort takes effect there.
   *
   * @example
   * ```ts ignore
   * const { tokens } = await valle.generateAr({ phonemes, prompt, sampler: { temperature: 1 } });
   * ```
   */
  generateAr(request: ArRequest): Promise<ArResult> {
    return this.#life.run(() => this.#ar(request));
  }

  /**
   * NAR levels above the given ones, all frames per pass. Progress (phase "nar") comes as each
   * level finishes; an abort takes effect there.
   *
   * @returns Codes (frames × (maxLevel + 1)), the given levels included.
   *
   * @example
   * ```ts ignore
   * const codes = await valle.generateNar({ phonemes, prompt, codes: { data: level0, frames, levels: 1 } });
   * ```
   */
  generateNar(request: NarRequest): Promise<GeneratedCodes> {
    return this.#life.run(() => {
      const { codes } = request;
      const maxLevel = request.maxLevel ?? this.config.nLevels - 1;
      positiveInt("frames", codes.frames);
      if (!(codes.levels >= 1 && maxLevel >= codes.levels - 1 && maxLevel < this.config.nLevels)) {
        throw new OptionError(
          `Cannot run NAR levels: ${codes.levels} given levels and maxLevel ${maxLevel}, expected ` +
            `1..${this.config.nLevels} levels and maxLevel below ${this.config.nLevels}`,
        );
      }
      return this.#nar(request, codes, maxLevel, request.cfg);
    });
  }

  /**
   * Duration prediction: the number of frames (75 per second) the model expects.
   *
   * @example
   * ```ts ignore
   * const { frames } = await valle.predictDuration({ phonemes, prompt });
   * ```
   */
  predictDuration(request: ValleConditioning): Promise<Duration> {
    return this.#life.run(() => {
      const conditioning = this.#conditioning(request);
      const seq = this.#assemble({ ...request, mode: "len" }, DURATION_FRAMES);
      return predictDuration(this.#context(seq.length), conditioning);
    });
  }

  /**
   * NAR-len demasking of level 0 for a given number of frames. Progress (phase "level0") comes as
   * each step finishes; an abort takes effect there.
   *
   * @example
   * ```ts ignore
   * const { tokens } = await valle.generateNarLen({ phonemes, prompt, frames: 300, steps: 25 });
   * ```
   */
  generateNarLen(request: NarLenRequest): Promise<NarLenResult> {
    return this.#life.run(() => this.#narLen(request));
  }

  /**
   * Speech-to-text: phoneme ids (without `<bos>`/`</eos>`) from codes.
   *
   * @example
   * ```ts ignore
   * const { phonemes } = await valle.transcribe({ codes, language: 0 });
   * ```
   */
  transcribe(request: SttRequest): Promise<{ phonemes: Int32Array; stopped: boolean }> {
    return this.#life.run(() => {
      const maxSteps = positiveInt(
        "maxSteps",
        request.maxSteps ?? Math.max(1, Math.ceil((request.codes.frames / 75) * 20)),
      );
      const run = {
        codes: request.codes,
        language: request.language,
        includeLanguage: request.includeLanguage ?? this.#includeLanguage,
        maxSteps,
        sampler: resolveSamplerOptions({ temperature: 0, ...request.sampler }),
        seed: request.seed ?? 0,
        checkEvery: positiveInt("checkEvery", request.checkEvery ?? 32),
      };
      const seq = assembleSequence(this.config, this.weights.layout, {
        mode: "stt",
        phonemes: [],
        response: run.codes,
        language: run.language,
        includeLanguage: run.includeLanguage,
        responseFrames: 1 + maxSteps,
      });
      return transcribe(this.#context(seq.length), run);
    });
  }

  /**
   * The whole TTS pipeline: duration → NAR-len → NAR levels, or AR → NAR levels. With a
   * `prefix`, level 0 continues the previous utterance and the result holds the new frames only.
   * Progress comes per phase ("duration", "level0", "nar"), each from step 0 to its `steps`.
   *
   * @returns Codes for all RVQ levels, frame-major.
   * @throws {OptionError} Bad ids, codes or settings.
   * @throws The signal's reason when `signal` aborts the call.
   *
   * @example
   * ```ts ignore
   * const { codes } = await valle.generate({ phonemes, language: 0, prompt });
   * const next = await valle.generate({
   *   phonemes: nextPhonemes, language: 0, prompt,
   *   prefix: { phonemes, codes },
   *   onProgress: ({ phase, step, steps }) => console.log(phase, step, steps),
   *   signal: AbortSignal.timeout(60_000),
   * });
   * ```
   */
  generate(request: GenerateRequest): Promise<GenerateResult> {
    return this.#life.run(async () => {
      // Every stage's settings are checked before any of them runs.
      for (const stage of [request.ar, request.nar, request.narLen]) {
        resolveSamplerOptions(stage?.sampler);
      }
      narLenTemperature(request.narLen?.temperature);
      const modality = request.modality ?? "auto";
      const narLen = modality === "nar-len" ||
        (modality === "auto" && this.config.hasNarLen && this.config.name !== "ar+nar");
      const nar = request.nar ?? {};
      if (!narLen) {
        const ar = await this.#ar({ ...request, ...request.ar });
        const frames = ar.tokens.length;
        if (frames === 0) {
          const empty = { data: new Int32Array(0), frames: 0, levels: this.config.nLevels };
          return { codes: empty, modality: "ar+nar" };
        }
        const level0 = { data: ar.tokens, frames, levels: 1 };
        const codes = await this.#nar({ ...request, ...nar }, level0, nar.maxLevel, nar.cfg);
        return { codes, modality: "ar+nar" };
      }
      // The duration and the NAR levels read the plain phonemes (no rolling context).
      const conditioning = this.#conditioning(request);
      const lenSeq = this.#assemble({ ...request, mode: "len" }, DURATION_FRAMES);
      const duration = await predictDuration(
        this.#context(lenSeq.length),
        conditioning,
        request,
      );
      const padded = Math.trunc(
        Math.max(duration.frames, request.minFrames ?? 75) *
          (request.durationPadding ?? 1.05),
      );
      const frames = Math.max(1, Math.min(request.maxFrames ?? 500, padded));
      const settings = request.narLen ?? {};
      const { tokens } = await this.#narLen({ ...request, ...settings, frames });
      // As forward_nar after forward_nar_masked: the NAR levels get the strength the caller asked
      // for, without NAR-len's 2.5 floor (none asked: no CFG), and rescale 0.7 unless given.
      const asked = settings.cfg?.strength;
      const guidance = nar.cfg ??
        (asked === undefined
          ? undefined
          : { strength: asked, rescale: settings.cfg?.rescale ?? 0.7 });
      const level0 = { data: tokens, frames, levels: 1 };
      const codes = await this.#nar({ ...request, ...nar }, level0, nar.maxLevel, guidance);
      return { codes, modality: "nar-len", duration };
    });
  }

  /**
   * The whole pipeline for several rows (pieces of text) at once, each stage one batch: the
   * duration digits and AR level 0 decode every live row per step in one pass (a row that has
   * stopped leaves the batch at the next stop check), NAR-len and the NAR levels run the rows
   * side by side in one pass. Each row gets what {@linkcode ValleModel.generate} gives for it
   * alone with `seed` in every stage (bit for bit, except that AR steps of more than 4 live rows
   * use GEMMs whose rounding can resolve a near-tie differently). The run state holds every row's
   * sequence at once (AR: its prompt, phonemes and `maxSteps` frames): memory grows with the rows.
   * Progress reports `running`, the rows still decoding, in the duration and AR phases.
   *
   * @returns One result per row, in order.
   * @throws {OptionError} No rows, or settings {@linkcode ValleModel.generate} refuses.
   *
   * @example
   * ```ts ignore
   * const [a, b] = await valle.generateBatch({
   *   rows: [{ phonemes, prompt, seed: 1 }, { phonemes: other, prompt, seed: 2 }],
   *   modality: "ar+nar",
   * });
   * ```
   */
  generateBatch(request: GenerateBatchRequest): Promise<GenerateResult[]> {
    return this.#life.run(() =>
      generateBatch({
        parts: { config: this.config, weights: this.weights },
        context: (positions) => this.#context(positions),
        conditioning: (row) => this.#conditioning(row),
        prefersNarLen: this.config.hasNarLen && this.config.name !== "ar+nar",
      }, request)
    );
  }

  /**
   * Frees the weights, the run state, the recorder's parameters and the device's pooled buffers
   * no call is using, or the whole device when the model requested it. Calls already made finish
   * first; later calls fail with a `GpuError`.
   *
   * @returns Resolves once everything is freed (at once when no call is running).
   */
  dispose(): Promise<void> {
    return this.#life.dispose(() => {
      destroyRunState(this.#state);
      this.#lora.destroy();
      destroyValleWeights(this.#base);
      this.#rec.destroy();
      if (this.#ownsBackend) this.backend.destroy();
      else this.backend.trim();
    });
  }

  async #ar(request: ArRequest): Promise<ArResult> {
    const maxSteps = positiveInt("maxSteps", request.maxSteps ?? 500);
    const prefix = this.#prefix(request);
    const seq = this.#assemble(
      { ...request, phonemes: prefix.phonemes, mode: "ar" },
      prefix.codes.length + maxSteps,
    );
    const out = await decode(this.#context(seq.length), {
      seq,
      initial: prefix.codes,
      maxSteps,
      stopToken: this.config.nAudio,
      sampler: resolveSamplerOptions(request.sampler),
      lengthPenaltyToken: this.config.nAudio,
      seed: request.seed ?? 0,
      stream: STREAM.ar,
      checkEvery: positiveInt("checkEvery", request.checkEvery ?? 32),
      boundary: phaseBoundary(request, "level0", maxSteps),
    });
    const end = out.stoppedAt >= 0 ? out.stoppedAt : out.sampled.length;
    return { tokens: out.sampled.slice(0, end), sampled: out.sampled, stopped: out.stoppedAt >= 0 };
  }

  async #narLen(request: NarLenRequest): Promise<NarLenResult> {
    const frames = positiveInt("frames", request.frames);
    const steps = positiveInt("steps", request.steps ?? 25);
    const temperature = narLenTemperature(request.temperature);
    const prefix = this.#prefix(request);
    const { language, prompt, embeddingRule, includeLanguage } = request;
    const seq = this.#assemble(
      {
        phonemes: prefix.phonemes,
        language,
        prompt,
        embeddingRule,
        includeLanguage,
        mode: "nar-len",
      },
      prefix.codes.length + frames,
    );
    const ctx = this.#context(seq.length);
    return await runNarLen(ctx, {
      conditioning: this.#conditioning({ ...request, phonemes: prefix.phonemes }),
      frames,
      steps,
      temperature,
      annealed: request.annealed ?? true,
      cfg: {
        strength: Math.max(request.cfg?.strength ?? 2.5, 2.5),
        rescale: request.cfg?.rescale ?? 0.75,
      },
      remask: request.remask ?? false,
      maskedOnly: request.maskedOnly ?? false,
      sampler: resolveSamplerOptions(request.sampler),
      seed: request.seed ?? 0,
      trace: request.trace ?? false,
      prefix: prefix.codes,
      boundary: phaseBoundary(request, "level0", steps),
    });
  }

  /** NAR levels above the given ones, on the given frames; `maxLevel` is clamped to the model. */
  async #nar(
    request: ValleConditioning & SamplingRequest & ProgressOptions,
    given: Codes,
    maxLevel: number | undefined,
    guidance: CfgOptions | undefined,
  ): Promise<GeneratedCodes> {
    const { frames } = given;
    const top = Math.min(maxLevel ?? this.config.nLevels - 1, this.config.nLevels - 1);
    const seq = this.#assemble({ ...request, mode: "nar", level: 1 }, frames);
    const ctx = this.#context(seq.length);
    for (let l = 0; l < given.levels; l++) {
      const level = codeLevel(given, l, this.config.nAudio, "run NAR levels");
      writeTensor(this.backend, tokenRow(ctx.state, l, 0, frames), Uint32Array.from(level));
    }
    return await runNar(ctx, {
      conditioning: this.#conditioning(request),
      frames,
      fromLevel: given.levels,
      toLevel: top,
      sampler: resolveSamplerOptions({ temperature: 0, ...request.sampler }),
      cfg: guidance,
      seed: request.seed ?? 0,
      boundary: phaseBoundary(request, "nar", top - given.levels + 1),
    });
  }

  /**
   * The phonemes and initial level-0 codes of a level-0 run: with a rolling context,
   * `prefix.phonemes[:-1] ++ phonemes[1:]` and the prefix's level 0 (as ar_nar.py's
   * forward_ar and forward_nar_masked build them).
   */
  #prefix(
    request: ValleConditioning & { prefix?: ContextPrefix | null },
  ): { phonemes: ArrayLike<number>; codes: number[] } {
    const prefix = request.prefix;
    if (!prefix) return { phonemes: request.phonemes, codes: [] };
    const codes = prefix.codes;
    if (!(Number.isInteger(codes.frames) && codes.frames >= 0 && codes.levels >= 1)) {
      throw new OptionError(
        `Cannot generate: the prefix has ${codes.frames} frames of ${codes.levels} levels, ` +
          "expected a whole number of frames and at least one level",
      );
    }
    return {
      phonemes: [
        ...Array.from(prefix.phonemes).slice(0, -1),
        ...Array.from(request.phonemes).slice(1),
      ],
      codes: codeLevel(codes, 0, this.config.nAudio, "generate with a prefix"),
    };
  }

  #conditioning(request: ValleConditioning): Conditioning {
    return {
      phonemes: request.phonemes,
      language: request.language,
      prompt: request.prompt,
      rule: request.embeddingRule ?? this.#rule,
      includeLanguage: request.includeLanguage ?? this.#includeLanguage,
    };
  }

  #assemble(request: LogitsRequest, responseFrames?: number): Sequence {
    if (request.teacherForced && request.mode !== "ar") {
      throw new OptionError(`Cannot read teacher-forced logits of a ${request.mode} pass: AR only`);
    }
    const response = request.response;
    const codes: Codes | null | undefined = response && !("frames" in response)
      ? { data: response, frames: response.length, levels: 1 }
      : response as Codes | null | undefined;
    const spec: SequenceSpec = {
      ...this.#conditioning(request),
      mode: request.mode,
      level: request.level,
      response: codes,
      lengthDigits: request.lengthDigits,
      responseFrames,
    };
    const seq = assembleSequence(this.config, this.weights.layout, spec);
    if (!request.teacherForced) return seq;
    return { ...seq, readStart: seq.outputStart - 1, readLength: seq.outputLength + 1 };
  }

  /** The loop context, with the run state grown to `positions` if needed (its contents are lost then). */
  #context(positions: number): ValleContext {
    this.#state = ensureCapacity(this.backend, this.config, this.#state, positions);
    return {
      backend: this.backend,
      model: { config: this.config, weights: this.weights },
      state: this.#state,
      rec: this.#rec,
    };
  }
}

/** Level `level` of codes, each checked to be a code id 0..nAudio-1. */
function codeLevel(codes: Codes, level: number, nAudio: number, action: string): number[] {
  return Array.from({ length: codes.frames }, (_, t) => {
    const c = codes.data[t * codes.levels + level];
    if (!(Number.isInteger(c) && c >= 0 && c < nAudio)) {
      throw new OptionError(
        `Cannot ${action}: code [${t}, ${level}] is ${c}, expected 0..${nAudio - 1}`,
      );
    }
    return c;
  });
}

function isValleLora(source: SafetensorsSource | Safetensors | ValleLora): source is ValleLora {
  return typeof source === "object" && "factors" in source && "replacements" in source;
}
