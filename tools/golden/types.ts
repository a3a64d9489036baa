/** The contract between the golden runner (tools/golden.ts) and each model family's checker. */

/** The outcome of one case (one comparison) of a golden folder. */
export interface CaseResult {
  /** `<file>:<case>`, e.g. `ar.safetensors:prefix5.logits`. */
  name: string;
  /** Measured max |ours − reference| (0 for exact comparisons that agree; NaN when not measurable). */
  maxError: number;
  /** The tolerance it is held to (0 for exact comparisons). */
  tolerance: number;
  /** Whether it passed. */
  passed: boolean;
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
  run(folder: URL, manifest: Record<string, unknown>): AsyncIterable<CaseResult>;
}
