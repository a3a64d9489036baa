import { unpickleTorch } from "../../src/io/pickle.ts";
import { parseTorchCheckpoint } from "../../src/io/torch_checkpoint.ts";
import { openWeights } from "../../src/io/weights.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { FormatError } from "../../src/errors.ts";
import { readFixture } from "../_helpers.ts";
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert";

/** Pickle bytes from strings (latin1) and byte values. */
function pkl(...parts: (string | number)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else for (const ch of p) out.push(ch.charCodeAt(0));
  }
  return new Uint8Array(out);
}

function refuses(bytes: Uint8Array, message: RegExp): void {
  throws(() => unpickleTorch(bytes, "evil.pkl"), (e) => {
    ok(e instanceof FormatError, String(e));
    ok(message.test(e.message), e.message);
    return true;
  });
}

Deno.test("unpickleTorch() refuses a pickle that names os.system, before calling anything", () => {
  refuses(pkl(0x80, 2, "cos\nsystem\n", "q", 0, "X", 2, 0, 0, 0, "ls", 0x85, "R."), /"os\.system"/);
});

Deno.test("unpickleTorch() refuses any non-tensor global, even one that is never called", () => {
  refuses(pkl(0x80, 2, "c__builtin__\ngetattr\n", "."), /"__builtin__\.getattr"/);
  refuses(
    pkl(0x80, 2, "ctorch.nn.modules.linear\nLinear\n", "."),
    /"torch\.nn\.modules\.linear\.Linear"/,
  );
  refuses(pkl(0x80, 2, "ctorch\nload\n", "."), /"torch\.load"/);
  // Protocol 4 names globals from strings on the stack.
  refuses(
    pkl(0x80, 4, 0x8c, 8, "builtins", 0x94, 0x8c, 4, "eval", 0x94, 0x93, "."),
    /"builtins\.eval"/,
  );
});

Deno.test("unpickleTorch() refuses opcodes that instantiate objects or run the extension registry", () => {
  refuses(pkl(0x80, 2, "(i__builtin__\nlist\n."), /opcode 0x69/); // INST
  refuses(pkl(0x80, 2, "(o."), /opcode 0x6f/); // OBJ
  refuses(pkl(0x80, 2, ")", 0x81, "."), /opcode 0x81/); // NEWOBJ
  refuses(pkl(0x80, 2, 0x82, 1, "."), /opcode 0x82/); // EXT1
  refuses(pkl(0x80, 2, "Pfoo\n."), /opcode 0x50/); // PERSID (text)
});

Deno.test("unpickleTorch() refuses misuse of the allowed globals", () => {
  // A storage type called as a function.
  refuses(pkl(0x80, 2, "ctorch\nFloatStorage\n)R."), /only names a storage type/);
  // _rebuild_tensor_v2 without a storage.
  refuses(
    pkl(0x80, 2, "ctorch._utils\n_rebuild_tensor_v2\n(K", 0, "K", 0, ")", ")", 0x89, "}tR."),
    /_rebuild_tensor_v2 arguments/,
  );
  // A persistent id that is not a storage.
  refuses(pkl(0x80, 2, "X", 3, 0, 0, 0, "abc", "Q."), /persistent id/);
  // BUILD on a list; truncated data; an unknown memo entry.
  refuses(pkl(0x80, 2, "]}b."), /BUILD/);
  refuses(pkl(0x80, 2, "X", 9, 0, 0, 0, "ab"), /past the end/);
  refuses(pkl(0x80, 2, "h", 4, "."), /memo entry 4/);
});

Deno.test("unpickleTorch() reads plain data", () => {
  const value = unpickleTorch(
    pkl(
      0x80,
      2,
      "}q",
      0,
      "(X",
      1,
      0,
      0,
      0,
      "a",
      "K",
      7,
      "X",
      1,
      0,
      0,
      0,
      "b",
      "]q",
      1,
      "(",
      0x88,
      "Ne",
      "u.",
    ),
    "plain.pkl",
  ) as { entries: Map<unknown, unknown> };
  deepStrictEqual([...value.entries], [["a", 7], ["b", [true, null]]]);
});

Deno.test("parseTorchCheckpoint() reads deflated storages, dtypes, strides, shared storages and unwraps state_dict", async () => {
  const ckpt = await parseTorchCheckpoint(await readFixture("torch/mixed.bin"), {
    source: "mixed.bin",
  });
  const expected = JSON.parse(new TextDecoder().decode(await readFixture("torch/mixed.json")));
  deepStrictEqual([...ckpt.names].sort(), Object.keys(expected).sort());
  for (const [name, values] of Object.entries(expected)) {
    deepStrictEqual(Array.from(ckpt.toFloat32(name)), values, name);
  }
  deepStrictEqual(ckpt.info("transposed").shape, [4, 3]);
  strictEqual(ckpt.info("half").dtype, "F16");
  strictEqual(ckpt.info("longs").dtype, "I64");
  throws(() => ckpt.toFloat32("missing"), FormatError);
});

Deno.test("openWeights() reads vocos-tiny's pytorch_model.bin with the same tensors as its safetensors", async () => {
  const bin = await openWeights(
    await readFixture("vocos-tiny/pytorch_model.bin"),
    "pytorch_model.bin",
  );
  const st = parseSafetensors(await readFixture("vocos-tiny/model.safetensors"));
  deepStrictEqual([...bin.names].sort(), [...st.names].sort());
  for (const name of st.names) {
    deepStrictEqual(bin.info(name).shape, st.info(name).shape, name);
    deepStrictEqual(bin.toFloat32(name), st.toFloat32(name), name);
  }
});

/** A stored zip of the given files, CRCs included. */
function zip(files: Record<string, Uint8Array>): Uint8Array {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (d: Uint8Array) => {
    let c = 0xffffffff;
    for (const b of d) c = table[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(files)) {
    const n = new TextEncoder().encode(name);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint32(14, crc(data), true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, n.length, true);
    const dir = new DataView(new ArrayBuffer(46));
    dir.setUint32(0, 0x02014b50, true);
    dir.setUint32(16, crc(data), true);
    dir.setUint32(20, data.length, true);
    dir.setUint32(24, data.length, true);
    dir.setUint16(28, n.length, true);
    dir.setUint32(42, offset, true);
    parts.push(new Uint8Array(local.buffer), n, data);
    central.push(new Uint8Array(dir.buffer), n);
    offset += 30 + n.length + data.length;
  }
  const size = central.reduce((a, b) => a + b.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, Object.keys(files).length, true);
  end.setUint16(10, Object.keys(files).length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  const all = [...parts, ...central, new Uint8Array(end.buffer)];
  const out = new Uint8Array(all.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const p of all) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("parseTorchCheckpoint() refuses a checkpoint whose pickle names a forbidden global", async () => {
  const evil = zip({
    "archive/data.pkl": pkl(0x80, 2, "cposix\nsystem\n", "X", 2, 0, 0, 0, "id", 0x85, "R."),
    "archive/byteorder": new TextEncoder().encode("little"),
  });
  await rejects(parseTorchCheckpoint(evil, { source: "evil.bin" }), (e) => {
    ok(
      e instanceof FormatError && /"posix\.system"/.test(e.message) && /evil\.bin/.test(e.message),
      String(e),
    );
    return true;
  });
});

Deno.test("parseTorchCheckpoint() refuses corrupt, big-endian and storage-less archives", async () => {
  const good = await readFixture("vocos-tiny/pytorch_model.bin");
  const corrupt = good.slice();
  corrupt[corrupt.length - 2000] ^= 0xff; // inside a storage: CRC mismatch
  await rejects(parseTorchCheckpoint(corrupt), /CRC-32/);
  await rejects(parseTorchCheckpoint(good.subarray(0, good.length - 10)), FormatError);
  const dict = pkl(0x80, 2, "}.");
  await rejects(
    parseTorchCheckpoint(
      zip({ "a/data.pkl": dict, "a/byteorder": new TextEncoder().encode("big") }),
    ),
    /byte order is "big"/,
  );
  await rejects(parseTorchCheckpoint(zip({ "a/data.pkl": dict })), /no tensors/);
  await rejects(parseTorchCheckpoint(zip({ "data.pkl": dict })), /data\.pkl/);
});
