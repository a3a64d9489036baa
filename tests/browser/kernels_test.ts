/**
 * A few kernels in headless Chromium on each backend a page can have: WebGPU (SwiftShader, with
 * its subgroup reductions and with the barrier trees), the CPU with worker threads (the page
 * cross-origin isolated) and the CPU on the page's own thread (not isolated: no
 * SharedArrayBuffer). Every result is checked against the CPU oracle; the
 * quantized GEMMs against the one of the arithmetic the page says it ran (integer where the
 * backend is the CPU or WebGPU's WGSL has packed_4x8_integer_dot_product, else float).
 */

import { deepStrictEqual, equal, ok } from "node:assert";
import { runInChromium } from "./harness.ts";
import { browserInputs } from "./kernels_inputs.ts";
import type { KernelsPageInput, KernelsPageResult } from "./kernels_page.ts";
import { assertClose } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";
import { checkLinearQuant } from "../reference/quant.ts";
import { dequantizeDeviceWords, quantizeBlocks, toDeviceWords } from "../../src/quant/device.ts";

const PAGE = new URL("./kernels_page.ts", import.meta.url);

/** Runs the kernel page, checks its outputs against the oracle and returns what it reported. */
async function runKernels(
  input: KernelsPageInput,
  isolated: boolean,
): Promise<KernelsPageResult> {
  const result = await runInChromium(PAGE, { input, isolated }) as KernelsPageResult;
  console.log(
    `browser backend: ${JSON.stringify(result.backend)}, integerDot ${result.integerDot}, ` +
      `subgroups ${result.subgroups}`,
  );
  equal(result.backend.kind, input.backend);
  if (input.integerDot === false) equal(result.integerDot, false);
  if (input.subgroups === false) equal(result.subgroups, false);
  equal(result.crossOriginIsolated, isolated, "the page's crossOriginIsolated");
  const inputs = browserInputs();
  const { m, n, k } = inputs.linear;
  const tol = { atol: 1e-4, rtol: 1e-4 };
  assertClose(
    result.gemm,
    ref.linear(inputs.linear.x, inputs.linear.w, inputs.linear.b, m, n, k),
    { ...tol, label: "gemm" },
  );
  assertClose(
    result.gemv,
    ref.linear(inputs.linear.x.subarray(0, k), inputs.linear.w, undefined, 1, n, k),
    { ...tol, label: "gemv" },
  );
  const { d } = inputs.norm;
  assertClose(result.rmsNorm, ref.rmsNorm(inputs.norm.x, inputs.norm.w, d, 1e-6), {
    ...tol,
    label: "rmsNorm",
  });
  assertClose(result.softmax, ref.softmax(inputs.softmax.x, inputs.softmax.cols), {
    ...tol,
    label: "softmax",
  });
  const { s, heads, headDim, q, k: kk, v } = inputs.attention;
  const expected = ref.attention(q, kk, v, {
    s,
    kvLen: s,
    heads,
    headDim,
    causal: true,
    qStart: 0,
  });
  assertClose(result.attention, expected, { ...tol, label: "attention" });
  assertClose(result.attentionSplit, expected, { ...tol, label: "attention, keys split" });
  const quant = inputs.quant;
  const integer = result.backend.kind === "cpu" || result.integerDot === true;
  for (const [dtype, got] of [["q8_0", result.gemmQ8], ["q4_k", result.gemmQ4]] as const) {
    const words = toDeviceWords(dtype, quantizeBlocks(dtype, quant.w));
    const w = { words, values: dequantizeDeviceWords(dtype, words) };
    checkLinearQuant(got, integer, dtype, quant.x, w, undefined, [quant.m, quant.n, quant.k]);
  }
  return result;
}

Deno.test({
  name: "kernels run in headless Chromium on WebGPU (SwiftShader) and match the CPU oracle",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const result = await runKernels({ backend: "webgpu" }, false);
    ok(result.adapter && result.adapter.vendor.length > 0, "the page found a WebGPU adapter");
    // SwiftShader lists `subgroups` (size 4) and WGSL's subgroup_id: the row kernels above
    // (RMSNorm, softmax) reduced on subgroups.
    equal(result.subgroups, true, "the row kernels reduce on subgroups");
    // Every kernel compiles with Chromium's WGSL compiler (Tint) too, not only Deno's (naga).
    deepStrictEqual(result.compileFailures, []);
  },
});

Deno.test({
  name: "the quantized GEMMs also run on WebGPU (SwiftShader) with the integer kernels refused",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await runKernels({ backend: "webgpu", integerDot: false }, false);
  },
});

Deno.test({
  name: "the row kernels also run on WebGPU (SwiftShader) with the subgroup reductions refused",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await runKernels({ backend: "webgpu", subgroups: false }, false);
  },
});

Deno.test({
  name: "kernels run in a cross-origin isolated Chromium page on CPU worker threads",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const result = await runKernels({ backend: "cpu", threads: 3 }, true);
    deepStrictEqual(result.runner, { kind: "pool", threads: 3 });
    equal(result.backend.description, "CPU (WebAssembly relaxed SIMD, 3 threads)");
  },
});

Deno.test({
  name: "kernels run on the CPU on the page's thread where it is not cross-origin isolated",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const result = await runKernels({ backend: "cpu", threads: 3 }, false);
    deepStrictEqual(result.runner, { kind: "single", threads: 1 });
    equal(result.backend.description, "CPU (WebAssembly relaxed SIMD, 1 thread)");
  },
});
