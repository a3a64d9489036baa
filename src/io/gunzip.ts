/**
 * Generated modules (the CPU kernels, espeak-ng, the Japanese dictionary) carry their payload as
 * one base64 string of gzip data, so that Deno, JSR and browsers get it as plain TypeScript; this
 * turns such a string back into bytes with the web's `DecompressionStream`.
 *
 * This module is browser compatible.
 *
 * @module
 */

/**
 * Decodes base64-encoded gzip data.
 *
 * @param base64 The gzip stream, base64-encoded.
 * @returns The decompressed bytes.
 *
 * @example
 * ```ts
 * import { gunzipBase64 } from "./gunzip.ts";
 * // "hi" gzipped, base64-encoded.
 * const bytes = await gunzipBase64("H4sIAAAAAAAAA8vIBACsKpPYAgAAAA==");
 * console.assert(new TextDecoder().decode(bytes) === "hi");
 * ```
 */
export async function gunzipBase64(base64: string): Promise<Uint8Array<ArrayBuffer>> {
  const text = atob(base64);
  const gzipped = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) gzipped[i] = text.charCodeAt(i);
  const stream = new Blob([gzipped]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
