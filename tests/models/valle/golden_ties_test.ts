/**
 * The golden runner's tie classifier (tools/golden/ties.ts) on synthetic logits: a golden token
 * that loses by less than the tolerance is a tie, by more a failure; later steps are judged on
 * their own (teacher-forced) rows, so one flip fails nothing after it; a free run must match up
 * to its first divergence, which must be a tie; ties pass only where allowed.
 */

import assert from "node:assert/strict";
import { checkFreeRun, classifyTokens, tokenVerdict } from "../../../tools/golden/ties.ts";
import { runValleGolden, tiesAllowed, TOLERANCE } from "../../../tools/golden/valle.ts";
import type { CaseResult } from "../../../tools/golden/types.ts";
import type { Backend } from "../../../src/backends/backend.ts";
import {
  parseSafetensors,
  serializeSafetensors,
  type TensorData,
} from "../../../src/io/safetensors.ts";
import { ValleModel } from "../../../src/models/valle/mod.ts";
import { backendTest } from "../../_backends.ts";
import { FIXTURES, readFixture } from "../../_helpers.ts";

const FOLDER = new URL("valle-tiny/", FIXTURES);

const TOL = TOLERANCE.tie;

/** Rows of 4 logits: row r's best is best[r] by `gap` over the runner-up `second[r]`. */
function rows(best: number[], second: number[], gap: number[]): Float32Array {
  const out = new Float32Array(best.length * 4);
  best.forEach((b, r) => {
    out.fill(-1, r * 4, (r + 1) * 4);
    out[r * 4 + second[r]] = 1;
    out[r * 4 + b] = 1 + gap[r];
  });
  return out;
}

// Golden tokens 0 1 2 3 0. Our row 1 prefers 3 over the golden 1 by 1e-4 (a tie), row 3 prefers
// 1 over the golden 3 by 0.5 (a failure); the other rows agree, row 2 by the smallest margin.
const golden = [0, 1, 2, 3, 0];
const logits = rows([0, 3, 2, 1, 0], [1, 1, 0, 3, 2], [0.3, 1e-4, 0.01, 0.5, 0.2]);

Deno.test("tie classifier: a flip under the margin is a tie, over it a failure", () => {
  const cls = classifyTokens(logits, 4, golden, TOL);
  assert.equal(cls.rows, 5);
  assert.equal(cls.matched, 3);
  assert.deepEqual(cls.ties.map((x) => [x.row, x.got, x.expected]), [[1, 3, 1]]);
  assert.ok(Math.abs(cls.ties[0].margin - 1e-4) < 1e-6);
  assert.deepEqual(cls.failures.map((x) => [x.row, x.got, x.expected]), [[3, 1, 3]]);
  assert.ok(Math.abs(cls.closest.margin - 0.01) < 1e-6);
  assert.equal(cls.closest.row, 2);
  // A golden token that is no column, or whose logit is -inf or NaN, always fails.
  const bad = new Float32Array([0, 1, -Infinity, NaN]);
  const odd = classifyTokens(new Float32Array([...bad, ...bad, ...bad]), 4, [7, 2, 3], TOL);
  assert.deepEqual(odd.failures.map((x) => x.margin), [Infinity, Infinity, Infinity]);
});

Deno.test("tie classifier: steps after a tie are judged teacher-forced, on their own rows", () => {
  // Only the tie at row 1: every later row sees the golden prefix and matches.
  const fine = rows([0, 3, 2, 3, 0], [1, 1, 0, 1, 2], [0.3, 1e-4, 0.01, 0.5, 0.2]);
  const cls = classifyTokens(fine, 4, golden, TOL);
  assert.deepEqual([cls.matched, cls.ties.length, cls.failures.length], [4, 1, 0]);
  // The free run took the tie's other branch at step 1 and then went its own way: consistent,
  // nothing after the divergence is compared.
  const free = checkFreeRun(fine, 4, golden, [0, 3, 3, 3, 3, 3], TOL);
  assert.deepEqual([free.diverged, free.consistent], [1, true]);
  assert.match(free.detail!, /^free run diverged at \[1\] 3 vs 1 .*a tie/);
  const allowed = tokenVerdict(cls, free, true);
  assert.equal(allowed.passed, true);
  assert.ok(allowed.maxError > 0 && allowed.maxError <= TOL);
  assert.match(allowed.detail!, /^1 tie: \[1\] 3 vs 1 \(/);
  // Where ties are not allowed (CPU, software adapters) the same run fails, and says why.
  const strict = tokenVerdict(cls, free, false);
  assert.equal(strict.passed, false);
  assert.match(strict.detail!, /^1 tie \(not allowed on this backend\)/);
  assert.match(strict.detail!, /the rest checked teacher-forced \(not allowed on this backend\)$/);
  // A free run that diverged at a tie fails there even when the teacher-forced rows all match.
  const clean = classifyTokens(fine, 4, [0, 3, 2, 3, 0], TOL);
  assert.deepEqual([clean.ties.length, clean.failures.length], [0, 0]);
  const alt = checkFreeRun(fine, 4, [0, 3, 2, 3, 0], [0, 1, 1], TOL);
  assert.equal(alt.consistent, true);
  assert.equal(tokenVerdict(clean, alt, false).passed, false);
  assert.equal(tokenVerdict(clean, alt, true).passed, true);
  // A clear failure fails either way.
  assert.equal(tokenVerdict(classifyTokens(logits, 4, golden, TOL), undefined, true).passed, false);
});

Deno.test("tie classifier: a free run must diverge at a tie", () => {
  const cls = classifyTokens(logits, 4, golden, TOL);
  // Identical up to the end: consistent; a different length is not.
  assert.deepEqual(checkFreeRun(logits, 4, golden, golden, TOL), {
    diverged: -1,
    consistent: true,
  });
  assert.equal(checkFreeRun(logits, 4, golden, golden.slice(0, 4), TOL).consistent, false);
  // Diverging at row 0 (golden 0 beats 1 by 0.3): not a tie.
  const clear = checkFreeRun(logits, 4, golden, [1, 1, 2, 3, 0], TOL);
  assert.deepEqual([clear.diverged, clear.consistent], [0, false]);
  assert.equal(tokenVerdict(cls, clear, true).passed, false);
  // Diverging at row 1 to a token that is not near the top: not a tie either.
  assert.equal(checkFreeRun(logits, 4, golden, [0, 2, 2, 3, 0], TOL).consistent, false);
  // Grouped rows (NAR levels): every differing row of the first differing group must be a tie,
  // later groups are not compared.
  const group = [0, 1, 1, 2, 2];
  const g = checkFreeRun(logits, 4, golden, [0, 3, 2, 0, 0], TOL, group);
  assert.deepEqual([g.diverged, g.consistent], [1, true]);
  const g2 = checkFreeRun(logits, 4, golden, [0, 3, 0, 0, 0], TOL, group);
  assert.deepEqual([g2.diverged, g2.consistent], [1, false]);
});

Deno.test("tie classifier: ties are not allowed on the CPU backend and software adapters", () => {
  const of = (b: unknown) => tiesAllowed(b as Backend);
  assert.equal(of({ kind: "cpu" }), false);
  assert.equal(of({ kind: "webgpu", adapter: { software: true } }), false);
  assert.equal(of({ kind: "webgpu", adapter: { software: false } }), true);
});

/**
 * valle-tiny's AR file with the stop decision of `greedy` (step 23, a gap of 0.13) given to the
 * runner-up: through the runner, with the tie tolerance widened past that gap, one tie that the
 * free run reproduces and the stop step's cases following it; ties not allowed, a failure; the
 * real tolerance, a clear failure. The tokens before the flip still match, teacher-forced.
 */
backendTest("golden runner: a flipped AR stop decision is a tie or a failure", async (backend) => {
  const dir = await Deno.makeTempDir();
  try {
    const folder = new URL(`file://${dir}/`);
    const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", FOLDER)));
    for (const f of ["model.sft", "inputs.safetensors"]) {
      await Deno.copyFile(new URL(f, FOLDER), new URL(f, folder));
    }
    const ar = parseSafetensors(await readFixture("valle-tiny/ar.safetensors"));
    const sampled = ar.toInt32("greedy.sampled");
    const step = sampled.length - 1;
    assert.equal(sampled[step], 1024);
    // The runner-up of the stop step, from our own teacher-forced logits.
    const valle = await ValleModel.load(new URL("model.sft", FOLDER), {
      backend,
      precision: "f32",
    });
    const inputs = parseSafetensors(await readFixture("valle-tiny/inputs.safetensors"));
    const [frames, levels] = inputs.info("prom").shape;
    const { logits, columns } = await valle.logits({
      phonemes: inputs.toInt32("phn"),
      language: inputs.toInt32("lang")[0],
      prompt: { data: inputs.toInt32("prom"), frames, levels },
      mode: "ar",
      response: sampled.subarray(0, step),
      teacherForced: true,
    });
    valle.dispose();
    const row = logits.subarray(step * columns, (step + 1) * columns);
    let second = 0;
    for (let c = 0; c < 1024; c++) if (row[c] > row[second]) second = c;
    const gap = row[1024] - row[second];
    assert.ok(gap > 0.05 && gap < 0.5, `stop gap ${gap}`);
    const tensors: Record<string, TensorData> = {};
    for (const name of ar.names) {
      const { dtype, shape } = ar.info(name);
      tensors[name] = { dtype, shape, data: ar.bytes(name) };
    }
    const flipped = sampled.slice();
    flipped[step] = second;
    tensors["greedy.sampled"] = { dtype: "I32", shape: [flipped.length], data: flipped };
    await Deno.writeFile(
      new URL("ar.safetensors", folder),
      serializeSafetensors(tensors, ar.metadata),
    );
    const run = async (options: { allowTies: boolean; tieTolerance?: number }) => {
      const out = new Map<string, CaseResult>();
      for await (
        const r of runValleGolden(folder, manifest, {
          backend,
          precisions: ["f32"],
          files: ["ar.safetensors"],
          ...options,
        })
      ) out.set(r.name.replace(/^ar\.safetensors:| \[f32\]$/g, ""), r);
      return out;
    };
    const tie = await run({ allowTies: true, tieTolerance: 0.5 });
    const s = tie.get("greedy.sampled")!;
    assert.equal(s.passed, true, s.detail);
    assert.match(s.detail!, new RegExp(`^1 tie: \\[${step}\\] 1024 vs ${second} \\(`));
    assert.match(s.detail!, new RegExp(`free run diverged at \\[${step}\\] 1024 vs ${second}`));
    assert.ok(Math.abs(s.maxError - gap) < 1e-5);
    for (const name of ["greedy.stopped_at", "greedy.output"]) {
      assert.equal(tie.get(name)!.passed, true);
      assert.match(tie.get(name)!.detail!, /^not compared on its own: the free run diverged/);
    }
    assert.deepEqual([...tie.values()].filter((r) => !r.passed).map((r) => r.name), []);
    const strict = (await run({ allowTies: false, tieTolerance: 0.5 })).get("greedy.sampled")!;
    assert.equal(strict.passed, false);
    assert.match(strict.detail!, /^1 tie \(not allowed on this backend\)/);
    const clear = await run({ allowTies: true });
    assert.equal(clear.get("greedy.sampled")!.passed, false);
    assert.match(
      clear.get("greedy.sampled")!.detail!,
      new RegExp(`^1 of ${sampled.length} differ clearly: \\[${step}\\] 1024 vs ${second}`),
    );
    assert.equal(clear.get("greedy.stopped_at")!.passed, false);
    assert.equal(clear.get("greedy_pen.sampled")!.passed, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * valle-tiny's NAR-len `base` run with the token of the last step's one masked frame given to its
 * runner-up: with the tie tolerance widened, the free run's divergence at that step is a tie, the
 * masks, scores and factors before it still match, and `final` follows the tokens case; at the
 * real tolerance it is a clear failure.
 */
backendTest("golden runner: a flipped NAR-len token is a tie or a failure", async (backend) => {
  const dir = await Deno.makeTempDir();
  try {
    const folder = new URL(`file://${dir}/`);
    const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", FOLDER)));
    for (const f of ["model.sft", "inputs.safetensors"]) {
      await Deno.copyFile(new URL(f, FOLDER), new URL(f, folder));
    }
    const nl = parseSafetensors(await readFixture("valle-tiny/nar_len.safetensors"));
    const L = manifest.files["nar_len.safetensors"].settings.L as number;
    const tokens = nl.toInt32("base.tokens");
    const masked = nl.toInt32("base.masked");
    const last = tokens.length / L - 1;
    const frame = Array.from(masked.subarray(last * L)).indexOf(1);
    assert.ok(frame >= 0);
    // The runner-up of that frame, from our guided logits of the golden input of the last step.
    const valle = await ValleModel.load(new URL("model.sft", FOLDER), {
      backend,
      precision: "f32",
    });
    const inputs = parseSafetensors(await readFixture("valle-tiny/inputs.safetensors"));
    const [frames, levels] = inputs.info("prom").shape;
    const response = Int32Array.from(
      { length: L },
      (_, i) => masked[last * L + i] ? 1024 : tokens[(last - 1) * L + i],
    );
    const { logits, columns } = await valle.logits({
      phonemes: inputs.toInt32("phn"),
      language: inputs.toInt32("lang")[0],
      prompt: { data: inputs.toInt32("prom"), frames, levels },
      mode: "nar-len",
      response,
      cfg: { strength: 2.5, rescale: 0.75 },
    });
    valle.dispose();
    const row = logits.subarray(frame * columns, (frame + 1) * columns);
    const want = tokens[last * L + frame];
    let second = want === 0 ? 1 : 0;
    for (let c = 0; c < columns; c++) if (c !== want && row[c] > row[second]) second = c;
    const tensors: Record<string, TensorData> = {};
    for (const name of nl.names) {
      const { dtype, shape } = nl.info(name);
      tensors[name] = { dtype, shape, data: nl.bytes(name) };
    }
    const flipped = tokens.slice();
    flipped[last * L + frame] = second;
    tensors["base.tokens"] = { dtype: "I32", shape: [last + 1, L], data: flipped };
    await Deno.writeFile(
      new URL("nar_len.safetensors", folder),
      serializeSafetensors(tensors, nl.metadata),
    );
    const run = async (tieTolerance?: number) => {
      const out = new Map<string, CaseResult>();
      for await (
        const r of runValleGolden(folder, manifest, {
          backend,
          precisions: ["f32"],
          files: ["nar_len.safetensors"],
          allowTies: true,
          tieTolerance,
        })
      ) out.set(r.name.replace(/^nar_len\.safetensors:| \[f32\]$/g, ""), r);
      return out;
    };
    const tie = await run(2);
    const t = tie.get("base.tokens")!;
    assert.equal(t.passed, true, t.detail);
    const at = `\\[${last * L + frame}\\] ${want} vs ${second}`;
    assert.match(t.detail!, new RegExp(`^1 tie: ${at} \\(`));
    assert.match(t.detail!, new RegExp(`tokens diverged at step ${last}: frame ${frame} `));
    for (const name of ["base.masked", "base.scores", "base.cfg_factor"]) {
      assert.equal(tie.get(name)!.passed, true, tie.get(name)!.detail);
      assert.match(tie.get(name)!.detail!, new RegExp(`steps ${last}\\.\\. not compared`));
    }
    assert.match(tie.get("base.final")!.detail!, /^not compared on its own/);
    assert.deepEqual([...tie.values()].filter((r) => !r.passed).map((r) => r.name), []);
    const clear = await run();
    assert.match(clear.get("base.tokens")!.detail!, new RegExp(`differ clearly: ${at}`));
    assert.equal(clear.get("base.final")!.passed, false);
    assert.equal(clear.get("remask.tokens")!.passed, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
