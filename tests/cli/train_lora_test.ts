/**
 * The train-lora CLI: every flag reaches the option it names; a real run on the tiny models
 * writes the LoRA the library trains with the same options, in upstream's layout, which
 * `setLora` applies; a run stopped at a checkpoint (by --steps or by Ctrl-C) and resumed gives the
 * uninterrupted run's LoRA bit for bit; bad input is a one-line error with exit status 2.
 */

import { deepStrictEqual, equal, notDeepStrictEqual, ok } from "node:assert";
import { parseTrainArgs } from "../../examples/_train_args.ts";
import { encodeWav } from "../../src/audio/wav.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { Valle } from "../../src/tts/valle.ts";
import { POLICY_MODULES } from "../_tiny_lora.ts";
import { tinyModels } from "../_tiny_models.ts";
import { voiced } from "../train/_data.ts";

const REPO = new URL("../../", import.meta.url).pathname;

// [flag, value, where it must land, key, expected value]
const FLAGS: [string, string, "training" | "load" | "args", string, unknown][] = [
  ["--steps", "30", "training", "steps", 30],
  ["--rank", "16", "training", "rank", 16],
  ["--alpha", "32", "training", "alpha", 32],
  ["--lr", "1e-4", "training", "learningRate", 1e-4],
  ["--batch-size", "4", "training", "batchSize", 4],
  ["--seed", "7", "training", "seed", 7],
  ["--eval-fraction", "0.2", "training", "evalFraction", 0.2],
  ["--dropout", "0.05", "training", "loraDropout", 0.05],
  ["--lang", "de", "training", "language", "de"],
  ["--model", "m.sft", "load", "model", "m.sft"],
  ["--codec", "c.safetensors", "load", "codec", "c.safetensors"],
  ["--codec-config", "c.json", "load", "codecConfig", "c.json"],
  ["--dtype", "f16", "load", "dtype", "f16"],
  ["--precision", "f32", "load", "precision", "f32"],
  ["--backend", "cpu", "load", "backend", "cpu"],
  ["--threads", "3", "load", "threads", 3],
  ["--no-cache", "", "load", "cache", false],
  ["--data", "clips", "args", "data", "clips"],
  ["--out", "v.sft", "args", "out", "v.sft"],
  ["--resume", "v.sft.ckpt", "args", "resume", "v.sft.ckpt"],
  ["--checkpoint-every", "5", "args", "checkpointEvery", 5],
  ["--cache-dir", "cache", "args", "cacheDir", "cache"],
];

Deno.test("every train-lora flag reaches the option it names", () => {
  const bare = parseTrainArgs([]);
  for (const [flag, value, where, key, expected] of FLAGS) {
    const args = parseTrainArgs(value ? [flag, value] : [flag]);
    const holder = where === "args" ? args : args[where];
    deepStrictEqual((holder as unknown as Record<string, unknown>)[key], expected, flag);
    const changed = Object.keys(args.training).length + Object.keys(args.load).length +
      (where === "args" ? 1 : 0);
    equal(changed, 1, `${flag} only`);
  }
  deepStrictEqual(
    [bare.out, bare.force, bare.quiet, bare.checkpointEvery],
    ["lora.sft", false, false, undefined],
  );
  const short = parseTrainArgs(["-d", "x", "-o", "y.sft", "-f", "-l", "en", "-s", "2", "-q"]);
  deepStrictEqual(
    [short.data, short.out, short.force, short.training.language, short.training.seed, short.quiet],
    ["x", "y.sft", true, "en", 2, true],
  );
});

Deno.test("train-lora refuses values out of range and unknown flags while parsing", () => {
  for (
    const [argv, message] of [
      [["--steps", "0"], "Cannot use --steps 0: expected a positive integer"],
      [["--rank", "2.5"], "Cannot use --rank 2.5: expected a positive integer"],
      [["--lr=-1"], "Cannot use --lr -1: expected a positive number"],
      [["--eval-fraction", "1"], "Cannot use --eval-fraction 1: expected a share"],
      [["--seed=-3"], "Cannot use --seed -3: expected an integer"],
      [["--checkpoint-every", "0"], "Cannot use --checkpoint-every 0"],
      [["--alpha", "x"], 'Cannot parse --alpha: "x" is not a number'],
      [["--threads", "0"], 'Cannot parse --threads: "0" is not a positive integer'],
      [["--lang", "xx"], 'Cannot use --lang "xx": expected one of en'],
      [["--bogus"], "Cannot parse the command line"],
      [["stray"], "Cannot parse the command line"],
      [["--vocoder", "v.bin"], "Cannot parse the command line"],
    ] as const
  ) {
    let error = "";
    try {
      parseTrainArgs([...argv]);
    } catch (e) {
      error = (e as Error).message;
    }
    ok(error.startsWith(message), `${argv}: ${error}`);
  }
});

const TRANSCRIPTS = ["Hello there.", "The weather is fine.", "One more sentence.", "The last one."];

/** The tiny models and a data folder of four voiced clips with transcripts, in a temp dir. */
async function workspace(): Promise<{ dir: string; flags: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "valle-train-cli-" });
  const tiny = await tinyModels();
  await Deno.writeFile(`${dir}/model.sft`, tiny.model);
  await Deno.writeFile(`${dir}/codec.safetensors`, tiny.codec);
  await Deno.writeTextFile(`${dir}/codec.json`, JSON.stringify(tiny.codecConfig));
  await Deno.mkdir(`${dir}/clips`);
  for (const [i, text] of TRANSCRIPTS.entries()) {
    const samples = voiced(1.2 + 0.1 * i, 16000, 100 + 20 * i);
    await Deno.writeFile(`${dir}/clips/c${i}.wav`, encodeWav([samples], 16000));
    await Deno.writeTextFile(`${dir}/clips/c${i}.txt`, text);
  }
  const flags = [
    ...["--data", "clips", "--lang", "en", "--rank", "4", "--alpha", "8", "--seed", "5"],
    ...["--model", "model.sft", "--codec", "codec.safetensors", "--codec-config", "codec.json"],
    ...["--backend", "cpu", "--threads", "1", "--no-cache"],
  ];
  return { dir, flags };
}

/** Runs the CLI from `cwd` as `deno task` would; returns its exit status and stderr. */
function trainLora(args: string[], cwd: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO}examples/train_lora.ts`, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", INIT_CWD: cwd },
  }).spawn();
}

async function run(args: string[], cwd: string): Promise<{ code: number; stderr: string }> {
  const out = await trainLora(args, cwd).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test({
  name:
    "train-lora writes the LoRA the library trains, in upstream's layout, that setLora applies, and says how to use it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    await Deno.writeTextFile(`${dir}/clips/orphan.txt`, "A transcript without audio.");
    const cli = await run([...flags, "--out", "voice.sft", "--steps", "3"], dir);
    equal(cli.code, 0, cli.stderr);
    ok(cli.stderr.includes("skipped orphan.txt: no audio: expected orphan.wav beside it"));
    ok(cli.stderr.includes("wrote voice.sft: a rank-4 LoRA (alpha 8) after 3 steps on 4 clip(s)"));
    ok(
      cli.stderr.includes('speak with it: deno task speak --lora voice.sft --ref clips/c0.wav "'),
      cli.stderr,
    );
    const bytes = await Deno.readFile(`${dir}/voice.sft`);
    const st = parseSafetensors(bytes);
    const config = JSON.parse(st.metadata.config);
    deepStrictEqual([config.name, config.rank, config.alpha], ["voice", 4, 8]);
    const base = parseSafetensors(await Deno.readFile(`${dir}/model.sft`));
    const layers = new Set(base.names.map((n) => /^model\.layers\.(\d+)\./.exec(n)?.[1]));
    layers.delete(undefined);
    // Upstream's llama policy: self_attn and mlp, k_proj excluded.
    const keys = [...layers].flatMap((l) =>
      POLICY_MODULES.flatMap((m) => ["lora_A", "lora_B"].map((f) => `model.layers.${l}.${m}.${f}`))
    );
    deepStrictEqual([...st.names].sort(), keys.sort());
    equal(st.info(keys[0]).shape[0], 4);

    // The library, with the same options on the same clips, trains the same LoRA.
    const tiny = await tinyModels();
    const valle = await Valle.load({ ...tiny, backend: "cpu", threads: 1, cache: false });
    const clips = TRANSCRIPTS.map((text, i) => ({
      name: `c${i}`,
      audio: `${dir}/clips/c${i}.wav`,
      text,
      speaker: "clips",
    }));
    const { lora } = await valle.trainLora(clips, {
      language: "en",
      rank: 4,
      alpha: 8,
      seed: 5,
      steps: 3,
    });
    deepStrictEqual(bytes, lora.toFile({ name: "voice" }));

    // setLora applies it.
    const active = await valle.setLora(bytes);
    deepStrictEqual([active?.name, active?.rank, active?.alpha], ["voice", 4, 8]);
    await valle.dispose();
    await Deno.remove(dir, { recursive: true });
  },
});

/** The step of a checkpoint file. */
async function checkpointStep(path: string): Promise<number> {
  return JSON.parse(parseSafetensors(await Deno.readFile(path)).metadata.run).step;
}

Deno.test({
  name:
    "train-lora resumed from its checkpoint gives the uninterrupted run's LoRA bit for bit, after --steps or Ctrl-C",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    for (const sub of ["whole", "parts"]) await Deno.mkdir(`${dir}/${sub}`);
    const whole = await run([...flags, "--out", "whole/voice.sft", "--steps", "4"], dir);
    equal(whole.code, 0, whole.stderr);
    const uninterrupted = await Deno.readFile(`${dir}/whole/voice.sft`);

    // Stopped by --steps 2 with a checkpoint at step 2, then resumed to 4.
    const out = ["--out", "parts/voice.sft"];
    const first = await run([...flags, ...out, "--steps", "2", "--checkpoint-every", "2"], dir);
    equal(first.code, 0, first.stderr);
    equal(await checkpointStep(`${dir}/parts/voice.sft.ckpt`), 2);
    const half = await Deno.readFile(`${dir}/parts/voice.sft`);
    notDeepStrictEqual(half, uninterrupted);
    // The checkpoint is not overwritten by another run, nor the LoRA.
    const again = await run([...flags, "--out", "parts/voice.sft", "--steps", "4"], dir);
    equal(again.code, 2, again.stderr);
    ok(again.stderr.includes("Cannot write parts/voice.sft: the file exists"), again.stderr);
    await Deno.remove(`${dir}/parts/voice.sft`);
    const other = await run([...flags, ...out, "--steps", "4"], dir);
    equal(other.code, 2, other.stderr);
    ok(
      other.stderr.includes(
        "Cannot write the checkpoint parts/voice.sft.ckpt: the file exists (resume from it with " +
          "--resume parts/voice.sft.ckpt",
      ),
      other.stderr,
    );
    const resumed = await run(
      [...flags, ...out, "--steps", "4", "--resume", "parts/voice.sft.ckpt"],
      dir,
    );
    equal(resumed.code, 0, resumed.stderr);
    deepStrictEqual(await Deno.readFile(`${dir}/parts/voice.sft`), uninterrupted);
    // Without --checkpoint-every the resumed run writes no checkpoint of its own.
    equal(await checkpointStep(`${dir}/parts/voice.sft.ckpt`), 2);

    // Stopped by Ctrl-C once a checkpoint was taken, with --checkpoint-every (written as taken)
    // and without (taken every 50 steps, written on Ctrl-C only): the latest checkpoint is in
    // <out>.ckpt, no LoRA is written; resumed to two steps past it, the LoRA is an uninterrupted
    // run's of as many steps.
    const lora = (path: string) =>
      Deno.readFile(`${dir}/${path}`).then((b) => {
        const st = parseSafetensors(b);
        return st.names.map((n) => st.toFloat32(n));
      });
    for (
      const [sub, every, line] of [
        // Step 4's line comes after step 2's checkpoint was written.
        ["stopped", ["--checkpoint-every", "2"], "step 4/100000"],
        ["held", [], "step 50/100000"],
      ] as const
    ) {
      await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
      const out = ["--out", `${sub}/voice.sft`];
      const child = trainLora([...flags, ...out, "--steps", "100000", ...every], dir);
      await child.stdout.cancel();
      const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let stderr = "";
      while (!stderr.includes(line)) {
        const { value, done } = await reader.read();
        if (done) break;
        stderr += value;
      }
      const ckpt = `${dir}/${sub}/voice.sft.ckpt`;
      const before = await Deno.stat(ckpt).then(() => true, () => false);
      equal(before, every.length > 0, `${sub}: a checkpoint on disk before Ctrl-C`);
      child.kill("SIGINT");
      for (let r = await reader.read(); !r.done; r = await reader.read()) stderr += r.value;
      equal((await child.status).code, 130, stderr);
      const step = await checkpointStep(ckpt);
      ok(
        new RegExp(
          `stopped at step \\d+ of 100000: the checkpoint of step ${step} is in ${sub}/voice\\.sft\\.ckpt; ` +
            `continue with the same flags and --resume ${sub}/voice\\.sft\\.ckpt`,
        ).test(stderr),
        stderr,
      );
      await Deno.stat(`${dir}/${sub}/voice.sft`).then(
        () => ok(false, `${sub}: a LoRA was written`),
        () => {},
      );
      const steps = String(step + 2);
      const continued = await run(
        [...flags, ...out, "--steps", steps, "--resume", `${sub}/voice.sft.ckpt`],
        dir,
      );
      equal(continued.code, 0, continued.stderr);
      const straight = await run([...flags, "--out", `${sub}/straight.sft`, "--steps", steps], dir);
      equal(straight.code, 0, straight.stderr);
      deepStrictEqual(await lora(`${sub}/voice.sft`), await lora(`${sub}/straight.sft`));
    }
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "train-lora refuses bad input with a one-line error and exit status 2",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    const model = flags.slice(flags.indexOf("--model"));
    await Deno.mkdir(`${dir}/empty`);
    await Deno.writeTextFile(`${dir}/empty/lonely.txt`, "No audio beside me.");
    await Deno.writeFile(`${dir}/taken.sft`, new Uint8Array([1, 2, 3]));
    await Deno.mkdir(`${dir}/silent`);
    for (const name of ["a", "b"]) {
      await Deno.writeFile(
        `${dir}/silent/${name}.wav`,
        encodeWav([new Float32Array(24000)], 24000),
      );
      await Deno.writeTextFile(`${dir}/silent/${name}.txt`, "Nothing to hear.");
    }
    for (
      const [args, message] of [
        [
          [...model, "--out", "x.sft"],
          "error: Cannot train: no data folder given (pass --data DIR",
        ],
        [
          [...model, "--data", "nowhere"],
          'error: Cannot read the data folder (--data) "nowhere": no such folder',
        ],
        [
          [...model, "--data", "model.sft"],
          'error: Cannot read the data folder (--data) "model.sft": it is a file',
        ],
        [[...model, "--data", "empty"], "error: Cannot train: no usable clip in empty"],
        [
          [...model, "--data", "silent", "--lang", "en"],
          "error: Cannot train a LoRA: no usable clip (a: the audio is silent",
        ],
        [
          [...flags, "--out", "taken.sft"],
          "error: Cannot write taken.sft: the file exists (pass --force",
        ],
        [
          [...flags, "--resume", "missing.ckpt"],
          'error: Cannot read the checkpoint (--resume) "missing.ckpt": no such file',
        ],
        [[...flags, "--steps", "zero"], 'error: Cannot parse --steps: "zero" is not a number'],
        [[...flags, "--backend", "tpu"], 'error: Cannot create a backend: backend is "tpu"'],
      ] as const
    ) {
      const { code, stderr } = await run([...args], dir);
      equal(code, 2, `${args.join(" ")}: ${stderr}`);
      const lines = stderr.trim().split("\n");
      ok(lines.at(-1)!.startsWith(message), `${args.join(" ")}: ${stderr}`);
      ok(!stderr.includes("    at "), `a stack trace: ${stderr}`);
    }
    deepStrictEqual(await Deno.readFile(`${dir}/taken.sft`), new Uint8Array([1, 2, 3]));
    await Deno.remove(dir, { recursive: true });
  },
});
