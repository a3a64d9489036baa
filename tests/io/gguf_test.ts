/**
 * GGUF reader and writer: round trips of every readable type, metadata values, and the typed
 * errors of damaged files (truncated block data, unknown tensor type, a shape that is not whole
 * blocks, a wrong tensor count), each naming the tensor and the byte offset.
 */

import assert from "node:assert/strict";
import { FormatError } from "../../src/errors.ts";
import { f32ToF16 } from "../../src/io/dtype.ts";
import { isGguf, parseGguf, readGguf, serializeGguf } from "../../src/io/gguf.ts";
import { dequantizeQ4K, quantizeQ4K } from "../../src/quant/q4_k.ts";
import { dequantizeQ8_0, quantizeQ8_0 } from "../../src/quant/q8_0.ts";
import { Rng } from "../_helpers.ts";

const rng = new Rng(5);
const values = rng.normals(2 * 256);
const q8 = quantizeQ8_0(values);
const q4 = quantizeQ4K(values);
const f16 = f32ToF16(values.subarray(0, 6));

function sample(): Uint8Array<ArrayBuffer> {
  return serializeGguf({
    "blk.q8": { type: "Q8_0", shape: [2, 256], bytes: q8 },
    "blk.q4": { type: "Q4_K", shape: [2, 256], bytes: q4 },
    "norm": { type: "F32", shape: [3], bytes: new Uint8Array(Float32Array.of(1, 2, 3).buffer) },
    "half": { type: "F16", shape: [2, 3], bytes: new Uint8Array(f16.buffer) },
  }, { "general.architecture": "valle", "valle.config": '{"d_model": 256}', "n": 7, ok: true });
}

/** The byte offset of a tensor's info (its name's length prefix). */
function infoAt(file: Uint8Array, name: string): number {
  const needle = new TextEncoder().encode(name);
  for (let i = 8; i < file.length; i++) {
    if (needle.every((b, j) => file[i + j] === b) && file[i - 8] === needle.length) return i - 8;
  }
  throw new Error(`no ${name}`);
}

/** The FormatError of parsing `bytes`. */
function refusal(bytes: Uint8Array): FormatError {
  try {
    parseGguf(bytes, "damaged.gguf");
  } catch (e) {
    assert.ok(e instanceof FormatError, String(e));
    return e;
  }
  throw new Error("parsed");
}

Deno.test("GGUF round trip: metadata, shapes, types and bytes", () => {
  const file = sample();
  assert.ok(isGguf(file));
  const g = parseGguf(file, "x.gguf");
  assert.equal(g.version, 3);
  assert.deepEqual(g.names, ["blk.q8", "blk.q4", "norm", "half"]);
  assert.equal(g.string("general.architecture"), "valle");
  assert.equal(g.string("valle.config"), '{"d_model": 256}');
  assert.equal(g.metadata.get("n"), 7);
  assert.equal(g.metadata.get("ok"), true);
  assert.deepEqual(g.info("blk.q8").shape, [2, 256]);
  assert.equal(g.info("blk.q4").type, "Q4_K");
  assert.deepEqual([...g.bytes("blk.q8")], [...q8]);
  assert.deepEqual([...g.bytes("blk.q4")], [...q4]);
  for (const name of g.names) assert.equal(g.info(name).byteOffset % 32, 0);
  assert.deepEqual([...g.toFloat32("blk.q8")], [...dequantizeQ8_0(q8)]);
  assert.deepEqual([...g.toFloat32("blk.q4")], [...dequantizeQ4K(q4)]);
  assert.deepEqual([...g.toFloat32("norm")], [1, 2, 3]);
  assert.deepEqual([...g.toFloat16("half")], [...f16]);
});

Deno.test("GGUF readGguf reads bytes and files", async () => {
  const path = await Deno.makeTempFile({ suffix: ".gguf" });
  try {
    await Deno.writeFile(path, sample());
    const g = await readGguf(path);
    assert.equal(g.source, path);
    assert.deepEqual([...g.bytes("blk.q4")], [...q4]);
    assert.equal((await readGguf(sample())).names.length, 4);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("GGUF: truncated block data names the tensor and its byte offset", () => {
  const file = sample();
  const last = parseGguf(file).info("half");
  const e = refusal(file.subarray(0, last.byteOffset + 5));
  assert.equal(e.details.entry, "half");
  assert.equal(e.details.offset, last.byteOffset);
  assert.match(e.message, /tensor "half" \(F16 \[2,3\]\) needs bytes \d+ to \d+/);

  const q4At = parseGguf(file).info("blk.q4");
  const cut = refusal(file.subarray(0, q4At.byteOffset + 100));
  assert.equal(cut.details.entry, "blk.q4");
  assert.equal(cut.details.found, "100 bytes");
});

Deno.test("GGUF: an unknown tensor type names the tensor, the type and the offset", () => {
  const file = sample();
  const at = infoAt(file, "blk.q4");
  // name (8 + 6) + n_dims (4) + 2 dims (16), then the type.
  new DataView(file.buffer).setUint32(at + 14 + 4 + 16, 14, true);
  const e = refusal(file);
  assert.equal(e.details.entry, "blk.q4");
  assert.equal(e.details.offset, at);
  assert.equal(e.details.found, "Q6_K (14)");
  new DataView(file.buffer).setUint32(at + 14 + 4 + 16, 99, true);
  assert.equal(refusal(file).details.found, "type 99");
});

Deno.test("GGUF: a row that is not whole blocks is a wrong shape", () => {
  const file = sample();
  const at = infoAt(file, "blk.q8");
  new DataView(file.buffer).setBigUint64(at + 14 + 4, 48n, true); // ne[0]: 256 -> 48
  const e = refusal(file);
  assert.equal(e.details.entry, "blk.q8");
  assert.equal(e.details.offset, at);
  assert.equal(e.details.found, "[2,48]");
  assert.match(e.message, /rows of 48, not whole 32-blocks/);
});

Deno.test("GGUF: a tensor count that does not match the file is refused", () => {
  const file = sample();
  new DataView(file.buffer).setBigUint64(8, 5n, true); // 4 tensors in the file
  const e = refusal(file);
  assert.match(e.message, /declares 5 tensors but the file holds 4/);
  assert.equal(e.details.expected, "5 tensors");
});

Deno.test("GGUF: bad magic, bad version, truncated metadata", () => {
  const file = sample();
  assert.match(refusal(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)).message, /bad magic/);
  const v = file.slice();
  new DataView(v.buffer).setUint32(4, 9, true);
  assert.equal(refusal(v).details.found, "9");
  const short = refusal(file.subarray(0, 40));
  assert.match(short.message, /file ends after 40 bytes/);
});
