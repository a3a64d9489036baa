/**
 * Sequence assembly against layouts written out by hand from valle-spec §3.3/§4 (the golden
 * layout cases run in golden_test.ts): segment order, separators, segment-relative and unified
 * positions, the summation rules, the CFG null input, STT and duration layouts, masks, heads.
 */

import assert from "node:assert/strict";
import { OptionError } from "../../../src/errors.ts";
import { parseSafetensors } from "../../../src/io/safetensors.ts";
import { checkValleWeights, valleTableLayout } from "../../../src/models/valle/weights.ts";
import { assembleSequence, type SequenceSpec } from "../../../src/models/valle/inputs.ts";
import type { ValleConfig } from "../../../src/models/valle/config.ts";
import { NO_ROW } from "../../../src/ops/embedding.ts";
import { makeRandomValle } from "../../../tools/make_valle_model.ts";

const CONFIG = checkValleWeights(
  parseSafetensors(makeRandomValle({ levels: 4, audioTokens: 16, layers: 1 })),
);
const L = valleTableLayout(CONFIG);

// Rows of the stacked table for this config (4 levels, 16 codes, 256 phonemes, 6 languages).
Deno.test("the stacked table puts every embedding table at its documented row", () => {
  assert.deepEqual(
    [L.phn, L.lang, L.rvq, L.len, L.sep, ...L.prom, ...L.resp, L.rows],
    [0, 256, 262, 266, 277, 278, 294, 310, 326, 342, 359, 375, 391, 407, 424],
  );
});

const PROMPT = { data: [1, 2, 3, 4, 5, 6, 7, 8], frames: 2, levels: 4 }; // frame-major
const TARGET = { data: [9, 10, 11, 12, 13, 14, 15, 0], frames: 2, levels: 4 };
const BASE: SequenceSpec = { mode: "ar", phonemes: [1, 5, 2], language: 3, prompt: PROMPT };

/** Term lists per position (NO_ROW dropped). */
function terms(ids: Uint32Array, n: number, t: number): number[][] {
  return Array.from(
    { length: n },
    (_, r) => Array.from(ids.subarray(r * t, (r + 1) * t)).filter((x) => x !== NO_ROW),
  );
}

function assemble(spec: Partial<SequenceSpec>, config: ValleConfig = CONFIG) {
  const seq = assembleSequence(config, L, { ...BASE, ...spec } as SequenceSpec);
  return { seq, terms: terms(seq.ids, seq.length, seq.terms) };
}

Deno.test("AR: phn S lang S rvq S prom S resp, positions restart per segment", () => {
  const { seq, terms } = assemble({ response: { data: [7, 9], frames: 2, levels: 1 } });
  const sep = [L.sep];
  assert.deepEqual(terms, [
    [1],
    [5],
    [2],
    sep,
    [L.lang + 3],
    sep,
    [L.rvq + 0],
    sep,
    [L.prom[0] + 1],
    [L.prom[0] + 5],
    sep,
    [L.resp[0] + 7],
    [L.resp[0] + 9],
  ]);
  assert.deepEqual(Array.from(seq.positions), [0, 1, 2, 3, 0, 1, 0, 1, 0, 1, 2, 0, 1]);
  assert.deepEqual(Array.from(seq.kinds), [0, 0, 0, 6, 1, 6, 2, 6, 3, 3, 6, 4, 4]);
  assert.deepEqual(
    [seq.outputStart, seq.outputLength, seq.readStart, seq.readLength, seq.causal, seq.head],
    [11, 2, 12, 1, true, 0],
  );
});

Deno.test("AR step 0 ends with the separator after the prompt and reads it", () => {
  const { seq } = assemble({ response: null });
  assert.equal(seq.length, 11);
  assert.equal(seq.kinds[10], 6);
  assert.deepEqual([seq.readStart, seq.outputLength], [10, 0]);
});

Deno.test("NAR level 3, HEAD rule: prompt sums P[0..2], response sums R[1..3] over levels 0..2", () => {
  const { seq, terms } = assemble({ mode: "nar", level: 3, response: TARGET });
  assert.deepEqual(terms.slice(8, 10), [
    [L.prom[0] + 1, L.prom[1] + 2, L.prom[2] + 3],
    [L.prom[0] + 5, L.prom[1] + 6, L.prom[2] + 7],
  ]);
  assert.deepEqual(terms[6], [L.rvq + 3]);
  assert.deepEqual(terms.slice(11), [
    [L.resp[1] + 9, L.resp[2] + 10, L.resp[3] + 11],
    [L.resp[1] + 13, L.resp[2] + 14, L.resp[3] + 15],
  ]);
  assert.deepEqual([seq.readStart, seq.readLength, seq.causal, seq.head], [11, 2, false, 3]);
  assert.deepEqual(seq.feed, { base: L.resp[1], stride: 16, terms: 3, level0: 0 });
});

Deno.test("NAR level 3, Dec-2024 rule drops the level just below the target", () => {
  const { terms } = assemble({ mode: "nar", level: 3, response: TARGET, rule: "dec2024" });
  assert.deepEqual(terms[8], [L.prom[0] + 1, L.prom[1] + 2]);
  assert.deepEqual(terms[11], [L.resp[1] + 9, L.resp[2] + 10]);
  const level1 = assemble({ mode: "nar", level: 1, response: TARGET, rule: "dec2024" });
  assert.deepEqual(level1.terms, assemble({ mode: "nar", level: 1, response: TARGET }).terms);
});

Deno.test("NAR without embedding sums reads one level: P[L-1] and R[L]", () => {
  const config = { ...CONFIG, audioEmbeddingSums: false };
  const { terms } = assemble({ mode: "nar", level: 3, response: TARGET }, config);
  assert.deepEqual(terms[8], [L.prom[2] + 3]);
  assert.deepEqual(terms[11], [L.resp[3] + 11]);
});

Deno.test("without noncausal_masks every mode is causal", () => {
  const config = { ...CONFIG, noncausalMasks: false };
  assert.equal(assemble({ mode: "nar", level: 2, response: TARGET }, config).seq.causal, true);
  assert.equal(assemble({ mode: "nar-len", response: TARGET }, config).seq.causal, true);
});

Deno.test("NAR-len embeds level 0 with the last response table, mask id included", () => {
  const { seq, terms } = assemble({
    mode: "nar-len",
    response: { data: [16, 3], frames: 2, levels: 1 },
  });
  assert.deepEqual(terms.slice(11), [[L.resp[4] + 16], [L.resp[4] + 3]]);
  assert.deepEqual([seq.causal, seq.head, seq.readLength], [false, 4, 2]);
});

Deno.test("NAR-len with context frames feeds them but reads only the frames after them", () => {
  const response = { data: [3, 4, 16, 16, 16], frames: 5, levels: 1 };
  const { seq, terms } = assemble({ mode: "nar-len", response, contextFrames: 2 });
  assert.deepEqual(terms.slice(11), [3, 4, 16, 16, 16].map((c) => [L.resp[4] + c]));
  assert.deepEqual(Array.from(seq.positions).slice(11), [0, 1, 2, 3, 4]);
  assert.deepEqual([seq.outputStart, seq.outputLength, seq.readStart, seq.readLength], [
    11,
    5,
    13,
    3,
  ]);
  for (const contextFrames of [5, -1, 1.5]) {
    assert.throws(() => assemble({ mode: "nar-len", response, contextFrames }), OptionError);
  }
});

Deno.test("the CFG null input is <bos></eos> S lang S rvq S resp, with no prompt", () => {
  const { seq, terms } = assemble({
    mode: "nar-len",
    phonemes: [1, 2],
    prompt: null,
    response: TARGET,
  });
  assert.deepEqual(Array.from(seq.kinds), [0, 0, 6, 1, 6, 2, 6, 4, 4]);
  assert.deepEqual(Array.from(seq.positions), [0, 1, 2, 0, 1, 0, 1, 0, 1]);
  assert.deepEqual(terms[7], [L.resp[4] + 9]);
});

Deno.test("unified position ids run 0..N-1", () => {
  const { seq } = assemble({ response: { data: [7], frames: 1, levels: 1 } }, {
    ...CONFIG,
    unifiedPositionIds: true,
  });
  assert.deepEqual(Array.from(seq.positions), Array.from({ length: 12 }, (_, i) => i));
});

Deno.test("the language segment can be left out, per call or with language null", () => {
  for (const spec of [{ includeLanguage: false }, { language: null }]) {
    const { seq } = assemble(spec);
    assert.deepEqual(Array.from(seq.kinds), [0, 0, 0, 6, 2, 6, 3, 3, 6]);
  }
});

Deno.test("duration: phn S lang S rvq S prom S len digits", () => {
  const { seq, terms } = assemble({ mode: "len", lengthDigits: [0, 4] });
  assert.deepEqual(terms.slice(11), [[L.len + 0], [L.len + 4]]);
  assert.deepEqual(Array.from(seq.positions).slice(11), [0, 1]);
  assert.deepEqual([seq.readStart, seq.readLength, seq.causal, seq.head], [12, 1, true, 6]);
});

Deno.test("STT: resp(R[0] + R[l+1], l < levels-1) S lang S rvq S phn, causal, phoneme head", () => {
  const { seq, terms } = assemble({
    mode: "stt",
    phonemes: [1, 40],
    prompt: null,
    response: TARGET,
  });
  assert.deepEqual(terms.slice(0, 2), [
    [L.resp[0] + 9, L.resp[2] + 10, L.resp[3] + 11],
    [L.resp[0] + 13, L.resp[2] + 14, L.resp[3] + 15],
  ]);
  assert.deepEqual(Array.from(seq.kinds), [4, 4, 6, 1, 6, 2, 6, 0, 0]);
  assert.deepEqual(terms.slice(7), [[1], [40]]);
  assert.deepEqual([seq.readStart, seq.causal, seq.head], [8, true, 5]);
});

Deno.test("bad ids and levels are OptionErrors", () => {
  const bad: Partial<SequenceSpec>[] = [
    { mode: "nar", level: 0, response: TARGET },
    { mode: "nar", level: 4, response: TARGET },
    { phonemes: [1, 256, 2] },
    { language: 6 },
    { mode: "nar", level: 3, response: { data: [1, 2], frames: 1, levels: 2 } },
    { response: { data: [17], frames: 1, levels: 1 } },
    { mode: "len", lengthDigits: [0, 11] },
  ];
  for (const spec of bad) {
    assert.throws(() => assemble(spec), OptionError, JSON.stringify(spec));
  }
  const old = checkValleWeights(parseSafetensors(makeRandomValle({ layout: "ar+nar", levels: 4 })));
  assert.throws(
    () => assembleSequence(old, valleTableLayout(old), { ...BASE, mode: "nar-len" }),
    OptionError,
  );
});
