/**
 * Prompt sampling against a re-implementation of upstream's `Dataset.sample_prompts` written from
 * training-spec §9.4 (codes as lists of frames, Python's `qnt.trim`, the random-branch draw), fed
 * the same numbers: same prompts, same numbers consumed. And the train/held-out split.
 */

import { deepStrictEqual, equal, notDeepStrictEqual, ok, throws } from "node:assert";
import { OptionError } from "../../src/errors.ts";
import { samplePrompt } from "../../src/train/prompts.ts";
import { splitUtterances } from "../../src/train/split.ts";
import type { Utterance } from "../../src/train/utterance.ts";
import { Rng } from "../_helpers.ts";

/** An utterance whose code at frame t, level q is `id · 10000 + t · 8 + q`, capped to int16. */
function utterance(speaker: string, name: string, frames: number, id: number): Utterance {
  const codes = Int16Array.from({ length: frames * 8 }, (_, i) => (id * 1009 + i) % 32000);
  return {
    name,
    speaker,
    language: "en",
    languageId: 0,
    text: name,
    ipa: name,
    phonemes: Uint16Array.of(1, 2),
    codes,
    frames,
    levels: 8,
  };
}

/** The dataset of the tests: speakers with one to five utterances of 40 to 700 frames. */
function dataset(rng: Rng): Utterance[] {
  const out: Utterance[] = [];
  for (const [s, count] of [["alone", 1], ["pair", 2], ["many", 5], ["short", 4]] as const) {
    for (let i = 0; i < count; i++) {
      const frames = s === "short" ? 40 + Math.floor(rng.next() * 120) : 60 + rng.next() * 640;
      out.push(utterance(s, `${s}-${i}`, Math.floor(frames), out.length));
    }
  }
  return out;
}

interface UpstreamConfig {
  promptDurationRange: [number, number];
  promptMaxSamples: number;
  promptSimilarP: number;
  framesPerSecond: number;
}

/**
 * upstream's sample_prompts(speaker_name, utterance_name), spec §9.4, over `metadata` (speaker →
 * utterance name → frames, each frame 8 codes), with `random.random()` = `rng()`,
 * `random.uniform(a, b)` = `a + (b − a) · rng()` and `random.choice(xs)` = `xs[⌊rng() · n⌋]`.
 */
function upstreamSamplePrompts(
  metadata: Map<string, Map<string, number[][]>>,
  speakerName: string,
  utteranceName: string | null,
  rng: () => number,
  cfg: UpstreamConfig,
): number[][] | null {
  const utterances = metadata.get(speakerName)!;
  if (utterances.size <= 1) return null;
  let choices = [...utterances.keys()].filter((k) => k !== utteranceName);
  if (choices.length === 0) choices = [...utterances.keys()];
  let shouldTrim = true;
  if (cfg.promptDurationRange[1] <= 0) shouldTrim = false;
  let promLength = 0;
  let trimLength = 0;
  if (shouldTrim) {
    const [lo, hi] = cfg.promptDurationRange;
    trimLength = Math.trunc((lo + (hi - lo) * rng()) * cfg.framesPerSecond);
  }
  // qnt.trim(qnt, target) for target > 0 on a [T, 8] array.
  const trim = (qnt: number[][], target: number) => {
    let start = 0;
    let end = start + target;
    if (end >= qnt.length) [start, end] = [qnt.length - target, qnt.length];
    return qnt.slice(start, end);
  };
  const promList: number[][][] = [];
  for (let i = 0; i < cfg.promptMaxSamples; i++) {
    let sampled: string | null = null;
    if (utteranceName !== null) {
      if (rng() < cfg.promptSimilarP) sampled = null; // get_similar_utterance: no index → None
    }
    if (!sampled) sampled = choices[Math.floor(rng() * choices.length)];
    let qnt = utterances.get(sampled)!;
    if (0 < trimLength && trimLength < qnt.length) qnt = trim(qnt, trimLength);
    promList.push(qnt);
    promLength += qnt.length;
    if (promLength >= trimLength) break;
  }
  let prom = promList.flat();
  if (0 < trimLength && trimLength < prom.length) prom = trim(prom, trimLength);
  return prom;
}

function metadataOf(pool: readonly Utterance[]): Map<string, Map<string, number[][]>> {
  const metadata = new Map<string, Map<string, number[][]>>();
  for (const u of pool) {
    if (!metadata.has(u.speaker)) metadata.set(u.speaker, new Map());
    const frames = Array.from(
      { length: u.frames },
      (_, t) => [...u.codes.subarray(t * 8, t * 8 + 8)],
    );
    metadata.get(u.speaker)!.set(u.name, frames);
  }
  return metadata;
}

/** A generator that counts its draws. */
function counted(seed: number): { next: () => number; count: () => number } {
  const rng = new Rng(seed);
  let n = 0;
  return { next: () => (n++, rng.next()), count: () => n };
}

const SETTINGS: [string, UpstreamConfig][] = [
  ["defaults", {
    promptDurationRange: [3, 6],
    promptMaxSamples: 3,
    promptSimilarP: 0.75,
    framesPerSecond: 75,
  }],
  ["the yaml's one sample", {
    promptDurationRange: [3, 6],
    promptMaxSamples: 1,
    promptSimilarP: 1,
    framesPerSecond: 75,
  }],
  ["no trimming", {
    promptDurationRange: [0, 0],
    promptMaxSamples: 3,
    promptSimilarP: 0.75,
    framesPerSecond: 75,
  }],
  ["short prompts, many samples", {
    promptDurationRange: [1, 2.5],
    promptMaxSamples: 8,
    promptSimilarP: 0,
    framesPerSecond: 75,
  }],
];

for (const [label, cfg] of SETTINGS) {
  Deno.test(`samplePrompt equals upstream's sample_prompts (${label})`, () => {
    const pool = dataset(new Rng(11));
    const metadata = metadataOf(pool);
    let joined = 0;
    for (let seed = 0; seed < 60; seed++) {
      for (const target of pool) {
        const ours = counted(seed);
        const theirs = counted(seed);
        const prompt = samplePrompt(target, pool, {
          random: ours.next,
          durationRange: cfg.promptDurationRange,
          maxSamples: cfg.promptMaxSamples,
          framesPerSecond: cfg.framesPerSecond,
        });
        const want = upstreamSamplePrompts(metadata, target.speaker, target.name, theirs.next, cfg);
        equal(ours.count(), theirs.count(), `${target.name} seed ${seed}: numbers drawn`);
        if (want === null) {
          equal(prompt, null, `${target.name}: a lone speaker has no prompt`);
          continue;
        }
        ok(prompt);
        equal(prompt.levels, 8);
        equal(prompt.frames, want.length, `${target.name} seed ${seed}: frames`);
        deepStrictEqual([...prompt.data], want.flat(), `${target.name} seed ${seed}: codes`);
        // Never the target's own codes.
        const own = target.codes.subarray(0, 8);
        for (let t = 0; t < prompt.frames; t++) {
          notDeepStrictEqual(prompt.data.subarray(t * 8, t * 8 + 8), own);
        }
        if (
          want.length > Math.max(
            ...pool.filter((u) => u.speaker === target.speaker).map((u) => u.frames),
          )
        ) joined++;
      }
    }
    if (label === "defaults") ok(joined > 0, "some prompts join several utterances");
  });
}

Deno.test("samplePrompt: a held-out target draws from the whole pool of its speaker", () => {
  const pool = dataset(new Rng(3));
  const held = utterance("pair", "pair-held", 300, 99);
  const cfg = SETTINGS[0][1];
  for (let seed = 0; seed < 20; seed++) {
    const ours = counted(seed);
    const prompt = samplePrompt(held, pool, { random: ours.next });
    const want = upstreamSamplePrompts(
      metadataOf(pool),
      "pair",
      "pair-held",
      counted(seed).next,
      cfg,
    );
    deepStrictEqual([...prompt!.data], want!.flat());
  }
  // A speaker not in the pool has no prompt.
  equal(samplePrompt(utterance("nobody", "x", 100, 1), pool, { random: () => 0 }), null);
});

Deno.test("samplePrompt checks its options", () => {
  const pool = dataset(new Rng(1));
  throws(() => samplePrompt(pool[1], pool, { maxSamples: 0 }), OptionError);
  throws(() => samplePrompt(pool[1], pool, { durationRange: [6, 3] }), /durationRange is \[6,3\]/);
  throws(() => samplePrompt(pool[1], pool, { framesPerSecond: 0 }), OptionError);
});

Deno.test("splitUtterances holds out a seeded share, keeping two utterances per speaker", () => {
  const pool = dataset(new Rng(5)); // alone 1, pair 2, many 5, short 4
  const split = splitUtterances(pool, { evalCount: 4, seed: 7 });
  equal(split.eval.length, 4);
  deepStrictEqual(
    [...split.train, ...split.eval].map((u) => u.name).sort(),
    pool.map((u) => u.name).sort(),
  );
  // Order kept; only speakers with more than two utterances give any, and keep two.
  const names = pool.map((u) => u.name);
  for (const part of [split.train, split.eval]) {
    const at = part.map((u) => names.indexOf(u.name));
    deepStrictEqual(at, [...at].sort((a, b) => a - b));
  }
  for (const speaker of ["alone", "pair", "many", "short"]) {
    const kept = split.train.filter((u) => u.speaker === speaker).length;
    const all = pool.filter((u) => u.speaker === speaker).length;
    ok(kept >= Math.min(all, 2), `${speaker} keeps ${kept} of ${all}`);
  }
  ok(split.eval.every((u) => u.speaker === "many" || u.speaker === "short"));
  // Deterministic by seed; other seeds pick others.
  deepStrictEqual(splitUtterances(pool, { evalCount: 4, seed: 7 }), split);
  const picks = new Set(
    [1, 2, 3, 4, 5, 6].map((seed) =>
      splitUtterances(pool, { evalCount: 2, seed }).eval.map((u) => u.name).join()
    ),
  );
  ok(picks.size > 1);
  // More than the speakers can spare: as many as they can (5 − 2 + 4 − 2).
  equal(splitUtterances(pool, { evalCount: 12 }).eval.length, 5);
  // The default share: round(0.1 · 12) = 1.
  equal(splitUtterances(pool).eval.length, 1);
  equal(splitUtterances(pool, { evalFraction: 0 }).eval.length, 0);
  throws(() => splitUtterances(pool, { evalFraction: 2 }), OptionError);
});
