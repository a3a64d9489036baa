/**
 * Codec real-time factors (RTF = processing time / audio duration; below 1 is faster than real
 * time): EnCodec encode at 6 kbps (8 codebooks), EnCodec decode and Vocos decode of those codes,
 * for `seconds` of a speech-like signal, wall clock after a warm-up call that compiles every
 * pipeline. Part of `deno task bench`.
 */

import type { Backend } from "../src/backends/backend.ts";
import { Encodec } from "../src/models/encodec/encodec.ts";
import { Vocos } from "../src/models/vocos/vocos.ts";

/** One stage's figures. */
export interface CodecRow extends Record<string, string | number> {
  stage: string;
  seconds: number;
  ms: number;
  rtf: number;
}

/** A speech-like test signal: a few harmonics with vibrato, plus noise. */
export function speechLike(n: number): Float32Array {
  let seed = 1;
  const noise = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
  return Float32Array.from({ length: n }, (_, i) => {
    const t = i / 24000;
    const f0 = 140 + 20 * Math.sin(2 * Math.PI * 3 * t);
    let v = 0;
    for (let h = 1; h <= 5; h++) v += Math.sin(2 * Math.PI * f0 * h * t) / h;
    return 0.2 * v + 0.02 * noise();
  });
}

/** Times EnCodec encode/decode and Vocos decode of `seconds` of audio. */
export async function benchCodecs(
  backend: Backend,
  encodecWeights: Uint8Array,
  vocosWeights: Uint8Array,
  seconds: number,
): Promise<CodecRow[]> {
  const encodec = await Encodec.load(backend, encodecWeights);
  const vocos = await Vocos.load(backend, vocosWeights);
  const warm = await encodec.encode(speechLike(24000), 24000);
  await encodec.decode(warm);
  await vocos.decode(warm);
  const audio = speechLike(Math.round(seconds * 24000));
  let codes = warm;
  const stages: [string, () => Promise<unknown>][] = [
    [
      "EnCodec encode (6 kbps, 8 codebooks)",
      async () => (codes = await encodec.encode(audio, 24000)),
    ],
    ["EnCodec decode (8 codebooks)", () => encodec.decode(codes)],
    ["Vocos decode (8 codebooks)", () => vocos.decode(codes)],
  ];
  const rows: CodecRow[] = [];
  for (const [stage, run] of stages) {
    const start = performance.now();
    await run();
    const ms = performance.now() - start;
    rows.push({ stage, seconds, ms: Math.round(ms), rtf: +(ms / 1000 / seconds).toFixed(4) });
  }
  encodec.dispose();
  vocos.dispose();
  return rows;
}
