/**
 * The browser demo end to end: tools/serve_web.ts serves examples/web/ (cross-origin isolated)
 * with the tiny models, headless Chromium uses the page as a person would (a WAV as the voice,
 * text, language, seed, a short length, the backend and threads), and the WAV behind its download
 * link is compared with the same synthesis in Deno through the library: on WebGPU (SwiftShader in
 * the page, f32 weights) and on the CPU (worker threads, the models fetched from another origin as
 * from Hugging Face).
 */

import { deepStrictEqual, equal, notDeepStrictEqual, ok } from "node:assert";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { makeTinyLora } from "../_tiny_lora.ts";
import type { BackendChoice } from "../../src/backends/select.ts";
import type { Backend } from "../../src/backends/backend.ts";
import { defaultDtype } from "../../src/tts/dtype.ts";
import { decodeWav, encodeWav } from "../../src/audio/wav.ts";
import { Valle } from "../../src/tts/valle.ts";
import { startWebServer } from "../../tools/serve_web.ts";
import { assertClose } from "../_helpers.ts";
import { referenceClip, tinyModels } from "../_tiny_models.ts";
import { launchChromium, watchPage } from "./harness.ts";

const TEXT = "Hello there. How are you?";
/** 0.4 s (30 frames) and 3 NAR-len steps per sentence keep SwiftShader and lavapipe quick. */
const OPTIONS = { language: "en", seed: 5, maxSeconds: 0.4, steps: 3 } as const;

/**
 * Runs `test` with the tiny models and the voice clip written as files into a temporary folder,
 * as a user would have them; the folder is removed afterwards.
 */
async function withInputs(test: (inputs: Inputs) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "valle-web-demo-" });
  try {
    await test(await writeInputs(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What {@linkcode withInputs} wrote. */
type Inputs = Awaited<ReturnType<typeof writeInputs>>;

async function writeInputs(dir: string) {
  const tiny = await tinyModels();
  const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
  const files = {
    model: ["model.sft", tiny.model],
    codec: ["encodec.safetensors", tiny.codec],
    codecConfig: ["encodec.json", json(tiny.codecConfig)],
    vocoder: ["vocos.safetensors", tiny.vocoder],
    vocoderConfig: ["vocos.json", json(tiny.vocoderConfig)],
  } as const;
  const models: Record<string, string> = {};
  for (const [option, [name, bytes]] of Object.entries(files)) {
    models[option] = `${dir}/${name}`;
    await Deno.writeFile(models[option], bytes);
  }
  const clip = referenceClip();
  const voice = encodeWav(clip.samples, clip.sampleRate);
  await Deno.writeFile(`${dir}/voice.wav`, voice);
  return { dir, tiny, models, voice, voicePath: `${dir}/voice.wav` };
}

function basename(path: string): string {
  return path.split("/").at(-1)!;
}

/** The page's compute choices. */
interface Compute {
  backend: BackendChoice;
  /** Typed into the threads field; left at its default when undefined. */
  threads?: number;
  /** Chosen in the weights field; left at its default when undefined. */
  dtype?: string;
  /** A LoRA file to choose (null: clear the choice) and its strength; untouched when undefined. */
  lora?: { path: string | null; strength?: number };
}

/**
 * Opens the demo at `url` and fills its form; then, for each compute choice in turn, synthesizes
 * and collects the WAV and what the page showed.
 */
async function synthesizeInPage(url: string, voicePath: string, computes: readonly Compute[]) {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const log = watchPage(page);
    await page.goto(url);
    const defaultThreads = await page.inputValue("#threads");
    await page.setInputFiles("#reference-file", voicePath);
    await page.waitForSelector("#reference-preview:not([hidden])");
    await page.fill("#text", TEXT);
    await page.selectOption("select[name=language]", OPTIONS.language);
    await page.fill("input[name=seed]", String(OPTIONS.seed));
    await page.click("#advanced summary");
    await page.fill("input[name=maxSeconds]", String(OPTIONS.maxSeconds));
    await page.fill("input[name=steps]", String(OPTIONS.steps));
    const runs = [];
    for (const compute of computes) {
      await page.selectOption("select[name=backend]", compute.backend);
      if (compute.threads !== undefined) await page.fill("#threads", String(compute.threads));
      if (compute.dtype !== undefined) await page.selectOption("select[name=dtype]", compute.dtype);
      if (compute.lora) {
        await page.setInputFiles("#lora-file", compute.lora.path === null ? [] : compute.lora.path);
        await page.fill("#lora-strength", String(compute.lora.strength ?? ""));
      }
      const start = performance.now();
      // The button is disabled while the page synthesizes.
      await page.click("#synthesize");
      await page.waitForSelector("#synthesize:not([disabled])", { timeout: 600_000 });
      const seconds = (performance.now() - start) / 1000;
      const error = await page.locator("#error").textContent();
      ok(await page.locator("#error").isHidden(), `the page shows an error: ${error}`);
      const href = await page.locator("#download").getAttribute("href") ?? "";
      ok(href.startsWith("blob:"), `the download link is a blob URL, got ${href}`);
      const bytes = await page.evaluate(
        async (url) => Array.from(new Uint8Array(await (await fetch(url)).arrayBuffer())),
        href,
      );
      runs.push({
        wav: new Uint8Array(bytes),
        seconds,
        phase: await page.locator("#phase").textContent() ?? "",
        progress: await page.locator("#progress").getAttribute("value"),
        backend: await page.locator("#backend").textContent() ?? "",
      });
    }
    return {
      runs,
      info: await page.locator("#reference-info").textContent() ?? "",
      defaultThreads,
      hardwareConcurrency: await page.evaluate(() => navigator.hardwareConcurrency),
      isolated: await page.evaluate(() =>
        (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated
      ),
      singleThreadNote: await page.locator("#single-thread").isVisible(),
      errors: log.errors,
    };
  } finally {
    await browser.close();
  }
}

/** What the page shows whatever the backend: the voice, each run's end, isolation, threads. */
function checkPage(page: Awaited<ReturnType<typeof synthesizeInPage>>): void {
  deepStrictEqual(page.errors, [], "nothing logged as an error");
  ok(page.info.startsWith("voice.wav: 1.2 s, 16000 Hz, 1 channel"), page.info);
  for (const run of page.runs) {
    console.log(`page: ${run.backend} ${run.phase} (${run.seconds.toFixed(1)} s from the click)`);
    ok(run.phase.startsWith("Done: "), `the status reached the end: ${run.phase}`);
    equal(run.progress, "1");
    ok(run.phase.includes(`seed ${OPTIONS.seed}`), run.phase);
  }
  equal(page.isolated, true, "deno task web serves the page cross-origin isolated");
  equal(page.singleThreadNote, false, "no single-thread note on an isolated page");
  equal(page.defaultThreads, String(page.hardwareConcurrency), "threads default to the cores");
}

/**
 * Serves the model files from two other origins as Hugging Face does: `/resolve/<file name>` on
 * the first redirects to the second (its CDN), and both answer with
 * `Access-Control-Allow-Origin: *` and no `Cross-Origin-Resource-Policy`.
 *
 * @param models Paths by `Valle.load` option.
 * @returns The page's query naming the files, and a way to stop.
 */
function startModelHost(models: Record<string, string>) {
  const files = Object.fromEntries(Object.values(models).map((path) => [basename(path), path]));
  const cors = { "access-control-allow-origin": "*" };
  const listen = { hostname: "127.0.0.1", port: 0, onListen() {} };
  const cdn = Deno.serve(listen, async (request) => {
    const path = files[decodeURIComponent(new URL(request.url).pathname.slice(1))];
    if (!path) return new Response("Not found", { status: 404, headers: cors });
    return new Response((await Deno.open(path)).readable, { headers: cors });
  });
  const hub = Deno.serve(listen, (request) => {
    const name = new URL(request.url).pathname.replace(/^\/resolve\//, "");
    const location = `http://127.0.0.1:${cdn.addr.port}/${name}`;
    return new Response(null, { status: 302, headers: { ...cors, location } });
  });
  const query = new URLSearchParams();
  for (const [option, path] of Object.entries(models)) {
    query.set(option, `http://127.0.0.1:${hub.addr.port}/resolve/${basename(path)}`);
  }
  return {
    query,
    shutdown: async () => {
      await hub.shutdown();
      await cdn.shutdown();
    },
  };
}

Deno.test({
  name: "the web demo synthesizes on WebGPU in headless Chromium what the library does in Deno",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withInputs(async ({ tiny, models, voice, voicePath }) => {
      const server = await startWebServer({ port: 0, models });
      const page = await synthesizeInPage(server.url.href, voicePath, [{ backend: "webgpu" }])
        .finally(() => server.shutdown());
      checkPage(page);
      const [run] = page.runs;
      // SwiftShader is software: modality auto speaks AR + NAR there, as on lavapipe in Deno.
      ok(
        /^Running on .+: asked for; modality auto → ar\+nar: NAR-len's full passes are slow on a software adapter; ask for nar-len to use it anyway\.$/
          .test(run.backend),
        run.backend,
      );

      const valle = await Valle.load({ ...tiny, precision: "f32", cache: false });
      const speech = await valle.synthesize(TEXT, { ...OPTIONS, reference: voice }).finally(() =>
        valle.dispose()
      );
      ok(speech.pieces.length === 2 && speech.samples.length > 0);
      const got = decodeWav(run.wav);
      equal(got.sampleRate, 24000);
      equal(got.channels.length, 1);
      equal(got.channels[0].length, speech.samples.length, "the page's WAV has Deno's length");
      // The page's file holds round(clip(x) · 32767) as 16-bit integers; the same integers,
      // unrounded, from Deno's float samples:
      const pageInts = got.channels[0].map((v) => v * 32768);
      const denoReals = speech.samples.map((v) => Math.max(-1, Math.min(1, v)) * 32767);
      // Same codes, same kernels, both f32: what differs is how SwiftShader and llvmpipe compute
      // f32 (exp, erf, inverseSqrt are allowed a few ULP by WGSL, FMA contraction), measured at
      // ≤ 1e-6 on these samples (~30 ULP at 0.3; float WAVs from both agree to 9.8e-7, median
      // 1.1e-7). So each integer is Deno's rounded, or off by one where Deno's value lies within
      // 2e-6 (0.066 LSB) of a rounding boundary; different codes would differ by thousands.
      assertClose(pageInts, denoReals, { atol: 0.5 + 2e-6 * 32767, label: "page vs Deno (LSB)" });
    });
  },
});

Deno.test({
  name: "the web demo synthesizes on CPU threads in Chromium, models from another origin, as Deno",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withInputs(async ({ tiny, models, voice, voicePath }) => {
      const host = startModelHost(models);
      const server = await startWebServer({ port: 0 });
      // "Auto" on SwiftShader: the CPU, and the page says why; then the CPU asked for with
      // other threads, which loads the models again; then the file's f16 weights instead of the
      // CPU's default q8.
      const page = await synthesizeInPage(`${server.url.href}?${host.query}`, voicePath, [
        { backend: "auto", threads: 3 },
        { backend: "cpu", threads: 2 },
        { backend: "cpu", threads: 2, dtype: "f16" },
      ]).finally(() => Promise.all([server.shutdown(), host.shutdown()]));
      checkPage(page);
      const [auto, cpu, f16] = page.runs;
      const threads = (n: number) => `CPU (WebAssembly relaxed SIMD, ${n} threads)`;
      ok(
        auto.backend.startsWith(`Running on ${threads(3)}: the WebGPU adapter is software (`),
        auto.backend,
      );
      ok(auto.phase.endsWith(` s on ${threads(3)}.`), auto.phase);
      const { reason } = defaultDtype({ kind: "cpu" } as Backend, {}, false);
      equal(
        cpu.backend,
        `Running on ${threads(2)}: asked for; weights q8: ${reason}; modality auto → ar+nar: ` +
          "NAR-len's full passes are slow on the CPU; ask for nar-len to use it anyway.",
      );
      ok(!f16.backend.includes("weights q8"), f16.backend);
      ok(cpu.phase.endsWith(` s on ${threads(2)}.`), cpu.phase);

      const valle = await Valle.load({ ...tiny, backend: "cpu", threads: 3, cache: false });
      const speech = await valle.synthesize(TEXT, { ...OPTIONS, reference: voice }).finally(() =>
        valle.dispose()
      );
      ok(speech.pieces.length === 2 && speech.samples.length > 0);
      // The same WebAssembly does the same float operations in the same order in Chromium's V8 as
      // in Deno's, and the thread count changes none (the threads share out whole outputs; Deno
      // writes the same bytes on 1, 2, 3 and 5 threads), so the page's files are Deno's, byte for
      // byte.
      const wav = speech.toWav();
      // The weights choice reaches the load: f16 instead of the default q8 (the tiny model's down
      // projections in Q8_0).
      const float = await Valle.load({ ...tiny, backend: "cpu", dtype: "f16", cache: false });
      const f16Speech = await float.synthesize(TEXT, { ...OPTIONS, reference: voice })
        .finally(() => float.dispose());
      for (const [run, expected] of [[auto, wav], [cpu, wav], [f16, f16Speech.toWav()]] as const) {
        equal(run.wav.length, expected.length, "the page's WAV has Deno's length");
        const first = expected.findIndex((byte, i) => byte !== run.wav[i]);
        equal(first, -1, `the page's WAV differs from Deno's from byte ${first}`);
      }
      ok(f16.wav.some((byte, i) => byte !== wav[i]), "f16 speaks other samples than q8");
    });
  },
});

Deno.test({
  name: "the web demo records a voice from the microphone and decodes it at 24 kHz",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await startWebServer({ port: 0 });
    // Chromium's fake microphone (a beeping tone), allowed without asking.
    const browser = await launchChromium([
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
    ]);
    try {
      const page = await browser.newPage();
      const log = watchPage(page);
      await page.goto(server.url.href);
      await page.click("#record");
      await page.waitForSelector("#record.recording");
      equal(await page.locator("#record").textContent(), "Stop");
      await page.waitForTimeout(1500);
      ok((await page.locator("#record-time").textContent())?.startsWith("● "));
      await page.click("#record");
      await page.waitForSelector("#reference-preview:not([hidden]), #error:not([hidden])");
      const info = await page.locator("#reference-info").textContent() ?? "";
      const match = /^Recording: ([\d.]+) s, 24000 Hz, \d channels?$/.exec(info);
      ok(match, `the recording was decoded at EnCodec's rate: ${info}`);
      const seconds = Number(match[1]);
      ok(seconds >= 1.2 && seconds < 4, `about 1.5 s were recorded, got ${seconds} s`);
      equal(await page.locator("#record").textContent(), "Record again");
      deepStrictEqual(log.errors, []);
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "the web demo speaks with a chosen LoRA file and strength, then without it, as Deno",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withInputs(async ({ dir, tiny, models, voice, voicePath }) => {
      const lora = makeTinyLora(parseSafetensors(tiny.model), { rank: 4, alpha: 8, seed: 2 });
      await Deno.writeFile(`${dir}/lora.sft`, lora.bytes);
      const server = await startWebServer({ port: 0, models });
      const page = await synthesizeInPage(server.url.href, voicePath, [
        { backend: "cpu", threads: 2, lora: { path: `${dir}/lora.sft`, strength: 0.5 } },
        { backend: "cpu", threads: 2, lora: { path: null } },
      ]).finally(() => server.shutdown());
      checkPage(page);

      const valle = await Valle.load({ ...tiny, backend: "cpu", threads: 2, cache: false });
      const settings = { ...OPTIONS, reference: voice };
      try {
        await valle.setLora(lora.bytes, { strength: 0.5 });
        const withLora = (await valle.synthesize(TEXT, settings)).toWav();
        await valle.setLora(null);
        const plain = (await valle.synthesize(TEXT, settings)).toWav();
        notDeepStrictEqual(withLora, plain);
        // The CPU backend writes the same bytes in the page as in Deno (see the test above).
        deepStrictEqual(page.runs[0].wav, withLora);
        deepStrictEqual(page.runs[1].wav, plain);
      } finally {
        await valle.dispose();
      }
    });
  },
});
