/**
 * The run state's size accounting is what it allocates: `runStateBytes` is the memory
 * `createRunState` takes, and `largestRunStateBuffer` its widest buffer (what the binding limit
 * bounds), whether the stacked projection outputs are as wide as gate | up or as Q | K | V.
 */

import assert from "node:assert/strict";
import type { Tensor } from "../../../src/backends/backend.ts";
import { byteSize } from "../../../src/backends/tensor.ts";
import type { ValleConfig } from "../../../src/models/valle/config.ts";
import {
  createRunState,
  destroyRunState,
  largestRunStateBuffer,
  runStateBytes,
  stackedColumns,
} from "../../../src/models/valle/state.ts";
import { backendTest } from "../../_backends.ts";

/** A config with the fields the run state depends on. */
function config(dModel: number, dFf: number, nAudio: number): ValleConfig {
  const nHeads = 4;
  return {
    dModel,
    dFf,
    nHeads,
    headDim: dModel / nHeads,
    nLayers: 2,
    nLevels: 8,
    nAudio,
    nPhn: 16,
    nLen: 11,
    ropeTheta: 10000,
  } as ValleConfig;
}

// [d, dFf, nAudio, widest]: gate | up widest (2F > 3d), Q | K | V widest (3d > 2F), the logits.
const CASES: [number, number, number, string][] = [
  [32, 128, 16, "stacked"],
  [64, 48, 16, "stacked"],
  [32, 128, 1024, "logits"],
];

for (const [d, f, audio, widest] of CASES) {
  backendTest(`the run state's size accounting matches its buffers, d=${d} F=${f}`, (backend) => {
    const c = config(d, f, audio);
    const capacity = 37;
    const before = backend.memory.current;
    const state = createRunState(backend, c, capacity);
    try {
      const tensors = Object.values(state).flat().filter((t): t is Tensor =>
        typeof t === "object" && t !== null && "buffer" in t
      );
      const bytes = tensors.map((t) => byteSize(t.shape, t.dtype));
      assert.equal(runStateBytes(c, capacity), bytes.reduce((a, b) => a + b));
      assert.ok(backend.memory.current - before >= runStateBytes(c, capacity));
      // The widest of the buffers that grow with the capacity (the split decoding's partials are
      // a few hundred KiB whatever the capacity).
      const largest = largestRunStateBuffer(c, capacity);
      const growing = tensors.filter((t) => t !== state.attentionPartials);
      assert.equal(largest.bytes, Math.max(...growing.map((t) => byteSize(t.shape, t.dtype))));
      assert.equal(largest.label, `valle.state.${widest}`);
      assert.deepEqual(state.stacked.shape, [capacity, stackedColumns(c)]);
      assert.equal(stackedColumns(c), Math.max(3 * d, 2 * f));
    } finally {
      destroyRunState(state);
    }
  });
}
