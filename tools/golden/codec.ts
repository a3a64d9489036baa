/**
 * Golden checker of the codec family: folders whose manifest says `kind: "encodec"` or
 * `kind: "vocos"` (model.safetensors + config.json + manifest.json + case files, like
 * ../shared/golden/encodec-tiny and vocos-tiny). Every case file listed in the manifest is run
 * through the library's public codec API and every expected tensor compared; a case kind or an
 * expected tensor this checker does not know is a failure. The tests run the copied fixtures
 * through the same functions.
 *
 * Tolerances (max |ours − reference|), from the golden README's recommendations and the
 * reference's own float32-vs-float64 noise (10–20× headroom):
 *   EnCodec audio 5e-5 · latent 1e-5 · per-layer outputs 2e-5 · codeword sums 1e-6
 *   Vocos audio 2e-5 · features 1e-6 · backbone output 1e-5 · head output 5e-5
 * Codes must be identical, except a documented near-tie: a code may differ only where the
 * earlier codes of its frame agree and our latent is at least `rvq_margin` away from the
 * reference latent (then the reference's own choice was not forced), and later codes of that
 * frame are then not compared.
 */

import type { Backend } from "../../src/backends/backend.ts";
import { createBackend } from "../../src/backends/select.ts";
import { parseSafetensors, type Safetensors } from "../../src/io/safetensors.ts";
import { type AudioCodes, Encodec } from "../../src/models/encodec/encodec.ts";
import { Vocos } from "../../src/models/vocos/vocos.ts";
import type { CaseResult, GoldenFamily, GoldenOptions } from "./types.ts";

/** The tolerance of an expected tensor, or undefined when no check knows it. */
export function tolerance(model: "encodec" | "vocos", tensor: string): number | undefined {
  if (model === "encodec") {
    if (tensor === "audio" || tensor.startsWith("decoded_")) return 5e-5;
    if (tensor === "latent") return 1e-5;
    if (tensor.startsWith("quantized")) return 1e-6;
    if (/^(en|de)coder\.layers\.\d+$/.test(tensor)) return 2e-5;
    return undefined;
  }
  return ({ audio: 2e-5, features: 1e-6, backbone_out: 1e-5, head_out: 5e-5 } as Record<
    string,
    number
  >)[
    tensor
  ];
}

/** A loaded golden folder: its manifest and models. */
export interface CodecFolder {
  readonly folder: URL;
  readonly manifest: Record<string, unknown>;
  readonly kind: "encodec" | "vocos";
  /** The folder's EnCodec model (for Vocos: the EnCodec of its copy-synthesis cases). */
  readonly encodec: Encodec;
  readonly vocos?: Vocos;
}

interface FileEntry {
  kind: string;
  notes?: Record<string, unknown>;
  tensors: Record<string, { role: string; shape: number[] }>;
}

async function readJson(url: URL): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(url));
}

/**
 * Loads a folder's models: EnCodec from `model.safetensors` + `config.json`; Vocos from its own,
 * with the EnCodec of the sibling folder its manifest names (`encodec`).
 */
export async function loadCodecFolder(
  backend: Backend,
  folder: URL,
  weights: "f32" | "f16" = "f32",
): Promise<CodecFolder> {
  const manifest = await readJson(new URL("manifest.json", folder));
  const kind = manifest.kind === "vocos" ? "vocos" : "encodec";
  const encodecFolder = kind === "vocos" ? new URL(`../${manifest.encodec}/`, folder) : folder;
  const encodec = await Encodec.load(
    backend,
    await Deno.readFile(new URL("model.safetensors", encodecFolder)),
    {
      config: await readJson(new URL("config.json", encodecFolder)),
      label: "encodec model.safetensors",
      weights,
    },
  );
  const vocos = kind === "vocos"
    ? await Vocos.load(backend, await Deno.readFile(new URL("model.safetensors", folder)), {
      config: await readJson(new URL("config.json", folder)),
      encodec: encodec.config,
      label: "vocos model.safetensors",
      weights,
    })
    : undefined;
  return { folder, manifest, kind, encodec, vocos };
}

/** Max |a − b| (NaN counts as infinite). */
function maxError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let max = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    max = Number.isNaN(d) ? Infinity : Math.max(max, d);
  }
  return max;
}

/** (T, C) time-major → (C, T) channel-major, the layout of the reference tensors. */
function channelMajor(values: Float32Array, channels: number): Float32Array {
  const frames = values.length / channels;
  const out = new Float32Array(values.length);
  for (let t = 0; t < frames; t++) {
    for (let c = 0; c < channels; c++) out[c * frames + t] = values[t * channels + c];
  }
  return out;
}

function codesOf(st: Safetensors, name: string, nQ: number): AudioCodes {
  const codes = st.toInt32(name);
  return { codes, nQ, frames: codes.length / nQ };
}

/** Runs one case file and compares every expected tensor. */
export async function checkCase(f: CodecFolder, file: string): Promise<CaseResult[]> {
  const entry = (f.manifest.files as Record<string, FileEntry>)[file];
  const st = parseSafetensors(await Deno.readFile(new URL(file, f.folder)), { source: file });
  const results: CaseResult[] = [];
  const checked = new Set<string>();
  const compare = (name: string, actual: ArrayLike<number>, detail?: string) => {
    checked.add(name);
    const tol = tolerance(f.kind, name) ?? 0;
    const err = maxError(actual, st.toFloat32(name));
    results.push({
      name: `${file}:${name}`,
      maxError: err,
      tolerance: tol,
      passed: err <= tol,
      detail,
    });
  };
  const compareCodes = (
    name: string,
    ours: AudioCodes,
    latents?: { ours: Float32Array; margin: string },
  ) => {
    checked.add(name);
    results.push(
      codeResult(file, name, ours, st, latents && { ...latents, dim: f.encodec.config.dim }),
    );
  };
  const encodec = f.encodec;
  const dim = encodec.config.dim;
  switch (`${f.kind}:${entry.kind}`) {
    case "encodec:encodec.decode": {
      const codes = codesOf(st, "codes", st.info("codes").shape[1]);
      compare("quantized", channelMajor(await encodec.dequantize(codes), dim));
      compare("audio", await encodec.decode(codes));
      break;
    }
    case "encodec:encodec.quantizer_decode": {
      for (const name of st.names.filter((n) => n.startsWith("codes_"))) {
        const codes = codesOf(st, name, st.info(name).shape[1]);
        compare(`quantized_${name.slice(6)}`, channelMajor(await encodec.dequantize(codes), dim));
      }
      break;
    }
    case "encodec:encodec.encode": {
      const audio = st.toFloat32("audio");
      const latent = await encodec.encodeLatent(audio);
      compare("latent", channelMajor(latent, dim));
      for (const name of st.names.filter((n) => /^codes_nq\d+$/.test(n))) {
        const nQ = st.info(name).shape[1];
        const codes = await encodec.encode(audio, encodec.config.sampleRate, { nQ });
        compareCodes(name, codes, { ours: latent, margin: `rvq_margin_nq${nQ}` });
        const exact = results[results.length - 1].maxError === 0;
        const used = exact ? codes : codesOf(st, name, nQ);
        const note = exact ? undefined : "from the reference codes";
        compare(`quantized_nq${nQ}`, channelMajor(await encodec.dequantize(used), dim), note);
        compare(`decoded_nq${nQ}`, await encodec.decode(used, { length: audio.length }), note);
      }
      break;
    }
    case "encodec:encodec.decode_layers":
    case "encodec:encodec.encode_layers": {
      const layers = new Map<number, Float32Array>();
      const onLayer = (i: number, values: Float32Array, shape: readonly number[]) =>
        layers.set(i, channelMajor(values, shape[1]));
      const side = entry.kind === "encodec.decode_layers" ? "decoder" : "encoder";
      if (side === "decoder") {
        const codes = codesOf(st, "codes", st.info("codes").shape[1]);
        const quantized = await encodec.dequantize(codes);
        compare("quantized", channelMajor(quantized, dim));
        await encodec.decodeLatent(quantized, { onLayer });
      } else {
        await encodec.encodeLatent(st.toFloat32("audio"), { onLayer });
      }
      for (const name of st.names.filter((n) => n.startsWith(`${side}.layers.`))) {
        compare(name, layers.get(Number(name.split(".")[2])) ?? []);
      }
      break;
    }
    case "vocos:vocos.decode": {
      const shape = st.info("codes").shape;
      const codes = codesOf(st, "codes", shape[0]);
      const stages = new Map<string, Float32Array>();
      const audio = await f.vocos!.decode(codes, {
        bandwidthId: st.toInt32("bandwidth_id")[0],
        onStage: (stage, values, s) =>
          stages.set(stage, stage === "features" ? channelMajor(values, s[1]) : values),
      });
      checked.add("bandwidth_id");
      compare("features", stages.get("features")!);
      compare("audio", audio);
      if (st.has("backbone_out")) compare("backbone_out", stages.get("backbone")!);
      if (st.has("head_out")) compare("head_out", stages.get("head")!);
      break;
    }
    case "vocos:vocos.copy_synthesis": {
      const bandwidthId = st.toInt32("bandwidth_id")[0];
      checked.add("bandwidth_id");
      const nQ = f.vocos!.codebooks.perBandwidth[bandwidthId];
      const audioIn = st.toFloat32("audio_in");
      const codes = await encodec.encode(audioIn, encodec.config.sampleRate, { nQ });
      compareCodes("codes", codes);
      const features = new Map<string, Float32Array>();
      const audio = await f.vocos!.decode(codes, {
        bandwidthId,
        onStage: (stage, values, s) =>
          stage === "features" && features.set(stage, channelMajor(values, s[1])),
      });
      compare("features", features.get("features")!);
      compare("audio", audio);
      break;
    }
    default:
      return [{
        name: file,
        maxError: NaN,
        tolerance: 0,
        passed: false,
        detail: `unknown case kind "${entry.kind}" for a ${f.kind} folder`,
      }];
  }
  for (const [name, t] of Object.entries(entry.tensors)) {
    if (t.role === "expected" && !checked.has(name)) {
      results.push({
        name: `${file}:${name}`,
        maxError: NaN,
        tolerance: 0,
        passed: false,
        detail: `no check compares expected tensor "${name}" of case kind "${entry.kind}"`,
      });
    }
  }
  return results;
}

/**
 * Compares codes exactly, allowing only documented near-ties (see the module comment) when the
 * latents and margins are given.
 */
function codeResult(
  file: string,
  name: string,
  ours: AudioCodes,
  st: Safetensors,
  ties?: { ours: Float32Array; margin: string; dim: number },
): CaseResult {
  const ref = st.toInt32(name);
  const { nQ, frames } = ours;
  const label = `${file}:${name}`;
  if (ref.length !== ours.codes.length) {
    return {
      name: label,
      maxError: NaN,
      tolerance: 0,
      passed: false,
      detail: `${ours.codes.length} codes, expected ${ref.length}`,
    };
  }
  let mismatches = 0;
  let forced = 0;
  const margins = ties && st.has(ties.margin) ? st.toFloat32(ties.margin) : undefined;
  const latent = ties && st.has("latent") ? st.toFloat32("latent") : undefined;
  for (let t = 0; t < frames; t++) {
    for (let q = 0; q < nQ; q++) {
      const i = q * frames + t;
      if (ours.codes[i] === ref[i]) continue;
      mismatches++;
      let distance = 0;
      if (ties && latent) {
        for (let c = 0; c < ties.dim; c++) {
          distance += (ties.ours[t * ties.dim + c] - latent[c * frames + t]) ** 2;
        }
      }
      if (!margins || Math.sqrt(distance) < margins[i]) forced++;
      break; // later codes of this frame follow a different residual
    }
  }
  const passed = forced === 0;
  const detail = mismatches === 0
    ? `${nQ}×${frames} codes identical`
    : `${mismatches} frame(s) differ, ${forced} where the reference's code was forced`;
  return { name: label, maxError: mismatches, tolerance: 0, passed, detail };
}

/** Every case of a folder, one result per expected tensor. */
async function* run(
  folder: URL,
  manifest: Record<string, unknown>,
  options: GoldenOptions,
): AsyncIterable<CaseResult> {
  const backend = await createBackend({ backend: options.backend ?? "webgpu" });
  try {
    const f = await loadCodecFolder(backend, folder);
    for (const file of Object.keys(manifest.files as Record<string, unknown>)) {
      try {
        yield* await checkCase(f, file);
      } catch (e) {
        yield { name: file, maxError: NaN, tolerance: 0, passed: false, detail: String(e) };
      }
    }
  } finally {
    backend.destroy();
  }
}

/** The codec family for tools/golden.ts. */
export const codecFamily: GoldenFamily = {
  name: "codec",
  accepts: (manifest) => manifest.kind === "encodec" || manifest.kind === "vocos",
  run,
};
