/**
 * Token comparisons that survive other hardware. A golden token sequence made by greedy decoding
 * (AR, NAR levels, duration digits) is checked step by step on logits computed teacher-forced on
 * the golden tokens: every step sees the golden prefix, so one flipped near-tie cannot derail the
 * rest of the run. Each step is
 *
 * - a match: our argmax is the golden token (its top-2 margin, logit of the best minus the best
 *   other, is recorded to report the closest call);
 * - a tie: our argmax is another token but the golden token's logit is within `tolerance` of it
 *   (FMA contraction, another `exp`, another reduction order can flip such a step on another
 *   device; the reference itself was only that far apart);
 * - a failure: the golden token loses by more than `tolerance`.
 *
 * The free run of the library (the output a user gets) is compared too: up to its first divergence
 * it must equal the golden tokens, and the divergence itself must be a tie on the teacher-forced
 * logits (both tokens within `tolerance` of the row's best). After it nothing of the free run is
 * compared: the teacher-forced steps cover the rest.
 *
 * Used for AR runs (with their penalties), NAR argmax rows and greedy levels, duration digits,
 * NAR-len argmax rows and greedy demasking traces, and the AR + NAR pipeline (tools/golden/valle.ts).
 * Still exact there: sampled runs (the seeded draw decides, not an argmax) and the NAR-len
 * pipeline's codes.
 *
 * Whether ties are allowed is the caller's choice (tools/golden/valle.ts: not on the CPU backend and
 * software adapters, which reproduce the reference's tokens exactly today; allowed and reported on
 * hardware adapters).
 */

/** One step whose argmax is not the golden token. */
export interface TokenMiss {
  /** Row (step) index. */
  row: number;
  /** The golden token. */
  expected: number;
  /** Our argmax. */
  got: number;
  /** Our logit of `got` minus our logit of `expected` (≥ 0; Infinity when not comparable). */
  margin: number;
}

/** The steps of a token sequence, classified against teacher-forced logits. */
export interface TokenClassification {
  /** Rows (steps) classified. */
  rows: number;
  /** Rows whose argmax is the golden token. */
  matched: number;
  /** Differing rows within the tolerance. */
  ties: TokenMiss[];
  /** Differing rows beyond the tolerance (or a golden token that is no column). */
  failures: TokenMiss[];
  /** The smallest top-2 margin of a matched row (Infinity when none), and its row. */
  closest: { margin: number; row: number };
}

/** The outcome of comparing a free run with the golden tokens. */
export interface FreeRunCheck {
  /** The first row where the free run differs (-1: identical). */
  diverged: number;
  /** True when identical, or when the first divergence is a tie. */
  consistent: boolean;
  /** What happened, for the case's detail. */
  detail?: string;
}

/** The argmax of a row (lowest index among equal maxima, as the samplers pick). */
function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c] > row[best]) best = c;
  return best;
}

function rowOf(logits: ArrayLike<number>, columns: number, r: number): Float32Array | number[] {
  return logits instanceof Float32Array
    ? logits.subarray(r * columns, (r + 1) * columns)
    : Array.from({ length: columns }, (_, c) => logits[r * columns + c]);
}

/** How far token `t` is below the row's best (Infinity for a token that is no column or -∞). */
function deficit(row: ArrayLike<number>, t: number): number {
  if (!(Number.isInteger(t) && t >= 0 && t < row.length)) return Infinity;
  const d = row[argmax(row)] - row[t];
  return Number.isNaN(d) ? Infinity : d;
}

/**
 * Classifies each row of `logits` (rows × columns, the logits the step's choice is made from)
 * against the golden token of that row.
 *
 * @param logits Teacher-forced logits, row-major.
 * @param columns Columns per row.
 * @param expected The golden token of each row.
 * @param tolerance The largest margin by which a golden token may lose and still be a tie.
 */
export function classifyTokens(
  logits: ArrayLike<number>,
  columns: number,
  expected: ArrayLike<number>,
  tolerance: number,
): TokenClassification {
  const rows = expected.length;
  if (logits.length !== rows * columns) {
    throw new Error(`${logits.length} logits for ${rows} rows of ${columns}`);
  }
  const out: TokenClassification = {
    rows,
    matched: 0,
    ties: [],
    failures: [],
    closest: { margin: Infinity, row: -1 },
  };
  for (let r = 0; r < rows; r++) {
    const row = rowOf(logits, columns, r);
    const best = argmax(row);
    const want = expected[r];
    if (best === want) {
      out.matched++;
      let second = -Infinity;
      for (let c = 0; c < columns; c++) if (c !== best && row[c] > second) second = row[c];
      const margin = row[best] - second;
      if (margin < out.closest.margin) out.closest = { margin, row: r };
      continue;
    }
    const miss = { row: r, expected: want, got: best, margin: deficit(row, want) };
    (miss.margin <= tolerance ? out.ties : out.failures).push(miss);
  }
  return out;
}

/**
 * Compares a free run with the golden tokens, row for row in the order of the teacher-forced rows.
 * Rows are grouped causally (`group[r]`, nondecreasing; default each row its own group): every row
 * of a group saw only golden tokens of earlier groups, so at the first group with a difference,
 * each differing row must be a tie (both tokens within `tolerance` of the best of our
 * teacher-forced row); later groups are not compared.
 *
 * @param logits The teacher-forced logits of {@linkcode classifyTokens}.
 * @param columns Columns per row.
 * @param expected The golden tokens.
 * @param got The free run's tokens (a different length is a divergence at the shorter end).
 * @param tolerance The tie tolerance.
 * @param group The causal group of each row.
 */
export function checkFreeRun(
  logits: ArrayLike<number>,
  columns: number,
  expected: ArrayLike<number>,
  got: ArrayLike<number>,
  tolerance: number,
  group?: ArrayLike<number>,
): FreeRunCheck {
  const n = Math.min(expected.length, got.length);
  let first = -1;
  for (let r = 0; r < n; r++) {
    if (got[r] !== expected[r]) {
      first = r;
      break;
    }
  }
  if (first < 0) {
    if (got.length === expected.length) return { diverged: -1, consistent: true };
    return {
      diverged: n,
      consistent: false,
      detail: `free run has ${got.length} tokens, expected ${expected.length}`,
    };
  }
  const g = group ? group[first] : first;
  const misses: string[] = [];
  let consistent = true;
  for (let r = first; r < n && (group ? group[r] === g : r === first); r++) {
    if (got[r] === expected[r]) continue;
    const row = rowOf(logits, columns, r);
    const margin = Math.max(deficit(row, got[r]), deficit(row, expected[r]));
    const tie = margin <= tolerance;
    consistent &&= tie;
    misses.push(
      `[${r}] ${got[r]} vs ${expected[r]} (margin ${fmt(margin)}${tie ? "" : ", clear"})`,
    );
  }
  const shown = misses.length > 4 ? [...misses.slice(0, 4), `… ${misses.length - 4} more`] : misses;
  return {
    diverged: first,
    consistent,
    detail: `free run diverged at ${shown.join(", ")}${
      consistent ? ": a tie, the rest checked teacher-forced" : ""
    }`,
  };
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

/** A golden token comparison's verdict and line, for a CaseResult. */
export interface TokenVerdict {
  passed: boolean;
  /** The largest margin by which a golden token lost (0 when every row matched). */
  maxError: number;
  detail?: string;
}

/**
 * The verdict of a token case: passed when no row failed, the free run (if any) is consistent,
 * and ties are either allowed or absent. The detail lists the ties (a tie where ties are not
 * allowed fails and says so), the free run's divergence and the closest call.
 *
 * @param cls The teacher-forced classification.
 * @param free The free run's check, when there is a free run.
 * @param allowTies Whether ties pass.
 */
export function tokenVerdict(
  cls: TokenClassification,
  free: FreeRunCheck | undefined,
  allowTies: boolean,
): TokenVerdict {
  const misses = [...cls.ties, ...cls.failures].sort((a, b) => a.row - b.row);
  const maxError = misses.reduce((m, x) => Math.max(m, x.margin), 0);
  const parts: string[] = [];
  const list = (xs: TokenMiss[]) => {
    const s = xs.slice(0, 6).map((x) => `[${x.row}] ${x.got} vs ${x.expected} (${fmt(x.margin)})`);
    if (xs.length > 6) s.push(`… ${xs.length - 6} more`);
    return s.join(", ");
  };
  if (cls.failures.length > 0) {
    parts.push(`${cls.failures.length} of ${cls.rows} differ clearly: ${list(cls.failures)}`);
  }
  if (cls.ties.length > 0) {
    parts.push(
      `${cls.ties.length} ${cls.ties.length === 1 ? "tie" : "ties"}${
        allowTies ? "" : " (not allowed on this backend)"
      }: ${list(cls.ties)}`,
    );
  }
  if (free && free.diverged >= 0 && free.detail) {
    parts.push(
      free.consistent && !allowTies ? `${free.detail} (not allowed on this backend)` : free.detail,
    );
  }
  if (misses.length === 0 && Number.isFinite(cls.closest.margin) && parts.length === 0) {
    parts.push(`closest margin ${fmt(cls.closest.margin)} at [${cls.closest.row}]`);
  }
  const passed = cls.failures.length === 0 && (allowTies || cls.ties.length === 0) &&
    (free === undefined || free.consistent) &&
    (allowTies || free === undefined || free.diverged < 0);
  return { passed, maxError, detail: parts.length > 0 ? parts.join("; ") : undefined };
}
