/**
 * Bounded submits: a pass over many rows is split between blocks so that no submit holds more
 * than `SUBMIT_FLOPS` where one block fits (a 1,000-row pass of the released model: one block per
 * submit), while decode steps stay one submit.
 */

import assert from "node:assert/strict";
import type { ValleConfig } from "../../../src/models/valle/config.ts";
import { layersPerSubmit, SUBMIT_FLOPS } from "../../../src/models/valle/forward.ts";

/** The released model's shape. */
const RELEASED = { dModel: 1024, dFf: 4096, nLayers: 12 } as ValleConfig;

/** FLOPs of one block over `rows` rows, counted independently of the code under test. */
function blockFlops(rows: number): number {
  const { dModel: d, dFf } = RELEASED;
  const projections = 4 * d * d; // q, k, v, o
  const mlp = 3 * d * dFf; // gate, up, down
  const attention = 2 * 2 * rows * d; // scores and weighted sums over at most `rows` keys
  return rows * (2 * (projections + mlp) + attention);
}

Deno.test("a pass is split between blocks so that no submit exceeds SUBMIT_FLOPS", () => {
  assert.equal(layersPerSubmit(RELEASED, 1), 12, "a decode step is one submit");
  assert.equal(layersPerSubmit(RELEASED, 4), 12);
  assert.equal(layersPerSubmit(RELEASED, 1000), 1, "a 1000-row NAR pass: a block per submit");
  for (const rows of [1, 16, 64, 150, 300, 600, 1000, 2400, 5000]) {
    const every = layersPerSubmit(RELEASED, rows);
    assert.ok(every >= 1 && every <= 12);
    if (blockFlops(rows) <= SUBMIT_FLOPS) {
      assert.ok(every * blockFlops(rows) <= SUBMIT_FLOPS, `${rows} rows: ${every} blocks`);
      assert.ok((every + 1) * blockFlops(rows) > SUBMIT_FLOPS || every === 12, `${rows} rows`);
    } else {
      assert.equal(every, 1, `${rows} rows: a block alone is over the bound`);
    }
  }
});
