/**
 * `deno task bench`: the benchmark suite on whatever WebGPU adapter is present, with full-size
 * random weights in the released layouts (VALL-E 1024 × 16 heads × 12 layers, EnCodec 24 kHz,
 * Vocos), generated once into bench/out/:
 *
 * - GEMV/GEMM GB/s and GFLOP/s at the model's shapes, f16 and f32 weights;
 * - AR level 0: frames/s at 1, 5 and 10 s of output after a 3 s prompt, steady-state step time,
 *   dispatches, submits and readbacks per step, GPU time per kernel (timestamp queries);
 * - NAR levels 1..7 and NAR-len (50 steps, CFG) for a 10 s utterance;
 * - EnCodec encode/decode and Vocos decode real-time factors for 10 s of audio;
 * - end to end: a sentence through `Valle.synthesize` (real-time factor, time to first audio);
 * - peak GPU memory of the library's buffers;
 * - the peer (bench/peers/transformers_peer.py: PyTorch + transformers on CUDA, the same trunk)
 *   when PyTorch with CUDA is there, and our/peer ratios.
 *
 * Writes bench/results/<adapter>.json and .md, after each section (`complete` is false until the
 * end, so a run stopped by a time limit keeps what it measured). On a software adapter (lavapipe,
 * SwiftShader) it runs a reduced suite (`quick`, recorded in the results): those are CPU numbers.
 *
 *   deno task bench [--quick] [--only kernels,valle,codec,e2e,peer] [--out bench/out]
 */

import { parseArgs } from "node:util";
import { requestGpu } from "../src/backends/webgpu/device.ts";
import { readSafetensors, serializeSafetensors } from "../src/io/safetensors.ts";
import { Valle } from "../src/tts/valle.ts";
import { makeRandomValle } from "../tools/make_valle_model.ts";
import { randomEncodec, randomVocos } from "../tools/make_random_codecs.ts";
import { benchCodecs } from "./codec.ts";
import { benchKernels } from "./kernels.ts";
import { adapterSlug, environment, markdownTable } from "./_report.ts";
import { benchValle, type ValleBenchSettings } from "./valle.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string", default: "kernels,valle,codec,e2e,peer" },
    out: { type: "string", default: "bench/out" },
    python: { type: "string", default: "python3" },
  },
});
const only = new Set(values.only!.split(","));
const out = values.out!.replace(/\/$/, "");

const gpu = await requestGpu();
const quick = values.quick || gpu.adapter.software;
const log = (line: string) => console.error(`bench: ${line}`);
log(`${gpu.adapter.description || gpu.adapter.vendor}${quick ? " (quick suite)" : ""}`);

const valleSettings: ValleBenchSettings = quick
  ? {
    arFrames: [4, 8],
    promptFrames: 16,
    phonemes: 20,
    frames: 16,
    narLevels: 1,
    narLenSteps: 1,
    checkEvery: 4,
    profileSteps: 2,
  }
  : {
    arFrames: [75, 375, 750],
    promptFrames: 225,
    phonemes: 40,
    frames: 750,
    narLevels: 7,
    narLenSteps: 50,
    checkEvery: 32,
    profileSteps: 32,
  };
const codecSeconds = quick ? 1 : 10;
const kernelSettings = quick ? { rows: 64, iterations: 5 } : { rows: 750, iterations: 200 };

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

const results: Record<string, unknown> = {
  environment: environment(gpu),
  quick,
  complete: false,
  settings: { valle: valleSettings, codecSeconds, kernels: kernelSettings },
};
const tables: string[] = [];
const slug = adapterSlug(gpu);

/**
 * Writes bench/results/<slug>.json and .md with the sections measured so far (after each one, so
 * that a run stopped by a time limit keeps them; `complete` says whether it reached the end).
 */
async function save(): Promise<string> {
  results.peakGpuBytes = gpu.memory.peak;
  const header = `## ${gpu.adapter.description || gpu.adapter.vendor} — ${
    new Date().toISOString().slice(0, 10)
  }${quick ? (gpu.adapter.software ? " (quick suite: CPU adapter)" : " (quick suite)") : ""}${
    results.complete ? "" : " (incomplete: stopped before the end)"
  }\n\npeak GPU memory: ${(gpu.memory.peak / 2 ** 20).toFixed(0)} MiB`;
  const markdown = [header, ...tables].join("\n\n") + "\n";
  await Deno.mkdir("bench/results", { recursive: true });
  await Deno.writeTextFile(`bench/results/${slug}.json`, JSON.stringify(results, null, 2) + "\n");
  await Deno.writeTextFile(`bench/results/${slug}.md`, markdown);
  return markdown;
}

if (only.has("kernels")) {
  log("kernels");
  const rows = await benchKernels(gpu, kernelSettings.rows, kernelSettings.iterations);
  results.kernels = rows;
  tables.push("### Kernels\n\n" + markdownTable(rows));
  await save();
}

if (only.has("valle")) {
  log("VALL-E");
  const v = await benchValle(gpu, await readSafetensors(files.valle), valleSettings);
  results.valle = v;
  const rows = [
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
    {
      metric: `NAR levels 1..${valleSettings.narLevels}, ${valleSettings.frames} frames`,
      value: v.narMs,
      unit: "ms",
    },
    {
      metric: `NAR-len, ${valleSettings.frames} frames, ${valleSettings.narLenSteps} steps, CFG`,
      value: v.narLenMs,
      unit: "ms",
    },
  ];
  tables.push("### VALL-E\n\n" + markdownTable(rows));
  if (v.arKernels.length) {
    const total = v.arKernels.reduce((n, k) => n + k.totalMs, 0);
    tables.push(
      "### GPU time per AR step, by kernel\n\n" + markdownTable(v.arKernels.map((k) => ({
        kernel: k.label,
        "dispatches/step": k.count,
        "ms/step": k.totalMs,
        share: `${(100 * k.totalMs / total).toFixed(1)}%`,
      }))),
    );
  }
  await save();
}

if (only.has("codec")) {
  log("codecs");
  const rows = await benchCodecs(
    gpu,
    await Deno.readFile(files.encodec),
    await Deno.readFile(files.vocos),
    codecSeconds,
  );
  results.codec = rows;
  tables.push("### Codecs\n\n" + markdownTable(rows));
  await save();
}

if (only.has("e2e")) {
  log("end to end");
  const valle = await Valle.load({
    model: files.valle,
    codec: files.encodec,
    vocoder: files.vocos,
    backend: gpu,
    cache: false,
  });
  const text = "The quick brown fox jumps over the lazy dog.";
  const options = {
    language: "en" as const,
    seed: 1,
    modality: "nar-len" as const,
    steps: quick ? 1 : 50,
    maxSeconds: quick ? 0.25 : 12,
  };
  await valle.synthesize("Hi.", { ...options, steps: 1, maxSeconds: 0.25 }); // warm-up
  const start = performance.now();
  let firstAudioMs = 0;
  let seconds = 0;
  for await (const piece of valle.stream(text, options)) {
    firstAudioMs ||= performance.now() - start;
    seconds += piece.samples.length / piece.sampleRate;
  }
  const ms = performance.now() - start;
  valle.dispose();
  const e2e = {
    text,
    modality: options.modality,
    steps: options.steps,
    audioSeconds: +seconds.toFixed(2),
    ms: Math.round(ms),
    rtf: +(ms / 1000 / seconds).toFixed(4),
    firstAudioMs: Math.round(firstAudioMs),
  };
  results.e2e = e2e;
  tables.push(
    "### End to end (random weights: the audio is noise, the timing is real)\n\n" +
      markdownTable([e2e]),
  );
  await save();
}

if (only.has("peer") && !gpu.adapter.software) {
  log("peer (PyTorch + transformers)");
  const peerOut = `${out}/peer.json`;
  const steps = Math.max(...valleSettings.arFrames);
  const run = await new Deno.Command(values.python!, {
    args: [
      new URL("./peers/transformers_peer.py", import.meta.url).pathname,
      "--prompt",
      String(valleSettings.promptFrames + valleSettings.phonemes + 5),
      "--steps",
      String(steps),
      "--out",
      peerOut,
    ],
    stdout: "inherit",
    stderr: "piped",
  }).output().catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
  if (run.success) {
    const peer = JSON.parse(await Deno.readTextFile(peerOut));
    const ours = (results.valle as { stepFramesPerSecond: number } | undefined)
      ?.stepFramesPerSecond;
    results.peer = {
      ...peer,
      ratios: ours === undefined ? undefined : {
        oursOverPeerKvCache: +(ours / peer.kv_cache.steps_per_s).toFixed(2),
        oursOverPeerNoCache: +(ours / peer.no_kv_cache.steps_per_s).toFixed(2),
      },
    };
    tables.push("### Peer\n\n```json\n" + JSON.stringify(results.peer, null, 2) + "\n```");
  } else {
    results.peer = { unavailable: new TextDecoder().decode(run.stderr).trim().split("\n").at(-1) };
  }
}

results.complete = true;
const markdown = await save();
console.log(markdown);
log(`wrote bench/results/${slug}.json and .md`);
gpu.destroy();
