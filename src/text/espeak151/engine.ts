/**
 * espeak-ng 1.51, the engine and data Debian 12 ships (`1.51+dfsg-10+deb12u2`), compiled to
 * WebAssembly by `tools/espeak/build.sh` and driven through its C API the way Python's
 * phonemizer drives the native library. The WebAssembly module and the data files it reads come
 * from the generated `_archive.ts`, which is imported on the first {@linkcode loadEspeak151}
 * call, not before.
 *
 * This component is GPL-3.0-or-later (espeak-ng's licence, data included), unlike the rest of
 * @valle/core: see `LICENSE` in this folder for the source offer.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { ValleError } from "../../errors.ts";
import { gunzipBase64 } from "../../io/gunzip.ts";
import { createWasi } from "./wasi.ts";

/** Where the data directory is inside the module (the build's `PATH_ESPEAK_DATA`). */
const DATA_PATH = "/espeak-ng-data";
/** `espeak_Initialize`'s output mode as phonemizer passes it: `AUDIO_OUTPUT_SYNCHRONOUS`. */
const AUDIO_OUTPUT_SYNCHRONOUS = 0x02;
/** `espeak_TextToPhonemes` text mode: `espeakCHARS_UTF8`. */
const CHARS_UTF8 = 1;
/** phonemizer's phoneme mode: IPA (`0x02`) with `_` (0x5f) between phones. */
const IPA_WITH_UNDERSCORES = (0x5f << 8) | 0x02;

/** The loaded engine: one WebAssembly instance, so one voice at a time. */
export interface Espeak151 {
  /** What `espeak_Info` reports: `"1.51"`. */
  readonly version: string;
  /**
   * Converts `text` with `voice` as phonemizer's `EspeakWrapper.text_to_phonemes` does: the
   * voice is selected with `espeak_SetVoiceByName` (only when it changes), then
   * `espeak_TextToPhonemes(&text, espeakCHARS_UTF8, '_' << 8 | 0x02)` is called until the text
   * pointer becomes NULL.
   *
   * @param voice The voice identifier, e.g. `gmw/en-US`.
   * @param text The text, any length.
   * @returns Every result of those calls in order, empty ones included.
   * @throws {ValleError} When the voice is unknown or espeak stops consuming the text.
   */
  textToPhonemes(voice: string, text: string): string[];
}

/** The C functions the build exports (tools/espeak/build.sh). */
interface Exports {
  memory: WebAssembly.Memory;
  _initialize(): void;
  malloc(size: number): number;
  free(pointer: number): void;
  espeak_Initialize(output: number, bufferLength: number, path: number, options: number): number;
  espeak_Info(path: number): number;
  espeak_SetVoiceByName(name: number): number;
  espeak_TextToPhonemes(textPointer: number, textMode: number, phonemeMode: number): number;
}

let loading: Promise<Espeak151> | undefined;

/**
 * Loads espeak-ng 1.51 (about 4 MB of memory once unpacked) the first time it is called and
 * returns that same engine afterwards.
 *
 * @returns The engine.
 * @throws {ValleError} When the WebAssembly module fails to start.
 *
 * @example Phonemize one word
 * ```ts
 * import { loadEspeak151 } from "./engine.ts";
 * const espeak = await loadEspeak151();
 * console.assert(espeak.version === "1.51");
 * console.assert(espeak.textToPhonemes("gmw/en-US", "hello").join("") === "h_ə_l_ˈoʊ");
 * ```
 */
export function loadEspeak151(): Promise<Espeak151> {
  loading ??= instantiate().catch((error) => {
    loading = undefined;
    throw error;
  });
  return loading;
}

/** Decodes `_archive.ts` into its files, by path. */
async function unpack(): Promise<Map<string, Uint8Array<ArrayBuffer>>> {
  const { ARCHIVE, FILES } = await import("./_archive.ts");
  const bytes = await gunzipBase64(ARCHIVE);
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  let offset = 0;
  for (const [path, length] of FILES) {
    files.set(path, bytes.subarray(offset, offset += length));
  }
  return files;
}

async function instantiate(): Promise<Espeak151> {
  const files = await unpack();
  const module = await WebAssembly.compile(files.get("espeak-ng.wasm")!);
  const data = new Map<string, Uint8Array>();
  for (const [path, bytes] of files) {
    if (path.startsWith("espeak-ng-data/")) data.set(path.slice("espeak-ng-data/".length), bytes);
  }
  const wasi = createWasi(module, DATA_PATH, data);
  const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.imports });
  const c = instance.exports as unknown as Exports;
  wasi.bind(c.memory);
  c._initialize();
  const rate = c.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, 0, 0);
  if (rate <= 0) {
    throw new ValleError(
      `Cannot start espeak-ng 1.51: espeak_Initialize returned ${rate}, expected a sample ` +
        `rate (${wasi.output().trim() || "no message"})`,
    );
  }
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const readString = (pointer: number): string => {
    const heap = new Uint8Array(c.memory.buffer);
    return decoder.decode(heap.subarray(pointer, heap.indexOf(0, pointer)));
  };
  /** Copies `text` into the module as a NUL-terminated UTF-8 string; free it after use. */
  const writeString = (text: string): number => {
    const bytes = encoder.encode(`${text}\0`);
    const pointer = c.malloc(bytes.length);
    new Uint8Array(c.memory.buffer).set(bytes, pointer);
    return pointer;
  };
  let currentVoice = "";

  function setVoice(voice: string): void {
    const name = writeString(voice);
    const status = c.espeak_SetVoiceByName(name);
    c.free(name);
    if (status !== 0) {
      throw new ValleError(
        `Cannot select espeak-ng voice "${voice}": espeak_SetVoiceByName returned ${status}, ` +
          `expected 0 (the build ships only the voices in LANGUAGES)`,
      );
    }
    currentVoice = voice;
  }

  return {
    version: readString(c.espeak_Info(0)),
    textToPhonemes(voice, text) {
      if (voice !== currentVoice) setVoice(voice);
      const start = writeString(text);
      const cell = c.malloc(4);
      const position = () => new DataView(c.memory.buffer).getUint32(cell, true);
      new DataView(c.memory.buffer).setUint32(cell, start, true);
      const results: string[] = [];
      try {
        for (let before = start; before !== 0; before = position()) {
          const result = c.espeak_TextToPhonemes(cell, CHARS_UTF8, IPA_WITH_UNDERSCORES);
          results.push(result ? readString(result) : "");
          if (position() === before) {
            throw new ValleError(
              `Cannot phonemize with espeak-ng: it stopped at byte ${before - start} of the ` +
                `text, expected it to consume the text`,
            );
          }
        }
      } finally {
        c.free(cell);
        c.free(start);
      }
      return results;
    },
  };
}
