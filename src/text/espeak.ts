/**
 * The bundled {@linkcode Phonemizer}: espeak-ng from the npm package
 * `@echogarden/espeak-ng-emscripten` (an Emscripten build, engine in JS, voices and dictionaries in
 * one `espeak-ng.data` file), driven exactly as VALL-E's `g2p.encode` drives it through Python's
 * phonemizer. Japanese goes through hiragana first, Mandarin tone digits are remapped. Nothing is
 * loaded until the first call to `phonemize`.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError, ValleError } from "../errors.ts";
import { toHiragana } from "./japanese.ts";
import { type Language, LANGUAGES, mapPinyinTones } from "./languages.ts";
import type { Phonemizer } from "./phonemizer.ts";
import { phonemizeLikePhonemizer } from "./punctuation.ts";

/** The npm package version whose `espeak-ng.data` the engine expects (see deno.json imports). */
const PACKAGE = "@echogarden/espeak-ng-emscripten@0.1.2";
/** Where browsers get `espeak-ng.data` by default: the same npm package, from a CDN. */
const DEFAULT_DATA_URL = `https://cdn.jsdelivr.net/npm/${PACKAGE}/espeak-ng.data`;
/** espeak-ng's phoneme mode as phonemizer sets it: IPA, phones separated by `_`. */
const IPA_WITH_SEPARATOR = 1;

/** Options of {@linkcode createEspeakPhonemizer}. */
export interface EspeakOptions {
  /**
   * The package's `espeak-ng.data` (18 MB: voices, phoneme tables, dictionaries), as bytes or a URL
   * to fetch. Deno and Node read it from the installed npm package when this is left out; other
   * runtimes fetch it from jsDelivr's copy of `@echogarden/espeak-ng-emscripten@0.1.2`.
   */
  data?: string | URL | Uint8Array;
  /** Converts Japanese text to hiragana before espeak (default: {@linkcode toHiragana}). */
  hiragana?: (text: string) => Promise<string>;
}

/** The part of the Emscripten module this backend uses. */
interface EspeakModule {
  HEAPU8: Uint8Array;
  _free(ptr: number): void;
  eSpeakNGWorker: new () => {
    set_voice(name: string): number;
    text_to_phonemes(text: string, useIpa: number): { ptr: number };
  };
}

type ModuleFactory = (moduleArg: Record<string, unknown>) => Promise<EspeakModule>;

/** True where the Emscripten build takes its Node path (Deno included) and reads files itself. */
function hasNodeFileSystem(): boolean {
  const process = (globalThis as { process?: { versions?: { node?: unknown } } }).process;
  return typeof process?.versions?.node === "string";
}

async function loadData(data: string | URL | Uint8Array): Promise<ArrayBuffer> {
  if (data instanceof Uint8Array) {
    return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  }
  const response = await fetch(data);
  if (!response.ok) {
    throw new ValleError(
      `Cannot load espeak-ng data from ${data}: HTTP ${response.status}, expected 200`,
    );
  }
  return response.arrayBuffer();
}

/** Instantiates espeak-ng; `data` replaces the package's own lookup of `espeak-ng.data`. */
async function instantiate(data: string | URL | Uint8Array | undefined): Promise<EspeakModule> {
  const { default: factory } = await import("@echogarden/espeak-ng-emscripten") as {
    default: ModuleFactory;
  };
  const moduleArg: Record<string, unknown> = {};
  const source = data ?? (hasNodeFileSystem() ? undefined : DEFAULT_DATA_URL);
  if (source !== undefined) {
    const bytes = await loadData(source);
    // The package's prelude assigns a Node-only `locateFile` (it reads `__dirname`); keep ours.
    Object.defineProperty(moduleArg, "locateFile", { get: () => (path: string) => path, set() {} });
    moduleArg.getPreloadedPackage = () => bytes;
  }
  return await factory(moduleArg);
}

/**
 * Creates the espeak-ng {@linkcode Phonemizer}. It produces what VALL-E's `g2p.encode(text,
 * language)` produces (phonemizer 3.3 espeak backend, `preserve_punctuation=True`,
 * `with_stress=True`, `strip=True`): punctuation `;:,.!?¡¿—…"«»“”(){}[]` kept verbatim with its
 * surrounding whitespace, stress marks kept, language-switch flags such as `(en)…(fr)` kept.
 * The engine and data load on the first call, not here.
 *
 * @param options Where the data file comes from and how Japanese becomes hiragana.
 * @returns A phonemizer; it throws {@linkcode OptionError} for empty text, as upstream does.
 *
 * @example Phonemize the model's sample sentence
 * ```ts
 * import { createEspeakPhonemizer } from "@valle/core";
 * const espeak = createEspeakPhonemizer();
 * const ipa = await espeak.phonemize("Once again, excellent work.", "en");
 * console.assert(ipa === "wˈʌns ɐɡˈɛn, ˈɛksələnt wˈɜːk.");
 * ```
 */
export function createEspeakPhonemizer(options: EspeakOptions = {}): Phonemizer {
  let module: Promise<EspeakModule> | undefined;
  let engine: ReturnType<typeof convertWith> | undefined;
  const hiragana = options.hiragana ?? toHiragana;
  return {
    async phonemize(text: string, language: Language): Promise<string> {
      module ??= instantiate(options.data);
      engine ??= convertWith(await module);
      const input = language === "ja" ? await hiragana(text) : text;
      const voice = LANGUAGES[language].espeakVoice;
      const phonemes = await phonemizeLikePhonemizer(input, (chunk) => engine!(voice, chunk));
      if (phonemes === undefined) {
        throw new OptionError(`Cannot phonemize: text is empty, expected at least one character`);
      }
      return language === "zh" ? mapPinyinTones(phonemes) : phonemes;
    },
  };
}

/**
 * Returns the chunk converter: `espeak_TextToPhonemes` called until the text is consumed (the
 * package's `text_to_phonemes` joins the clauses with " | "), non-empty clauses joined with " ".
 */
function convertWith(module: EspeakModule): (voice: string, chunk: string) => Promise<string> {
  const worker = new module.eSpeakNGWorker();
  const decoder = new TextDecoder();
  let current = "";
  return (voice, chunk) => {
    if (voice !== current) {
      if (worker.set_voice(voice) !== 0) {
        throw new ValleError(`Cannot select espeak-ng voice "${voice}": ${PACKAGE} lacks it`);
      }
      current = voice;
    }
    const ptr = worker.text_to_phonemes(chunk, IPA_WITH_SEPARATOR).ptr;
    const end = module.HEAPU8.indexOf(0, ptr);
    const clauses = decoder.decode(module.HEAPU8.subarray(ptr, end)).split(" | ");
    module._free(ptr);
    return Promise.resolve(clauses.filter((clause) => clause).join(" "));
  };
}
