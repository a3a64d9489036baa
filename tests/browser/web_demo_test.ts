/**
 * The browser demo end to end: tools/serve_web.ts serves examples/web/ with the tiny models,
 * headless Chromium (SwiftShader WebGPU, f32 weights) uses the page as a person would (a WAV as
 * the voice, text, language, seed, a short length), and the WAV behind its download link is
 * compared with the same synthesis in Deno through the library, with f32 weights as well.
 */

import { deepStrictEqual, equal, ok } from "node:assert";
import { decodeWav, encodeWav } from "../../src/audio/wav.ts";
import { Valle } from "../../src/tts/valle.ts";
import { startWebServer } from "../../tools/serve_web.ts";
import { assertClose } from "../_helpers.ts";
import { referenceClip, tinyModels } from "../_tiny_models.ts";
import { launchChromium, watchPage } from "./harness.ts";

const TEXT = "Hello there. How are you?";
/** 0.4 s (30 frames) and 3 NAR-len steps per sentence keep SwiftShader and lavapipe quick. */
const OPTIONS = { language: "en", seed: 5, maxSeconds: 0.4, steps: 3 } as const;

/** Writes the tiny models and the voice clip as files, as a user would have them. */
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
  return { tiny, models, voice, voicePath: `${dir}/voice.wav` };
}

/** Serves the demo, synthesizes through its form, returns the downloaded WAV and the status. */
async function synthesizeInPage(models: Record<string, string>, voicePath: string) {
  const server = await startWebServer({ port: 0, models });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const log = watchPage(page);
    await page.goto(server.url.href);
    await page.setInputFiles("#reference-file", voicePath);
    await page.waitForSelector("#reference-preview:not([hidden])");
    await page.fill("#text", TEXT);
    await page.selectOption("select[name=language]", OPTIONS.language);
    await page.fill("input[name=seed]", String(OPTIONS.seed));
    await page.click("#advanced summary");
    await page.fill("input[name=maxSeconds]", String(OPTIONS.maxSeconds));
    await page.fill("input[name=steps]", String(OPTIONS.steps));
    const start = performance.now();
    await page.click("#synthesize");
    await page.waitForSelector("#result:not([hidden]), #error:not([hidden])", {
      timeout: 600_000,
    });
    const seconds = (performance.now() - start) / 1000;
    const error = await page.locator("#error").textContent();
    ok(await page.locator("#error").isHidden(), `the page shows an error: ${error}`);
    const href = await page.locator("#download").getAttribute("href") ?? "";
    ok(href.startsWith("blob:"), `the download link is a blob URL, got ${href}`);
    const bytes = await page.evaluate(
      async (url) => Array.from(new Uint8Array(await (await fetch(url)).arrayBuffer())),
      href,
    );
    return {
      wav: new Uint8Array(bytes),
      seconds,
      phase: await page.locator("#phase").textContent() ?? "",
      progress: await page.locator("#progress").getAttribute("value"),
      info: await page.locator("#reference-info").textContent() ?? "",
      errors: log.errors,
    };
  } finally {
    await browser.close();
    await server.shutdown();
  }
}

Deno.test({
  name: "the web demo synthesizes in headless Chromium what the library synthesizes in Deno",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "valle-web-demo-" });
    try {
      const { tiny, models, voice, voicePath } = await writeInputs(dir);
      const page = await synthesizeInPage(models, voicePath);
      console.log(`page: ${page.phase} (${page.seconds.toFixed(1)} s from the click)`);
      deepStrictEqual(page.errors, [], "nothing logged as an error");
      ok(page.info.startsWith("voice.wav: 1.2 s, 16000 Hz, 1 channel"), page.info);
      ok(page.phase.startsWith("Done: "), `the status reached the end: ${page.phase}`);
      equal(page.progress, "1");
      ok(page.phase.includes(`seed ${OPTIONS.seed}`), page.phase);

      const valle = await Valle.load({ ...tiny, precision: "f32", cache: false });
      const speech = await valle.synthesize(TEXT, { ...OPTIONS, reference: voice }).finally(() =>
        valle.dispose()
      );
      const got = decodeWav(page.wav);
      equal(got.sampleRate, 24000);
      equal(got.channels.length, 1);
      equal(got.channels[0].length, speech.samples.length, "the page's WAV has Deno's length");
      ok(speech.pieces.length === 2 && speech.samples.length > 0);
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
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
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
