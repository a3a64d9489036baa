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

import type { NumberRange } from "../../_options.ts";
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
import { checkValleLora, type ValleLora } from "./lora.ts";
import {
  replaceValleTensors,
  STACKED_TABLE,
  type ValleWeights,
  valleWeightTensors,
} from "./weights.ts";

/**
 * The strengths a LoRA may be merged with: 1 is the update as trained, 0 the base model, negative
 * values steer away from the LoRA, and values between or a little beyond exaggerate or soften
 * it. Ten times the trained update in either direction is far outside anything a LoRA was
 * trained for (its update would swamp the weights, f16 ones may overflow), so a strength beyond
 * that is taken for a mistake (80 for 0.8, 1e9) and refused rather than merged.
 */
export const LORA_STRENGTH: NumberRange = { min: -10, max: 10 };

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
  #shapes: ReadonlyMap<string, readonly number[]>;
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
    this.#shapes = new Map([...this.#baseTensors].map(([key, t]) => [key, t.shape]));
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
   * Restores the base, then merges `lora` (none: only restores). Everything is checked, the
   * quantized targets dequantized and the base copies allocated before anything is recorded, so a
   * refused LoRA leaves the weights, the recorder and the active LoRA as they were. Each factor is
   * then uploaded, merged and submitted in turn, so at most one module's factors are on the device
   * at once.
   *
   * @param rec The model's recorder (nothing else may be recording).
   * @param lora A LoRA read by `parseValleLora` (for any model: it is checked here), or null.
   * @param strength Multiplies the update (embeddings: 0 keeps the base's, 1 takes the LoRA's).
   * @throws {LoraError} `lora` does not fit these tensors (read for another model).
   */
  async set(rec: Recorder, lora: ValleLora | null, strength: number): Promise<void> {
    if (lora) checkValleLora(lora, this.#shapes);
    const targets = new Set(
      lora ? [...lora.factors, ...lora.replacements].map((t) => t.target) : [],
    );
    // Quantized targets run as float copies made afresh from the quantized base, never written.
    const dequantized = await this.#dequantizeTargets(targets);
    const weights = replaceValleTensors(this.#config, this.#base, dequantized);
    const tensors = valleWeightTensors(this.#config, weights);
    const floatCopies = new Set([...dequantized.values()].map((t) => t.buffer));
    const copies = [...targets]
      .filter((key) => !this.#kept.has(key) && !floatCopies.has(tensors.get(key)!.buffer))
      .map((key) => {
        const t = tensors.get(key)!;
        return {
          key,
          copy: createTensor(this.#backend, t.shape, t.dtype, `lora base copy ${key}`),
        };
      });
    for (const [key, copy] of this.#kept) rec.copy(copy, this.#baseTensors.get(key)!);
    this.#active = null;
    for (const [key, copy] of this.#kept) {
      if (targets.has(key)) continue;
      rec.submit(); // the restoring copy reads it
      copy.buffer.destroy();
      this.#kept.delete(key);
    }
    rec.submit();
    for (const copy of this.#dequantized.values()) copy.buffer.destroy();
    this.#dequantized = dequantized;
    this.#weights = weights;
    if (!lora) return;
    for (const { key, copy } of copies) {
      rec.copy(tensors.get(key)!, copy);
      this.#kept.set(key, copy);
    }
    // Submitted before the first upload: a device out of memory there leaves no recorded work,
    // and the kept copies let the next call restore the base.
    rec.submit();
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

  /**
   * Float copies of the quantized tensors among `targets`, by storage (the whole stacked table
   * for an embedding table); none are kept if one fails.
   */
  async #dequantizeTargets(targets: ReadonlySet<string>): Promise<Map<string, Tensor>> {
    const made = new Map<string, Tensor>();
    try {
      for (const key of targets) {
        const t = this.#baseTensors.get(key)!;
        if (!isQuantized(t.dtype)) continue;
        const storage = t.buffer === this.#base.embeddings.buffer ? STACKED_TABLE : key;
        if (made.has(storage)) continue;
        const quantized = storage === STACKED_TABLE ? this.#base.embeddings : t;
        made.set(storage, await this.#dequantize(quantized, storage));
      }
    } catch (e) {
      for (const t of made.values()) t.buffer.destroy();
      throw e;
    }
    return made;
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
