/**
 * Tests of the safetensors reader and writer: round trips of every dtype through every kind of
 * source, conversions against values written out by hand, one test per malformed file, a fuzz
 * test, and facts about the golden files copied into tests/fixtures.
 */

import assert from "node:assert/strict";
import { FormatError } from "../../src/errors.ts";
import {
  DTYPE_SIZES,
  parseSafetensors,
  readSafetensors,
  type Safetensors,
  serializeSafetensors,
  type TensorData,
} from "../../src/io/safetensors.ts";
import { FIXTURES, readFixture, Rng } from "../_helpers.ts";

/** One tensor of every dtype, plus a scalar and an empty tensor. */
function everyDtype(): Record<string, TensorData> {
  return {
    "f64": { dtype: "F64", shape: [2, 2], data: new Float64Array([1.5, -2.25, 1e40, 1 / 3]) },
    "f32": { dtype: "F32", shape: [3], data: new Float32Array([0.5, -7, 3.4e38]) },
    "f16": {
      dtype: "F16",
      shape: [2, 3],
      data: new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0xfc00]),
    },
    "bf16": { dtype: "BF16", shape: [3], data: new Uint16Array([0x3f80, 0x4049, 0xbf00]) },
    "i64": { dtype: "I64", shape: [3], data: new BigInt64Array([-5n, 1023n, -(2n ** 31n)]) },
    "i32": { dtype: "I32", shape: [2], data: new Int32Array([-2147483648, 7]) },
    "i16": { dtype: "I16", shape: [2], data: new Int16Array([-32768, 32767]) },
    "i8": { dtype: "I8", shape: [1, 2], data: new Int8Array([-128, 127]) },
    "u8": { dtype: "U8", shape: [3], data: new Uint8Array([0, 128, 255]) },
    "bool": { dtype: "BOOL", shape: [2], data: new Uint8Array([1, 0]) },
    "scalar": { dtype: "F32", shape: [], data: new Float32Array([42]) },
    "empty": { dtype: "F16", shape: [0, 3], data: new Uint16Array(0) },
  };
}

/** The float32 values of {@linkcode everyDtype}, worked out by hand. */
const EXPECTED_F32: Record<string, number[]> = {
  "f64": [1.5, -2.25, Infinity, Math.fround(1 / 3)],
  "f32": [0.5, -7, Math.fround(3.4e38)],
  "f16": [1, -2, 65504, 2 ** -24, Infinity, -Infinity],
  "bf16": [1, 3.140625, -0.5],
  "i64": [-5, 1023, -(2 ** 31)],
  "i32": [-2147483648, 7],
  "i16": [-32768, 32767],
  "i8": [-128, 127],
  "u8": [0, 128, 255],
  "bool": [1, 0],
  "scalar": [42],
  "empty": [],
};

const METADATA = { format: "pt", config: '{"d_model": 32}' };

/** The bytes of a typed array. */
function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Asserts a parsed file holds exactly {@linkcode everyDtype} and {@linkcode METADATA}. */
function assertEveryDtype(st: Safetensors): void {
  const tensors = everyDtype();
  assert.deepEqual([...st.names].sort(), Object.keys(tensors).sort());
  assert.deepEqual({ ...st.metadata }, METADATA);
  let total = 0;
  for (const [name, { dtype, shape, data }] of Object.entries(tensors)) {
    const info = st.info(name);
    assert.equal(info.name, name);
    assert.equal(info.dtype, dtype);
    assert.deepEqual(info.shape, shape);
    assert.equal(info.byteLength, data.byteLength);
    assert.deepEqual(st.bytes(name), bytesOf(data), name);
    total += data.byteLength;
  }
  assert.equal(st.byteLength, total);
}

/** A file from a raw header (object or JSON text), a data section and an optional length. */
function rawFile(
  header: unknown,
  data: Uint8Array | number = 0,
  headerLength?: bigint,
): Uint8Array<ArrayBuffer> {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const body = typeof data === "number" ? new Uint8Array(data) : data;
  const file = new Uint8Array(8 + json.length + body.length);
  new DataView(file.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  file.set(json, 8);
  file.set(body, 8 + json.length);
  return file;
}

/** A stream delivering `bytes` in chunks of `size` bytes (each chunk its own buffer). */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  });
}

/** Checks an error is a FormatError for `file` whose message mentions every one of `parts`. */
function isFormatError(file: string, ...parts: string[]): (e: unknown) => true {
  return (e) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${e}`);
    assert.equal(e.details.file, file);
    assert.ok(
      e.message.startsWith(`Cannot read safetensors "${file}": `),
      `message: ${e.message}`,
    );
    assert.ok(!e.message.endsWith("."), `message ends with a period: ${e.message}`);
    for (const part of parts) assert.ok(e.message.includes(part), `"${part}" in: ${e.message}`);
    return true;
  };
}

/** Asserts parsing `bytes` fails with a FormatError naming the file and `parts`. */
function assertMalformed(bytes: Uint8Array, ...parts: string[]): FormatError {
  let error: unknown;
  assert.throws(() => parseSafetensors(bytes, { source: "bad.sft" }), (e) => {
    error = e;
    return isFormatError("bad.sft", ...parts)(e);
  });
  return error as FormatError;
}

// Round trips.

Deno.test("serialize then parse keeps every dtype, shape, byte and the metadata", () => {
  assertEveryDtype(parseSafetensors(serializeSafetensors(everyDtype(), METADATA)));
});

Deno.test("serialize lays tensors out deterministically, aligned, header padded to 8", () => {
  const tensors = everyDtype();
  const reversed = Object.fromEntries(Object.entries(tensors).reverse());
  const file = serializeSafetensors(tensors, METADATA);
  assert.deepEqual(serializeSafetensors(reversed, METADATA), file);
  const headerSize = Number(new DataView(file.buffer).getBigUint64(0, true));
  assert.equal(headerSize % 8, 0);
  const header = new TextDecoder().decode(file.subarray(8, 8 + headerSize));
  assert.match(header, /^\{"__metadata__":.*\} *$/);
  const st = parseSafetensors(file);
  // Larger dtypes first, by name within a size; every tensor aligned to its element size.
  assert.deepEqual(st.names, [
    "f64",
    "i64",
    "f32",
    "i32",
    "scalar",
    "bf16",
    "empty",
    "f16",
    "i16",
    "bool",
    "i8",
    "u8",
  ]);
  for (const name of st.names) {
    const { byteOffset, dtype } = st.info(name);
    assert.equal(byteOffset % DTYPE_SIZES[dtype], 0, name);
  }
});

Deno.test("parse is zero-copy and aligned F32 / F16 / I32 views share the file's memory", () => {
  const file = serializeSafetensors(everyDtype());
  const st = parseSafetensors(file);
  for (
    const view of [st.bytes("u8"), st.toFloat32("f32"), st.toFloat16("f16"), st.toInt32("i32")]
  ) {
    assert.equal(view.buffer, file.buffer);
  }
  file[st.info("u8").byteOffset] = 9;
  assert.equal(st.bytes("u8")[0], 9);
});

Deno.test("misaligned tensors are copied before viewing", () => {
  // A 1-byte shift moves every tensor off its alignment.
  const file = serializeSafetensors(everyDtype(), METADATA);
  const shifted = new Uint8Array(file.length + 1).subarray(1);
  shifted.set(file);
  const st = parseSafetensors(shifted);
  assertEveryDtype(st);
  for (const [name, expected] of Object.entries(EXPECTED_F32)) {
    assert.deepEqual([...st.toFloat32(name)], expected, name);
  }
  assert.deepEqual([...st.toFloat16("f16")], [...(everyDtype().f16.data as Uint16Array)]);
});

Deno.test("readSafetensors reads bytes, an ArrayBuffer, a Blob and a File", async () => {
  const file = serializeSafetensors(everyDtype(), METADATA);
  assertEveryDtype(await readSafetensors(file));
  assertEveryDtype(await readSafetensors(file.slice().buffer));
  assertEveryDtype(await readSafetensors(new Blob([file])));
  const named = await readSafetensors(new File([file], "named.sft"));
  assertEveryDtype(named);
  assert.equal(named.source, "named.sft");
});

for (const size of [1, 3, 7, 4096]) {
  Deno.test(`readSafetensors reads a stream delivered in ${size}-byte chunks`, async () => {
    const file = serializeSafetensors(everyDtype(), METADATA);
    assertEveryDtype(await readSafetensors(chunked(file, size)));
  });
}

Deno.test("readSafetensors reads a stream whose one chunk spans header and data", async () => {
  const file = serializeSafetensors(everyDtype(), METADATA);
  assertEveryDtype(await readSafetensors(chunked(file, file.length)));
});

Deno.test("readSafetensors stops at the last tensor of an endless stream", async () => {
  const file = serializeSafetensors(everyDtype(), METADATA);
  let cancelled = false;
  let sent = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(sent ? new Uint8Array(1024) : file);
      sent = true;
    },
    cancel() {
      cancelled = true;
    },
  });
  assertEveryDtype(await readSafetensors(stream));
  assert.ok(cancelled);
});

Deno.test("readSafetensors reads a file path and a file: URL", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/every dtype.safetensors`;
    await Deno.writeFile(path, serializeSafetensors(everyDtype(), METADATA));
    const fromPath = await readSafetensors(path);
    assertEveryDtype(fromPath);
    assert.equal(fromPath.source, path);
    const url = new URL(`file://${path}`);
    assertEveryDtype(await readSafetensors(url));
    assertEveryDtype(await readSafetensors(url.href));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSafetensors reads a data: URL and a Response", async () => {
  const file = serializeSafetensors(everyDtype(), METADATA);
  const base64 = btoa(String.fromCharCode(...file));
  const st = await readSafetensors(`data:application/octet-stream;base64,${base64}`);
  assertEveryDtype(st);
  assert.equal(st.source, "<data URL>");
  assertEveryDtype(await readSafetensors(new Response(file)));
});

/** Serves `file` at /model.sft on 127.0.0.1 and runs `fn` with the server's base URL. */
async function withServer(
  file: Uint8Array,
  fn: (base: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) =>
      new URL(request.url).pathname === "/model.sft"
        ? new Response(file.slice(), { headers: { "content-length": `${file.length}` } })
        : new Response("no such file", { status: 404, statusText: "Not Found" }),
  );
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("readSafetensors fetches an http URL and reports progress", async () => {
  const file = serializeSafetensors(everyDtype(), METADATA);
  await withServer(file, async (base) => {
    const progress: [number, number | undefined][] = [];
    const st = await readSafetensors(`${base}/model.sft`, {
      onProgress: (loaded, total) => progress.push([loaded, total]),
    });
    assertEveryDtype(st);
    assert.equal(st.source, `${base}/model.sft`);
    assert.deepEqual(progress.at(-1), [file.length, file.length]);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i][0] > progress[i - 1][0]);
  });
});

Deno.test("readSafetensors reports an HTTP error status", async () => {
  await withServer(new Uint8Array(0), async (base) => {
    const url = `${base}/missing.sft`;
    await assert.rejects(readSafetensors(url), (e) => {
      isFormatError(url, "HTTP 404 Not Found")(e);
      assert.equal((e as FormatError).details.found, "HTTP 404 Not Found");
      return true;
    });
  });
});

Deno.test("readSafetensors reports progress of a stream without a size", async () => {
  const file = serializeSafetensors(everyDtype(), METADATA);
  const progress: [number, number | undefined][] = [];
  await readSafetensors(chunked(file, 100), { onProgress: (l, t) => progress.push([l, t]) });
  assert.deepEqual(progress.at(-1), [file.length, undefined]);
});

Deno.test("metadata is {} when __metadata__ is absent or null", () => {
  assert.deepEqual(parseSafetensors(serializeSafetensors({})).metadata, {});
  assert.deepEqual(parseSafetensors(rawFile({ __metadata__: null })).metadata, {});
  assert.deepEqual(parseSafetensors(serializeSafetensors({}, {})).metadata, {});
});

Deno.test("gaps between tensors and bytes after the last one are allowed", () => {
  const header = {
    b: { dtype: "U8", shape: [2], data_offsets: [6, 8] },
    a: { dtype: "U8", shape: [2], data_offsets: [1, 3] },
    z: { dtype: "U8", shape: [0], data_offsets: [2, 2] },
  };
  const st = parseSafetensors(rawFile(header, new Uint8Array([0, 1, 2, 0, 0, 0, 6, 7, 99])));
  assert.deepEqual(st.names, ["a", "z", "b"]);
  assert.deepEqual([...st.bytes("a")], [1, 2]);
  assert.deepEqual([...st.bytes("b")], [6, 7]);
  assert.equal(st.byteLength, 4);
});

// Conversions.

Deno.test("toFloat32 converts every dtype to the values worked out by hand", () => {
  const st = parseSafetensors(serializeSafetensors(everyDtype()));
  for (const [name, expected] of Object.entries(EXPECTED_F32)) {
    assert.deepEqual([...st.toFloat32(name)], expected, name);
  }
});

Deno.test("toFloat16 rounds non-F16 tensors to nearest even", () => {
  const st = parseSafetensors(serializeSafetensors(everyDtype()));
  assert.deepEqual([...st.toFloat16("f32")], [0x3800, 0xc700, 0x7c00]);
  assert.deepEqual([...st.toFloat16("bf16")], [0x3c00, 0x4248, 0xb800]);
  assert.deepEqual([...st.toFloat16("i16")], [0xf800, 0x7800]);
  assert.deepEqual([...st.toFloat16("f16")], [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0xfc00]);
});

Deno.test("toInt32 converts integer dtypes and checks the I64 range", () => {
  const st = parseSafetensors(serializeSafetensors(everyDtype()));
  for (const name of ["i64", "i32", "i16", "i8", "u8", "bool"]) {
    assert.deepEqual([...st.toInt32(name)], EXPECTED_F32[name], name);
  }
  const big = serializeSafetensors({
    codes: { dtype: "I64", shape: [3], data: new BigInt64Array([1n, 2n ** 31n, 3n]) },
  });
  assert.throws(() => parseSafetensors(big, { source: "big.sft" }).toInt32("codes"), (e) => {
    isFormatError("big.sft", '"codes"', "element 1 is 2147483648", "int32")(e);
    const { entry, offset, found } = (e as FormatError).details;
    assert.deepEqual([entry, found], ["codes", "2147483648"]);
    assert.equal(offset, parseSafetensors(big).info("codes").byteOffset + 8);
    return true;
  });
  assert.throws(
    () => parseSafetensors(serializeSafetensors(everyDtype()), { source: "x" }).toInt32("f32"),
    isFormatError("x", 'tensor "f32" has dtype F32, expected an integer dtype'),
  );
});

Deno.test("info, bytes and conversions of a missing tensor name the file and tensor", () => {
  const st = parseSafetensors(serializeSafetensors(everyDtype()), { source: "m.sft" });
  assert.equal(st.has("nope"), false);
  assert.equal(st.has("f32"), true);
  const calls = [st.info, st.bytes, st.toFloat32, st.toFloat16, st.toInt32];
  for (const call of calls) {
    assert.throws(() => call.bind(st)("nope"), isFormatError("m.sft", 'tensor "nope"'));
  }
});

// Malformed files: one test per case.

Deno.test("malformed: fewer than 8 bytes", async () => {
  const e = assertMalformed(new Uint8Array(3), "3 bytes, expected at least 8");
  assert.deepEqual([e.details.expected, e.details.found], ["at least 8 bytes", "3 bytes"]);
  await assert.rejects(
    readSafetensors(chunked(new Uint8Array(5), 2), { source: "s" }),
    isFormatError("s", "5 bytes"),
  );
});

Deno.test("malformed: header length 0", () => {
  assertMalformed(rawFile("", 0, 0n), "header length is 0 bytes");
});

Deno.test("malformed: header length larger than the file", async () => {
  const file = rawFile("{}", 0, 1000n);
  const e = assertMalformed(file, "header length is 1000 bytes", "only 2 bytes follow");
  assert.equal(e.details.offset, 0);
  await assert.rejects(readSafetensors(new Blob([file])), isFormatError("<blob>", "1000 bytes"));
  // 2^64 - 1 must not turn into a huge allocation or a RangeError.
  assertMalformed(rawFile("{}", 0, 2n ** 64n - 1n), "18446744073709551615 bytes");
});

Deno.test("malformed: header length over 100 MiB, in a stream that then stalls", async () => {
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, 2n ** 40n, true);
  const stalled = new ReadableStream<Uint8Array>({
    start: (controller) => controller.enqueue(prefix),
  });
  await assert.rejects(
    readSafetensors(stalled, { source: "huge" }),
    isFormatError("huge", "header length is 1099511627776 bytes", "at most 104857600"),
  );
});

Deno.test("malformed: header not UTF-8", () => {
  const file = rawFile("{}");
  file[8] = 0xff;
  assertMalformed(file, "header is not valid UTF-8");
});

Deno.test("malformed: header not JSON", () => {
  const e = assertMalformed(rawFile('{"a": '), "header is not valid JSON");
  assert.equal(e.details.offset, 8);
});

Deno.test("malformed: header not a JSON object", () => {
  assertMalformed(rawFile("[]"), "header is an array, expected a JSON object");
  assertMalformed(rawFile("null"), "header is null");
  assertMalformed(rawFile('"x"'), "header is a string");
  assertMalformed(rawFile("12"), "header is a number");
});

Deno.test("malformed: __metadata__ not an object of strings", () => {
  assertMalformed(rawFile({ __metadata__: ["a"] }), "__metadata__ is an array");
  const e = assertMalformed(
    rawFile({ __metadata__: { ok: "1", n: 2 } }),
    '__metadata__ value "n" is a number, expected an object of strings',
  );
  assert.equal(e.details.entry, "__metadata__");
});

Deno.test("malformed: tensor entry not an object", () => {
  const e = assertMalformed(rawFile({ w: [1, 2] }), 'tensor "w" is an array');
  assert.equal(e.details.entry, "w");
  assertMalformed(rawFile({ w: null }), 'tensor "w" is null');
  assertMalformed(rawFile({ w: 5 }), 'tensor "w" is a number');
});

Deno.test("malformed: unknown dtype", () => {
  const entry = { shape: [1], data_offsets: [0, 1] };
  const e = assertMalformed(
    rawFile({ w: { dtype: "F8_E4M3", ...entry } }, 1),
    'tensor "w" has dtype "F8_E4M3", expected one of F64, F32',
  );
  assert.deepEqual([e.details.entry, e.details.found], ["w", '"F8_E4M3"']);
  assertMalformed(rawFile({ w: { dtype: "f32", ...entry } }, 1), '"f32"');
  assertMalformed(rawFile({ w: { dtype: "constructor", ...entry } }, 1), '"constructor"');
  assertMalformed(rawFile({ w: { shape: [1], data_offsets: [0, 1] } }, 1), "dtype nothing");
});

Deno.test("malformed: shape not an array of non-negative safe integers", () => {
  for (const shape of [3, [-1], [1.5], [2 ** 53], ["2"], null]) {
    const header = { w: { dtype: "U8", shape, data_offsets: [0, 0] } };
    assertMalformed(rawFile(header), 'tensor "w" has shape', "non-negative integers");
  }
});

Deno.test("malformed: data_offsets not [begin, end] with 0 <= begin <= end", () => {
  for (const range of [[0], [0, 1, 2], [-1, 0], [0, 0.5], [2, 1], "0,1", [0, 2 ** 53]]) {
    const header = { w: { dtype: "U8", shape: [1], data_offsets: range } };
    assertMalformed(rawFile(header, 2), 'tensor "w" has data_offsets', "0 <= begin <= end");
  }
});

Deno.test("malformed: data_offsets end beyond the data section", async () => {
  const header = { w: { dtype: "F32", shape: [2], data_offsets: [4, 12] } };
  const file = rawFile(header, 10);
  const e = assertMalformed(
    file,
    'tensor "w" data_offsets [4, 12] exceed the data section (10 bytes)',
  );
  assert.equal(e.details.offset, file.length - 10 + 4);
  await assert.rejects(
    readSafetensors(new Blob([file]), { source: "bad.sft" }),
    isFormatError("bad.sft", "exceed the data section (10 bytes)"),
  );
});

Deno.test("malformed: byte length is not numel times the element size", () => {
  const header = { w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 20] } };
  const e = assertMalformed(
    rawFile(header, 24),
    'tensor "w" data_offsets [0, 20] span 20 bytes, expected 24 (shape [2,3] of F32)',
  );
  assert.deepEqual([e.details.expected, e.details.found], ["24 bytes", "20 bytes"]);
  // A shape whose product overflows float64 exactness still just mismatches.
  const huge = { w: { dtype: "U8", shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 8] } };
  assertMalformed(rawFile(huge, 8), 'tensor "w"', "span 8 bytes");
});

Deno.test("malformed: overlapping tensors", () => {
  const header = {
    a: { dtype: "U8", shape: [4], data_offsets: [0, 4] },
    b: { dtype: "U8", shape: [2], data_offsets: [6, 8] },
    c: { dtype: "U8", shape: [4], data_offsets: [3, 7] },
  };
  const e = assertMalformed(
    rawFile(header, 8),
    'tensor "c" data_offsets [3, 7] overlap tensor "a" data_offsets [0, 4]',
  );
  assert.equal(e.details.entry, "c");
  const nested = {
    a: { dtype: "U8", shape: [8], data_offsets: [0, 8] },
    b: { dtype: "U8", shape: [1], data_offsets: [2, 3] },
    c: { dtype: "U8", shape: [1], data_offsets: [6, 7] },
  };
  assertMalformed(rawFile(nested, 8), 'tensor "b"', 'overlap tensor "a"');
});

Deno.test("malformed: a stream that ends inside the header or the data", async () => {
  const file = serializeSafetensors(everyDtype(), METADATA);
  await assert.rejects(
    readSafetensors(chunked(file.subarray(0, 20), 7), { source: "cut" }),
    isFormatError("cut", "file ends after 20 bytes, inside the"),
  );
  const st = parseSafetensors(file);
  const { byteOffset } = st.info("f32");
  await assert.rejects(
    readSafetensors(chunked(file.subarray(0, byteOffset + 5), 3), { source: "cut" }),
    (e) => {
      isFormatError("cut", `file ends after ${byteOffset + 5} bytes, inside tensor "f32"`)(e);
      assert.equal((e as FormatError).details.entry, "f32");
      return true;
    },
  );
  // With a known size the same file is rejected before any data is read.
  await assert.rejects(
    readSafetensors(new Blob([file.subarray(0, byteOffset + 5)]), { source: "cut" }),
    isFormatError("cut", "exceed the data section"),
  );
});

Deno.test("readSafetensors rethrows the abort reason, before and during a read", async () => {
  const file = serializeSafetensors(everyDtype(), METADATA);
  const reason = new Error("stop");
  await assert.rejects(readSafetensors(file, { signal: AbortSignal.abort(reason) }), reason);
  await withServer(file, async (base) => {
    await assert.rejects(
      readSafetensors(`${base}/model.sft`, { signal: AbortSignal.abort(reason) }),
      reason,
    );
  });
  // A stream that sends the header and then stalls forever.
  const controller = new AbortController();
  const stalled = new ReadableStream<Uint8Array>({
    start: (c) => c.enqueue(file.subarray(0, file.length - 10)),
  });
  await assert.rejects(
    readSafetensors(stalled, {
      signal: controller.signal,
      onProgress: () => queueMicrotask(() => controller.abort(reason)),
    }),
    reason,
  );
});

// Fuzzing.

Deno.test("fuzz: 2000 corrupted files only ever throw FormatError", async () => {
  const file = serializeSafetensors(everyDtype(), METADATA);
  const headerEnd = 8 + Number(new DataView(file.buffer).getBigUint64(0, true));
  const rng = new Rng(2024);
  const tokens = [
    "null",
    "-1",
    "1e999",
    "[]",
    "{}",
    '"F8"',
    "0.5",
    "true",
    "[0,",
    "9007199254740993",
    ",",
    ":",
    '"',
  ];
  const encoder = new TextEncoder();
  let parsed = 0;
  let rejected = 0;
  // Kinds of damage: 0 truncates; 1 flips bits in the length or header; 2 overwrites header
  // bytes with a JSON token; 3 flips bits in the data. Every 20th file is streamed.
  for (let i = 0; i < 2000; i++) {
    let bytes = file.slice();
    const kind = rng.int(4);
    if (kind === 0) bytes = bytes.subarray(0, rng.int(bytes.length));
    const flips = 1 + rng.int(4);
    for (let f = 0; f < flips && kind !== 0; f++) {
      const at = kind === 3 ? headerEnd + rng.int(bytes.length - headerEnd) : rng.int(headerEnd);
      if (kind === 2) {
        bytes.set(encoder.encode(tokens[rng.int(tokens.length)]).subarray(0, headerEnd - at), at);
      } else bytes[at] ^= 1 + rng.int(255);
    }
    try {
      const st = i % 20 === 0
        ? await readSafetensors(chunked(bytes, 1 + rng.int(64)), { source: "fuzz" })
        : parseSafetensors(bytes, { source: "fuzz" });
      for (const name of st.names) {
        st.bytes(name);
        st.toFloat32(name);
        st.toFloat16(name);
        try {
          st.toInt32(name);
        } catch (e) {
          if (!(e instanceof FormatError)) throw e;
        }
      }
      parsed++;
    } catch (e) {
      if (!(e instanceof FormatError)) {
        throw new Error(`iteration ${i} (kind ${kind}) threw ${e}`, { cause: e });
      }
      assert.ok(e.message.startsWith('Cannot read safetensors "fuzz": '), e.message);
      rejected++;
    }
  }
  // Both outcomes must be exercised for the test to mean anything.
  assert.ok(parsed > 100 && rejected > 100, `parsed ${parsed}, rejected ${rejected}`);
});

// Golden files.

Deno.test("fixture: encodec-tiny quantizer_decode.safetensors", async () => {
  const path = "encodec-tiny/quantizer_decode.safetensors";
  const st = parseSafetensors(await readFixture(path), { source: path });
  // Facts from shared/golden/encodec-tiny/manifest.json.
  assert.deepEqual(st.names, [
    "codes_K1",
    "codes_K3",
    "codes_K8",
    "quantized_K1",
    "quantized_K3",
    "quantized_K8",
  ]);
  for (const k of [1, 3, 8]) {
    assert.equal(st.info(`codes_K${k}`).dtype, "I64");
    assert.deepEqual(st.info(`codes_K${k}`).shape, [1, k, 9]);
    assert.equal(st.info(`quantized_K${k}`).dtype, "F32");
    assert.deepEqual(st.info(`quantized_K${k}`).shape, [1, 8, 9]);
    const codes = st.toInt32(`codes_K${k}`);
    assert.ok(codes.every((c) => c >= 0 && c < 1024));
    const maxAbs = Math.max(...st.toFloat32(`quantized_K${k}`).map(Math.abs));
    assert.equal(maxAbs, Number(st.metadata[`max_abs:quantized_K${k}`]));
  }
  assert.deepEqual([...st.toInt32("codes_K1")].slice(0, 3), [896, 66, 309]);
  assert.equal(st.metadata.kind, "encodec.quantizer_decode");
  assert.equal(st.metadata.frames, "9");
  assert.equal(st.byteLength, 1728);
  const fromFile = await readSafetensors(new URL(path, FIXTURES));
  assert.deepEqual(fromFile.bytes("quantized_K8"), st.bytes("quantized_K8"));
});

/** The total number of elements of all tensors. */
function parameterCount(st: Safetensors): number {
  return st.names.reduce((n, name) => n + st.info(name).shape.reduce((a, b) => a * b, 1), 0);
}

Deno.test({
  name: "golden: valle-tiny model.sft (F16, real VALL-E layout)",
  async fn() {
    const url = new URL("valle-tiny/model.sft", FIXTURES);
    const st = await readSafetensors(url.pathname);
    assert.equal(st.names.length, 67);
    assert.ok(st.names.every((name) => st.info(name).dtype === "F16"));
    assert.equal(parameterCount(st), 945196);
    assert.deepEqual(Object.keys(st.metadata).sort(), ["config", "stats", "userdata"]);
    const config = JSON.parse(st.metadata.config);
    assert.deepEqual(config.size, { dim: 32, heads: 4, layers: 2, ffn: 4 });
    assert.deepEqual(st.info("classifiers.proj.0.weight").shape, [1025, 32]);
    const weight = st.toFloat16("classifiers.proj.0.weight");
    assert.equal(weight.buffer, st.bytes("classifiers.proj.0.weight").buffer);
    assert.ok(st.toFloat32("classifiers.proj.0.weight").every(Number.isFinite));
  },
});

Deno.test({
  name: "golden: encodec-tiny model.safetensors",
  async fn() {
    const url = new URL("encodec-tiny/model.safetensors", FIXTURES);
    const manifest = JSON.parse(
      await Deno.readTextFile(new URL("encodec-tiny/manifest.json", FIXTURES)),
    );
    const st = await readSafetensors(url);
    assert.equal(st.names.length, manifest.tensor_count);
    assert.equal(parameterCount(st), manifest.parameter_count);
    assert.ok(st.names.every((name) => st.info(name).dtype === "F32"));
    assert.ok("format" in st.metadata);
    assert.equal(st.byteLength, 4 * manifest.parameter_count);
    assert.deepEqual(st.info("decoder.layers.0.conv.weight_v").shape, [64, 8, 7]);
  },
});
