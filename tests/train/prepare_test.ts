/**
 * Training data preparation on encodec-tiny and the CPU backend: the utterances hold exactly what
 * the encoder gives for the clip's averaged, resampled audio and what the tokenizer gives for the
 * phonemizer's output; the second run reads the cache instead of encoding; bad clips are reported
 * by name (or refused together); progress and cancellation.
 */

import { deepStrictEqual, equal, match, ok, rejects } from "node:assert";
import { resample } from "../../src/audio/resample.ts";
import { encodeWav } from "../../src/audio/wav.ts";
import { DataError, OptionError } from "../../src/errors.ts";
import { DirectoryCache } from "../../src/io/cache.ts";
import { ipaPassthrough } from "../../src/text/phonemizer.ts";
import { phonemize } from "../../src/text/prepare.ts";
import { tokenizePhonemes } from "../../src/text/tokenizer.ts";
import { toModelCodes } from "../../src/tts/codes.ts";
import { codecFingerprint } from "../../src/train/codes_cache.ts";
import { prepareUtterances } from "../../src/train/prepare.ts";
import type { TrainingClip } from "../../src/train/utterance.ts";
import type { Valle } from "../../src/tts/valle.ts";
import { countingModel, MemoryCache, tinyEncodec, voiced } from "./_data.ts";

function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });
}

/** What the encoder itself gives for mono samples at `rate`: codes frame-major, as int16. */
async function encoderCodes(mono: Float32Array, rate: number): Promise<Int16Array> {
  const encodec = await tinyEncodec();
  const codes = await encodec.encode(resample(mono, rate, 24000), 24000, { nQ: 8 });
  return Int16Array.from(toModelCodes(codes, 8).data);
}

test("prepareUtterances gives the encoder's own codes and the tokenizer's own ids", async () => {
  const left = voiced(1.5, 16000, 110);
  const right = voiced(1.5, 16000, 170, 0.2);
  const wav = encodeWav([left, right], 16000, { format: "float32" });
  const dir = await Deno.makeTempDir();
  const path = `${dir}/three.wav`;
  const third = voiced(1.1, 24000, 140);
  await Deno.writeFile(path, encodeWav([third], 24000, { format: "float32" }));
  const samples = voiced(1.2, 48000, 200);
  const clips: TrainingClip[] = [
    { name: "stereo", audio: wav, text: "Once again, excellent work.", language: "en" },
    { name: "samples", audio: { samples, sampleRate: 48000 }, text: "Guten Tag.", speaker: "b" },
    { name: "path", audio: path, text: "Hello there.", language: "en", speaker: "b" },
  ];
  const model = await countingModel();
  const { utterances, skipped } = await prepareUtterances(model, clips, {
    cache: false,
    language: "auto",
  });
  deepStrictEqual(skipped, []);
  equal(utterances.length, 3);
  equal(model.calls, 3, `one encoding per clip, no probe without a cache: ${model.calls}`);
  // Stereo is averaged, as upstream's preprocessing does (a reference clip would keep channel 0).
  const mean = left.map((x, i) => (x + right[i]) / 2);
  const expected = [
    { codes: await encoderCodes(mean, 16000), language: "en", speaker: "speaker" },
    { codes: await encoderCodes(samples, 48000), language: "de", speaker: "b" },
    { codes: await encoderCodes(third, 24000), language: "en", speaker: "b" },
  ];
  for (const [i, u] of utterances.entries()) {
    const want = expected[i];
    equal(u.name, clips[i].name);
    equal(u.speaker, want.speaker);
    equal(u.language, want.language, "auto detects German");
    equal(u.languageId, want.language === "de" ? 2 : 0);
    equal(u.text, clips[i].text);
    const ipa = await phonemize(clips[i].text, want.language as "en" | "de");
    equal(u.ipa, ipa);
    deepStrictEqual(u.phonemes, Uint16Array.from(tokenizePhonemes(ipa)));
    deepStrictEqual(u.codes, want.codes, `${u.name}: the encoder's codes`);
    equal(u.levels, 8);
    equal(u.frames, want.codes.length / 8);
  }
  equal(utterances[0].frames, Math.ceil(1.5 * 24000 / 320));
  await Deno.remove(dir, { recursive: true });
});

test("a Valle instance is a TrainingModel", () => {
  // Type-level: the product's instance is accepted as it is.
  const accept = (valle: Valle) => prepareUtterances(valle, [], { cache: false });
  ok(accept);
  return Promise.resolve();
});

const ipa = { phonemizer: ipaPassthrough, language: "en" } as const;

test("the second run reads the codes from the cache and does not encode", async () => {
  const clips: TrainingClip[] = [
    { name: "a", audio: { samples: voiced(1.2, 24000, 100), sampleRate: 24000 }, text: "hˈaɪ" },
    { name: "b", audio: { samples: voiced(1.4, 24000, 150), sampleRate: 24000 }, text: "bˈaɪ" },
  ];
  const model = await countingModel();
  const cache = new MemoryCache();
  const first = await prepareUtterances(model, clips, { ...ipa, cache });
  equal(model.calls, 3, "the codec's probe and one encoding per clip");
  equal(cache.entries.size, 2);
  const second = await prepareUtterances(model, clips, { ...ipa, cache });
  equal(model.calls, 3, "the second run encodes nothing (the fingerprint is remembered too)");
  deepStrictEqual(second, first);

  // The same bytes under another name are the same entry; other audio is not.
  const renamed = [{ ...clips[0], name: "again" }];
  await prepareUtterances(model, renamed, { ...ipa, cache });
  equal(model.calls, 3);

  // A damaged entry is dropped and encoded again, giving the same codes.
  const [key] = cache.entries.keys();
  cache.entries.get(key)!.bytes[3] ^= 1;
  const third = await prepareUtterances(model, clips, { ...ipa, cache });
  equal(model.calls, 4);
  deepStrictEqual(third, first);

  // A directory cache, read by a new codec wrapper: only its fingerprint probe runs.
  const dir = await Deno.makeTempDir();
  const disk = new DirectoryCache(dir);
  await prepareUtterances(model, clips, { ...ipa, cache: disk });
  const fresh = await countingModel();
  const fromDisk = await prepareUtterances(fresh, clips, { ...ipa, cache: disk });
  equal(fresh.calls, 1, "the probe only");
  deepStrictEqual(fromDisk, first);
  // The key names the codec by its fingerprint, or by a caller's name for it.
  const id = await codecFingerprint(fresh.encodec, 8);
  ok([...cache.entries.keys()].every((k) => k.startsWith(`train-codes/v1/${id}/q8/`)));
  const named = await countingModel();
  await prepareUtterances(named, clips, { ...ipa, cache: disk, codecId: "encodec-tiny" });
  equal(named.calls, 2, "another codec name: encoded, no probe");
  await prepareUtterances(named, clips, { ...ipa, cache: disk, codecId: "encodec-tiny" });
  equal(named.calls, 2);
  await Deno.remove(dir, { recursive: true });
});

/** One clip of each kind of fault, and two good ones. */
function badClips(): TrainingClip[] {
  const good = (name: string, seconds: number, f0: number): TrainingClip => ({
    name,
    audio: { samples: voiced(seconds, 24000, f0), sampleRate: 24000 },
    text: "hˈaɪ",
  });
  return [
    good("good", 1.2, 100),
    { ...good("silent", 1.5, 100), audio: { samples: new Float32Array(36000), sampleRate: 24000 } },
    {
      ...good("hiss", 1.5, 100),
      audio: { samples: voiced(1.5, 24000, 100, 1e-4), sampleRate: 24000 },
    },
    good("short", 0.5, 100),
    good("long", 2, 100),
    { ...good("untranscribed", 1.2, 100), text: "  \n" },
    { ...good("klingon", 1.2, 100), language: "tlh" },
    { ...good("korean", 1.2, 100), language: "ko" },
    { ...good("garbled", 1.2, 100), audio: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) },
    { ...good("missing", 1.2, 100), audio: "/nonexistent/clip.wav" },
    { ...good("wordy", 1.2, 100), text: "a".repeat(300) },
    good("good", 1.3, 130),
    { ...good("good", 1.3, 130), speaker: "other" },
  ];
}

const REASONS: [string, RegExp][] = [
  ["silent", /silent \(RMS -Infinity dBFS, expected at least -60 dBFS\)/],
  ["hiss", /silent \(RMS -8\d\.\d dBFS/],
  ["short", /0\.51 s long, expected at least 1 s/],
  ["long", /2\.00 s long \(150 frames\), expected at most 120 frames \(1\.60 s\)/],
  ["untranscribed", /^the transcript is empty$/],
  ["klingon", /language "tlh": expected one of en, ja, de, fr, zh, ko/],
  ["korean", /language ko \(id 5\) is not one of the model's 4 languages \(en, ja, de, fr\)/],
  ["garbled", /Cannot read WAV "garbled"/],
  ["missing", /Cannot read WAV "\/nonexistent\/clip\.wav": no such file/],
  ["wordy", /302 phoneme tokens, expected at most 256 \(maxTokens\)/],
  ["good", /another clip of speaker "speaker" has this name/],
];

test("bad clips are reported by name and skipped, or refused together", async () => {
  const model = await countingModel(4);
  const progress: string[] = [];
  const { utterances, skipped } = await prepareUtterances(model, badClips(), {
    ...ipa,
    language: undefined,
    cache: false,
    maxFrames: 120,
    onProgress: (done, total, name) => progress.push(`${done}/${total} ${name}`),
  });
  deepStrictEqual(utterances.map((u) => `${u.speaker}/${u.name}`), [
    "speaker/good",
    "other/good",
  ]);
  deepStrictEqual(skipped.map((s) => s.name), REASONS.map(([name]) => name));
  for (const [i, [name, reason]] of REASONS.entries()) match(skipped[i].reason, reason, name);
  equal(model.calls, 2, "only the good clips were encoded");
  equal(progress.length, 13);
  equal(progress[3], "4/13 short");

  const error = await rejects(
    prepareUtterances(model, badClips(), {
      ...ipa,
      cache: false,
      maxFrames: 120,
      onBadClip: "throw",
    }),
    (e) => {
      ok(e instanceof DataError);
      deepStrictEqual(e.problems.map((p) => p.name), REASONS.map(([name]) => name));
      match(e.message, /^Cannot prepare training data: 11 problem\(s\)\n {2}silent: /);
      return true;
    },
  );
  equal(error, undefined);
});

test("options are checked, and the signal cancels", async () => {
  const model = await countingModel();
  const clips = badClips().slice(0, 1);
  await rejects(prepareUtterances(model, clips, { maxFrames: 0 }), OptionError);
  await rejects(prepareUtterances(model, clips, { minSeconds: -1 }), OptionError);
  await rejects(prepareUtterances(model, clips, { language: "xx" as "en" }), OptionError);
  await rejects(
    prepareUtterances(model, clips, { onBadClip: "ignore" as "skip" }),
    /onBadClip is "ignore"/,
  );
  const controller = new AbortController();
  controller.abort(new Error("stop"));
  await rejects(
    prepareUtterances(model, clips, { ...ipa, cache: false, signal: controller.signal }),
    /stop/,
  );
  equal(model.calls, 0);
});
