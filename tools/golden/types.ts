/** The contract between the golden runner (tools/golden.ts) and each model family's checker. */

import type { BackendKind } from "../../src/backends/backend.ts";

/** How a folder is run. */
export interface GoldenOptions {
  /** The backend the cases run on (a new one per folder). Default `"webgpu"`. */
  backend?: BackendKind;
  /**
   * Whether a greedy token that loses to another by less than the tie tolerance (a near-tie that
   * other hardware may flip) passes. Default: per backend (the family decides; valle: not on the
   * CPU backend and software adapters).
   */
  allowTies?: boolean;
}

/** The outcome of one case (one comparison) of a golden folder. */
export interface CaseResult {
  /** `<file>:<case>`, e.g. `ar.safetensors:prefix5.logits`. */
  name: string;
  /**
   * Measured max |ours − reference| (0 for exact comparisons that agree; NaN when not measurable).
   * Greedy token cases: the largest margin by which a golden token lost to our argmax.
   */
  maxError: number;
  /** The tolerance it is held to (0 for exact comparisons). */
  tolerance: number;
  /** Whether it passed (false when skipped). */
  passed: boolean;
  /**
   * Why the case was not run, when it was skipped: counted apart, neither passed nor failed. Only
   * for a case the folder describes but this model cannot run and the folder holds no expected
   * values for; anything unknown is a failure.
   */
  skipped?: string;
  /** Extra facts for the line (mismatch counts, documented near-ties, why it failed). */
  detail?: string;
}

/** A model family's checker: claims folders of its format and runs every case in them. */
export interface GoldenFamily {
  /** Family name for messages, e.g. "valle". */
  name: string;
  /** True when the folder's manifest.json is in this family's format. */
  accepts(manifest: Record<string, unknown>): boolean;
  /**
   * Runs every case file listed in the manifest. A case file or kind it does not understand must
   * be yielded as a failure, never skipped.
   */
  run(
    folder: URL,
    manifest: Record<string, unknown>,
    options: GoldenOptions,
  ): AsyncIterable<CaseResult>;
}
