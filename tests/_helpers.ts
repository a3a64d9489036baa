/**
 * Shared test utilities: a seeded random generator, closeness assertions that print the worst
 * element (llm.c's `check_tensor` style), and the fixtures folder.
 */

import type { CaseResult } from "../tools/golden/types.ts";

/** The folder holding copied golden files. */
export const FIXTURES: URL = new URL("./fixtures/", import.meta.url);

/** Reads a fixture file as bytes. */
export function readFixture(path: string): Promise<Uint8Array> {
  return Deno.readFile(new URL(path, FIXTURES));
}

/** Deterministic PRNG (mulberry32), so random test data is the same on every run. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A Float32Array of `n` normals scaled by `scale`. */
  normals(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * scale;
    return out;
  }
}

/** The largest absolute difference between two arrays, and where it is. */
export function maxAbsDiff(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { max: number; index: number } {
  let max = 0;
  let index = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (d > max || Number.isNaN(d)) {
      max = Number.isNaN(d) ? Infinity : d;
      index = i;
    }
  }
  return { max, index };
}

/**
 * Asserts `|actual - expected| <= atol + rtol * |expected|` element-wise. On failure the message
 * gives the worst element, the max difference and the first few pairs side by side.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 0, label = "values" }: { atol?: number; rtol?: number; label?: string } =
    {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length}, expected ${expected.length}`);
  }
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    const allowed = atol + rtol * Math.abs(expected[i]);
    const excess = Number.isNaN(d) ? Infinity : d - allowed;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    const { max } = maxAbsDiff(actual, expected);
    const pairs = [];
    for (let i = 0; i < Math.min(5, expected.length); i++) {
      pairs.push(`  [${i}] ${actual[i]} vs ${expected[i]}`);
    }
    throw new Error(
      `${label}: not close (atol ${atol}, rtol ${rtol}); worst at [${worst}]: ` +
        `${actual[worst]} vs ${expected[worst]}; max abs diff ${max}\n${pairs.join("\n")}`,
    );
  }
}

/**
 * Runs golden cases (tools/golden/, as `deno task golden` does) and fails with every failed case
 * listed, or when there was none.
 */
export async function assertGoldenCases(cases: AsyncIterable<CaseResult>): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for await (const r of cases) results.push(r);
  const failed = results.filter((r) => !r.passed);
  if (results.length === 0 || failed.length > 0) {
    const lines = failed.map((r) =>
      `  ${r.name}: max error ${r.maxError} > ${r.tolerance} ${r.detail ?? ""}`
    );
    throw new Error(`${failed.length} of ${results.length} cases failed\n${lines.join("\n")}`);
  }
  return results;
}
