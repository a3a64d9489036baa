/**
 * Language detection for `"auto"`: the algorithm of the Cybozu `language-detection` library that
 * upstream VALL-E calls through Python's `langdetect` (character 1–3-gram naive Bayes over 7
 * random-walk trials), with its profiles (from the npm port `langdetect@0.2.1`) limited to the
 * languages the model knows, and a fixed seed so the same text always gives the same answer.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { mulberry32 } from "../_random.ts";
import type { Language } from "./languages.ts";

const N_TRIALS = 7;
const ALPHA = 0.5;
const ALPHA_WIDTH = 0.05;
const ITERATION_LIMIT = 1000;
const CONV_THRESHOLD = 0.99999;
const BASE_FREQ = 10000;
const MAX_TEXT_LENGTH = 10000;
/** The model's language for each langdetect profile. */
const PROFILE_LANGUAGES: Readonly<Record<string, Language>> = {
  en: "en",
  ja: "ja",
  de: "de",
  fr: "fr",
  "zh-cn": "zh",
  "zh-tw": "zh",
  ko: "ko",
};

const URL_RE = /https?:\/\/[-_.?&~;+=/#0-9A-Za-z]{1,2076}/g;
const MAIL_RE = /[-_.0-9A-Za-z]{1,64}@[-_0-9A-Za-z]{1,255}[-_.0-9A-Za-z]{1,255}/g;

interface Model {
  languages: Language[];
  /** n-gram → probability per profile. */
  probabilities: Map<string, Float64Array>;
  cjk: Map<string, string>;
}

let model: Promise<Model> | undefined;

async function loadModel(): Promise<Model> {
  const { PROFILES, CJK_CLASSES } = await import("./_language_profiles.ts");
  const names = Object.keys(PROFILES);
  const probabilities = new Map<string, Float64Array>();
  names.forEach((name, index) => {
    const { nWords, freq } = PROFILES[name];
    for (const line of freq.split("\n")) {
      const [gram, count] = line.split("\t");
      const length = [...gram].length;
      if (length < 1 || length > 3) continue;
      let row = probabilities.get(gram);
      if (!row) probabilities.set(gram, row = new Float64Array(names.length));
      row[index] = Number(count) / nWords[length - 1];
    }
  });
  const cjk = new Map<string, string>();
  for (const group of CJK_CLASSES) for (const ch of group) cjk.set(ch, group[0]);
  return { languages: names.map((name) => PROFILE_LANGUAGES[name]), probabilities, cjk };
}

/** langdetect's `NGram.normalize`: folds each character into the class its profiles count. */
function normalize(ch: string, cjk: Map<string, string>): string {
  const c = ch.codePointAt(0)!;
  if (c < 0x80) return /[A-Za-z]/.test(ch) ? ch : " ";
  if (c < 0x100) return "\u00a0\u00ab\u00b0\u00bb".includes(ch) ? " " : ch;
  if (c >= 0x180 && c < 0x250) return ch === "\u0219" ? "\u015f" : ch === "\u021b" ? "\u0163" : ch;
  if (c >= 0x600 && c < 0x700) return ch === "\u06cc" ? "\u064a" : ch;
  if (c >= 0x1ea0 && c < 0x1f00) return "\u1ec3";
  if (c >= 0x2000 && c < 0x2070) return " ";
  if (c >= 0x3040 && c < 0x30a0) return "\u3042";
  if (c >= 0x30a0 && c < 0x3100) return "\u30a2";
  if ((c >= 0x3100 && c < 0x3130) || (c >= 0x31a0 && c < 0x31c0)) return "\u3105";
  if (c >= 0x4e00 && c < 0xa000) return cjk.get(ch) ?? ch;
  if (c >= 0xac00 && c < 0xd7b0) return "\uac00";
  return ch;
}

/** langdetect's `Detector.append` + `cleaning_text` + `_extract_ngrams`. */
function extractNgrams(text: string, { probabilities, cjk }: Model): string[] {
  let chars = [
    ...text.replace(URL_RE, " ").replace(MAIL_RE, " ").replace(/ {2,}/g, " "),
  ].slice(0, MAX_TEXT_LENGTH);
  const latin = chars.filter((ch) => ch >= "A" && ch <= "z").length;
  const nonLatin = chars.filter((ch) => {
    const c = ch.codePointAt(0)!;
    return c >= 0x300 && !(c >= 0x1e00 && c < 0x1f00);
  }).length;
  if (latin * 2 < nonLatin) chars = chars.filter((ch) => !(ch >= "A" && ch <= "z"));
  const grams: string[] = [];
  let window = " ";
  let capitalWord = false;
  for (const raw of chars) {
    const ch = normalize(raw, cjk);
    const last = window[window.length - 1];
    if (last === " ") {
      window = " ";
      capitalWord = false;
      if (ch === " ") continue;
    } else if ([...window].length >= 3) {
      window = [...window].slice(1).join("");
    }
    window += ch;
    const upper = (s: string) => s !== s.toLowerCase() && s === s.toUpperCase();
    if (upper(ch)) {
      if (upper(last)) capitalWord = true;
    } else {
      capitalWord = false;
    }
    if (capitalWord) continue;
    const w = [...window];
    for (let n = 1; n <= 3 && n <= w.length; n++) {
      const gram = w.slice(w.length - n).join("");
      if (gram !== " " && probabilities.has(gram)) grams.push(gram);
    }
  }
  return grams;
}

/**
 * Detects which of the model's languages `text` is written in, as upstream's `"auto"` does with
 * `langdetect.detect`, but only among `en ja de fr zh ko` (text in another language gets the
 * closest of them) and deterministically. Text with no letters (empty, digits, punctuation) gives
 * `"en"`, upstream's answer for empty text.
 *
 * @param text One sentence or more.
 * @returns The most probable language.
 *
 * @example
 * ```ts
 * import { detectLanguage } from "@valle/core";
 * console.assert(await detectLanguage("Der Zug fährt um acht Uhr ab.") === "de");
 * console.assert(await detectLanguage("今日はいい天気ですね。") === "ja");
 * ```
 */
export async function detectLanguage(text: string): Promise<Language> {
  const m = await (model ??= loadModel());
  const grams = extractNgrams(text, m);
  if (!grams.length) return "en";
  const next = mulberry32(0);
  const total = new Float64Array(m.languages.length);
  for (let trial = 0; trial < N_TRIALS; trial++) {
    const prob = new Float64Array(m.languages.length).fill(1 / m.languages.length);
    // Box-Muller: langdetect draws alpha from a normal distribution.
    const gauss = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
    const weight = (ALPHA + gauss * ALPHA_WIDTH) / BASE_FREQ;
    for (let i = 0;; i++) {
      const row = m.probabilities.get(grams[Math.floor(next() * grams.length)])!;
      for (let k = 0; k < prob.length; k++) prob[k] *= weight + row[k];
      if (i % 5 === 0) {
        const sum = prob.reduce((a, b) => a + b, 0);
        let max = 0;
        for (let k = 0; k < prob.length; k++) max = Math.max(max, prob[k] /= sum);
        if (max > CONV_THRESHOLD || i >= ITERATION_LIMIT) break;
      }
    }
    for (let k = 0; k < prob.length; k++) total[k] += prob[k] / N_TRIALS;
  }
  const scores = new Map<Language, number>();
  m.languages.forEach((lang, k) => scores.set(lang, (scores.get(lang) ?? 0) + total[k]));
  return [...scores].reduce((best, entry) => entry[1] > best[1] ? entry : best)[0];
}
