/**
 * Writes a pre-quantized VALL-E model as a GGUF file (`src/quant/FORMATS.md` §2): every tensor the
 * model reads, under its checkpoint key, quantized as loading with the same `dtype` would (same
 * policy, same blocks), norms and biases F32, the config in `valle.config`. Loading the result
 * gives the same device bytes, so the same codes, as quantizing the `.sft` at load, without the
 * quantization time.
 *
 *   deno task quantize --model ar+nar-len-llama-8.sft --dtype q4 --out valle-q4.gguf
 *
 * The tensors are quantized by the CPU backend's C quantizers (the reference's bytes, on every
 * core). Importable: {@linkcode quantizeValle} returns the file's bytes.
 */

import { parseArgs } from "node:util";
import { type GgufTensorData, serializeGguf } from "../src/io/gguf.ts";
import { createCpuBackend } from "../src/backends/cpu/backend.ts";
import type { QuantDtype } from "../src/backends/backend.ts";
import { fromDeviceWords, GGUF_TYPE } from "../src/quant/device.ts";
import { readValleFile, type ValleCheckpoint } from "../src/models/valle/checkpoint.ts";
import {
  checkValleWeights,
  planValleStorage,
  quantizedBlocks,
  quantizeValleWeights,
} from "../src/models/valle/weights.ts";

/** The GGUF blocks of a tensor the policy quantizes, given its key and layout. */
export type BlockSource = (key: string, layout: QuantDtype) => Uint8Array;

/**
 * A VALL-E checkpoint quantized to a GGUF file.
 *
 * @param st The model (a `.sft`, or a GGUF to quantize again).
 * @param dtype The policy: "q8" or "q4".
 * @param name The model's name in `general.name`.
 * @param blocks Where the quantized tensors' blocks come from. Default: `st`'s values quantized
 * (`quantizedBlocks`).
 * @returns The GGUF file.
 */
export function quantizeValle(
  st: ValleCheckpoint,
  dtype: "q8" | "q4",
  name: string,
  blocks: BlockSource = (key, layout) => quantizedBlocks(st, key, layout),
): Uint8Array {
  const config = checkValleWeights(st);
  const tensors: Record<string, GgufTensorData> = {};
  for (const [key, { shape, layout }] of planValleStorage(st, config, dtype)) {
    tensors[key] = layout
      ? { type: GGUF_TYPE[layout], shape, bytes: blocks(key, layout) }
      : { type: "F32", shape, bytes: new Uint8Array(st.toFloat32(key).slice().buffer) };
  }
  const metadata: Record<string, string | number> = {
    "general.architecture": "valle",
    "general.name": name,
    "general.quantization_version": 2,
    "valle.dtype": dtype,
  };
  if (st.metadata.config !== undefined) metadata["valle.config"] = st.metadata.config;
  return serializeGguf(tensors, metadata);
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      model: { type: "string" },
      dtype: { type: "string" },
      out: { type: "string" },
    },
  });
  if (!values.model || !values.out || (values.dtype !== "q8" && values.dtype !== "q4")) {
    console.error("usage: deno task quantize --model <in.sft> --dtype q8|q4 --out <out.gguf>");
    Deno.exit(2);
  }
  const started = performance.now();
  const st = await readValleFile(values.model);
  const cpu = await createCpuBackend();
  const quantized = await quantizeValleWeights(cpu, st, values.dtype);
  cpu.destroy();
  const bytes = quantizeValle(st, values.dtype, values.model.split("/").pop()!, (key, layout) => {
    const words = quantized.get(key);
    return words ? fromDeviceWords(layout, words) : quantizedBlocks(st, key, layout);
  });
  await Deno.writeFile(values.out, bytes);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `${values.out}: ${(bytes.length / 1e6).toFixed(1)} MB (${values.dtype}, ${seconds} s)`,
  );
}
