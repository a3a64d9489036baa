/**
 * The speak CLI: every flag reaches the option it names; a real run on the tiny models writes the
 * WAV the library makes with the same options; progress says "load" for local files and
 * "download" for URLs; clear failures for a missing reference, an unsupported language and an
 * existing output.
 */

import { parseSpeakArgs } from "../../examples/_speak_args.ts";
import { progressLine } from "../../examples/_speak_progress.ts";
import { decodeWav, encodeWav } from "../../src/audio/wav.ts";
import { ipaPassthrough } from "../../src/text/phonemizer.ts";
import type { SynthesisProgress } from "../../src/tts/options.ts";
import { Valle } from "../../src/tts/valle.ts";
import { testGpu } from "../_backends.ts";
import { referenceClip, tinyModels } from "../_tiny_models.ts";
import { deepStrictEqual, equal, notDeepStrictEqual, ok } from "node:assert";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { makeTinyLora } from "../_tiny_lora.ts";
import { writeOutput } from "../../examples/_speak_files.ts";
import { ValleError } from "../../src/errors.ts";
import { quantizeValle } from "../../tools/quantize.ts";

// [flag, value, where it must land, expected value]
const FLAGS: [string, string, "synthesis" | "load", string, unknown][] = [
  ["--prompt-seconds", "3", "synthesis", "promptSeconds", 3],
  ["--context-history", "2", "synthesis", "contextHistory", 2],
  ["--batch-size", "3", "synthesis", "batchSize", 3],
  ["--pause", "0.25", "synthesis", "pauseSeconds", 0.25],
  ["--max-duration", "7", "synthesis", "maxSeconds", 7],
  ["--steps", "30", "synthesis", "steps", 30],
  ["--ar-temperature", "0.8", "synthesis", "arTemperature", 0.8],
  ["--min-ar-temperature", "0.3", "synthesis", "minArTemperature", 0.3],
  ["--nar-temperature", "0.2", "synthesis", "narTemperature", 0.2],
  ["--top-k", "40", "synthesis", "topK", 40],
  ["--top-p", "0.9", "synthesis", "topP", 0.9],
  ["--min-p", "0.05", "synthesis", "minP", 0.05],
  ["--top-n-sigma", "1", "synthesis", "topNSigma", 1],
  ["--repetition-penalty", "1.2", "synthesis", "repetitionPenalty", 1.2],
  ["--repetition-penalty-decay", "0.5", "synthesis", "repetitionPenaltyDecay", 0.5],
  ["--length-penalty", "0.1", "synthesis", "lengthPenalty", 0.1],
  ["--cfg-strength", "3", "synthesis", "cfgStrength", 3],
  ["--cfg-rescale", "0.5", "synthesis", "cfgRescale", 0.5],
  ["--seed", "42", "synthesis", "seed", 42],
  ["--lang", "de", "synthesis", "language", "de"],
  ["--text-lang", "fr", "synthesis", "textLanguage", "fr"],
  ["--split", "lines", "synthesis", "split", "lines"],
  ["--modality", "nar-len", "synthesis", "modality", "nar-len"],
  ["--decoder", "encodec", "synthesis", "decoder", "encodec"],
  ["--ref", "a.wav", "synthesis", "reference", "a.wav"],
  ["--model", "m.sft", "load", "model", "m.sft"],
  ["--codec", "c.safetensors", "load", "codec", "c.safetensors"],
  ["--codec-config", "c.json", "load", "codecConfig", "c.json"],
  ["--vocoder", "v.bin", "load", "vocoder", "v.bin"],
  ["--vocoder-config", "v.json", "load", "vocoderConfig", "v.json"],
  ["--precision", "f32", "load", "precision", "f32"],
  ["--dtype", "q4", "load", "dtype", "q4"],
  ["--backend", "cpu", "load", "backend", "cpu"],
  ["--threads", "3", "load", "threads", 3],
  ["--lora", "lora.sft", "load", "lora", "lora.sft"],
  ["--lora-strength", "0.5", "load", "loraStrength", 0.5],
];

Deno.test("every speak flag reaches the option it names", () => {
  for (const [flag, value, where, key, expected] of FLAGS) {
    const args = parseSpeakArgs([flag, value, "text"]);
    deepStrictEqual((args[where] as Record<string, unknown>)[key], expected, flag);
    equal(Object.keys(args.synthesis).length + Object.keys(args.load).length, 1, `${flag} only`);
  }
  const many = parseSpeakArgs([
    "-r",
    "a.wav",
    "--ref",
    "b.wav",
    "-o",
    "x.wav",
    "-f",
    "--ipa",
    "--no-cache",
    "hi",
    "there",
  ]);
  deepStrictEqual(many.synthesis.reference, ["a.wav", "b.wav"]);
  equal(many.out, "x.wav");
  equal(many.force, true);
  equal(many.text, "hi there");
  equal(many.load.phonemizer, ipaPassthrough);
  equal(many.load.cache, false);
  equal(parseSpeakArgs(["--cache-dir", "/tmp/c"]).cacheDir, "/tmp/c");
  equal(parseSpeakArgs(["--float"]).float, true);
  equal(parseSpeakArgs(["-q"]).quiet, true);
  equal(parseSpeakArgs(["--file", "t.txt"]).file, "t.txt");
});

Deno.test("speak refuses numbers that are not numbers and unknown flags", () => {
  for (
    const argv of [["--top-k", "many"], ["--steps", ""], ["--bogus"], ["--lora-strength", "x"]]
  ) {
    let message = "";
    try {
      parseSpeakArgs(argv);
    } catch (e) {
      message = (e as Error).message;
    }
    ok(message.startsWith("Cannot parse"), `${argv}: ${message}`);
  }
});

const REPO = new URL("../../", import.meta.url).pathname;

/** Runs the CLI; returns its exit code and stderr. */
async function speak(
  args: string[],
  cwd: string,
  stdin?: string,
): Promise<{ code: number; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO}examples/speak.ts`, ...args],
    cwd,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", INIT_CWD: cwd },
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** Writes the tiny models and a reference clip into a temp dir; returns the model flags. */
async function workspace(): Promise<{ dir: string; flags: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "valle-cli-" });
  const tiny = await tinyModels();
  await Deno.writeFile(`${dir}/model.sft`, tiny.model);
  await Deno.writeFile(`${dir}/codec.safetensors`, tiny.codec);
  await Deno.writeTextFile(`${dir}/codec.json`, JSON.stringify(tiny.codecConfig));
  await Deno.writeFile(`${dir}/vocoder.safetensors`, tiny.vocoder);
  await Deno.writeTextFile(`${dir}/vocoder.json`, JSON.stringify(tiny.vocoderConfig));
  const clip = referenceClip();
  await Deno.writeFile(`${dir}/ref.wav`, encodeWav(clip.samples, clip.sampleRate));
  const flags = [
    "--model",
    "model.sft",
    "--codec",
    "codec.safetensors",
    "--codec-config",
    "codec.json",
    "--vocoder",
    "vocoder.safetensors",
    "--vocoder-config",
    "vocoder.json",
    "--no-cache",
    "-q",
  ];
  return { dir, flags };
}

Deno.test({
  name:
    "speak says which backend it chose (the CPU: this machine's adapter is software), writes the WAV the library makes there with the same options, and never overwrites",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    const options = [
      "--lang",
      "en",
      "--seed",
      "3",
      "--max-duration",
      "0.4",
      "--steps",
      "3",
      "--nar-temperature",
      "0.5",
    ];
    const run = await speak([
      "Hello there.",
      "--ref",
      "ref.wav",
      "--out",
      "out.wav",
      ...options,
      ...flags.filter((f) => f !== "-q"),
    ], dir);
    equal(run.code, 0, run.stderr);
    ok(run.stderr.includes("wrote out.wav"), run.stderr);
    ok(
      /backend: CPU \(WebAssembly .*\): the WebGPU adapter is software/.test(run.stderr),
      run.stderr,
    );
    const wav = decodeWav(await Deno.readFile(`${dir}/out.wav`));

    const tiny = await tinyModels();
    const valle = await Valle.load({ ...tiny, backend: "cpu", cache: false });
    const speech = await valle.synthesize("Hello there.", {
      reference: `${dir}/ref.wav`,
      language: "en",
      seed: 3,
      maxSeconds: 0.4,
      steps: 3,
      narTemperature: 0.5,
    });
    valle.dispose();
    equal(wav.sampleRate, 24000);
    deepStrictEqual(wav.channels[0], decodeWav(speech.toWav()).channels[0]);

    const again = await speak(["Hi.", "--out", "out.wav", ...flags], dir);
    equal(again.code, 2);
    ok(again.stderr.includes("the file exists (pass --force to overwrite it)"), again.stderr);
    deepStrictEqual(
      decodeWav(await Deno.readFile(`${dir}/out.wav`)),
      wav,
      "the old file is untouched",
    );
  },
});

Deno.test({
  name: "speak fails clearly on a missing reference and an unsupported language",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    const missing = await speak(["Hi.", "--ref", "nope.wav", "--out", "a.wav", ...flags], dir);
    equal(missing.code, 2);
    ok(
      missing.stderr.includes('Cannot read the reference clip (--ref) "nope.wav": no such file'),
      missing.stderr,
    );
    const language = await speak(["Hi.", "--lang", "xx", "--out", "b.wav", ...flags], dir);
    equal(language.code, 2);
    ok(
      language.stderr.includes('language "xx": expected one of en, ja, de, fr, zh, ko'),
      language.stderr,
    );
    for (const name of ["a.wav", "b.wav"]) {
      ok(
        !await Deno.stat(`${dir}/${name}`).then(() => true, () => false),
        `${name} was not written`,
      );
    }
  },
});

Deno.test({
  name: "speak's progress says load for local files and download for URLs",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir } = await workspace();
    const tiny = await tinyModels();
    // The codec comes from a URL; the model and the vocoder from paths.
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request) =>
        new Response(await Deno.readFile(`${dir}${new URL(request.url).pathname}`)),
    );
    const reports: SynthesisProgress[] = [];
    try {
      const valle = await Valle.load({
        ...tiny,
        model: `${dir}/model.sft`,
        codec: `http://127.0.0.1:${server.addr.port}/codec.safetensors`,
        vocoder: `${dir}/vocoder.safetensors`,
        backend: await testGpu(),
        cache: false,
        phonemizer: ipaPassthrough,
        onProgress: (p) => reports.push(p),
      });
      await valle.synthesize("həlˈoʊ.", { language: "en", seed: 1, maxSeconds: 0.1 });
      valle.dispose();
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
    const lines = reports.filter((p) => p.step !== undefined && p.file).map(progressLine);
    const files = (name: string) => lines.filter((line) => line.split(" ")[1] === name);
    for (const name of ["model.sft", "vocoder.safetensors"]) {
      ok(files(name).length > 0, `${name} reported: ${lines.join(" | ")}`);
      for (const line of files(name)) {
        ok(/^load \S+ \[[#.]+\] \d+% [\d.]+\/[\d.]+ MB$/.test(line), line);
      }
    }
    ok(files("codec.safetensors").length > 0, `codec reported: ${lines.join(" | ")}`);
    for (const line of files("codec.safetensors")) ok(line.startsWith("download "), line);
    equal(
      files("model.sft").at(-1),
      `load model.sft [${"#".repeat(24)}] 100% ${(tiny.model.length / 1e6).toFixed(1)}/${
        (tiny.model.length / 1e6).toFixed(1)
      } MB`,
    );
  },
});

Deno.test({
  name: "speak --model x.gguf (from deno task quantize) speaks as the library does with that file",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    const tiny = await tinyModels();
    const gguf = quantizeValle(parseSafetensors(tiny.model), "q8", "model.sft");
    await Deno.writeFile(`${dir}/model.gguf`, gguf);
    const options = ["--lang", "en", "--seed", "4", "--max-duration", "0.4", "--steps", "3"];
    const model = flags.indexOf("model.sft");
    const run = await speak(
      ["Hello.", "--out", "out.wav", ...options, ...flags.with(model, "model.gguf")],
      dir,
    );
    equal(run.code, 0, run.stderr);
    const valle = await Valle.load({ ...tiny, model: gguf, backend: "cpu", cache: false });
    const speech = await valle.synthesize("Hello.", {
      language: "en",
      seed: 4,
      maxSeconds: 0.4,
      steps: 3,
    });
    valle.dispose();
    const wav = decodeWav(await Deno.readFile(`${dir}/out.wav`));
    deepStrictEqual(wav.channels[0], decodeWav(speech.toWav()).channels[0]);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "speak --lora speaks with the LoRA merged at --lora-strength, as the library does",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    const tiny = await tinyModels();
    const lora = makeTinyLora(parseSafetensors(tiny.model), { rank: 4, alpha: 8, seed: 2 });
    await Deno.mkdir(`${dir}/lora-tiny-r4-a8`);
    await Deno.writeFile(`${dir}/lora-tiny-r4-a8/lora.sft`, lora.bytes);
    const options = ["--lang", "en", "--seed", "5", "--max-duration", "0.4", "--steps", "3"];
    const loraFlags = ["--lora", "lora-tiny-r4-a8/lora.sft", "--lora-strength", "0.5"];
    const run = await speak(["Hello.", "-o", "lora.wav", ...options, ...loraFlags, ...flags], dir);
    equal(run.code, 0, run.stderr);
    const wav = decodeWav(await Deno.readFile(`${dir}/lora.wav`));

    const settings = { language: "en" as const, seed: 5, maxSeconds: 0.4, steps: 3 };
    const valle = await Valle.load({ ...tiny, backend: "cpu", cache: false });
    const plain = await valle.synthesize("Hello.", settings);
    await valle.setLora(lora.bytes, { strength: 0.5 });
    const merged = await valle.synthesize("Hello.", settings);
    await valle.dispose();
    deepStrictEqual(wav.channels[0], decodeWav(merged.toWav()).channels[0]);
    notDeepStrictEqual(merged.pieces[0].codes.data, plain.pieces[0].codes.data);

    const bad = await speak(["Hi.", "-o", "bad.wav", "--lora", "model.sft", ...flags], dir);
    equal(bad.code, 1);
    ok(bad.stderr.includes('Cannot apply the LoRA "model.sft"'), bad.stderr);
    // The model's own tables fit (upstream loads a LoRA with strict=False); its unused ones do not.
    ok(bad.stderr.includes("tasks_emb.weight: expected <module>.lora_A"), bad.stderr);
  },
});

Deno.test({
  name:
    "speak checks the output, the input files and the text before loading anything, naming each",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    const loud = flags.filter((f) => f !== "-q"); // a load would print its backend line
    await Deno.mkdir(`${dir}/folder.wav`);
    const cases: [string[], string, string?][] = [
      [
        ["Hi.", "-o", "/nonexistent-dir/x.wav"],
        "Cannot write /nonexistent-dir/x.wav: the folder /nonexistent-dir does not exist",
      ],
      [["Hi.", "-o", "folder.wav", "-f"], "Cannot write folder.wav: it is a folder"],
      [["--file", "none.txt"], 'Cannot read the text file (--file) "none.txt": no such file'],
      [["Hi.", "--lora", "none.sft"], 'Cannot read the LoRA (--lora) "none.sft": no such file'],
      [[], "Cannot speak: the text from standard input is blank (3 characters)", " \n "],
      [["Hi.", "--precision", "bogus"], 'Cannot load weights: precision is "bogus"'],
      [["Hi.", "--dtype", "q3"], 'Cannot load weights: dtype is "q3"'],
    ];
    for (const [args, message, stdin] of cases) {
      const run = await speak([...args, ...loud], dir, stdin);
      equal(run.code, 2, `${args}: ${run.stderr}`);
      ok(run.stderr.includes(`error: ${message}`), `${args}: ${run.stderr}`);
      ok(!run.stderr.includes("backend:"), `${args} loaded the models first: ${run.stderr}`);
    }
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("speak's writeOutput keeps the audio in a temporary file when the output fails", async () => {
  const wav = encodeWav([new Float32Array([0.25, -0.5])], 24000);
  const error = await writeOutput("/nonexistent-dir/x.wav", wav, false).catch((e) => e);
  ok(error instanceof ValleError, String(error));
  const saved = /the audio was saved to (\S+) instead$/.exec(error.message)?.[1];
  ok(saved && error.message.startsWith("Cannot write /nonexistent-dir/x.wav: "), error.message);
  deepStrictEqual(await Deno.readFile(saved), wav);
  await Deno.remove(saved);
});

/**
 * Runs `deno task speak` as a user would, from `cwd`, with an `apt-get` first on the PATH that
 * records any call (the task must install nothing), as the user `uid` when given.
 */
async function speakTask(
  args: string[],
  cwd: string,
  options: { env?: Record<string, string>; deno?: string; repo?: string; uid?: number } = {},
): Promise<{ code: number; stderr: string; aptCalled: boolean }> {
  const bin = await Deno.makeTempDir({ prefix: "valle-bin-" });
  const marker = `${bin}/apt-get-called`;
  await Deno.writeTextFile(`${bin}/apt-get`, `#!/bin/sh\necho "$@" >> ${marker}\nexit 1\n`);
  await Deno.chmod(bin, 0o755);
  await Deno.chmod(`${bin}/apt-get`, 0o755);
  const deno = options.deno ?? Deno.execPath();
  const task = [deno, "task", "--config", `${options.repo ?? REPO}deno.json`, "speak", ...args];
  const command = options.uid === undefined
    ? task
    : ["setpriv", `--reuid=${options.uid}`, `--regid=${options.uid}`, "--clear-groups", ...task];
  const out = await new Deno.Command(command[0], {
    args: command.slice(1),
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: {
      // As from a user's shell: `deno task` sets INIT_CWD only where it is not set already.
      INIT_CWD: cwd,
      PATH: `${bin}:${Deno.env.get("PATH")}`,
      XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp",
      NO_COLOR: "1",
      ...options.env,
    },
  }).output();
  const aptCalled = await Deno.stat(marker).then(() => true, () => false);
  await Deno.remove(bin, { recursive: true });
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr), aptCalled };
}

/** What the library speaks on the CPU backend for the tasks' options below. */
async function cpuSpeech(dir: string): Promise<Float32Array> {
  const valle = await Valle.load({ ...await tinyModels(), backend: "cpu", cache: false });
  const speech = await valle.synthesize("Hello there.", {
    reference: `${dir}/ref.wav`,
    language: "en",
    seed: 3,
    maxSeconds: 0.4,
    steps: 3,
  });
  await valle.dispose();
  return decodeWav(speech.toWav()).channels[0];
}

const TASK_ARGS = [
  "Hello there.",
  "--ref",
  "ref.wav",
  "--lang",
  "en",
  "--seed",
  "3",
  "--max-duration",
  "0.4",
  "--steps",
  "3",
];

Deno.test({
  name:
    "deno task speak with no WebGPU adapter at all speaks on the CPU backend, says why, and installs nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    // Vulkan with an empty driver list, and no fallback to OpenGL: no adapter.
    const env = { VK_ICD_FILENAMES: `${dir}/none.json`, DENO_WEBGPU_BACKEND: "vulkan" };
    const loud = flags.filter((f) => f !== "-q");
    const run = await speakTask([...TASK_ARGS, "-o", "out.wav", ...loud], dir, { env });
    equal(run.code, 0, run.stderr);
    ok(/backend: CPU \(WebAssembly .*\): no WebGPU adapter/.test(run.stderr), run.stderr);
    ok(
      run.stderr.includes(
        "modality auto → ar+nar: NAR-len's full passes are slow on the CPU; ask for nar-len to use it anyway",
      ),
      run.stderr,
    );
    equal(run.aptCalled, false, "apt-get was called");
    deepStrictEqual(
      decodeWav(await Deno.readFile(`${dir}/out.wav`)).channels[0],
      await cpuSpeech(dir),
    );
    await Deno.remove(dir, { recursive: true });
  },
});

/** The files `deno task speak` needs, copied where any user can read them. */
async function readableRepo(into: string): Promise<string> {
  const repo = `${into}/repo/`;
  await Deno.mkdir(repo, { recursive: true });
  for (const path of ["mod.ts", "src", "examples"]) {
    const copy = await new Deno.Command("cp", { args: ["-r", `${REPO}${path}`, repo] }).output();
    ok(copy.success, `copy ${path}`);
  }
  // The tasks without the test tools' npm imports (and lock), which speaking does not use.
  const config = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`));
  delete config.imports;
  config.lock = false;
  await Deno.writeTextFile(`${repo}deno.json`, JSON.stringify(config));
  return repo;
}

Deno.test({
  name: "deno task speak runs as a user without root, writes the WAV, and installs nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { dir, flags } = await workspace();
    const options: Parameters<typeof speakTask>[2] = {};
    if (Deno.uid() === 0) {
      // As root here (CI): drop to nobody, with Deno and the package where nobody can read them.
      const shared = await Deno.makeTempDir({ prefix: "valle-nonroot-" });
      await Deno.chmod(shared, 0o755);
      options.deno = `${shared}/deno`;
      await Deno.copyFile(Deno.execPath(), options.deno);
      await Deno.chmod(options.deno, 0o755);
      options.repo = await readableRepo(shared);
      await new Deno.Command("chmod", { args: ["-R", "a+rX", shared] }).output();
      await new Deno.Command("chown", { args: ["-R", "65534:65534", dir] }).output();
      await Deno.chmod(dir, 0o755);
      options.uid = 65534;
      options.env = { DENO_DIR: `${dir}/.deno`, HOME: dir };
    }
    const run = await speakTask([...TASK_ARGS, "-o", "out.wav", ...flags], dir, options);
    equal(run.code, 0, run.stderr);
    equal(run.aptCalled, false, "apt-get was called");
    const wav = decodeWav(await Deno.readFile(`${dir}/out.wav`));
    deepStrictEqual(wav.channels[0], await cpuSpeech(dir));
    if (options.repo) await Deno.remove(`${options.repo}/..`, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  },
});
