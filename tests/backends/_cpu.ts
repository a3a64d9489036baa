/**
 * The CPU backends the tests of this folder compare, beyond the shared harness's two-thread pool
 * (tests/_backends.ts): a pool of one worker, a pool of two, and the runner of a host without
 * SharedArrayBuffer (a browser page that is not cross-origin isolated), which runs each command
 * list on the calling thread with the single-thread build of the kernels. Deno always has
 * SharedArrayBuffer, so that runner is reached the way such a host reaches it: `createCpuBackend`
 * is called while the global is hidden.
 */

import assert from "node:assert/strict";
import { type CpuBackend, createCpuBackend } from "../../src/backends/cpu/backend.ts";
import { SingleThread, ThreadPool } from "../../src/backends/cpu/runner.ts";

/** A CPU backend of the comparison, and how it runs. */
interface CpuVariant {
  /** "1 thread", "2 threads" or "no SharedArrayBuffer". */
  readonly name: string;
  /** Creates the backend (the caller destroys it). */
  create(): Promise<CpuBackend>;
}

/** `createCpuBackend` as a host without SharedArrayBuffer runs it. */
async function createWithoutSharedMemory(): Promise<CpuBackend> {
  const global = globalThis as { SharedArrayBuffer?: unknown };
  const saved = Object.getOwnPropertyDescriptor(globalThis, "SharedArrayBuffer")!;
  delete global.SharedArrayBuffer;
  try {
    // Two threads asked for: without shared memory the backend must run on the calling thread.
    const cpu = await createCpuBackend({ threads: 2 });
    assert.ok(cpu.runner instanceof SingleThread, cpu.description);
    return cpu;
  } finally {
    Object.defineProperty(globalThis, "SharedArrayBuffer", saved);
  }
}

/** A worker pool of `threads` threads. */
async function createPool(threads: number): Promise<CpuBackend> {
  const cpu = await createCpuBackend({ threads });
  assert.ok(cpu.runner instanceof ThreadPool && cpu.runner.threads === threads, cpu.description);
  return cpu;
}

/** Every CPU backend of the comparison. */
const CPU_VARIANTS: readonly CpuVariant[] = [
  { name: "1 thread", create: () => createPool(1) },
  { name: "2 threads", create: () => createPool(2) },
  { name: "no SharedArrayBuffer", create: createWithoutSharedMemory },
];

/** Runs `fn` with a fresh backend of every variant at once (destroyed afterwards). */
export async function withAllCpus(
  fn: (cpus: readonly { name: string; cpu: CpuBackend }[]) => Promise<void>,
): Promise<void> {
  const cpus: { name: string; cpu: CpuBackend }[] = [];
  try {
    for (const variant of CPU_VARIANTS) {
      cpus.push({ name: variant.name, cpu: await variant.create() });
    }
    await fn(cpus);
    for (const { cpu } of cpus) cpu.assertHealthy();
  } finally {
    for (const { cpu } of cpus) cpu.destroy();
  }
}

/** Registers `name` once per variant, named "<name> [cpu, <variant>]", on a fresh backend. */
export function cpuTest(
  name: string,
  fn: (cpu: CpuBackend, t: Deno.TestContext) => Promise<void>,
): void {
  for (const variant of CPU_VARIANTS) {
    Deno.test(`${name} [cpu, ${variant.name}]`, async (t) => {
      const cpu = await variant.create();
      try {
        await fn(cpu, t);
        cpu.assertHealthy();
      } finally {
        cpu.destroy();
      }
    });
  }
}
