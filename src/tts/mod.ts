/**
 * Text to speech in one call ({@linkcode synthesize}) or with a reusable {@linkcode Valle}:
 * loading (with downloads and caching), voice encoding, synthesis, streaming and WAV output.
 *
 * This module is browser compatible.
 *
 * @module
 */

export { type SetLoraOptions, synthesize, Valle, type ValleOptions } from "./valle.ts";
export type { ActiveLora } from "../models/valle/adapter.ts";
export {
  type ResolvedSynthesizeOptions,
  resolveSynthesizeOptions,
  SYNTHESIS_DEFAULTS,
  type SynthesisPhase,
  type SynthesisProgress,
  type SynthesizeOptions,
} from "./options.ts";
export { joinPieces, Speech, type SpeechPiece } from "./speech.ts";
export { type AudioInput, readReference } from "./reference.ts";
export {
  DEFAULT_FILES,
  type FileSource,
  loadFile,
  type LoadFileOptions,
  sourceName,
} from "./sources.ts";
export { joinPrompt, toAudioCodes, toModelCodes } from "./codes.ts";
