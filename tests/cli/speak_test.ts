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

/** Runs the CLI; returns its exit code and stderr. */
async function speak(args: string[], cwd: string): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../examples/speak.ts", import.meta.url).pathname, ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", INIT_CWD: cwd },
  }).output();
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
      missing.stderr.includes('Cannot read the reference clip "nope.wav": no such file'),
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
