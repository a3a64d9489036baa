/**
 * Golden runner: checks every case file of a golden folder (model + manifest.json + case files,
 * produced by the original implementations) against this library, and prints one line per case
 * and a last line `golden: N passed, M failed, K skipped`. Exit status 1 when anything failed
 * (skipped cases, which the model cannot run and the folder has no values for, do not fail).
 *
 *   deno task golden [--backend webgpu|cpu] [--allow-ties] <folder> [<folder> …]
 *   deno task golden --dtype q8|q4 [--backend webgpu|cpu] <folder> [<folder> …]
 *
 * With `--dtype` it checks nothing against the originals: it reports how close the VALL-E model
 * quantized that way stays to the same model in f16 (tools/golden/quant.ts), per pass kind and in
 * a seeded synthesis.
 *
 * Greedy token sequences are compared step by step on teacher-forced logits: a golden token that
 * loses by less than the tie tolerance is a tie (listed in the case's detail), a pass on hardware
 * adapters, a failure on the CPU backend and software adapters unless `--allow-ties`
 * (tools/golden/ties.ts).
 *
 * Each model family registers a checker in FAMILIES; a folder no family accepts is a failure.
 */

import { parseArgs } from "node:util";
import type { CaseResult, GoldenFamily, GoldenOptions } from "./golden/types.ts";
import { codecFamily } from "./golden/codec.ts";
import { valleFamily } from "./golden/valle.ts";
import { trainFamily } from "./golden/train.ts";
import { quantGoldenReport } from "./golden/quant.ts";

/** Checkers by model family. */
const FAMILIES: GoldenFamily[] = [valleFamily, codecFamily, trainFamily];

/** Runs one folder, yielding its case results. */
export async function* runGoldenFolder(
  folder: URL,
  options: GoldenOptions = {},
): AsyncIterable<CaseResult> {
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", folder)));
  } catch (e) {
    yield {
      name: folder.pathname,
      maxError: NaN,
      tolerance: 0,
      passed: false,
      detail: `no readable manifest.json: ${e}`,
    };
    return;
  }
  const family = FAMILIES.find((f) => f.accepts(manifest));
  if (!family) {
    yield {
      name: folder.pathname,
      maxError: NaN,
      tolerance: 0,
      passed: false,
      detail: "no checker knows this format",
    };
    return;
  }
  try {
    yield* family.run(folder, manifest, options);
  } catch (e) {
    yield {
      name: `${folder.pathname} (${family.name})`,
      maxError: NaN,
      tolerance: 0,
      passed: false,
      detail: String(e),
    };
  }
}

function formatLine(r: CaseResult): string {
  if (r.skipped !== undefined) return `skip ${r.name}  skipped: ${r.skipped}`;
  const status = r.passed ? "ok  " : "FAIL";
  const err = Number.isNaN(r.maxError) ? "n/a" : r.maxError.toExponential(2);
  return `${status} ${r.name}  max error ${err} (tolerance ${r.tolerance.toExponential(1)})${
    r.detail ? `  ${r.detail}` : ""
  }`;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      backend: { type: "string", default: "webgpu" },
      dtype: { type: "string" },
      "allow-ties": { type: "boolean" },
    },
    allowPositionals: true,
  });
  const { backend, dtype } = values;
  const allowTies = values["allow-ties"] ? true : undefined;
  if (
    positionals.length === 0 || (backend !== "webgpu" && backend !== "cpu") ||
    (dtype !== undefined && dtype !== "q8" && dtype !== "q4")
  ) {
    console.error(
      "usage: deno task golden [--dtype q8|q4] [--backend webgpu|cpu] [--allow-ties] <folder> …",
    );
    Deno.exit(2);
  }
  const folders = positionals.map((arg) =>
    new URL(arg.endsWith("/") ? arg : `${arg}/`, `file://${Deno.cwd()}/`)
  );
  if (dtype !== undefined) {
    for (const folder of folders) {
      for await (const line of quantGoldenReport(folder, dtype, backend)) console.log(line);
    }
    Deno.exit(0);
  }
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const folder of folders) {
    for await (const result of runGoldenFolder(folder, { backend, allowTies })) {
      console.log(formatLine(result));
      if (result.skipped !== undefined) skipped++;
      else if (result.passed) passed++;
      else failed++;
    }
  }
  console.log(`golden: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  Deno.exit(failed > 0 ? 1 : 0);
}
