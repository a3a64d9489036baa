/**
 * WebGPU adapter and device acquisition. {@linkcode requestGpu} raises the device limits to what
 * the adapter offers (Deno and browsers otherwise give the small spec defaults: 128 MiB bindings,
 * 16 KiB workgroup memory), enables `shader-f16`, `timestamp-query` and `subgroups` when offered,
 * notes whether WGSL has `packed_4x8_integer_dot_product` (the integer quantized GEMMs), and
 * returns a {@linkcode Gpu} that owns the device together with its pipeline, bind-group and buffer
 * caches.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { GpuError, OptionError } from "../../errors.ts";
import type {
  Backend,
  BackendStats,
  KernelUse,
  MemoryUsage,
  Precision,
  RecorderOptions,
  Tensor,
} from "../backend.ts";
import { offsetBytes } from "../tensor.ts";
import { alignSize, BufferPool, TENSOR_USAGE } from "./buffers.ts";
import { KernelCache } from "./kernels.ts";
import { GpuProfiler } from "./profiler.ts";
import { GpuRecorder } from "./recorder.ts";

/**
 * The most bytes one `queue.writeBuffer` carries: larger writes go in chunks, so that a browser
 * (which copies each write into staging memory of its own) never holds a whole large tensor twice.
 */
export const WRITE_CHUNK_BYTES = 16 << 20;

/** Options for {@linkcode requestGpu}. */
export interface GpuOptions {
  /** Use this device (it must have been created with the features you want) instead of a new one. */
  device?: GPUDevice;
  /** Adapter preference when requesting a new device. Default `"high-performance"`. */
  powerPreference?: GPUPowerPreference;
  /**
   * Weight precision. `"auto"` (default) stores weights as f16 when the adapter has `shader-f16`
   * and as f32 otherwise; `"f16"` fails when the feature is missing; `"f32"` always uses f32.
   * Activations and accumulators are f32 in every case.
   */
  precision?: Precision;
  /**
   * Run the quantized GEMMs in integer arithmetic where WGSL lists
   * `packed_4x8_integer_dot_product` (default `true`): activations quantized per 32-block to int8
   * as the CPU backend quantizes them, `dot4I8Packed` block sums (`src/quant/FORMATS.md` §5).
   * `false` keeps dequantizing the weights into the tile and multiplying float activations.
   */
  integerDot?: boolean;
  /**
   * Reduce rows on subgroups where the device has `subgroups` and WGSL lists `subgroup_id`
   * (default `true`): the row kernels' workgroup sums and maxima (RMSNorm, LayerNorm, softmax, the
   * sampler) take two barriers instead of the tree's nine. `false` keeps the barrier trees.
   */
  subgroups?: boolean;
}

/** The optional features this library uses, as enabled on the device. */
export interface GpuFeatures {
  /** `shader-f16`: f16 weights in storage buffers. */
  f16: boolean;
  /** `timestamp-query`: per-kernel GPU times in benchmarks. */
  timestamps: boolean;
  /**
   * `subgroups` with the WGSL language feature `subgroup_id`, not refused (`GpuOptions.subgroups`):
   * the row kernels reduce on subgroups (`shaders/_lanes_subgroups.wgsl`).
   */
  subgroups: boolean;
  /**
   * The WGSL language feature `packed_4x8_integer_dot_product`, listed by
   * `navigator.gpu.wgslLanguageFeatures` and not refused (`GpuOptions.integerDot`): the quantized
   * GEMVs and GEMMs use `dot4I8Packed` on int8 activations (kernels `gemv_q8_0_dp4a`,
   * `gemm_q8_0_dp4a`, `gemv_q4_k_dp4a`, `gemm_q4_k_dp4a`).
   */
  integerDot: boolean;
}

/** The WGSL language feature of `dot4I8Packed` (`GpuFeatures.integerDot`). */
export const INTEGER_DOT_FEATURE = "packed_4x8_integer_dot_product";

/** The WGSL language feature of the subgroup index the reductions use (`GpuFeatures.subgroups`). */
export const SUBGROUP_ID_FEATURE = "subgroup_id";

/** A description of the adapter, for logs and benchmark reports. */
export interface AdapterSummary {
  /** Vendor name or id. */
  vendor: string;
  /** Architecture name, often empty. */
  architecture: string;
  /** Device name or id. */
  device: string;
  /** Driver-provided description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** True for CPU implementations (lavapipe/llvmpipe, SwiftShader, WARP). */
  software: boolean;
}

const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic/i;

/** What a lost device's operations say, with what to do. */
const LOST_ADVICE = "create the model (or backend) again to continue";

const LIMITS_TO_RAISE = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
] as const;

/**
 * The WebGPU {@linkcode Backend}: a device with the caches every model shares (compiled
 * pipelines keyed by kernel, variant and constants; bind groups; pooled readback buffers).
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "@valle/core";
 * const gpu = await requestGpu();
 * console.log(gpu.adapter.description, gpu.features.f16);
 * gpu.destroy();
 * ```
 */
export class Gpu implements Backend {
  /** Which backend this is. */
  readonly kind = "webgpu" as const;
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /** What the adapter says about itself. */
  readonly adapter: AdapterSummary;
  /** Optional features enabled on the device. */
  readonly features: GpuFeatures;
  /** The storage type of weights: `"f16"` when `shader-f16` is used, else `"f32"`. */
  readonly weightDtype: "f16" | "f32";
  /** The adapter's description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly description: string;
  /** Whether the device has `shader-f16`. */
  readonly supportsF16: boolean;
  /** Whether the device has `timestamp-query` (needed by the profiler). */
  readonly canProfile: boolean;
  /** The device's `maxStorageBufferBindingSize` (or `maxBufferSize` when smaller). */
  readonly maxBindingBytes: number;
  /** Pipelines and bind groups, compiled and created once. */
  readonly kernels: KernelCache;
  /** Reusable MAP_READ staging buffers. */
  readonly readbacks: BufferPool;
  /** Work submitted so far. */
  readonly stats: BackendStats = { dispatches: 0, submits: 0, readbacks: 0 };
  /** GPU memory held by this library's buffers. */
  readonly memory: MemoryUsage = { current: 0, peak: 0 };
  #failure?: GpuError;
  #reader?: GpuRecorder;
  #destroying = false;
  #lost = false;
  /** Rejections of the waits in progress ({@linkcode Gpu.#whileAlive}), called on loss. */
  #waiters = new Set<(error: Error) => void>();

  /**
   * Wraps a device. Prefer {@linkcode requestGpu}, which negotiates features and limits.
   *
   * @param device The device.
   * @param adapter The adapter description.
   * @param weightDtype The weight precision kernels use.
   * @param options `integerDot: false` refuses the integer GEMMs, `subgroups: false` the
   * subgroup reductions (see {@linkcode GpuOptions}).
   */
  constructor(
    device: GPUDevice,
    adapter: AdapterSummary,
    weightDtype: "f16" | "f32",
    options: Pick<GpuOptions, "integerDot" | "subgroups"> = {},
  ) {
    this.device = device;
    this.adapter = adapter;
    this.weightDtype = weightDtype;
    this.features = {
      f16: device.features.has("shader-f16"),
      timestamps: device.features.has("timestamp-query"),
      subgroups: options.subgroups !== false && device.features.has("subgroups") &&
        wgslHas(SUBGROUP_ID_FEATURE),
      integerDot: options.integerDot !== false && wgslHas(INTEGER_DOT_FEATURE),
    };
    this.kernels = new KernelCache(this);
    this.description = adapter.description || adapter.device || adapter.vendor || "WebGPU adapter";
    this.supportsF16 = this.features.f16;
    this.canProfile = this.features.timestamps;
    this.maxBindingBytes = Math.min(
      device.limits.maxStorageBufferBindingSize,
      device.limits.maxBufferSize,
    );
    this.readbacks = new BufferPool(
      this,
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      "valle.readback",
    );
    // On loss: the failure is recorded first, then every wait in progress (fences, reads) is
    // released, so each throws it.
    device.lost.then((info) => {
      this.#lost = true;
      if (!this.#destroying) {
        const why = info.reason === "destroyed"
          ? "the device was destroyed by someone else"
          : info.message || info.reason || "no reason given";
        this.#failure ??= new GpuError(`Cannot use the GPU: device lost (${why}); ${LOST_ADVICE}`);
      }
      for (const reject of this.#waiters) reject(new Error("the device was lost"));
      this.#waiters.clear();
    });
    device.addEventListener("uncapturederror", (event) => {
      const message = (event as GPUUncapturedErrorEvent).error.message;
      this.#failure ??= new GpuError(`Cannot run GPU work: ${message}`);
    });
  }

  /** Throws the first asynchronous GPU failure (device loss, validation error), if any. */
  assertHealthy(): void {
    if (this.#failure) throw this.#failure;
    if (this.#destroying) throw new GpuError("Cannot use the GPU: this backend was destroyed");
  }

  /** The first asynchronous failure (device loss, validation error), if any. */
  get failure(): GpuError | undefined {
    return this.#failure;
  }

  /** Whether the device is lost (destroyed included): nothing more can run on it. */
  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Maps `buffer` for reading, as `mapAsync` does, but a rejection (device lost or destroyed
   * meanwhile) becomes the device's {@linkcode GpuError} with its reason instead of a raw
   * `DOMException`, and a loss during the wait is never missed.
   *
   * @param buffer A MAP_READ buffer of this device.
   * @param bytes Bytes from its start to map.
   */
  async mapRead(buffer: GPUBuffer, bytes: number): Promise<void> {
    try {
      await this.#whileAlive(buffer.mapAsync(GPUMapMode.READ, 0, bytes));
    } catch (error) {
      this.assertHealthy();
      throw new GpuError(
        `Cannot read "${buffer.label}" back from the GPU: ${(error as Error).message}`,
        { cause: error },
      );
    }
    this.assertHealthy();
  }

  /**
   * Records a failure found asynchronously (e.g. a pipeline that failed to compile) so that the
   * next {@linkcode Gpu.assertHealthy} throws it.
   */
  fail(error: GpuError): void {
    this.#failure ??= error;
  }

  /**
   * Creates a buffer counted in {@linkcode Gpu.memory}: its size is added now and taken off when
   * it is destroyed. Every buffer of the library is made here.
   */
  createGpuBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    // An allocation the device cannot make is reported later, in this scope: it becomes the
    // failure the next submit, fence or read throws, naming the buffer, rather than an unnamed
    // validation error about an invalid buffer.
    this.device.pushErrorScope("out-of-memory");
    const buffer = this.device.createBuffer(descriptor);
    this.device.popErrorScope().then((error) => {
      if (error) {
        this.#failure ??= new GpuError(
          `Cannot allocate "${descriptor.label ?? "buffer"}" (${
            (descriptor.size / 2 ** 20).toFixed(1)
          } MiB): the GPU is out of memory (${error.message}); lower batchSize or maxSeconds, ` +
            "or close what else uses the GPU",
        );
      }
    }, () => {});
    const memory = this.memory;
    memory.current += buffer.size;
    memory.peak = Math.max(memory.peak, memory.current);
    const destroy = buffer.destroy.bind(buffer);
    let alive = true;
    buffer.destroy = () => {
      if (alive) memory.current -= buffer.size;
      alive = false;
      destroy();
    };
    return buffer;
  }

  /**
   * Destroys the pooled readback buffers no call is using. Models call
   * it when disposed, so that {@linkcode Gpu.memory} returns to what it was before they loaded;
   * the pools refill on demand.
   */
  trim(): void {
    this.#reader?.destroy();
    this.#reader = undefined;
    this.readbacks.trim();
  }

  /** Allocates a zero-filled storage buffer (copyable both ways) of at least `bytes` bytes. */
  createBuffer(bytes: number, label: string): GPUBuffer {
    return this.createGpuBuffer({ label, size: alignSize(bytes), usage: TENSOR_USAGE });
  }

  /**
   * Writes `data` into `t` from its first element (`queue.writeBuffer`, never
   * `mappedAtCreation`, which can hang Deno on device destruction, denoland/deno#24798). WebGPU
   * copies whole 4-byte words, so a write of odd length is padded, which is only allowed when it
   * ends the buffer.
   */
  write(t: Tensor, data: ArrayBufferView): void {
    const buffer = this.bufferOf(t, "write");
    let bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    const offset = t.offset * offsetBytes(t.dtype);
    const padded = alignSize(bytes.byteLength);
    if (offset % 4 !== 0 || (padded !== bytes.byteLength && offset + padded !== buffer.size)) {
      throw new OptionError(
        `Cannot write ${bytes.byteLength} bytes at element ${t.offset} of "${buffer.label}": ` +
          "writes must cover whole 4-byte words",
      );
    }
    if (offset + bytes.byteLength > buffer.size) {
      throw new OptionError(
        `Cannot write ${bytes.byteLength} bytes at element ${t.offset} of "${buffer.label}": ` +
          `it holds ${buffer.size} bytes`,
      );
    }
    if (padded !== bytes.byteLength) {
      const copy = new Uint8Array(padded);
      copy.set(bytes);
      bytes = copy;
    }
    // In chunks: a browser copies each write whole into its own staging memory.
    for (let at = 0; at < bytes.byteLength; at += WRITE_CHUNK_BYTES) {
      const size = Math.min(WRITE_CHUNK_BYTES, bytes.byteLength - at);
      this.device.queue.writeBuffer(buffer, offset + at, bytes, at, size);
    }
  }

  /**
   * Compiles kernels ahead of their first dispatch with `createComputePipelineAsync`, all at
   * once (see {@linkcode KernelCache.warm}).
   *
   * @param kernels The kernel variants a model will dispatch.
   * @param onProgress Called as compiles finish, with the number done and the total.
   * @throws {GpuError} A kernel that fails to compile, named.
   */
  async warm(
    kernels: readonly KernelUse[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<void> {
    this.assertHealthy();
    await this.kernels.warm(kernels, onProgress);
  }

  /**
   * Copies tensors to the CPU with one submit and one wait, after the work submitted so far.
   *
   * @throws {GpuError} When an earlier GPU error was reported (see {@linkcode Gpu.assertHealthy}).
   */
  async read(tensors: readonly Tensor[]): Promise<ArrayBuffer[]> {
    this.#reader ??= this.createRecorder({ label: "valle.readback", capacity: 1 });
    const readback = this.#reader.readback(tensors);
    this.#reader.submit();
    return await readback.result();
  }

  /** A recorder: one command encoder and compute pass per submit. */
  createRecorder(options: RecorderOptions = {}): GpuRecorder {
    return new GpuRecorder(this, options);
  }

  /**
   * A timestamp-query profiler.
   *
   * @throws {GpuError} When the device lacks `timestamp-query`.
   */
  createProfiler(capacity?: number): GpuProfiler {
    return new GpuProfiler(this, capacity);
  }

  /**
   * Resolves when the work submitted so far has run (`onSubmittedWorkDone`).
   *
   * @throws {GpuError} When the device is lost before or while waiting, or reported an error.
   */
  async fence(): Promise<void> {
    this.assertHealthy();
    await this.#whileAlive(this.device.queue.onSubmittedWorkDone()).catch(() => {});
    this.assertHealthy();
  }

  /**
   * `work`, or a rejection as soon as the device is lost, whichever comes first. Each wait is
   * registered only while it lasts (racing `device.lost` itself would leave a reaction on it per
   * wait for the device's lifetime).
   */
  #whileAlive<T>(work: Promise<T>): Promise<T> {
    if (this.#lost) return Promise.reject(new Error("the device was lost"));
    return new Promise<T>((resolve, reject) => {
      this.#waiters.add(reject);
      work.then((value) => {
        this.#waiters.delete(reject);
        resolve(value);
      }, (error) => {
        this.#waiters.delete(reject);
        reject(error);
      });
    });
  }

  /** The GPU buffer of a tensor, or a typed error naming the op and the foreign buffer. */
  bufferOf(t: Tensor, op: string): GPUBuffer {
    if (!(t.buffer instanceof GPUBuffer)) {
      throw new OptionError(
        `Cannot ${op} "${t.buffer.label}" on WebGPU: it belongs to another backend`,
      );
    }
    return t.buffer;
  }

  /** Releases every cached buffer and destroys the device. */
  destroy(): void {
    this.#destroying = true;
    this.#reader?.destroy();
    this.readbacks.destroy();
    this.device.destroy();
  }
}

/**
 * Requests an adapter and a device with raised limits and the optional features this library
 * uses, or wraps the device given in `options.device`.
 *
 * @param options Device, adapter preference, weight precision, integer GEMMs.
 * @returns The device and its caches.
 * @throws {GpuError} When WebGPU is missing, no adapter is found, or `precision: "f16"` is asked
 * for on an adapter without `shader-f16`.
 *
 * @example
 * ```ts ignore
 * import { requestGpu } from "@valle/core";
 * const gpu = await requestGpu({ precision: "f32" });
 * gpu.destroy();
 * ```
 */
export async function requestGpu(options: GpuOptions = {}): Promise<Gpu> {
  const precision = options.precision ?? "auto";
  if (options.device) {
    const device = options.device;
    // `adapterInfo` is missing on browsers older than Chrome 131 / Firefox 141.
    const info = (device as { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    return new Gpu(device, summarize(info), chooseWeightDtype(device.features, precision), options);
  }
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    throw new GpuError(
      "Cannot use the GPU: WebGPU is not available (navigator.gpu is undefined); use Deno 2 or " +
        "a browser with WebGPU enabled",
    );
  }
  const adapter = await gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  }).catch((error: Error) => {
    throw new GpuError(`Cannot use the GPU: requestAdapter failed (${error.message})`, {
      cause: error,
    });
  });
  if (!adapter) {
    throw new GpuError(
      "Cannot use the GPU: no WebGPU adapter found (on Linux without a GPU, install " +
        "mesa-vulkan-drivers for the lavapipe software adapter)",
    );
  }
  const wanted: GPUFeatureName[] = ["shader-f16", "timestamp-query", "subgroups"];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  if (precision === "f16" && !adapter.features.has("shader-f16")) {
    throw new GpuError(
      `Cannot use f16 weights: adapter "${adapter.info.description}" lacks "shader-f16"`,
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMITS_TO_RAISE) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({
    label: "valle",
    requiredFeatures,
    requiredLimits,
  }).catch((error: Error) => {
    throw new GpuError(
      `Cannot use the GPU: adapter "${adapter.info?.description ?? ""}" refused a device ` +
        `(${error.message})`,
      { cause: error },
    );
  });
  return new Gpu(
    device,
    summarize(adapter.info),
    chooseWeightDtype(device.features, precision),
    options,
  );
}

/** Whether this runtime's WGSL has a language feature (`navigator.gpu.wgslLanguageFeatures`). */
function wgslHas(feature: string): boolean {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu as
    | { wgslLanguageFeatures?: ReadonlySet<string> }
    | undefined;
  return gpu?.wgslLanguageFeatures?.has(feature) === true;
}

function chooseWeightDtype(features: GPUSupportedFeatures, precision: Precision): "f16" | "f32" {
  const f16 = features.has("shader-f16");
  if (precision === "f16" && !f16) {
    throw new GpuError('Cannot use f16 weights: the device was created without "shader-f16"');
  }
  return precision === "f32" || !f16 ? "f32" : "f16";
}

/**
 * What the adapter says about itself (nothing, where `GPUDevice.adapterInfo` is missing). CPU
 * adapters are flagged by browsers (`isFallbackAdapter`), not by Deno, so names count too: lavapipe
 * in its description, SwiftShader in its architecture ("swiftshader") or vendor ("google").
 */
export function summarize(info: Partial<GPUAdapterInfo> | undefined): AdapterSummary {
  const { vendor = "", architecture = "", device = "", description = "" } = info ?? {};
  const fallback =
    (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter === true;
  return {
    vendor,
    architecture,
    device,
    description,
    software: fallback ||
      SOFTWARE_ADAPTER.test(`${description} ${vendor} ${architecture} ${device}`),
  };
}
