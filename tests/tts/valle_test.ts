/**
 * The product end to end on tiny models in the released layouts: every modality and decoder,
 * each result checked against the same work done step by step through the lower APIs (text
 * front end, EnCodec, the VALL-E model, Vocos/EnCodec decoding), streaming, seeds, errors.
 */

import { FormatError, OptionError } from "../../src/errors.ts";
import { toMono } from "../../src/audio/resample.ts";
import { decodeWav, encodeWav } from "../../src/audio/wav.ts";
import { joinPieces, Speech } from "../../src/tts/speech.ts";
import { joinPrompt, toAudioCodes, toModelCodes } from "../../src/tts/codes.ts";
import { Valle } from "../../src/tts/valle.ts";
import { prepareText } from "../../src/text/prepare.ts";
import { Vocos } from "../../src/models/vocos/vocos.ts";
import { testGpu } from "../_backends.ts";
import { referenceClip, tinyModels } from "../_tiny_models.ts";
import { deepStrictEqual, equal, notDeepStrictEqual, ok, rejects } from "node:assert";

const TEXT = "Hello there. How are you?";
/** Short pieces keep lavapipe fast: 0.4 s = 30 frames at most. */
const BASE = { language: "en", seed: 5, maxSeconds: 0.4, steps: 3 } as const;

let shared: Promise<Valle> | undefined;
function tinyValle(): Promise<Valle> {
  shared ??= (async () => {
    const gpu = await testGpu();
    return await Valle.load({ ...await tinyModels(), backend: gpu, cache: false });
  })();
  return shared;
}

function test(name: string, fn: (valle: Valle) => Promise<void>) {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => fn(await tinyValle()),
  });
}

for (const modality of ["ar+nar", "nar-len"] as const) {
  for (const decoder of ["vocos", "encodec"] as const) {
    test(`synthesize() with ${modality} and ${decoder} equals the step-by-step pipeline`, async (valle) => {
      const clip = referenceClip();
      const speech = await valle.synthesize(TEXT, { ...BASE, reference: clip, modality, decoder });

      // The same work through the lower APIs.
      const pieces = await prepareText(TEXT, { language: "en" });
      const mono = toMono([clip.samples], clip.sampleRate, 24000);
      const prompt = joinPrompt([
        toModelCodes(await valle.encodec.encode(mono, 24000, { nQ: 8 }), 8),
      ]);
      const tiny = await tinyModels();
      const vocos = decoder === "vocos"
        ? await Vocos.load(valle.backend, tiny.vocoder, { config: tiny.vocoderConfig })
        : undefined;
      const samples: Float32Array[] = [];
      for (const [i, piece] of pieces.entries()) {
        const { codes } = await valle.model.generate({
          phonemes: piece.tokens,
          language: piece.languageId,
          prompt,
          modality,
          maxFrames: 30,
          ar: { maxSteps: 30, seed: 5 + i, sampler: { temperature: 1 } },
          narLen: { steps: 3, temperature: 1, cfg: { strength: 1, rescale: 0.75 }, seed: 5 + i },
          // CFG strength 1 is the identity: the product skips its pass (strength 0).
          nar: { sampler: { temperature: 0 }, seed: 5 + i, cfg: { strength: 0, rescale: 0.75 } },
        });
        deepStrictEqual(speech.pieces[i].codes, codes, `piece ${i} codes`);
        const audio = toAudioCodes(codes, 1024);
        samples.push(vocos ? await vocos.decode(audio) : await valle.encodec.decode(audio));
      }
      vocos?.dispose();
      equal(speech.pieces.length, 2);
      equal(speech.sampleRate, 24000);
      equal(speech.pieces[0].modality, modality);
      deepStrictEqual(speech.samples, joinPieces(samples, 24000));
      ok(speech.samples.length >= 2 * 320, "some audio came out");
    });
  }
}

test("stream() yields each piece as it is decoded, equal to synthesize()'s pieces", async (valle) => {
  const options = { ...BASE, reference: referenceClip(), modality: "nar-len" as const };
  const whole = await valle.synthesize(TEXT, options);
  const phases: string[] = [];
  const streamed = [];
  for await (
    const piece of valle.stream(TEXT, {
      ...options,
      onProgress: (p) => phases.push(p.phase),
    })
  ) {
    streamed.push(piece);
    // Each piece arrives right after its own decode, before the next piece starts.
    equal(phases.at(-1), "decode");
  }
  deepStrictEqual(streamed.map((p) => p.samples), whole.pieces.map((p) => p.samples));
  deepStrictEqual([...new Set(phases)], [
    "phonemize",
    "encode-prompt",
    "duration",
    "level0",
    "nar",
    "decode",
  ]);
});

test("a seed reproduces the same audio; another seed does not", async (valle) => {
  const options = { ...BASE, modality: "ar+nar" as const };
  const a = await valle.synthesize("Hello.", options);
  const b = await valle.synthesize("Hello.", options);
  const c = await valle.synthesize("Hello.", { ...options, seed: 6 });
  deepStrictEqual(a.samples, b.samples);
  notDeepStrictEqual(a.pieces[0].codes.data, c.pieces[0].codes.data);
});

test("an encoded voice can be reused as the prompt, trimmed or repeated to promptSeconds", async (valle) => {
  const clip = referenceClip();
  const voice = await valle.encodeReference(clip);
  equal(voice.frames, Math.ceil((1.2 * 24000) / 320));
  const fromPrompt = await valle.synthesize("Hello.", { ...BASE, prompt: voice });
  const fromClip = await valle.synthesize("Hello.", { ...BASE, reference: clip });
  deepStrictEqual(fromPrompt.samples, fromClip.samples);
  const two = await valle.encodeReference([clip, clip], 3);
  equal(two.frames, 225);
  deepStrictEqual(two.data.slice(0, voice.frames * 8), voice.data);
});

test("bad input gives typed errors that name the problem", async (valle) => {
  await rejects(
    valle.synthesize("Hello.", { ...BASE, language: "xx" as "en" }),
    (e: Error) => e instanceof OptionError && e.message.includes('"xx"'),
  );
  await rejects(
    valle.synthesize("Hello.", { ...BASE, reference: "/nonexistent/voice.wav" }),
    (e: Error) => e instanceof FormatError && e.message.includes("/nonexistent/voice.wav"),
  );
  await rejects(
    valle.synthesize("Hello.", { ...BASE, reference: new Uint8Array([1, 2, 3]) }),
    FormatError,
  );
  await rejects(valle.synthesize("Hello.", { ...BASE, maxSeconds: -1 }), /maxSeconds is -1/);
  await rejects(valle.synthesize("Hello.", { ...BASE, decoder: "mp3" as "vocos" }), /decoder/);
  await rejects(valle.synthesize("   ", BASE), OptionError);
});

test("Speech exports a WAV of its samples", async (valle) => {
  const speech = await valle.synthesize("Hello.", { ...BASE, modality: "ar+nar" });
  ok(speech instanceof Speech);
  const wav = decodeWav(speech.toWav({ format: "float32" }));
  equal(wav.sampleRate, 24000);
  deepStrictEqual(wav.channels[0], speech.samples);
  const blob = speech.toBlob();
  equal(blob.type, "audio/wav");
  equal(blob.size, 44 + 2 * speech.samples.length);
});

test("contextHistory feeds the previous pieces' phonemes and level 0 as the next prefix", async (valle) => {
  const options = { ...BASE, modality: "ar+nar" as const, contextHistory: 1 };
  const text = "Hello there. How are you? Fine.";
  const speech = await valle.synthesize(text, options);
  const pieces = await prepareText(text, { language: "en" });
  for (const [i, piece] of pieces.entries()) {
    const before = speech.pieces[i - 1];
    const prefix = before && {
      phonemes: pieces[i - 1].tokens,
      codes: {
        data: Int32Array.from({ length: before.codes.frames }, (_, t) => before.codes.data[t * 8]),
        frames: before.codes.frames,
        levels: 1,
      },
    };
    const { codes } = await valle.model.generate({
      phonemes: piece.tokens,
      language: 0,
      prompt: null,
      modality: "ar+nar",
      ar: { maxSteps: 30, seed: 5 + i, sampler: { temperature: 1 } },
      nar: { sampler: { temperature: 0 }, seed: 5 + i, cfg: { strength: 0, rescale: 0.75 } },
      prefix,
    });
    deepStrictEqual(speech.pieces[i].codes, codes, `piece ${i}`);
  }
});

test("an abort signal stops synthesis with its reason, and the instance stays usable", async (valle) => {
  const controller = new AbortController();
  const reason = new Error("user cancelled");
  let steps = 0;
  await rejects(
    valle.synthesize(TEXT, {
      ...BASE,
      modality: "nar-len",
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === "level0" && ++steps === 2) controller.abort(reason);
      },
    }),
    (e) => e === reason,
  );
  const after = await valle.synthesize("Hello.", { ...BASE, modality: "nar-len" });
  const fresh = await valle.synthesize("Hello.", { ...BASE, modality: "nar-len" });
  deepStrictEqual(after.samples, fresh.samples);
});

test("a reference with a NaN or infinite sample is refused, naming the clip and the sample", async (valle) => {
  const clip = referenceClip();
  const samples = clip.samples.slice();
  samples[1234] = NaN;
  await rejects(
    valle.encodeReference({ samples, sampleRate: clip.sampleRate }),
    (e: Error) =>
      e instanceof OptionError &&
      e.message ===
        "Cannot use reference audio as a reference: sample 1234 is NaN, expected a finite number",
  );
  const dir = await Deno.makeTempDir();
  const path = `${dir}/voice.wav`;
  const right = clip.samples.slice();
  right[99] = Infinity;
  await Deno.writeFile(
    path,
    encodeWav([clip.samples, right], clip.sampleRate, { format: "float32" }),
  );
  await rejects(
    valle.synthesize("Hello.", { ...BASE, reference: path }),
    (e: Error) =>
      e instanceof OptionError &&
      e.message ===
        `Cannot use ${path} as a reference: sample 99 of channel 1 is Infinity, expected a finite number`,
  );
  await Deno.remove(dir, { recursive: true });
});

test("a reference WAV cut short is read to its end, and onWarning hears about it", async (valle) => {
  const clip = referenceClip();
  const wav = encodeWav(clip.samples, clip.sampleRate);
  const cut = wav.subarray(0, wav.length - 1001); // the data chunk declares more than remains
  const warnings: string[] = [];
  const options = { ...BASE, modality: "ar+nar" as const };
  const speech = await valle.synthesize("Hello.", {
    ...options,
    reference: cut,
    onWarning: (m) => warnings.push(m),
  });
  const remain = cut.length - 44;
  deepStrictEqual(warnings, [
    `Reading WAV "reference audio": the data chunk at byte 36 declares ` +
    `${wav.length - 44} bytes and ${remain} remain (the file is truncated): read the ` +
    `${remain} bytes to the end of the file`,
    `Reading WAV "reference audio": the data chunk ends with 1 byte(s) of a 2-byte ` +
    `frame at byte ${cut.length - 1}: dropped them`,
  ]);
  const samples = decodeWav(cut).channels[0];
  equal(samples.length, Math.floor(remain / 2));
  const direct = await valle.synthesize("Hello.", {
    ...options,
    reference: { samples, sampleRate: clip.sampleRate },
  });
  deepStrictEqual(speech.samples, direct.samples);
});
