/**
 * A training data folder, as the CLI reads it (`DATA.md` documents the layout): either one
 * manifest (`manifest.jsonl` or `manifest.csv`) naming the clips, or `name.wav` + `name.txt`
 * pairs, in the folder (one speaker) or in one subfolder per speaker. Files that cannot be used
 * (a clip without transcript, a transcript without clip, audio that is not WAV, a manifest line
 * that cannot be read or names a missing file) are reported by file and line, not skipped
 * silently.
 *
 * This module is Deno only (it reads the file system).
 *
 * @module
 */

import { basename, extname, isAbsolute, join, resolve } from "node:path";
import type { DataProblem } from "../errors.ts";
import { parseManifest, sortByLine } from "./manifest.ts";
import type { TrainingClip } from "./utterance.ts";

/** Options of {@linkcode readTrainingFolder}. */
export interface ReadTrainingFolderOptions {
  /** The speaker of clips that name none. Default: the folder's name. */
  speaker?: string;
}

/** What a data folder holds. */
export interface TrainingFolder {
  /** How the folder was read. */
  layout: "manifest.jsonl" | "manifest.csv" | "pairs";
  /** The clips, their audio as absolute paths: manifest order, else sorted by name. */
  clips: TrainingClip[];
  /** What could not be used, each named by file (and line). */
  problems: DataProblem[];
}

const MANIFESTS = ["manifest.jsonl", "manifest.csv"] as const;
/** Audio formats people have that this library does not read. */
const OTHER_AUDIO = new Set([".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".aiff"]);

/**
 * Reads a training data folder.
 *
 * @param dir The folder.
 * @param options The default speaker.
 * @returns The clips and the problems.
 * @throws {Deno.errors.NotFound} The folder does not exist.
 *
 * @example
 * ```ts ignore
 * const { clips, problems } = await readTrainingFolder("./my-voice");
 * for (const p of problems) console.warn(`${p.name}: ${p.reason}`);
 * const { utterances } = await prepareUtterances(valle, clips, { language: "en" });
 * ```
 */
export async function readTrainingFolder(
  dir: string,
  options: ReadTrainingFolderOptions = {},
): Promise<TrainingFolder> {
  const root = resolve(dir);
  const speaker = options.speaker ?? basename(root);
  const present: (typeof MANIFESTS[number])[] = [];
  for (const name of MANIFESTS) {
    if (await isFile(join(root, name))) present.push(name);
  }
  if (present.length > 1) {
    return {
      layout: present[0],
      clips: [],
      problems: [{
        name: root,
        reason: `holds both ${present.join(" and ")}; keep one manifest`,
      }],
    };
  }
  if (present.length === 1) return await readManifest(root, present[0], speaker);
  return await readPairs(root, speaker);
}

/** The clips a manifest names, their audio checked to exist. */
async function readManifest(
  root: string,
  file: typeof MANIFESTS[number],
  speaker: string,
): Promise<TrainingFolder> {
  const format = file === "manifest.csv" ? "csv" : "jsonl";
  const { entries, problems } = parseManifest(await Deno.readTextFile(join(root, file)), {
    format,
    file,
  });
  const clips: TrainingClip[] = [];
  for (const entry of entries) {
    const path = isAbsolute(entry.audio) ? entry.audio : join(root, entry.audio);
    const where = `${file}:${entry.line}`;
    const wrong = audioProblem(path) ??
      (await isFile(path) ? undefined : `the audio file ${entry.audio} does not exist`);
    if (wrong) {
      problems.push({ name: where, reason: wrong });
      continue;
    }
    clips.push({
      name: entry.audio.replace(/\.wav$/i, ""),
      audio: path,
      text: entry.text,
      speaker: entry.speaker ?? speaker,
      ...(entry.language ? { language: entry.language } : {}),
    });
  }
  return { layout: file, clips, problems: sortByLine(problems) };
}

/** `name.wav` + `name.txt` pairs in the folder and in its subfolders (one per speaker). */
async function readPairs(root: string, speaker: string): Promise<TrainingFolder> {
  const clips: TrainingClip[] = [];
  const problems: DataProblem[] = [];
  const folders: [string, string, string][] = [["", root, speaker]];
  for await (const entry of Deno.readDir(root)) {
    if (entry.isDirectory && !entry.name.startsWith(".")) {
      folders.push([`${entry.name}/`, join(root, entry.name), entry.name]);
    }
  }
  for (const [prefix, folder, who] of folders) {
    const files = new Map<string, string>(); // stem + lowercased extension → file name
    for await (const entry of Deno.readDir(folder)) {
      if (entry.name.startsWith(".")) continue;
      if (entry.isDirectory && prefix) {
        problems.push({
          name: `${prefix}${entry.name}/`,
          reason: "ignored: clips go in the folder or in one subfolder per speaker, not deeper",
        });
      }
      if (!entry.isFile) continue;
      const ext = extname(entry.name).toLowerCase();
      files.set(entry.name.slice(0, entry.name.length - ext.length) + ext, entry.name);
    }
    for (const [key, file] of files) {
      const ext = extname(key);
      const stem = key.slice(0, key.length - ext.length);
      const name = `${prefix}${file}`;
      if (ext === ".wav" && !files.has(`${stem}.txt`)) {
        problems.push({ name, reason: `no transcript: expected ${prefix}${stem}.txt beside it` });
      } else if (ext === ".txt" && !files.has(`${stem}.wav`)) {
        const other = [...OTHER_AUDIO].find((e) => files.has(`${stem}${e}`));
        if (!other) {
          problems.push({ name, reason: `no audio: expected ${prefix}${stem}.wav beside it` });
        }
      } else if (OTHER_AUDIO.has(ext)) {
        problems.push({ name, reason: audioProblem(file)! });
      } else if (ext === ".wav") {
        clips.push({
          name: `${prefix}${stem}`,
          audio: join(folder, file),
          text: (await Deno.readTextFile(join(folder, files.get(`${stem}.txt`)!))).trim(),
          speaker: who,
        });
      }
    }
  }
  const byName = (a: { name: string }, b: { name: string }) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  return { layout: "pairs", clips: clips.sort(byName), problems: problems.sort(byName) };
}

/** Why an audio file cannot be read, from its extension, or undefined when it is WAV. */
function audioProblem(path: string): string | undefined {
  const ext = extname(path).toLowerCase();
  if (ext === ".wav") return undefined;
  return `${basename(path)} is not a WAV file (this library reads WAV only); convert it, e.g. ` +
    `ffmpeg -i ${basename(path)} ${basename(path, extname(path))}.wav`;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
