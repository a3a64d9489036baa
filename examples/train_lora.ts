/**
 * train-lora: fine-tunes a LoRA of VALL-E on a folder of voice clips with their transcripts, with
 * upstream's training step, on the GPU (WebGPU) or the CPU; the result is a `lora.sft` in
 * upstream's layout that `deno task speak --lora` applies.
 *
 *   deno task train-lora --data my-voice/ --out voice.sft --steps 250 --lang en
 *   deno task speak --lora voice.sft --ref my-voice/hello.wav "Now in my voice."
 *   deno task train-lora --help
 *
 * Ctrl-C stops between micro-batches and writes the latest checkpoint to `<out>.ckpt`;
 * `--resume <out>.ckpt` continues the run exactly. The data folder layout is src/train/DATA.md.
 */

import { basename, extname, relative } from "node:path";
import { DirectoryCache, OptionError, type SynthesisProgress, Valle, ValleError } from "../mod.ts";
import { readTrainingFolder, type TrainingFolder } from "../src/train/folder.ts";
import type { TrainProgress } from "../src/train/mod.ts";
import { enterUserDir, quietGraphicsStack, StatusLine } from "./_cli.ts";
import { checkInputs, checkOutput, writeAtomically, writeOutput } from "./_speak_files.ts";
import { bar, progressLine, trainProgressLine } from "./_speak_progress.ts";
import { parseTrainArgs, TRAIN_USAGE, type TrainArgs } from "./_train_args.ts";

/**
 * Steps between the checkpoints the trainer hands over when --checkpoint-every is not given
 * (kept in memory; Ctrl-C writes the last finished step's, which the trainer hands over on abort).
 */
const CHECKPOINT_EVERY = 50;

/** The exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
const INTERRUPTED = 130;

async function main(): Promise<number> {
  enterUserDir();
  const args = parseTrainArgs(Deno.args);
  if (args.help) {
    console.log(TRAIN_USAGE);
    return 0;
  }
  if (args.data === undefined) {
    throw new OptionError("Cannot train: no data folder given (pass --data DIR; --help says more)");
  }
  // Check every option, file and the outputs before minutes of loading.
  await checkOutput(args.out, args.force);
  await checkCheckpoint(args);
  await checkInputs([
    ["the model (--model)", args.load.model],
    ["the codec (--codec)", args.load.codec],
    ["the codec config (--codec-config)", args.load.codecConfig],
    ["the checkpoint (--resume)", args.resume],
  ]);
  const folder = await readFolder(args.data);
  for (const p of folder.problems) console.error(`skipped ${p.name}: ${p.reason}`);
  if (folder.clips.length === 0) {
    throw new OptionError(
      `Cannot train: no usable clip in ${args.data} (expected name.wav + name.txt pairs or a ` +
        `manifest; see src/train/DATA.md)`,
    );
  }
  const removeRuntimeDir = quietGraphicsStack();
  try {
    return await train(args, folder);
  } finally {
    removeRuntimeDir();
  }
}

/**
 * `<out>.ckpt` is this run's: refuse to replace a file of that name unless it is the checkpoint
 * resumed from or --force says so.
 */
async function checkCheckpoint(args: TrainArgs): Promise<void> {
  const path = `${args.out}.ckpt`;
  const existing = await Deno.realPath(path).catch(() => undefined);
  if (!existing || args.force) return;
  const resumed = args.resume && await Deno.realPath(args.resume).catch(() => undefined);
  if (existing === resumed) return;
  throw new OptionError(
    `Cannot write the checkpoint ${path}: the file exists (resume from it with --resume ${path}, ` +
      `or pass --force to overwrite it)`,
  );
}

/** The data folder's clips and problems; a folder that is not there is a clear error. */
async function readFolder(dir: string): Promise<TrainingFolder> {
  const info = await Deno.stat(dir).catch(() => undefined);
  if (!info) throw new OptionError(`Cannot read the data folder (--data) "${dir}": no such folder`);
  if (!info.isDirectory) {
    throw new OptionError(`Cannot read the data folder (--data) "${dir}": it is a file`);
  }
  return await readTrainingFolder(dir);
}

/** Loads the models, trains, writes the LoRA (or, when stopped, the checkpoint). */
async function train(args: TrainArgs, folder: TrainingFolder): Promise<number> {
  const live = !args.quiet && Deno.stderr.isTerminal();
  const status = new StatusLine(live);
  const every = args.checkpointEvery ?? CHECKPOINT_EVERY;
  const start = performance.now();
  const valle = await Valle.load({
    ...args.load,
    cache: args.load.cache ?? (args.cacheDir ? new DirectoryCache(args.cacheDir) : undefined),
    onProgress: (p: SynthesisProgress) => {
      if (p.file !== "backend") status.show(progressLine(p));
      else if (!args.quiet) status.print(`backend: ${p.backend}`);
    },
  });
  const stop = new AbortController();
  const interrupt = () => {
    if (stop.signal.aborted) Deno.exit(INTERRUPTED); // a second Ctrl-C: at once
    status.print("stopping after this micro-batch (Ctrl-C again to quit at once)");
    stop.abort(new DOMException("Training interrupted (Ctrl-C)", "AbortError"));
  };
  Deno.addSignalListener("SIGINT", interrupt);
  const checkpointPath = `${args.out}.ckpt`;
  let latest: { bytes: Uint8Array; step: number; saved: boolean } | undefined;
  let last: TrainProgress | undefined;
  let evalLoss: number | undefined;
  try {
    const resume = args.resume ? await Deno.readFile(args.resume) : undefined;
    const result = await valle.trainLora(folder.clips, {
      ...args.training,
      resume,
      signal: stop.signal,
      checkpointEvery: every,
      onCheckpoint: async (bytes, step) => {
        latest = { bytes, step, saved: args.checkpointEvery !== undefined };
        if (latest.saved) await writeAtomically(checkpointPath, bytes);
      },
      onPrepare: (done, total, name) =>
        status.show(`prepare${bar(done, total)} ${done}/${total} ${name}`),
      onProgress: (p) => {
        last = p;
        evalLoss = p.evalLoss ?? evalLoss;
        if (live) status.show(trainProgressLine(p, evalLoss));
        // Into a log: a line at each checkpoint's step.
        else if (!args.quiet && (p.step % every === 0 || p.step === p.steps)) {
          console.error(trainProgressLine(p, evalLoss));
        }
      },
      onWarning: (message) => status.print(`warning: ${message}`),
    });
    status.clear();
    for (const p of result.skipped) console.error(`skipped ${p.name}: ${p.reason}`);
    const name = basename(args.out, extname(args.out));
    await writeOutput(args.out, result.lora.toFile({ name }), args.force, "the LoRA");
    const { rank, alpha } = result.lora.layout;
    const seconds = ((performance.now() - start) / 1000).toFixed(1);
    const losses = last
      ? `: loss ${last.loss.toFixed(3)}${
        evalLoss === undefined ? "" : `, held-out loss ${evalLoss.toFixed(3)}`
      }`
      : "";
    console.error(
      `wrote ${args.out}: a rank-${rank} LoRA (alpha ${alpha}) after ${last?.step ?? 0} steps on ` +
        `${result.trained} clip(s), ${result.heldOut} held out${losses}; ${seconds} s on ` +
        `${valle.backend.description}`,
    );
    const ref = relative(Deno.cwd(), folder.clips[0].audio as string);
    console.error(
      `speak with it: deno task speak --lora ${args.out} --ref ${ref} "Words in the new voice."`,
    );
    return 0;
  } catch (e) {
    if (!stop.signal.aborted) throw e;
    status.clear();
    const at = last ? `at step ${last.step} of ${last.steps}` : "before the first step";
    if (!latest) {
      console.error(`stopped ${at}: no step had finished, nothing saved`);
      return INTERRUPTED;
    }
    if (!latest.saved) await writeAtomically(checkpointPath, latest.bytes);
    console.error(
      `stopped ${at}: the checkpoint of step ${latest.step} is in ${checkpointPath}; continue ` +
        `with the same flags and --resume ${checkpointPath}`,
    );
    return INTERRUPTED;
  } finally {
    Deno.removeSignalListener("SIGINT", interrupt);
    await valle.dispose();
  }
}

try {
  Deno.exit(await main());
} catch (e) {
  if (!(e instanceof ValleError)) throw e;
  console.error(`\nerror: ${e.message}`);
  Deno.exit(e instanceof OptionError ? 2 : 1);
}
