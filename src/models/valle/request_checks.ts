/**
 * Checks of request values shared by the single and the batched pipeline.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { checkRanges } from "../../_options.ts";
import { OptionError } from "../../errors.ts";
import { SAMPLER_RANGES } from "./sampler.ts";

/** NAR-len's base temperature (default 0), checked by the sampler's rule for temperatures. */
export function narLenTemperature(value: number | undefined): number {
  const temperature = value ?? 0;
  checkRanges("run NAR-len", { temperature }, { temperature: SAMPLER_RANGES.temperature });
  return temperature;
}

/** `value` when it is a positive integer; else an `OptionError` naming `name`. */
export function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new OptionError(`Cannot generate: ${name} is ${value}, expected a positive integer`);
  }
  return value;
}
