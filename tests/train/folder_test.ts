/**
 * Data folders written by the tests: `name.wav` + `name.txt` pairs (in the folder and in speaker
 * subfolders), `manifest.jsonl`, `manifest.csv`, both manifests at once, each with the files a
 * user gets wrong; and a folder read through to utterances.
 */

import { deepStrictEqual, equal, rejects } from "node:assert";
import { join } from "node:path";
import { encodeWav } from "../../src/audio/wav.ts";
import { ipaPassthrough } from "../../src/text/phonemizer.ts";
import { readTrainingFolder } from "../../src/train/folder.ts";
import { prepareUtterances } from "../../src/train/prepare.ts";
import { countingModel, voiced } from "./_data.ts";

/** A folder holding `files` (name → text, or audio seconds for a WAV file). */
async function folder(files: Record<string, string | number>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "voice-" });
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, encodeWav([voiced(content, 24000)], 24000));
  }
  return dir;
}

Deno.test("readTrainingFolder reads name.wav + name.txt pairs, per speaker subfolder", async () => {
  const dir = await folder({
    "a.wav": 1.2,
    "a.txt": "  First clip.\n",
    "B.WAV": 1.2,
    "B.txt": "Second clip.",
    "lonely.wav": 1,
    "orphan.txt": "No audio here.",
    "song.mp3": "not really",
    "song.txt": "A song.",
    "notes.md": "ignored",
    ".hidden.wav": 1,
    "alice/x.wav": 1.1,
    "alice/x.txt": "Alice speaks.",
    "alice/deeper/y.wav": 1,
  });
  const read = await readTrainingFolder(dir);
  equal(read.layout, "pairs");
  const speaker = dir.slice(dir.lastIndexOf("/") + 1);
  deepStrictEqual(read.clips, [
    { name: "B", audio: join(dir, "B.WAV"), text: "Second clip.", speaker },
    { name: "a", audio: join(dir, "a.wav"), text: "First clip.", speaker },
    { name: "alice/x", audio: join(dir, "alice/x.wav"), text: "Alice speaks.", speaker: "alice" },
  ]);
  deepStrictEqual(read.problems, [
    {
      name: "alice/deeper/",
      reason: "ignored: clips go in the folder or in one subfolder per speaker, not deeper",
    },
    { name: "lonely.wav", reason: "no transcript: expected lonely.txt beside it" },
    { name: "orphan.txt", reason: "no audio: expected orphan.wav beside it" },
    {
      name: "song.mp3",
      reason: "song.mp3 is not a WAV file (this library reads WAV only); convert it, e.g. " +
        "ffmpeg -i song.mp3 song.wav",
    },
  ]);
  equal((await readTrainingFolder(dir, { speaker: "me" })).clips[0].speaker, "me");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("readTrainingFolder reads manifest.jsonl, paths relative to the folder", async () => {
  const outside = await folder({ "far.wav": 1 });
  const dir = await folder({
    "clips/one.wav": 1.2,
    "two.wav": 1.2,
    "stray.wav": 1, // not in the manifest: the manifest decides
    "manifest.jsonl": [
      '{"audio": "clips/one.wav", "text": "One.", "language": "en"}',
      '{"audio": "missing.wav", "text": "Gone."}',
      "not json",
      `{"audio": "${join(outside, "far.wav")}", "text": "Far.", "speaker": "bob"}`,
      '{"audio": "two.wav", "text": "Two."}',
      '{"audio": "three.flac", "text": "Three."}',
    ].join("\n"),
  });
  const read = await readTrainingFolder(dir, { speaker: "me" });
  equal(read.layout, "manifest.jsonl");
  deepStrictEqual(read.clips, [
    {
      name: "clips/one",
      audio: join(dir, "clips/one.wav"),
      text: "One.",
      speaker: "me",
      language: "en",
    },
    { name: join(outside, "far"), audio: join(outside, "far.wav"), text: "Far.", speaker: "bob" },
    { name: "two", audio: join(dir, "two.wav"), text: "Two.", speaker: "me" },
  ]);
  deepStrictEqual(read.problems.map((p) => p.name), [
    "manifest.jsonl:2",
    "manifest.jsonl:3",
    "manifest.jsonl:6",
  ]);
  equal(read.problems[0].reason, "the audio file missing.wav does not exist");
  equal(read.problems[2].reason.startsWith("three.flac is not a WAV file"), true);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});

Deno.test("readTrainingFolder reads manifest.csv and refuses two manifests", async () => {
  const dir = await folder({
    "a.wav": 1.2,
    "manifest.csv": 'audio,text,language\na.wav,"Hello, world.",en\nb.wav,Gone.,\n',
  });
  const read = await readTrainingFolder(dir);
  equal(read.layout, "manifest.csv");
  deepStrictEqual(read.clips.map((c) => [c.name, c.text, c.language]), [
    ["a", "Hello, world.", "en"],
  ]);
  deepStrictEqual(read.problems, [
    { name: "manifest.csv:3", reason: "the audio file b.wav does not exist" },
  ]);
  await Deno.writeTextFile(join(dir, "manifest.jsonl"), "");
  const both = await readTrainingFolder(dir);
  deepStrictEqual(both.clips, []);
  deepStrictEqual(both.problems, [{
    name: dir,
    reason: "holds both manifest.jsonl and manifest.csv; keep one manifest",
  }]);
  await Deno.remove(dir, { recursive: true });
  await rejects(readTrainingFolder(join(dir, "nowhere")), Deno.errors.NotFound);
});

Deno.test({
  name: "a data folder read through to utterances",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await folder({
      "a.wav": 1.2,
      "a.txt": "hˈaɪ",
      "b.wav": 0.4,
      "b.txt": "ʃˈɔːɹt",
      "c.wav": 1.3,
      "c.txt": "",
    });
    const { clips, problems } = await readTrainingFolder(dir, { speaker: "me" });
    deepStrictEqual(problems, []);
    const model = await countingModel();
    const { utterances, skipped } = await prepareUtterances(model, clips, {
      phonemizer: ipaPassthrough,
      language: "en",
      cache: false,
    });
    deepStrictEqual(utterances.map((u) => [u.name, u.speaker, u.frames]), [["a", "me", 90]]);
    deepStrictEqual(skipped, [
      { name: "b", reason: "the clip is 0.40 s long, expected at least 1 s" },
      { name: "c", reason: "the transcript is empty" },
    ]);
    await Deno.remove(dir, { recursive: true });
  },
});
