/**
 * The quantization report of a full-size random VALL-E (d 1024, 16 heads, 12 layers, FFN 4096, 8
 * levels, 1024 codes: the released layout, tools/make_valle_model.ts) on one backend: for f16, q8
 * and q4 the device bytes of the weights and the load time (quantizing the `.sft` at load, and
 * reading a GGUF from tools/quantize.ts), then tools/golden/quant.ts's agreement of q8 and q4 with
 * f16: mean KL and top-1 agreement of AR level 0 (teacher-forced), each NAR level and NAR-len, and
 * identical codes in a seeded and a greedy synthesis. Random weights quantize unlike trained ones:
 * the figures are a proxy.
 *
 *   deno run -A tools/quant_report.ts [--backend cpu|webgpu] [--size full|D/H/L] [--frames 75]
 */

import { parseArgs } from "node:util";
import { createBackend } from "../src/backends/select.ts";
import { parseSafetensors } from "../src/io/safetensors.ts";
import { ValleModel, valleWeightBytes } from "../src/models/valle/mod.ts";
import { agreementLines, quantAgreement, storageShares } from "./golden/quant.ts";
import { makeRandomValle } from "./make_valle_model.ts";
import { quantizeValle } from "./quantize.ts";

/** Deterministic integers in [0, n) (a small LCG; the inputs need no quality). */
function integers(count: number, n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: count }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      backend: { type: "string", default: "cpu" },
      size: { type: "string", default: "full" },
      frames: { type: "string", default: "75" },
    },
  });
  const [dim, heads, layers] = values.size === "full"
    ? [1024, 16, 12]
    : values.size.split("/").map(Number);
  const frames = Number(values.frames);
  const seconds = (start: number) => ((performance.now() - start) / 1000).toFixed(1);
  let start = performance.now();
  const bytes = makeRandomValle({ dim, heads, layers });
  console.log(`model d ${dim}, ${heads} heads, ${layers} layers: built in ${seconds(start)} s`);
  const backend = await createBackend({ backend: values.backend as "cpu" | "webgpu" });
  console.log(`backend: ${backend.description}`);
  const mb = (v: ValleModel) => (valleWeightBytes(v.weights) / 1e6).toFixed(1);
  start = performance.now();
  const reference = await ValleModel.load(bytes, { backend, dtype: "f16" });
  console.log(`f16: weights ${mb(reference)} MB, loaded in ${seconds(start)} s`);
  const { nAudio, nLevels } = reference.config;
  const input = {
    cond: {
      phonemes: [1, ...integers(40, 200, 1).map((p) => p + 3), 2],
      language: 0,
      prompt: { data: integers(225 * nLevels, nAudio, 2), frames: 225, levels: nLevels },
    },
    response: { data: integers(frames * nLevels, nAudio, 3), frames, levels: nLevels },
    seed: 1,
    maxSteps: frames,
  };
  for (const dtype of ["q8", "q4"] as const) {
    start = performance.now();
    const quantized = await ValleModel.load(bytes, { backend, dtype });
    const atLoad = seconds(start);
    start = performance.now();
    const gguf = quantizeValle(parseSafetensors(bytes), dtype, "random.sft");
    const quantizeTime = seconds(start);
    start = performance.now();
    const fromGguf = await ValleModel.load(gguf, { backend });
    console.log(
      `${dtype}: weights ${mb(quantized)} MB (matrices: ${storageShares(quantized)}); ` +
        `quantized at load in ${atLoad} s; deno task quantize ${quantizeTime} s ` +
        `(GGUF ${(gguf.length / 1e6).toFixed(1)} MB), which loads in ${seconds(start)} s`,
    );
    await fromGguf.dispose();
    const result = await quantAgreement(reference, quantized, input);
    for (const line of agreementLines(dtype, result)) console.log(line);
    await quantized.dispose();
  }
  await reference.dispose();
  backend.destroy();
}
