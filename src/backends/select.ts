/**
 * Choosing a backend: WebGPU on a hardware adapter, the WebAssembly CPU backend where there is no
 * adapter or only a software one (lavapipe/llvmpipe, SwiftShader, WARP: a GPU emulated on the
 * CPU runs these kernels far slower than the CPU backend does).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkChoice, formatValue } from "../_options.ts";
import { GpuError, OptionError } from "../errors.ts";
import type { Backend, BackendKind, Precision } from "./backend.ts";
import { createCpuBackend } from "./cpu/backend.ts";
import { requestGpu } from "./webgpu/device.ts";

/** Which backend to use: `"auto"` picks WebGPU on a hardware GPU, else the CPU. */
export type BackendChoice = "auto" | BackendKind;

/** Options of {@linkcode createBackend}. */
export interface BackendOptions {
  /** `"auto"` (default), `"webgpu"` or `"cpu"`. */
  backend?: BackendChoice;
  /** CPU threads (default: the hardware concurrency). */
  threads?: number;
  /** Weight precision: `"auto"` (f16 where supported), `"f16"` or `"f32"`. */
  precision?: Precision;
  /** WebGPU: use this device instead of requesting one. */
  device?: GPUDevice;
}

/** A backend and why it was chosen. */
export interface ChosenBackend {
  /** The backend. */
  backend: Backend;
  /** Why, for progress and `--verbose` output, e.g. "the WebGPU adapter is software (llvmpipe)". */
  reason: string;
}

const CHOICES: readonly BackendChoice[] = ["auto", "webgpu", "cpu"];
const PRECISIONS: readonly Precision[] = ["auto", "f16", "f32"];

/**
 * Creates the backend asked for, saying why it was chosen.
 *
 * @throws {OptionError} For an unknown choice.
 * @throws {GpuError} When `"webgpu"` is asked for and WebGPU or an adapter is missing.
 * @throws {CpuError} When the CPU backend cannot start.
 *
 * @example
 * ```ts ignore
 * const { backend, reason } = await chooseBackend({ backend: "auto" });
 * console.log(backend.kind, backend.description, reason);
 * ```
 */
export async function chooseBackend(options: BackendOptions = {}): Promise<ChosenBackend> {
  const choice = options.backend ?? "auto";
  checkBackendSource({ backend: choice, precision: options.precision });
  const cpu = async (reason: string): Promise<ChosenBackend> => ({
    backend: await createCpuBackend({ threads: options.threads, precision: options.precision }),
    reason,
  });
  if (choice === "cpu") return await cpu("asked for");
  if (choice === "webgpu") {
    return { backend: await requestGpu(options), reason: "asked for" };
  }
  if (options.device) {
    return { backend: await requestGpu(options), reason: "a WebGPU device was given" };
  }
  let gpu;
  try {
    gpu = await requestGpu(options);
  } catch (error) {
    if (!(error instanceof GpuError)) throw error;
    return await cpu(`no WebGPU adapter (${error.message})`);
  }
  if (gpu.adapter.software) {
    const name = gpu.description;
    gpu.destroy();
    return await cpu(`the WebGPU adapter is software (${name})`);
  }
  return { backend: gpu, reason: "hardware WebGPU adapter" };
}

/**
 * Creates the backend asked for (see {@linkcode chooseBackend}).
 *
 * @example
 * ```ts ignore
 * const backend = await createBackend({ backend: "cpu", threads: 4 });
 * ```
 */
export async function createBackend(options: BackendOptions = {}): Promise<Backend> {
  return (await chooseBackend(options)).backend;
}

/** Where a loader's backend comes from: an instance the caller owns, or a choice. */
export interface BackendSource {
  /** A backend to run on (the caller keeps ownership), or which kind to create. Default `"auto"`. */
  backend?: Backend | BackendChoice;
  /** CPU threads when a CPU backend is created. */
  threads?: number;
  /** Weight precision when a backend is created. */
  precision?: Precision;
}

/** A loader's backend: created (and then owned by the loader) or the caller's. */
export interface ResolvedBackend extends ChosenBackend {
  /** Whether the loader created it (and must destroy it). */
  owned: boolean;
}

/**
 * The backend a loader runs on: the caller's instance, or a new one of the chosen kind.
 *
 * @example
 * ```ts ignore
 * const { backend, owned } = await resolveBackend({ backend: "cpu" });
 * ```
 */
export async function resolveBackend(source: BackendSource): Promise<ResolvedBackend> {
  checkBackendSource(source);
  const given = source.backend;
  if (isBackend(given)) return { backend: given, reason: "given", owned: false };
  const chosen = await chooseBackend({
    backend: given as BackendChoice | undefined,
    threads: source.threads,
    precision: source.precision,
  });
  return { ...chosen, owned: true };
}

/** Whether `value` looks like a {@linkcode Backend} (its kind and the methods loaders call). */
function isBackend(value: unknown): value is Backend {
  if (typeof value !== "object" || value === null) return false;
  const b = value as Partial<Record<keyof Backend, unknown>>;
  return (b.kind === "webgpu" || b.kind === "cpu") && typeof b.createBuffer === "function" &&
    typeof b.createRecorder === "function" && typeof b.read === "function";
}

/**
 * Checks a loader's backend options without creating anything, so that a loader can refuse them
 * before reading its files.
 *
 * @throws {OptionError} A backend that is neither a choice nor a {@linkcode Backend}, or a
 * precision other than `"auto"`, `"f16"` and `"f32"`.
 *
 * @example
 * ```ts
 * import { checkBackendSource } from "./select.ts";
 * checkBackendSource({ backend: "cpu", precision: "f32" }); // passes
 * ```
 */
export function checkBackendSource(source: BackendSource): void {
  const { backend, precision } = source;
  if (precision !== undefined) checkChoice("load weights", "precision", precision, PRECISIONS);
  if (backend === undefined || isBackend(backend)) return;
  if (typeof backend === "string") checkChoice("create a backend", "backend", backend, CHOICES);
  else {
    throw new OptionError(
      `Cannot use backend ${formatValue(backend)}: expected "auto", "webgpu", "cpu" or a ` +
        "Backend (from createBackend, requestGpu or createCpuBackend)",
    );
  }
}
