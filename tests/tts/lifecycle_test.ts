/**
 * The life of a `Valle` on a device the caller owns: repeated synthesis creates nothing on the
 * GPU after warm-up (no buffers, no bind groups, the same memory), `dispose()` gives back every
 * byte it took (`gpu.memory` returns to its value before loading) once its promise resolves,
 * waits for model calls already made, and makes every later use a `GpuError` that leaves the
 * device healthy.
 */

import { type Gpu, requestGpu } from "../../src/gpu/device.ts";
import { GpuError } from "../../src/errors.ts";
import { Valle } from "../../src/tts/valle.ts";
import type { SynthesizeOptions } from "../../src/tts/options.ts";
import { referenceClip, tinyModels } from "../_tiny_models.ts";
import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert";

const BASE = { language: "en", seed: 5, maxSeconds: 0.4, steps: 3 } as const;
/** Every path: AR and NAR-len, both decoders, the reference encoder. */
const CALLS: SynthesizeOptions[] = [
  { ...BASE, modality: "ar+nar", decoder: "vocos", reference: referenceClip() },
  { ...BASE, modality: "nar-len", decoder: "encodec", reference: referenceClip() },
];

/** This file's own device, so that its memory counter sees only these tests' buffers. */
let own: Promise<Gpu> | undefined;
function gpuTest(name: string, fn: (gpu: Gpu) => Promise<void>) {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      own ??= requestGpu();
      const gpu = await own;
      await fn(gpu);
      gpu.assertHealthy();
    },
  });
}

/** Counts what the device creates while `fn` runs. */
async function counting(gpu: Gpu, fn: () => Promise<void>) {
  const device = gpu.device;
  const counts = { buffers: 0, bindGroups: 0 };
  const createBuffer = device.createBuffer;
  const createBindGroup = device.createBindGroup;
  device.createBuffer = (d) => (counts.buffers++, createBuffer.call(device, d));
  device.createBindGroup = (d) => (counts.bindGroups++, createBindGroup.call(device, d));
  try {
    await fn();
  } finally {
    device.createBuffer = createBuffer;
    device.createBindGroup = createBindGroup;
  }
  return counts;
}

gpuTest("repeated synthesis creates no GPU buffers or bind groups after warm-up", async (gpu) => {
  const valle = await Valle.load({ ...await tinyModels(), gpu, cache: false });
  for (const call of [...CALLS, ...CALLS]) await valle.synthesize("Hello.", call); // warm-up
  const held = gpu.memory.current;
  const counts = await counting(gpu, async () => {
    for (let i = 0; i < 3; i++) {
      for (const call of CALLS) await valle.synthesize("Hello.", call);
    }
  });
  deepStrictEqual(counts, { buffers: 0, bindGroups: 0 });
  equal(gpu.memory.current, held);
  await valle.dispose();
});

gpuTest("dispose() frees every byte it took, and later use is a GpuError", async (gpu) => {
  const before = gpu.memory.current;
  const valle = await Valle.load({ ...await tinyModels(), gpu, cache: false });
  for (const call of CALLS) await valle.synthesize("Hello.", call);
  ok(gpu.memory.current > before);
  const disposing = valle.dispose();
  equal(valle.dispose(), disposing, "a second dispose() returns the same promise");
  await disposing;
  equal(gpu.memory.current, before);

  const disposed = (e: Error) => e instanceof GpuError && /disposed/.test(e.message);
  await rejects(valle.synthesize("Hello.", CALLS[0]), disposed);
  throws(() => valle.stream("Hello.", CALLS[0]), disposed);
  await rejects(valle.encodeReference(referenceClip()), disposed);
  await rejects(valle.model.generate({ phonemes: [1, 2] }), disposed);
  await rejects(valle.encodec.decode({ codes: new Int32Array(8), nQ: 8, frames: 1 }), disposed);
  equal(gpu.memory.current, before, "nothing was allocated by the refused calls");
});

gpuTest(
  "dispose() during a synthesis fails that synthesis with a GpuError and frees everything",
  async (gpu) => {
    const before = gpu.memory.current;
    const valle = await Valle.load({ ...await tinyModels(), gpu, cache: false });
    const running = valle.synthesize("Hello.", CALLS[0]);
    await valle.dispose();
    await rejects(running, (e: Error) => e instanceof GpuError && /disposed/.test(e.message));
    equal(gpu.memory.current, before);
  },
);

gpuTest("ValleModel.dispose() waits for the call already made, then frees", async (gpu) => {
  const before = gpu.memory.current;
  const valle = await Valle.load({ ...await tinyModels(), gpu, cache: false });
  const request = { phonemes: [1, 22, 111, 2], modality: "ar+nar", ar: { maxSteps: 10 } } as const;
  const generating = valle.model.generate(request);
  const disposing = valle.model.dispose();
  const { codes } = await generating; // finishes on live buffers
  equal(codes.levels, 8);
  await disposing;
  await rejects(valle.model.generate(request), GpuError);
  await valle.dispose();
  equal(gpu.memory.current, before);
});
