/**
 * The progress line of examples/speak.ts, kept apart so that tests can check what it says: files
 * read from disk are "load", files fetched over the network "download".
 */

import type { SynthesisProgress } from "../mod.ts";

const BAR_WIDTH = 24;

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/**
 * One progress report as a line: the piece, the phase, the file's name, and a bar with
 * megabytes while a file's bytes arrive or steps otherwise.
 *
 * @param p The report.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { progressLine } from "./_speak_progress.ts";
 * const line = progressLine({ phase: "load", file: "/data/model.sft", step: 5e6, steps: 1e7 });
 * console.assert(line === "load model.sft [############............] 50% 5.0/10.0 MB");
 * ```
 */
export function progressLine(p: SynthesisProgress): string {
  const piece = p.pieces ? `piece ${(p.piece ?? 0) + 1}/${p.pieces}  ` : "";
  let detail = p.file ? ` ${p.file.split("/").at(-1)}` : "";
  if (p.file && p.step !== undefined && (p.phase === "download" || p.phase === "load")) {
    const pct = p.steps ? Math.floor((100 * p.step) / p.steps) : undefined;
    const bar = pct === undefined
      ? ""
      : ` [${"#".repeat((pct * BAR_WIDTH) / 100 | 0).padEnd(BAR_WIDTH, ".")}] ${pct}%`;
    detail += `${bar} ${megabytes(p.step)}${p.steps ? `/${megabytes(p.steps)}` : ""} MB`;
  } else if (p.step !== undefined && p.steps) {
    detail += ` ${p.step}/${p.steps}`;
  }
  return `${piece}${p.phase}${detail}`;
}
