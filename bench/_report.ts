/** Shared pieces of the benchmarks: adapter facts, a file-name slug, JSON + markdown output. */

import type { Gpu } from "../src/backends/webgpu/device.ts";

/** What every result file records about where it ran. */
export function environment(gpu: Gpu): Record<string, unknown> {
  return {
    adapter: gpu.adapter,
    features: gpu.features,
    weightDtype: gpu.weightDtype,
    limits: {
      maxStorageBufferBindingSize: gpu.device.limits.maxStorageBufferBindingSize,
      maxBufferSize: gpu.device.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: gpu.device.limits.maxComputeWorkgroupStorageSize,
    },
    deno: Deno.version.deno,
    date: new Date().toISOString(),
    commit: commit(),
  };
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

/** A file-name-safe name for the adapter, e.g. "nvidia-h100-80gb-hbm3". */
export function adapterSlug(gpu: Gpu): string {
  const name = gpu.adapter.description || `${gpu.adapter.vendor}-${gpu.adapter.device}`;
  return name.toLowerCase().replace(/\(.*?\)/g, "").replace(/[^a-z0-9]+/g, "-").replace(
    /^-|-$/g,
    "",
  ) ||
    "unknown";
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
export async function timeGpu(
  gpu: Gpu,
  iterations: number,
  run: (n: number) => void,
): Promise<number> {
  run(1); // warm-up: pipeline compilation, first bind
  await gpu.device.queue.onSubmittedWorkDone();
  const start = performance.now();
  run(iterations);
  await gpu.device.queue.onSubmittedWorkDone();
  return (performance.now() - start) / iterations;
}
