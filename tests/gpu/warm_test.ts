/**
 * Kernels compile at load: `Valle.load` warms every kernel VALL-E and EnCodec dispatch (and the
 * vocoder's when it loads) with `createComputePipelineAsync`, reporting the "compile" phase, so
 * that synthesis compiles nothing synchronously at a dispatch; a kernel that cannot compile is a
 * GpuError naming it.
 */

import { GpuError } from "../../src/errors.ts";
import type { KernelSpec } from "../../src/backends/backend.ts";
import { type Gpu, requestGpu } from "../../src/backends/webgpu/device.ts";
import type { SynthesisProgress } from "../../src/tts/options.ts";
import { Valle } from "../../src/tts/valle.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { trainLora } from "../../src/train/trainer.ts";
import { makeRandomValle } from "../../tools/make_valle_model.ts";
import { BASELINE_GPU } from "../_backends.ts";
import { referenceClip, tinyModels } from "../_tiny_models.ts";
import { deepStrictEqual, equal, ok, rejects } from "node:assert";

/** A fresh device, so that no earlier test has compiled anything on it. */
async function freshGpu(): Promise<Gpu> {
  if (!BASELINE_GPU) return await requestGpu();
  const adapter = await navigator.gpu.requestAdapter();
  return await requestGpu({ device: await adapter!.requestDevice({ label: "valle.baseline" }) });
}

Deno.test({
  name: "after Valle.load, synthesis in every modality and decoder compiles no kernel at dispatch",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const gpu = await freshGpu();
    try {
      const compiles: SynthesisProgress[] = [];
      const valle = await Valle.load({
        ...await tinyModels(),
        backend: gpu,
        cache: false,
        onProgress: (p) => p.phase === "compile" && compiles.push(p),
      });
      equal(gpu.kernels.compiles.sync, 0, "the load compiled nothing synchronously");
      ok(gpu.kernels.compiles.async > 10, `${gpu.kernels.compiles.async} kernels warmed`);
      const last = compiles.at(-1)!;
      equal(last.step, last.steps, "compile progress reaches its total");
      equal(last.steps, gpu.kernels.compiles.async);
      deepStrictEqual(compiles[0], { phase: "compile", step: 0, steps: last.steps });

      const base = { language: "en", seed: 5, maxSeconds: 0.3, steps: 2 } as const;
      for (const modality of ["ar+nar", "nar-len"] as const) {
        for (const decoder of ["vocos", "encodec"] as const) {
          await valle.synthesize("Hi there. Bye.", {
            ...base,
            modality,
            decoder,
            reference: referenceClip(),
            cfgStrength: 2,
            batchSize: 2,
          });
        }
      }
      equal(
        gpu.kernels.compiles.sync,
        0,
        "every kernel a synthesis dispatches was warmed at load (a missing one is in " +
          "src/models/valle/kernels.ts or the codecs' lists)",
      );
      await valle.dispose();
    } finally {
      gpu.destroy();
    }
  },
});

for (const dtype of ["q8", "q4"] as const) {
  Deno.test({
    name: `after ValleModel.warm, a ${dtype} model generates (AR+NAR, NAR-len with CFG, batches) ` +
      "compiling no kernel at dispatch",
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const gpu = await freshGpu();
      try {
        // The smallest width whose projections take Q4_K (rows of 256).
        const bytes = makeRandomValle({
          dim: 256,
          heads: 4,
          layers: 2,
          levels: 4,
          audioTokens: 64,
        });
        const model = await ValleModel.load(bytes, { backend: gpu, dtype });
        const steps: number[] = [];
        await model.warm((done) => steps.push(done));
        equal(gpu.kernels.compiles.sync, 0);
        equal(steps.at(-1), gpu.kernels.compiles.async);
        const prompt = {
          data: Array.from({ length: 12 * 4 }, (_, i) => (i * 7) % 64),
          frames: 12,
          levels: 4,
        };
        const cond = { phonemes: [1, 40, 41, 42, 2], language: 1, prompt };
        await model.generate({ ...cond, modality: "ar+nar", ar: { maxSteps: 6, seed: 1 } });
        await model.generate({
          ...cond,
          modality: "nar-len",
          maxFrames: 8,
          narLen: { steps: 2, seed: 1, cfg: { strength: 2, rescale: 0.75 } },
        });
        await model.generateBatch({
          rows: [{ ...cond, seed: 1 }, { ...cond, seed: 2 }],
          modality: "ar+nar",
          ar: { maxSteps: 6 },
        });
        equal(gpu.kernels.compiles.sync, 0, "every kernel generation dispatched was warmed");
        await model.dispose();
      } finally {
        gpu.destroy();
      }
    },
  });
}

for (const dtype of ["f16", "q8"] as const) {
  Deno.test({
    name: `a LoRA training run over a ${dtype} base warms its kernels before its first step`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const gpu = await freshGpu();
      try {
        const bytes = makeRandomValle({
          dim: 256,
          heads: 4,
          layers: 2,
          levels: 4,
          audioTokens: 64,
        });
        const model = await ValleModel.load(bytes, { backend: gpu, dtype });
        const utterances = [0, 1, 2].map((i) => ({
          name: `u${i}`,
          speaker: "s",
          language: "en" as const,
          languageId: 0,
          text: "",
          ipa: "",
          phonemes: Uint16Array.of(1, 40 + i, 41, 2),
          codes: Int16Array.from({ length: 6 * 4 }, (_, j) => (j * 5 + i) % 64),
          frames: 6,
          levels: 4,
        }));
        const before = gpu.kernels.compiles.sync;
        // Level-0 and NAR items, masked and not: every kernel of a step.
        await trainLora(model, utterances, {
          rank: 2,
          steps: 3,
          batchSize: 3,
          levels: [0, 1, 3],
          evaluation: utterances.slice(0, 1),
        });
        equal(gpu.kernels.compiles.sync, before, "every kernel training dispatched was warmed");
        await model.dispose();
      } finally {
        gpu.destroy();
      }
    },
  });
}

Deno.test({
  name: "a kernel that fails to compile while warming is a GpuError naming it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const gpu = await freshGpu();
    try {
      // `gemm` has no `override` named NOPE: the pipeline is invalid.
      const spec: KernelSpec = {
        shader: "gemm",
        bindings: ["write", "read", "read", "read"],
        params: ["u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"],
      };
      await rejects(
        gpu.warm([{ spec, variant: { weights: "f32", constants: { NOPE: 1 } } }]),
        (e: unknown) => e instanceof GpuError && e.message.includes('"gemm.f32.NOPE=1"'),
      );
      equal(gpu.failure, undefined, "the failure was the warm's, not an uncaptured error");
    } finally {
      gpu.destroy();
    }
  },
});

Deno.test("the CPU backend's warm does nothing", async () => {
  const { createCpuBackend } = await import("../../src/backends/cpu/backend.ts");
  const cpu = await createCpuBackend({ threads: 1 });
  try {
    const calls: number[] = [];
    await cpu.warm([], (done) => calls.push(done));
    deepStrictEqual(calls, []);
  } finally {
    cpu.destroy();
  }
});
