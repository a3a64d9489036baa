/**
 * Debian's native libespeak-ng 1.51 through FFI, called the way Python's phonemizer calls it:
 * `espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL, 0)`, `espeak_SetVoiceByName` when the
 * voice changes, then `espeak_TextToPhonemes(&text, espeakCHARS_UTF8, '_' << 8 | 0x02)` until the
 * text pointer is NULL. Needs Debian 12's `libespeak-ng1` (`deno task test` installs it as root;
 * CI does).
 */

const LIBRARY = "/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1.1.51";

/** The same signature as the WebAssembly engine's `textToPhonemes`: every result, empty included. */
export type TextToPhonemes = (voice: string, text: string) => string[];

let opened: TextToPhonemes | undefined;

/** Opens the native library (once per process); the returned function converts one text. */
export function nativeEspeak(): TextToPhonemes {
  opened ??= open();
  return opened;
}

function open(): TextToPhonemes {
  try {
    Deno.statSync(LIBRARY);
  } catch {
    throw new Error(
      `${LIBRARY} is missing: apt-get install libespeak-ng1 (Debian 12, espeak-ng 1.51)`,
    );
  }
  const lib = Deno.dlopen(LIBRARY, {
    espeak_Initialize: { parameters: ["i32", "i32", "pointer", "i32"], result: "i32" },
    espeak_SetVoiceByName: { parameters: ["buffer"], result: "i32" },
    espeak_TextToPhonemes: { parameters: ["buffer", "i32", "i32"], result: "pointer" },
  });
  lib.symbols.espeak_Initialize(0x02, 0, null, 0);
  const encoder = new TextEncoder();
  let current = "";
  return (voice, chunk) => {
    if (voice !== current) lib.symbols.espeak_SetVoiceByName(encoder.encode(`${voice}\0`));
    current = voice;
    // One ArrayBuffer (always outside the moving V8 heap) holds the text pointer espeak advances
    // and the NUL-terminated text it points into, so both stay put between calls.
    const text = encoder.encode(`${chunk}\0`);
    const buffer = new ArrayBuffer(8 + text.length);
    new Uint8Array(buffer, 8).set(text);
    const cell = new BigUint64Array(buffer, 0, 1);
    cell[0] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer))) + 8n;
    const results: string[] = [];
    while (cell[0] !== 0n) {
      const result = lib.symbols.espeak_TextToPhonemes(buffer, 1, 0x5f02);
      results.push(result ? new Deno.UnsafePointerView(result).getCString() : "");
    }
    return results;
  };
}
