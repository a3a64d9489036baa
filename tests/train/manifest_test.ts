/**
 * Manifest parsing: JSONL and CSV (quotes, doubled quotes, line breaks inside quotes, CRLF, a
 * byte order mark, any column order), and every bad line reported by file and line.
 */

import { deepStrictEqual } from "node:assert";
import { parseManifest } from "../../src/train/manifest.ts";

Deno.test("parseManifest reads JSON lines and reports each bad line", () => {
  const text = [
    '{"audio": "a.wav", "text": "Hello.", "language": "en", "speaker": "amy"}',
    "",
    '{"audio": "clips/b.wav", "text": ""}',
    "[1, 2]",
    '{"audio": "c.wav", "text": "x"',
    '{"audio": "d.wav"}',
    '{"text": "no audio"}',
    '{"audio": "e.wav", "text": "x", "lang": "en"}',
    '{"audio": "f.wav", "text": 3}',
    '  {"audio": "/abs/g.wav", "text": "Ünïcode ✓"}  ',
  ].join("\r\n");
  const { entries, problems } = parseManifest(`\uFEFF${text}`, { format: "jsonl" });
  deepStrictEqual(entries, [
    { audio: "a.wav", text: "Hello.", language: "en", speaker: "amy", line: 1 },
    { audio: "clips/b.wav", text: "", line: 3 },
    { audio: "/abs/g.wav", text: "Ünïcode ✓", line: 10 },
  ]);
  deepStrictEqual(
    problems.map((p) => p.name),
    [4, 5, 6, 7, 8, 9].map((n) => `manifest.jsonl:${n}`),
  );
  const reasons = problems.map((p) => p.reason);
  deepStrictEqual(reasons[0], 'expected a JSON object such as {"audio": "clip.wav", "text": "…"}');
  deepStrictEqual(reasons[1].startsWith("not JSON ("), true);
  deepStrictEqual(reasons.slice(2), [
    'no transcript (the "text" field)',
    'no audio file (the "audio" field)',
    "unknown field(s) lang; expected audio, text, language, speaker",
    "text: expected a string",
  ]);
});

Deno.test("parseManifest reads CSV with quotes and reports each bad row", () => {
  const text = [
    "speaker,Audio,text,language",
    'amy,a.wav,"Hello, ""you"".",en',
    ',b.wav,"two',
    'lines",',
    "",
    "amy,c.wav,too,many,columns",
    "amy,d.wav,short",
    'amy,e.wav,"x"y,en',
    "amy,f.wav,,fr",
    ",,no audio,",
  ].join("\n") + "\n";
  const { entries, problems } = parseManifest(text, { format: "csv", file: "m.csv" });
  deepStrictEqual(entries, [
    { audio: "a.wav", text: 'Hello, "you".', language: "en", speaker: "amy", line: 2 },
    { audio: "b.wav", text: "two\nlines", line: 3 },
    { audio: "f.wav", text: "", language: "fr", speaker: "amy", line: 9 },
  ]);
  deepStrictEqual(problems, [
    {
      name: "m.csv:6",
      reason: "5 column(s), expected 4 (speaker,audio,text,language); quote a transcript that " +
        "holds a comma",
    },
    {
      name: "m.csv:7",
      reason: "3 column(s), expected 4 (speaker,audio,text,language); quote a transcript that " +
        "holds a comma",
    },
    {
      name: "m.csv:8",
      reason: 'text after a closing quote; write a quote inside a quoted field as ""',
    },
    { name: "m.csv:10", reason: 'no audio file (the "audio" field)' },
  ]);
});

Deno.test("parseManifest refuses a CSV without the audio and text columns, or an open quote", () => {
  deepStrictEqual(parseManifest("file,transcript\na.wav,hi\n", { format: "csv" }), {
    entries: [],
    problems: [{
      name: "manifest.csv:1",
      reason: 'the header is "file,transcript", expected the columns audio and text (then ' +
        "language, speaker if wanted), each once",
    }],
  });
  deepStrictEqual(
    parseManifest("", { format: "csv" }).problems[0].reason,
    "empty; expected a header such as audio,text",
  );
  deepStrictEqual(parseManifest('audio,text\na.wav,"open\nb.wav,x\n', { format: "csv" }).problems, [
    { name: "manifest.csv:2", reason: "a quote opened on line 2 is never closed" },
  ]);
});
