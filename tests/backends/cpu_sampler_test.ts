/**
 * The CPU sampler and guidance kernels (wasm/sample.c, cfg.c, demask.c) against the WebGPU
 * kernels of the same dispatch, an independent pcg4d draw, JS oracles and the valle-tiny golden
 * sampler cases, with 1 and 2 threads: tokens and masks exact, logits and scores within 1e-6
 * relative (golden cases within the README's tolerances).
 *
 * The kernel specs and parameters are written out here as `sample()` (src/models/valle/sampler.ts),
 * `cfg()` (cfg.ts) and `select()`/`update()` (nar_len.ts) record them, until those take any
 * backend.
 */

import assert from "node:assert/strict";
import type { KernelSpec, Tensor } from "../../src/backends/backend.ts";
import { type CpuBackend, createCpuBackend } from "../../src/backends/cpu/backend.ts";
import { createTensor, readF32, readU32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import type { Recorder } from "../../src/backends/backend.ts";
import { readBytes, rows, uploadTensor } from "../../src/backends/tensor.ts";
import type { Gpu } from "../../src/backends/webgpu/device.ts";
import { readSafetensors } from "../../src/io/safetensors.ts";
import { CFG_STAT, type CfgOptions, guideLogits } from "../../src/models/valle/cfg.ts";
import {
  penaltyTable,
  resolveSamplerOptions,
  type SampledLogits,
  sampleLogits,
  type SamplerOptions,
} from "../../src/models/valle/sampler.ts";
import { compareValues, parseStageDescription, TOLERANCE } from "../../tools/golden/valle.ts";
import type { CaseResult } from "../../tools/golden/types.ts";
import { gpuTest } from "../_backends.ts";
import { assertClose, FIXTURES, Rng } from "../_helpers.ts";

const THREADS = [1, 2] as const;

/**
 * Runs `fn` on a new CPU backend of `threads` threads, destroyed afterwards. A timer holds the
 * event loop meanwhile: the pool's workers are unref'd and its waits are Atomics.waitAsync, which
 * `deno test` does not count as pending work (without it the test ends with "Promise resolution
 * is still pending but the event loop has already resolved").
 */
async function withCpu(threads: number, fn: (cpu: CpuBackend) => Promise<void>): Promise<void> {
  const hold = setInterval(() => {}, 60_000);
  const cpu = await createCpuBackend({ threads });
  try {
    await fn(cpu);
  } finally {
    cpu.destroy();
    clearInterval(hold);
  }
}

// The specs of src/models/valle/sampler.ts, cfg.ts and nar_len.ts.
const SAMPLE: KernelSpec = {
  shader: "sample",
  bindings: ["write", "write", "write", "read"],
  params: [
    ...["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"] as const,
    ...["f32", "u32", "f32", "u32", "f32", "u32", "f32", "f32"] as const,
    ...["u32", "u32", "u32", "u32", "u32", "u32", "u32"] as const,
  ],
};
const CFG_STATS: KernelSpec = {
  shader: "cfg_stats",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "f32", "f32", "f32"],
};
const CFG_APPLY: KernelSpec = {
  shader: "cfg_apply",
  bindings: ["write", "read", "read"],
  params: ["u32", "u32", "u32", "f32"],
};
const DEMASK_SELECT: KernelSpec = {
  shader: "demask_select",
  bindings: ["write", "write", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};
const DEMASK_UPDATE: KernelSpec = {
  shader: "demask_update",
  bindings: ["write", "write", "read", "read"],
  params: ["u32", "u32", "u32", "u32", "u32", "u32"],
};

/** Extra inputs of a sampler call, as `sampleLogits` takes them. */
interface SampleExtra {
  previous?: ArrayLike<number>;
  lengthPenalty?: { length: number; token: number };
  seed?: number;
  stream?: number;
  counter?: number;
}

/**
 * `sampleLogits` on the CPU backend: the same buffers (logits and work rows in one buffer, behind
 * `pad` leading elements so offsets are exercised), the same parameters as `sample()`.
 */
async function cpuSampleLogits(
  cpu: CpuBackend,
  logits: Float32Array,
  [n, cols]: [number, number],
  options: SamplerOptions,
  extra: SampleExtra = {},
  pad = 0,
): Promise<SampledLogits> {
  const o = resolveSamplerOptions(options);
  const prev = Uint32Array.from(extra.previous ?? []);
  const buf = createTensor(cpu, [pad + 2 * n * cols], "f32", "test.logits");
  const tokens = createTensor(cpu, [pad + prev.length + n], "u32", "test.tokens");
  const scoreBuf = createTensor(cpu, [pad + n], "f32", "test.scores");
  const table = penaltyTable(o.repetitionPenalty, o.repetitionPenaltyDecay, prev.length);
  const penalties = uploadTensor(cpu, table, [table.length], "f32", "test.penalties");
  const shape = (t: Tensor, s: number[]): Tensor => ({ ...t, shape: s });
  const all = rows(shape(buf, [pad + 2 * n * cols]), pad, 2 * n * cols);
  const x = shape(rows(all, 0, n * cols), [n, cols]);
  const work = shape(rows(all, n * cols, n * cols), [n, cols]);
  const out = rows(tokens, pad + prev.length, n);
  const scores = rows(scoreBuf, pad, n);
  cpu.write(x, logits);
  if (prev.length > 0) cpu.write(rows(tokens, pad, prev.length), prev);
  const nPrev = prev.length;
  const penalize = o.repetitionPenalty !== 1 && nPrev > 0;
  const minT = o.minTemperature < 0 ? o.temperature : o.minTemperature;
  const tempMode = Math.abs(o.temperature - minT) >= 0.001 ? 2 : o.temperature > 0 ? 1 : 0;
  const lp = extra.lengthPenalty;
  const params = [
    n,
    cols,
    x.offset,
    work.offset,
    pad,
    nPrev,
    penalize ? (nPrev === n ? 2 : 1) : 0,
    penalties.offset,
    o.lengthPenalty !== 0 && lp ? lp.length ** o.lengthPenalty : 0,
    lp ? lp.token : 0,
    o.minP,
    o.topK,
    o.topP,
    tempMode,
    o.temperature,
    minT,
    o.topNSigma > 0 ? 1 : 0,
    o.temperature <= 0 ? 1 : 0,
    (extra.seed ?? 0) >>> 0,
    (extra.stream ?? 0) >>> 0,
    (extra.counter ?? 0) >>> 0,
    out.offset,
    scores.offset,
  ];
  const rec = cpu.createRecorder();
  rec.dispatch(SAMPLE, [x, tokens, scoreBuf, penalties], params, [n]);
  rec.submit();
  const values = await readF32(cpu, all);
  const ids = await readU32(cpu, out);
  const sc = await readF32(cpu, scores);
  rec.destroy();
  for (const t of [buf, tokens, scoreBuf, penalties]) t.buffer.destroy();
  const copied = o.minP > 0 || o.topNSigma > 0 || tempMode === 1;
  const unfilter = (a: Float32Array) => a.map((v) => (v <= -1e38 ? -Infinity : v));
  const inPlace = unfilter(values.slice(0, n * cols));
  return {
    tokens: new Int32Array(ids.buffer),
    scores: sc,
    processed: copied ? unfilter(values.slice(n * cols)) : inPlace,
    inPlace,
  };
}

/** Same non-finite values at the same places, the finite ones within `rtol`. */
function assertRelClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  label: string,
): void {
  const special = (a: ArrayLike<number>) =>
    Array.from(a, (v, i) => (Number.isFinite(v) ? null : `${i}:${v}`)).filter((s) => s !== null);
  assert.deepEqual(special(actual), special(expected), `${label}: non-finite entries`);
  const finite = (a: ArrayLike<number>) => Array.from(a, (v) => (Number.isFinite(v) ? v : 0));
  assertClose(finite(actual), finite(expected), { atol: 0, rtol, label });
}

function assertSameSample(cpu: SampledLogits, gpu: SampledLogits, label: string): void {
  assert.deepEqual(Array.from(cpu.tokens), Array.from(gpu.tokens), `${label}: tokens`);
  assertRelClose(cpu.scores, gpu.scores, 1e-6, `${label}: scores`);
  assertRelClose(cpu.processed, gpu.processed, 1e-6, `${label}: processed logits`);
  assertRelClose(cpu.inPlace, gpu.inPlace, 1e-6, `${label}: logits rows after the call`);
}

/**
 * Random logits; `ties` rounds them to quarters so that equal values are common, `masked` makes
 * a tenth of them -Infinity (filtered before the sampler runs).
 */
function randomLogits(
  rng: Rng,
  n: number,
  scale: number,
  { ties = false, masked = false } = {},
): Float32Array {
  const x = rng.normals(n, scale);
  return x.map((v) => (masked && rng.next() < 0.1 ? -Infinity : ties ? Math.round(v * 4) / 4 : v));
}

/** Every option set the WebGPU sampler tests and golden cases run, and the stages alone. */
const OPTION_SETS: readonly SamplerOptions[] = [
  { temperature: 1 },
  { temperature: 0.5 },
  { temperature: 1, topK: 3 },
  { temperature: 1, topP: 0.7 },
  { temperature: 0.7, repetitionPenalty: 1.3, repetitionPenaltyDecay: 0.5, lengthPenalty: 0.7 },
  {
    temperature: 0.7,
    repetitionPenalty: 1.3,
    repetitionPenaltyDecay: 0.5,
    lengthPenalty: 0.7,
    minP: 0.02,
    topK: 60,
    topP: 0.9,
  },
  {
    temperature: 0.7,
    repetitionPenalty: 1.3,
    repetitionPenaltyDecay: 0.5,
    lengthPenalty: 0.7,
    topNSigma: 1,
  },
  { temperature: 1.5, minTemperature: 0.5 },
  { temperature: 0.7, topK: 60, topNSigma: 1 },
  {
    temperature: 1.3,
    repetitionPenalty: 1.5,
    repetitionPenaltyDecay: 1,
    minP: 0.05,
    topK: 10,
    topP: 0.9,
  },
  { temperature: 1.3, repetitionPenalty: 1.5, repetitionPenaltyDecay: 1, topNSigma: 1 },
  { temperature: 1, minP: 0.1 },
  { temperature: 1, minP: 0.9 },
  { temperature: 1, topK: 5 },
  { temperature: 1, topP: 0.5 },
  { temperature: 1, topK: 20, topP: 0.7 },
  { temperature: 0.6 },
  { temperature: 1, topNSigma: 1 },
  { temperature: 2, minTemperature: 0.1, topK: 40, topP: 0.95, minP: 0.01, topNSigma: 1 },
  { temperature: 1, topK: 300 },
  { temperature: 0.8, topK: 1000, topP: 0.95 },
];

/** Shapes: one AR row of 1025, NAR rows (odd widths; chunks of several entries), the widest sorted row. */
const SHAPES: readonly [number, number][] = [[1, 1025], [6, 64], [5, 777], [3, 2048], [2, 31]];

for (const threads of THREADS) {
  gpuTest(
    `sample: CPU equals WebGPU on random logits, every option set (${threads} threads)`,
    async (gpu) => {
      await withCpu(threads, async (cpu) => {
        const rng = new Rng(7 + threads);
        let call = 0;
        for (const [n, cols] of SHAPES) {
          for (const base of OPTION_SETS) {
            for (const greedy of [false, true]) {
              const options = greedy ? { ...base, temperature: 0, minTemperature: -1 } : base;
              const logits = randomLogits(rng, n * cols, 2.5, {
                ties: call % 3 === 0,
                masked: call % 4 === 1,
              });
              const previous = Array.from({ length: call % 2 === 0 ? n : 7 }, () => rng.int(cols));
              const extra: SampleExtra = {
                previous,
                lengthPenalty: n === 1
                  ? { length: previous.length + 1, token: cols - 1 }
                  : undefined,
                seed: 1000 + call,
                stream: 1 + (call % 5),
                counter: call,
              };
              const label = `[${n}, ${cols}] ${JSON.stringify(options)}`;
              const want = await sampleLogits(gpu, logits, [n, cols], options, extra);
              const got = await cpuSampleLogits(cpu, logits, [n, cols], options, extra, call % 7);
              assertSameSample(got, want, label);
              call++;
            }
          }
        }
      });
    },
  );
}

gpuTest(
  "sample: many seeded draws per row equal WebGPU's (categorical inverse CDF)",
  async (gpu) => {
    await withCpu(2, async (cpu) => {
      const rng = new Rng(99);
      // 512 rows of one softmax-friendly row: every draw lands somewhere along the CDF.
      const [n, cols] = [512, 300];
      const row = rng.normals(cols, 1.5);
      const logits = new Float32Array(n * cols);
      for (let r = 0; r < n; r++) logits.set(row, r * cols);
      for (const counter of [0, 1, 2]) {
        const extra = { seed: 17, stream: 3, counter };
        const want = await sampleLogits(gpu, logits, [n, cols], { temperature: 1 }, extra);
        const got = await cpuSampleLogits(cpu, logits, [n, cols], { temperature: 1 }, extra);
        assertSameSample(got, want, `counter ${counter}`);
      }
    });
  },
);

/** pcg4d(seed, stream, counter, row).x in u32 arithmetic (Jarzynski & Olano 2020). */
function pcg4dX(a: number, b: number, c: number, d: number): number {
  const lcg = (v: number) => (Math.imul(v, 1664525) + 1013904223) >>> 0;
  let [x, y, z, w] = [lcg(a), lcg(b), lcg(c), lcg(d)];
  x = (x + Math.imul(y, w)) >>> 0;
  y = (y + Math.imul(z, x)) >>> 0;
  z = (z + Math.imul(x, y)) >>> 0;
  w = (w + Math.imul(y, z)) >>> 0;
  [x, y, w] = [x ^ (x >>> 16), y ^ (y >>> 16), w ^ (w >>> 16)];
  return (x + Math.imul(y, w)) >>> 0;
}

for (const threads of THREADS) {
  gpuTest(
    `sample: uniform rows draw floor(u · cols) with u from pcg4d, on both backends (${threads} threads)`,
    async (gpu) => {
      await withCpu(threads, async (cpu) => {
        // Equal logits: every chunk sum and the total are exact integers, so the draw is
        // floor(f32(u · cols)) with u = (pcg4d.x >> 8) / 2^24, whatever the chunking.
        for (const [n, cols, seed] of [[300, 256, 5], [300, 1000, 0xfffffff0], [77, 3, 12]]) {
          const logits = new Float32Array(n * cols);
          const extra = { seed, stream: 2, counter: 41 };
          const expected = Array.from({ length: n }, (_, r) => {
            const u = (pcg4dX(seed, 2, 41, r) >>> 8) / 16777216;
            return Math.floor(Math.fround(u * cols));
          });
          const got = await cpuSampleLogits(cpu, logits, [n, cols], { temperature: 1 }, extra);
          const want = await sampleLogits(gpu, logits, [n, cols], { temperature: 1 }, extra);
          assert.deepEqual(Array.from(got.tokens), expected, `CPU, ${cols} columns`);
          assert.deepEqual(Array.from(want.tokens), expected, `WebGPU, ${cols} columns`);
          assertRelClose(got.scores, new Float32Array(n).fill(1 / cols), 1e-6, "scores");
        }
      });
    },
  );
}

// --- golden sampler cases -----------------------------------------------------------------------

const GOLDEN = new URL("valle-tiny/", FIXTURES);

/** The sampler settings keys of the golden files, and the stages that turn them on. */
const SETTING_KEYS: Readonly<Record<string, keyof SamplerOptions>> = {
  temperature: "temperature",
  min_temperature: "minTemperature",
  top_k: "topK",
  top_p: "topP",
  min_p: "minP",
  repetition_penalty: "repetitionPenalty",
  repetition_penalty_decay: "repetitionPenaltyDecay",
  length_penalty: "lengthPenalty",
  top_no: "topNSigma",
};
const STAGE_SETTINGS: Readonly<Record<string, readonly string[]>> = {
  input: [],
  repetition_penalty: ["repetition_penalty", "repetition_penalty_decay"],
  length_penalty: ["length_penalty"],
  min_p: ["min_p"],
  top_k_top_p: ["top_k", "top_p"],
  temperature: ["temperature", "min_temperature"],
  dynamic_temperature: ["temperature", "min_temperature"],
  top_no: ["top_no"],
};

for (const threads of THREADS) {
  Deno.test({
    name: `sample, cfg: the golden sampler cases of valle-tiny (${threads} threads)`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", GOLDEN)));
      const settings = manifest.files["samplers.safetensors"].settings;
      const st = await readSafetensors(new URL("samplers.safetensors", GOLDEN));
      const results: CaseResult[] = [];
      const check = (name: string, got: ArrayLike<number>, tolerance: number) =>
        results.push(compareValues(name, got, st.toFloat32(name), tolerance));
      await withCpu(threads, async (cpu) => {
        for (
          const [name, s] of Object.entries(settings as Record<string, Record<string, unknown>>)
        ) {
          if (!Array.isArray(s.stage_order)) continue;
          const input = st.toFloat32(s.input as string);
          const shape = st.info(s.input as string).shape as [number, number];
          const previous = st.toInt32(s.prev as string);
          const lengthPenalty = s.nar
            ? undefined
            : { length: previous.length + 1, token: shape[1] - 1 };
          const stages = s.stage_order as string[];
          const upTo = (count: number): SamplerOptions => {
            const on = new Set(stages.slice(0, count).flatMap((x) => STAGE_SETTINGS[x]));
            const o: SamplerOptions = { temperature: 0, topNSigma: 0 };
            for (const key of on) {
              if (typeof s[key] === "number") o[SETTING_KEYS[key]] = s[key] as number;
            }
            return o;
          };
          const extra = { previous, lengthPenalty };
          for (let i = 0; i < stages.length; i++) {
            const r = await cpuSampleLogits(cpu, input, shape, upTo(i + 1), extra);
            check(`${name}.stage.${stages[i]}`, r.processed, TOLERANCE.logits);
          }
          const all = upTo(stages.length);
          const final = await cpuSampleLogits(cpu, input, shape, all, extra);
          const probs = new Float32Array(final.processed.length);
          for (let r = 0; r < shape[0]; r++) {
            const row = final.processed.subarray(r * shape[1], (r + 1) * shape[1]);
            const m = Math.max(...row);
            const sum = row.reduce((a, v) => a + Math.exp(v - m), 0);
            row.forEach((v, c) => (probs[r * shape[1] + c] = Math.exp(v - m) / sum));
          }
          check(`${name}.final_probs`, probs, TOLERANCE.probability);
          const greedy = await cpuSampleLogits(cpu, input, shape, {
            ...all,
            temperature: 0,
            minTemperature: -1,
          }, extra);
          results.push(
            compareValues(`${name}.greedy.ids`, greedy.tokens, st.toInt32(`${name}.greedy.ids`), 0),
          );
          check(`${name}.greedy.scores`, greedy.scores, TOLERANCE.probability);
        }
        const iso = st.toFloat32("iso.input");
        const isoShape = st.info("iso.input").shape as [number, number];
        for (const [name, description] of Object.entries(settings.iso as Record<string, string>)) {
          const parsed = parseStageDescription(description);
          const r = await cpuSampleLogits(cpu, iso, isoShape, parsed.options, parsed);
          check(`iso.${name}`, r.processed, TOLERANCE.logits);
        }
        const ar = await cpuSampleLogits(cpu, st.toFloat32("ar.input"), [1, 1025], {
          temperature: 0,
          repetitionPenalty: 2,
        }, { previous: [5] });
        check("ar_one_prev.output", ar.processed, TOLERANCE.logits);
        const pos = st.toFloat32("cfg.pos");
        const neg = st.toFloat32("cfg.neg");
        for (const rescale of settings.cfg.rescale as number[]) {
          const r = await cpuGuide(cpu, pos, neg, { strength: settings.cfg.strength, rescale });
          check(`cfg.out_rescale_${rescale}`, r.logits, TOLERANCE.logits);
          if (rescale > 0) check("cfg.factor", [r.stats[CFG_STAT.factor]], TOLERANCE.probability);
        }
      });
      const failed = results.filter((r) => !r.passed);
      assert.ok(results.length > 40, `${results.length} golden comparisons`);
      assert.deepEqual(failed.map((r) => `${r.name}: ${r.detail ?? r.maxError}`), []);
    },
  });
}

// --- classifier-free guidance -------------------------------------------------------------------

/**
 * `cfg()` on the CPU backend, cond and uncond at `pad` elements into their buffers; returns the
 * guided logits and the stats row.
 */
async function cpuGuide(
  cpu: CpuBackend,
  cond: Float32Array,
  uncond: Float32Array,
  options: CfgOptions,
  pad = 0,
): Promise<{ logits: Float32Array; stats: Float32Array }> {
  const n = cond.length;
  const cBuf = createTensor(cpu, [pad + n], "f32", "test.cond");
  const uBuf = createTensor(cpu, [pad + 2 * n], "f32", "test.uncond");
  const c = rows(cBuf, pad, n);
  const u = rows(uBuf, 2 * pad, n);
  cpu.write(c, cond);
  cpu.write(u, uncond);
  const stats = createTensor(cpu, [8], "f32", "test.stats");
  const rec = cpu.createRecorder();
  const { strength, rescale } = options;
  rec.dispatch(CFG_STATS, [stats, c, u], [n, c.offset, u.offset, strength, rescale, 1 - rescale], [
    1,
  ]);
  rec.dispatch(CFG_APPLY, [c, u, stats], [n, c.offset, u.offset, strength], [Math.ceil(n / 256)]);
  rec.submit();
  const logits = await readF32(cpu, c);
  const s = await readF32(cpu, stats);
  rec.destroy();
  for (const t of [cBuf, uBuf, stats]) t.buffer.destroy();
  return { logits, stats: s };
}

/** cfg in double precision: z = u + (c − u) w, rescaled by φ std(c) / std(z) + 1 − φ. */
function cfgOracle(c: Float32Array, u: Float32Array, { strength, rescale }: CfgOptions) {
  const n = c.length;
  const z = Array.from(c, (v, i) => u[i] + (v - u[i]) * strength);
  const std = (a: ArrayLike<number>) => {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += a[i] / n;
    let sq = 0;
    for (let i = 0; i < n; i++) sq += (a[i] - mean) ** 2;
    return { mean, std: Math.sqrt(sq / (n - 1)) };
  };
  const sc = std(c);
  const sz = std(z);
  const factor = rescale > 0 ? rescale * (sc.std / sz.std) + 1 - rescale : 1;
  return { logits: z.map((v) => v * factor), stats: [sc.mean, sc.std, sz.mean, sz.std, factor] };
}

for (const threads of THREADS) {
  gpuTest(`cfg: CPU equals WebGPU and a float64 oracle (${threads} threads)`, async (gpu) => {
    await withCpu(threads, async (cpu) => {
      const rng = new Rng(31 + threads);
      for (const n of [2, 21, 255, 1025, 5 * 1025, 40 * 1024 + 3, 500 * 1025]) {
        for (const options of [{ strength: 2.5, rescale: 0.75 }, { strength: 3, rescale: 0 }]) {
          const cond = rng.normals(n, 3).map((v) => v + 0.5);
          const uncond = rng.normals(n, 2);
          const label = `n ${n}, ${JSON.stringify(options)}`;
          const got = await cpuGuide(cpu, cond, uncond, options, n % 5);
          const want = await guideLogits(gpu, cond, uncond, options);
          assertRelClose(got.logits, want.logits, 1e-6, `${label}: logits vs WebGPU`);
          assertRelClose(
            [
              got.stats[CFG_STAT.stdCond],
              got.stats[CFG_STAT.stdGuided],
              got.stats[CFG_STAT.factor],
            ],
            [want.stdCond, want.stdGuided, want.factor],
            1e-6,
            `${label}: stats vs WebGPU`,
          );
          const oracle = cfgOracle(cond, uncond, options);
          assertClose(got.stats.subarray(0, 5), oracle.stats, { atol: 1e-6, rtol: 1e-5, label });
          assertClose(got.logits, oracle.logits, { atol: 1e-5, rtol: 1e-5, label });
        }
      }
    });
  });

  Deno.test({
    name:
      `cfg: the sums are compensated like the WGSL's, so they match float64 (${threads} threads)`,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () =>
      withCpu(threads, async (cpu) => {
        // A first block of 1e8 then 1000 blocks of ones: an uncompensated f32 lane sum stays at
        // 1e8 (its ulp is 8) and loses every one; the compensated sum keeps them. (WebGPU on
        // lavapipe loses them: its shader compiler folds the Kahan step away.)
        const n = 256 * 1001;
        const cond = new Float32Array(n).fill(1).fill(1e8, 0, 256);
        const uncond = new Float32Array(n);
        const options = { strength: 2, rescale: 0.5 };
        const got = await cpuGuide(cpu, cond, uncond, options);
        const oracle = cfgOracle(cond, uncond, options);
        assertClose(got.stats.subarray(0, 5), oracle.stats, { atol: 0, rtol: 1e-6 });
        assertClose(got.logits, oracle.logits, { atol: 0, rtol: 1e-6 });
      }),
  });
}

// --- NAR-len masking ----------------------------------------------------------------------------

/** demask_select's rule: the `count` lowest scores (ties to the lower index) get the mask. */
function selectOracle(tokens: Uint32Array, scores: Float32Array, count: number, mask: number) {
  const out = Uint32Array.from(tokens);
  const masked = new Uint32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    let rank = 0;
    for (let j = 0; j < tokens.length; j++) {
      if (scores[j] < scores[i] || (scores[j] === scores[i] && j < i)) rank++;
    }
    if (rank < count) out[i] = mask;
    masked[i] = out[i] === mask ? 1 : 0;
  }
  return { tokens: out, masked };
}

interface DemaskCase {
  tokens: Uint32Array;
  scores: Float32Array;
  sampled: Uint32Array;
  count: number;
  maskedOnly: boolean;
}

interface DemaskResult {
  /** Tokens and masks after demask_select. */
  selected: Uint32Array;
  masked: Uint32Array;
  /** Tokens and scores after demask_update. */
  tokens: Uint32Array;
  scores: Float32Array;
}

/** `values` behind `pad` zeros. */
function padded<T extends Uint32Array | Float32Array>(values: T, pad: number): T {
  const out = new (values.constructor as new (n: number) => T)(pad + values.length);
  out.set(values, pad);
  return out;
}

function selectParams(c: DemaskCase, mask: number, pad: number): number[] {
  return [c.tokens.length, c.count, mask, pad, pad, pad];
}

function updateParams(c: DemaskCase, pad: number): number[] {
  return [c.tokens.length, c.maskedOnly ? 1 : 0, pad, pad, pad, pad];
}

/** select() then update() of nar_len.ts on the CPU, every tensor `pad` elements into its buffer. */
async function cpuDemask(
  cpu: CpuBackend,
  c: DemaskCase,
  mask: number,
  pad: number,
): Promise<DemaskResult> {
  const length = c.tokens.length;
  const upload = (values: Uint32Array | Float32Array, dtype: "u32" | "f32") =>
    rows(uploadTensor(cpu, padded(values, pad), [pad + length], dtype, "test.demask"), pad, length);
  const tokens = upload(c.tokens, "u32");
  const masked = upload(new Uint32Array(length), "u32");
  const scores = upload(c.scores, "f32");
  const sampled = upload(c.sampled, "u32");
  const rec = cpu.createRecorder();
  rec.dispatch(DEMASK_SELECT, [tokens, masked, scores], selectParams(c, mask, pad), [1]);
  rec.submit();
  const selected = await readU32(cpu, tokens);
  const maskedOut = await readU32(cpu, masked);
  rec.dispatch(DEMASK_UPDATE, [tokens, scores, sampled, masked], updateParams(c, pad), [
    Math.ceil(length / 256),
  ]);
  rec.submit();
  const result = {
    selected,
    masked: maskedOut,
    tokens: await readU32(cpu, tokens),
    scores: await readF32(cpu, scores),
  };
  rec.destroy();
  for (const t of [tokens, masked, scores, sampled]) t.buffer.destroy();
  return result;
}

/** The same dispatches on WebGPU. */
async function gpuDemask(
  gpu: Gpu,
  c: DemaskCase,
  mask: number,
  pad: number,
): Promise<DemaskResult> {
  const length = c.tokens.length;
  const upload = (values: Uint32Array | Float32Array, dtype: "u32" | "f32") =>
    gpuRows(uploadGpu(gpu, padded(values, pad), [pad + length], dtype, "test.demask"), pad, length);
  const tokens = upload(c.tokens, "u32");
  const masked = upload(new Uint32Array(length), "u32");
  const scores = upload(c.scores, "f32");
  const sampled = upload(c.sampled, "u32");
  const select = gpu.createRecorder({ label: "test.demask_select" });
  select.dispatch(
    gpu.kernels.get(DEMASK_SELECT),
    [tokens, masked, scores],
    selectParams(c, mask, pad),
    [1],
  );
  select.submit();
  const [selected, maskedOut] = await readBytes(gpu, [tokens, masked]);
  select.destroy();
  const update = gpu.createRecorder({ label: "test.demask_update" });
  update.dispatch(
    gpu.kernels.get(DEMASK_UPDATE),
    [tokens, scores, sampled, masked],
    updateParams(c, pad),
    [
      Math.ceil(length / 256),
    ],
  );
  update.submit();
  const [after, scoresOut] = await readBytes(gpu, [tokens, scores]);
  update.destroy();
  for (const t of [tokens, masked, scores, sampled]) t.buffer.destroy();
  return {
    selected: new Uint32Array(selected),
    masked: new Uint32Array(maskedOut),
    tokens: new Uint32Array(after),
    scores: new Float32Array(scoresOut),
  };
}

for (const threads of THREADS) {
  gpuTest(
    `demask_select, demask_update: CPU equals the rank rule and WebGPU (${threads} threads)`,
    async (gpu) => {
      await withCpu(threads, async (cpu) => {
        const rng = new Rng(5 + threads);
        const mask = 1024;
        for (const length of [1, 4, 37, 500, 777]) {
          for (const count of [0, 1, Math.ceil(length / 3), length]) {
            const tokens = Uint32Array.from(
              { length },
              () => (rng.next() < 0.3 ? mask : rng.int(mask)),
            );
            // Quantized scores tie often; a NaN score (top-nσ's degenerate case) ranks first.
            const scores = Float32Array.from({ length }, () => Math.round(rng.next() * 16) / 16);
            if (length > 4) scores[3] = NaN;
            const sampled = Uint32Array.from({ length }, () => rng.int(mask));
            const c = { tokens, scores, sampled, count, maskedOnly: count % 2 === 1 };
            const label = `length ${length}, count ${count}`;
            const got = await cpuDemask(cpu, c, mask, length % 3);
            const want = await gpuDemask(gpu, c, mask, 2);
            const oracle = selectOracle(tokens, scores, count, mask);
            assert.deepEqual(got.selected, oracle.tokens, `${label}: selected tokens`);
            assert.deepEqual(got.masked, oracle.masked, `${label}: masked`);
            assert.deepEqual(got.selected, want.selected, `${label}: selected vs WebGPU`);
            assert.deepEqual(got.masked, want.masked, `${label}: masked vs WebGPU`);
            const updated = oracle.tokens.map((t, i) => (oracle.masked[i] ? sampled[i] : t));
            const newScores = scores.map((s, i) => (!oracle.masked[i] && c.maskedOnly ? 1 : s));
            assert.deepEqual(got.tokens, updated, `${label}: updated tokens`);
            assert.deepEqual(got.tokens, want.tokens, `${label}: updated tokens vs WebGPU`);
            assert.deepEqual(Array.from(got.scores), Array.from(newScores), `${label}: scores`);
            assert.deepEqual(
              Array.from(got.scores),
              Array.from(want.scores),
              `${label}: scores vs WebGPU`,
            );
          }
        }
      });
    },
  );
}
