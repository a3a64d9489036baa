/**
 * The library used from outside this repository: a separate project in a temporary folder (its own
 * `deno.json`, no import map entries for the library's dependencies) imports `mod.ts` by file URL
 * and, in a `deno run` subprocess, phonemizes a sentence of each language, prepares a text with a
 * Japanese sentence in `"auto"`, and synthesizes on the tiny models. The phonemes must be the
 * original pipeline's (the G2P corpus), the audio the same as the same call made in this process.
 * A program with a phonemizer of its own runs with WebAssembly disabled: espeak-ng never starts.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { encodeWav } from "../../src/audio/wav.ts";
import { Valle } from "../../src/tts/valle.ts";
import { referenceClip, tinyModels } from "../_tiny_models.ts";
import { CORPUS } from "../text/_corpus.ts";
import type { ConsumerRequest, ConsumerResult } from "./_consumer.ts";

/** One corpus sentence per language. */
const SENTENCES = ["en-001", "de-001", "fr-001", "ja-001", "ko-000", "zh-001"].map((id) =>
  CORPUS.find((entry) => entry.id === id)!
);
const GERMAN = SENTENCES[1];
const JAPANESE = SENTENCES[3];
const SPEAK_OPTIONS = { language: "auto", seed: 11, maxSeconds: 0.4, steps: 3 } as const;

/** Writes the consumer project: `deno.json`, `main.ts` importing the repository by file URL. */
async function consumerProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "valle-outside-" });
  await Deno.writeTextFile(`${dir}/deno.json`, "{}\n");
  const source = await Deno.readTextFile(new URL("./_consumer.ts", import.meta.url));
  const library = new URL("../../mod.ts", import.meta.url).href;
  const main = source.replace('from "../../mod.ts"', `from "${library}"`);
  ok(main.includes(library), "the consumer imports the library by file URL");
  await Deno.writeTextFile(`${dir}/main.ts`, main);
  return dir;
}

/** Runs the consumer in its folder with its own configuration; returns what it printed. */
async function runConsumer(
  dir: string,
  request: ConsumerRequest,
  flags: string[] = [],
): Promise<ConsumerResult> {
  await Deno.writeTextFile(`${dir}/request.json`, JSON.stringify(request));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...flags, "--config", `${dir}/deno.json`, `${dir}/main.ts`],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  equal(out.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test({
  name: "a project outside the repository phonemizes all six languages and synthesizes",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await consumerProject();
    const tiny = await tinyModels();
    await Deno.writeFile(`${dir}/model.sft`, tiny.model);
    await Deno.writeFile(`${dir}/codec.safetensors`, tiny.codec);
    await Deno.writeTextFile(`${dir}/codec.json`, JSON.stringify(tiny.codecConfig));
    await Deno.writeFile(`${dir}/vocoder.safetensors`, tiny.vocoder);
    await Deno.writeTextFile(`${dir}/vocoder.json`, JSON.stringify(tiny.vocoderConfig));
    const clip = referenceClip();
    await Deno.writeFile(`${dir}/ref.wav`, encodeWav(clip.samples, clip.sampleRate));

    const result = await runConsumer(dir, {
      sentences: SENTENCES.map((entry) => ({ language: entry.lang, text: entry.text })),
      mixed: `${GERMAN.text} ${JAPANESE.text}`,
      speak: {
        text: JAPANESE.text,
        options: {
          ...SPEAK_OPTIONS,
          reference: "ref.wav",
          model: "model.sft",
          codec: "codec.safetensors",
          codecConfig: "codec.json",
          vocoder: "vocoder.safetensors",
          vocoderConfig: "vocoder.json",
          cache: false,
        },
      },
    });
    deepStrictEqual(result.error, undefined);
    deepStrictEqual(
      result.sentences,
      SENTENCES.map((entry) => ({ phonemize: entry.phonemes, prepared: [entry.phonemes] })),
    );
    deepStrictEqual(result.mixed, [
      { language: "de", phonemes: GERMAN.phonemes },
      { language: "ja", phonemes: JAPANESE.phonemes },
    ]);

    // The consumer loads with the default backend ("auto"); so does this process.
    const valle = await Valle.load({ ...tiny, backend: "auto", cache: false });
    const speech = await valle.synthesize(JAPANESE.text, {
      ...SPEAK_OPTIONS,
      reference: `${dir}/ref.wav`,
    });
    valle.dispose();
    const outside = await Deno.readFile(`${dir}/speech.f32`);
    ok(speech.samples.length > 0, "some audio came out");
    deepStrictEqual(new Float32Array(outside.buffer), speech.samples);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "an outside project without npm phonemizes Japanese (the dictionary is bundled)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await consumerProject();
    const result = await runConsumer(dir, {
      sentences: [{ language: "ja", text: JAPANESE.text }],
      mixed: JAPANESE.text,
    }, ["--no-npm"]);
    deepStrictEqual(result.error, undefined);
    deepStrictEqual(result.sentences, [{
      phonemize: JAPANESE.phonemes,
      prepared: [JAPANESE.phonemes],
    }]);
    deepStrictEqual(result.mixed, [{ language: "ja", phonemes: JAPANESE.phonemes }]);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "an outside project with its own phonemizer never starts espeak-ng",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await consumerProject();
    const request = {
      sentences: SENTENCES.map((entry) => ({ language: entry.lang, text: entry.text })),
      mixed: `${GERMAN.text} ${JAPANESE.text}`,
      noWebAssembly: true,
    };
    const own = await runConsumer(dir, { ...request, ownIpa: "həlˈoʊ" });
    deepStrictEqual(own.error, undefined);
    deepStrictEqual(
      own.sentences,
      SENTENCES.map(() => ({ phonemize: "həlˈoʊ", prepared: ["həlˈoʊ"] })),
    );
    deepStrictEqual(own.mixed.map((p) => p.language), ["de", "ja"]);
    // Without its own phonemizer the same program fails: WebAssembly really is off there.
    const espeak = await runConsumer(dir, request);
    ok(espeak.error?.message.includes("WebAssembly is disabled"), JSON.stringify(espeak.error));
    await Deno.remove(dir, { recursive: true });
  },
});
