/**
 * Codec real-time factors with full-size random weights in the real layouts (EnCodec 24 kHz,
 * 23.3 M values; Vocos EnCodec variant, 10.1 M values; written by tools/make_random_codecs.ts
 * when missing): EnCodec encode at 6 kbps (8 codebooks), EnCodec decode and Vocos decode of
 * those 8 codebooks, for `--seconds` of audio. RTF = processing time / audio duration (below 1
 * is faster than real time); wall clock from the call to its result on the CPU, after a warm-up
 * call that compiles every pipeline. Optionally (`--profile`) a second run with timestamp queries
 * (one compute pass per dispatch, so slower) gives the time per kernel.
 *
 *   deno run -A bench/codec_bench.ts [--seconds 10] [--weights /tmp/valle-codecs] [--profile]
 *
 * writes bench/results/codec-<adapter>.json and prints a markdown table. On a software adapter
 * (lavapipe) these are CPU numbers.
 */

import { parseArgs } from "node:util";
import { requestGpu } from "../src/gpu/device.ts";
import { type KernelTime, Profiler } from "../src/gpu/profiler.ts";
import { serializeSafetensors } from "../src/io/safetensors.ts";
import { Encodec } from "../src/models/encodec/encodec.ts";
import { Vocos } from "../src/models/vocos/vocos.ts";
import { randomEncodec, randomVocos } from "../tools/make_random_codecs.ts";
import { adapterSlug, environment, markdownTable } from "./_report.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    weights: { type: "string", default: "/tmp/valle-codecs" },
    profile: { type: "boolean", default: false },
  },
});
const seconds = Number(values.seconds);
const dir = values.weights!.replace(/\/$/, "");

async function weights(): Promise<[Uint8Array, Uint8Array]> {
  const paths = [
    `${dir}/encodec_24khz/model.safetensors`,
    `${dir}/vocos_encodec_24khz/model.safetensors`,
  ];
  try {
    return [await Deno.readFile(paths[0]), await Deno.readFile(paths[1])];
  } catch {
    const encodec = randomEncodec();
    const files = [serializeSafetensors(encodec), serializeSafetensors(randomVocos(encodec))];
    for (const [i, path] of paths.entries()) {
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await Deno.writeFile(path, files[i]);
    }
    return [files[0], files[1]];
  }
}

/** A speech-like test signal: a few harmonics with vibrato, plus noise. */
function signal(n: number): Float32Array {
  let seed = 1;
  const noise = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
  return Float32Array.from({ length: n }, (_, i) => {
    const t = i / 24000;
    const f0 = 140 + 20 * Math.sin(2 * Math.PI * 3 * t);
    let v = 0;
    for (let h = 1; h <= 5; h++) v += Math.sin(2 * Math.PI * f0 * h * t) / h;
    return 0.2 * v + 0.02 * noise();
  });
}

const gpu = await requestGpu();
const [encodecBytes, vocosBytes] = await weights();

async function measure(profiler?: Profiler) {
  const loadStart = performance.now();
  const encodec = await Encodec.load(gpu, encodecBytes, { profiler });
  const vocos = await Vocos.load(gpu, vocosBytes, { profiler });
  const loadMs = performance.now() - loadStart;
  const warm = await encodec.encode(signal(24000), 24000);
  await encodec.decode(warm);
  await vocos.decode(warm);
  await profiler?.collect();
  const audio = signal(Math.round(seconds * 24000));
  let codes = warm;
  const stages: [string, () => Promise<unknown>][] = [
    [
      "EnCodec encode (6 kbps, 8 codebooks)",
      async () => (codes = await encodec.encode(audio, 24000)),
    ],
    ["EnCodec decode (8 codebooks)", () => encodec.decode(codes)],
    ["Vocos decode (8 codebooks, bandwidth id 2)", () => vocos.decode(codes)],
  ];
  const rows = [];
  const kernels: Record<string, KernelTime[]> = {};
  for (const [stage, run] of stages) {
    const start = performance.now();
    await run();
    const ms = performance.now() - start;
    rows.push({ stage, seconds, ms: Math.round(ms), rtf: +(ms / 1000 / seconds).toFixed(3) });
    if (profiler) kernels[stage] = await profiler.collect();
  }
  const chunkFrames = { encodec: encodec.chunkFrames, vocos: vocos.chunkFrames };
  encodec.dispose();
  vocos.dispose();
  return { loadMs: Math.round(loadMs), chunkFrames, rows, kernels };
}

const timed = await measure();
const profiled = values.profile && gpu.features.timestamps
  ? await measure(new Profiler(gpu))
  : undefined;
const rows = timed.rows;
const result = {
  environment: {
    ...environment(gpu),
    loadavg: Deno.loadavg(),
    cpus: navigator.hardwareConcurrency,
  },
  weights: "random, full size (tools/make_random_codecs.ts), f32",
  chunkFrames: timed.chunkFrames,
  loadMs: timed.loadMs,
  rows,
  ...(profiled ? { profiledRows: profiled.rows, kernels: profiled.kernels } : {}),
};
const file = new URL(`./results/codec-${adapterSlug(gpu)}.json`, import.meta.url);
await Deno.writeTextFile(file, JSON.stringify(result, null, 2) + "\n");
console.log(
  `${gpu.adapter.description} (${gpu.adapter.software ? "software: CPU numbers" : "GPU"})`,
);
console.log(markdownTable(rows));
gpu.destroy();
