/**
 * `modality: "auto"` weighs the backend: NAR-len on a hardware GPU when the model has it, AR + NAR
 * on the CPU backend and on software adapters (where NAR-len's full passes take seconds), and for
 * models without NAR-len; `Valle` speaks what it resolved to. Likewise the default weight storage:
 * q8 on the CPU backend, named on the backend line.
 */

import { Gpu } from "../../src/backends/webgpu/device.ts";
import type { Backend } from "../../src/backends/backend.ts";
import type { ValleModel } from "../../src/models/valle/model.ts";
import { autoModality } from "../../src/tts/modality.ts";
import { defaultDtype } from "../../src/tts/dtype.ts";
import { Valle } from "../../src/tts/valle.ts";
import { testGpu } from "../_backends.ts";
import { tinyModels } from "../_tiny_models.ts";
import { deepStrictEqual, equal } from "node:assert";

const withNarLen = { config: { hasNarLen: true, name: "ar+nar-len-llama-8" } } as ValleModel;
const withoutNarLen = { config: { hasNarLen: false, name: "ar+nar-llama-8" } } as ValleModel;
/** A WebGPU backend on a hardware adapter, as far as `autoModality` looks. */
const hardware = Object.create(Gpu.prototype, {
  kind: { value: "webgpu" },
  adapter: { value: { software: false } },
}) as Backend;

Deno.test("autoModality() takes NAR-len on a hardware GPU only, and says why", async () => {
  const lavapipe = await testGpu();
  const cpu = { kind: "cpu" } as Backend;
  equal(autoModality(hardware, withNarLen).modality, "nar-len");
  deepStrictEqual(autoModality(cpu, withNarLen), {
    modality: "ar+nar",
    reason: "NAR-len's full passes are slow on the CPU; ask for nar-len to use it anyway",
  });
  deepStrictEqual(autoModality(lavapipe, withNarLen), {
    modality: "ar+nar",
    reason:
      "NAR-len's full passes are slow on a software adapter; ask for nar-len to use it anyway",
  });
  for (const backend of [hardware, cpu, lavapipe]) {
    deepStrictEqual(autoModality(backend, withoutNarLen), {
      modality: "ar+nar",
      reason: "the model has no NAR-len",
    });
  }
});

Deno.test({
  name:
    "Valle speaks AR + NAR for modality auto on the CPU backend, and names it on the backend line",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const lines: string[] = [];
    const valle = await Valle.load({
      ...await tinyModels(),
      backend: "cpu",
      cache: false,
      onProgress: (p) => p.file === "backend" && lines.push(p.backend!),
    });
    equal(valle.model.config.hasNarLen, true);
    const options = { language: "en", seed: 2, maxSeconds: 0.4 } as const;
    const auto = await valle.synthesize("Hello.", options);
    const arNar = await valle.synthesize("Hello.", { ...options, modality: "ar+nar" });
    await valle.dispose();
    equal(auto.pieces[0].modality, "ar+nar");
    deepStrictEqual(auto.samples, arNar.samples);
    equal(lines.length, 1);
    equal(
      lines[0].replace(/^CPU \(.*?\): /, ""),
      "asked for; weights q8: the CPU default (decoding reads half the bytes of f16, mean KL " +
        "~5e-4 from it; dtype f16 keeps the file's weights); modality auto → ar+nar: NAR-len's " +
        "full passes are slow on the CPU; ask for nar-len to use it anyway",
    );
  },
});

Deno.test("defaultDtype() quantizes to q8 on the CPU only, and only when nothing else is asked", () => {
  const cpu = { kind: "cpu" } as Backend;
  const q8 = defaultDtype(cpu, {}, false);
  equal(q8.dtype, "q8");
  equal(typeof q8.reason, "string");
  deepStrictEqual(defaultDtype(cpu, { precision: "auto" }, false).dtype, "q8");
  deepStrictEqual(defaultDtype(hardware, {}, false), {});
  deepStrictEqual(defaultDtype(cpu, {}, true), {}, "a GGUF keeps what it stores");
  deepStrictEqual(defaultDtype(cpu, { precision: "f32" }, false), {}, "float asked for");
  deepStrictEqual(defaultDtype(cpu, { dtype: "f16" }, false), { dtype: "f16" });
  deepStrictEqual(defaultDtype(hardware, { dtype: "q4" }, false), { dtype: "q4" });
});
