/**
 * {@linkcode LoraSlot}: the LoRA merged into a model's weights, and the way back. Before a weight
 * first changes, a device copy of it is kept; removing or swapping the LoRA copies the kept bytes
 * back, so the base returns bit for bit without reading the model file again. The cost is the
 * bytes of the touched tensors, held while a LoRA is active (`heldBytes`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import type { Backend, Recorder, Tensor } from "../../backends/backend.ts";
import { byteSize, createTensor, uploadTensor } from "../../backends/tensor.ts";
import { blendWeight, loraMerge } from "../../ops/lora.ts";
import type { ValleLora } from "./lora.ts";

/** What is merged now ({@linkcode LoraSlot.active}). */
export interface ActiveLora {
  /** The file. */
  readonly source: string;
  /** `__metadata__.config.name`, when the file has it. */
  readonly name?: string;
  /** Rank and alpha (the update is scaled by strength · alpha / rank). */
  readonly rank: number;
  /** alpha. */
  readonly alpha: number;
  /** The strength it was merged with. */
  readonly strength: number;
  /** Checkpoint keys of the tensors it changed. */
  readonly targets: readonly string[];
  /** Device bytes held to restore them (copies of the base tensors). */
  readonly heldBytes: number;
}

/** The LoRA state of one model's weights. */
export class LoraSlot {
  #backend: Backend;
  #tensors: ReadonlyMap<string, Tensor>;
  #kept = new Map<string, Tensor>();
  #active: ActiveLora | null = null;

  /**
   * @param backend The device.
   * @param tensors The model's tensors by checkpoint key (views where they live).
   */
  constructor(backend: Backend, tensors: ReadonlyMap<string, Tensor>) {
    this.#backend = backend;
    this.#tensors = tensors;
  }

  /** The LoRA merged now, or null. */
  get active(): ActiveLora | null {
    return this.#active;
  }

  /**
   * Restores the base, then merges `lora` (none: only restores). Each factor is uploaded, merged
   * and submitted in turn, so at most one module's factors are on the device at once.
   *
   * @param rec The model's recorder (nothing else may be recording).
   * @param lora A LoRA checked against this model, or null.
   * @param strength Multiplies the update (embeddings: 0 keeps the base's, 1 takes the LoRA's).
   */
  set(rec: Recorder, lora: ValleLora | null, strength: number): void {
    for (const [key, copy] of this.#kept) rec.copy(copy, this.#tensors.get(key)!);
    this.#active = null;
    const targets = new Set(
      lora ? [...lora.factors, ...lora.replacements].map((t) => t.target) : [],
    );
    for (const [key, copy] of this.#kept) {
      if (targets.has(key)) continue;
      rec.submit(); // the restoring copy reads it
      copy.buffer.destroy();
      this.#kept.delete(key);
    }
    if (!lora) {
      rec.submit();
      return;
    }
    for (const key of targets) {
      if (this.#kept.has(key)) continue;
      const t = this.#tensors.get(key)!;
      const copy = createTensor(this.#backend, t.shape, t.dtype, `lora base copy ${key}`);
      rec.copy(t, copy);
      this.#kept.set(key, copy);
    }
    const scale = strength * lora.alpha / lora.rank;
    for (const f of lora.factors) {
      const a = uploadTensor(this.#backend, f.a, [f.rank, f.cols], "f32", `${f.target} lora_A`);
      const b = uploadTensor(this.#backend, f.b, [f.rows, f.rank], "f32", `${f.target} lora_B`);
      loraMerge(rec, this.#tensors.get(f.target)!, a, b, scale);
      rec.submit();
      a.buffer.destroy();
      b.buffer.destroy();
    }
    for (const r of lora.replacements) {
      const w = this.#tensors.get(r.target)!;
      const d = uploadTensor(this.#backend, r.values, w.shape, "f32", `${r.target} (LoRA)`);
      blendWeight(rec, w, d, strength);
      rec.submit();
      d.buffer.destroy();
    }
    let heldBytes = 0;
    for (const copy of this.#kept.values()) {
      heldBytes += byteSize(copy.shape, copy.dtype);
    }
    this.#active = {
      source: lora.source,
      name: lora.name,
      rank: lora.rank,
      alpha: lora.alpha,
      strength,
      targets: [...targets],
      heldBytes,
    };
  }

  /** Frees the kept copies (the weights are being freed too). */
  destroy(): void {
    for (const copy of this.#kept.values()) copy.buffer.destroy();
    this.#kept.clear();
    this.#active = null;
  }
}
