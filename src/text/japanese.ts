/**
 * Japanese text → hiragana, the form upstream sends to espeak-ng (it uses pykakasi; this module
 * uses the kuromoji morphological analyser with its IPADIC dictionary from the npm package
 * `kuromoji`). Kanji take their reading in context, katakana become hiragana, everything else is
 * kept. The dictionary (17 MB gzipped) loads on the first conversion.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { ValleError } from "../errors.ts";

/** Where browsers get the dictionary by default: the `kuromoji` npm package, from a CDN. */
const DEFAULT_DICTIONARY_URL = "https://cdn.jsdelivr.net/npm/kuromoji@0.1.2/dict/";

/** Options of {@linkcode createHiraganaConverter}. */
export interface HiraganaOptions {
  /**
   * The folder holding kuromoji's `*.dat.gz` dictionary files: a file system path in Deno, a URL
   * elsewhere. Deno reads the installed `kuromoji` npm package when this is left out; other
   * runtimes fetch jsDelivr's copy of `kuromoji@0.1.2/dict/`.
   */
  dictionary?: string;
}

interface KuromojiToken {
  surface_form: string;
  reading?: string;
}

interface KuromojiTokenizer {
  tokenize(text: string): KuromojiToken[];
}

interface Kuromoji {
  builder(options: { dicPath: string }): {
    build(callback: (error: unknown, tokenizer: KuromojiTokenizer) => void): void;
  };
}

const KANJI = /[\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]/u;
const KATAKANA = /[\u30a1-\u30f6]/gu;
const HALF_WIDTH_KATAKANA = /[\uff66-\uff9f]+/gu;

/** Katakana → hiragana, code point by code point (ァ–ヶ → ぁ–ゖ); other characters are kept. */
function katakanaToHiragana(text: string): string {
  return text.replace(KATAKANA, (ch) => String.fromCharCode(ch.charCodeAt(0) - 0x60));
}

/** Where the dictionary lives when no option says: the npm package in Deno, a CDN elsewhere. */
function defaultDictionary(): string {
  try {
    const url = new URL(import.meta.resolve("kuromoji/dict/base.dat.gz"));
    if (url.protocol === "file:") return decodeURIComponent(url.pathname).replace(/[^/]*$/, "");
  } catch {
    // Bare specifiers do not resolve in a browser bundle: use the CDN copy.
  }
  return DEFAULT_DICTIONARY_URL;
}

async function buildTokenizer(dictionary: string | undefined): Promise<KuromojiTokenizer> {
  const module = await import("kuromoji") as { default: Kuromoji };
  const dicPath = dictionary ?? defaultDictionary();
  return await new Promise((resolve, reject) =>
    module.default.builder({ dicPath }).build((error, tokenizer) =>
      error
        ? reject(
          new ValleError(`Cannot load the Japanese dictionary from ${dicPath}: ${error}`, {
            cause: error,
          }),
        )
        : resolve(tokenizer)
    )
  );
}

/**
 * Creates a Japanese → hiragana converter. The dictionary loads on the first call.
 *
 * @param options Where kuromoji's dictionary is.
 * @returns The converter: kanji words become the hiragana of their reading, katakana (also
 *   half-width) become hiragana, other characters pass through unchanged.
 *
 * @example
 * ```ts
 * import { createHiraganaConverter } from "@valle/core";
 * const toHiragana = createHiraganaConverter();
 * console.assert(await toHiragana("私は学生です。") === "わたしはがくせいです。");
 * ```
 */
export function createHiraganaConverter(
  options: HiraganaOptions = {},
): (text: string) => Promise<string> {
  let tokenizer: Promise<KuromojiTokenizer> | undefined;
  return async (text) => {
    tokenizer ??= buildTokenizer(options.dictionary);
    const normalized = text.replace(HALF_WIDTH_KATAKANA, (run) => run.normalize("NFKC"));
    return (await tokenizer).tokenize(normalized).map(({ surface_form, reading }) =>
      katakanaToHiragana(KANJI.test(surface_form) && reading ? reading : surface_form)
    ).join("");
  };
}

/**
 * Converts Japanese text to hiragana with the default dictionary location (see
 * {@linkcode createHiraganaConverter}).
 *
 * @param text Japanese text, in any mix of kanji, kana and other characters.
 * @returns The text in hiragana.
 *
 * @example
 * ```ts
 * import { toHiragana } from "@valle/core";
 * console.assert(await toHiragana("東京") === "とうきょう");
 * ```
 */
export const toHiragana: (text: string) => Promise<string> = createHiraganaConverter();
