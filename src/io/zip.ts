/**
 * A minimal zip reader for checkpoints: the central directory (zip64 included), stored and
 * deflated entries (inflated with the web `DecompressionStream("deflate-raw")`), and CRC-32
 * checks. It reads archives held in memory; it does not write, and it refuses encryption and
 * other compression methods.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { FormatError } from "../errors.ts";

/** One file of a zip archive. */
export interface ZipEntry {
  /** The path inside the archive. */
  readonly name: string;
  /** 0 (stored) or 8 (deflate). */
  readonly method: number;
  /** Where the entry's data starts in the archive. */
  readonly dataOffset: number;
  /** Bytes of data in the archive. */
  readonly compressedSize: number;
  /** Bytes once inflated. */
  readonly size: number;
  /** The CRC-32 of the inflated bytes. */
  readonly crc32: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** True when `bytes` start with a zip local-file signature ("PK\x03\x04"). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3 &&
    bytes[3] === 4;
}

/**
 * Lists the entries of a zip archive from its central directory.
 *
 * @param bytes The whole archive.
 * @param file The archive's name in error messages.
 * @returns The entries in directory order.
 * @throws {FormatError} The archive is truncated, inconsistent, encrypted or uses another
 * compression method than stored or deflate.
 *
 * @example
 * ```ts ignore
 * const entries = readZipDirectory(bytes, "pytorch_model.bin");
 * ```
 */
export function readZipDirectory(bytes: Uint8Array, file: string): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (what: string, offset?: number): never => {
    throw new FormatError(`Cannot read zip archive "${file}": ${what}`, { file, offset });
  };
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail("no end-of-central-directory record found");
  let count = view.getUint16(eocd + 10, true);
  let dirOffset = view.getUint32(eocd + 16, true);
  if (eocd >= 20 && view.getUint32(eocd - 20, true) === ZIP64_LOCATOR) {
    const at = Number(view.getBigUint64(eocd - 12, true));
    if (at + 56 > bytes.length || view.getUint32(at, true) !== ZIP64_EOCD) {
      fail("broken zip64 end-of-central-directory record", at);
    }
    count = Number(view.getBigUint64(at + 32, true));
    dirOffset = Number(view.getBigUint64(at + 48, true));
  }
  const entries: ZipEntry[] = [];
  let at = dirOffset;
  for (let n = 0; n < count; n++) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== CENTRAL) {
      fail(`central directory entry ${n} is missing or truncated`, at);
    }
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    const crc32 = view.getUint32(at + 16, true);
    let compressedSize = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let localOffset = view.getUint32(at + 42, true);
    const nameStart = at + 46;
    if (nameStart + nameLength + extraLength > bytes.length) fail("truncated entry name", at);
    const name = UTF8.decode(bytes.subarray(nameStart, nameStart + nameLength));
    // Zip64 extra field: the 64-bit values of the fields saturated at 0xffffffff, in order.
    let extra = nameStart + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = view.getUint16(extra, true);
      const length = view.getUint16(extra + 2, true);
      if (id === 1) {
        let field = extra + 4;
        const next = (): number => {
          if (field + 8 > extra + 4 + length) fail(`broken zip64 field of "${name}"`, extra);
          const v = Number(view.getBigUint64(field, true));
          field += 8;
          return v;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localOffset === 0xffffffff) localOffset = next();
      }
      extra += 4 + length;
    }
    if (flags & 1) fail(`entry "${name}" is encrypted`, at);
    if (method !== 0 && method !== 8) {
      fail(`entry "${name}" uses compression method ${method}, expected 0 (stored) or 8 (deflate)`);
    }
    if (localOffset + 30 > bytes.length || view.getUint32(localOffset, true) !== LOCAL) {
      fail(`local header of "${name}" is missing`, localOffset);
    }
    const dataOffset = localOffset + 30 + view.getUint16(localOffset + 26, true) +
      view.getUint16(localOffset + 28, true);
    if (dataOffset + compressedSize > bytes.length) {
      fail(`data of "${name}" runs past the end of the archive`, dataOffset);
    }
    entries.push({ name, method, dataOffset, compressedSize, size, crc32 });
    at = extraEnd + commentLength;
  }
  return entries;
}

/**
 * The bytes of one entry: a view of the archive for stored entries, inflated for deflated ones,
 * checked against the entry's size and CRC-32.
 *
 * @param bytes The whole archive.
 * @param entry An entry from {@linkcode readZipDirectory}.
 * @param file The archive's name in error messages.
 * @returns The entry's bytes.
 * @throws {FormatError} The data does not inflate, or its size or CRC-32 is wrong.
 *
 * @example
 * ```ts ignore
 * const pickle = await readZipEntry(bytes, entries[0], "pytorch_model.bin");
 * ```
 */
export async function readZipEntry(
  bytes: Uint8Array,
  entry: ZipEntry,
  file: string,
): Promise<Uint8Array> {
  const raw = bytes.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize);
  let data = raw;
  if (entry.method === 8) {
    try {
      const stream = new Blob([raw as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
        new DecompressionStream("deflate-raw"),
      );
      data = new Uint8Array(await new Response(stream).arrayBuffer());
    } catch (e) {
      throw new FormatError(
        `Cannot read zip archive "${file}": entry "${entry.name}" does not inflate (${e})`,
        { file, entry: entry.name, offset: entry.dataOffset },
      );
    }
  }
  const crc = crc32(data);
  if (data.length !== entry.size || crc !== entry.crc32) {
    throw new FormatError(
      `Cannot read zip archive "${file}": entry "${entry.name}" has ${data.length} bytes with ` +
        `CRC-32 ${hex(crc)}, expected ${entry.size} bytes with CRC-32 ${hex(entry.crc32)}`,
      {
        file,
        entry: entry.name,
        expected: `${entry.size} bytes, CRC-32 ${hex(entry.crc32)}`,
        found: `${data.length} bytes, CRC-32 ${hex(crc)}`,
      },
    );
  }
  return data;
}

function hex(v: number): string {
  return `0x${v.toString(16).padStart(8, "0")}`;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, as zip uses). */
function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const table = crcTable;
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
