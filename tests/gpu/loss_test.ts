/**
 * Device loss: a device destroyed under a running model (mid-readback, mid-NAR-len) turns the call
 * into a `GpuError` that says the device was lost and what to do, never a raw `DOMException` or a
 * hang; and a model loaded again afterwards (a new device) works.
 */

import assert from "node:assert/strict";
import { GpuError } from "../../src/errors.ts";
import { requestGpu, summarize } from "../../src/backends/webgpu/device.ts";
import { createTensor } from "../../src/backends/tensor.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { TINY_COND, TINY_MODEL } from "../models/valle/_tiny.ts";

const LOST =
  /^Cannot (use the GPU: device lost \(the device was destroyed by someone else\); create the model \(or backend\) again to continue|read "[^"]*" back from the GPU: .*)$/;

/** NAR-len on the tiny model, few steps (each new device compiles its pipelines again). */
const REQUEST = { ...TINY_COND, modality: "nar-len", narLen: { steps: 4 } } as const;

const options = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...options,
  name: "a device destroyed mid-readback rejects the read with a GpuError, not a DOMException",
  fn: async () => {
    const gpu = await requestGpu();
    const t = createTensor(gpu, [1024], "f32", "t");
    const reading = gpu.read([t]);
    gpu.device.destroy();
    await assert.rejects(reading, (e: Error) => e instanceof GpuError && LOST.test(e.message));
    await assert.rejects(gpu.fence(), GpuError);
    assert.ok(gpu.lost);
    gpu.destroy();
  },
});

Deno.test({
  ...options,
  name: "a device destroyed mid-NAR-len rejects the call with a GpuError, then a new model works",
  fn: async () => {
    const gpu = await requestGpu();
    const model = await ValleModel.load(TINY_MODEL, { backend: gpu });
    const expected = (await model.generate(REQUEST)).codes.data;
    let steps = 0;
    await assert.rejects(
      model.generate({
        ...REQUEST,
        onProgress: (p) => {
          if (p.phase === "level0" && ++steps === 2) gpu.device.destroy();
        },
      }),
      (e: Error) => e instanceof GpuError && LOST.test(e.message),
    );
    assert.ok(steps >= 2, "NAR-len was under way");
    await assert.rejects(model.generate(REQUEST), GpuError);
    await model.dispose();
    gpu.destroy();
    // Loaded again (a new device), the model gives what it gave before.
    const again = await requestGpu();
    const reloaded = await ValleModel.load(TINY_MODEL, { backend: again });
    try {
      assert.deepEqual((await reloaded.generate(REQUEST)).codes.data, expected);
    } finally {
      await reloaded.dispose();
      again.destroy();
    }
  },
});

Deno.test("adapters are described without adapterInfo, and SwiftShader is software", () => {
  assert.deepEqual(summarize(undefined), {
    vendor: "",
    architecture: "",
    device: "",
    description: "",
    software: false,
  });
  assert.equal(summarize({ vendor: "google", architecture: "swiftshader" }).software, true);
  assert.equal(summarize({ vendor: "nvidia", architecture: "ada-lovelace" }).software, false);
});
