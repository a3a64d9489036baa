/**
 * The progress lines of examples/speak.ts and examples/train_lora.ts, kept apart so that tests
 * can check what they say: files read from disk are "load", files fetched over the network
 * "download"; a training step shows its loss, accuracy, speed and what is left.
 */

import type { SynthesisProgress } from "../mod.ts";
import type { TrainProgress } from "../src/train/mod.ts";

const BAR_WIDTH = 24;

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/** ` [####....] 50%` for `step` of `steps`, or nothing without a total. */
export function bar(step: number, steps: number | undefined): string {
  if (!steps) return "";
  const pct = Math.floor((100 * step) / steps);
  return ` [${"#".repeat((pct * BAR_WIDTH) / 100 | 0).padEnd(BAR_WIDTH, ".")}] ${pct}%`;
}

/** Milliseconds as `m:ss` (or `h:mm:ss`). */
function clock(ms: number): string {
  const s = Math.round(ms / 1000);
  const [h, m] = [Math.floor(s / 3600), Math.floor(s / 60) % 60];
  const mm = h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`;
  return `${mm}:${String(s % 60).padStart(2, "0")}`;
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
    detail += `${bar(p.step, p.steps)} ${megabytes(p.step)}${
      p.steps ? `/${megabytes(p.steps)}` : ""
    } MB`;
  } else if (p.step !== undefined && p.steps) {
    detail += ` ${p.step}/${p.steps}`;
  }
  return `${piece}${p.phase}${detail}`;
}

/**
 * One training step as a line: the step and a bar, the step's loss and top-10 accuracy, scored
 * tokens per second, the time left, and the latest held-out loss when there is one.
 *
 * @param p The step's report.
 * @param evalLoss The latest held-out loss (`p.evalLoss` on steps that evaluate).
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { trainProgressLine } from "./_speak_progress.ts";
 * const line = trainProgressLine({
 *   step: 5, steps: 10, loss: 4.25, accuracy: 0.5, gradNorm: 1, tokensPerSecond: 1234.5,
 *   elapsedMs: 5000, etaMs: 65000,
 * }, 4.5);
 * console.assert(
 *   line === "step 5/10 [############............] 50% loss 4.250 acc 50.0% 1235 tok/s " +
 *     "ETA 1:05 eval 4.500",
 * );
 * ```
 */
export function trainProgressLine(p: TrainProgress, evalLoss = p.evalLoss): string {
  const evaluated = evalLoss === undefined ? "" : ` eval ${evalLoss.toFixed(3)}`;
  return `step ${p.step}/${p.steps}${bar(p.step, p.steps)} loss ${p.loss.toFixed(3)} ` +
    `acc ${(100 * p.accuracy).toFixed(1)}% ${p.tokensPerSecond.toFixed(0)} tok/s ` +
    `ETA ${clock(p.etaMs)}${evaluated}`;
}
