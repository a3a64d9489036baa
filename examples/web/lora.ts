/// <reference lib="dom" />
/**
 * The demo's LoRA choice: a `lora.sft` file chosen on the page and its strength, merged into the
 * loaded models before a synthesis when they differ from what those models have (a new backend
 * loads new models, which start without one). Clearing the file input removes it. A LoRA merged
 * from elsewhere (the one trained on the page) goes through {@linkcode LoraChoice.setOther}, so
 * that the next synthesis puts the page's choice back.
 */

import type { Valle } from "../../mod.ts";

/** What a model has merged: the file and the strength, or a LoRA from elsewhere. */
type Applied = { file: File | null; strength: number } | "other";

/** The page's LoRA inputs and what each loaded model has. */
export class LoraChoice {
  #file: HTMLInputElement;
  #strength: HTMLInputElement;
  #applied = new WeakMap<Valle, Applied>();

  /**
   * @param file The file input.
   * @param strength The strength input (empty: 1).
   */
  constructor(file: HTMLInputElement, strength: HTMLInputElement) {
    this.#file = file;
    this.#strength = strength;
  }

  /** Merges the chosen LoRA into `valle` (or removes it) unless it already has that one. */
  async apply(valle: Valle, report: (text: string) => void): Promise<void> {
    const file = this.#file.files?.[0] ?? null;
    const strength = this.#strength.value === "" ? 1 : Number(this.#strength.value);
    const had = this.#applied.get(valle) ?? { file: null, strength: 1 };
    if (had !== "other" && had.file === file && (file === null || had.strength === strength)) {
      return;
    }
    report(file ? `Applying the LoRA ${file.name}…` : "Removing the LoRA…");
    this.#applied.delete(valle); // unknown if setLora fails part way
    await valle.setLora(file, { strength });
    this.#applied.set(valle, { file, strength });
  }

  /**
   * Merges a LoRA that is not the page's choice into `valle` (null: none, as training needs); the
   * next {@linkcode LoraChoice.apply} replaces it with the page's choice.
   *
   * @param valle The models.
   * @param lora The `lora.sft` bytes, or null to remove any.
   */
  async setOther(valle: Valle, lora: Uint8Array | null): Promise<void> {
    this.#applied.set(valle, "other");
    await valle.setLora(lora);
  }
}
