/** Progress reports of loading and synthesis as a sentence and a fraction for a progress bar. */

import type { SynthesisProgress } from "../../mod.ts";

/** What to show for one report. */
export interface ProgressView {
  /** A sentence for the user. */
  text: string;
  /** How far along, 0..1; undefined when unknown. */
  fraction?: number;
}

/**
 * Makes a describer for one synthesis. It adds up files that download together (the model and
 * EnCodec load in parallel), so the bar shows the total.
 *
 * @returns A function from a report to what to show.
 *
 * @example
 * ```ts ignore
 * const describe = progressDescriber();
 * describe({ phase: "level0", piece: 0, pieces: 2 }); // { text: "Sentence 1 of 2: generating…", fraction: 0 }
 * ```
 */
export function progressDescriber(): (progress: SynthesisProgress) => ProgressView {
  let downloads = new Map<string, { loaded: number; total?: number }>();
  return (p) => {
    if (p.phase !== "download") downloads = new Map();
    const piece = p.pieces ? `Sentence ${(p.piece ?? 0) + 1} of ${p.pieces}: ` : "";
    const at = (share: number) => p.pieces ? ((p.piece ?? 0) + share) / p.pieces : undefined;
    switch (p.phase) {
      case "download": {
        downloads.set(p.file ?? "", { loaded: p.step ?? 0, total: p.steps });
        const files = [...downloads.values()];
        const loaded = files.reduce((n, f) => n + f.loaded, 0);
        const known = files.every((f) => f.total !== undefined);
        const total = files.reduce((n, f) => n + (f.total ?? 0), 0);
        const name = p.file?.split("/").at(-1) ?? "";
        return {
          text: `Downloading ${name}: ${megabytes(loaded)}${
            known ? ` of ${megabytes(total)}` : ""
          } MB`,
          fraction: known && total > 0 ? loaded / total : undefined,
        };
      }
      case "load":
        if (p.file === "backend") return { text: `Starting ${p.backend}…` };
        return { text: `Loading the ${p.file ?? "model"}…` };
      case "compile":
        return {
          text: `Preparing the GPU kernels${p.steps ? ` (${p.step ?? 0} of ${p.steps})` : ""}…`,
          fraction: p.steps ? (p.step ?? 0) / p.steps : undefined,
        };
      case "phonemize":
        return { text: "Converting the text to phonemes…" };
      case "encode-prompt":
        return { text: "Encoding the reference voice…" };
      case "duration":
        return { text: `${piece}predicting its length…`, fraction: at(0) };
      case "level0":
        return { text: `${piece}generating…`, fraction: at(0) };
      case "nar":
        return { text: `${piece}adding detail…`, fraction: at(0.5) };
      case "decode":
        return { text: `${piece}decoding the audio…`, fraction: at(0.9) };
    }
  };
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}
