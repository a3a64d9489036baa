/**
 * End to end: a paragraph through `Valle.stream` with the default options (real-time factor,
 * time to first audio), then its first piece again with `batchSize: 1` (time to first audio: the
 * stream stops there, to keep the run short). The default batches the pieces, but a stream
 * speaks its first piece alone, so the two first-audio times should match. Called by
 * `deno task bench`.
 */

import type { Backend } from "../src/backends/backend.ts";
import type { SynthesizeOptions } from "../src/tts/options.ts";
import { Valle } from "../src/tts/valle.ts";

/** The paragraph's sentences (with random weights only their phoneme counts matter). */
const SENTENCES = [
  "The quick brown fox jumps over the lazy dog.",
  "She sells sea shells by the sea shore.",
  "A stitch in time saves nine.",
  "Every cloud has a silver lining.",
];

/** What to speak, and how. */
export interface EndToEndSettings {
  /** `"nar-len"` or `"ar+nar"`. */
  modality: "nar-len" | "ar+nar";
  /** NAR-len demasking steps. */
  steps: number;
  /** The longest a piece may be (random weights rarely stop before it). */
  maxSeconds: number;
  /** Sentences of the paragraph, 1 to 4. */
  sentences: number;
}

/** One timed stream. */
export interface StreamFigures {
  /** `"default (largest batch: N)"` or the `batchSize` given. */
  batchSize: string;
  /** Pieces streamed (the `batchSize: 1` run stops after the first). */
  pieces: number;
  /** Seconds of audio streamed. */
  audioSeconds: number;
  /** Wall time of the stream, ms. */
  ms: number;
  /** Real-time factor: wall time over audio time. */
  rtf: number;
  /** Wall time until the first piece came out, ms. */
  firstAudioMs: number;
}

/** Everything {@linkcode benchEndToEnd} measures. */
export interface EndToEndFigures {
  /** The paragraph spoken. */
  text: string;
  /** Its modality. */
  modality: "nar-len" | "ar+nar";
  /** NAR-len steps, or "-" for AR + NAR. */
  steps: number | "-";
  /** The whole paragraph with the default options. */
  defaultBatch: StreamFigures;
  /** Its first piece with `batchSize: 1`. */
  batchOne: StreamFigures;
}

/**
 * Streams the paragraph on `backend` with the given weight files.
 *
 * @example
 * ```ts ignore
 * const figures = await benchEndToEnd(backend, files, {
 *   modality: "ar+nar", steps: 50, maxSeconds: 3, sentences: 4,
 * });
 * console.log(figures.defaultBatch.firstAudioMs, figures.batchOne.firstAudioMs);
 * ```
 */
export async function benchEndToEnd(
  backend: Backend,
  files: { valle: string; encodec: string; vocos: string },
  settings: EndToEndSettings,
): Promise<EndToEndFigures> {
  const valle = await Valle.load({
    model: files.valle,
    codec: files.encodec,
    vocoder: files.vocos,
    backend,
    cache: false,
  });
  try {
    const text = SENTENCES.slice(0, settings.sentences).join(" ");
    const { modality, steps, maxSeconds } = settings;
    const options = { language: "en" as const, seed: 1, modality, steps, maxSeconds };
    await valle.synthesize("Hi.", { ...options, steps: 1, maxSeconds: 0.25 }); // warm-up
    return {
      text,
      modality,
      steps: modality === "nar-len" ? steps : "-",
      defaultBatch: await timeStream(valle, text, options),
      batchOne: await timeStream(valle, text, { ...options, batchSize: 1 }, 1),
    };
  } finally {
    await valle.dispose();
  }
}

/** Streams `text`, up to `pieces` pieces, timed. */
async function timeStream(
  valle: Valle,
  text: string,
  options: SynthesizeOptions,
  pieces = Infinity,
): Promise<StreamFigures> {
  let largest = 0;
  const onProgress = ({ rows }: { rows?: number }) => (largest = Math.max(largest, rows ?? 1));
  let firstAudioMs = 0;
  let seconds = 0;
  let streamed = 0;
  const start = performance.now();
  for await (const piece of valle.stream(text, { ...options, onProgress })) {
    firstAudioMs ||= performance.now() - start;
    seconds += piece.samples.length / piece.sampleRate;
    if (++streamed === pieces) break;
  }
  const ms = performance.now() - start;
  return {
    batchSize: options.batchSize === undefined
      ? `default (largest batch: ${largest})`
      : String(options.batchSize),
    pieces: streamed,
    audioSeconds: +seconds.toFixed(2),
    ms: Math.round(ms),
    rtf: +(ms / 1000 / seconds).toFixed(4),
    firstAudioMs: Math.round(firstAudioMs),
  };
}
