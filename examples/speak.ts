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
import { enterUserDir, quietGraphicsStack, StatusLine } from "./_cli.ts";

/**
 * The progress display: a line on stderr redrawn in place (nothing when stderr is not a terminal
 * or --quiet); the backend chosen is a line of its own unless --quiet.
 */
function progressBar(status: StatusLine, quiet: boolean): (p: SynthesisProgress) => void {
  return (p) => {
    if (p.file === "backend") {
      if (!quiet) status.print(`backend: ${p.backend}`);
      return;
    }
    status.show(progressLine(p));
  };
}

async function main(): Promise<void> {
  enterUserDir();
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
  const status = new StatusLine(!args.quiet && Deno.stderr.isTerminal());
  const onProgress = progressBar(status, args.quiet);
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
    status.clear();
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
