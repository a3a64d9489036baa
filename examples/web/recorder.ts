/// <reference lib="dom" />
/** Records a reference clip from the microphone (`getUserMedia` and `MediaRecorder`). */

import { ValleError } from "../../mod.ts";

/** A recording in progress. */
export interface Recording {
  /** When it started (`performance.now()` milliseconds). */
  readonly startedAt: number;
  /** Stops recording and releases the microphone; resolves to the recorded file. */
  stop(): Promise<Blob>;
}

/**
 * Asks for the microphone and starts recording. Echo cancellation, noise suppression and
 * automatic gain are turned off: the model should hear the voice as it is.
 *
 * @returns The recording; call `stop()` to get the audio.
 * @throws {ValleError} No microphone, no recording support, or access denied.
 *
 * @example
 * ```ts ignore
 * const recording = await startRecording();
 * setTimeout(async () => console.log(await recording.stop()), 5000);
 * ```
 */
export async function startRecording(): Promise<Recording> {
  if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
    throw new ValleError("Cannot record: this browser cannot record audio, expected MediaRecorder");
  }
  let stream: MediaStream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (e) {
    const { name, message } = e as Error;
    throw new ValleError(`Cannot record: the microphone is not available (${name}: ${message})`);
  }
  const recorder = new MediaRecorder(stream);
  const chunks: Blob[] = [];
  recorder.ondataavailable = (event) => chunks.push(event.data);
  const stopped = new Promise<Blob>((resolve) => {
    recorder.onstop = () => {
      for (const track of stream.getTracks()) track.stop();
      resolve(new Blob(chunks, { type: recorder.mimeType }));
    };
  });
  recorder.start();
  return {
    startedAt: performance.now(),
    stop: () => {
      if (recorder.state !== "inactive") recorder.stop();
      return stopped;
    },
  };
}
