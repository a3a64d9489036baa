/**
 * Command-line parsing of examples/speak.ts, kept apart so that tests can check that every flag
 * reaches the option it names (upstream's CLI silently dropped its sampler flags).
 */

import { parseArgs } from "node:util";
import type { SynthesizeOptions, ValleOptions } from "../mod.ts";
import { ipaPassthrough, OptionError } from "../mod.ts";

/** The usage text. */
export const USAGE = `Usage: deno task speak [options] [text]
   (the same as: deno run -A examples/speak.ts [options] [text])

Speaks text in the voice of a reference clip with VALL-E, on the GPU (WebGPU) or, where there
is no hardware GPU, on the CPU (WebAssembly). It installs nothing: deno task doctor says what
this machine offers.
The text comes from the argument, --file, or standard input.

Input and output
  -o, --out <file.wav>          output WAV (default: speech.wav); never overwritten without --force
  -f, --force                   overwrite the output file
      --file <path>             read the text from a file
  -r, --ref <wav>               reference voice clip (path or URL); repeat to concatenate clips
      --prompt-seconds <s>      trim/repeat the voice prompt to s seconds (0: whole; default 0)
      --float                   write 32-bit float samples instead of 16-bit PCM
      --ipa                     the text is already phonemes (IPA), do not phonemize

Language and text
  -l, --lang <code>             accent token: en ja de fr zh ko, or auto (default auto)
      --text-lang <code>        language the text is read in (default: --lang)
      --split <how>             sentences | lines | none (default sentences)
      --context-history <n>     rolling context: previous n pieces as prefix (default 0)
      --batch-size <n>          pieces generated together when context history is 0
                                (default: what fits in 1 GiB, at most 4)
      --pause <s>               silence between pieces in seconds (default 0)

Generation
  -m, --modality <m>            auto | ar+nar | nar-len (default auto)
      --max-duration <s>        longest piece in seconds (default 12)
      --steps <n>               NAR-len demasking steps (default 50)
      --ar-temperature <t>      level-0 temperature (default 1)
      --min-ar-temperature <t>  dynamic temperature lower end (default -1: off)
      --nar-temperature <t>     levels 1-7 temperature (default 0)
      --top-k <k>               keep the k likeliest codes (default 0: off)
      --top-p <p>               keep the likeliest codes up to total probability p (default 1: off)
      --min-p <p>               drop codes below p × the likeliest one's probability (default 0: off)
      --top-n-sigma <n>         keep logits within one σ of the largest; n > 0 turns it on
                                (default 0: off)
      --repetition-penalty <r>  divide the logits of codes already spoken by r (default 1: off)
      --repetition-penalty-decay <d>
                                scale that penalty by distance^d (default 0)
      --length-penalty <x>      divide the stop code's logit by (frames + 1)^x (default 0: off)
      --cfg-strength <w>        guidance strength (default 1; NAR-len uses at least 2.5)
      --cfg-rescale <r>         guidance rescale (default 0.75)
      --decoder <d>             vocos | encodec (default vocos)
  -s, --seed <n>                random seed (default: random)

Models (default: the released weights, downloaded once and cached)
      --model <path|url>        VALL-E weights (.sft, or .gguf from deno task quantize)
      --codec <path|url>        EnCodec weights      --codec-config <path|url>   its config.json
      --vocoder <path|url>      Vocos weights        --vocoder-config <path|url> its config JSON
      --lora <path|url>         a LoRA (upstream lora.sft) merged into the model
      --lora-strength <x>       its strength, -10 to 10 (default 1; 0: the base model)
      --precision <p>           auto | f16 | f32 (default auto)
      --dtype <d>               f32 | f16 | q8 | q4: VALL-E weight storage; q8 (~244 MB) and q4
                                (~149 MB) quantize at load (default: q8 on the CPU, f16 on a
                                GPU, or what a .gguf model stores; the backend line says)
      --backend <b>             auto | webgpu | cpu (default auto: WebGPU on a hardware GPU,
                                else the CPU); the choice and why is printed
      --threads <n>             CPU threads (default: every core)
      --cache-dir <dir>         download cache (default $VALLE_CACHE_DIR or ~/.cache/valle)
      --no-cache                do not cache downloads
  -q, --quiet                   no progress bar
  -h, --help                    this text`;

/** What the command line asks for. */
export interface SpeakArgs {
  /** The text, when given as an argument. */
  text?: string;
  /** A file to read the text from. */
  file?: string;
  /** The output WAV path. */
  out: string;
  /** Overwrite an existing output. */
  force: boolean;
  /** Write float32 samples. */
  float: boolean;
  /** No progress bar. */
  quiet: boolean;
  /** Print usage. */
  help: boolean;
  /** A cache directory, if given. */
  cacheDir?: string;
  /** Synthesis options. */
  synthesis: SynthesizeOptions;
  /** Loading options (without the cache object, which needs the file system). */
  load: ValleOptions;
}

const NUMBERS: Record<string, keyof SynthesizeOptions> = {
  "prompt-seconds": "promptSeconds",
  "context-history": "contextHistory",
  "batch-size": "batchSize",
  pause: "pauseSeconds",
  "max-duration": "maxSeconds",
  steps: "steps",
  "ar-temperature": "arTemperature",
  "min-ar-temperature": "minArTemperature",
  "nar-temperature": "narTemperature",
  "top-k": "topK",
  "top-p": "topP",
  "min-p": "minP",
  "top-n-sigma": "topNSigma",
  "repetition-penalty": "repetitionPenalty",
  "repetition-penalty-decay": "repetitionPenaltyDecay",
  "length-penalty": "lengthPenalty",
  "cfg-strength": "cfgStrength",
  "cfg-rescale": "cfgRescale",
  seed: "seed",
};

const STRINGS: Record<string, keyof SynthesizeOptions> = {
  lang: "language",
  "text-lang": "textLanguage",
  split: "split",
  modality: "modality",
  decoder: "decoder",
};

/** The model and backend flags (speak's, and train-lora's subset), and the option each sets. */
export const MODEL_FLAGS: Record<string, keyof ValleOptions> = {
  model: "model",
  codec: "codec",
  "codec-config": "codecConfig",
  vocoder: "vocoder",
  "vocoder-config": "vocoderConfig",
  precision: "precision",
  dtype: "dtype",
  backend: "backend",
  lora: "lora",
};

/**
 * Parses the command line.
 *
 * @throws {OptionError} An unknown flag, a missing value, or a number that is not a number.
 */
export function parseSpeakArgs(argv: string[]): SpeakArgs {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {
    out: { type: "string", short: "o" },
    force: { type: "boolean", short: "f" },
    file: { type: "string" },
    ref: { type: "string", short: "r", multiple: true },
    float: { type: "boolean" },
    ipa: { type: "boolean" },
    threads: { type: "string" },
    "lora-strength": { type: "string" },
    "cache-dir": { type: "string" },
    "no-cache": { type: "boolean" },
    quiet: { type: "boolean", short: "q" },
    help: { type: "boolean", short: "h" },
  };
  for (
    const name of [...Object.keys(NUMBERS), ...Object.keys(STRINGS), ...Object.keys(MODEL_FLAGS)]
  ) {
    options[name] = { type: "string" };
  }
  options.lang.short = "l";
  options.modality.short = "m";
  options.seed.short = "s";
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true });
  } catch (e) {
    throw new OptionError(`Cannot parse the command line: ${(e as Error).message}`);
  }
  const { values, positionals } = parsed;
  const synthesis: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(NUMBERS)) {
    if (values[flag] !== undefined) synthesis[key] = parseNumber(flag, values[flag] as string);
  }
  for (const [flag, key] of Object.entries(STRINGS)) {
    if (values[flag] !== undefined) synthesis[key] = values[flag];
  }
  const refs = values.ref as string[] | undefined;
  if (refs?.length) synthesis.reference = refs.length === 1 ? refs[0] : refs;
  const load: Record<string, unknown> = { ...parseLoadFlags(values) };
  if (values["lora-strength"] !== undefined) {
    load.loraStrength = parseNumber("lora-strength", values["lora-strength"] as string);
  }
  if (values.ipa) load.phonemizer = ipaPassthrough;
  return {
    text: positionals.length ? positionals.join(" ") : undefined,
    file: values.file as string | undefined,
    out: (values.out as string | undefined) ?? "speech.wav",
    force: Boolean(values.force),
    float: Boolean(values.float),
    quiet: Boolean(values.quiet),
    help: Boolean(values.help),
    cacheDir: values["cache-dir"] as string | undefined,
    synthesis: synthesis as SynthesizeOptions,
    load: load as ValleOptions,
  };
}

/**
 * A flag's value as a number.
 *
 * @throws {OptionError} `Cannot parse --flag: "x" is not a number`.
 */
export function parseNumber(flag: string, raw: string): number {
  const value = Number(raw);
  if (raw === "" || !Number.isFinite(value)) {
    throw new OptionError(`Cannot parse --${flag}: "${raw}" is not a number`);
  }
  return value;
}

/**
 * The loading options of the {@linkcode MODEL_FLAGS}, `--threads` and `--no-cache` found in
 * parsed command-line values (flags a command does not define are simply absent).
 *
 * @throws {OptionError} A --threads that is not a positive integer.
 */
export function parseLoadFlags(values: Record<string, unknown>): ValleOptions {
  const load: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(MODEL_FLAGS)) {
    if (values[flag] !== undefined) load[key] = values[flag];
  }
  if (values.threads !== undefined) {
    const threads = Number(values.threads);
    if (!Number.isInteger(threads) || threads < 1) {
      throw new OptionError(
        `Cannot parse --threads: "${values.threads}" is not a positive integer`,
      );
    }
    load.threads = threads;
  }
  if (values["no-cache"]) load.cache = false;
  return load as ValleOptions;
}
