/**
 * Japanese text → hiragana, the form upstream sends to espeak-ng (it uses pykakasi; this module
 * uses the kuromoji morphological analyser with its IPADIC dictionary, from the npm package
 * `@patdx/kuromoji`). Kanji take their reading in context, katakana become hiragana, everything else is
 * kept. The dictionary (17 MB gzipped) loads on the first conversion.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { ValleError } from "../errors.ts";

/** Where browsers get the dictionary by default: the npm package, from a CDN. */
const DEFAULT_DICTIONARY_URL = "https://cdn.jsdelivr.net/npm/@patdx/kuromoji@1.0.4/dict/";

/** Options of {@linkcode createHiraganaConverter}. */
export interface HiraganaOptions {
  /**
   * The URL of the folder holding kuromoji's `*.dat.gz` dictionary files. Deno reads the installed
   * `@patdx/kuromoji` npm package when this is left out; other runtimes fetch jsDelivr's copy of
   * `@patdx/kuromoji@1.0.4/dict/`.
   */
  dictionary?: string | URL;
}

interface KuromojiTokenizer {
  tokenize(text: string): { surface_form: string; reading?: string }[];
}

const KANJI = /[\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]/u;
const KATAKANA = /[\u30a1-\u30f6]/gu;
const HALF_WIDTH_KATAKANA = /[\uff66-\uff9f]+/gu;

/** Katakana → hiragana, code point by code point (ァ–ヶ → ぁ–ゖ); other characters are kept. */
function katakanaToHiragana(text: string): string {
  return text.replace(KATAKANA, (ch) => String.fromCharCode(ch.charCodeAt(0) - 0x60));
}

/**
 * The package, by its full npm specifier: resolved by the runtime itself, never through an import
 * map, so the library works the same from any folder, URL or registry. The calls below spell it
 * out again: Deno, `deno publish` and bundlers only follow a literal.
 */
const KUROMOJI = "npm:@patdx/kuromoji@1.0.4";

/**
 * Imports kuromoji.
 *
 * @throws {ValleError} When the runtime cannot load the npm package (offline with an empty npm
 *   cache, npm disabled, or a `node_modules` folder without it).
 */
async function importKuromoji(): Promise<typeof import("npm:@patdx/kuromoji@1.0.4")> {
  try {
    return await import("npm:@patdx/kuromoji@1.0.4");
  } catch (e) {
    throw new ValleError(
      `Cannot read Japanese: its analyser ${KUROMOJI} did not load (${(e as Error).message})`,
      { cause: e },
    );
  }
}

/**
 * Where kuromoji's dictionary is when no option says: the `dict/` folder of the installed npm
 * package where the runtime keeps it on disk (Deno resolves the package to a `file:` URL in its npm
 * cache or in `node_modules`), else jsDelivr's copy of the same version (browsers, bundles).
 *
 * @returns The folder's URL, ending in `/`.
 * @throws {ValleError} When the runtime cannot load the npm package.
 *
 * @example
 * ```ts
 * import { defaultDictionary } from "./japanese.ts";
 * const dict = await defaultDictionary();
 * console.assert(dict.protocol === "file:" && dict.pathname.endsWith("/kuromoji/1.0.4/dict/"));
 * ```
 */
export async function defaultDictionary(): Promise<URL> {
  await importKuromoji();
  let entry: URL | undefined;
  try {
    entry = new URL(import.meta.resolve("npm:@patdx/kuromoji@1.0.4"));
  } catch {
    // Runtimes without npm: specifiers may refuse to resolve one: use the CDN copy.
  }
  return entry?.protocol === "file:" ? new URL("../dict/", entry) : new URL(DEFAULT_DICTIONARY_URL);
}

/** Fetches one dictionary file, gunzipping it unless the server already did. */
async function loadFile(url: URL): Promise<ArrayBuffer> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new ValleError(
      `Cannot load the Japanese dictionary file ${url}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (!response.ok) {
    throw new ValleError(
      `Cannot load the Japanese dictionary file ${url}: HTTP ${response.status}, expected 200`,
    );
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes.buffer;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).arrayBuffer();
}

async function buildTokenizer(dictionary: string | URL | undefined): Promise<KuromojiTokenizer> {
  const { TokenizerBuilder } = await importKuromoji();
  const base = dictionary === undefined ? await defaultDictionary() : new URL(dictionary);
  const loader = { loadArrayBuffer: (file: string) => loadFile(new URL(file, base)) };
  return await new TokenizerBuilder({ loader }).build();
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
