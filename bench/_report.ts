/** Shared pieces of the benchmarks: machine and backend facts, a file-name slug, output. */

import type { Backend } from "../src/backends/backend.ts";
import { Gpu } from "../src/backends/webgpu/device.ts";

/** What a result file records about a backend. */
export function backendFacts(backend: Backend): Record<string, unknown> {
  const facts: Record<string, unknown> = {
    kind: backend.kind,
    description: backend.description,
    weightDtype: backend.weightDtype,
  };
  if (backend instanceof Gpu) {
    facts.adapter = backend.adapter;
    facts.features = backend.features;
    facts.limits = {
      maxStorageBufferBindingSize: backend.device.limits.maxStorageBufferBindingSize,
      maxBufferSize: backend.device.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: backend.device.limits.maxComputeWorkgroupStorageSize,
    };
  }
  return facts;
}

/** What every result file records about where it ran: CPU, cores, Deno, date, commit. */
export function environment(): Record<string, unknown> {
  return {
    cpu: cpuModel(),
    cores: navigator.hardwareConcurrency,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    date: new Date().toISOString(),
    commit: commit(),
  };
}

/** The CPU's model name (Linux), else the platform. */
function cpuModel(): string {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    return info.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? Deno.build.arch;
  } catch {
    return `${Deno.build.os} ${Deno.build.arch}`;
  }
}

/** The checked-out commit, when git is there. */
function commit(): string | undefined {
  try {
    const out = new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"] }).outputSync();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/** A file-name-safe name for an adapter or machine, e.g. "nvidia-h100-80gb-hbm3". */
export function slug(name: string): string {
  return name.toLowerCase().replace(/\(.*?\)/g, "").replace(/[^a-z0-9]+/g, "-").replace(
    /^-|-$/g,
    "",
  ) || "unknown";
}

/** A markdown table from rows of equal keys. */
export function markdownTable(rows: readonly Record<string, string | number>[]): string {
  if (rows.length === 0) return "";
  const keys = Object.keys(rows[0]);
  const lines = [`| ${keys.join(" | ")} |`, `| ${keys.map(() => "---").join(" | ")} |`];
  for (const row of rows) lines.push(`| ${keys.map((k) => row[k]).join(" | ")} |`);
  return lines.join("\n");
}

/** Milliseconds for `run`, which records and submits `iterations` repetitions of the work. */
export async function timeWork(
  backend: Backend,
  iterations: number,
  run: (n: number) => void,
): Promise<number> {
  run(1); // warm-up: pipeline compilation, first bind
  await backend.fence();
  const start = performance.now();
  run(iterations);
  await backend.fence();
  return (performance.now() - start) / iterations;
}

/** Splits a text stream into lines (a subprocess's output as it comes). */
export function lines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split(/\r?\n|\r/);
      rest = parts.pop()!;
      for (const part of parts) controller.enqueue(part);
    },
    flush(controller) {
      if (rest) controller.enqueue(rest);
    },
  });
}
