/**
 * The CPU sampler, guidance and NAR-len masking kernels (wasm/sample.c, cfg.c, demask.c) through
 * the model functions (`sampleLogits`, `guideLogits`, nar_len.ts's `select`/`update`), on the
 * CPU backends of ./_cpu.ts: a pool of 1 worker, of 2, and the single-thread runner of a host
 * without SharedArrayBuffer.
 *
 * tests/models/valle (golden_test.ts, sampler_test.ts) already runs the golden sampler, CFG and
 * NAR-len cases and the draw statistics on both backends, the CPU with a pool of 2. What only this
 * file checks:
 * - every runner gives WebGPU's tokens (and scores and logits within 1e-6 relative) on random
 *   logits, for every option set of the shared tests and golden cases, greedy and drawn, at the
 *   AR row width, NAR batches, the widest sorted row, ties and filtered (-inf) logits;
 * - seeded draws on 512 identical rows (the whole inverse CDF) equal WebGPU's;
 * - the draw is floor(u · cols) with u from pcg4d, checked against an independent JS pcg4d;
 * - CFG on random slices up to 500 rows of 1025 equals WebGPU and a float64 oracle, and its sums
 *   are compensated: a slice an uncompensated f32 sum gets wrong matches float64 within 1e-6;
 * - demask_select/update equal the rank rule (ties, a NaN score) and WebGPU, at lengths that
 *   split across threads.
 */

import assert from "node:assert/strict";
import type { Backend, Recorder, Tensor } from "../../src/backends/backend.ts";
import { readBytes, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { type CfgOptions, guideLogits } from "../../src/models/valle/cfg.ts";
import { select, update } from "../../src/models/valle/nar_len.ts";
import {
  type SampledLogits,
  sampleLogits,
  type SamplerOptions,
} from "../../src/models/valle/sampler.ts";
import { gpuTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import { cpuTest, withAllCpus } from "./_cpu.ts";

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

/** Every option set the shared sampler tests and golden cases run, and the stages alone. */
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

gpuTest(
  "sample: every CPU runner equals WebGPU on random logits, every option set",
  async (gpu) => {
    await withAllCpus(async (cpus) => {
      const rng = new Rng(8);
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
            const extra = {
              previous,
              lengthPenalty: n === 1 ? { length: previous.length + 1, token: cols - 1 } : undefined,
              seed: 1000 + call,
              stream: 1 + (call % 5),
              counter: call,
            };
            const label = `[${n}, ${cols}] ${JSON.stringify(options)}`;
            const want = await sampleLogits(gpu, logits, [n, cols], options, extra);
            for (const { name, cpu } of cpus) {
              const got = await sampleLogits(cpu, logits, [n, cols], options, extra);
              assertSameSample(got, want, `${name}, ${label}`);
            }
            call++;
          }
        }
      }
    });
  },
);

gpuTest(
  "sample: many seeded draws per row equal WebGPU's on every CPU runner (categorical inverse CDF)",
  async (gpu) => {
    await withAllCpus(async (cpus) => {
      const rng = new Rng(99);
      // 512 rows of one softmax-friendly row: every draw lands somewhere along the CDF.
      const [n, cols] = [512, 300];
      const row = rng.normals(cols, 1.5);
      const logits = new Float32Array(n * cols);
      for (let r = 0; r < n; r++) logits.set(row, r * cols);
      for (const counter of [0, 1, 2]) {
        const extra = { seed: 17, stream: 3, counter };
        const want = await sampleLogits(gpu, logits, [n, cols], { temperature: 1 }, extra);
        for (const { name, cpu } of cpus) {
          const got = await sampleLogits(cpu, logits, [n, cols], { temperature: 1 }, extra);
          assertSameSample(got, want, `${name}, counter ${counter}`);
        }
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

gpuTest(
  "sample: uniform rows draw floor(u · cols) with u from pcg4d, on WebGPU and every CPU runner",
  async (gpu) => {
    await withAllCpus(async (cpus) => {
      // Equal logits: every chunk sum and the total are exact integers, so the draw is
      // floor(f32(u · cols)) with u = (pcg4d.x >> 8) / 2^24, whatever the chunking.
      for (const [n, cols, seed] of [[300, 256, 5], [300, 1000, 0xfffffff0], [77, 3, 12]]) {
        const logits = new Float32Array(n * cols);
        const extra = { seed, stream: 2, counter: 41 };
        const expected = Array.from({ length: n }, (_, r) => {
          const u = (pcg4dX(seed, 2, 41, r) >>> 8) / 16777216;
          return Math.floor(Math.fround(u * cols));
        });
        const backends: { name: string; backend: Backend }[] = [
          { name: "WebGPU", backend: gpu },
          ...cpus.map(({ name, cpu }) => ({ name, backend: cpu })),
        ];
        for (const { name, backend } of backends) {
          const got = await sampleLogits(backend, logits, [n, cols], { temperature: 1 }, extra);
          assert.deepEqual(Array.from(got.tokens), expected, `${name}, ${cols} columns`);
          const uniform = new Float32Array(n).fill(1 / cols);
          assertRelClose(got.scores, uniform, 1e-6, `${name}, ${cols} columns: scores`);
        }
      }
    });
  },
);

// --- classifier-free guidance -------------------------------------------------------------------

/** cfg in double precision: z = u + (c − u) w, rescaled by φ std(c) / std(z) + 1 − φ. */
function cfgOracle(c: Float32Array, u: Float32Array, { strength, rescale }: CfgOptions) {
  const n = c.length;
  const z = Array.from(c, (v, i) => u[i] + (v - u[i]) * strength);
  const std = (a: ArrayLike<number>) => {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += a[i] / n;
    let sq = 0;
    for (let i = 0; i < n; i++) sq += (a[i] - mean) ** 2;
    return Math.sqrt(sq / (n - 1));
  };
  const stdCond = std(c);
  const stdGuided = std(z);
  const factor = rescale > 0 ? rescale * (stdCond / stdGuided) + 1 - rescale : 1;
  return { logits: z.map((v) => v * factor), stats: [stdCond, stdGuided, factor] };
}

gpuTest("cfg: every CPU runner equals WebGPU and a float64 oracle", async (gpu) => {
  await withAllCpus(async (cpus) => {
    const rng = new Rng(33);
    for (const n of [2, 21, 255, 1025, 5 * 1025, 40 * 1024 + 3, 500 * 1025]) {
      for (const options of [{ strength: 2.5, rescale: 0.75 }, { strength: 3, rescale: 0 }]) {
        const cond = rng.normals(n, 3).map((v) => v + 0.5);
        const uncond = rng.normals(n, 2);
        const want = await guideLogits(gpu, cond, uncond, options);
        const oracle = cfgOracle(cond, uncond, options);
        for (const { name, cpu } of cpus) {
          const label = `${name}, n ${n}, ${JSON.stringify(options)}`;
          const got = await guideLogits(cpu, cond, uncond, options);
          const stats = [got.stdCond, got.stdGuided, got.factor];
          assertRelClose(got.logits, want.logits, 1e-6, `${label}: logits vs WebGPU`);
          assertRelClose(
            stats,
            [want.stdCond, want.stdGuided, want.factor],
            1e-6,
            `${label}: stats vs WebGPU`,
          );
          assertClose(stats, oracle.stats, { atol: 1e-6, rtol: 1e-5, label });
          assertClose(got.logits, oracle.logits, { atol: 1e-5, rtol: 1e-5, label });
        }
      }
    }
  });
});

cpuTest("cfg: the sums are compensated like the WGSL's, so they match float64", async (cpu) => {
  // A first block of 1e8 then 1000 blocks of ones: an uncompensated f32 lane sum stays at 1e8
  // (its ulp is 8) and loses every one; the compensated sum keeps them. (WebGPU on lavapipe
  // loses them: its shader compiler folds the Kahan step away.)
  const n = 256 * 1001;
  const cond = new Float32Array(n).fill(1).fill(1e8, 0, 256);
  const uncond = new Float32Array(n);
  const options = { strength: 2, rescale: 0.5 };
  const got = await guideLogits(cpu, cond, uncond, options);
  const oracle = cfgOracle(cond, uncond, options);
  assertClose([got.stdCond, got.stdGuided, got.factor], oracle.stats, { atol: 0, rtol: 1e-6 });
  assertClose(got.logits, oracle.logits, { atol: 0, rtol: 1e-6 });
});

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
  /** Tokens and masks after `select`. */
  selected: Uint32Array;
  masked: Uint32Array;
  /** Tokens and scores after `update`. */
  tokens: Uint32Array;
  scores: Float32Array;
}

/**
 * nar_len.ts's `select` then `update` on `backend`, every tensor a view `pad` elements into its
 * buffer.
 */
async function demask(
  backend: Backend,
  c: DemaskCase,
  mask: number,
  pad: number,
): Promise<DemaskResult> {
  const length = c.tokens.length;
  const upload = (values: Uint32Array | Float32Array, dtype: "u32" | "f32"): Tensor => {
    const padded = dtype === "u32" ? new Uint32Array(pad + length) : new Float32Array(pad + length);
    padded.set(values, pad);
    return rows(uploadTensor(backend, padded, [pad + length], dtype, "test.demask"), pad, length);
  };
  const tokens = upload(c.tokens, "u32");
  const masked = upload(new Uint32Array(length), "u32");
  const scores = upload(c.scores, "f32");
  const sampled = upload(c.sampled, "u32");
  const run = async (record: (rec: Recorder) => void, read: Tensor[]) => {
    const rec = backend.createRecorder({ label: "test.demask" });
    record(rec);
    rec.submit();
    const bytes = await readBytes(backend, read);
    rec.destroy();
    return bytes;
  };
  try {
    const [selected, maskedOut] = await run(
      (rec) => select(rec, tokens, masked, scores, c.count, mask),
      [tokens, masked],
    );
    const [after, scoresOut] = await run(
      (rec) => update(rec, tokens, scores, sampled, masked, c.maskedOnly),
      [tokens, scores],
    );
    return {
      selected: new Uint32Array(selected),
      masked: new Uint32Array(maskedOut),
      tokens: new Uint32Array(after),
      scores: new Float32Array(scoresOut),
    };
  } finally {
    for (const t of [tokens, masked, scores, sampled]) t.buffer.destroy();
  }
}

gpuTest(
  "demask select, update: every CPU runner equals the rank rule and WebGPU",
  async (gpu) => {
    await withAllCpus(async (cpus) => {
      const rng = new Rng(6);
      const mask = 1024;
      // Up to 2100 frames: select splits by 16 frames, update by 1024.
      for (const length of [1, 4, 37, 500, 777, 2100]) {
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
          const oracle = selectOracle(tokens, scores, count, mask);
          const updated = oracle.tokens.map((t, i) => (oracle.masked[i] ? sampled[i] : t));
          const newScores = scores.map((s, i) => (!oracle.masked[i] && c.maskedOnly ? 1 : s));
          const want = await demask(gpu, c, mask, 2);
          for (const { name, cpu } of cpus) {
            const label = `${name}, length ${length}, count ${count}`;
            const got = await demask(cpu, c, mask, length % 3);
            assert.deepEqual(got.selected, oracle.tokens, `${label}: selected tokens`);
            assert.deepEqual(got.masked, oracle.masked, `${label}: masked`);
            assert.deepEqual(got.selected, want.selected, `${label}: selected vs WebGPU`);
            assert.deepEqual(got.masked, want.masked, `${label}: masked vs WebGPU`);
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
      }
    });
  },
);
