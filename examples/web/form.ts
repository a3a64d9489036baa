/// <reference lib="dom" />
/**
 * The demo's form as options. Its "Compute" fieldset (`#compute`) holds the loading choices
 * (`backend`, `threads`, `dtype`: {@linkcode readCompute}); elsewhere every `<input type="number">` is named
 * after a {@linkcode SynthesizeOptions} field (empty means the library's default), the selects
 * after `language`, `modality` and `decoder` ({@linkcode readForm}).
 */

import {
  type BackendChoice,
  OptionError,
  SYNTHESIS_DEFAULTS,
  type SynthesizeOptions,
  type ValleDtype,
} from "../../mod.ts";

/** The fieldset of the loading choices. */
const COMPUTE = "#compute";

/** Where the models run: the `Valle.load` options of the same names. */
export interface ComputeChoice {
  /** `"auto"`, `"webgpu"` or `"cpu"`. */
  backend: BackendChoice;
  /** CPU threads; undefined when the field is empty (the library's default). */
  threads?: number;
  /** VALL-E weight storage; undefined for the default (q8 on the CPU, else f16 or as stored). */
  dtype?: ValleDtype;
}

/** What the form asks for. */
export interface FormRequest {
  /** The text to speak. */
  text: string;
  /** Synthesis options, with the seed always set (random when the field is empty). */
  options: SynthesizeOptions & { seed: number };
  /** Play each sentence as soon as it is ready. */
  play: boolean;
}

/**
 * Shows each number field's default as its placeholder, so that an empty field reads as what it
 * means.
 *
 * @param form The demo's form.
 *
 * @example
 * ```ts ignore
 * showDefaults(document.querySelector("form")!);
 * ```
 */
export function showDefaults(form: HTMLFormElement): void {
  for (const input of numberInputs(form)) {
    const value = SYNTHESIS_DEFAULTS[input.name as keyof typeof SYNTHESIS_DEFAULTS];
    if (value !== undefined) input.placeholder = String(value);
  }
}

/**
 * Reads the form. Ranges are checked by the library when synthesis starts.
 *
 * @param form The demo's form.
 * @returns The text, options and playback choice.
 * @throws {OptionError} A number field holds something that is not a number.
 *
 * @example
 * ```ts ignore
 * const { text, options } = readForm(form);
 * await valle.synthesize(text, options);
 * ```
 */
export function readForm(form: HTMLFormElement): FormRequest {
  const data = new FormData(form);
  const options: Record<string, unknown> = {};
  for (const input of numberInputs(form)) {
    if (input.validity.badInput) {
      throw new OptionError(`Cannot read the field ${input.name}: it is not a number`);
    }
    if (input.value !== "") options[input.name] = input.valueAsNumber;
  }
  for (const name of ["language", "modality", "decoder"]) options[name] = data.get(name);
  const seed = (options.seed as number | undefined) ??
    crypto.getRandomValues(new Uint32Array(1))[0];
  return {
    text: String(data.get("text") ?? ""),
    options: { ...options, seed } as FormRequest["options"],
    play: data.has("play"),
  };
}

/**
 * Reads the loading choices. The threads' range is checked by the library when it loads.
 *
 * @param form The demo's form.
 * @returns The backend, threads and weight storage to load the models with.
 * @throws {OptionError} The threads field holds something that is not a number.
 *
 * @example
 * ```ts ignore
 * const valle = await Valle.load({ ...readCompute(form) });
 * ```
 */
export function readCompute(form: HTMLFormElement): ComputeChoice {
  const threads = form.querySelector<HTMLInputElement>(`${COMPUTE} input[name="threads"]`)!;
  if (threads.validity.badInput) {
    throw new OptionError("Cannot read the field threads: it is not a number");
  }
  const data = new FormData(form);
  return {
    backend: data.get("backend") as BackendChoice,
    threads: threads.value === "" ? undefined : threads.valueAsNumber,
    dtype: (data.get("dtype") || undefined) as ValleDtype | undefined,
  };
}

/** The number fields of synthesis options (those outside the loading choices). */
function numberInputs(form: HTMLFormElement): HTMLInputElement[] {
  return [...form.querySelectorAll<HTMLInputElement>('input[type="number"]')].filter((input) =>
    !input.closest(COMPUTE)
  );
}
