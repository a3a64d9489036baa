/**
 * {@linkcode Encodec}: the EnCodec neural audio codec on the GPU. `encode` turns audio into
 * residual-VQ codes, `decode` turns codes back into audio, both in WGSL kernels; the latent
 * steps are exposed too (`encodeLatent`, `quantize`, `dequantize`, `decodeLatent`).
 *
 * Long signals are processed in chunks of frames so that no buffer outgrows the device's binding
 * limit: the convolutional stages get enough left context (computed from the layer program) for
 * every kept value to be computed exactly as without chunking, and the LSTMs run sequentially
 * across chunks with their state carried, so chunked results equal unchunked ones bit for bit.
 *
 * mirrors encodec/model.py: EncodecModel.encode/decode (24 kHz: no normalization, one segment)
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError, ValleError } from "../../errors.ts";
import { checkFiniteSamples } from "../../audio/finite.ts";
import type { KernelUse } from "../../backends/backend.ts";
import { kernelUses, type OpKernel } from "../../ops/_kernels.ts";
import { ACTIVATION_KERNELS } from "../../ops/activation.ts";
import { CONV1D_KERNELS } from "../../ops/conv1d.ts";
import { ELEMENTWISE_KERNELS } from "../../ops/elementwise.ts";
import { EMBEDDING_KERNELS } from "../../ops/embedding.ts";
import { LSTM_KERNELS } from "../../ops/lstm.ts";
import { RVQ_KERNELS } from "../../ops/rvq.ts";
import type { Profiler, Recorder, Tensor } from "../../backends/backend.ts";
import {
  createTensor,
  destroyTensors,
  readBytes,
  rows,
  writeTensor,
} from "../../backends/tensor.ts";
import type { Backend } from "../../backends/backend.ts";
import { openWeights, type WeightsInput } from "../../io/weights.ts";
import { rvqEncode } from "../../ops/rvq.ts";
import { resample } from "../../audio/resample.ts";
import { Lifetime } from "../_lifetime.ts";
import {
  type AudioCodes,
  checkCodes,
  chunkFrames,
  recordCodewordSum,
  Workspace,
} from "../_codec.ts";
import {
  codebooksForBandwidth,
  type EncodecConfig,
  type EncodecConfigJson,
  parseEncodecConfig,
} from "./config.ts";
import {
  inputSpan,
  type LayerTrace,
  type LstmState,
  lstmState,
  recordLstm,
  recordStage,
} from "./seanet.ts";
import {
  type EncodecWeights,
  loadEncodecWeights,
  type LstmLayer,
  type SeanetLayer,
} from "./weights.ts";

export type { AudioCodes };

/** Options of {@linkcode Encodec.load}. */
export interface EncodecLoadOptions {
  /** The model's `config.json` (Hugging Face layout); default `facebook/encodec_24khz`. */
  config?: EncodecConfigJson;
  /**
   * Storage type of the convolution and LSTM weights. Default `"f32"`: with f16 weights the
   * golden encodec-tiny audio moves by 2–5e-3 (latent 1e-3, some late codes change), 100 times
   * the reference tolerance of 5e-5; the model is small enough (15 M parameters) for f32.
   */
  weights?: "f32" | "f16";
  /**
   * Frames per chunk for long signals; default: as many as the binding limit allows, ≤ 1500.
   * (A decoder with `trim_right_ratio` < 1 reads one frame ahead and always runs in one chunk.)
   */
  chunkFrames?: number;
  /** The weights' name in error messages, when they are bytes. */
  label?: string;
  /** Times every kernel of every call (for benchmarks; see `Profiler.collect`). */
  profiler?: Profiler;
}

/** Options of {@linkcode Encodec.encode}. */
export interface EncodeOptions {
  /** Target bandwidth in kbps (one of the model's); default 6 (8 codebooks, as VALL-E uses). */
  bandwidth?: number;
  /** Codebooks to use, instead of a bandwidth. */
  nQ?: number;
}

/** Options of the decoding methods. */
export interface DecodeOptions {
  /** Keep only the first `length` samples (the encoded signal's length); default all. */
  length?: number;
}

/** Options of the latent methods: a debugging hook. */
export interface LayerOptions {
  /**
   * Called after the run with every SEANet layer's output, time-major `(L, C)`, by layer index
   * (`encoder.layers.N` / `decoder.layers.N`). Forces a single chunk.
   */
  onLayer?: (index: number, values: Float32Array, shape: readonly number[]) => void;
}

/** Where a SEANet side's LSTM is, and the left context its two convolutional stages need. */
interface Plan {
  /** Index of the LSTM in the layer list. */
  lstm: number;
  /** Left context of the stage before the LSTM, in frames. */
  before: number;
  /** Left context of the stage after the LSTM, in frames. */
  after: number;
  /**
   * Whether no output of a frame reads a later frame, so chunks can end anywhere (false when
   * trim_right_ratio < 1 trims transposed convolutions on the left: then one chunk).
   */
  causal: boolean;
}

/** The kernels Encodec may dispatch (encoding and decoding), for warming at load. */
const ENCODEC_KERNELS: readonly OpKernel[] = [
  ...ACTIVATION_KERNELS,
  ...CONV1D_KERNELS,
  ...ELEMENTWISE_KERNELS,
  ...EMBEDDING_KERNELS,
  ...LSTM_KERNELS,
  ...RVQ_KERNELS,
];

/**
 * EnCodec on the GPU.
 *
 * @example
 * ```ts ignore
 * import { Encodec, requestGpu } from "@valle/core";
 * const backend = await requestGpu();
 * const codec = await Encodec.load(backend, "model.safetensors");
 * const codes = await codec.encode(samples, 44100, { bandwidth: 6 });
 * const audio = await codec.decode(codes); // 24 kHz
 * ```
 */
export class Encodec {
  /** The device. */
  readonly backend: Backend;
  /** The validated configuration. */
  readonly config: EncodecConfig;
  /** Frames per chunk of long signals. */
  readonly chunkFrames: number;
  #weights: EncodecWeights;
  #ws: Workspace;
  #encoder: Plan;
  #decoder: Plan;
  #rec: Recorder;
  #life = new Lifetime("EnCodec model");
  /** The float type of its weights. */
  #float: "f16" | "f32";

  private constructor(
    backend: Backend,
    config: EncodecConfig,
    weights: EncodecWeights,
    options: EncodecLoadOptions,
  ) {
    this.backend = backend;
    this.#rec = backend.createRecorder({ label: "encodec", profiler: options.profiler });
    this.config = config;
    this.#weights = weights;
    this.#float = options.weights ?? "f32";
    this.#ws = new Workspace(backend);
    const hop = config.hopLength;
    const far = 1 << 20;
    const enc = weights.encoder;
    const dec = weights.decoder;
    const encLstm = enc.findIndex((l) => l.kind === "lstm");
    const decLstm = dec.findIndex((l) => l.kind === "lstm");
    // What frame `far` reads (the decoder's last stage: from its first to its last sample).
    const encBefore = inputSpan(enc, [0, encLstm], far);
    const encAfter = inputSpan(enc, [encLstm + 1, enc.length], far);
    const decBefore = inputSpan(dec, [0, decLstm], far);
    const decAfter = [
      inputSpan(dec, [decLstm + 1, dec.length], far * hop)[0],
      inputSpan(dec, [decLstm + 1, dec.length], far * hop + hop - 1)[1],
    ];
    this.#encoder = {
      lstm: encLstm,
      before: Math.ceil((far * hop - encBefore[0]) / hop),
      after: far - encAfter[0],
      causal: encBefore[1] < (far + 1) * hop && encAfter[1] <= far,
    };
    this.#decoder = {
      lstm: decLstm,
      before: far - decBefore[0],
      after: far - decAfter[0],
      causal: decBefore[1] <= far && decAfter[1] <= far,
    };
    // A chunk must also be longer than the frame-rate convolutions' padding, or the short-input
    // rule would pad the first chunk differently from the whole signal.
    this.chunkFrames = chunkFrames(backend, {
      requested: options.chunkFrames,
      bytesPerFrame: 4 * Math.max(activationsPerFrame(enc, hop), activationsPerFrame(dec, 1)),
      context: Math.max(this.#encoder.before, this.#decoder.after),
      minimum: Math.max(this.#encoder.after, this.#decoder.before) + 1,
    });
  }

  /**
   * Loads EnCodec weights (Hugging Face `model.safetensors`, or a PyTorch `pytorch_model.bin`
   * as bytes) and its configuration.
   *
   * @param backend The device.
   * @param weights The checkpoint.
   * @param options Configuration, weight precision, chunk size.
   * @returns The codec.
   * @throws {WeightsError} An invalid configuration, or missing or mis-shaped tensors.
   * @throws {FormatError} The file cannot be parsed.
   *
   * @example
   * ```ts ignore
   * const codec = await Encodec.load(backend, await Deno.readFile("model.safetensors"), {
   *   config: JSON.parse(await Deno.readTextFile("config.json")),
   * });
   * ```
   */
  static async load(
    backend: Backend,
    weights: WeightsInput,
    options: EncodecLoadOptions = {},
  ): Promise<Encodec> {
    const source = await openWeights(weights, options.label);
    const config = parseEncodecConfig(options.config);
    const loaded = loadEncodecWeights(backend, source, config, options.weights ?? "f32");
    return new Encodec(backend, config, loaded, options);
  }

  /**
   * The kernel variants this model may dispatch, for {@linkcode Backend.warm}.
   */
  kernels(): KernelUse[] {
    const floats = [this.backend.weightDtype, "f32", this.#float] as const;
    return kernelUses(ENCODEC_KERNELS, { floats, quants: [] });
  }

  /**
   * Compiles every kernel the model may dispatch ahead of its first call (WebGPU; nothing to do
   * on the CPU).
   *
   * @param onProgress Called as compiles finish, with the number done and the total.
   * @throws {GpuError} A kernel that fails to compile, named.
   */
  async warm(onProgress?: (done: number, total: number) => void): Promise<void> {
    this.#life.check();
    await this.backend.warm(this.kernels(), onProgress);
  }

  /**
   * Encodes mono audio into codes: resamples to the model's rate when needed, runs the encoder
   * and the residual quantizer.
   *
   * @param samples Mono samples (see `toMono` for multichannel audio).
   * @param sampleRate Their sample rate.
   * @param options Bandwidth or number of codebooks.
   * @returns `nQ` × ceil(L / hopLength) codes, L the length at the model's rate.
   * @throws {OptionError} An empty signal, a sample that is not finite, or a bandwidth the model
   * lacks.
   * @throws {ValleError} The quantizer returned a code outside the codebooks (the weights hold
   * non-finite values).
   *
   * @example
   * ```ts ignore
   * const { codes, nQ, frames } = await codec.encode(samples, 24000, { bandwidth: 6 });
   * ```
   */
  encode(
    samples: Float32Array,
    sampleRate: number,
    options: EncodeOptions = {},
  ): Promise<AudioCodes> {
    return this.#life.run(() =>
      this.#ws.during(async () => {
        const nQ = this.#codebooks(options);
        checkFiniteSamples([samples], "encode audio");
        const audio = resample(samples, sampleRate, this.config.sampleRate);
        const frames = this.#frames(audio.length);
        const codes = this.#ws.tensor("codes", [nQ, frames], "u32");
        await this.#runEncoder(audio, (rec, latent, column) => {
          rvqEncode(rec, codes, latent, this.#weights.codebooksTransposed, { column });
        });
        const [bytes] = await readBytes(this.backend, [codes]);
        return checkEncoded({ codes: new Int32Array(bytes), nQ, frames }, this.config.bins);
      })
    );
  }

  /**
   * Runs the encoder only: the continuous latent before quantization.
   *
   * @param samples Mono samples at the model's rate.
   * @param options A per-layer debugging hook.
   * @returns (frames, dim), time-major.
   *
   * @example
   * ```ts ignore
   * const latent = await codec.encodeLatent(samples); // Float32Array of frames × 128
   * ```
   */
  encodeLatent(samples: Float32Array, options: LayerOptions = {}): Promise<Float32Array> {
    return this.#life.run(() =>
      this.#ws.during(async () => {
        const frames = this.#frames(samples.length);
        const dim = this.config.dim;
        const out = new Float32Array(frames * dim);
        const keep = this.#ws.tensor("latent", [Math.min(frames, this.chunkFrames), dim]);
        const tracer = options.onLayer ? new Tracer(this.backend) : undefined;
        await this.#runEncoder(
          samples,
          (rec, latent) => rec.copy(latent, rows(keep, 0, latent.shape[0])),
          {
            tracer,
            read: async (column, n) => {
              const [bytes] = await readBytes(this.backend, [rows(keep, 0, n)]);
              out.set(new Float32Array(bytes), column * dim);
            },
          },
        );
        await tracer?.deliver(options.onLayer!);
        return out;
      })
    );
  }

  /**
   * Quantizes a latent with the first `nQ` codebooks (nearest codeword, residual subtracted).
   *
   * @param latent (frames, dim), time-major, as {@linkcode Encodec.encodeLatent} returns.
   * @param nQ Codebooks to use.
   * @returns The codes.
   *
   * @example
   * ```ts ignore
   * const codes = await codec.quantize(await codec.encodeLatent(samples), 8);
   * ```
   */
  quantize(latent: Float32Array, nQ: number): Promise<AudioCodes> {
    return this.#life.run(() =>
      this.#ws.during(async () => {
        this.#codebooks({ nQ });
        const frames = this.#latentFrames(latent);
        const codes = this.#ws.tensor("codes", [nQ, frames], "u32");
        const rec = this.#rec;
        for (let a = 0; a < frames; a += this.chunkFrames) {
          const n = Math.min(this.chunkFrames, frames - a);
          const x = this.#ws.tensor("latent", [n, this.config.dim]);
          writeTensor(
            this.backend,
            x,
            latent.subarray(a * this.config.dim, (a + n) * this.config.dim),
          );
          rvqEncode(rec, codes, x, this.#weights.codebooksTransposed, { column: a });
          rec.submit();
        }
        const [bytes] = await readBytes(this.backend, [codes]);
        return checkEncoded({ codes: new Int32Array(bytes), nQ, frames }, this.config.bins);
      })
    );
  }

  /**
   * The sum of the chosen codewords (the quantized latent), what the decoder consumes.
   *
   * @param codes Codes of up to `config.numQuantizers` codebooks.
   * @returns (frames, dim), time-major.
   *
   * @example
   * ```ts ignore
   * const quantized = await codec.dequantize(codes);
   * ```
   */
  dequantize(codes: AudioCodes): Promise<Float32Array> {
    return this.#life.run(() =>
      this.#ws.during(async () => {
        const out = new Float32Array(codes.frames * this.config.dim);
        const rec = this.#rec;
        for (let a = 0; a < codes.frames; a += this.chunkFrames) {
          const n = Math.min(this.chunkFrames, codes.frames - a);
          const q = this.#ws.tensor("latent", [n, this.config.dim]);
          recordCodewordSum(rec, this.#ws, q, codes, a, this.#weights.codebooks, this.config.bins);
          rec.submit();
          const [bytes] = await readBytes(this.backend, [q]);
          out.set(new Float32Array(bytes), a * this.config.dim);
        }
        return out;
      })
    );
  }

  /**
   * Decodes codes into audio at the model's rate: codeword sums, then the decoder.
   *
   * @param codes Codes of 1 to `config.numQuantizers` codebooks, values in [0, bins).
   * @param options The output length.
   * @returns hopLength · frames samples (or `length`).
   * @throws {OptionError} Codes out of range, too many codebooks, or a bad length.
   *
   * @example
   * ```ts ignore
   * const audio = await codec.decode({ codes, nQ: 8, frames: 150 }); // 48000 samples
   * ```
   */
  decode(codes: AudioCodes, options: DecodeOptions = {}): Promise<Float32Array> {
    return this.#life.run(() =>
      this.#ws.during(async () => {
        checkCodes(codes, this.config.numQuantizers, this.config.bins);
        return await this.#runDecoder(codes.frames, options.length, (rec, q, first) => {
          recordCodewordSum(
            rec,
            this.#ws,
            q,
            codes,
            first,
            this.#weights.codebooks,
            this.config.bins,
          );
        });
      })
    );
  }

  /**
   * Runs the decoder only, on a (quantized) latent.
   *
   * @param latent (frames, dim), time-major.
   * @param options The output length, and a per-layer debugging hook.
   * @returns hopLength · frames samples (or `length`).
   *
   * @example
   * ```ts ignore
   * const audio = await codec.decodeLatent(await codec.dequantize(codes));
   * ```
   */
  decodeLatent(
    latent: Float32Array,
    options: DecodeOptions & LayerOptions = {},
  ): Promise<Float32Array> {
    return this.#life.run(() =>
      this.#ws.during(async () => {
        const frames = this.#latentFrames(latent);
        const dim = this.config.dim;
        return await this.#runDecoder(frames, options.length, (_rec, q, first) => {
          writeTensor(this.backend, q, latent.subarray(first * dim, (first + q.shape[0]) * dim));
        }, options.onLayer);
      })
    );
  }

  /**
   * Frees the weights, the scratch buffers and the device's pooled buffers no call is using.
   * Calls already made finish first; later calls fail with a `GpuError`.
   *
   * @returns Resolves once everything is freed (at once when no call is running).
   */
  dispose(): Promise<void> {
    return this.#life.dispose(() => {
      this.#ws.release();
      this.#rec.destroy();
      destroyTensors(this.#weights);
      this.backend.trim();
    });
  }

  #codebooks(options: EncodeOptions): number {
    const c = this.config;
    let nQ = options.nQ;
    if (nQ === undefined) {
      const bandwidth = options.bandwidth ??
        (c.bandwidths.includes(6) ? 6 : Math.max(...c.bandwidths));
      if (!c.bandwidths.includes(bandwidth)) {
        throw new OptionError(
          `Cannot encode: bandwidth ${bandwidth} kbps, expected one of ${c.bandwidths.join(", ")}`,
        );
      }
      // As the quantizers do, a bandwidth beyond the model's codebooks uses them all.
      nQ = Math.min(codebooksForBandwidth(c, bandwidth), c.numQuantizers);
    }
    if (!Number.isInteger(nQ) || nQ < 1 || nQ > c.numQuantizers) {
      throw new OptionError(`Cannot encode: ${nQ} codebooks, expected 1 to ${c.numQuantizers}`);
    }
    return nQ;
  }

  #frames(length: number): number {
    if (length < 1) throw new OptionError("Cannot encode: the signal is empty");
    return Math.ceil(length / this.config.hopLength);
  }

  #latentFrames(latent: Float32Array): number {
    const dim = this.config.dim;
    if (latent.length === 0 || latent.length % dim !== 0) {
      throw new OptionError(
        `Cannot use a latent of ${latent.length} values: expected a positive multiple of ${dim}`,
      );
    }
    return latent.length / dim;
  }

  /**
   * The chunked encoder: the samples of frames [a − context, b) go through the stage before the
   * LSTM, and `sink` gets the latent of frames [a, b).
   */
  async #runEncoder(
    samples: Float32Array,
    sink: (rec: Recorder, latent: Tensor, column: number) => void,
    options: { tracer?: Tracer; read?: (column: number, n: number) => Promise<void> } = {},
  ): Promise<void> {
    const hop = this.config.hopLength;
    await this.#runChunks("encoder", this.#frames(samples.length), {
      input: (first, end) => {
        const input = this.#ws.tensor("input", [
          Math.min(samples.length, end * hop) - first * hop,
          1,
        ]);
        writeTensor(
          this.backend,
          input,
          samples.subarray(first * hop, first * hop + input.shape[0]),
        );
        return input;
      },
      output: (rec, latent, a, n) => sink(rec, rows(latent, latent.shape[0] - n, n), a),
      settle: options.read,
    }, options.tracer);
  }

  /**
   * The chunked decoder: `source` fills the latent of frames [a − context, b), and the samples of
   * frames [a, b) are read back.
   */
  async #runDecoder(
    frames: number,
    length: number | undefined,
    source: (rec: Recorder, q: Tensor, first: number) => void,
    onLayer?: LayerOptions["onLayer"],
  ): Promise<Float32Array> {
    const hop = this.config.hopLength;
    const total = frames * hop;
    if (length !== undefined && !(Number.isInteger(length) && length >= 0 && length <= total)) {
      throw new OptionError(`Cannot decode to ${length} samples: expected 0 to ${total}`);
    }
    const tracer = onLayer ? new Tracer(this.backend) : undefined;
    const out = new Float32Array(total);
    let audio: Tensor | undefined;
    await this.#runChunks("decoder", frames, {
      input: (first, end, rec) => {
        const q = this.#ws.tensor("latent", [end - first, this.config.dim]);
        source(rec, q, first);
        return q;
      },
      output: (_rec, samples, _a, n) => {
        audio = rows(samples, samples.shape[0] - n * hop, n * hop);
      },
      settle: async (a) => {
        const [bytes] = await readBytes(this.backend, [audio!]);
        out.set(new Float32Array(bytes), a * hop);
      },
    }, tracer);
    await tracer?.deliver(onLayer!);
    return length === undefined ? out : out.slice(0, length);
  }

  /**
   * Runs a SEANet side chunk by chunk. For every chunk of frames [a, b): `input` gives the
   * input of frames [a − context, b) (context for the stage before the LSTM), that stage runs,
   * the LSTM runs on [a, b) continuing its state, the stage after it runs on the LSTM output of
   * [a − context, b), `output` records what to do with the result, the work is submitted and
   * `settle` awaited.
   */
  async #runChunks(
    side: "encoder" | "decoder",
    frames: number,
    io: {
      input: (first: number, end: number, rec: Recorder) => Tensor;
      output: (rec: Recorder, result: Tensor, a: number, n: number) => void;
      settle?: (a: number, n: number) => Promise<void>;
    },
    tracer?: Tracer,
  ): Promise<void> {
    const layers = this.#weights[side];
    const plan = side === "encoder" ? this.#encoder : this.#decoder;
    const chunk = tracer || !plan.causal ? frames : this.chunkFrames;
    const rec = this.#rec;
    const lstm = layers[plan.lstm] as LstmLayer;
    const state = lstmState(rec, this.#ws, lstm, side);
    const trace = tracer?.trace;
    let previous: Tensor | undefined;
    for (let a = 0, n = 0; a < frames; a += n) {
      n = Math.min(chunk, frames - a);
      const first = Math.max(0, a - plan.before);
      const input = io.input(first, a + n, rec);
      const before = recordStage(rec, this.#ws, layers, [0, plan.lstm], input, trace);
      const x = rows(before, a - first, n);
      const post = this.#recordLstm(rec, lstm, state, x, previous, plan.after, a);
      trace?.(rec, plan.lstm, rows(post, post.shape[0] - n, n));
      const range = [plan.lstm + 1, layers.length] as const;
      io.output(rec, recordStage(rec, this.#ws, layers, range, post, trace), a, n);
      rec.submit();
      await io.settle?.(a, n);
      previous = post;
    }
  }

  /**
   * Records the LSTM of frames [a, a + n) into a fresh "post" buffer whose first rows repeat the
   * last `context` rows of the previous chunk's, so the next stage sees frames [a − context, a + n).
   */
  #recordLstm(
    rec: Recorder,
    lstm: LstmLayer,
    state: LstmState,
    x: Tensor,
    previous: Tensor | undefined,
    context: number,
    a: number,
  ): Tensor {
    const n = x.shape[0];
    const history = previous ? Math.min(context, a) : 0;
    const name = previous?.buffer === this.#ws.tensor("post0", [1]).buffer ? "post1" : "post0";
    const post = this.#ws.tensor(name, [history + n, lstm.hidden]);
    if (history > 0) {
      rec.copy(rows(previous!, previous!.shape[0] - history, history), rows(post, 0, history));
    }
    recordLstm(rec, this.#ws, lstm, state, x, rows(post, history, n));
    return post;
  }
}

/** Floats per frame of the largest activation a layer program produces (plus its hidden). */
function activationsPerFrame(layers: readonly SeanetLayer[], samplesPerFrame: number): number {
  let rate = samplesPerFrame;
  let most = 0;
  for (const l of layers) {
    if (l.kind === "conv") {
      rate /= l.stride;
      most = Math.max(most, rate * l.cout, rate * l.cin);
    } else if (l.kind === "convtr") {
      rate *= l.stride;
      most = Math.max(most, rate * l.cout);
    } else if (l.kind === "lstm") {
      most = Math.max(most, rate * 4 * l.hidden);
    }
  }
  return most;
}

/** Copies traced layer outputs into their own tensors, then reads them all back at once. */
class Tracer {
  #backend: Backend;
  #copies: { index: number; tensor: Tensor }[] = [];

  constructor(backend: Backend) {
    this.#backend = backend;
  }

  /** Records a copy of a layer's output (an arrow function, to be passed as a callback). */
  trace: LayerTrace = (rec, index, output) => {
    const tensor = createTensor(this.#backend, output.shape, "f32", `trace.${index}`);
    rec.copy(output, tensor);
    this.#copies.push({ index, tensor });
  };

  /** Reads every traced output and hands it to `onLayer`. */
  async deliver(onLayer: NonNullable<LayerOptions["onLayer"]>): Promise<void> {
    const bytes = await readBytes(this.#backend, this.#copies.map((c) => c.tensor));
    this.#copies.forEach((c, i) => {
      onLayer(c.index, new Float32Array(bytes[i]), c.tensor.shape);
      c.tensor.buffer.destroy();
    });
  }
}

/** `codes`, after checking that each lies in its codebook (a NaN latent quantizes to -1). */
function checkEncoded(codes: AudioCodes, bins: number): AudioCodes {
  const index = codes.codes.findIndex((c) => c < 0 || c >= bins);
  if (index >= 0) {
    const level = Math.floor(index / codes.frames);
    throw new ValleError(
      `Cannot encode audio: the quantizer returned code ${codes.codes[index]} at frame ` +
        `${index % codes.frames}, level ${level}, expected 0..${bins - 1} (the EnCodec weights ` +
        "hold non-finite values)",
    );
  }
  return codes;
}
