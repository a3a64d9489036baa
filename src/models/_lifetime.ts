/**
 * {@linkcode Lifetime}: the calls of an object that owns GPU buffers (a model, a codec), run one
 * at a time because they share its scratch buffers, and its disposal: buffers are freed once the
 * calls already made have finished, and calls made afterwards fail with a {@linkcode GpuError}
 * instead of touching freed buffers (which would poison the device with a validation error).
 * An object that only composes others (`Valle`) uses the disposal part alone.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { GpuError } from "../errors.ts";

/** One-at-a-time calls and disposal of an object that owns GPU buffers. */
export class Lifetime {
  #name: string;
  #queue: Promise<unknown> = Promise.resolve();
  #running = 0;
  #disposed?: Promise<void>;

  /**
   * Creates the lifetime of one object.
   *
   * @param name The object, as error messages name it ("EnCodec model").
   */
  constructor(name: string) {
    this.#name = name;
  }

  /** Whether {@linkcode Lifetime.dispose} was called. */
  get disposed(): boolean {
    return this.#disposed !== undefined;
  }

  /**
   * Throws when disposed.
   *
   * @throws {GpuError} The object was disposed.
   */
  check(): void {
    if (this.#disposed) {
      throw new GpuError(
        `Cannot use the ${this.#name}: it was disposed (its GPU buffers are freed); load a new one`,
      );
    }
  }

  /**
   * Runs `fn` after the calls made before it have settled.
   *
   * @param fn The call.
   * @returns What `fn` returns; a rejected promise when disposed.
   */
  run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      this.check();
    } catch (e) {
      return Promise.reject(e);
    }
    this.#running++;
    const run = this.#queue.then(fn, fn).finally(() => this.#running--);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Frees the object's buffers with `release`: at once when no call is running, else after the
   * calls already made have settled. Later calls fail; calling it again returns the same promise.
   *
   * @param release Frees everything the object owns (may finish asynchronously).
   * @returns Resolves once `release` has finished.
   */
  dispose(release: () => void | Promise<void>): Promise<void> {
    this.#disposed ??= this.#running === 0 ? Promise.resolve(release()) : this.#queue.then(release);
    return this.#disposed;
  }
}
