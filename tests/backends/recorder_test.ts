/**
 * Recorders on every backend: a recording call that is refused (here: a tensor of no backend's)
 * records nothing, neither a command nor an open command list, so the recorder can be destroyed
 * or go on recording as if the call had not been made.
 */

import assert from "node:assert/strict";
import type { Recorder, Tensor } from "../../src/backends/backend.ts";
import { createTensor, readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { OptionError } from "../../src/errors.ts";
import { gelu } from "../../src/ops/activation.ts";
import { backendTest } from "../_backends.ts";

/** A tensor no backend holds: every backend refuses to bind it. */
const FOREIGN: Tensor = {
  buffer: { size: 64, label: "foreign", destroy() {} },
  dtype: "f32",
  shape: [16],
  offset: 0,
};

/** Refused calls, each given a tensor of the backend's to record alongside the foreign one. */
const REFUSED: [string, (rec: Recorder, own: Tensor) => unknown][] = [
  ["dispatch", (rec) => gelu(rec, FOREIGN)],
  ["copy into a foreign tensor", (rec, own) => rec.copy(own, FOREIGN)],
  ["copy from a foreign tensor", (rec, own) => rec.copy(FOREIGN, own)],
  ["clear", (rec) => rec.clear(FOREIGN)],
  ["readback", (rec, own) => rec.readback([own, FOREIGN])],
];

for (const [what, call] of REFUSED) {
  backendTest(`a refused ${what} leaves nothing recorded`, async (backend) => {
    const values = Float32Array.from({ length: 16 }, (_, i) => i - 8);
    const x = uploadTensor(backend, values, [16], "f32", "x");
    const y = createTensor(backend, [16], "f32", "y");
    const rec = backend.createRecorder();
    const held = backend.memory.current;
    assert.throws(() => call(rec, x), OptionError);
    assert.equal(backend.memory.current, held, "nothing allocated for the refused call");
    // Unsubmitted work would make this throw.
    rec.destroy();
    // A recorder that refused a call records and runs the next work alone.
    const next = backend.createRecorder();
    assert.throws(() => call(next, x), OptionError);
    next.copy(x, y);
    next.submit();
    assert.deepEqual(await readF32(backend, y), values);
    next.destroy();
    x.buffer.destroy();
    y.buffer.destroy();
  });
}
