/// <reference lib="dom" />
/**
 * The demo's "train a voice" panel: clips of one voice (WAV files, with a `.txt` of the same name
 * filling the transcript, or recordings) with what is said in each; a LoRA trained on them with
 * `Valle.trainLora` on the loaded models, its loss plotted live; Stop aborts the run; Listen
 * speaks with the trained LoRA merged (a training clip as the voice); the `.sft` is downloaded
 * from a link.
 */

import { type SynthesizeOptions, type Valle, ValleError, type WavAudio } from "../../mod.ts";
import type { TrainProgress } from "../../src/train/mod.ts";
import type { LoraChoice } from "./lora.ts";
import { showError } from "./errors.ts";
import { LossPlot } from "./loss_plot.ts";
import { objectUrl } from "./object_urls.ts";
import { decodeAudioFile } from "./reference.ts";
import { type Recording, startRecording } from "./recorder.ts";

/** What the panel needs of the rest of the page. */
export interface TrainPanelHooks {
  /** The models on the page's compute choice, loaded on first use. */
  load(signal: AbortSignal): Promise<Valle>;
  /** The page's LoRA choice: training removes any LoRA, Listen merges the trained one. */
  lora: LoraChoice;
  /** The page's synthesis options (language, seed, length, sampler), read when needed. */
  options(): SynthesizeOptions;
}

/** One clip in the list. */
interface Clip {
  name: string;
  audio: WavAudio;
  transcript: HTMLInputElement;
  row: HTMLLIElement;
}

/** The name the trained LoRA is saved under (`config.name` and the download's file name). */
const LORA_NAME = "my-voice";

/**
 * The panel, wired to its elements (ids starting with `train-`).
 *
 * @example
 * ```ts ignore
 * new TrainPanel(document, { load: (signal) => loadValle(signal), lora, options: () => ({}) });
 * ```
 */
export class TrainPanel {
  #hooks: TrainPanelHooks;
  #ui: Record<string, HTMLElement>;
  #plot: LossPlot;
  #clips: Clip[] = [];
  #recording?: Recording;
  #recordings = 0;
  #timer?: ReturnType<typeof setInterval>;
  #running?: AbortController;
  #lora?: Uint8Array<ArrayBuffer>;

  /**
   * @param root The document holding the panel.
   * @param hooks The models, the LoRA choice and the synthesis options.
   */
  constructor(root: Document, hooks: TrainPanelHooks) {
    this.#hooks = hooks;
    const ids = ["files", "record", "record-time", "clips", "steps", "rank", "lr", "start", "stop"];
    ids.push("status", "error", "result", "text", "listen", "player", "download", "plot");
    this.#ui = Object.fromEntries(ids.map((id) => [id, root.getElementById(`train-${id}`)!]));
    this.#plot = new LossPlot(this.#ui.plot as unknown as SVGSVGElement);
    const on = (id: string, event: string, handler: () => Promise<void>) =>
      this.#ui[id].addEventListener(event, () => {
        this.#ui.error.hidden = true;
        handler().catch((e) => this.#fail(e));
      });
    on("files", "change", () => this.#addFiles());
    on("record", "click", () => this.#toggleRecording());
    on("start", "click", () => this.#train());
    on("listen", "click", () => this.#listen());
    this.#ui.stop.addEventListener("click", () => this.#running?.abort());
  }

  /** Adds the chosen audio files; a chosen `name.txt` fills the transcript of `name.wav`. */
  async #addFiles(): Promise<void> {
    const input = this.#ui.files as HTMLInputElement;
    const files = [...input.files ?? []];
    const stem = (name: string) => name.replace(/\.[^.]*$/, "");
    const texts = new Map<string, string>();
    for (const file of files.filter((f) => f.name.toLowerCase().endsWith(".txt"))) {
      texts.set(stem(file.name), (await file.text()).trim());
    }
    for (const file of files.filter((f) => !f.name.toLowerCase().endsWith(".txt"))) {
      this.#add(
        stem(file.name),
        await decodeAudioFile(file, file.name),
        file,
        texts.get(stem(file.name)),
      );
    }
    input.value = "";
  }

  async #toggleRecording(): Promise<void> {
    const button = this.#ui.record;
    if (!this.#recording) {
      this.#recording = await startRecording();
      const startedAt = this.#recording.startedAt;
      button.textContent = "Stop recording";
      button.classList.add("recording");
      this.#timer = setInterval(() => {
        this.#ui["record-time"].textContent = `● ${
          ((performance.now() - startedAt) / 1000).toFixed(1)
        } s`;
      }, 100);
      return;
    }
    const recording = this.#recording;
    this.#recording = undefined;
    clearInterval(this.#timer);
    button.textContent = "Record a clip";
    button.classList.remove("recording");
    this.#ui["record-time"].textContent = "";
    const blob = await recording.stop();
    const name = `recording-${++this.#recordings}`;
    this.#add(name, await decodeAudioFile(blob, name), blob);
  }

  /** A row for a clip: its name and length, a player, the transcript field and a remove button. */
  #add(wanted: string, audio: WavAudio, blob: Blob, text = ""): void {
    let name = wanted;
    for (let n = 2; this.#clips.some((c) => c.name === name); n++) name = `${wanted}-${n}`;
    const row = document.createElement("li");
    const seconds = audio.channels[0].length / audio.sampleRate;
    const label = Object.assign(document.createElement("span"), {
      className: "clip-name",
      textContent: `${name} (${seconds.toFixed(1)} s)`,
    });
    const player = Object.assign(document.createElement("audio"), {
      controls: true,
      src: objectUrl(`train-clip-${name}`, blob),
    });
    const transcript = Object.assign(document.createElement("input"), {
      type: "text",
      value: text,
      placeholder: "What is said in this clip",
      className: "transcript",
    });
    const remove = Object.assign(document.createElement("button"), {
      type: "button",
      textContent: "Remove",
    });
    const clip = { name, audio, transcript, row };
    remove.addEventListener("click", () => {
      this.#clips = this.#clips.filter((c) => c !== clip);
      row.remove();
    });
    row.append(label, player, transcript, remove);
    this.#ui.clips.append(row);
    this.#clips.push(clip);
  }

  async #train(): Promise<void> {
    if (this.#clips.length === 0) {
      throw new ValleError("Cannot train: add clips of the voice first (files or recordings)");
    }
    const number = (id: string) => {
      const value = (this.#ui[id] as HTMLInputElement).value;
      return value === "" ? undefined : Number(value);
    };
    const controller = new AbortController();
    this.#running = controller;
    this.#busy(true);
    this.#ui.result.hidden = true;
    this.#plot.reset();
    let last: TrainProgress | undefined;
    try {
      this.#status("Loading the models…");
      const valle = await this.#hooks.load(controller.signal);
      this.#status("Removing any LoRA: training starts from the base model…");
      await this.#hooks.lora.setOther(valle, null);
      const result = await valle.trainLora(
        this.#clips.map((c) => ({ name: c.name, audio: c.audio, text: c.transcript.value.trim() })),
        {
          language: this.#hooks.options().language,
          steps: number("steps"),
          rank: number("rank"),
          learningRate: number("lr"),
          signal: controller.signal,
          onPrepare: (done, total, name) =>
            this.#status(`Encoding the clips: ${name} (${done} of ${total})…`),
          onProgress: (p) => {
            last = p;
            this.#plot.add(p);
            this.#status(
              `Step ${p.step} of ${p.steps}: loss ${p.loss.toFixed(3)}, accuracy ` +
                `${(100 * p.accuracy).toFixed(1)}%, ${p.tokensPerSecond.toFixed(0)} tokens/s, ` +
                `${(p.etaMs / 1000).toFixed(0)} s left`,
            );
          },
        },
      );
      this.#lora = result.lora.toFile({ name: LORA_NAME });
      const link = this.#ui.download as HTMLAnchorElement;
      link.href = objectUrl("train-lora", new Blob([this.#lora]));
      link.download = `${LORA_NAME}.sft`;
      const skipped = result.skipped.map((p) => ` Left out ${p.name}: ${p.reason}.`).join("");
      const { rank, alpha } = result.lora.layout;
      this.#status(
        `Trained: a rank-${rank} LoRA (alpha ${alpha}) after ${last?.step} steps on ` +
          `${result.trained} clip(s), ${result.heldOut} held out; loss ${last?.loss.toFixed(3)}.` +
          skipped,
      );
      this.#ui.result.hidden = false;
    } catch (e) {
      if (!controller.signal.aborted) throw e;
      this.#status(`Stopped${last ? ` at step ${last.step} of ${last.steps}` : ""}: no LoRA.`);
    } finally {
      this.#running = undefined;
      this.#busy(false);
    }
  }

  /** Speaks the panel's text with the trained LoRA merged, the first clip as the voice. */
  async #listen(): Promise<void> {
    const controller = new AbortController();
    this.#running = controller;
    this.#busy(true);
    try {
      this.#status("Speaking with the trained LoRA…");
      const valle = await this.#hooks.load(controller.signal);
      await this.#hooks.lora.setOther(valle, this.#lora!);
      const speech = await valle.synthesize((this.#ui.text as HTMLTextAreaElement).value, {
        ...this.#hooks.options(),
        reference: this.#clips[0]?.audio,
        signal: controller.signal,
      });
      const player = this.#ui.player as HTMLAudioElement;
      player.src = objectUrl("train-speech", speech.toBlob());
      player.hidden = false;
      this.#status(`Spoke ${speech.duration.toFixed(2)} s with the trained LoRA.`);
      await player.play().catch(() => {}); // autoplay may be refused; the controls remain
    } catch (e) {
      if (!controller.signal.aborted) throw e;
      this.#status("Stopped.");
    } finally {
      this.#running = undefined;
      this.#busy(false);
    }
  }

  #busy(busy: boolean): void {
    for (const id of ["start", "listen", "files"]) {
      (this.#ui[id] as HTMLButtonElement).disabled = busy;
    }
    (this.#ui.stop as HTMLButtonElement).disabled = !busy;
  }

  #status(text: string): void {
    this.#ui.status.textContent = text;
  }

  #fail(error: unknown): void {
    this.#status("Failed.");
    showError(this.#ui.error, error);
  }
}
