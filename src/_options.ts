/**
 * Option resolution shared by every layer: defaults filled in for absent options, and the one
 * rule every numeric option is checked by: a finite number (a whole one where asked) inside a
 * range, else an {@linkcode OptionError} that names the option, shows the value as JavaScript
 * prints it (`NaN`, `-Infinity`) and states the range. The tables of ranges live with the options
 * they describe (`src/tts/options.ts`, `src/models/valle/sampler.ts`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "./errors.ts";

/** The values a numeric option accepts: always finite; bounds are optional. */
export interface NumberRange {
  /** Whole numbers only. */
  readonly integer?: boolean;
  /** The lowest value accepted. */
  readonly min?: number;
  /** Values must be greater than this. */
  readonly above?: number;
  /** The highest value accepted. */
  readonly max?: number;
  /** Values must be less than this. */
  readonly below?: number;
}

/** `defaults` overridden by the options that are not `undefined` (an explicit `undefined` is absent). */
export function withDefaults<D extends object, O extends object>(defaults: D, options: O): D & O {
  const given = Object.entries(options).filter(([, value]) => value !== undefined);
  return { ...defaults, ...Object.fromEntries(given) } as D & O;
}

/** Whether `value` is a number `range` accepts. */
export function inRange(value: unknown, range: NumberRange): value is number {
  if (typeof value !== "number" || !Number.isFinite(value)) return false;
  if (range.integer && !Number.isInteger(value)) return false;
  return !((range.min !== undefined && value < range.min) ||
    (range.above !== undefined && value <= range.above) ||
    (range.max !== undefined && value > range.max) ||
    (range.below !== undefined && value >= range.below));
}

/** `range` in words: "a number ≥ 0", "an integer in [1, 1000]", "a number in (0, 1]". */
export function describeRange(range: NumberRange): string {
  const kind = range.integer ? "an integer" : "a number";
  const low = range.min !== undefined
    ? { bracket: "[", value: range.min, word: "≥" }
    : range.above !== undefined
    ? { bracket: "(", value: range.above, word: ">" }
    : undefined;
  const high = range.max !== undefined
    ? { bracket: "]", value: range.max, word: "≤" }
    : range.below !== undefined
    ? { bracket: ")", value: range.below, word: "<" }
    : undefined;
  if (low && high) return `${kind} in ${low.bracket}${low.value}, ${high.value}${high.bracket}`;
  const bound = low ?? high;
  return bound ? `${kind} ${bound.word} ${bound.value}` : `a finite ${kind.slice(2)}`;
}

/** A value as a message shows it: strings quoted, numbers as JavaScript prints them (NaN). */
export function formatValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}

/**
 * Checks `values[name]` against `table[name]` for every option of the table that is present.
 *
 * @param action What fails, as the message's start: `Cannot ${action}: …`.
 * @param values The options (absent ones are skipped; fill defaults in first to check those).
 * @param table The range of each numeric option.
 * @throws {OptionError} The first value out of its range, e.g. "Cannot synthesize: topP is NaN,
 * expected a number in (0, 1]".
 */
export function checkRanges<T extends object>(
  action: string,
  values: T,
  table: { readonly [K in keyof T]?: NumberRange },
): void {
  for (const name of Object.keys(table) as (keyof T & string)[]) {
    const value = values[name];
    const range = table[name]!;
    if (value !== undefined && !inRange(value, range)) {
      throw new OptionError(
        `Cannot ${action}: ${name} is ${formatValue(value)}, expected ${describeRange(range)}`,
      );
    }
  }
}

/**
 * Checks that `value` is one of `accepted`.
 *
 * @param action What fails, as the message's start: `Cannot ${action}: …`.
 * @param name The option's name.
 * @param value What was given.
 * @param accepted The values accepted.
 * @throws {OptionError} E.g. "Cannot load: precision is "f8", expected "auto", "f16" or "f32"".
 */
export function checkChoice(
  action: string,
  name: string,
  value: unknown,
  accepted: readonly string[],
): void {
  if (accepted.includes(value as string)) return;
  const words = accepted.map((a) => JSON.stringify(a));
  const list = words.length > 1 ? `${words.slice(0, -1).join(", ")} or ${words.at(-1)}` : words[0];
  throw new OptionError(`Cannot ${action}: ${name} is ${formatValue(value)}, expected ${list}`);
}
