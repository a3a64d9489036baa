/**
 * The files examples/speak.ts reads and writes, checked before minutes of loading and synthesis:
 * the output must be writable (and not overwrite anything without --force), every local input
 * must exist; the WAV is written so that a failure at the end never loses the audio.
 */

import { basename, dirname, extname } from "node:path";
import { OptionError, ValleError } from "../mod.ts";

/** Whether a command-line source is a URL (`https:`, `file:`, `data:`…) rather than a path. */
function isUrl(source: string): boolean {
  return /^[a-z][a-z0-9+.-]+:/i.test(source) && !/^[a-z]:[\\/]/i.test(source);
}

/**
 * Checks that `out` can be written: not a folder, not an existing file without `force`, in a
 * folder that exists and accepts new files (probed with a temporary file, removed at once).
 *
 * @throws {OptionError} Naming the path and what is wrong.
 */
export async function checkOutput(out: string, force: boolean): Promise<void> {
  const existing = await Deno.stat(out).catch(() => undefined);
  if (existing?.isDirectory) throw new OptionError(`Cannot write ${out}: it is a folder`);
  if (existing && !force) {
    throw new OptionError(`Cannot write ${out}: the file exists (pass --force to overwrite it)`);
  }
  const folder = dirname(out);
  const info = await Deno.stat(folder).catch(() => undefined);
  if (!info?.isDirectory) {
    throw new OptionError(`Cannot write ${out}: the folder ${folder} does not exist`);
  }
  try {
    if (existing) (await Deno.open(out, { write: true })).close();
    else await Deno.remove(await Deno.makeTempFile({ dir: folder, prefix: ".speak-" }));
  } catch (e) {
    throw new OptionError(`Cannot write ${out}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Checks that every local file given on the command line exists (URLs are left to the loader).
 *
 * @param files What each file is (e.g. "the LoRA (--lora)") → its path or URL.
 * @throws {OptionError} E.g. `Cannot read the LoRA (--lora) "x.sft": no such file`.
 */
export async function checkInputs(files: [what: string, source: unknown][]): Promise<void> {
  for (const [what, source] of files) {
    if (typeof source !== "string" || isUrl(source)) continue;
    const info = await Deno.stat(source).catch(() => undefined);
    if (!info) throw new OptionError(`Cannot read ${what} "${source}": no such file`);
    if (info.isDirectory) throw new OptionError(`Cannot read ${what} "${source}": it is a folder`);
  }
}

/**
 * Reads the text to speak from the argument, a file or standard input, and refuses blank text
 * before anything loads.
 *
 * @throws {OptionError} No text at all, a file that cannot be read, or blank text.
 */
export async function readText(
  text: string | undefined,
  file: string | undefined,
  stdin: { isTerminal(): boolean; readable: ReadableStream<Uint8Array> } = Deno.stdin,
): Promise<string> {
  let read = text;
  let from = "the argument";
  if (read === undefined && file !== undefined) {
    await checkInputs([["the text file (--file)", file]]);
    try {
      read = await Deno.readTextFile(file);
    } catch (e) {
      throw new OptionError(
        `Cannot read the text file (--file) "${file}": ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    from = `the file ${file}`;
  } else if (read === undefined) {
    if (stdin.isTerminal()) {
      throw new OptionError(
        "Cannot speak: no text given (pass it as an argument, --file, or stdin)",
      );
    }
    read = await new Response(stdin.readable).text();
    from = "standard input";
  }
  if (!read.trim()) {
    throw new OptionError(
      `Cannot speak: the text from ${from} is blank (${read.length} characters), expected words`,
    );
  }
  return read;
}

/**
 * Writes the result (a WAV, a LoRA) to `out`; when that fails (the folder vanished, the disk
 * filled up), writes it to a temporary file instead and says where, so the minutes of work are
 * not lost.
 *
 * @param what What the bytes are, for the message. Default "the audio".
 * @returns `out`.
 * @throws {ValleError} Naming `out`, why it failed, and where the bytes went.
 */
export async function writeOutput(
  out: string,
  bytes: Uint8Array,
  force: boolean,
  what = "the audio",
): Promise<string> {
  try {
    await Deno.writeFile(out, bytes, { createNew: !force });
    return out;
  } catch (e) {
    let saved: string;
    try {
      const suffix = extname(out);
      saved = await Deno.makeTempFile({ prefix: `${basename(out, suffix)}-`, suffix });
      await Deno.writeFile(saved, bytes);
    } catch (again) {
      throw new ValleError(
        `Cannot write ${out}: ${(e as Error).message}; nor a temporary file: ${
          (again as Error).message
        }`,
        { cause: e },
      );
    }
    throw new ValleError(
      `Cannot write ${out}: ${(e as Error).message}; ${what} was saved to ${saved} instead`,
      { cause: e },
    );
  }
}

/**
 * Replaces `path` with `bytes` at once: written to a hidden temporary file beside it, then renamed
 * over it, so that an interruption leaves either the old file or the new one, never half of one.
 *
 * @throws {Deno.errors.NotFound} The folder does not exist (the temporary file is removed).
 */
export async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const temp = await Deno.makeTempFile({ dir: dirname(path), prefix: `.${basename(path)}-` });
  try {
    await Deno.writeFile(temp, bytes);
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
}
