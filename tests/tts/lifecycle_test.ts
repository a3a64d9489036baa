/**
 * The life of a `Valle` on a backend the caller owns, on each backend: repeated synthesis creates
 * nothing after warm-up (no buffers, no bind groups, the same memory), `dispose()` gives back
 * every byte it took (`backend.memory` returns to its value before loading) once its promise
 * resolves, waits for model calls already made, and makes every later use a `GpuError` that leaves
 * the backend healthy.
 */

import type { Backend, BackendKind } from "../../src/backends/backend.ts";
import { createBackend } from "../../src/backends/select.ts";
import { Gpu } from "../../src/backends/webgpu/device.ts";
import { BACKENDS } from "../_backends.ts";
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

/** This file's own backends, so that their memory counters see only these tests' buffers. */
const own = new Map<BackendKind, Promise<Backend>>();
function backendTest(name: string, fn: (backend: Backend) => Promise<void>) {
  for (const kind of BACKENDS) {
    Deno.test({
      name: `${name} [${kind}]`,
      sanitizeOps: false,
      sanitizeResources: false,
      fn: async () => {
        if (!own.has(kind)) own.set(kind, createBackend({ backend: kind }));
        const backend = await own.get(kind)!;
        await fn(backend);
        backend.assertHealthy();
      },
    });
  }
}

/** Counts the buffers (and, on WebGPU, the device's buffers and bind groups) made while `fn` runs. */
async function counting(backend: Backend, fn: () => Promise<void>) {
  const counts = { buffers: 0, bindGroups: 0 };
  const restore: (() => void)[] = [];
  const hook = <T extends object, K extends keyof T>(o: T, key: K, count: () => void) => {
    const original = o[key] as (...a: unknown[]) => unknown;
    o[key] = ((...a: unknown[]) => (count(), original.apply(o, a))) as T[K];
    restore.push(() => (o[key] = original as T[K]));
  };
  hook(backend, "createBuffer", () => counts.buffers++);
  if (backend instanceof Gpu) {
    hook(backend.device, "createBuffer", () => counts.buffers++);
    hook(backend.device, "createBindGroup", () => counts.bindGroups++);
  }
  try {
    await fn();
  } finally {
    for (const undo of restore) undo();
  }
  return counts;
}

backendTest(
  "repeated synthesis creates no GPU buffers or bind groups after warm-up",
  async (backend) => {
    const valle = await Valle.load({ ...await tinyModels(), backend, cache: false });
    for (const call of [...CALLS, ...CALLS]) await valle.synthesize("Hello.", call); // warm-up
    const held = backend.memory.current;
    const counts = await counting(backend, async () => {
      for (let i = 0; i < 3; i++) {
        for (const call of CALLS) await valle.synthesize("Hello.", call);
      }
    });
    deepStrictEqual(counts, { buffers: 0, bindGroups: 0 });
    equal(backend.memory.current, held);
    await valle.dispose();
  },
);

backendTest("dispose() frees every byte it took, and later use is a GpuError", async (backend) => {
  const before = backend.memory.current;
  const valle = await Valle.load({ ...await tinyModels(), backend, cache: false });
  for (const call of CALLS) await valle.synthesize("Hello.", call);
  ok(backend.memory.current > before);
  const disposing = valle.dispose();
  equal(valle.dispose(), disposing, "a second dispose() returns the same promise");
  await disposing;
  equal(backend.memory.current, before);

  const disposed = (e: Error) => e instanceof GpuError && /disposed/.test(e.message);
  await rejects(valle.synthesize("Hello.", CALLS[0]), disposed);
  throws(() => valle.stream("Hello.", CALLS[0]), disposed);
  await rejects(valle.encodeReference(referenceClip()), disposed);
  await rejects(valle.model.generate({ phonemes: [1, 2] }), disposed);
  await rejects(valle.encodec.decode({ codes: new Int32Array(8), nQ: 8, frames: 1 }), disposed);
  equal(backend.memory.current, before, "nothing was allocated by the refused calls");
});

backendTest(
  "dispose() during a synthesis fails that synthesis with a GpuError and frees everything",
  async (backend) => {
    const before = backend.memory.current;
    const valle = await Valle.load({ ...await tinyModels(), backend, cache: false });
    const disposed = (e: Error) =>
      e instanceof GpuError &&
      e.message.startsWith("Cannot use the Valle instance: it was disposed");
    const running = valle.synthesize("Hello.", CALLS[0]);
    await valle.dispose();
    await rejects(running, disposed);
    equal(backend.memory.current, before);
    // Disposed while level 0 is generated: the error names the instance, not a part of it.
    const again = await Valle.load({ ...await tinyModels(), backend, cache: false });
    let disposing: Promise<void> | undefined;
    await rejects(
      again.synthesize("Hello.", {
        ...CALLS[0],
        onProgress: (p) => {
          if (p.phase === "level0") disposing ??= again.dispose();
        },
      }),
      disposed,
    );
    ok(disposing, "level 0 was reported");
    await disposing;
    equal(backend.memory.current, before);
  },
);

backendTest("ValleModel.dispose() waits for the call already made, then frees", async (backend) => {
  const before = backend.memory.current;
  const valle = await Valle.load({ ...await tinyModels(), backend, cache: false });
  const request = { phonemes: [1, 22, 111, 2], modality: "ar+nar", ar: { maxSteps: 10 } } as const;
  const generating = valle.model.generate(request);
  const disposing = valle.model.dispose();
  const { codes } = await generating; // finishes on live buffers
  equal(codes.levels, 8);
  await disposing;
  await rejects(valle.model.generate(request), GpuError);
  await valle.dispose();
  equal(backend.memory.current, before);
});
