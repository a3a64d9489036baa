/**
 * Command-line parsing of examples/train_lora.ts, kept apart so that tests can check that every
 * flag reaches the option it names. The model and backend flags are speak's.
 */

import { parseArgs } from "node:util";
import { OptionError, parseLanguage, type ValleOptions } from "../mod.ts";
import type { TrainVoiceOptions } from "../src/train/mod.ts";
import { parseLoadFlags, parseNumber } from "./_speak_args.ts";

/** The usage text. */
export const TRAIN_USAGE = `Usage: deno task train-lora --data <dir> --out <voice.sft> [options]
   (the same as: deno run -A examples/train_lora.ts [options])

Fine-tunes a LoRA of VALL-E on voice clips with their transcripts, with upstream's training
step, on the GPU (WebGPU) or the CPU. Apply the result with deno task speak --lora voice.sft.
The data folder holds name.wav + name.txt pairs, or one manifest.jsonl / manifest.csv
(src/train/DATA.md describes it); clips that cannot be used are named with the reason.

Data and output
  -d, --data <dir>              the clips and transcripts (required)
  -o, --out <file.sft>          the LoRA (default: lora.sft); never overwritten without --force
  -f, --force                   overwrite the output (and its checkpoint <out>.ckpt)
  -l, --lang <code>             language of clips that name none: en ja de fr zh ko, or auto
                                (default auto: detected from each transcript)
      --eval-fraction <x>       share of clips held out for the evaluation loss, 0 to 1
                                (default 0.1 where that holds out a clip, else 0)

Training
      --steps <n>               optimizer steps (default 250)
      --rank <r>                LoRA rank (default 128)
      --alpha <a>               LoRA alpha; the update is scaled by alpha / rank (default: rank)
      --lr <x>                  AdamW learning rate (default 3.25e-4)
      --batch-size <n>          clips per step (default 8, at most the clips trained on)
      --dropout <p>             dropout on the LoRA's inputs, 0 to below 1 (default 0.1)
  -s, --seed <n>                seed of every random draw (default 0)
      --checkpoint-every <n>    write <out>.ckpt every n steps (and at the end); Ctrl-C
                                writes the last finished step's checkpoint in any case
      --resume <file.ckpt>      continue a run from its checkpoint (same data, rank, alpha,
                                seed); --steps is the total to reach

Models (default: the released weights, downloaded once and cached)
      --model <path|url>        VALL-E weights (.sft, or .gguf from deno task quantize)
      --codec <path|url>        EnCodec weights      --codec-config <path|url>   its config.json
      --dtype <d>               f32 | f16 | q8 | q4: storage of the frozen VALL-E weights
      --precision <p>           auto | f16 | f32 (default auto)
      --backend <b>             auto | webgpu | cpu (default auto); the choice is printed
      --threads <n>             CPU threads (default: every core)
      --cache-dir <dir>         download and clip-codes cache (default $VALLE_CACHE_DIR or
                                ~/.cache/valle)
      --no-cache                cache nothing
  -q, --quiet                   no progress bar
  -h, --help                    this text`;

/** What the train-lora command line asks for. */
export interface TrainArgs {
  /** The data folder. */
  data?: string;
  /** The LoRA's path. */
  out: string;
  /** Overwrite the output and its checkpoint. */
  force: boolean;
  /** A checkpoint to resume from. */
  resume?: string;
  /** Write `<out>.ckpt` every this many steps (undefined: only on Ctrl-C). */
  checkpointEvery?: number;
  /** No progress bar. */
  quiet: boolean;
  /** Print usage. */
  help: boolean;
  /** A cache directory, if given. */
  cacheDir?: string;
  /** Training options (without callbacks, checkpoints or signal). */
  training: TrainVoiceOptions;
  /** Loading options (without the cache object, which needs the file system). */
  load: ValleOptions;
}

/** Numeric training flags: the option each sets and the values it accepts. */
const NUMBERS: Record<string, [keyof TrainVoiceOptions, "count" | "seed" | "positive" | "share"]> =
  {
    steps: ["steps", "count"],
    rank: ["rank", "count"],
    alpha: ["alpha", "positive"],
    lr: ["learningRate", "positive"],
    "batch-size": ["batchSize", "count"],
    seed: ["seed", "seed"],
    "eval-fraction": ["evalFraction", "share"],
    dropout: ["loraDropout", "share"],
  };

const KINDS = {
  count: [(v: number) => Number.isInteger(v) && v >= 1, "a positive integer"],
  seed: [(v: number) => Number.isInteger(v) && v >= 0 && v < 2 ** 32, "an integer 0..2^32-1"],
  positive: [(v: number) => v > 0, "a positive number"],
  share: [(v: number) => v >= 0 && v < 1, "a share from 0 to below 1"],
} as const;

/** The model flags train-lora takes (the vocoder and LoRA flags are speak's alone). */
const TRAIN_MODEL_FLAGS = ["model", "codec", "codec-config", "dtype", "precision", "backend"];

/**
 * Parses the command line; values are checked here, before minutes of loading.
 *
 * @throws {OptionError} An unknown flag, a missing value, a value out of range, a stray argument.
 */
export function parseTrainArgs(argv: string[]): TrainArgs {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    data: { type: "string", short: "d" },
    out: { type: "string", short: "o" },
    force: { type: "boolean", short: "f" },
    lang: { type: "string", short: "l" },
    "checkpoint-every": { type: "string" },
    resume: { type: "string" },
    threads: { type: "string" },
    "cache-dir": { type: "string" },
    "no-cache": { type: "boolean" },
    quiet: { type: "boolean", short: "q" },
    help: { type: "boolean", short: "h" },
  };
  for (const name of [...Object.keys(NUMBERS), ...TRAIN_MODEL_FLAGS]) {
    options[name] = { type: "string" };
  }
  options.seed.short = "s";
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options });
  } catch (e) {
    throw new OptionError(`Cannot parse the command line: ${(e as Error).message}`);
  }
  const { values } = parsed;
  const training: Record<string, unknown> = {};
  for (const [flag, [key, kind]] of Object.entries(NUMBERS)) {
    if (values[flag] !== undefined) training[key] = checked(flag, values[flag] as string, kind);
  }
  const lang = values.lang as string | undefined;
  if (lang !== undefined) {
    training.language = lang === "auto" ? lang : parseLanguage(lang, "--lang");
  }
  const every = values["checkpoint-every"] as string | undefined;
  return {
    data: values.data as string | undefined,
    out: (values.out as string | undefined) ?? "lora.sft",
    force: Boolean(values.force),
    resume: values.resume as string | undefined,
    checkpointEvery: every === undefined ? undefined : checked("checkpoint-every", every, "count"),
    quiet: Boolean(values.quiet),
    help: Boolean(values.help),
    cacheDir: values["cache-dir"] as string | undefined,
    training: training as TrainVoiceOptions,
    load: parseLoadFlags(values),
  };
}

/** A numeric flag's value, checked to be of its kind. */
function checked(flag: string, raw: string, kind: keyof typeof KINDS): number {
  const value = parseNumber(flag, raw);
  const [ok, expected] = KINDS[kind];
  if (!ok(value)) throw new OptionError(`Cannot use --${flag} ${raw}: expected ${expected}`);
  return value;
}
