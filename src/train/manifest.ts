/**
 * Training manifests: one clip per JSON line (`manifest.jsonl`) or per CSV row (`manifest.csv`,
 * with a header naming the columns `audio`, `text` and optionally `language` and `speaker`),
 * parsed into entries, with every bad line reported by file and line instead of stopping at the
 * first. The layout is documented in `DATA.md`.
 *
 * This module is browser compatible (it reads text; `folder.ts` reads the files in Deno).
 *
 * @module
 */

import type { DataProblem } from "../errors.ts";

/** One clip named by a manifest. */
export interface ManifestEntry {
  /** The audio file, as written (relative to the manifest's folder, or absolute). */
  audio: string;
  /** The transcript. */
  text: string;
  /** The language code, when given. */
  language?: string;
  /** The speaker, when given. */
  speaker?: string;
  /** The line it starts on (1-based). */
  line: number;
}

/** What a manifest holds: its entries, and the lines that could not be read. */
export interface ParsedManifest {
  /** The entries, in file order. */
  entries: ManifestEntry[];
  /** The bad lines, each named `file:line`. */
  problems: DataProblem[];
}

/** Options of {@linkcode parseManifest}. */
export interface ParseManifestOptions {
  /** `"jsonl"` (one JSON object per line) or `"csv"` (a header, then one row per clip). */
  format: "jsonl" | "csv";
  /** The file's name in problems. Default `manifest.<format>`. */
  file?: string;
}

/** The fields a manifest entry may have; `audio` and `text` are required. */
const FIELDS = ["audio", "text", "language", "speaker"] as const;
type Field = typeof FIELDS[number];

/**
 * Parses a training manifest.
 *
 * @param text The manifest's text (UTF-8, a byte order mark is ignored).
 * @param options Its format and name.
 * @returns The entries and the problems, each problem named `file:line`.
 *
 * @example
 * ```ts
 * import { parseManifest } from "./manifest.ts";
 * const { entries } = parseManifest('{"audio": "a.wav", "text": "Hi.", "language": "en"}\n', {
 *   format: "jsonl",
 * });
 * console.assert(entries[0].audio === "a.wav" && entries[0].line === 1);
 * const csv = parseManifest('audio,text\nb.wav,"Hello, there."\n', { format: "csv" });
 * console.assert(csv.entries[0].text === "Hello, there.");
 * ```
 */
export function parseManifest(text: string, options: ParseManifestOptions): ParsedManifest {
  const file = options.file ?? `manifest.${options.format}`;
  const body = text.replace(/^\uFEFF/, "");
  const rows = options.format === "csv" ? csvRows(body, file) : jsonlRows(body, file);
  const out: ParsedManifest = { entries: [], problems: rows.problems };
  for (const row of rows.records) {
    const problem = (reason: string) => out.problems.push({ name: `${file}:${row.line}`, reason });
    const unknown = Object.keys(row.fields).filter((k) =>
      !(FIELDS as readonly string[]).includes(k)
    );
    if (unknown.length) {
      problem(`unknown field(s) ${unknown.join(", ")}; expected ${FIELDS.join(", ")}`);
      continue;
    }
    const bad = FIELDS.filter((k) =>
      row.fields[k] !== undefined && typeof row.fields[k] !== "string"
    );
    if (bad.length) {
      problem(`${bad.join(", ")}: expected a string`);
      continue;
    }
    const fields = row.fields as Partial<Record<Field, string>>;
    if (!fields.audio) {
      problem('no audio file (the "audio" field)');
      continue;
    }
    if (fields.text === undefined) {
      problem('no transcript (the "text" field)');
      continue;
    }
    out.entries.push({
      audio: fields.audio,
      text: fields.text,
      ...(fields.language ? { language: fields.language } : {}),
      ...(fields.speaker ? { speaker: fields.speaker } : {}),
      line: row.line,
    });
  }
  sortByLine(out.problems);
  return out;
}

/**
 * Sorts problems named `file:line` by their line, in place (the order a reader fixes them in).
 *
 * @param problems Problems named `file:line`.
 * @returns The same array.
 *
 * @example
 * ```ts
 * import { sortByLine } from "./manifest.ts";
 * const sorted = sortByLine([{ name: "m.csv:10", reason: "" }, { name: "m.csv:9", reason: "" }]);
 * console.assert(sorted[0].name === "m.csv:9");
 * ```
 */
export function sortByLine(problems: DataProblem[]): DataProblem[] {
  const line = (name: string) => Number(name.slice(name.lastIndexOf(":") + 1));
  return problems.sort((a, b) => line(a.name) - line(b.name));
}

/** Records of a manifest before their fields are checked. */
interface Rows {
  records: { line: number; fields: Record<string, unknown> }[];
  problems: DataProblem[];
}

/** Each non-blank line a JSON object. */
function jsonlRows(text: string, file: string): Rows {
  const rows: Rows = { records: [], problems: [] };
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      rows.problems.push({
        name: `${file}:${i + 1}`,
        reason: `not JSON (${(e as Error).message})`,
      });
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      rows.problems.push({
        name: `${file}:${i + 1}`,
        reason: `expected a JSON object such as {"audio": "clip.wav", "text": "…"}`,
      });
      continue;
    }
    rows.records.push({ line: i + 1, fields: value as Record<string, unknown> });
  }
  return rows;
}

/**
 * RFC 4180 CSV: comma-separated fields, quoted with `"` (a quote inside written `""`), a quoted
 * field may span lines; the first record is the header.
 */
function csvRows(text: string, file: string): Rows {
  const rows: Rows = { records: [], problems: [] };
  const records = splitCsv(text);
  const header = records.shift();
  if (!header) {
    rows.problems.push({
      name: `${file}:1`,
      reason: "empty; expected a header such as audio,text",
    });
    return rows;
  }
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const missing = ["audio", "text"].filter((k) => !names.includes(k));
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (missing.length || twice.length) {
    rows.problems.push({
      name: `${file}:${header.line}`,
      reason: `the header is "${header.fields.join(",")}", expected the columns audio and text ` +
        `(then language, speaker if wanted), each once`,
    });
    return rows;
  }
  for (const record of records) {
    if (record.error) {
      rows.problems.push({ name: `${file}:${record.line}`, reason: record.error });
      continue;
    }
    if (record.fields.length === 1 && !record.fields[0].trim()) continue; // a blank line
    if (record.fields.length !== names.length) {
      rows.problems.push({
        name: `${file}:${record.line}`,
        reason:
          `${record.fields.length} column(s), expected ${names.length} (${names.join(",")}); ` +
          `quote a transcript that holds a comma`,
      });
      continue;
    }
    const fields: Record<string, unknown> = {};
    for (const [i, name] of names.entries()) {
      const value = record.fields[i];
      if (value !== "" || name === "text") fields[name] = value;
    }
    rows.records.push({ line: record.line, fields });
  }
  return rows;
}

/** One CSV record: its fields and the line it starts on, or what is wrong with it. */
interface CsvRecord {
  fields: string[];
  line: number;
  error?: string;
}

function splitCsv(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let line = 1;
  let at = 0;
  while (at < text.length) {
    const record: CsvRecord = { fields: [], line };
    let field = "";
    for (;;) {
      if (text[at] === '"' && field === "") {
        // A quoted field, up to the quote that is not doubled.
        const start = line;
        at++;
        let closed = false;
        while (at < text.length) {
          if (text[at] === '"') {
            if (text[at + 1] === '"') {
              field += '"';
              at += 2;
              continue;
            }
            at++;
            closed = true;
            break;
          }
          if (text[at] === "\n") line++;
          field += text[at++];
        }
        if (!closed) {
          record.error = `a quote opened on line ${start} is never closed`;
          at = text.length;
        } else if (at < text.length && !",\r\n".includes(text[at])) {
          record.error = `text after a closing quote; write a quote inside a quoted field as ""`;
          while (at < text.length && text[at] !== "\n") at++;
        }
      }
      while (at < text.length && !",\r\n".includes(text[at])) field += text[at++];
      record.fields.push(field);
      field = "";
      if (text[at] === ",") {
        at++;
        continue;
      }
      if (text[at] === "\r") at++;
      if (text[at] === "\n") at++;
      line++;
      break;
    }
    records.push(record);
  }
  return records;
}
