/**
 * The CPU kernels as WebAssembly: the generated module (`_wasm.ts`, built from `wasm/*.c` by
 * `deno task wasm`) compiled once per process, and the exports the host uses.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { gunzipBase64 } from "../../io/gunzip.ts";
import { KERNEL_MODULES } from "./_wasm.ts";

/** The exports of both builds (the threaded one has `worker_loop`, the single one `run_list`). */
export interface KernelExports {
  /** The number of kernels in the table. */
  kernel_count(): number;
  /** The address of kernel `i`'s name (NUL-terminated). */
  kernel_name(i: number): number;
  /** Bytes of one command. */
  command_bytes(): number;
  /** Bytes of the control block. */
  control_bytes(): number;
  /** The first address above the module's static data and stack. */
  __heap_base: WebAssembly.Global;
  /** The module's stack pointer (each thread gets its own stack). */
  __stack_pointer: WebAssembly.Global;
  /** Threaded build: a pool worker's loop (returns when the pool stops). */
  worker_loop?(control: number, id: number, scratch: number, scratchBytes: number): void;
  /** Single build: runs a command list on the calling thread. */
  run_list?(cmds: number, count: number, scratch: number, scratchBytes: number): void;
}

/** A compiled kernel module and whether it uses relaxed SIMD. */
export interface KernelModule {
  /** The module. */
  module: WebAssembly.Module;
  /** Whether it is the relaxed-SIMD build (fused multiply-add). */
  relaxed: boolean;
}

const compiled = new Map<string, Promise<KernelModule>>();

/**
 * The kernels for a thread pool (`threads`) or one thread, compiled on first use, then shared:
 * the relaxed-SIMD build where the host validates it (and `relaxed` is not false), else the plain
 * SIMD128 one.
 */
export function kernelModule(threads: boolean, relaxed = true): Promise<KernelModule> {
  const key = `${threads}.${relaxed}`;
  let module = compiled.get(key);
  if (!module) {
    module = (async () => {
      if (relaxed) {
        const bytes = await gunzipBase64(
          threads ? KERNEL_MODULES.threadsRelaxed : KERNEL_MODULES.singleRelaxed,
        );
        if (WebAssembly.validate(bytes)) {
          return { module: await WebAssembly.compile(bytes), relaxed: true };
        }
      }
      const plain = await gunzipBase64(threads ? KERNEL_MODULES.threads : KERNEL_MODULES.single);
      return { module: await WebAssembly.compile(plain), relaxed: false };
    })();
    compiled.set(key, module);
  }
  return module;
}

/** Instantiates the kernels over `memory`. */
export async function instantiateKernels(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
): Promise<KernelExports> {
  const instance = await WebAssembly.instantiate(module, {
    env: { memory, now: () => performance.now() },
  });
  return instance.exports as unknown as KernelExports;
}

/** Kernel names by index, read from the module's table. */
export function kernelNames(exports: KernelExports, memory: WebAssembly.Memory): string[] {
  const bytes = new Uint8Array(memory.buffer);
  const names: string[] = [];
  for (let i = 0; i < exports.kernel_count(); i++) {
    const start = exports.kernel_name(i);
    let end = start;
    while (bytes[end] !== 0) end++;
    names.push(new TextDecoder().decode(bytes.slice(start, end)));
  }
  return names;
}
