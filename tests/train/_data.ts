/**
 * What the training-data tests share: the tiny EnCodec on the CPU backend wrapped so calls can be
 * counted, an in-memory file cache, and voiced test signals.
 */

import { testBackend } from "../_backends.ts";
import { readFixture } from "../_helpers.ts";
import type { CacheEntry, CacheMeta, FileCache } from "../../src/io/cache.ts";
import { Encodec } from "../../src/models/encodec/encodec.ts";
import type { AudioCodes } from "../../src/models/_codec.ts";
import type { TrainingModel } from "../../src/train/prepare.ts";

let shared: Promise<Encodec> | undefined;

/** encodec-tiny on the CPU backend, loaded once per test module. */
export function tinyEncodec(): Promise<Encodec> {
  shared ??= (async () => {
    const backend = await testBackend("cpu");
    const config = JSON.parse(
      new TextDecoder().decode(await readFixture("encodec-tiny/config.json")),
    );
    return await Encodec.load(backend, await readFixture("encodec-tiny/model.safetensors"), {
      config,
    });
  })();
  return shared;
}

/** A model for `prepareUtterances` over encodec-tiny that counts the encoder's calls. */
export interface CountingModel extends TrainingModel {
  /** The encoder's calls so far. */
  calls: number;
}

/** encodec-tiny behind a new wrapper object (so fingerprints are taken again), counting calls. */
export async function countingModel(nLangs = 6): Promise<CountingModel> {
  const encodec = await tinyEncodec();
  const model: CountingModel = {
    calls: 0,
    encodec: {
      config: encodec.config,
      encode(samples: Float32Array, rate: number, options: { nQ: number }): Promise<AudioCodes> {
        model.calls++;
        return encodec.encode(samples, rate, options);
      },
    },
    model: { config: { nLevels: 8, nLangs } },
  };
  return model;
}

/** A file cache in memory. */
export class MemoryCache implements FileCache {
  /** The entries. */
  readonly entries: Map<string, CacheEntry> = new Map();

  /** {@inheritDoc FileCache.get} */
  get(key: string): Promise<CacheEntry | undefined> {
    const e = this.entries.get(key);
    return Promise.resolve(e && { bytes: e.bytes.slice(), meta: { ...e.meta } });
  }

  /** {@inheritDoc FileCache.put} */
  put(key: string, bytes: Uint8Array<ArrayBuffer>, meta: CacheMeta): Promise<void> {
    this.entries.set(key, { bytes: bytes.slice(), meta: { ...meta } });
    return Promise.resolve();
  }

  /** {@inheritDoc FileCache.delete} */
  delete(key: string): Promise<void> {
    this.entries.delete(key);
    return Promise.resolve();
  }

  /** {@inheritDoc FileCache.locate} */
  locate(key: string): string {
    return `memory:${key}`;
  }
}

/** A voiced sound: a gliding tone with a harmonic, `seconds` long at `rate`, pitch set by `f0`. */
export function voiced(seconds: number, rate: number, f0 = 120, gain = 0.4): Float32Array {
  return Float32Array.from({ length: Math.round(seconds * rate) }, (_, i) => {
    const t = i / rate;
    const f = f0 + 60 * t;
    return gain * (Math.sin(2 * Math.PI * f * t) + 0.5 * Math.sin(4 * Math.PI * f * t + 1));
  });
}
