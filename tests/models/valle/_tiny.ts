/**
 * The tiny golden model (tests/fixtures/valle-tiny) and its inputs, shared by the VALL-E tests
 * that run whole generation calls.
 */

import { parseSafetensors } from "../../../src/io/safetensors.ts";
import type { ValleConditioning } from "../../../src/models/valle/model.ts";
import { readFixture } from "../../_helpers.ts";

/** The model file (d 32, 2 layers, 8 levels, 1024 codes; AR stops at step 23 greedily). */
export const TINY_MODEL: Uint8Array = await readFixture("valle-tiny/model.sft");

const inputs = parseSafetensors(await readFixture("valle-tiny/inputs.safetensors"));

/** Phonemes, language and the 40-frame prompt of the golden cases. */
export const TINY_COND: ValleConditioning = {
  phonemes: inputs.toInt32("phn"),
  language: inputs.toInt32("lang")[0],
  prompt: { data: inputs.toInt32("prom"), frames: 40, levels: 8 },
};

/** The golden target codes, (30, 8) frame-major. */
export const TINY_TARGET: Int32Array = inputs.toInt32("resp_target");
