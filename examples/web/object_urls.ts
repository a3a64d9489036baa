/// <reference lib="dom" />
/** Object URLs for the page's audio and files, each slot's old URL released when replaced. */

const urls = new Map<string, string>();

/**
 * An object URL for `blob` in `slot` (e.g. "speech"), releasing the slot's previous one.
 *
 * @example
 * ```ts ignore
 * audio.src = objectUrl("speech", speech.toBlob());
 * ```
 */
export function objectUrl(slot: string, blob: Blob): string {
  const old = urls.get(slot);
  if (old) URL.revokeObjectURL(old);
  const url = URL.createObjectURL(blob);
  urls.set(slot, url);
  return url;
}
