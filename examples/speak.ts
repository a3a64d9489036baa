/**
 * speak: text to a WAV file in the voice of a reference clip, with VALL-E on the GPU (or on the
 * CPU where there is no hardware GPU).
 *
 *   deno task speak "Hello there." --ref voice.wav --out hello.wav
 *   echo "Guten Tag." | deno task speak --lang de --out tag.wav
 *   deno task speak --help           (the same as deno run -A examples/speak.ts --help)
 *
 * Without --model/--codec/--vocoder it downloads the released weights once (about 550 MB) into
 * the cache directory. Run with --help for every option.
 */

import {
  DirectoryCache,
  OptionError,
  resolveSynthesizeOptions,
  type SynthesisProgress,
  Valle,
  ValleError,
} from "../mod.ts";
import { parseSpeakArgs, type SpeakArgs, USAGE } from "./_speak_args.ts";
import { checkInputs, checkOutput, readText, writeOutput } from "./_speak_files.ts";
import { progressLine } from "./_speak_progress.ts";

const encoder = new TextEncoder();

/**
 * A one-line progress display on stderr (nothing when stderr is not a terminal or --quiet); the
 * backend chosen is a line of its own unless --quiet.
 */
function progressBar(enabled: boolean, quiet: boolean): (p: SynthesisProgress) => void {
  let last = "";
  return (p) => {
    if (p.file === "backend" && !quiet) {
      const clear = enabled ? "\r\x1b[2K" : "";
      Deno.stderr.writeSync(encoder.encode(`${clear}backend: ${p.backend}\n`));
      return;
    }
    if (!enabled) return;
    const line = progressLine(p);
    if (line === last) return;
    last = line;
    Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${line}`));
  };
}

/**
 * On a Linux machine without a desktop session, probing for a WebGPU adapter makes the graphics
 * stack print "error: XDG_RUNTIME_DIR is invalid or not set" twice: give it a private folder.
 *
 * @returns Removes the folder, if one was made.
 */
function quietGraphicsStack(): () => void {
  if (Deno.build.os !== "linux" || Deno.env.get("XDG_RUNTIME_DIR")) return () => {};
  const dir = Deno.makeTempDirSync({ prefix: "valle-runtime-" });
  Deno.env.set("XDG_RUNTIME_DIR", dir);
  return () => Deno.removeSync(dir, { recursive: true });
}

async function main(): Promise<void> {
  // `deno task speak` runs in the repository; paths on the command line are the user's.
  const userDir = Deno.env.get("INIT_CWD");
  if (userDir) Deno.chdir(userDir);
  const args = parseSpeakArgs(Deno.args);
  if (args.help) {
    console.log(USAGE);
    return;
  }
  // Check every option, file and the output before minutes of loading.
  resolveSynthesizeOptions(args.synthesis);
  await checkOutput(args.out, args.force);
  const refs = [args.synthesis.reference ?? []].flat();
  await checkInputs([
    ...refs.map((ref) => ["the reference clip (--ref)", ref] as [string, unknown]),
    ["the model (--model)", args.load.model],
    ["the codec (--codec)", args.load.codec],
    ["the codec config (--codec-config)", args.load.codecConfig],
    ["the vocoder (--vocoder)", args.load.vocoder],
    ["the vocoder config (--vocoder-config)", args.load.vocoderConfig],
    ["the LoRA (--lora)", args.load.lora],
  ]);
  const text = await readText(args.text, args.file);
  const seed = args.synthesis.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
  const removeRuntimeDir = quietGraphicsStack();
  try {
    await speak(args, text, seed);
  } finally {
    removeRuntimeDir();
  }
}

/** Loads the models, speaks `text`, writes the WAV and says what it did. */
async function speak(args: SpeakArgs, text: string, seed: number): Promise<void> {
  const onProgress = progressBar(!args.quiet && Deno.stderr.isTerminal(), args.quiet);
  const start = performance.now();
  const valle = await Valle.load({
    ...args.load,
    cache: args.load.cache ?? (args.cacheDir ? new DirectoryCache(args.cacheDir) : undefined),
    onProgress,
  });
  try {
    const speech = await valle.synthesize(text, { ...args.synthesis, seed, onProgress });
    const wav = speech.toWav({ format: args.float ? "float32" : "pcm16" });
    await writeOutput(args.out, wav, args.force);
    if (!args.quiet && Deno.stderr.isTerminal()) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    const seconds = ((performance.now() - start) / 1000).toFixed(1);
    console.error(
      `wrote ${args.out}: ${speech.duration.toFixed(2)} s of audio, ${speech.pieces.length} ` +
        `piece(s), seed ${seed}, ${seconds} s on ${valle.backend.description}`,
    );
  } finally {
    await valle.dispose();
  }
}

try {
  await main();
} catch (e) {
  if (!(e instanceof ValleError)) throw e;
  console.error(`\nerror: ${e.message}`);
  Deno.exit(e instanceof OptionError ? 2 : 1);
}
