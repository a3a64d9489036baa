/**
 * Limits checked before allocating: a run that cannot fit the device (a buffer over the binding
 * limit, or a run state over the memory budget) is an `OptionError` naming what to lower, raised
 * before anything is allocated or submitted, and the model stays usable. Also: the parameter
 * binding holds every kernel's parameters on a device whose uniform offset alignment is small.
 */

import assert from "node:assert/strict";
import { OptionError } from "../../src/errors.ts";
import type { Backend } from "../../src/backends/backend.ts";
import { requestGpu } from "../../src/backends/webgpu/device.ts";
import { PARAMS_BINDING_BYTES } from "../../src/backends/webgpu/kernels.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { sampleLogits } from "../../src/models/valle/sampler.ts";
import { checkRunState, GPU_RUN_STATE_BUDGET_BYTES } from "../../src/models/valle/state.ts";
import type { ValleConfig } from "../../src/models/valle/config.ts";
import { backendTest } from "../_backends.ts";
import { TINY_COND, TINY_MODEL } from "../models/valle/_tiny.ts";

/** Generates `frames` AR frames, then a short run to show the model still works. */
async function refusedThenUsable(backend: Backend, frames: number, message: RegExp) {
  const model = await ValleModel.load(TINY_MODEL, { backend });
  try {
    const memory = backend.memory.current;
    const submits = backend.stats.submits;
    await assert.rejects(
      model.generate({ ...TINY_COND, modality: "ar+nar", ar: { maxSteps: frames } }),
      (e: Error) => e instanceof OptionError && message.test(e.message),
    );
    assert.equal(backend.memory.current, memory, "nothing was allocated");
    assert.equal(backend.stats.submits, submits, "nothing was submitted");
    const ok = await model.generate({
      ...TINY_COND,
      modality: "ar+nar",
      ar: { maxSteps: 8 },
    });
    assert.ok(ok.codes.frames > 0 && ok.codes.frames <= 8);
  } finally {
    await model.dispose();
  }
}

backendTest(
  "a run whose state exceeds the memory budget is refused before anything is allocated",
  async (backend) => {
    // ~14 KB per position for the tiny model: 400k positions are ~5.6 GB, over 4 GiB either way.
    await refusedThenUsable(
      backend,
      400_000,
      /^Cannot hold \d+ sequence positions on .*: (the run state would take|buffer ").*; generate fewer positions at once: a smaller batchSize .*maxSeconds.*reference/,
    );
  },
);

Deno.test({
  name: "a buffer over a default-limits device's binding limit is refused, naming the buffer",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const adapter = await navigator.gpu.requestAdapter();
    assert.ok(adapter);
    const device = await adapter.requestDevice({ requiredFeatures: ["shader-f16"] });
    const gpu = await requestGpu({ device });
    try {
      assert.equal(gpu.maxBindingBytes, 128 * 2 ** 20, "the spec's default binding limit");
      await refusedThenUsable(
        gpu,
        20_000,
        /buffer "valle\.state\.logits" would take \d+ MiB, over the device's limit of 128 MiB per buffer; .*batchSize/,
      );
    } finally {
      gpu.destroy();
    }
  },
});

Deno.test("checkRunState() takes the state being replaced off the CPU budget", () => {
  // The released model's shape (the fields the run state depends on).
  const config = {
    dModel: 1024,
    dFf: 4096,
    nLayers: 12,
    nLevels: 8,
    nHeads: 16,
    headDim: 64,
    nAudio: 1024,
    nPhn: 256,
    nLen: 11,
  } as ValleConfig;
  const fake = (kind: "cpu" | "webgpu", current: number) =>
    ({
      kind,
      description: kind,
      maxBindingBytes: 2 ** 32 - 1,
      memory: { current, peak: current },
    }) as unknown as Backend;
  // The full-size model: ~177 KB per position, so 20k positions are ~3.5 GB.
  checkRunState(fake("cpu", 0), config, 20_000);
  assert.throws(() => checkRunState(fake("cpu", 2 ** 30), config, 20_000), OptionError);
  checkRunState(fake("cpu", 2 ** 30), config, 20_000, 2 ** 30);
  assert.throws(
    () => checkRunState(fake("webgpu", 0), config, 40_000),
    (e: Error) => e.message.includes(`(${GPU_RUN_STATE_BUDGET_BYTES / 2 ** 20} MiB)`),
  );
});

Deno.test({
  name: "every kernel's parameters fit the parameter binding where the uniform alignment is small",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const adapter = await navigator.gpu.requestAdapter();
    assert.ok(adapter);
    const align = adapter.limits.minUniformBufferOffsetAlignment;
    const device = await adapter.requestDevice({
      requiredFeatures: ["shader-f16"],
      requiredLimits: { minUniformBufferOffsetAlignment: align },
    });
    const gpu = await requestGpu({ device });
    try {
      // The sampler's 23 parameters (92 bytes) are more than a 64-byte alignment.
      assert.ok(PARAMS_BINDING_BYTES >= 92);
      const logits = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
      const cpu = await sampleLogits(gpu, logits, [1, 64], { topK: 8, temperature: 0 });
      assert.ok(cpu.processed.some(Number.isFinite));
      await gpu.fence();
      console.log(
        `minUniformBufferOffsetAlignment: ${device.limits.minUniformBufferOffsetAlignment}`,
      );
    } finally {
      gpu.destroy();
    }
  },
});

Deno.test({
  name: "an allocation the GPU cannot make becomes a GpuError naming the buffer",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await requestGpu();
    try {
      // lavapipe does not run out of memory on demand: the device reports it in the scope.
      const pop = gpu.device.popErrorScope.bind(gpu.device);
      gpu.device.popErrorScope = async () => {
        await pop();
        return new GPUOutOfMemoryError("simulated");
      };
      gpu.createBuffer(1024, "valle.state.logits");
      gpu.device.popErrorScope = pop;
      await assert.rejects(gpu.fence(), {
        name: "GpuError",
        message: 'Cannot allocate "valle.state.logits" (0.0 MiB): the GPU is out of memory ' +
          "(simulated); lower batchSize or maxSeconds, or close what else uses the GPU",
      });
    } finally {
      gpu.destroy();
    }
  },
});
