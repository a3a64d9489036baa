/// <reference lib="dom" />
/**
 * The browser demo's page: choose or record a voice, type text, synthesize with VALL-E on the
 * GPU or the CPU, hear each sentence as soon as it is ready, then replay or download the whole as
 * WAV. The models load on the first synthesis and stay loaded until another backend, thread
 * count or weight storage is chosen. The "train a voice" panel (train.ts) fine-tunes a LoRA on
 * the same models. Bundled and served by `deno task web` (tools/serve_web.ts).
 */

import {
  joinPieces,
  Speech,
  type SpeechPiece,
  type SynthesisProgress,
  Valle,
  type WavAudio,
} from "../../mod.ts";
import { showError } from "./errors.ts";
import { type ComputeChoice, readCompute, readForm, showDefaults } from "./form.ts";
import { LoraChoice } from "./lora.ts";
import { modelOptions } from "./models.ts";
import { objectUrl } from "./object_urls.ts";
import { PiecePlayer } from "./player.ts";
import { progressDescriber } from "./progress.ts";
import { decodeAudioFile } from "./reference.ts";
import { type Recording, startRecording } from "./recorder.ts";
import { TrainPanel } from "./train.ts";

function element<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

const ui = {
  form: element<HTMLFormElement>("form"),
  file: element<HTMLInputElement>("reference-file"),
  record: element<HTMLButtonElement>("record"),
  recordTime: element<HTMLSpanElement>("record-time"),
  referenceInfo: element<HTMLParagraphElement>("reference-info"),
  referencePreview: element<HTMLAudioElement>("reference-preview"),
  synthesize: element<HTMLButtonElement>("synthesize"),
  cancel: element<HTMLButtonElement>("cancel"),
  progress: element<HTMLProgressElement>("progress"),
  phase: element<HTMLParagraphElement>("phase"),
  error: element<HTMLParagraphElement>("error"),
  noWebGpu: element<HTMLParagraphElement>("no-webgpu"),
  threads: element<HTMLInputElement>("threads"),
  singleThread: element<HTMLSpanElement>("single-thread"),
  backend: element<HTMLParagraphElement>("backend"),
  result: element<HTMLElement>("result"),
  player: element<HTMLAudioElement>("player"),
  download: element<HTMLAnchorElement>("download"),
};

/** The voice, once a clip is chosen or recorded. */
let reference: WavAudio | undefined;
/** The loaded models, kept across syntheses, and the choice they were loaded with. */
let loaded: { choice: string; valle: Promise<Valle> } | undefined;
/** The synthesis in progress. */
let running: AbortController | undefined;
/** Where progress goes: the synthesis in progress (loading Vocos later reports here too). */
let report: (progress: SynthesisProgress) => void = () => {};
let recording: Recording | undefined;
let recordTimer: ReturnType<typeof setInterval> | undefined;
const player = new PiecePlayer();
const lora = new LoraChoice(element("lora-file"), element("lora-strength"));

function setStatus(text: string, fraction?: number): void {
  ui.phase.textContent = text;
  if (fraction === undefined) ui.progress.removeAttribute("value");
  else ui.progress.value = fraction;
}

/** Decodes a chosen or recorded clip and makes it the voice. */
async function useClip(clip: Blob, name: string): Promise<void> {
  ui.error.hidden = true;
  reference = undefined;
  ui.referencePreview.hidden = true;
  ui.referenceInfo.textContent = `Reading ${name}…`;
  try {
    reference = await decodeAudioFile(clip, name);
  } catch (e) {
    ui.referenceInfo.textContent = "No clip: the model picks a voice.";
    throw e;
  }
  const seconds = reference.channels[0].length / reference.sampleRate;
  ui.referenceInfo.textContent = `${name}: ${seconds.toFixed(1)} s, ${reference.sampleRate} Hz, ` +
    `${reference.channels.length} channel${reference.channels.length > 1 ? "s" : ""}`;
  ui.referencePreview.src = objectUrl("reference", clip);
  ui.referencePreview.hidden = false;
}

async function toggleRecording(): Promise<void> {
  if (!recording) {
    recording = await startRecording();
    const startedAt = recording.startedAt;
    ui.file.value = "";
    ui.record.textContent = "Stop";
    ui.record.classList.add("recording");
    recordTimer = setInterval(() => {
      ui.recordTime.textContent = `● ${((performance.now() - startedAt) / 1000).toFixed(1)} s`;
    }, 100);
    return;
  }
  const finished = recording;
  recording = undefined;
  clearInterval(recordTimer);
  ui.record.textContent = "Record again";
  ui.record.classList.remove("recording");
  ui.recordTime.textContent = "";
  await useClip(await finished.stop(), "Recording");
}

/**
 * The models on the chosen backend, loading them on first use and again when the choice changes
 * (the old ones are disposed first); a failed or cancelled load is retried next time.
 */
async function loadValle(compute: ComputeChoice, signal: AbortSignal): Promise<Valle> {
  // Threads matter to the CPU backend only.
  const { threads, ...gpu } = compute;
  const choice = JSON.stringify(compute.backend === "webgpu" ? gpu : { ...gpu, threads });
  if (loaded && loaded.choice !== choice) {
    const old = loaded.valle;
    loaded = undefined;
    await old.then((v) => v.dispose(), () => {});
  }
  if (!loaded) {
    ui.backend.textContent = "Choosing the backend…";
    const valle = Valle.load({
      ...modelOptions(new URL(location.href)),
      ...compute,
      signal,
      onProgress: (p) => {
        if (p.file === "backend") ui.backend.textContent = `Running on ${p.backend}.`;
        report(p);
      },
    });
    const entry = { choice, valle };
    loaded = entry;
    valle.catch(() => {
      if (loaded !== entry) return;
      loaded = undefined;
      ui.backend.textContent = "The backend is chosen when the models load.";
    });
  }
  return await loaded.valle;
}

async function synthesize(): Promise<void> {
  const { text, options, play } = readForm(ui.form);
  const compute = readCompute(ui.form);
  const controller = new AbortController();
  running = controller;
  ui.synthesize.disabled = true;
  ui.cancel.disabled = false;
  ui.error.hidden = true;
  ui.result.hidden = true;
  if (play) player.start();
  const describe = progressDescriber();
  report = (p) => {
    const view = describe(p);
    setStatus(view.text, view.fraction);
  };
  const started = performance.now();
  try {
    setStatus("Starting…");
    const engine = await loadValle(compute, controller.signal);
    await lora.apply(engine, (text) => setStatus(text));
    const pieces: SpeechPiece[] = [];
    const stream = engine.stream(text, {
      ...options,
      reference,
      signal: controller.signal,
      onProgress: report,
    });
    for await (const piece of stream) {
      pieces.push(piece);
      if (play) player.play(piece.samples, piece.sampleRate);
    }
    // The same joins as `Valle.synthesize`.
    const rate = pieces[0]?.sampleRate ?? engine.encodec.config.sampleRate;
    const speech = new Speech(joinPieces(pieces.map((p) => p.samples), rate), rate, pieces);
    const url = objectUrl("speech", speech.toBlob());
    ui.player.src = url;
    ui.download.href = url;
    ui.result.hidden = false;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const sentences = `${pieces.length} sentence${pieces.length > 1 ? "s" : ""}`;
    setStatus(
      `Done: ${speech.duration.toFixed(2)} s of audio, ${sentences}, seed ${options.seed}, ` +
        `${seconds} s on ${engine.backend.description}.`,
      1,
    );
  } catch (e) {
    if (!controller.signal.aborted) throw e;
    player.stop();
    setStatus("Cancelled.", 0);
  } finally {
    running = undefined;
    report = () => {};
    ui.synthesize.disabled = false;
    ui.cancel.disabled = true;
  }
}

/** Runs an event handler, showing what it throws. */
function guarded(handler: () => Promise<void>): () => void {
  return () => {
    handler().catch((e) => {
      setStatus("Failed.", 0);
      showError(ui.error, e);
    });
  };
}

showDefaults(ui.form);
ui.threads.value = String(navigator.hardwareConcurrency || 1);
ui.singleThread.hidden = crossOriginIsolated;
ui.noWebGpu.hidden = "gpu" in navigator;
ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(synthesize)();
});
ui.cancel.addEventListener("click", () => running?.abort());
ui.record.addEventListener("click", guarded(toggleRecording));
ui.file.addEventListener(
  "change",
  guarded(async () => {
    const file = ui.file.files?.[0];
    if (file) await useClip(file, file.name);
  }),
);
new TrainPanel(document, {
  load: (signal) => loadValle(readCompute(ui.form), signal),
  lora,
  options: () => readForm(ui.form).options,
});
