/**
 * The check every consumer of audio samples makes first: a NaN or infinite sample would spread
 * through a codec's convolutions and come out as garbage codes (EnCodec's quantizer returns -1).
 *
 * This module is browser compatible.
 *
 * @module
 */

import { OptionError } from "../errors.ts";

/**
 * Throws when a sample is not a finite number.
 *
 * @param channels The samples, one array per channel.
 * @param action What fails, as the message's start: `Cannot ${action}: …`.
 * @throws {OptionError} Naming the first bad sample's index, channel and value.
 *
 * @example
 * ```ts
 * import { checkFiniteSamples } from "./finite.ts";
 * checkFiniteSamples([new Float32Array([0, 0.5])], "encode"); // passes
 * ```
 */
export function checkFiniteSamples(channels: readonly Float32Array[], action: string): void {
  for (const [channel, samples] of channels.entries()) {
    const index = samples.findIndex((x) => !Number.isFinite(x));
    if (index >= 0) {
      const where = channels.length > 1 ? ` of channel ${channel}` : "";
      throw new OptionError(
        `Cannot ${action}: sample ${index}${where} is ${samples[index]}, expected a finite number`,
      );
    }
  }
}
