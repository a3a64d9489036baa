/**
 * The product: {@linkcode Valle} holds the GPU, the VALL-E model, EnCodec (to hear reference
 * voices and, optionally, to speak) and Vocos (to speak), and turns text into speech in a voice,
 * piece by piece (sentences or lines), with optional rolling context, streaming, progress and
 * cancellation. {@linkcode synthesize} is the one-call form.
 *
 * Flow per piece (upstream `TTS.inference`): text → phonemes → tokens; reference clips → EnCodec
 * codes (concatenated, trimmed/repeated); VALL-E → codes (frames × 8); Vocos or EnCodec → 24 kHz.
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend, Precision } from "../backends/backend.ts";
import { type BackendChoice, checkBackendSource, resolveBackend } from "../backends/select.ts";
import { checkRanges } from "../_options.ts";
import { OptionError, WeightsError } from "../errors.ts";
import type { FileCache } from "../io/cache.ts";
import { parseSafetensors } from "../io/safetensors.ts";
import { readAllBytes } from "../io/source.ts";
import type { EncodecConfigJson } from "../models/encodec/config.ts";
import { Encodec } from "../models/encodec/encodec.ts";
import type { Codes, EmbeddingRule, GeneratedCodes } from "../models/valle/inputs.ts";
import { type GenerateResult, ValleModel } from "../models/valle/model.ts";
import { type ActiveLora, LORA_STRENGTH } from "../models/valle/adapter.ts";
import type { ValleLora } from "../models/valle/lora.ts";
import type { SamplerOptions } from "../models/valle/sampler.ts";
import { checkDtype, type ValleDtype } from "../models/valle/quant_policy.ts";
import type { VocosConfigJson } from "../models/vocos/config.ts";
import { Lifetime } from "../models/_lifetime.ts";
import { Vocos } from "../models/vocos/vocos.ts";
import { type TrainedVoice, trainVoice, type TrainVoiceOptions } from "../train/voice.ts";
import type { TrainingClip } from "../train/utterance.ts";
import type { Phonemizer } from "../text/phonemizer.ts";
import { prepareText } from "../text/prepare.ts";
import { batchGroups, defaultBatchSize } from "./batch_size.ts";
import { autoModality } from "./modality.ts";
import { defaultDtype } from "./dtype.ts";
import { isGguf } from "../io/gguf.ts";
import { joinPrompt, toAudioCodes, toModelCodes } from "./codes.ts";
import {
  type ResolvedSynthesizeOptions,
  resolveSynthesizeOptions,
  SYNTHESIS_RANGES,
  type SynthesisProgress,
  type SynthesizeOptions,
} from "./options.ts";
import { type AudioInput, readReference } from "./reference.ts";
import {
  DEFAULT_FILES,
  type FileSource,
  loadFile,
  type LoadFileOptions,
  remoteUrl,
  sourceName,
} from "./sources.ts";
import { joinPieces, Speech, type SpeechPiece } from "./speech.ts";

/** EnCodec's frame rate at 24 kHz: VALL-E counts durations in these frames. */
const FRAMES_PER_SECOND = 75;

/** Options of {@linkcode Valle.load}. */
export interface ValleOptions {
  /**
   * The VALL-E weights: `.sft`, or a GGUF from `deno task quantize` (its magic tells). Default:
   * ecker/vall-e `ar+nar-len-llama-8`, downloaded once.
   */
  model?: FileSource;
  /** EnCodec weights (`model.safetensors` or `pytorch_model.bin`). Default: facebook/encodec_24khz. */
  codec?: FileSource;
  /** EnCodec's `config.json` (object or file). Default: the 24 kHz model's configuration. */
  codecConfig?: EncodecConfigJson | FileSource;
  /** Vocos weights. Default: charactr/vocos-encodec-24khz `pytorch_model.bin`. Loaded on first use. */
  vocoder?: FileSource;
  /** Vocos configuration (object or JSON file). Default: the released model's. */
  vocoderConfig?: VocosConfigJson | FileSource;
  /**
   * Where to compute: `"auto"` (default: WebGPU on a hardware GPU, else the CPU backend),
   * `"webgpu"`, `"cpu"`, or a backend you created (you keep ownership of it).
   */
  backend?: Backend | BackendChoice;
  /** Threads of the CPU backend. Default: the hardware concurrency. */
  threads?: number;
  /** VALL-E weight precision: `"auto"` (f16 when available), `"f16"` or `"f32"`. */
  precision?: Precision;
  /**
   * VALL-E weight storage: `"f32"`, `"f16"`, or quantized at load, `"q8"` (~244 MB for the
   * released model) or `"q4"` (~149 MB); see `src/quant/FORMATS.md`. Default: q8 on the CPU
   * backend (the README's Quantized weights says why), else f16 where available (as `precision`);
   * what a GGUF `model` stores; float when `precision` is "f16" or "f32". The backend line of
   * the progress reports names a default q8.
   */
  dtype?: ValleDtype;
  /** Where downloads are cached; `false` to download every time. Default: the platform cache. */
  cache?: FileCache | false;
  /** The phonemizer. Default: espeak-ng (bundled); `ipaPassthrough` for IPA input. */
  phonemizer?: Phonemizer;
  /** NAR embedding-sum rule: `"head"` (current upstream, default) or `"dec2024"` (training). */
  embeddingRule?: EmbeddingRule;
  /** Insert the language token (upstream HEAD does; see the spec's corrections). Default true. */
  includeLanguage?: boolean;
  /** Progress of downloads and loading. */
  onProgress?: (progress: SynthesisProgress) => void;
  /** Cancels loading. */
  signal?: AbortSignal;
  /**
   * A LoRA (upstream `lora.sft`: path, URL or bytes; downloads are cached) merged into the model
   * at load. Change it later with {@linkcode Valle.setLora}.
   */
  lora?: FileSource;
  /** Strength of `lora`, in [-10, 10]. Default 1. */
  loraStrength?: number;
}

/** Options of {@linkcode Valle.setLora}. */
export interface SetLoraOptions {
  /**
   * Multiplies the LoRA's update (and blends its embeddings), in [-10, 10]. Default 1; 0 is the
   * base model.
   */
  strength?: number;
  /** Cancels the download. */
  signal?: AbortSignal;
}

/**
 * VALL-E text-to-speech on the GPU, ready for many calls. Dispose it to free the GPU memory.
 *
 * @example Clone a voice
 * ```ts ignore
 * import { Valle } from "@valle/core";
 * const valle = await Valle.load(); // downloads the released weights once
 * const speech = await valle.synthesize("Hello there. How are you?", {
 *   reference: "voice.wav",
 *   language: "en",
 *   seed: 1,
 * });
 * await Deno.writeFile("out.wav", speech.toWav());
 * await valle.dispose();
 * ```
 */
export class Valle {
  /** Where it computes (WebGPU or the CPU). */
  readonly backend: Backend;
  /** The VALL-E model. */
  readonly model: ValleModel;
  /** EnCodec: encodes reference voices, decodes with `decoder: "encodec"`. */
  readonly encodec: Encodec;
  #options: ValleOptions;
  #vocos?: Promise<Vocos>;
  #ownsBackend: boolean;
  #life = new Lifetime("Valle instance");
  /** Counts LoRA changes: a synthesis fails rather than mix pieces spoken with different ones. */
  #loraChanges = 0;
  /** What `modality: "auto"` runs on this backend (see `autoModality`). */
  #autoModality: "ar+nar" | "nar-len";
  /** Settles once the last `setLora` call so far has (or has not) merged its LoRA. */
  #loraOrder: Promise<unknown> = Promise.resolve();

  private constructor(
    backend: Backend,
    model: ValleModel,
    encodec: Encodec,
    options: ValleOptions,
    ownsBackend: boolean,
    autoModality: "ar+nar" | "nar-len",
  ) {
    this.backend = backend;
    this.model = model;
    this.encodec = encodec;
    this.#options = options;
    this.#ownsBackend = ownsBackend;
    this.#autoModality = autoModality;
  }

  /**
   * Loads (downloading when needed) the model and EnCodec onto the GPU. Vocos loads on first use.
   *
   * @param options Weight sources, device, precision and dtype, cache, phonemizer, progress.
   * @returns A ready instance.
   * @throws {DownloadError} A file could not be downloaded (the message says where to put it).
   * @throws {WeightsError} A file does not hold the expected model.
   * @throws {GpuError} No WebGPU adapter.
   * @throws {LoraError} `lora` does not fit the model.
   * @throws {OptionError} A `loraStrength` outside [-10, 10].
   *
   * @example
   * ```ts ignore
   * const valle = await Valle.load({ model: "./ar+nar-len-llama-8.sft" });
   * ```
   */
  static async load(options: ValleOptions = {}): Promise<Valle> {
    const report = options.onProgress;
    checkBackendSource(options);
    checkDtype(options);
    checkRanges("load a LoRA", { loraStrength: options.loraStrength }, {
      loraStrength: LORA_STRENGTH,
    });
    const [modelBytes, codecBytes, codecConfig, loraBytes] = await Promise.all([
      loadFile(options.model, DEFAULT_FILES.model, fileOptions(options, options.model)),
      loadFile(options.codec, DEFAULT_FILES.codec, fileOptions(options, options.codec)),
      readConfig(options.codecConfig, options.signal),
      options.lora === undefined
        ? undefined
        : loadFile(options.lora, DEFAULT_FILES.model, fileOptions(options, options.lora)),
    ]);
    options.signal?.throwIfAborted();
    const { backend, owned, reason } = await resolveBackend(options);
    const weights = defaultDtype(backend, options, isGguf(modelBytes));
    const loaded: { dispose(): Promise<void> }[] = [];
    try {
      report?.({ phase: "load", file: "model" });
      const model = await ValleModel.load(
        modelBytes,
        {
          source: label(options.model, "model"),
          backend,
          precision: options.precision,
          dtype: weights.dtype,
          embeddingRule: options.embeddingRule,
          includeLanguage: options.includeLanguage,
        },
      );
      loaded.push(model);
      if (loraBytes) {
        report?.({ phase: "load", file: "lora" });
        const lora = await readLora(model, loraBytes, options.lora!);
        await model.setLora(lora, { strength: options.loraStrength });
      }
      report?.({ phase: "load", file: "codec" });
      const encodec = await Encodec.load(backend, codecBytes, {
        config: codecConfig as EncodecConfigJson | undefined,
        label: label(options.codec, "codec"),
      });
      loaded.push(encodec);
      checkPairing(model, encodec, label(options.model, "model"));
      // Every kernel a synthesis dispatches, compiled now and concurrently, not one by one at
      // the first dispatches (WebGPU; nothing to do on the CPU).
      await backend.warm(
        [...model.kernels(), ...encodec.kernels()],
        (step, steps) => report?.({ phase: "compile", step, steps }),
      );
      const auto = autoModality(backend, model);
      report?.({
        phase: "load",
        file: "backend",
        backend: `${backend.description}: ${reason}; ` +
          (weights.reason ? `weights ${weights.dtype}: ${weights.reason}; ` : "") +
          `modality auto → ${auto.modality}: ${auto.reason}`,
      });
      return new Valle(backend, model, encodec, options, owned, auto.modality);
    } catch (e) {
      // A backend the caller keeps must not keep what this failed load put on it.
      await Promise.all(loaded.map((part) => part.dispose()));
      if (owned) backend.destroy();
      throw e;
    }
  }

  /** The LoRA merged into the model now (source, rank, alpha, strength, bytes held), or null. */
  get lora(): ActiveLora | null {
    return this.model.lora;
  }

  /**
   * Merges a LoRA into the model (replacing the one before), or removes it with `null`. The file
   * is read like the model (path, URL or bytes; downloads are cached). The base tensors the LoRA
   * touches are kept as device copies while it is active (for the released model's attention and
   * MLP projections, about 380 MB with f16 weights), so removing or swapping it restores the base
   * exactly, without reading the model again. A synthesis running while the LoRA changes fails
   * with an `OptionError` instead of mixing pieces spoken with different LoRAs. Calls take effect
   * in the order they are made: calls not awaited read (download) their files at the same time,
   * but merge one after another, so the last call's LoRA and strength are the ones left; a
   * refused or aborted call holds up none of the later ones.
   *
   * @param source The LoRA (`lora.sft`), or null for the base model.
   * @param options `strength` (default 1) and `signal`.
   * @returns What is merged now.
   * @throws {LoraError} The file does not fit the model (the model is left as it was).
   * @throws {DownloadError} The file could not be downloaded.
   * @throws {OptionError} A strength outside [-10, 10].
   *
   * @example
   * ```ts ignore
   * await valle.setLora("https://huggingface.co/ecker/vall-e/resolve/main/loras/ckpt/lora-glados-r128-a128/lora.sft");
   * const speech = await valle.synthesize("The cake is a lie.");
   * await valle.setLora(null);
   * ```
   */
  async setLora(
    source: FileSource | null,
    options: SetLoraOptions = {},
  ): Promise<ActiveLora | null> {
    this.#life.check();
    checkRanges("apply a LoRA", { strength: options.strength }, { strength: LORA_STRENGTH });
    // Read (download) at once, beside the calls before; merge only after them, in call order.
    const read = source === null ? Promise.resolve(null) : this.#loadLora(source, options.signal);
    read.catch(() => {}); // observed by the merge, perhaps only after the calls before it
    const merged = this.#loraOrder.then(async () => {
      const lora = await read;
      this.#life.check();
      // Counted only once the file is known to fit: a refused LoRA leaves running syntheses be.
      this.#loraChanges++;
      return await this.model.setLora(lora, { strength: options.strength });
    });
    // A refused or aborted call holds up none of the calls after it.
    this.#loraOrder = merged.catch(() => {});
    return await merged;
  }

  /**
   * Fine-tunes a LoRA on voice clips with their transcripts, on this instance's backend: the
   * clips are encoded and phonemized (codes cached), a tenth held out for the evaluation loss,
   * and a LoRA trained with upstream's training step (`src/train/`). Calls made meanwhile wait
   * for the run. Apply the result with `setLora(result.lora.toFile())`, or save that file.
   *
   * @param clips The clips: audio (path, URL, bytes, Blob or samples) and transcript each.
   * @param options Rank, steps, learning rate, batch size, progress, checkpoints, AbortSignal.
   * @returns The LoRA and which clips were used, held out or skipped (and why).
   * @throws {OptionError} No usable clip, options out of range, or a LoRA active (remove it
   * with `setLora(null)` first: a LoRA trains against the base model).
   *
   * @example
   * ```ts ignore
   * const { lora } = await valle.trainLora([
   *   { name: "one", audio: "one.wav", text: "The first sentence I recorded." },
   *   { name: "two", audio: "two.wav", text: "And here is the second one." },
   * ], { steps: 200, onProgress: (p) => console.log(p.step, p.loss) });
   * await valle.setLora(lora.toFile());
   * ```
   */
  async trainLora(
    clips: readonly TrainingClip[],
    options: TrainVoiceOptions = {},
  ): Promise<TrainedVoice> {
    this.#life.check();
    return await trainVoice(this, this.model, clips, {
      phonemizer: this.#options.phonemizer,
      cache: this.#options.cache,
      ...options,
    });
  }

  /** A LoRA file loaded like the model's (cached downloads) and checked against the model. */
  async #loadLora(source: FileSource, signal?: AbortSignal): Promise<ValleLora> {
    const bytes = await loadFile(
      source,
      DEFAULT_FILES.model,
      fileOptions(this.#options, source, signal),
    );
    return await readLora(this.model, bytes, source);
  }

  /**
   * Encodes reference clips into the prompt codes the model conditions on: each clip read as
   * mono 24 kHz, encoded with EnCodec at 6 kbps, the codes concatenated, and trimmed or repeated
   * to `promptSeconds` when it is > 0. Reuse the result as `prompt` to skip encoding next time.
   *
   * @param reference One clip or several.
   * @param promptSeconds Trim/repeat length in seconds; 0 keeps everything.
   * @param signal Cancels reading.
   * @param onWarning Told what was read leniently (a WAV file cut short). Default: `console.warn`.
   * @returns Frame-major codes with the model's RVQ levels.
   * @throws {OptionError} No clip, or promptSeconds out of range.
   * @throws {GpuError} This instance was disposed.
   *
   * @example
   * ```ts ignore
   * const voice = await valle.encodeReference(["a.wav", "b.wav"], 6);
   * await valle.synthesize("Hi.", { prompt: voice });
   * ```
   */
  async encodeReference(
    reference: AudioInput | readonly AudioInput[],
    promptSeconds = 0,
    signal?: AbortSignal,
    onWarning?: (message: string) => void,
  ): Promise<GeneratedCodes> {
    this.#life.check();
    checkRanges("encode a voice", { promptSeconds }, {
      promptSeconds: SYNTHESIS_RANGES.promptSeconds,
    });
    const clips = Array.isArray(reference) ? reference : [reference as AudioInput];
    if (clips.length === 0) throw new OptionError("Cannot encode a voice: no reference clip given");
    const rate = this.encodec.config.sampleRate;
    const levels = this.model.config.nLevels;
    const coded: Codes[] = [];
    for (const clip of clips) {
      const samples = await readReference(clip, rate, signal, onWarning);
      signal?.throwIfAborted();
      const codes = await this.encodec.encode(samples, rate, { nQ: levels });
      coded.push(toModelCodes(codes, levels));
    }
    return joinPrompt(coded, Math.round(promptSeconds * FRAMES_PER_SECOND));
  }

  /**
   * Speaks `text`, one piece after another, and returns the whole utterance.
   *
   * @param text What to say.
   * @param options Voice, languages, sampling, decoder, seed, progress, cancellation.
   * @returns The audio, with each piece's codes and phonemes.
   * @throws {OptionError} An unsupported language, an option out of range (checked before
   * anything runs), text that phonemizes to nothing.
   * @throws {GpuError} This instance was disposed (also when it is disposed during the call).
   *
   * @example
   * ```ts ignore
   * const speech = await valle.synthesize("Once again, excellent work.", { reference: "me.wav" });
   * ```
   */
  async synthesize(text: string, options: SynthesizeOptions = {}): Promise<Speech> {
    this.#life.check();
    const o = resolveSynthesizeOptions(options);
    const pieces: SpeechPiece[] = [];
    for await (const piece of this.#speak(text, o, false)) pieces.push(piece);
    const rate = pieces[0]?.sampleRate ?? this.encodec.config.sampleRate;
    const samples = joinPieces(pieces.map((p) => p.samples), rate, o.pauseSeconds);
    return new Speech(samples, rate, pieces);
  }

  /**
   * Speaks several texts, each as {@linkcode Valle.synthesize} would (same options, same seed),
   * with the pieces of all of them generated together in batches of `batchSize`. Up to 4 rows per
   * batch each piece is bit for bit what it is alone; with more, the AR step's projections run as
   * GEMMs whose rounding (~1e-6 of the logits) can resolve a near-tie differently.
   *
   * @param texts What to say, one utterance each.
   * @param options As for {@linkcode Valle.synthesize}.
   * @returns One utterance per text, in order.
   * @throws {OptionError} No texts, or what {@linkcode Valle.synthesize} throws.
   *
   * @example
   * ```ts ignore
   * const [hello, bye] = await valle.synthesizeBatch(["Hello.", "Goodbye."], { batchSize: 2 });
   * ```
   */
  async synthesizeBatch(
    texts: readonly string[],
    options: SynthesizeOptions = {},
  ): Promise<Speech[]> {
    this.#life.check();
    const o = resolveSynthesizeOptions(options);
    if (texts.length === 0) {
      throw new OptionError("Cannot synthesize a batch: no texts given, expected at least one");
    }
    const pieces: SpeechPiece[][] = texts.map(() => []);
    for await (const { text, piece } of this.#speakAll(texts, o, false)) {
      pieces[text].push(piece);
    }
    const rate = this.encodec.config.sampleRate;
    return pieces.map((p) =>
      new Speech(joinPieces(p.map((x) => x.samples), rate, o.pauseSeconds), rate, p)
    );
  }

  /**
   * Speaks `text` piece by piece, yielding each piece's audio as soon as it is decoded: the
   * first sentence can play while the next is generated. Stop early with `break` or the signal.
   *
   * @param text What to say.
   * @param options As for {@linkcode Valle.synthesize}.
   * @returns The pieces, in order.
   *
   * @example
   * ```ts ignore
   * for await (const piece of valle.stream(longText, { reference: "me.wav" })) {
   *   play(piece.samples, piece.sampleRate);
   * }
   * ```
   */
  stream(text: string, options: SynthesizeOptions = {}): AsyncGenerator<SpeechPiece> {
    this.#life.check();
    return this.#speak(text, resolveSynthesizeOptions(options), true);
  }

  /**
   * Frees the GPU memory of every model: their weights, run states and scratch buffers, and the
   * device's pooled buffers, so that `backend.memory` is back where it was before loading; or the
   * whole device, when this instance requested it. Model calls already running finish first; a
   * synthesis in progress then fails with a `GpuError`, as does every later call.
   *
   * @returns Resolves once everything is freed. Without a call running, VALL-E and EnCodec are
   * freed before `dispose()` returns and Vocos a moment later, so callers that do not await it
   * keep working.
   *
   * @example
   * ```ts ignore
   * await valle.dispose();
   * ```
   */
  dispose(): Promise<void> {
    return this.#life.dispose(async () => {
      const vocos = this.#vocos?.then((v) => v.dispose(), () => {});
      await Promise.all([this.model.dispose(), this.encodec.dispose(), vocos]);
      if (this.#ownsBackend) this.backend.destroy();
    });
  }

  async *#speak(
    text: string,
    o: ResolvedSynthesizeOptions,
    streaming: boolean,
  ): AsyncGenerator<SpeechPiece> {
    for await (const { piece } of this.#speakAll([text], o, streaming)) yield piece;
  }

  /**
   * The pieces of every text in order, tagged with their text's index. When `streaming`, the first
   * piece is generated alone, so that it comes out first (see {@linkcode batchGroups}).
   */
  async *#speakAll(
    texts: readonly string[],
    o: ResolvedSynthesizeOptions,
    streaming: boolean,
  ): AsyncGenerator<{ text: number; piece: SpeechPiece }> {
    const report = o.onProgress;
    const signal = o.signal;
    report?.({ phase: "phonemize" });
    const prepared = [];
    for (const [index, text] of texts.entries()) {
      const options = {
        language: o.language,
        textLanguage: o.textLanguage,
        split: o.split,
        phonemizer: this.#options.phonemizer,
      };
      prepared.push(
        await prepareText(text, options).catch((e) => {
          // In a batch, say which text: "Cannot prepare text 3 of 5: it is blank …" or "… text 3
          // of 5, piece 2 of 4 (…): …".
          if (texts.length === 1 || !(e instanceof OptionError)) throw e;
          const which = `text ${index + 1} of ${texts.length}`;
          const message = e.message.replace(/^Cannot prepare text:/, `Cannot prepare ${which}:`)
            .replace(/^Cannot prepare piece/, `Cannot prepare ${which}, piece`);
          throw new OptionError(message, { cause: e });
        }),
      );
    }
    signal?.throwIfAborted();
    let prompt = o.prompt ?? null;
    if (o.reference !== undefined) {
      report?.({ phase: "encode-prompt" });
      prompt = await this.encodeReference(o.reference, o.promptSeconds, signal, o.onWarning);
    } else if (prompt && o.promptSeconds > 0) {
      prompt = joinPrompt([prompt], Math.round(o.promptSeconds * FRAMES_PER_SECOND));
    }
    const vocos = o.decoder === "vocos" ? await this.#loadVocos(signal) : undefined;
    const maxFrames = Math.round(o.maxSeconds * FRAMES_PER_SECOND);
    const loraChanges = this.#loraChanges;
    const settings = this.#settings(o, maxFrames);
    // Each piece its own stream: same seed, same audio, alone or in a batch.
    const items = prepared.flatMap((pieces, text) =>
      pieces.map((piece, index) => ({
        text,
        piece,
        index,
        count: pieces.length,
        seed: (o.seed + index) >>> 0,
      }))
    );
    const speechPiece = async (item: typeof items[number], result: GenerateResult) => {
      this.#life.check(); // disposed while generating: say so, not that Vocos was
      signal?.throwIfAborted();
      this.#checkLora(loraChanges);
      report?.({ phase: "decode", piece: item.index, pieces: item.count });
      const samples = await this.#decode(result.codes, vocos);
      const { piece, index, count } = item;
      return {
        text: item.text,
        piece: {
          index,
          count,
          text: piece.text,
          phonemes: piece.phonemes,
          languageId: piece.languageId,
          codes: result.codes,
          modality: result.modality,
          samples,
          sampleRate: this.encodec.config.sampleRate,
        },
      };
    };
    const longest = Math.max(0, ...items.map((i) => i.piece.tokens.length));
    const batchSize = o.contextHistory > 0 ? 1 : o.batchSize ??
      defaultBatchSize(
        this.backend,
        this.model.config,
        (prompt?.frames ?? 0) + longest + 8 + maxFrames,
      );
    const together = (group: typeof items) => {
      const at = { piece: group[0].index, pieces: group[0].count, rows: group.length };
      return this.model.generateBatch({
        ...settings,
        rows: group.map(({ piece, seed }) => ({
          phonemes: piece.tokens,
          language: piece.languageId,
          prompt,
          seed,
        })),
        signal,
        onProgress: (p) =>
          report?.({
            phase: p.phase,
            step: p.step,
            steps: p.steps,
            ...(p.running === undefined ? {} : { running: p.running }),
            ...at,
          }),
      });
    };
    const alone = (item: typeof items[number], prefix?: ReturnType<typeof contextPrefix>) => {
      const { seed } = item;
      const at = { piece: item.index, pieces: item.count };
      return this.model.generate({
        ...settings,
        phonemes: item.piece.tokens,
        language: item.piece.languageId,
        prompt,
        ar: { ...settings.ar, seed },
        narLen: { ...settings.narLen, seed },
        nar: { ...settings.nar, seed },
        prefix,
        signal,
        onProgress: (p) => report?.({ phase: p.phase, step: p.step, steps: p.steps, ...at }),
      });
    };
    // A piece alone (a stream's first, a batch of one) takes the single-row path: the work of
    // `batchSize: 1`. With rolling context every piece is alone and continues the ones before it.
    let history: { tokens: number[]; level0: Int32Array }[] = [];
    for (const group of batchGroups(items, batchSize, streaming)) {
      signal?.throwIfAborted();
      if (group.length > 1) {
        const results = await together(group);
        for (const [i, item] of group.entries()) yield await speechPiece(item, results[i]);
        continue;
      }
      const [item] = group;
      if (item.index === 0) history = [];
      const prefix = o.contextHistory > 0 && history.length > 0
        ? contextPrefix(history.slice(-o.contextHistory))
        : undefined;
      const result = await alone(item, prefix);
      if (o.contextHistory > 0) {
        history.push({ tokens: item.piece.tokens, level0: level0(result.codes) });
      }
      yield await speechPiece(item, result);
    }
  }

  /** The generation settings of every piece (their seeds aside). */
  #settings(o: ResolvedSynthesizeOptions, maxFrames: number) {
    return {
      modality: o.modality === "auto" ? this.#autoModality : o.modality,
      maxFrames,
      ar: { maxSteps: maxFrames, sampler: this.#sampler(o, "ar") },
      narLen: {
        steps: o.steps,
        temperature: o.arTemperature,
        cfg: { strength: o.cfgStrength, rescale: o.cfgRescale },
        sampler: this.#sampler(o, "nar-len"),
      },
      nar: {
        sampler: this.#sampler(o, "nar"),
        // Upstream guides the NAR levels with the strength asked for; 1 (the web UI default) is
        // CFG's identity up to rounding, so its second pass is skipped (strength 0: none).
        cfg: { strength: o.cfgStrength === 1 ? 0 : o.cfgStrength, rescale: o.cfgRescale },
      },
    };
  }

  #checkLora(atStart: number): void {
    if (this.#loraChanges !== atStart) {
      throw new OptionError(
        "Cannot go on speaking: the LoRA changed during this synthesis (setLora was called); " +
          "synthesize again to speak with the new one",
      );
    }
  }

  #sampler(o: ResolvedSynthesizeOptions, stage: "ar" | "nar-len" | "nar"): SamplerOptions {
    const common = { topK: o.topK, topP: o.topP, minP: o.minP, topNSigma: o.topNSigma };
    if (stage === "nar-len") return common;
    const penalties = {
      repetitionPenalty: o.repetitionPenalty,
      repetitionPenaltyDecay: o.repetitionPenaltyDecay,
    };
    if (stage === "nar") return { ...common, ...penalties, temperature: o.narTemperature };
    return {
      ...common,
      ...penalties,
      temperature: o.arTemperature,
      minTemperature: o.minArTemperature,
      lengthPenalty: o.lengthPenalty,
    };
  }

  async #decode(codes: GeneratedCodes, vocos: Vocos | undefined): Promise<Float32Array> {
    if (codes.frames === 0) return new Float32Array(0);
    const audio = toAudioCodes(codes, this.encodec.config.bins);
    return vocos ? await vocos.decode(audio) : await this.encodec.decode(audio);
  }

  #loadVocos(signal?: AbortSignal): Promise<Vocos> {
    this.#life.check();
    this.#vocos ??= (async () => {
      const report = this.#options.onProgress;
      const [bytes, config] = await Promise.all([
        loadFile(
          this.#options.vocoder,
          DEFAULT_FILES.vocoder,
          fileOptions(this.#options, this.#options.vocoder, signal),
        ),
        readConfig(this.#options.vocoderConfig, signal),
      ]);
      report?.({ phase: "load", file: "vocoder" });
      const file = label(this.#options.vocoder, "vocoder");
      const vocos = await Vocos.load(this.backend, bytes, {
        config: config as VocosConfigJson | undefined,
        encodec: this.encodec.config,
        label: file,
      });
      const { perBandwidth } = vocos.codebooks;
      if (!perBandwidth.includes(this.model.config.nLevels)) {
        // Found now, not after minutes of generation, when the codes would not decode.
        await vocos.dispose();
        throw new WeightsError(file, [{
          tensor: "feature_extractor.codebook_weights",
          expected:
            `a bandwidth of ${this.model.config.nLevels} codebooks (the model's RVQ levels)`,
          found: `bandwidths of ${perBandwidth.join(", ")} codebooks`,
        }]);
      }
      try {
        await vocos.warm((step, steps) =>
          report?.({ phase: "compile", file: "vocoder", step, steps })
        );
      } catch (e) {
        await vocos.dispose();
        throw e;
      }
      return vocos;
    })();
    // A failed load is retried on the next call.
    this.#vocos.catch(() => (this.#vocos = undefined));
    return this.#vocos;
  }
}

/**
 * Speaks `text` in one call: loads the models (downloading the released weights once), speaks,
 * and frees the GPU. For several calls, keep a {@linkcode Valle} instead.
 *
 * @param text What to say.
 * @param options Synthesis options and, for loading, weight sources, device and cache.
 * @returns The audio with its codes and phonemes.
 *
 * @example
 * ```ts ignore
 * import { synthesize } from "@valle/core";
 * const speech = await synthesize("Hello!", { reference: "voice.wav", language: "en" });
 * await Deno.writeFile("hello.wav", speech.toWav());
 * ```
 */
export async function synthesize(
  text: string,
  options: SynthesizeOptions & ValleOptions = {},
): Promise<Speech> {
  const resolved = resolveSynthesizeOptions(options); // checked before anything loads
  const valle = await Valle.load(options);
  try {
    return await valle.synthesize(text, resolved);
  } finally {
    await valle.dispose();
  }
}

/** Upstream's rolling-context prefix: the history's phonemes and level-0 codes, concatenated. */
function contextPrefix(history: readonly { tokens: number[]; level0: Int32Array }[]) {
  const phonemes = history.flatMap((h) => h.tokens);
  const frames = history.reduce((n, h) => n + h.level0.length, 0);
  const data = new Int32Array(frames);
  let at = 0;
  for (const h of history) {
    data.set(h.level0, at);
    at += h.level0.length;
  }
  return { phonemes, codes: { data, frames, levels: 1 } };
}

/** Level 0 of frame-major codes. */
function level0(codes: GeneratedCodes): Int32Array {
  return Int32Array.from({ length: codes.frames }, (_, t) => codes.data[t * codes.levels]);
}

/** A config given as an object, or a JSON file to read. */
async function readConfig(
  source: object | FileSource | undefined,
  signal?: AbortSignal,
): Promise<object | undefined> {
  if (source === undefined) return undefined;
  const isFile = typeof source === "string" || source instanceof URL || source instanceof Blob ||
    source instanceof Uint8Array || source instanceof ArrayBuffer;
  if (!isFile) return source;
  const name = sourceName(source, "config");
  const text = new TextDecoder().decode(await readAllBytes(source, { label: name, signal }));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new OptionError(`Cannot read the configuration ${name}: it is not JSON (${e})`);
  }
}

/**
 * The model speaks in the codec's codes: its audio vocabulary must be the codec's codebook size
 * (else its tokens would index other codewords, or be cut to 0), its levels at most the codebooks.
 */
function checkPairing(model: ValleModel, encodec: Encodec, file: string): void {
  const { bins, numQuantizers } = encodec.config;
  const problems = [];
  if (model.config.nAudio !== bins) {
    problems.push({
      tensor: "proms_emb.embeddings.0.weight",
      expected: `${bins} audio tokens (the codec's codebook size)`,
      found: `${model.config.nAudio}`,
    });
  }
  if (model.config.nLevels > numQuantizers) {
    problems.push({
      tensor: "proms_emb.embeddings",
      expected: `at most ${numQuantizers} RVQ levels (the codec's codebooks)`,
      found: `${model.config.nLevels}`,
    });
  }
  if (problems.length) throw new WeightsError(file, problems);
}

/** A LoRA file's bytes, parsed and checked against `model` (named after `source` in errors). */
function readLora(model: ValleModel, bytes: Uint8Array, source: FileSource): Promise<ValleLora> {
  return model.readLora(parseSafetensors(bytes, { source: sourceName(source, "<lora bytes>") }));
}

/** A file's name for messages, or the default file's URL. */
function label(source: FileSource | undefined, fallback: keyof typeof DEFAULT_FILES): string {
  return source === undefined
    ? DEFAULT_FILES[fallback].url
    : sourceName(source, `<${fallback} bytes>`);
}

/**
 * Options for loading one weight file: its bytes are reported as the `"download"` phase when it
 * comes from the network (the released file or an http(s) URL), as `"load"` when it is read from
 * a path, a file/blob/data URL, bytes or a Blob.
 */
function fileOptions(
  options: ValleOptions,
  source: FileSource | undefined,
  signal: AbortSignal | undefined = options.signal,
): LoadFileOptions {
  const phase = source === undefined || remoteUrl(source) ? "download" : "load";
  return {
    cache: options.cache,
    signal,
    onProgress: (p) =>
      options.onProgress?.({ phase, file: p.file, step: p.loaded, steps: p.total }),
  };
}
