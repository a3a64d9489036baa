/**
 * {@linkcode LoraSlot}: the LoRA merged into a model's weights, and the way back. Before a float
 * weight first changes, a device copy of it is kept; removing or swapping the LoRA copies the kept
 * bytes back, so the base returns bit for bit without reading the model file again. A quantized
 * weight is never changed: the LoRA is merged into a dequantized float copy (of the whole stacked
 * table, for an embedding table), which the model runs instead while the LoRA is active, and the
 * quantized base is used again when it is removed. The cost is the bytes of those copies, held
 * while a LoRA is active (`heldBytes`).
 *
 * This module is browser compatible.
 *
 * @module
 */

import {
  type Backend,
  isQuantized,
  type QuantDtype,
  type Recorder,
  type Tensor,
} from "../../backends/backend.ts";
import { byteSize, createTensor, readBytes, uploadTensor } from "../../backends/tensor.ts";
import { f32ToF16 } from "../../io/dtype.ts";
import { blendWeight, loraMerge } from "../../ops/lora.ts";
import { dequantizeDeviceWords } from "../../quant/device.ts";
import type { ValleConfig } from "./config.ts";
import type { ValleLora } from "./lora.ts";
import {
  replaceValleTensors,
  STACKED_TABLE,
  type ValleWeights,
  valleWeightTensors,
} from "./weights.ts";

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
  /**
   * Device bytes held for it: copies of the float base tensors it touches (to restore them) and
   * the dequantized float copies of the quantized ones it runs instead.
   */
  readonly heldBytes: number;
}

/** The LoRA state of one model's weights. */
export class LoraSlot {
  #backend: Backend;
  #config: ValleConfig;
  #base: ValleWeights;
  #baseTensors: ReadonlyMap<string, Tensor>;
  #weights: ValleWeights;
  #kept = new Map<string, Tensor>();
  #dequantized = new Map<string, Tensor>();
  #active: ActiveLora | null = null;

  /**
   * @param backend The device.
   * @param config The model's config.
   * @param base The model's weights.
   */
  constructor(backend: Backend, config: ValleConfig, base: ValleWeights) {
    this.#backend = backend;
    this.#config = config;
    this.#base = base;
    this.#baseTensors = valleWeightTensors(config, base);
    this.#weights = base;
  }

  /** The LoRA merged now, or null. */
  get active(): ActiveLora | null {
    return this.#active;
  }

  /** The weights the model runs now: the base, with float copies of quantized LoRA targets. */
  get weights(): ValleWeights {
    return this.#weights;
  }

  /**
   * Restores the base, then merges `lora` (none: only restores). Each factor is uploaded, merged
   * and submitted in turn, so at most one module's factors are on the device at once.
   *
   * @param rec The model's recorder (nothing else may be recording).
   * @param lora A LoRA checked against this model, or null.
   * @param strength Multiplies the update (embeddings: 0 keeps the base's, 1 takes the LoRA's).
   */
  async set(rec: Recorder, lora: ValleLora | null, strength: number): Promise<void> {
    for (const [key, copy] of this.#kept) rec.copy(copy, this.#baseTensors.get(key)!);
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
    rec.submit();
    // Dequantized copies are made afresh from the untouched quantized base each time.
    for (const copy of this.#dequantized.values()) copy.buffer.destroy();
    this.#dequantized.clear();
    this.#weights = this.#base;
    if (!lora) return;
    for (const key of targets) {
      const t = this.#baseTensors.get(key)!;
      if (!isQuantized(t.dtype)) continue;
      const storage = t.buffer === this.#base.embeddings.buffer ? STACKED_TABLE : key;
      if (this.#dequantized.has(storage)) continue;
      const quantized = storage === STACKED_TABLE ? this.#base.embeddings : t;
      this.#dequantized.set(storage, await this.#dequantize(quantized, storage));
    }
    this.#weights = replaceValleTensors(this.#config, this.#base, this.#dequantized);
    const tensors = valleWeightTensors(this.#config, this.#weights);
    const copies = new Set([...this.#dequantized.values()].map((t) => t.buffer));
    for (const key of targets) {
      const t = tensors.get(key)!;
      if (this.#kept.has(key) || copies.has(t.buffer)) continue;
      const copy = createTensor(this.#backend, t.shape, t.dtype, `lora base copy ${key}`);
      rec.copy(t, copy);
      this.#kept.set(key, copy);
    }
    const scale = strength * lora.alpha / lora.rank;
    for (const f of lora.factors) {
      const a = uploadTensor(this.#backend, f.a, [f.rank, f.cols], "f32", `${f.target} lora_A`);
      const b = uploadTensor(this.#backend, f.b, [f.rows, f.rank], "f32", `${f.target} lora_B`);
      loraMerge(rec, tensors.get(f.target)!, a, b, scale);
      rec.submit();
      a.buffer.destroy();
      b.buffer.destroy();
    }
    for (const r of lora.replacements) {
      const w = tensors.get(r.target)!;
      const d = uploadTensor(this.#backend, r.values, w.shape, "f32", `${r.target} (LoRA)`);
      blendWeight(rec, w, d, strength);
      rec.submit();
      d.buffer.destroy();
    }
    let heldBytes = 0;
    for (const copy of [...this.#kept.values(), ...this.#dequantized.values()]) {
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

  /** Frees the kept and dequantized copies (the weights are being freed too). */
  destroy(): void {
    for (const copy of [...this.#kept.values(), ...this.#dequantized.values()]) {
      copy.buffer.destroy();
    }
    this.#kept.clear();
    this.#dequantized.clear();
    this.#weights = this.#base;
    this.#active = null;
  }

  /** A float copy of a quantized tensor, in the model's float type (that of its norms). */
  async #dequantize(t: Tensor, label: string): Promise<Tensor> {
    const [bytes] = await readBytes(this.#backend, [t]);
    const values = dequantizeDeviceWords(t.dtype as QuantDtype, new Uint32Array(bytes));
    const float = this.#base.norm.dtype === "f16" ? "f16" : "f32";
    const data = float === "f16" ? f32ToF16(values) : values;
    return uploadTensor(this.#backend, data, t.shape, float, `${label} (dequantized for a LoRA)`);
  }
}
