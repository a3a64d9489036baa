/**
 * The golden runner on a folder made for a model with the `len` capability but run with one
 * without it (valle-tiny in the older ar+nar layout): a pipeline part the model cannot run and the
 * file holds no tensors for is reported as skipped, counted apart, and does not fail the run;
 * unknown tensors and parts still fail.
 */

import assert from "node:assert/strict";
import {
  parseSafetensors,
  serializeSafetensors,
  type TensorData,
} from "../../../src/io/safetensors.ts";
import { runGoldenFolder } from "../../../tools/golden.ts";
import type { CaseResult } from "../../../tools/golden/types.ts";
import { backendTest } from "../../_backends.ts";
import { readFixture } from "../../_helpers.ts";

const SKIPPED = "skipped: model has no len capability, file has no nar_len tensors";

/**
 * valle-tiny in the ar+nar layout: without the NAR-len response table, `len_emb` and the NAR-len
 * and duration heads (proj.8, proj.10); the STT head proj.9 becomes proj.8. Every other tensor,
 * and so every AR and NAR result, is unchanged.
 */
function withoutLen(bytes: Uint8Array): Uint8Array {
  const st = parseSafetensors(bytes);
  const tensors: Record<string, TensorData> = {};
  for (const name of st.names) {
    if (/^(len_emb\.|resps_emb\.embeddings\.8\.|classifiers\.proj\.(8|10)\.)/.test(name)) continue;
    const { dtype, shape } = st.info(name);
    tensors[name.replace(/^classifiers\.proj\.9\./, "classifiers.proj.8.")] = {
      dtype,
      shape,
      data: st.bytes(name),
    };
  }
  const config = JSON.parse(st.metadata.config);
  config.name = "ar+nar";
  config.capabilities = config.capabilities.filter((c: string) => c !== "len");
  return serializeSafetensors(tensors, { ...st.metadata, config: JSON.stringify(config) });
}

/**
 * A golden folder with the len-less model, the shared inputs and a pipeline file holding only the
 * `ar_nar.*` tensors (its settings still describe `nar_len`), plus `extra` tensors and settings.
 */
async function lenlessFolder(
  extra: { tensors?: Record<string, TensorData>; settings?: Record<string, unknown> } = {},
): Promise<string> {
  const dir = await Deno.makeTempDir();
  const manifest = JSON.parse(
    new TextDecoder().decode(await readFixture("valle-tiny/manifest.json")),
  );
  const pipeline = parseSafetensors(await readFixture("valle-tiny/pipeline.safetensors"));
  const entry = manifest.files["pipeline.safetensors"];
  const settings = { ...entry.settings, ...extra.settings };
  const tensors: Record<string, TensorData> = { ...extra.tensors };
  for (const name of pipeline.names.filter((n) => n.startsWith("ar_nar."))) {
    const { dtype, shape } = pipeline.info(name);
    tensors[name] = { dtype, shape, data: pipeline.bytes(name) };
  }
  manifest.config = { ...manifest.config, capabilities: ["ar", "nar"], has_nar_len: false };
  manifest.files = {
    "inputs.safetensors": manifest.files["inputs.safetensors"],
    "pipeline.safetensors": {
      ...entry,
      settings,
      tensors: Object.fromEntries(
        Object.entries(tensors).map(([k, t]) => [k, { shape: t.shape, dtype: t.dtype }]),
      ),
    },
  };
  await Deno.writeFile(`${dir}/model.sft`, withoutLen(await readFixture("valle-tiny/model.sft")));
  await Deno.writeFile(
    `${dir}/inputs.safetensors`,
    await readFixture("valle-tiny/inputs.safetensors"),
  );
  await Deno.writeFile(
    `${dir}/pipeline.safetensors`,
    serializeSafetensors(tensors, { ...pipeline.metadata, settings: JSON.stringify(settings) }),
  );
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest));
  return dir;
}

backendTest(
  "deno task golden reports a NAR-len part the model cannot run and the file has no tensors for",
  async () => {
    const dir = await lenlessFolder();
    try {
      const { code, stdout } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("../../../tools/golden.ts", import.meta.url).pathname, dir],
        stdout: "piped",
        stderr: "null",
      }).output();
      const lines = new TextDecoder().decode(stdout).trim().split("\n");
      const ok = lines.filter((l) =>
        /^ok {3}pipeline\.safetensors:ar_nar\.codes \[f(32|16)\]/.test(l)
      );
      const skipped = lines.filter((l) =>
        /^skip pipeline\.safetensors:nar_len \[f(32|16)\] {2}/.test(l) && l.endsWith(SKIPPED)
      );
      assert.ok(ok.length >= 1, lines.join("\n"));
      assert.deepEqual(lines.length, 2 * ok.length + 1, lines.join("\n"));
      assert.deepEqual(skipped.length, ok.length, lines.join("\n"));
      assert.deepEqual(lines.at(-1), `golden: ${ok.length} passed, 0 failed, ${ok.length} skipped`);
      assert.deepEqual(code, 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

backendTest("the golden runner still fails unknown tensors and pipeline parts", async () => {
  const mystery: TensorData = { dtype: "I32", shape: [1], data: new Int32Array([7]) };
  const dir = await lenlessFolder({
    tensors: { "mystery.codes": mystery },
    settings: { mystery: { steps: 3 } },
  });
  try {
    const results: CaseResult[] = [];
    for await (const r of runGoldenFolder(new URL(`file://${dir}/`))) results.push(r);
    const f32 = results.filter((r) => r.name.endsWith("[f32]"));
    assert.deepEqual(
      f32.map((r) => [
        r.name,
        r.passed,
        r.skipped ?? r.detail?.replace(/^closest margin [\d.e+-]+ at \[\d+\]$/, "closest margin"),
      ]),
      [
        ["pipeline.safetensors:ar_nar.codes [f32]", true, "closest margin"],
        ["pipeline.safetensors:nar_len [f32]", false, SKIPPED.slice("skipped: ".length)],
        ["pipeline.safetensors:mystery [f32]", false, 'unknown pipeline part "mystery"'],
        [
          "pipeline.safetensors:unchecked [f32]",
          false,
          "tensors no case compared: mystery.codes",
        ],
      ],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
