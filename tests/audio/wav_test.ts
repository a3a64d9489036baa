import { decodeWav, encodeWav } from "../../src/audio/wav.ts";
import { FormatError, OptionError } from "../../src/errors.ts";
import { Rng } from "../_helpers.ts";
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert";

/** A RIFF/WAVE file from chunks (id, body); odd bodies get their pad byte. */
function riff(chunks: [string, Uint8Array][]): Uint8Array {
  const parts: number[] = [];
  const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
  const u32 = (v: number) => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24];
  for (const [id, body] of chunks) {
    parts.push(...ascii(id), ...u32(body.length), ...body);
    if (body.length % 2) parts.push(0);
  }
  return new Uint8Array([...ascii("RIFF"), ...u32(parts.length + 4), ...ascii("WAVE"), ...parts]);
}

function fmt(
  code: number,
  channels: number,
  rate: number,
  bits: number,
  extensible = false,
): Uint8Array {
  const v = new DataView(new ArrayBuffer(extensible ? 40 : 16));
  const align = channels * (bits / 8);
  v.setUint16(0, extensible ? 0xfffe : code, true);
  v.setUint16(2, channels, true);
  v.setUint32(4, rate, true);
  v.setUint32(8, rate * align, true);
  v.setUint16(12, align, true);
  v.setUint16(14, bits, true);
  if (extensible) {
    v.setUint16(16, 22, true);
    v.setUint16(18, bits, true);
    v.setUint32(20, 0x3, true);
    const guid = [code, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71];
    guid.forEach((b, i) => v.setUint8(24 + i, b));
  }
  return new Uint8Array(v.buffer);
}

function bytesOf(write: (v: DataView) => void, n: number): Uint8Array {
  const v = new DataView(new ArrayBuffer(n));
  write(v);
  return new Uint8Array(v.buffer);
}

Deno.test("encodeWav()/decodeWav() round-trip float32 exactly and PCM16 within half a step", () => {
  const rng = new Rng(1);
  const left = rng.normals(101, 0.4);
  const right = rng.normals(101, 0.4);
  left[0] = 3; // clipped in PCM16
  const float = decodeWav(encodeWav([left, right], 44100, { format: "float32" }));
  strictEqual(float.sampleRate, 44100);
  deepStrictEqual(float.channels, [left, right]);
  const pcm = decodeWav(encodeWav([left, right], 22050));
  for (const [c, original] of [[0, left], [1, right]] as const) {
    for (let i = 0; i < 101; i++) {
      const clipped = Math.max(-1, Math.min(1, original[i]));
      ok(Math.abs(pcm.channels[c][i] - (clipped * 32767) / 32768) <= 0.5 / 32768 + 1e-9);
    }
  }
  strictEqual(decodeWav(encodeWav(left, 8000)).channels.length, 1);
});

Deno.test("decodeWav() reads 8/24/32-bit PCM, float64, extensible and extra chunks", () => {
  const pcm8 = riff([["fmt ", fmt(1, 1, 8000, 8)], ["data", new Uint8Array([0, 128, 255])]]);
  deepStrictEqual(Array.from(decodeWav(pcm8).channels[0]), [-1, 0, 127 / 128]);

  const pcm24 = bytesOf((v) => {
    v.setUint8(0, 0xff), v.setUint8(1, 0xff), v.setUint8(2, 0x7f); // 8388607
    v.setUint8(3, 0x00), v.setUint8(4, 0x00), v.setUint8(5, 0x80); // -8388608
    v.setUint8(6, 0xff), v.setUint8(7, 0xff), v.setUint8(8, 0xff); // -1
  }, 9);
  const list = new Uint8Array([1, 2, 3]); // odd-sized LIST chunk before fmt, padded
  const w24 = decodeWav(
    riff([["LIST", list], ["fmt ", fmt(1, 1, 96000, 24, true)], ["data", pcm24]]),
  );
  deepStrictEqual(Array.from(w24.channels[0]), [8388607 / 8388608, -1, -1 / 8388608]);
  strictEqual(w24.sampleRate, 96000);

  const pcm32 = bytesOf((v) => (v.setInt32(0, -2147483648, true), v.setInt32(4, 1 << 30, true)), 8);
  deepStrictEqual(
    Array.from(
      decodeWav(riff([["fmt ", fmt(1, 2, 16000, 32)], ["data", pcm32]])).channels.flatMap((
        c,
      ) => [...c]),
    ),
    [-1, 0.5],
  );

  const f64 = bytesOf(
    (v) => (v.setFloat64(0, 0.25, true), v.setFloat64(8, -1.5, true), v.setFloat64(16, 2, true)),
    24,
  );
  const three = decodeWav(
    riff([["fmt ", fmt(3, 3, 48000, 64, true)], ["fact", new Uint8Array(4)], ["data", f64]]),
  );
  deepStrictEqual(three.channels.map((c) => c[0]), [0.25, -1.5, 2]);

  strictEqual(three.warnings.length, 0);
});

Deno.test("decodeWav() reads a data chunk whose size is unset or past the end up to the end, with a warning", () => {
  const header = riff([["fmt ", fmt(1, 1, 8000, 16)], ["data", new Uint8Array(0)]]);
  const tail = bytesOf((v) => (v.setInt16(0, 16384, true), v.setInt16(2, -16384, true)), 4);
  const file = new Uint8Array([...header, ...tail]);
  const sizeAt = header.length - 4; // 40: the data chunk starts at byte 36
  const unset = "its size unset, as streaming writers leave it";
  for (
    const [size, declared, why] of [
      [0xffffffff, "0xFFFFFFFF", unset],
      [0, "0", unset],
      [100, "100", "the file is truncated"], // a download cut short
    ] as const
  ) {
    new DataView(file.buffer).setUint32(sizeAt, size, true);
    const wav = decodeWav(file, "cut.wav");
    deepStrictEqual(Array.from(wav.channels[0]), [0.5, -0.5], declared);
    deepStrictEqual(wav.warnings, [{
      message: `the data chunk at byte 36 declares ${declared} bytes and 4 remain (${why}): ` +
        "read the 4 bytes to the end of the file",
      file: "cut.wav",
      entry: "data",
      offset: 40,
      expected: `${declared} bytes`,
      found: "4 bytes",
    }]);
  }
  // A partial last frame (3 bytes of a 4-byte stereo frame) is dropped, with a warning.
  const stereo = riff([["fmt ", fmt(1, 2, 8000, 16)], ["data", new Uint8Array(7)]]);
  const wav = decodeWav(stereo);
  strictEqual(wav.channels[0].length, 1);
  strictEqual(wav.warnings.length, 1);
  ok(wav.warnings[0].message.includes("3 byte(s) of a 4-byte frame at byte 48"));
  strictEqual(wav.warnings[0].offset, 48);
  // A well-formed file has none.
  deepStrictEqual(decodeWav(encodeWav(new Float32Array(3), 8000)).warnings, []);
});

Deno.test("decodeWav() refuses absurd sample rates, naming the field, its offset and the range", () => {
  const data = ["data", new Uint8Array(4)] as [string, Uint8Array];
  for (const rate of [0, 4294967295, 1_000_001]) {
    throws(() => decodeWav(riff([["fmt ", fmt(1, 1, rate, 16)], data]), "odd.wav"), (e) => {
      ok(e instanceof FormatError, String(e));
      strictEqual(
        e.message,
        `Cannot read WAV "odd.wav": the "fmt " sample rate at byte 24 is ${rate} Hz, ` +
          "expected 1 to 1000000 Hz",
      );
      deepStrictEqual(e.details, {
        file: "odd.wav",
        entry: '"fmt " sample rate',
        offset: 24,
        expected: "1 to 1000000 Hz",
        found: `${rate} Hz`,
      });
      return true;
    });
  }
  for (const rate of [1, 1_000_000]) {
    strictEqual(decodeWav(riff([["fmt ", fmt(1, 1, rate, 16)], data])).sampleRate, rate);
  }
});

function refuses(bytes: Uint8Array, message: RegExp): void {
  throws(() => decodeWav(bytes, "bad.wav"), (e) => {
    ok(e instanceof FormatError, String(e));
    ok(message.test(e.message) && e.message.includes("bad.wav"), e.message);
    return true;
  });
}

Deno.test("decodeWav() says what it found in malformed or unsupported files", () => {
  const data = ["data", new Uint8Array(4)] as [string, Uint8Array];
  refuses(new TextEncoder().encode("OggS...."), /8 bytes at the start, expected "RIFF"/);
  refuses(
    new TextEncoder().encode("RIFF\0\0\0\0AVI LIST"),
    /"RIFF…AVI ".*expected "RIFF" … "WAVE"/,
  );
  refuses(riff([data]), /no "fmt " chunk/);
  refuses(riff([["fmt ", fmt(1, 1, 8000, 16)]]), /no "data" chunk/);
  refuses(
    riff([["fmt ", fmt(2, 1, 8000, 4)], data]),
    /format code 2 with 4 bits per sample is not supported/,
  );
  refuses(
    riff([["fmt ", fmt(1, 1, 8000, 12)], data]),
    /PCM with 12 bits per sample is not supported/,
  );
  refuses(riff([["fmt ", fmt(3, 1, 8000, 16)], data]), /float with 16 bits/);
  refuses(riff([["fmt ", fmt(1, 0, 8000, 16)], data]), /0 channel\(s\) at 8000 Hz/);
  refuses(riff([["fmt ", new Uint8Array(12)], data]), /"fmt " chunk has 12 bytes/);
  const guid = fmt(1, 1, 8000, 16, true);
  guid[39] = 0; // not the KSDATAFORMAT GUID
  refuses(riff([["fmt ", guid], data]), /format code -1/);
  const truncated = riff([["LIST", new Uint8Array(100)], ["fmt ", fmt(1, 1, 8000, 16)], data])
    .subarray(0, 80);
  refuses(truncated, /chunk "LIST" at byte 12 declares 100 bytes, only 60 remain/);
});

Deno.test("encodeWav() refuses empty or unequal channels and bad rates", () => {
  throws(() => encodeWav([], 24000), OptionError);
  throws(() => encodeWav([new Float32Array(2), new Float32Array(3)], 24000), OptionError);
  throws(() => encodeWav(new Float32Array(2), 0), OptionError);
});
