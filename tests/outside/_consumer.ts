/**
 * A program of another project that uses @valle/core. `outside_test.ts` copies it into a
 * temporary project folder, with the import below pointing at the repository's `mod.ts` by file
 * URL, and runs it there: nothing of this repository's configuration (its import map) applies.
 *
 * It reads `request.json` from its folder, prints what the library gave as JSON on stdout and
 * writes the synthesized samples to `speech.f32` (little-endian float32).
 */

import {
  type Language,
  phonemize,
  type Phonemizer,
  prepareText,
  synthesize,
  type SynthesizeOptions,
  type ValleOptions,
} from "../../mod.ts";

/** What the test asks for. */
export interface ConsumerRequest {
  /** One sentence per language, phonemized with `phonemize` and `prepareText`. */
  sentences: { language: Language; text: string }[];
  /** A text mixing languages, prepared with `language: "auto"`. */
  mixed: string;
  /** One `synthesize()` call, or none. */
  speak?: { text: string; options: SynthesizeOptions & ValleOptions };
  /** Phonemize with a phonemizer of the program's own that answers this IPA for any text. */
  ownIpa?: string;
  /** Make every WebAssembly compilation throw: espeak-ng, a WebAssembly module, cannot start. */
  noWebAssembly?: boolean;
}

/** What the program prints. */
export interface ConsumerResult {
  /** Per sentence: `phonemize()`'s result and `prepareText()`'s pieces' phonemes. */
  sentences: { phonemize: string; prepared: string[] }[];
  /** The pieces of the mixed text: detected language and phonemes. */
  mixed: { language: string; phonemes: string }[];
  /** When something threw: the error's class name and message. */
  error?: { name: string; message: string };
}

/** Makes every WebAssembly compilation throw. */
function disableWebAssembly(): void {
  const refuse = () => {
    throw new Error("WebAssembly is disabled in this program");
  };
  Object.assign(WebAssembly, { compile: refuse, instantiate: refuse, Module: refuse });
}

async function run(request: ConsumerRequest): Promise<ConsumerResult> {
  if (request.noWebAssembly) disableWebAssembly();
  const { ownIpa } = request;
  const phonemizer: Phonemizer | undefined = ownIpa === undefined
    ? undefined
    : { phonemize: () => Promise.resolve(ownIpa) };
  const sentences = [];
  for (const { language, text } of request.sentences) {
    const pieces = await prepareText(text, { language, phonemizer });
    sentences.push({
      phonemize: await phonemize(text, language, phonemizer),
      prepared: pieces.map((p) => p.phonemes),
    });
  }
  const mixed = (await prepareText(request.mixed, { language: "auto", phonemizer }))
    .map((p) => ({ language: p.language, phonemes: p.phonemes }));
  if (request.speak) {
    const speech = await synthesize(request.speak.text, request.speak.options);
    await Deno.writeFile("speech.f32", new Uint8Array(speech.samples.buffer));
  }
  return { sentences, mixed };
}

const request: ConsumerRequest = JSON.parse(await Deno.readTextFile("request.json"));
try {
  console.log(JSON.stringify(await run(request)));
} catch (e) {
  const { name, message } = e as Error;
  console.log(JSON.stringify({ sentences: [], mixed: [], error: { name, message } }));
}
