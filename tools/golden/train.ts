/**
 * Golden checker of the LoRA training family: folders made by tools/golden/train_lora.py (upstream's
 * own training step on the tiny model, tests/fixtures/train-golden). It runs our training step
 * (src/train/) on the folder's batch from its initial LoRA, for both embedding-sum rules, and
 * compares every step with upstream's: batch and per-item losses, top-10 accuracy, every LoRA
 * gradient, the gradient norm and the LoRA after each AdamW update. Then the LoRA files through
 * `setLora`: upstream's own export gives upstream's AR logits, and each LoRA trained here
 * (tools/golden/train_ours.ts, loaded by upstream with `train_lora.py --load-ours`) gives the logits
 * upstream computed with it. The tests (tests/train/step_golden_test.ts,
 * tests/models/valle/train_golden_test.ts) run the same functions.
 *
 * Tolerances are the folder README's, from the measured float32 vs float64 noise floor of
 * upstream's step ({@linkcode TRAIN_TOLERANCE}).
 */

import type { Backend, BackendKind } from "../../src/backends/backend.ts";
import { createBackend } from "../../src/backends/select.ts";
import { destroyTensors, readF32, writeTensor } from "../../src/backends/tensor.ts";
import { f16ToF32, f32ToF16 } from "../../src/io/dtype.ts";
import { readSafetensors, type Safetensors } from "../../src/io/safetensors.ts";
import type { EmbeddingRule } from "../../src/models/valle/inputs.ts";
import { ValleModel } from "../../src/models/valle/model.ts";
import { packBatch, type TrainingItem } from "../../src/train/batch.ts";
import { type LoraLayout, loraLayout, readLora } from "../../src/train/lora_params.ts";
import { createTrainState } from "../../src/train/state.ts";
import {
  type BatchLoss,
  batchLoss,
  type OptimizerSettings,
  recordOptimizerStep,
  recordStep,
  uploadBatch,
} from "../../src/train/step.ts";
import type { CaseResult, GoldenFamily } from "./types.ts";
import { compareValues } from "./valle.ts";

/** Tolerances (tests/fixtures/train-golden/README.md, "Tolerances"), in one place. */
export const TRAIN_TOLERANCE = {
  /** Batch and per-item loss, absolute (noise floor ≤ 1.0e-6). */
  loss: 1e-5,
  /** Top-10 accuracy, absolute: the same hits (a mean of counts over 9 to 10 rows). */
  accuracy: 1e-6,
  /** Every LoRA gradient element, absolute (noise floor ≤ 2.7e-7, max |g| 0.21). */
  gradient: 2e-6,
  /** The pre-clip gradient norm, relative (noise floor ≤ 1.3e-7 absolute on norms ≈ 1.3). */
  gradNorm: 1e-5,
  /** The LoRA after each update, absolute (noise floor ≤ 2.2e-6; AdamW's first-step sensitivity). */
  lora: 1e-4,
  /** AR logits through `setLora`, absolute (issue 3's logits tolerance). */
  logits: 1e-4,
  /** The LoRA must move the compared logits by more than this, or the logits cases prove nothing. */
  loraEffect: 0.05,
} as const;

/** The repository root, against which the manifest names the model. */
const ROOT = new URL("../../", import.meta.url);

/** The manifest fields this checker reads. */
interface TrainManifest {
  generator: string;
  model: string;
  steps: number;
  lr: number;
  clip: number;
  adamw: { betas: [number, number]; eps: number; weight_decay: number };
  sequence_length_N: number;
  /** The yaml upstream ran with; its one LoRA's rank and alpha. */
  yaml: { loras: [{ rank: number; alpha: number }] };
  ours?: OursManifest;
}

/** `manifest.json: ours`, written by `train_lora.py --load-ours`. */
interface OursManifest {
  /** The file of upstream's logits for each LoRA trained here. */
  logits: string;
  /** Each LoRA trained here: its storage type and the logits tensor upstream gave for it. */
  loras: Record<string, { dtype: string; logits: string }>;
}

/** The training family for tools/golden.ts. */
export const trainFamily: GoldenFamily = {
  name: "valle-train",
  accepts: (manifest) => manifest.generator === "tools/golden/train_lora.py",
  run: (folder, manifest, options) => runTrainGolden(folder, manifest, { kind: options.backend }),
};

/** Options of {@linkcode runTrainGolden}. */
export interface TrainGoldenOptions {
  /** The backend (default: a new one of `kind`, destroyed at the end). */
  backend?: Backend;
  /** The kind of backend to create when none is given. Default `"webgpu"`. */
  kind?: BackendKind;
  /**
   * Which checks: the training steps of these rules (`"head"`, `"dec2024"`), and `"lora"` for the
   * LoRA files through `setLora`. Default all.
   */
  parts?: readonly ("head" | "dec2024" | "lora")[];
}

/**
 * Runs every check of a training golden folder, yielding one result per comparison.
 *
 * @param folder The folder (with a trailing slash).
 * @param manifest Its parsed manifest.json.
 * @param options Device and checks.
 */
export async function* runTrainGolden(
  folder: URL,
  manifest: Record<string, unknown>,
  options: TrainGoldenOptions = {},
): AsyncGenerator<CaseResult> {
  const m = manifest as unknown as TrainManifest;
  const parts = options.parts ?? ["head", "dec2024", "lora"];
  const backend = options.backend ?? await createBackend({ backend: options.kind ?? "webgpu" });
  try {
    const load = (file: string) => readSafetensors(new URL(file, folder));
    const valle = await ValleModel.load(new URL(m.model, ROOT), { backend, precision: "f32" });
    try {
      const train = await load("train.safetensors");
      const { rank, alpha } = m.yaml.loras[0];
      const layout = loraLayout(valle.config, rank, alpha);
      const settings = goldenOptimizer(manifest);
      for (const rule of ["head", "dec2024"] as const) {
        if (!parts.includes(rule)) continue;
        yield* checkSteps(valle, layout, m.steps, settings, rule, load, train);
      }
      if (parts.includes("lora")) yield* checkLoras(valle, layout, m, load, train);
    } finally {
      await valle.dispose();
    }
  } finally {
    if (!options.backend) backend.destroy();
  }
}

/**
 * The golden batch's items as upstream drew them (`train.safetensors`: kinds, levels, each item's
 * phonemes, language, prompt, response and NAR-len mask).
 *
 * @param train The folder's `train.safetensors`.
 */
export function goldenItems(train: Safetensors): TrainingItem[] {
  const levels = train.toInt32("levels");
  const kinds = train.toInt32("kinds");
  return Array.from(levels, (level, i) => {
    const ints = (name: string) => Array.from(train.toInt32(`item${i}.${name}`));
    const codes = (name: string) => {
      const data = ints(name);
      return { data, frames: data.length / 8, levels: 8 };
    };
    const kind = (["ar", "nar", "nar-len"] as const)[kinds[i]];
    return {
      kind,
      level,
      phonemes: ints("phn"),
      language: ints("lang")[0],
      prompt: codes("prom"),
      response: codes("resp"),
      mask: kind === "nar-len" ? ints("mask").map((v) => v !== 0) : undefined,
    };
  });
}

/** The optimizer settings upstream ran with (`manifest.json`: lr, clip, adamw). */
export function goldenOptimizer(manifest: Record<string, unknown>): OptimizerSettings {
  const m = manifest as unknown as TrainManifest;
  return {
    learningRate: m.lr,
    beta1: m.adamw.betas[0],
    beta2: m.adamw.betas[1],
    eps: m.adamw.eps,
    weightDecay: m.adamw.weight_decay,
    maxGradNorm: m.clip,
  };
}

/** One training step on the golden batch, as read back. */
export interface GoldenStep {
  /** The loss of the forward before the update. */
  loss: BatchLoss;
  /** The flat LoRA gradient of that forward (pre-clip). */
  grads: Float32Array;
  /** The pre-clip gradient norm the optimizer computed. */
  gradNorm: number;
  /** The flat LoRA after the update. */
  params: Float32Array;
}

/**
 * Trains the golden batch with our step: `steps` AdamW updates of the same batch from `init`.
 *
 * @param valle The model (f32 weights, no LoRA active).
 * @param layout The LoRA layout.
 * @param init The initial flat LoRA.
 * @param items The batch ({@linkcode goldenItems}).
 * @param rule The embedding-sum rule.
 * @param settings The optimizer settings ({@linkcode goldenOptimizer}).
 * @param steps How many updates.
 * @returns Every step, read back.
 */
export function trainGoldenBatch(
  valle: ValleModel,
  layout: LoraLayout,
  init: Float32Array,
  items: readonly TrainingItem[],
  rule: EmbeddingRule,
  settings: OptimizerSettings,
  steps: number,
): Promise<GoldenStep[]> {
  return valle.withBase("run the training golden", async (model) => {
    const { backend, config, weights } = model;
    const batch = packBatch(config, weights.layout, items, { rule });
    const state = createTrainState(backend, config, layout, batch.rows);
    try {
      writeTensor(backend, state.params, init);
      const out: GoldenStep[] = [];
      for (let step = 1; step <= steps; step++) {
        uploadBatch(backend, state, batch);
        const rec = backend.createRecorder();
        recordStep(rec, model, state, layout, batch);
        rec.submit();
        const [stats, grads] = await Promise.all([
          readF32(backend, state.stats),
          readF32(backend, state.grads),
        ]);
        const opt = backend.createRecorder();
        recordOptimizerStep(opt, state, settings, step);
        opt.submit();
        const [sumSquares, params] = await Promise.all([
          readF32(backend, state.sumSquares),
          readF32(backend, state.params),
        ]);
        out.push({
          loss: batchLoss(batch, stats),
          grads,
          gradNorm: Math.sqrt(sumSquares[0]),
          params,
        });
      }
      return out;
    } finally {
      destroyTensors(state);
    }
  });
}

/** The golden's steps of one rule against ours. */
async function* checkSteps(
  valle: ValleModel,
  layout: LoraLayout,
  count: number,
  settings: OptimizerSettings,
  rule: EmbeddingRule,
  load: (file: string) => Promise<Safetensors>,
  train: Safetensors,
): AsyncGenerator<CaseResult> {
  const golden = rule === "head" ? train : await load("dec2024.safetensors");
  const file = rule === "head" ? "train.safetensors" : "dec2024.safetensors";
  const grads = rule === "head" ? await load("grads.safetensors") : golden;
  const init = readLora(layout, await load("lora_init.safetensors"));
  const items = goldenItems(train);
  const n = items.length;
  const steps = await trainGoldenBatch(valle, layout, init, items, rule, settings, count);
  for (const [k, s] of steps.entries()) {
    const step = k + 1;
    const tag = `step ${step} [${rule}]`;
    yield compareValues(
      `${file}:loss ${tag}`,
      [s.loss.loss],
      [golden.toFloat32("loss")[k]],
      TRAIN_TOLERANCE.loss,
    );
    yield compareValues(
      `${file}:loss_items ${tag}`,
      s.loss.itemLosses,
      golden.toFloat32("loss_items").subarray(k * n, step * n),
      TRAIN_TOLERANCE.loss,
    );
    yield compareValues(
      `${file}:acc ${tag}`,
      [s.loss.accuracy],
      [golden.toFloat32("acc")[k]],
      TRAIN_TOLERANCE.accuracy,
    );
    // Rule (b) keeps only the step-1 gradients (at lora_init).
    if (rule === "head" || step === 1) {
      const prefix = step === 1 ? "" : `step${step}.`;
      const gradFile = rule === "head" ? "grads.safetensors" : file;
      yield compareFactors(
        `${gradFile}:${prefix}<24 keys>.grad ${tag}`,
        layout,
        s.grads,
        (key) => grads.toFloat32(`${prefix}${key}.grad`),
        TRAIN_TOLERANCE.gradient,
      );
    }
    const norm = golden.toFloat32("grad_norm")[k];
    const rel = Math.abs(s.gradNorm - norm) / norm;
    yield {
      name: `${file}:grad_norm ${tag}`,
      maxError: rel,
      tolerance: TRAIN_TOLERANCE.gradNorm,
      passed: rel <= TRAIN_TOLERANCE.gradNorm,
      detail: `relative; ${s.gradNorm} vs ${norm}`,
    };
    const expected = rule === "head"
      ? readLora(layout, await load(`lora_step${step}.safetensors`))
      : readLora(layout, golden, `step${step}.`);
    yield compareValues(
      `${
        rule === "head" ? `lora_step${step}.safetensors` : `${file}:step${step}.<24 keys>`
      }:LoRA after ${tag}`,
      s.params,
      expected,
      TRAIN_TOLERANCE.lora,
    );
  }
}

/** Compares a flat LoRA vector with one tensor per factor; the detail names the worst factor. */
function compareFactors(
  name: string,
  layout: LoraLayout,
  got: Float32Array,
  expected: (key: string) => Float32Array,
  tolerance: number,
): CaseResult {
  let maxError = 0;
  let worst = "";
  const failed: string[] = [];
  for (const s of layout.slots) {
    for (const [half, at] of [["A", s.a], ["B", s.b]] as const) {
      const key = `${s.key}.lora_${half}`;
      const want = expected(key);
      const r = compareValues(key, got.subarray(at, at + want.length), want, tolerance);
      if (!r.passed) failed.push(`${key}: ${r.detail}`);
      if (r.maxError > maxError || Number.isNaN(r.maxError)) [maxError, worst] = [r.maxError, key];
    }
  }
  return {
    name,
    maxError,
    tolerance,
    passed: failed.length === 0,
    detail: failed.length > 0 ? failed.join("; ") : `worst ${worst}`,
  };
}

/** The LoRA files: upstream's export and ours, through `setLora`, against upstream's logits. */
async function* checkLoras(
  valle: ValleModel,
  layout: LoraLayout,
  m: TrainManifest,
  load: (file: string) => Promise<Safetensors>,
  train: Safetensors,
): AsyncGenerator<CaseResult> {
  yield await loraLogitsCase(
    valle,
    layout,
    m,
    train,
    await load("lora.sft"),
    train.toFloat32("ar_logits"),
    "train.safetensors:ar_logits [setLora(lora.sft), upstream's export]",
  );
  if (!m.ours) {
    yield fail(
      "manifest.json:ours",
      "no LoRA trained here (run tools/golden/train_ours.ts and train_lora.py --load-ours)",
    );
    return;
  }
  const logits = await load(m.ours.logits);
  const step3 = readLora(layout, await load(`lora_step${m.steps}.safetensors`));
  const f32 = Object.entries(m.ours.loras).filter(([, v]) => v.dtype === "F32");
  if (f32.length !== 1) {
    yield fail("manifest.json:ours", `${f32.length} f32 LoRAs trained here, expected one`);
    return;
  }
  const ours32 = readLora(layout, await load(f32[0][0]));
  for (const [file, info] of Object.entries(m.ours.loras)) {
    const st = await load(file);
    const values = readLora(layout, st);
    const dtypes = new Set<string>(st.names.map((k) => st.info(k).dtype));
    if (dtypes.size !== 1 || !dtypes.has(info.dtype)) {
      yield fail(`${file}:dtype`, `stored as ${[...dtypes]}, the manifest says ${info.dtype}`);
    }
    yield info.dtype === "F32"
      // The file is the LoRA our step trained: upstream's after the last step.
      ? compareValues(
        `${file}:values vs lora_step${m.steps}.safetensors`,
        values,
        step3,
        TRAIN_TOLERANCE.lora,
      )
      // The same LoRA stored in f16: exactly the rounding of the f32 one.
      : compareValues(
        `${file}:values vs f16(${f32[0][0]})`,
        values,
        f16ToF32(f32ToF16(ours32)),
        0,
      );
    yield await loraLogitsCase(
      valle,
      layout,
      m,
      train,
      st,
      logits.toFloat32(info.logits),
      `${m.ours.logits}:${info.logits} [setLora(${file}), loaded by upstream]`,
    );
  }
}

/**
 * Our teacher-forced AR logits of the golden's item 0 with a LoRA applied by `setLora`, against
 * upstream's (all 24 rows given; rows 14–22, the separator before the response, then r_0..r_7,
 * predict the response and the stop token; row 23, the stop token's own output, is not ours).
 */
async function loraLogitsCase(
  valle: ValleModel,
  layout: LoraLayout,
  m: TrainManifest,
  train: Safetensors,
  lora: Safetensors,
  upstream: Float32Array,
  name: string,
): Promise<CaseResult> {
  const resp = train.toInt32("item0.resp");
  const prom = train.toInt32("item0.prom");
  const frames = resp.length / 8;
  const request = {
    mode: "ar" as const,
    phonemes: Array.from(train.toInt32("item0.phn")),
    language: train.toInt32("item0.lang")[0],
    prompt: { data: Array.from(prom), frames: prom.length / 8, levels: 8 },
    response: Array.from({ length: frames }, (_, t) => resp[t * 8]),
    teacherForced: true,
  };
  const base = await valle.logits(request);
  const active = await valle.setLora(lora);
  try {
    if (
      active?.rank !== layout.rank || active.alpha !== layout.alpha ||
      active.targets.length !== layout.slots.length
    ) {
      return fail(
        name,
        `setLora applied rank ${active?.rank}, alpha ${active?.alpha}, ` +
          `${active?.targets.length} projections`,
      );
    }
    const result = await valle.logits(request);
    const start = m.sequence_length_N - (frames + 2);
    const columns = result.columns;
    const expected = upstream.subarray(start * columns, (start + frames + 1) * columns);
    const r = compareValues(name, result.logits, expected, TRAIN_TOLERANCE.logits);
    let moved = 0;
    for (let i = 0; i < expected.length; i++) {
      moved = Math.max(moved, Math.abs(expected[i] - base.logits[i]));
    }
    const effect = `rows ${start}–${start + frames}; the LoRA moves them by ${moved.toFixed(3)}`;
    return moved > TRAIN_TOLERANCE.loraEffect ? { ...r, detail: r.detail ?? effect } : {
      ...r,
      passed: false,
      detail: `${effect}, not more than ${TRAIN_TOLERANCE.loraEffect}: the case proves nothing`,
    };
  } finally {
    await valle.setLora(null);
  }
}

function fail(name: string, detail: string): CaseResult {
  return { name, maxError: NaN, tolerance: 0, passed: false, detail };
}
