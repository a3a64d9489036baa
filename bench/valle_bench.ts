/**
 * VALL-E end-to-end timings on one model file (write a random full-size one with
 * `deno run -A tools/make_valle_model.ts --out /tmp/valle-full.sft --size full`):
 *
 * - AR: prefill ms, then frames/s of single-token steps with the KV cache, dispatches and
 *   readbacks per step (the stop token is ignored so every run has the same length);
 * - NAR: ms for one RVQ level of an utterance of `--frames` frames;
 * - NAR-len: ms for the demasking of `--frames` frames in `--narlen-steps` steps (CFG on, two
 *   passes per step).
 *
 * Prints a table and writes bench/results/valle-<adapter>.json.
 *
 *   deno run -A bench/valle_bench.ts --model /tmp/valle-full.sft [--steps 128] [--frames 750]
 *     [--prompt 225] [--phonemes 40] [--narlen-steps 25] [--check-every 32] [--precision auto]
 *
 * Full size on lavapipe (a CPU) takes seconds per AR step: use e.g. --steps 4 --frames 16
 * --prompt 16 --narlen-steps 2 there.
 */

import { parseArgs } from "node:util";
import { requestGpu } from "../src/gpu/device.ts";
import { Recorder } from "../src/gpu/recorder.ts";
import { readSafetensors } from "../src/io/safetensors.ts";
import { decode } from "../src/models/valle/ar.ts";
import { assembleSequence } from "../src/models/valle/inputs.ts";
import { runNar } from "../src/models/valle/nar.ts";
import { runNarLen } from "../src/models/valle/nar_len.ts";
import type { ValleContext } from "../src/models/valle/pass.ts";
import { resolveSamplerOptions, STREAM } from "../src/models/valle/sampler.ts";
import { createRunState } from "../src/models/valle/state.ts";
import { uploadValleWeights } from "../src/models/valle/weights.ts";
import { adapterSlug, environment, markdownTable } from "./_report.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    steps: { type: "string", default: "128" },
    frames: { type: "string", default: "750" },
    prompt: { type: "string", default: "225" },
    phonemes: { type: "string", default: "40" },
    "narlen-steps": { type: "string", default: "25" },
    "check-every": { type: "string", default: "32" },
    precision: { type: "string", default: "auto" },
  },
});
if (!values.model) {
  console.error("usage: deno run -A bench/valle_bench.ts --model <file.sft> [options]");
  Deno.exit(2);
}
const steps = Number(values.steps);
const frames = Number(values.frames);
const promptFrames = Number(values.prompt);
const nPhonemes = Number(values.phonemes);
const narLenSteps = Number(values["narlen-steps"]);
const checkEvery = Number(values["check-every"]);

const gpu = await requestGpu({ precision: values.precision as "auto" | "f16" | "f32" });
const loadStart = performance.now();
const st = await readSafetensors(values.model);
const { config, weights } = uploadValleWeights(gpu, st, gpu.weightDtype);
await gpu.device.queue.onSubmittedWorkDone();
const loadMs = performance.now() - loadStart;

const capacity = nPhonemes + promptFrames + Math.max(steps, frames) + 16;
const ctx: ValleContext = {
  gpu,
  model: { config, weights },
  state: createRunState(gpu, config, capacity),
  rec: new Recorder(gpu, { label: "valle.bench", paramsCapacity: 8 << 20 }),
};
const phonemes = [1, ...Array.from({ length: nPhonemes - 2 }, (_, i) => 4 + (i * 37) % 200), 2];
const prompt = {
  data: Array.from({ length: promptFrames * config.nLevels }, (_, i) => (i * 613) % config.nAudio),
  frames: promptFrames,
  levels: config.nLevels,
};
const conditioning = { phonemes, language: 0, prompt };
const greedy = resolveSamplerOptions({ temperature: 0 });

/** One AR run of `n` steps that never stops; wall ms and GPU counters. */
async function arRun(n: number) {
  const seq = assembleSequence(config, weights.layout, {
    ...conditioning,
    mode: "ar",
    responseFrames: n,
  });
  const before = { ...gpu.stats };
  const start = performance.now();
  await decode(ctx, {
    seq,
    initial: [],
    maxSteps: n,
    stopToken: -1,
    sampler: resolveSamplerOptions({ temperature: 1, topK: 50 }),
    lengthPenaltyToken: config.nAudio,
    seed: 1,
    stream: STREAM.ar,
    checkEvery,
  });
  await gpu.device.queue.onSubmittedWorkDone();
  return {
    ms: performance.now() - start,
    dispatches: gpu.stats.dispatches - before.dispatches,
    readbacks: gpu.stats.readbacks - before.readbacks,
    submits: gpu.stats.submits - before.submits,
  };
}

await arRun(1); // warm-up: pipelines, bind groups
const one = await arRun(1);
const many = await arRun(steps);
const stepMs = (many.ms - one.ms) / (steps - 1);

const narStart = performance.now();
await runNar(ctx, {
  conditioning,
  frames,
  fromLevel: 1,
  toLevel: 1,
  sampler: greedy,
  seed: 0,
});
const narMs = performance.now() - narStart;

const narLenRun = {
  conditioning,
  frames,
  steps: narLenSteps,
  temperature: 0,
  annealed: true,
  cfg: { strength: 2.5, rescale: 0.75 },
  remask: false,
  maskedOnly: false,
  sampler: greedy,
  seed: 0,
  trace: false,
};
await runNarLen(ctx, { ...narLenRun, steps: Math.min(2, narLenSteps) }); // warm-up
const narLenStart = performance.now();
await runNarLen(ctx, narLenRun);
const narLenMs = performance.now() - narLenStart;

const results = {
  model: {
    file: values.model,
    dModel: config.dModel,
    heads: config.nHeads,
    layers: config.nLayers,
    weights: gpu.weightDtype,
  },
  settings: { steps, frames, promptFrames, phonemes: nPhonemes, narLenSteps, checkEvery },
  loadMs: Math.round(loadMs),
  ar: {
    prefillMs: +one.ms.toFixed(2),
    stepMs: +stepMs.toFixed(3),
    framesPerSecond: +(1000 / stepMs).toFixed(1),
    dispatchesPerStep: +((many.dispatches - one.dispatches) / (steps - 1)).toFixed(2),
    readbacksPerStep: +(many.readbacks / steps).toFixed(4),
    submitsPerStep: +(many.submits / steps).toFixed(4),
  },
  narLevelMs: +narMs.toFixed(1),
  narLenMs: +narLenMs.toFixed(1),
};

const table = [
  { metric: "AR prefill (incl. 1st step)", value: results.ar.prefillMs, unit: "ms" },
  { metric: "AR step", value: results.ar.stepMs, unit: "ms" },
  { metric: "AR throughput", value: results.ar.framesPerSecond, unit: "frames/s" },
  { metric: "AR dispatches per step", value: results.ar.dispatchesPerStep, unit: "" },
  { metric: "AR readbacks per step", value: results.ar.readbacksPerStep, unit: "" },
  { metric: `NAR level, ${frames} frames`, value: results.narLevelMs, unit: "ms" },
  {
    metric: `NAR-len, ${frames} frames, ${narLenSteps} steps`,
    value: results.narLenMs,
    unit: "ms",
  },
];
console.log(
  `adapter: ${gpu.adapter.description || gpu.adapter.vendor} (weights ${gpu.weightDtype}), ` +
    `model d ${config.dModel} × ${config.nHeads} heads × ${config.nLayers} layers\n`,
);
console.log(markdownTable(table));
const path = `bench/results/valle-${adapterSlug(gpu)}.json`;
await Deno.writeTextFile(
  path,
  JSON.stringify({ environment: environment(gpu), ...results }, null, 2) + "\n",
);
console.log(`\nwrote ${path}`);
gpu.destroy();
