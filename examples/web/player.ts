/// <reference lib="dom" />
/** Plays sentences back to back as they arrive, with Web Audio, while the rest is generated. */

/** Seconds between scheduling a piece and its start when nothing is playing. */
const LEAD = 0.05;

/**
 * A queue of audio pieces played without gaps.
 *
 * @example
 * ```ts ignore
 * const player = new PiecePlayer();
 * player.start(); // in a click handler: browsers allow sound after a user gesture
 * for await (const piece of valle.stream(text)) player.play(piece.samples, piece.sampleRate);
 * ```
 */
export class PiecePlayer {
  #context?: AudioContext;
  #end = 0;
  #playing = new Set<AudioBufferSourceNode>();

  /** Stops what is playing and gets ready; call from a user gesture so that sound is allowed. */
  start(): void {
    this.stop();
    this.#context ??= new AudioContext();
    void this.#context.resume();
  }

  /**
   * Queues `samples` after everything queued before.
   *
   * @param samples Mono samples.
   * @param sampleRate Their rate (Web Audio resamples to the device's).
   */
  play(samples: Float32Array, sampleRate: number): void {
    if (samples.length === 0) return;
    const context = this.#context ??= new AudioContext();
    const buffer = context.createBuffer(1, samples.length, sampleRate);
    buffer.copyToChannel(samples as Float32Array<ArrayBuffer>, 0);
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    const at = Math.max(this.#end, context.currentTime + LEAD);
    source.start(at);
    this.#end = at + buffer.duration;
    this.#playing.add(source);
    source.onended = () => this.#playing.delete(source);
  }

  /** Stops and forgets everything queued. */
  stop(): void {
    for (const source of this.#playing) source.stop();
    this.#playing.clear();
    this.#end = 0;
  }
}
