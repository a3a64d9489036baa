/**
 * The guidance statistics and the NAR-len masking step spread over the GPU: `cfg_stats` runs its
 * first stages on up to 256 workgroups (then one folds their sums), `demask_select` one workgroup
 * per 64 positions, where each ran on a single workgroup. (Their results on both backends:
 * tests/backends/cpu_sampler_test.ts.)
 */

import assert from "node:assert/strict";
import type { KernelSpec, Recorder, Tensor, Workgroups } from "../../../src/backends/backend.ts";
import { cfg, CFG_STATS_WORDS } from "../../../src/models/valle/cfg.ts";
import { select } from "../../../src/models/valle/nar_len.ts";

/** A recorder that keeps each dispatch's kernel and grid. */
function gridRecorder(): { rec: Recorder; grids: [string, Workgroups][] } {
  const grids: [string, Workgroups][] = [];
  const rec = {
    dispatch: (spec: KernelSpec, _b: unknown, _p: unknown, workgroups: Workgroups) => {
      grids.push([spec.shader, workgroups]);
    },
  } as unknown as Recorder;
  return { rec, grids };
}

const tensor = (shape: number[], dtype: "f32" | "u32" = "f32"): Tensor => ({
  buffer: {} as Tensor["buffer"],
  dtype,
  shape,
  offset: 0,
});

Deno.test("cfg_stats reduces over up to 256 workgroups, then folds on one", () => {
  // [elements, workgroups of the first two stages]: chunks of whole 256-element blocks.
  for (const [n, groups] of [[21, 1], [5 * 1025, 21], [500 * 1025, 251]]) {
    const { rec, grids } = gridRecorder();
    cfg(rec, tensor([n]), tensor([n]), tensor([CFG_STATS_WORDS]), { strength: 3, rescale: 0.7 });
    assert.deepEqual(grids, [
      ["cfg_stats", [groups]],
      ["cfg_stats", [groups]],
      ["cfg_stats", [1]],
      ["cfg_apply", [Math.ceil(n / 256), 1]],
    ]);
  }
});

Deno.test("demask_select runs one workgroup per 64 positions", () => {
  for (const length of [1, 64, 65, 2100]) {
    const { rec, grids } = gridRecorder();
    select(rec, tensor([length], "u32"), tensor([length], "u32"), tensor([length]), 3, 1024);
    assert.deepEqual(grids, [["demask_select", [Math.ceil(length / 64), 1]]]);
  }
});
