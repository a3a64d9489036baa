/**
 * The golden runner's tie classifier (tools/golden/ties.ts) on synthetic logits: a golden token
 * that loses by less than the tolerance is a tie, by more a failure; later steps are judged on
 * their own (teacher-forced) rows, so one flip fails nothing after it; a free run must match up
 * to its first divergence, which must be a tie; ties pass only where allowed.
 */

import assert from "node:assert/strict";
import { checkFreeRun, classifyTokens, tokenVerdict } from "../../../tools/golden/ties.ts";
import { tiesAllowed, TOLERANCE } from "../../../tools/golden/valle.ts";
import type { Backend } from "../../../src/backends/backend.ts";

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
