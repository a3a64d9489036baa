/**
 * The optimizer kernels on every backend: adamw against a float64 re-implementation of
 * torch.optim.AdamW over several steps and against numbers from PyTorch itself
 * (tests/fixtures/adamw, with clip_grad_norm_), sumSquares against float64 sums with and without
 * its two-pass scratch, and clipFactor.
 */

import { deepStrictEqual, throws } from "node:assert";
import type { Backend } from "../../src/backends/backend.ts";
import { createTensor, readF32, rows, uploadTensor } from "../../src/backends/tensor.ts";
import { OptionError } from "../../src/errors.ts";
import {
  adamw,
  type AdamWOptions,
  clipFactor,
  SUM_SQUARES_PARTIALS,
  sumSquares,
} from "../../src/ops/adamw.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, readFixture, Rng } from "../_helpers.ts";

/** torch.optim.AdamW's step on float64 arrays (in place), the gradient scaled first. */
function adamwStep(
  p: Float64Array,
  g: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  scale: number,
  o: AdamWOptions,
): void {
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * scale;
    p[i] *= 1 - o.lr * o.weightDecay;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
    p[i] -= (o.lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + o.eps);
  }
}

const UPSTREAM = { lr: 3.25e-4, beta1: 0.9, beta2: 0.96, eps: 1e-7, weightDecay: 0.01 };

backendTest("adamw() matches float64 AdamW over five steps", async (backend) => {
  // Views at offsets inside larger buffers; the gradient scale changes between steps.
  const rng = new Rng(1);
  const n = 1000;
  const p0 = rng.normals(n, 0.05);
  const t = (label: string, values = new Float32Array(n + 7)) => ({
    ...uploadTensor(backend, values, [n + 7], "f32", label),
    shape: [n],
    offset: 3,
  });
  const padded = new Float32Array(n + 7);
  padded.set(p0, 3);
  const p = t("p", padded);
  const m = t("m");
  const v = t("v");
  const g = t("g");
  const scale = createTensor(backend, [4], "f32", "scale");
  const pRef = Float64Array.from(p0);
  const mRef = new Float64Array(n);
  const vRef = new Float64Array(n);
  for (let step = 1; step <= 5; step++) {
    const grad = rng.normals(n, step === 3 ? 1e-4 : 0.3);
    const factor = step % 2 ? 1 : 0.37;
    const gPadded = new Float32Array(n + 7);
    gPadded.set(grad, 3);
    backend.write(g, gPadded.subarray(3));
    backend.write(rows(scale, 2, 1), Float32Array.of(factor));
    const options = { ...UPSTREAM, lr: 1e-2, step };
    const rec = backend.createRecorder();
    adamw(rec, p, g, m, v, rows(scale, 2, 1), options);
    rec.submit();
    adamwStep(pRef, Float32Array.from(grad), mRef, vRef, Math.fround(factor), options);
    const [pGot, mGot, vGot] = await Promise.all([p, m, v].map((x) => readF32(backend, x)));
    assertClose(mGot, mRef, { atol: 1e-7, rtol: 1e-5, label: `m, step ${step}` });
    assertClose(vGot, vRef, { atol: 1e-9, rtol: 1e-5, label: `v, step ${step}` });
    assertClose(pGot, pRef, { atol: 1e-6, rtol: 1e-5, label: `p, step ${step}` });
  }
});

interface TorchStep {
  grad: number[];
  norm: number;
  factor: number;
  p: number[];
  m: number[];
  v: number[];
}

const torchFixture = async () =>
  JSON.parse(new TextDecoder().decode(await readFixture("adamw/torch_adamw.json"))) as {
    hyper: typeof UPSTREAM & { maxNorm: number };
    initial: number[];
    steps: TorchStep[];
  };

backendTest("clip and adamw match torch's clip_grad_norm_ and AdamW over three steps", async (
  backend,
) => {
  const { hyper, initial, steps } = await torchFixture();
  const n = initial.length;
  const p = uploadTensor(backend, Float32Array.from(initial), [n], "f32", "p");
  const [g, m, v] = ["g", "m", "v"].map((label) => createTensor(backend, [n], "f32", label));
  const sumsq = createTensor(backend, [1], "f32", "sumsq");
  const scale = createTensor(backend, [1], "f32", "scale");
  for (const [i, expected] of steps.entries()) {
    backend.write(g, Float32Array.from(expected.grad));
    const rec = backend.createRecorder();
    rec.clear(sumsq);
    sumSquares(rec, sumsq, g);
    clipFactor(rec, scale, sumsq, hyper.maxNorm);
    adamw(rec, p, g, m, v, scale, { ...hyper, step: i + 1 });
    rec.submit();
    const [norm2, factor] = [await readF32(backend, sumsq), await readF32(backend, scale)];
    assertClose(norm2, [expected.norm ** 2], { rtol: 1e-6, label: `norm², step ${i + 1}` });
    assertClose(factor, [expected.factor], { rtol: 1e-6, label: `factor, step ${i + 1}` });
    const tol = { atol: 1e-7, rtol: 2e-6 };
    assertClose(await readF32(backend, m), expected.m, { ...tol, label: `m, step ${i + 1}` });
    assertClose(await readF32(backend, v), expected.v, { ...tol, label: `v, step ${i + 1}` });
    assertClose(await readF32(backend, p), expected.p, { ...tol, label: `p, step ${i + 1}` });
  }
});

/** Σ x² in float64. */
function sumOfSquares(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

async function runSumSquares(
  backend: Backend,
  x: Float32Array,
  withPartials: boolean,
  start = 0,
): Promise<number> {
  const xt = uploadTensor(backend, x, [x.length], "f32", "x");
  const out = uploadTensor(backend, Float32Array.of(9, 0.25, 9), [3], "f32", "out");
  const partials = withPartials
    ? createTensor(backend, [SUM_SQUARES_PARTIALS + 1], "f32", "partials")
    : undefined;
  const rec = backend.createRecorder();
  sumSquares(rec, rows(out, 1, 1), rows(xt, start, x.length - start), {
    partials: partials && rows(partials, 1, SUM_SQUARES_PARTIALS),
  });
  rec.submit();
  const got = await readF32(backend, out);
  deepStrictEqual([got[0], got[2]], [9, 9]);
  return got[1] - 0.25;
}

for (const n of [1, 1000, 5000, 300_001]) {
  for (const withPartials of [false, true]) {
    backendTest(
      `sumSquares() adds Σ x² of ${n} elements${withPartials ? " in two passes" : ""}`,
      async (backend) => {
        const x = new Rng(n).normals(n, 2);
        const got = await runSumSquares(backend, x, withPartials, n > 1 ? 1 : 0);
        const expected = sumOfSquares(x.subarray(n > 1 ? 1 : 0)) + 0.25;
        assertClose([got + 0.25], [expected], { rtol: 2e-6 });
      },
    );
  }
}

backendTest("sumSquares() accumulates across calls", async (backend) => {
  const rng = new Rng(2);
  const [a, b] = [rng.normals(100), rng.normals(37)];
  const out = createTensor(backend, [1], "f32", "out");
  const rec = backend.createRecorder();
  sumSquares(rec, out, uploadTensor(backend, a, [10, 10], "f32", "a"));
  sumSquares(rec, out, uploadTensor(backend, b, [37], "f32", "b"));
  rec.submit();
  assertClose(await readF32(backend, out), [sumOfSquares(a) + sumOfSquares(b)], { rtol: 1e-6 });
});

backendTest("clipFactor() is min(1, maxNorm / (norm + 1e-6))", async (backend) => {
  const cases = [[16, 1], [0.25, 1], [0, 1], [1e4, 2.5]];
  for (const [sumsq, maxNorm] of cases) {
    const s = uploadTensor(backend, Float32Array.of(sumsq), [1], "f32", "sumsq");
    const scale = createTensor(backend, [1], "f32", "scale");
    const rec = backend.createRecorder();
    clipFactor(rec, scale, s, maxNorm);
    rec.submit();
    const expected = Math.min(1, maxNorm / (Math.sqrt(sumsq) + 1e-6));
    assertClose(await readF32(backend, scale), [expected], { rtol: 1e-6 });
  }
});

backendTest("adamw() and sumSquares() refuse mismatched tensors", (backend) => {
  const p = createTensor(backend, [8], "f32", "p");
  const rec = backend.createRecorder();
  const options = { ...UPSTREAM, step: 1 };
  throws(
    () => adamw(rec, p, createTensor(backend, [7], "f32", "g"), p, p, p, options),
    (e) => e instanceof OptionError && /g has shape \[7\], expected \[8\]/.test(e.message),
  );
  throws(
    () => adamw(rec, p, p, p, p, createTensor(backend, [1], "f32", "s"), { ...options, step: 0 }),
    (e) => e instanceof OptionError && /step 0/.test(e.message),
  );
  throws(
    () => sumSquares(rec, createTensor(backend, [1], "f32", "o"), p, { partials: p }),
    (e) => e instanceof OptionError && /partials \[8\] holds fewer/.test(e.message),
  );
  rec.destroy();
});
