/**
 * `deno task bench`: the benchmark suite on every backend of this machine, in one run: WebGPU on
 * whatever adapter is present and the CPU backend (WebAssembly), side by side, with full-size
 * random weights in the released layouts (VALL-E 1024 × 16 heads × 12 layers, EnCodec 24 kHz,
 * Vocos), generated once into bench/out/:
 *
 * - the machine: CPU, cores, the memory read bandwidth the CPU kernels reach (a probe);
 * - GEMV/GEMM GB/s and GFLOP/s at the model's shapes, f16 and f32 weights;
 * - AR level 0: frames/s at several output lengths after a 3 s prompt, steady-state step time,
 *   dispatches, submits and readbacks per step, time per kernel (timestamp queries or CPU clock);
 * - NAR levels 1..7 and NAR-len demasking with CFG, the time per kernel of one NAR pass and one
 *   NAR-len step, and the NAR pass's effective GFLOP/s over its linear layers;
 * - both for each weight dtype of --dtypes (default: the file's f16, and on the CPU backend q8 and
 *   q4 too), each its own column; q8/q4 quantized at load as `Valle.load` does;
 * - batches: AR frames/s at several batch sizes, a paragraph batched vs sentence by sentence;
 * - EnCodec encode/decode and Vocos decode real-time factors;
 * - end to end: a paragraph through `Valle.stream` (real-time factor, time to first audio with the
 *   default options beside `batchSize: 1`);
 * - the default sentence on the CPU: `deno task speak "Once again, excellent work."` as a user
 *   runs it (a subprocess, only the weight-file flags), then with `--dtype q8` and `--dtype q4`;
 * - the LoRA training step (`bench/train.ts`): the full-size model, one 10 s item after a 3 s
 *   prompt (an AR item, a NAR item), rank 128: ms/step, tokens/s, peak memory, the state's bytes,
 *   over the f16 base and (CPU) a q8 base, with what q8 costs one step's loss and gradients; beside
 *   upstream's own step in PyTorch (bench/peers/torch_train_peer.py) when a checkout is there;
 * - peak backend memory of the library's buffers;
 * - the peers when PyTorch is there: bench/peers/transformers_peer.py on CUDA (the same trunk) for
 *   a hardware GPU, bench/peers/torch_cpu_peer.py on the CPU in f32 and with dynamic int8 linear
 *   layers; with our/peer ratios.
 *
 * Each backend runs a suite sized for it: `gpu` (a hardware adapter), `cpu` (the CPU backend:
 * shorter AR runs, NAR over 1000 rows, few NAR-len steps) or `quick` (a software adapter such as
 * lavapipe, or --quick: tiny runs, CPU numbers). The suite of each result is recorded.
 *
 * Writes bench/results/<machine>.json and .md after each section (`complete` is false until the
 * end, so a run stopped by a time limit keeps what it measured).
 *
 *   deno task bench [--backends webgpu,cpu] [--threads N] [--quick] [--dtypes f16,q8,q4]
 *     [--only kernels,valle,train,batch,codec,e2e,sentence,peer] [--out bench/out]
 *     [--python P (default: the first of python3, /usr/bin/python3 that imports torch)]
 *     [--upstream DIR (an e-c-k-e-r/vall-e checkout for the training peer; default bench/out/vall-e)]
 */

import { parseArgs } from "node:util";
import type { Backend, BackendKind } from "../src/backends/backend.ts";
import { type CpuBackend, createCpuBackend } from "../src/backends/cpu/backend.ts";
import { Gpu, requestGpu } from "../src/backends/webgpu/device.ts";
import { readSafetensors, serializeSafetensors } from "../src/io/safetensors.ts";
import { VALLE_DTYPES, type ValleDtype } from "../src/models/valle/quant_policy.ts";
import { makeRandomValle } from "../tools/make_valle_model.ts";
import { randomEncodec, randomVocos } from "../tools/make_random_codecs.ts";
import { type BatchBenchFigures, type BatchBenchSettings, benchBatch } from "./batch.ts";
import { benchCodecs, type CodecRow } from "./codec.ts";
import {
  type AttentionRow,
  attentionTraffic,
  benchAttention,
  benchKernels,
  type KernelRow,
} from "./kernels.ts";
import { type GpuPeak, measureGpuPeak } from "./peak.ts";
import { benchEndToEnd, type EndToEndFigures, type EndToEndSettings } from "./e2e.ts";
import {
  type PeerFigures,
  type PeerUnavailable,
  pythonWithTorch,
  runCpuPeer,
  runGpuPeer,
  runTrainPeer,
  type TrainPeerFigures,
} from "./peers.ts";
import {
  benchTrain,
  compareSteps,
  type StepDifference,
  type TrainBenchSettings,
  type TrainFigures,
} from "./train.ts";
import {
  benchDefaultSentence,
  type DefaultSentenceFigures,
  defaultSentenceTable,
  sentenceCell,
} from "./default_sentence.ts";
import { backendFacts, environment, markdownTable, slug } from "./_report.ts";
import {
  benchValle,
  type PassProfile,
  type ValleBenchSettings,
  type ValleFigures,
} from "./valle.ts";

const { values } = parseArgs({
  options: {
    backends: { type: "string", default: "webgpu,cpu" },
    threads: { type: "string" },
    quick: { type: "boolean", default: false },
    only: { type: "string", default: "kernels,valle,train,batch,codec,e2e,sentence,peer" },
    out: { type: "string", default: "bench/out" },
    python: { type: "string" },
    dtypes: { type: "string" },
    upstream: { type: "string" },
  },
});
const only = new Set(values.only!.split(","));
const out = values.out!.replace(/\/$/, "");
const kinds = values.backends!.split(",") as BackendKind[];
const threads = values.threads === undefined ? undefined : Number(values.threads);
const log = (line: string) => console.error(`bench: ${line}`);
const dtypes = values.dtypes?.split(",") as ValleDtype[] | undefined;
for (const dtype of dtypes ?? []) {
  if (!VALLE_DTYPES.includes(dtype)) {
    console.error(`bench: --dtypes ${values.dtypes}: "${dtype}" is not one of ${VALLE_DTYPES}`);
    Deno.exit(2);
  }
}

/** The suites: what each kind of backend can run in minutes. */
type Suite = "gpu" | "cpu" | "quick";
const VALLE: Record<Suite, ValleBenchSettings> = {
  gpu: {
    arFrames: [75, 375, 750],
    promptFrames: 225,
    phonemes: 40,
    frames: 750,
    narLevels: 7,
    narLenSteps: 50,
    checkEvery: 32,
    profileSteps: 32,
  },
  // 1 and 5 s of AR; NAR passes over 1000 rows (40 phonemes + 225 prompt + 729 frames + the
  // sequence's 6 markers: language, task, separators), the peer's length.
  cpu: {
    arFrames: [75, 375],
    promptFrames: 225,
    phonemes: 40,
    frames: 729,
    narLevels: 7,
    narLenSteps: 2,
    checkEvery: 8,
    profileSteps: 8,
  },
  quick: {
    arFrames: [4, 8],
    promptFrames: 16,
    phonemes: 20,
    frames: 16,
    narLevels: 1,
    narLenSteps: 1,
    checkEvery: 4,
    profileSteps: 2,
  },
};
/**
 * Batches: AR throughput over 32 steps; 8 sentences of a second each (2 steps on lavapipe). The
 * CPU's prompt is short: its prefills and NAR passes are compute-bound and would take minutes.
 */
const BATCH: Record<Suite, BatchBenchSettings> = {
  gpu: {
    batchSizes: [1, 4, 8, 16],
    steps: 32,
    promptFrames: 225,
    phonemes: 40,
    sentences: 8,
    sentenceFrames: 75,
  },
  cpu: {
    batchSizes: [1, 4, 8, 16],
    steps: 32,
    promptFrames: 25,
    phonemes: 40,
    sentences: 8,
    sentenceFrames: 75,
  },
  quick: {
    batchSizes: [1, 4],
    steps: 4,
    promptFrames: 8,
    phonemes: 12,
    sentences: 2,
    sentenceFrames: 2,
  },
};
const CODEC_SECONDS: Record<Suite, number> = { gpu: 10, cpu: 10, quick: 1 };
/** The weight dtypes of the VALL-E section (undefined: as the file stores them, f16). */
const SUITE_DTYPES: Record<Suite, (ValleDtype | undefined)[]> = {
  gpu: [undefined],
  cpu: [undefined, "q8", "q4"],
  quick: [undefined],
};
/** Queries and keys of the attention timings: a long NAR pass; shorter where it costs minutes. */
const ATTENTION_ROWS: Record<Suite, number> = { gpu: 1000, cpu: 1000, quick: 128 };
const KERNELS: Record<Suite, { rows: number; iterations: number }> = {
  gpu: { rows: 750, iterations: 200 },
  cpu: { rows: 256, iterations: 20 },
  quick: { rows: 64, iterations: 5 },
};
/**
 * End to end: a paragraph of 4 sentences (2 on a software adapter, where a piece takes minutes);
 * NAR-len on GPUs, AR + NAR where NAR-len's 50 steps cost minutes, and 3 s pieces on the CPU
 * (random weights rarely stop before `maxSeconds`, and its NAR passes are compute-bound).
 */
const E2E: Record<Suite, EndToEndSettings> = {
  gpu: { modality: "nar-len", steps: 50, maxSeconds: 12, sentences: 4 },
  cpu: { modality: "ar+nar", steps: 50, maxSeconds: 3, sentences: 4 },
  quick: { modality: "nar-len", steps: 1, maxSeconds: 0.25, sentences: 2 },
};

/**
 * The training step: one 10 s item after a 3 s prompt with ~150 phonemes, rank 128 / alpha 128
 * (upstream's default), a warm-up and 2 timed steps per item kind; a few rows on a software adapter.
 */
const TRAIN: Record<Suite, TrainBenchSettings> = {
  gpu: {
    promptFrames: 225,
    frames: 750,
    phonemes: 150,
    narLevel: 1,
    rank: 128,
    alpha: 128,
    timedSteps: 3,
  },
  cpu: {
    promptFrames: 225,
    frames: 750,
    phonemes: 150,
    narLevel: 1,
    rank: 128,
    alpha: 128,
    timedSteps: 2,
  },
  quick: {
    promptFrames: 8,
    frames: 16,
    phonemes: 12,
    narLevel: 1,
    rank: 8,
    alpha: 8,
    timedSteps: 1,
  },
};
/** The training step's base weights: the file's f16, and on the CPU q8 too. */
const TRAIN_DTYPES: Record<Suite, (ValleDtype | undefined)[]> = {
  gpu: [undefined],
  cpu: [undefined, "q8"],
  quick: [undefined],
};

/** The default sentence's runs (`deno task speak`, CPU): each takes a minute or more. */
const SENTENCE_DTYPES: Record<Suite, string[]> = {
  gpu: [],
  cpu: ["default", "f16", "q4"],
  quick: ["default"],
};

/** The column names of the peers in the side-by-side table. */
const PEER_COLUMNS: Record<string, string> = {
  cpu: "PyTorch CPU peer",
  "cpu-int8": "PyTorch CPU peer, int8 (dynamic)",
  cuda: "PyTorch + transformers CUDA peer",
};
/** The peers each kind of backend is compared with in the ratios under the table. */
const PEERS_OF: Record<BackendKind, string[]> = { cpu: ["cpu", "cpu-int8"], webgpu: ["cuda"] };

/** The random full-size weights, written on first use. */
async function weightFile(name: string, make: () => Uint8Array): Promise<string> {
  const path = `${out}/${name}`;
  if (!await Deno.stat(path).then(() => true, () => false)) {
    log(`writing ${path}`);
    await Deno.mkdir(out, { recursive: true });
    await Deno.writeFile(path, make());
  }
  return path;
}
let encodecTensors: ReturnType<typeof randomEncodec> | undefined;
const encodec = () => (encodecTensors ??= randomEncodec());
const files = {
  valle: await weightFile(
    "valle-full.sft",
    () => makeRandomValle({ dim: 1024, heads: 16, layers: 12 }),
  ),
  encodec: await weightFile("encodec.safetensors", () => serializeSafetensors(encodec())),
  vocos: await weightFile("vocos.safetensors", () => serializeSafetensors(randomVocos(encodec()))),
};

/** What one backend measured. */
interface BackendResults {
  backend: Record<string, unknown>;
  suite: Suite;
  kernels?: KernelRow[];
  /** Attention timings (full pass, decode step). */
  attention?: AttentionRow[];
  /** WebGPU: the measured arithmetic and read peaks. */
  peak?: GpuPeak;
  /** VALL-E, with the weights of the column (float, or q8/q4 in a column of their own). */
  valle?: ValleFigures;
  /** The training step per base dtype (gradients stripped). */
  train?: TrainFigures[];
  /** What the first quantized base costs a step against the float one. */
  trainAccuracy?: StepDifference[];
  batch?: BatchBenchFigures;
  codec?: CodecRow[];
  e2e?: EndToEndFigures;
  sentence?: DefaultSentenceFigures;
  peakBytes?: number;
  unavailable?: string;
}

const results: {
  environment: Record<string, unknown>;
  readBandwidthGBs?: number;
  backends: Record<string, BackendResults>;
  peers: Record<string, PeerFigures | { unavailable: string }>;
  /** Upstream's training step in PyTorch on the CPU. */
  trainPeer?: TrainPeerFigures | PeerUnavailable;
  complete: boolean;
} = { environment: environment(), backends: {}, peers: {}, complete: false };
const sections: string[] = [];
let machine = "";

/** Writes bench/results/<machine>.json and .md with what was measured so far. */
async function save(): Promise<string> {
  const title = `## ${results.environment.cpu} (${results.environment.cores} cores) — ${
    new Date().toISOString().slice(0, 10)
  }, commit ${results.environment.commit ?? "?"}${
    results.complete ? "" : " (incomplete: stopped before the end)"
  }`;
  const markdown = [title, summary(), trainSummary(), ...sections].filter(Boolean).join("\n\n") +
    "\n";
  await Deno.mkdir("bench/results", { recursive: true });
  await Deno.writeTextFile(
    `bench/results/${machine}.json`,
    JSON.stringify(results, null, 2) + "\n",
  );
  await Deno.writeTextFile(`bench/results/${machine}.md`, markdown);
  return markdown;
}

/** Creates a backend of `kind`, or says why there is none. */
async function open(kind: BackendKind): Promise<Backend | string> {
  try {
    return kind === "webgpu" ? await requestGpu() : await createCpuBackend({ threads });
  } catch (e) {
    return (e as Error).message;
  }
}

/** The column name of a backend in the tables. */
function column(b: BackendResults): string {
  const description = String(b.backend.description);
  return b.backend.kind === "webgpu" ? `WebGPU: ${description}` : description;
}

for (const kind of kinds) {
  const backend = await open(kind);
  if (typeof backend === "string") {
    log(`${kind}: unavailable (${backend})`);
    results.backends[kind] = { backend: { kind }, suite: "quick", unavailable: backend };
    continue;
  }
  const software = backend instanceof Gpu && backend.adapter.software;
  const suite: Suite = values.quick || software ? "quick" : kind === "cpu" ? "cpu" : "gpu";
  machine ||= kind === "webgpu"
    ? slug(backend.description)
    : `cpu-${slug(String(results.environment.cpu))}`;
  const r: BackendResults = { backend: backendFacts(backend), suite };
  results.backends[kind] = r;
  log(`${backend.description} (${suite} suite)`);
  if (kind === "cpu") {
    results.readBandwidthGBs = +((await (backend as CpuBackend).measureReadBandwidth()) / 1e9)
      .toFixed(1);
  }
  const heading = `### ${column(r)} (${suite} suite)`;

  if (only.has("kernels")) {
    log("kernels");
    const { rows, iterations } = KERNELS[suite];
    r.kernels = await benchKernels(backend, rows, iterations);
    if (backend instanceof Gpu && backend.features.integerDot) {
      // The quantized GEMMs dequantizing into the tile too, on a device that refuses int8.
      const refused = await requestGpu({ integerDot: false });
      r.kernels.push(...await benchKernels(refused, rows, iterations, ["q8_0", "q4_k"], [rows]));
      refused.destroy();
    }
    r.attention = await benchAttention(backend, ATTENTION_ROWS[suite], iterations);
    if (backend instanceof Gpu) {
      // Kernels as shares of what the device reaches at all: GEMMs and attention against the
      // multiply-add probe, GEMVs against the read probe.
      const peak = r.peak = await measureGpuPeak(backend, suite === "gpu" ? 1 : 1 / 64);
      for (const row of r.kernels) {
        row["% of peak"] = row.kernel === "gemv"
          ? `${Math.round(100 * row["GB/s"] / peak.readGBs)}% (read)`
          : `${Math.round(100 * row["GFLOP/s"] / peak.fmaGflops)}% (FMA)`;
      }
      for (const row of r.attention) {
        row["% of peak"] = `${Math.round(100 * row["GFLOP/s"] / peak.fmaGflops)}% (FMA)`;
      }
      sections.push(`${heading}: measured peaks\n\n${markdownTable([{ ...peak }])}`);
    }
    sections.push(`${heading}: kernels\n\n${markdownTable(r.kernels)}`);
    sections.push(`${heading}: attention\n\n${markdownTable(r.attention)}`);
    const traffic = attentionTraffic(rows);
    sections.push(`${heading}: attention bytes per pass\n\n${markdownTable(traffic)}`);
    await save();
  }
  // The VALL-E section per weight dtype: float in the backend's column, q8 and q4 each in a column
  // of their own.
  for (const dtype of only.has("valle") ? dtypes ?? SUITE_DTYPES[suite] : []) {
    if (dtype === "f16" && !backend.supportsF16) {
      log(`VALL-E f16: skipped, ${backend.description} has no f16 weights`);
      continue;
    }
    log(`VALL-E${dtype ? ` (${dtype})` : ""}`);
    const settings = VALLE[suite];
    const quantized = dtype === "q8" || dtype === "q4";
    // Each dtype's peak memory its own: the peak restarts from what is held now, then the
    // backend's overall peak is put back.
    const peak = backend.memory.peak;
    backend.memory.peak = backend.memory.current;
    const v = await benchValle(backend, await readSafetensors(files.valle), settings, dtype);
    const dtypePeak = backend.memory.peak;
    backend.memory.peak = Math.max(peak, dtypePeak);
    const description = `${backend.description}${quantized ? `, ${dtype} weights` : ""}`;
    const run: BackendResults = quantized
      ? { backend: { ...r.backend, description }, suite, peakBytes: dtypePeak }
      : r;
    if (quantized) results.backends[`${kind} ${dtype}`] = run;
    run.valle = v;
    const title = `### ${column(run)} (${suite} suite)`;
    sections.push(`${title}: VALL-E\n\n${valleTable(v, settings)}`);
    if (v.arKernels.length) {
      const total = v.arKernels.reduce((n, k) => n + k.totalMs, 0);
      sections.push(
        `${title}: time per AR step, by kernel\n\n` + markdownTable(v.arKernels.map((k) => ({
          kernel: k.label,
          "dispatches/step": k.count,
          "ms/step": k.totalMs,
          share: `${(100 * k.totalMs / total).toFixed(1)}%`,
        }))),
      );
    }
    for (
      const [what, profile] of [["NAR pass", v.narPass], ["NAR-len step", v.narLenStep]] as const
    ) {
      if (profile) {
        sections.push(`${title}: time per ${what}, by kernel\n\n${profileTable(profile)}`);
      }
    }
    await save();
  }
  if (only.has("train")) {
    const floatGrads: TrainFigures[] = [];
    for (const dtype of TRAIN_DTYPES[suite]) {
      log(`training step${dtype ? ` (${dtype} base)` : ""}`);
      const peak = backend.memory.peak;
      backend.memory.peak = backend.memory.current;
      const t = await benchTrain(
        backend,
        await readSafetensors(files.valle),
        TRAIN[suite],
        dtype,
        log,
      );
      backend.memory.peak = Math.max(peak, t.peakBytes);
      if (dtype === undefined) floatGrads.push(t);
      else if (floatGrads.length) r.trainAccuracy ??= compareSteps(floatGrads[0], t);
      (r.train ??= []).push({ ...t, grads: undefined, layout: undefined });
      const title = `${heading}: training step, ${t.weights} base`;
      sections.push(`${title}\n\n${trainTable(t, TRAIN[suite])}`);
      const profiled = t.steps.find((s) => s.kernels.length);
      if (profiled) {
        sections.push(
          `${title}: time per kernel of one ${profiled.kind} step (forward + backward, ` +
            `profiled warm-up)\n\n${
              profileTable({
                ms: profiled.profiledMs,
                kernelsMs: +profiled.kernels.reduce((n, k) => n + k.totalMs, 0).toFixed(1),
                kernels: profiled.kernels,
              })
            }`,
        );
      }
      await save();
    }
    if (r.trainAccuracy) {
      sections.push(
        `${heading}: what a q8 base costs one training step (the same LoRA and item; ` +
          `relative L2 against the f16 base)\n\n${
            markdownTable(r.trainAccuracy.map((d) => ({ ...d, loss: d.loss.join(" vs ") })))
          }`,
      );
      await save();
    }
  }
  if (only.has("batch")) {
    log("batches");
    const b = await benchBatch(backend, await readSafetensors(files.valle), BATCH[suite]);
    r.batch = b;
    sections.push(`${heading}: batches\n\n${batchTable(b, BATCH[suite])}`);
    await save();
  }
  if (only.has("codec")) {
    log("codecs");
    r.codec = await benchCodecs(
      backend,
      await Deno.readFile(files.encodec),
      await Deno.readFile(files.vocos),
      CODEC_SECONDS[suite],
    );
    sections.push(`${heading}: codecs\n\n${markdownTable(r.codec)}`);
    await save();
  }
  if (only.has("e2e")) {
    log("end to end");
    r.e2e = await benchEndToEnd(backend, files, E2E[suite]);
    sections.push(
      `${heading}: end to end (random weights: the audio is noise, the timing is real)\n\n` +
        endToEndTable(r.e2e),
    );
    await save();
  }
  r.peakBytes = backend.memory.peak;
  backend.destroy();
  if (kind === "cpu" && only.has("sentence")) {
    log("default sentence: deno task speak on the CPU");
    r.sentence = await benchDefaultSentence(files, { dtypes: SENTENCE_DTYPES[suite] });
    sections.push(`${heading}: default sentence\n\n${defaultSentenceTable(r.sentence)}`);
    await save();
  }
}
machine ||= "no-backend";

if (only.has("train") && results.backends.cpu?.train && results.backends.cpu.suite === "cpu") {
  const upstream = values.upstream ?? `${out}/vall-e`;
  if (await Deno.stat(`${upstream}/vall_e`).then(() => true, () => false)) {
    log("peer: upstream's training step in PyTorch on the CPU");
    const python = await pythonWithTorch(
      values.python ? [values.python] : ["python3", "/usr/bin/python3"],
    );
    results.trainPeer = await runTrainPeer(
      python,
      out,
      upstream,
      files.valle,
      TRAIN.cpu.timedSteps,
    );
  } else {
    results.trainPeer = {
      unavailable:
        `no e-c-k-e-r/vall-e checkout at ${upstream} (--upstream DIR; see bench/README.md)`,
    };
  }
  await save();
}

if (only.has("peer")) {
  const python = await pythonWithTorch(
    values.python ? [values.python] : ["python3", "/usr/bin/python3"],
  );
  const gpuRun = results.backends.webgpu;
  if (gpuRun?.suite === "gpu") {
    log("peer: PyTorch + transformers on CUDA");
    results.peers.cuda = await runGpuPeer(python, out, VALLE.gpu);
  }
  if (results.backends.cpu && !results.backends.cpu.unavailable) {
    log("peer: PyTorch on the CPU");
    results.peers.cpu = await runCpuPeer(python, out, VALLE.cpu);
    await save();
    log("peer: PyTorch on the CPU, int8 linear layers (dynamic quantization)");
    results.peers["cpu-int8"] = await runCpuPeer(python, out, VALLE.cpu, "int8");
  }
  for (const [name, peer] of Object.entries(results.peers)) {
    const shown = "unavailable" in peer
      ? peer
      : { ...peer, raw: undefined, config: peer.raw.config };
    sections.push(`### Peer: ${name}\n\n\`\`\`json\n${JSON.stringify(shown, null, 2)}\n\`\`\``);
  }
}

results.complete = true;
const markdown = await save();
console.log(markdown);
log(`wrote bench/results/${machine}.json and .md`);

/** The VALL-E figures of one backend as a table. */
function valleTable(v: ValleFigures, s: ValleBenchSettings): string {
  return markdownTable([
    { metric: "AR prefill + first step", value: v.prefillMs, unit: "ms" },
    { metric: "AR step (steady state)", value: v.stepMs, unit: "ms" },
    { metric: "AR throughput (steady state)", value: v.stepFramesPerSecond, unit: "frames/s" },
    ...v.ar.map((a) => ({
      metric: `AR ${a.frames} frames (${(a.frames / 75).toFixed(2)} s) incl. prefill`,
      value: a.framesPerSecond,
      unit: "frames/s",
    })),
    { metric: "dispatches per AR step", value: v.dispatchesPerStep, unit: "" },
    { metric: "submits per AR step", value: v.submitsPerStep, unit: "" },
    { metric: "readbacks per AR step", value: v.readbacksPerStep, unit: "" },
    { metric: `NAR level (one pass, ${v.narRows} rows)`, value: v.narLevelMs, unit: "ms" },
    { metric: "NAR pass, linear layers' effective rate", value: v.narGflops, unit: "GFLOP/s" },
    { metric: `NAR levels 1..${s.narLevels}, ${s.frames} frames`, value: v.narMs, unit: "ms" },
    {
      metric: `NAR-len step (${v.narRows} rows, CFG: 2 passes)`,
      value: v.narLenStepMs,
      unit: "ms",
    },
    {
      metric: `NAR-len, ${s.frames} frames, ${s.narLenSteps} steps, CFG`,
      value: v.narLenMs,
      unit: "ms",
    },
    {
      metric: "peak memory (model + run state)",
      value: Math.round(v.peakBytes / 2 ** 20),
      unit: "MiB",
    },
  ]);
}

/** One dtype's training figures as a table: a row per item kind. */
function trainTable(t: TrainFigures, s: TrainBenchSettings): string {
  const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
  return `One item: ${s.phonemes} phonemes, ${s.promptFrames} prompt frames, ${s.frames} frames; ` +
    `LoRA rank ${t.lora.rank}, alpha ${t.lora.alpha} (${t.lora.parameters} parameters); ` +
    `base weights ${mib(t.weightBytes)} MiB, training state ${mib(t.stateBytes)} MiB, ` +
    `peak backend memory ${mib(t.peakBytes)} MiB.\n\n` +
    markdownTable(t.steps.map((step) => ({
      item: step.kind === "ar" ? "AR (level 0)" : `NAR level ${step.level}`,
      rows: step.rows,
      "scored tokens": step.scoredTokens,
      "ms/step (median)": step.medianStepMs,
      "CPU ms/step": step.cpuMsPerStep,
      "timed steps, ms": step.stepMs.join(", "),
      "tokens/s": step.tokensPerSecond,
      "warm-up loss": step.loss,
    })));
}

/** The training step of every backend and base beside upstream's in PyTorch, with ratios. */
function trainSummary(): string {
  const rows: Record<string, string | number>[] = [];
  const peer = results.trainPeer && !("unavailable" in results.trainPeer)
    ? results.trainPeer
    : undefined;
  const lines: string[] = [];
  for (const b of Object.values(results.backends)) {
    for (const t of b.train ?? []) {
      for (const step of t.steps) {
        rows.push({
          run: `${column(b)} (${b.suite}), ${t.weights} base`,
          item: step.kind === "ar" ? "AR" : `NAR level ${step.level}`,
          "ms/step": step.medianStepMs,
          "CPU ms/step": step.cpuMsPerStep,
          "tokens/s": step.tokensPerSecond,
          "peak memory, MiB": Math.round(t.peakBytes / 2 ** 20),
          "training state, MiB": Math.round(t.stateBytes / 2 ** 20),
        });
        const theirs = peer?.steps.find((p) => p.kind === step.kind);
        if (theirs && b.backend.kind === "cpu" && b.suite === "cpu") {
          lines.push(
            `- ${column(b)}, ${t.weights} base, ${step.kind} step: ${
              faster(theirs.medianMs / step.medianStepMs)
            } ${peer!.peer} in wall time, ${
              faster(theirs.cpuMsPerStep / step.cpuMsPerStep)
            } in CPU time`,
          );
        }
      }
    }
  }
  for (const step of peer?.steps ?? []) {
    rows.push({
      run: `${peer!.peer}, f32 (process RSS)`,
      item: step.kind === "ar" ? "AR" : `NAR level ${step.level}`,
      "ms/step": step.medianMs,
      "CPU ms/step": step.cpuMsPerStep,
      "tokens/s": step.tokensPerSecond,
      "peak memory, MiB": Math.round(peer!.peakRssMiB ?? 0),
      "training state, MiB": "-",
    });
  }
  if (rows.length === 0) return "";
  const missing = results.trainPeer && "unavailable" in results.trainPeer
    ? `\n\nTraining peer unavailable: ${results.trainPeer.unavailable}`
    : "";
  return `### Training step, side by side (cpu and gpu suites: one 10 s item after a 3 s prompt, LoRA rank 128)\n\n${
    markdownTable(rows)
  }${lines.length ? `\n\n${lines.join("\n")}` : ""}${missing}`;
}

/** Where one profiled run's time went: its kernels, then the time between dispatches. */
function profileTable(p: PassProfile): string {
  const row = (kernel: string, dispatches: number | string, ms: number) => ({
    kernel,
    dispatches,
    ms: +ms.toFixed(1),
    share: `${(100 * ms / p.ms).toFixed(1)}%`,
  });
  return markdownTable([
    ...p.kernels.map((k) => row(k.label, k.count, k.totalMs)),
    row("(between dispatches)", "-", Math.max(0, p.ms - p.kernelsMs)),
    row("(wall time of the run)", "-", p.ms),
  ]);
}

/** The batch figures of one backend as a table. */
function batchTable(b: BatchBenchFigures, s: BatchBenchSettings): string {
  const { paragraph } = b;
  return markdownTable([
    ...b.ar.map((a) => ({
      metric: `AR, batch ${a.batch}: step of all rows (${s.promptFrames}-frame prompt)`,
      value: +a.stepMs.toFixed(2),
      unit: "ms",
      "frames/s (all rows)": +a.framesPerSecond.toFixed(1),
    })),
    {
      metric: `${paragraph.sentences} sentences (${s.sentenceFrames} frames each, AR + NAR), ` +
        "one by one",
      value: Math.round(paragraph.oneByOneMs),
      unit: "ms",
      "frames/s (all rows)": "-",
    },
    {
      metric: `the same ${paragraph.sentences} sentences as one batch`,
      value: Math.round(paragraph.batchedMs),
      unit: "ms",
      "frames/s (all rows)": `${paragraph.speedup.toFixed(2)}× faster`,
    },
  ]);
}

/** The end-to-end streams of one backend as a table, the paragraph above it. */
function endToEndTable(e: EndToEndFigures): string {
  const rows = [e.defaultBatch, e.batchOne].map((run) => ({
    modality: e.modality,
    steps: e.steps,
    ...run,
  }));
  return `"${e.text}"\n\n${markdownTable(rows)}`;
}

/** The side-by-side table: one row per figure, one column per backend and peer. */
function summary(): string {
  const runs = Object.values(results.backends).filter((b) => !b.unavailable);
  if (runs.length === 0) return "";
  const peers = Object.entries(results.peers).filter((e): e is [string, PeerFigures] =>
    !("unavailable" in e[1])
  );
  const rows: Record<string, string | number>[] = [];
  const add = (
    metric: string,
    get: (b: BackendResults) => number | string | undefined,
    peer?: (p: PeerFigures) => number | undefined,
  ) => {
    const row: Record<string, string | number> = { metric };
    for (const b of runs) row[`${column(b)} (${b.suite})`] = get(b) ?? "-";
    for (const [name, p] of peers) row[PEER_COLUMNS[name] ?? name] = peer?.(p) ?? "-";
    rows.push(row);
  };
  const gemv = (b: BackendResults, weights = "f16") =>
    b.kernels?.find((k) =>
      k.kernel === "gemv" && k.weights === weights && k["M×N×K"] === "1×4096×1024"
    )
      ?.["GB/s"] as number | undefined;
  add("VALL-E load (with quantizing: q8, q4), ms", (b) => b.valle?.loadMs);
  add("VALL-E kernel compile at load (warm), ms", (b) => b.valle?.compileMs);
  add(
    "VALL-E load: peak JS memory added (heap + external), MB",
    (b) => b.valle && +(b.valle.loadPeakJsBytes / 1e6).toFixed(1),
  );
  add("AR step (steady state), ms", (b) => b.valle?.stepMs, (p) => p.arStepMs);
  add("AR frames/s (steady state)", (b) => b.valle?.stepFramesPerSecond, (p) => p.arStepsPerS);
  add("AR step without KV cache (upstream's loop), ms", () => undefined, (p) => p.arNoCacheStepMs);
  add("GEMV 1×4096×1024 f16, GB/s", (b) => gemv(b));
  for (const weights of ["q8_0", "q4_k"]) {
    add(`GEMV 1×4096×1024 ${weights}, GB/s (share of the probe)`, (b) => {
      const gbs = gemv(b, weights);
      const probe = b.backend.kind === "cpu" ? results.readBandwidthGBs : undefined;
      return gbs && probe ? `${gbs} (${Math.round(100 * gbs / probe)}%)` : undefined;
    });
  }
  add(
    "memory read bandwidth (CPU probe), GB/s",
    (b) => b.backend.kind === "cpu" ? results.readBandwidthGBs : undefined,
  );
  add("NAR level, one pass (rows in the suite), ms", (b) => b.valle?.narLevelMs);
  add(
    "NAR pass over 1000 rows, ms",
    (b) => b.valle && nearThousand(b.valle.narRows) ? b.valle.narLevelMs : undefined,
    (p) => p.nar1000Ms,
  );
  add("NAR-len step (CFG), ms", (b) => b.valle?.narLenStepMs);
  const tenths = (x: number | undefined) => x === undefined ? undefined : +x.toFixed(1);
  for (const size of [1, 4, 16]) {
    add(
      `AR frames/s at batch ${size} (all rows)`,
      (b) => tenths(b.batch?.ar.find((a) => a.batch === size)?.framesPerSecond),
    );
  }
  add(
    "paragraph batched vs one by one, ×",
    (b) => b.batch && +b.batch.paragraph.speedup.toFixed(2),
  );
  for (const stage of ["EnCodec encode", "EnCodec decode", "Vocos decode"]) {
    add(`${stage} RTF`, (b) => b.codec?.find((c) => c.stage.startsWith(stage))?.rtf as number);
  }
  add("end to end RTF (stream, default options)", (b) => b.e2e?.defaultBatch.rtf);
  add("first audio (stream, default options), ms", (b) => b.e2e?.defaultBatch.firstAudioMs);
  add("first audio (stream, batchSize 1), ms", (b) => b.e2e?.batchOne.firstAudioMs);
  for (const dtype of new Set(runs.flatMap((b) => b.sentence?.runs.map((r) => r.dtype) ?? []))) {
    add(
      `default sentence, \`deno task speak\`${dtype === "default" ? "" : ` --dtype ${dtype}`}, s`,
      (b) => sentenceCell(b.sentence, dtype),
    );
  }
  add(
    "peak memory, MiB (peers: process RSS)",
    (b) => b.peakBytes && Math.round(b.peakBytes / 2 ** 20),
    (p) => p.peakRssMiB,
  );
  return `### Side by side (the suite of each column in parentheses)\n\n${markdownTable(rows)}${
    ratios(runs, peers)
  }`;
}

/** "ours is N× the peer" lines: each backend against the peer of its kind. */
function ratios(runs: BackendResults[], peers: [string, PeerFigures][]): string {
  const lines: string[] = [];
  for (const b of runs) {
    for (const [name, peer] of peers) {
      if (PEERS_OF[b.backend.kind as BackendKind].includes(name) && b.valle) {
        peerRatios(b, b.valle, peer, lines);
      }
    }
  }
  return lines.length ? `\n\n${lines.join("\n")}` : "";
}

/** The ratio lines of one backend against one peer. */
function peerRatios(b: BackendResults, valle: ValleFigures, peer: PeerFigures, lines: string[]) {
  const times = (ours: number | undefined, theirs: number | undefined, what: string) => {
    if (ours && theirs) {
      lines.push(`- ${column(b)}: ${what} ${faster(theirs / ours)} ${peer.peer}`);
    }
  };
  times(valle.stepMs, peer.arStepMs, "AR step with KV cache");
  times(valle.stepMs, peer.arNoCacheStepMs, "AR step against upstream's no-cache loop");
  if (nearThousand(valle.narRows)) {
    times(valle.narLevelMs, peer.nar1000Ms, "NAR pass over 1000 rows");
  }
}

/** "N× faster than" or "N× slower than" for the ratio of the peer's time to ours. */
function faster(ratio: number): string {
  return ratio >= 1 ? `${ratio.toFixed(2)}× faster than` : `${(1 / ratio).toFixed(2)}× slower than`;
}

/** Whether a NAR pass is comparable with the peer's 1000-token one (within 1%). */
function nearThousand(rows: number): boolean {
  return Math.abs(rows - 1000) <= 10;
}
