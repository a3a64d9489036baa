/**
 * `backend: "auto"` falls back to the CPU when the adapter refuses a device (a browser's blocklist,
 * a driver out of memory), saying why, and `requestGpu` turns the refusal into a `GpuError`
 * instead of the raw `OperationError`.
 */

import assert from "node:assert/strict";
import { GpuError } from "../../src/errors.ts";
import { chooseBackend } from "../../src/backends/select.ts";
import { requestGpu } from "../../src/backends/webgpu/device.ts";

Deno.test({
  name: "a refused device is a GpuError, and auto takes the CPU backend saying why",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const original = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = () =>
      Promise.reject(new DOMException("device creation refused", "OperationError"));
    try {
      await assert.rejects(
        requestGpu(),
        (e: Error) =>
          e instanceof GpuError && /refused a device \(device creation refused\)$/.test(e.message),
      );
      const { backend, reason } = await chooseBackend({ backend: "auto", threads: 1 });
      try {
        assert.equal(backend.kind, "cpu");
        assert.match(
          reason,
          /^no WebGPU adapter \(Cannot use the GPU: adapter .* refused a device/,
        );
      } finally {
        backend.destroy();
      }
    } finally {
      GPUAdapter.prototype.requestDevice = original;
    }
  },
});
