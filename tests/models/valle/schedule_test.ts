/**
 * The demask schedule's documented facts (valle-spec §13.5 and Correction 1); the golden files
 * check the float32 timesteps and counts for S = 8…50 and six lengths.
 */

import assert from "node:assert/strict";
import { demaskSchedule, demaskTimesteps } from "../../../src/models/valle/schedule.ts";

Deno.test("L 100, S 25: floor(cos(t·π/2)·100) clamped to [1, 100 − k], 100 first, 1 last", () => {
  const counts = demaskSchedule({ steps: 25, length: 100 }).map((s) => s.count);
  assert.equal(counts[0], 100);
  assert.equal(counts[24], 1);
  counts.forEach((n, k) => {
    const exact = Math.floor(Math.cos((k / 24) * Math.PI / 2) * 100);
    assert.ok(Math.abs(n - Math.max(1, Math.min(100 - k, exact))) <= 1, `step ${k}: ${n}`);
  });
});

Deno.test("float32 linspace, not k/(S−1): L 12, S 10, step 6 masks 5 (exact arithmetic gives 6)", () => {
  const t = demaskTimesteps(10);
  assert.notEqual(t[6], 6 / 9);
  assert.equal(demaskSchedule({ steps: 10, length: 12 })[6].count, 5);
  assert.equal(Math.floor(Math.cos((6 / 9) * Math.PI / 2) * 12), 6);
});

Deno.test("annealed temperature falls from T0 to 0; remasking adds 1/(2S) to the ratio", () => {
  const s = demaskSchedule({ steps: 5, length: 40, temperature: 1.5, remask: true });
  assert.equal(s[0].temperature, 1.5);
  assert.equal(s[4].temperature, 0);
  // Step 2 (t = 0.5): (cos(π/4) + 0.1) · 40 = 32.3 → 32; without remasking 28.
  assert.equal(s[2].count, 32);
  assert.equal(demaskSchedule({ steps: 5, length: 40 })[2].count, 28);
  // Step 1 would mask 40 but is clamped to L − k = 39.
  assert.equal(s[1].count, 39);
  assert.equal(
    demaskSchedule({ steps: 5, length: 40, temperature: 1.5, annealed: false })[4].temperature,
    1.5,
  );
});
