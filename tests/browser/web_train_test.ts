/**
 * The web demo's "train a voice" panel end to end in headless Chromium (tools/serve_web.ts with
 * the tiny models, the CPU backend): two clips uploaded with their transcripts train a LoRA whose
 * loss is plotted step by step and whose downloaded `.sft` is, byte for byte, the one the library
 * trains in Deno from the same clips; Listen speaks what Deno speaks with that LoRA merged; a clip
 * recorded from Chromium's fake microphone (fed from a WAV) joins them for a second run; Stop
 * ends a long run without a LoRA.
 */

import { deepStrictEqual, equal, notDeepStrictEqual, ok } from "node:assert";
import type { Page } from "playwright-core";
import { decodeWav, encodeWav } from "../../src/audio/wav.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { Valle } from "../../src/tts/valle.ts";
import { startWebServer } from "../../tools/serve_web.ts";
import { POLICY_MODULES } from "../_tiny_lora.ts";
import { tinyModels } from "../_tiny_models.ts";
import { voiced } from "../train/_data.ts";
import { launchChromium, watchPage } from "./harness.ts";

const TRANSCRIPTS = ["Hello there, this is me.", "The weather is fine today."];
/** The page's synthesis choices, as the other demo test makes them: short and quick. */
const OPTIONS = { language: "en", seed: 5, maxSeconds: 0.4, steps: 3 } as const;
const SAY = "This is my voice.";

/** The bytes behind a blob URL of the page. */
async function blobBytes(page: Page, url: string): Promise<Uint8Array> {
  ok(url.startsWith("blob:"), `a blob URL, got ${url}`);
  const bytes = await page.evaluate(
    async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer())),
    url,
  );
  return new Uint8Array(bytes);
}

/** Clicks Train and waits for the run to end (the button is disabled meanwhile). */
async function train(page: Page): Promise<string> {
  await page.click("#train-start");
  await page.waitForSelector("#train-start:not([disabled])", { timeout: 300_000 });
  const error = await page.locator("#train-error").textContent();
  ok(await page.locator("#train-error").isHidden(), `the panel shows an error: ${error}`);
  return await page.locator("#train-status").textContent() ?? "";
}

/** The loss plot's points, as [x, y] in its viewBox. */
async function plotPoints(page: Page): Promise<number[][]> {
  const points = await page.locator("#train-plot polyline.loss").getAttribute("points") ?? "";
  return points.split(" ").filter(Boolean).map((p) => p.split(",").map(Number));
}

Deno.test({
  name:
    "the web demo trains a voice in Chromium from uploaded and recorded clips, plots the loss, speaks and downloads the LoRA Deno trains",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "valle-web-train-" });
    const tiny = await tinyModels();
    const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
    const models: Record<string, string> = {};
    for (
      const [option, name, bytes] of [
        ["model", "model.sft", tiny.model],
        ["codec", "encodec.safetensors", tiny.codec],
        ["codecConfig", "encodec.json", json(tiny.codecConfig)],
        ["vocoder", "vocos.safetensors", tiny.vocoder],
        ["vocoderConfig", "vocos.json", json(tiny.vocoderConfig)],
      ] as const
    ) {
      models[option] = `${dir}/${name}`;
      await Deno.writeFile(models[option], bytes);
    }
    const clips = TRANSCRIPTS.map((_, i) =>
      encodeWav([voiced(1.3 + 0.2 * i, 16000, 110 + 30 * i)], 16000)
    );
    const files: string[] = [];
    for (const [i, text] of TRANSCRIPTS.entries()) {
      await Deno.writeFile(`${dir}/clip${i}.wav`, clips[i]);
      await Deno.writeTextFile(`${dir}/clip${i}.txt`, text);
      files.push(`${dir}/clip${i}.wav`, `${dir}/clip${i}.txt`);
    }
    // The fake microphone plays this voiced sound, over and over.
    await Deno.writeFile(`${dir}/mic.wav`, encodeWav([voiced(2, 48000, 140)], 48000));

    const server = await startWebServer({ port: 0, models });
    const browser = await launchChromium([
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      `--use-file-for-fake-audio-capture=${dir}/mic.wav`,
    ]);
    let first: Uint8Array, second: Uint8Array, speech: Uint8Array, stopped: string;
    const page = await browser.newPage();
    const log = watchPage(page);
    try {
      await page.goto(server.url.href);
      await page.selectOption("select[name=backend]", "cpu");
      await page.fill("#threads", "2");
      await page.selectOption("select[name=language]", OPTIONS.language);
      await page.fill("input[name=seed]", String(OPTIONS.seed));
      await page.click("#advanced summary");
      await page.fill("input[name=maxSeconds]", String(OPTIONS.maxSeconds));
      await page.fill("input[name=steps]", String(OPTIONS.steps));

      // Two clips uploaded with their transcripts.
      await page.setInputFiles("#train-files", files);
      await page.waitForSelector("#train-clips li:nth-child(2)");
      const transcripts = page.locator("#train-clips .transcript");
      deepStrictEqual(
        await Promise.all(TRANSCRIPTS.map((_, i) => transcripts.nth(i).inputValue())),
        TRANSCRIPTS,
      );
      deepStrictEqual(await page.locator("#train-clips .clip-name").allTextContents(), [
        "clip0 (1.3 s)",
        "clip1 (1.5 s)",
      ]);
      await page.fill("#train-steps", "3");
      await page.fill("#train-rank", "4");
      const status = await train(page);
      equal(
        status,
        "Trained: a rank-4 LoRA (alpha 4) after 3 steps on 2 clip(s), 0 held out; loss " +
          status.split("loss ")[1],
      );
      const points = await plotPoints(page);
      equal(points.length, 3, "a point per step");
      ok(points.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y)), String(points));
      ok(points[0][0] < points[1][0] && points[1][0] < points[2][0], "steps left to right");
      equal(await page.locator("#train-plot text.steps").textContent(), "step 3/3");
      equal(await page.locator("#train-download").getAttribute("download"), "my-voice.sft");
      first = await blobBytes(
        page,
        await page.locator("#train-download").getAttribute("href") ?? "",
      );

      // Listen: the panel's text with the trained LoRA merged, the first clip as the voice.
      await page.fill("#train-text", SAY);
      await page.click("#train-listen");
      await page.waitForSelector("#train-player:not([hidden])", { timeout: 300_000 });
      await page.waitForSelector("#train-listen:not([disabled])");
      ok(
        await page.locator("#train-error").isHidden(),
        await page.locator("#train-error").textContent() ?? "",
      );
      speech = await blobBytes(page, await page.locator("#train-player").getAttribute("src") ?? "");

      // A recorded clip joins them, with its transcript typed; training again.
      await page.click("#train-record");
      await page.waitForSelector("#train-record.recording");
      await page.waitForTimeout(1600);
      await page.click("#train-record");
      await page.waitForSelector("#train-clips li:nth-child(3)");
      const recorded =
        await page.locator("#train-clips li:nth-child(3) .clip-name").textContent() ?? "";
      const seconds = Number(/^recording-1 \(([\d.]+) s\)$/.exec(recorded)?.[1]);
      ok(seconds >= 1.2 && seconds < 4, `about 1.6 s recorded: ${recorded}`);
      await page.fill("#train-clips li:nth-child(3) .transcript", "A clip I recorded.");
      const again = await train(page);
      ok(again.startsWith("Trained: a rank-4 LoRA (alpha 4) after 3 steps on 3 clip(s)"), again);
      equal((await plotPoints(page)).length, 3, "the plot starts over");
      second = await blobBytes(
        page,
        await page.locator("#train-download").getAttribute("href") ?? "",
      );

      // Stop ends a long run: no LoRA.
      await page.fill("#train-steps", "100000");
      await page.click("#train-start");
      await page.locator("#train-status", { hasText: /^Step / }).waitFor();
      await page.click("#train-stop");
      await page.waitForSelector("#train-start:not([disabled])");
      stopped = await page.locator("#train-status").textContent() ?? "";
      ok(await page.locator("#train-result").isHidden(), "no LoRA to listen to or download");
      deepStrictEqual(log.errors, [], "nothing logged as an error");
    } finally {
      await browser.close();
      await server.shutdown();
    }
    ok(/^Stopped at step \d+ of 100000: no LoRA\.$/.test(stopped), stopped);

    // The downloads are LoRAs in upstream's layout, rank 4.
    const base = parseSafetensors(tiny.model);
    const layers = [...new Set(base.names.map((n) => /^model\.layers\.(\d+)\./.exec(n)?.[1]))]
      .filter((l) => l !== undefined);
    const keys = layers.flatMap((l) =>
      POLICY_MODULES.flatMap((m) => ["lora_A", "lora_B"].map((f) => `model.layers.${l}.${m}.${f}`))
    ).sort();
    for (const bytes of [first, second]) {
      const st = parseSafetensors(bytes);
      deepStrictEqual([...st.names].sort(), keys);
      const config = JSON.parse(st.metadata.config);
      deepStrictEqual([config.name, config.rank, config.alpha], ["my-voice", 4, 4]);
    }
    notDeepStrictEqual(second, first, "the recorded clip changed the LoRA");

    // Deno trains the same LoRA from the same clips (the CPU backend's WebAssembly computes the
    // same in Chromium as in Deno), and speaks the same with it.
    const valle = await Valle.load({ ...tiny, backend: "cpu", threads: 2, cache: false });
    try {
      const audio = clips.map((bytes) => decodeWav(bytes));
      const { lora } = await valle.trainLora(
        TRANSCRIPTS.map((text, i) => ({ name: `clip${i}`, audio: audio[i], text })),
        { language: "en", steps: 3, rank: 4 },
      );
      const file = lora.toFile({ name: "my-voice" });
      deepStrictEqual(first, file);
      await valle.setLora(file);
      const deno = await valle.synthesize(SAY, { ...OPTIONS, reference: audio[0] });
      ok(deno.samples.length > 0);
      deepStrictEqual(speech, deno.toWav());
    } finally {
      await valle.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
