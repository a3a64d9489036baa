/**
 * Uploads go in chunks: no `queue.writeBuffer` carries more than 16 MiB (a browser stages each
 * write whole), a large write lands byte for byte, and a model's weights on the device are its
 * file's values converted (f16 and f32). Long uploads pause for the event loop every 64 MiB.
 */

import {
  readBytes,
  UPLOAD_YIELD_BYTES,
  UploadPacer,
  uploadTensor,
} from "../../src/backends/tensor.ts";
import { type Gpu, requestGpu, WRITE_CHUNK_BYTES } from "../../src/backends/webgpu/device.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { uploadValleWeights, valleWeightTensors } from "../../src/models/valle/weights.ts";
import { BASELINE_GPU } from "../_backends.ts";
import { readFixture } from "../_helpers.ts";
import { deepStrictEqual, equal, ok } from "node:assert";

/** A fresh device whose queue records the size of every write. */
async function countingGpu(): Promise<{ gpu: Gpu; writes: number[] }> {
  let gpu: Gpu;
  if (BASELINE_GPU) {
    const adapter = await navigator.gpu.requestAdapter();
    gpu = await requestGpu({ device: await adapter!.requestDevice({ label: "valle.baseline" }) });
  } else {
    gpu = await requestGpu();
  }
  const writes: number[] = [];
  const queue = gpu.device.queue;
  const write = queue.writeBuffer.bind(queue);
  queue.writeBuffer = (
    buffer: GPUBuffer,
    offset: number,
    data: BufferSource,
    dataOffset?: number,
    size?: number,
  ) => {
    const bytes = size ?? (data as ArrayBufferView).byteLength - (dataOffset ?? 0);
    writes.push(bytes);
    write(buffer, offset, data, dataOffset, size);
  };
  return { gpu, writes };
}

Deno.test({
  name: "a 40 MiB write goes in chunks of at most 16 MiB and lands byte for byte",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { gpu, writes } = await countingGpu();
    try {
      // 40 MiB + 2 bytes of f16: the last chunk is padded to a whole word.
      const data = new Uint16Array((40 << 20) / 2 + 1);
      for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 16;
      const t = uploadTensor(gpu, data, [data.length], "f16", "big");
      deepStrictEqual(writes, [WRITE_CHUNK_BYTES, WRITE_CHUNK_BYTES, (8 << 20) + 4]);
      const [back] = await readBytes(gpu, [t]);
      deepStrictEqual(new Uint16Array(back), data);
    } finally {
      gpu.destroy();
    }
  },
});

for (const float of ["f16", "f32"] as const) {
  Deno.test({
    name: `VALL-E weights uploaded as ${float}: writes of at most 16 MiB, the file's values`,
    ignore: float === "f16" && BASELINE_GPU,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const { gpu, writes } = await countingGpu();
      try {
        const st = parseSafetensors(await readFixture("valle-tiny/model.sft"));
        const { config, weights } = await uploadValleWeights(gpu, st, float);
        ok(writes.length > 0 && Math.max(...writes) <= WRITE_CHUNK_BYTES);
        const tensors = valleWeightTensors(config, weights);
        ok(tensors.size > 10 && [...tensors.keys()].every((key) => st.names.includes(key)));
        for (const [key, t] of tensors) {
          const [back] = await readBytes(gpu, [t]);
          const want = float === "f16" ? st.toFloat16(key) : st.toFloat32(key);
          const got = new Uint8Array(back);
          const bytes = new Uint8Array(want.buffer, want.byteOffset, want.byteLength);
          equal(got.length, bytes.length, `${key}: bytes`);
          const at = got.findIndex((b, i) => b !== bytes[i]);
          equal(at, -1, `${key}: first differing byte`);
        }
      } finally {
        gpu.destroy();
      }
    },
  });
}

Deno.test("an UploadPacer yields to the event loop once per 64 MiB written", async () => {
  const pacer = new UploadPacer();
  let ticks = 0;
  const tick = () => new Promise<void>((resolve) => setTimeout(() => (ticks++, resolve()), 0));
  const pending = tick();
  await pacer.wrote(UPLOAD_YIELD_BYTES - 1);
  equal(ticks, 0, "no pause before 64 MiB");
  await pacer.wrote(1);
  equal(ticks, 1, "a pause at 64 MiB lets a timer run");
  await pending;
});
