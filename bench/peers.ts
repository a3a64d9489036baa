/**
 * The peers of `deno task bench`, run as subprocesses when Python and PyTorch are present:
 *
 * - `runGpuPeer`: bench/peers/transformers_peer.py, PyTorch + transformers on CUDA (the same LLaMA
 *   trunk), beside WebGPU on a hardware adapter;
 * - `runCpuPeer`: bench/peers/torch_cpu_peer.py, the VALL-E model in plain PyTorch on the CPU in
 *   its best configuration (f32, OpenBLAS with one thread of its own at load, a preallocated KV
 *   cache), beside the CPU backend; with `"int8"`, the same script and measurements with PyTorch's
 *   dynamic int8 quantization of the linear layers (`pytorch-cpu-int8`).
 *
 * Each returns the peer's own JSON (with its configuration) plus the figures the summary table
 * compares, or `{ unavailable }` with the last line the peer printed on stderr.
 */

import type { ValleBenchSettings } from "./valle.ts";
import { lines } from "./_report.ts";

/** A peer that did not run, and why. */
export interface PeerUnavailable {
  /** The last line of the peer's stderr (e.g. `ModuleNotFoundError: No module named 'torch'`). */
  unavailable: string;
}

/** What a peer measured: its JSON as written, and the figures the side-by-side table shows. */
export interface PeerFigures {
  /** Which peer: `pytorch-cpu`, `pytorch-cpu-int8` or `transformers-cuda`. */
  peer: string;
  /** AR step with a KV cache, median ms. */
  arStepMs?: number;
  /** AR steps per second with a KV cache (frames/s). */
  arStepsPerS?: number;
  /** Upstream's AR loop (no cache, the whole sequence every step), median ms per step. */
  arNoCacheStepMs?: number;
  /** One NAR pass over 1000 tokens, median ms. */
  nar1000Ms?: number;
  /** One NAR-len pass over 1000 tokens, median ms. */
  narLen1000Ms?: number;
  /** Peak resident memory of the peer's process, MiB. */
  peakRssMiB?: number;
  /** The peer's JSON output, as written (configuration, samples, shapes). */
  raw: Record<string, unknown>;
}

/**
 * The first of `candidates` that imports torch (PATH's `python3` may be a pyenv or venv without
 * it while Debian's `python3-torch` lives under /usr/bin/python3), or the first candidate.
 */
export async function pythonWithTorch(candidates: string[]): Promise<string> {
  for (const python of candidates) {
    const probe = await new Deno.Command(python, {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    }).output().catch(() => undefined);
    if (probe?.success) return python;
  }
  return candidates[0];
}

/** Runs a Python peer script with `args`; its JSON from `--out`, or why it did not run. */
async function runPeer(
  python: string,
  script: string,
  args: string[],
  out: string,
  env: Record<string, string> = {},
): Promise<Record<string, unknown> | PeerUnavailable> {
  await Deno.mkdir(out.slice(0, out.lastIndexOf("/")) || ".", { recursive: true });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(python, {
      args: [new URL(`./peers/${script}`, import.meta.url).pathname, ...args, "--out", out],
      env,
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    return { unavailable: String(e) };
  }
  // The peer's progress is shown as it comes; its last line says why, should it fail.
  let last = "";
  for await (const line of child.stderr.pipeThrough(new TextDecoderStream()).pipeThrough(lines())) {
    console.error(line);
    if (line.trim()) last = line.trim();
  }
  const { success } = await child.status;
  if (!success) return { unavailable: last || "failed" };
  return JSON.parse(await Deno.readTextFile(out));
}

/** A figure from nested JSON, rounded to 3 decimals, or undefined. */
function figure(value: unknown): number | undefined {
  return typeof value === "number" ? +value.toFixed(3) : undefined;
}

/** The median pass of `kind` (`nar`, `nar_len`) over `tokens` tokens in the CPU peer's output. */
function passMs(raw: Record<string, unknown>, kind: string, tokens: number): number | undefined {
  const passes = raw[kind] as { tokens: number; pass: { median_ms: number } }[] | undefined;
  return figure(passes?.find((p) => p.tokens === tokens)?.pass.median_ms);
}

/**
 * PyTorch on the CPU (bench/peers/torch_cpu_peer.py): AR with and without a KV cache at the
 * suite's context, NAR and NAR-len passes over 52 and 1000 tokens. `dtype` `"int8"` runs the same
 * measurements on the model with dynamically quantized int8 linear layers (torch's quantized
 * engine: fbgemm where the build has it, else qnnpack; in `raw.config`); a build with neither
 * gives `{ unavailable }` saying which engines it has.
 *
 * @example
 * ```ts ignore
 * const f32 = await runCpuPeer(python, "bench/out", settings);
 * const int8 = await runCpuPeer(python, "bench/out", settings, "int8");
 * ```
 */
export async function runCpuPeer(
  python: string,
  outDir: string,
  settings: ValleBenchSettings,
  dtype: "float32" | "int8" = "float32",
): Promise<PeerFigures | PeerUnavailable> {
  const context = settings.promptFrames + settings.phonemes + 6;
  const int8 = dtype === "int8";
  const raw = await runPeer(
    python,
    "torch_cpu_peer.py",
    ["--ar-context", String(context), "--nar-tokens", "52,1000", "--dtype", dtype],
    `${outDir}/${int8 ? "peer-cpu-int8" : "peer-cpu"}.json`,
    {
      // OpenBLAS reads this when torch loads it: its own threads otherwise fight torch's.
      OPENBLAS_NUM_THREADS: "1",
      // int8's kernels run on torch's threads: OpenMP threads that spin while idle instead of
      // sleeping made an AR step several times slower on a busy machine (onednn: 7x).
      ...(int8 ? { OMP_WAIT_POLICY: "PASSIVE" } : {}),
    },
  );
  if ("unavailable" in raw) return raw as PeerUnavailable;
  const step = raw.kv_cache as { step: { median_ms: number }; steps_per_s: number } | undefined;
  const noCache = raw.no_kv_cache as { step: { median_ms: number } } | undefined;
  return {
    peer: int8 ? "pytorch-cpu-int8" : "pytorch-cpu",
    arStepMs: figure(step?.step.median_ms),
    arStepsPerS: figure(step?.steps_per_s),
    arNoCacheStepMs: figure(noCache?.step.median_ms),
    nar1000Ms: passMs(raw, "nar", 1000),
    narLen1000Ms: passMs(raw, "nar_len", 1000),
    peakRssMiB: figure(raw.peak_rss_mb),
    raw,
  };
}

/**
 * PyTorch + transformers on CUDA (bench/peers/transformers_peer.py): AR steps with and without the
 * KV cache after the suite's prompt.
 */
export async function runGpuPeer(
  python: string,
  outDir: string,
  settings: ValleBenchSettings,
): Promise<PeerFigures | PeerUnavailable> {
  const raw = await runPeer(python, "transformers_peer.py", [
    "--prompt",
    String(settings.promptFrames + settings.phonemes + 5),
    "--steps",
    String(Math.max(...settings.arFrames)),
  ], `${outDir}/peer-cuda.json`);
  if ("unavailable" in raw) return raw as PeerUnavailable;
  const steps = (key: string) => (raw[key] as { steps_per_s?: number } | undefined)?.steps_per_s;
  const kv = steps("kv_cache");
  const noCache = steps("no_kv_cache");
  return {
    peer: "transformers-cuda",
    arStepsPerS: figure(kv),
    arStepMs: kv ? figure(1e3 / kv) : undefined,
    arNoCacheStepMs: noCache ? figure(1e3 / noCache) : undefined,
    raw,
  };
}

/** What the training peer measured for one item kind. */
export interface TrainPeerStep {
  /** `"ar"` or `"nar"`. */
  kind: string;
  /** The NAR item's level (0 for the AR). */
  level: number;
  /** Scored tokens of the step. */
  scoredTokens: number;
  /** Median step (forward, backward, clipping, AdamW), ms. */
  medianMs: number;
  /** Scored tokens per second at the median step. */
  tokensPerSecond: number;
  /** The process's CPU time (user + system, every thread) per timed step, ms. */
  cpuMsPerStep: number;
}

/** The training peer's figures. */
export interface TrainPeerFigures {
  /** `pytorch-cpu-train (upstream vall_e)`. */
  peer: string;
  /** Per item kind. */
  steps: TrainPeerStep[];
  /** Peak resident memory of the peer's process, MiB. */
  peakRssMiB?: number;
  /** The peer's JSON output, as written. */
  raw: Record<string, unknown>;
}

/**
 * Upstream's own LoRA training step on the CPU (bench/peers/torch_train_peer.py: e-c-k-e-r/vall-e
 * imported from the checkout `upstream`, with the training golden's stand-ins), on the full-size
 * model `model`: one 10 s item after a 3 s prompt, trained as an AR item and as a NAR item.
 *
 * @example
 * ```ts ignore
 * const peer = await runTrainPeer(python, "bench/out", "bench/out/vall-e", "bench/out/valle-full.sft", 2);
 * ```
 */
export async function runTrainPeer(
  python: string,
  outDir: string,
  upstream: string,
  model: string,
  steps: number,
): Promise<TrainPeerFigures | PeerUnavailable> {
  const raw = await runPeer(
    python,
    "torch_train_peer.py",
    [upstream, "--model", model, "--steps", String(steps)],
    `${outDir}/peer-cpu-train.json`,
    // OpenBLAS reads this when torch loads it; the peer then sets its threads itself.
    { OPENBLAS_NUM_THREADS: "1" },
  );
  if ("unavailable" in raw) return raw as PeerUnavailable;
  const rows = raw.steps as {
    kind: string;
    level: number;
    scored_tokens: number;
    median_ms: number;
    tokens_per_s: number;
    cpu_ms_per_step: number;
  }[];
  return {
    peer: String(raw.peer),
    steps: rows.map((s) => ({
      kind: s.kind,
      level: s.level,
      scoredTokens: s.scored_tokens,
      medianMs: figure(s.median_ms)!,
      tokensPerSecond: figure(s.tokens_per_s)!,
      cpuMsPerStep: Math.round(s.cpu_ms_per_step),
    })),
    peakRssMiB: figure(raw.peak_rss_mb),
    raw,
  };
}
