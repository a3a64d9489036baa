import { runInChromium } from "./harness.ts";
import { browserInputs } from "./kernels_inputs.ts";
import { assertClose } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";
import { ok } from "node:assert";

interface KernelsResult {
  adapter: { description: string; vendor: string; software: boolean };
  f16: boolean;
  gemm: number[];
  gemv: number[];
  rmsNorm: number[];
  attention: number[];
}

Deno.test({
  name: "kernels run in headless Chromium (SwiftShader WebGPU) and match the CPU oracle",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const result = await runInChromium(
      new URL("./kernels_page.ts", import.meta.url),
    ) as KernelsResult;
    console.log(`browser adapter: ${JSON.stringify(result.adapter)} f16=${result.f16}`);
    ok(result.adapter.vendor.length > 0, "the page found a WebGPU adapter");
    const inputs = browserInputs();
    const { m, n, k } = inputs.linear;
    const tol = { atol: 1e-4, rtol: 1e-4 };
    assertClose(
      result.gemm,
      ref.linear(inputs.linear.x, inputs.linear.w, inputs.linear.b, m, n, k),
      {
        ...tol,
        label: "gemm",
      },
    );
    assertClose(
      result.gemv,
      ref.linear(inputs.linear.x.subarray(0, k), inputs.linear.w, undefined, 1, n, k),
      {
        ...tol,
        label: "gemv",
      },
    );
    const { d } = inputs.norm;
    assertClose(result.rmsNorm, ref.rmsNorm(inputs.norm.x, inputs.norm.w, d, 1e-6), {
      ...tol,
      label: "rmsNorm",
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
  },
});
