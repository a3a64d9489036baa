/**
 * The few WASI preview1 functions espeak-ng's WebAssembly build calls, over a read-only in-memory
 * file system: one preopened directory holding the data files, no arguments, no environment,
 * stdout and stderr captured as text. Any other WASI function the module imports throws a
 * {@linkcode ValleError} naming it, so a build that starts needing more fails loudly.
 *
 * This module is browser compatible.
 *
 * @module
 */

import { ValleError } from "../../errors.ts";

/** The WASI errno values this shim returns. */
const ERRNO = { SUCCESS: 0, BADF: 8, INVAL: 28, ISDIR: 31, NOENT: 44, NOTDIR: 54, ROFS: 69 };
/** WASI file types. */
const DIRECTORY = 3;
const REGULAR_FILE = 4;
/** `oflags` that would create or change a file. */
const O_CREAT_EXCL_TRUNC = 1 | 4 | 8;
/** The `fd_write` right: asked for by any open that may write. */
const RIGHT_FD_WRITE = 1n << 6n;
/** The first descriptor after stdin, stdout and stderr: the preopened data directory. */
const PREOPEN_FD = 3;

/** An open file or directory. */
interface Handle {
  /** The path inside the file system, without leading or trailing `/` ("" is the root). */
  path: string;
  /** The file's bytes, or undefined for a directory. */
  bytes?: Uint8Array;
  /** Read position (file) or directory cookie. */
  position: number;
}

/** What {@linkcode createWasi} returns: the import object and what the module wrote. */
export interface Wasi {
  /** The `wasi_snapshot_preview1` functions, for `WebAssembly.instantiate`. */
  imports: WebAssembly.ModuleImports;
  /** Connects the shim to the instance's memory; call once, right after instantiation. */
  bind(memory: WebAssembly.Memory): void;
  /** Everything written to stdout and stderr so far. */
  output(): string;
}

/**
 * Creates the shim for `module`: every WASI function it imports is either implemented here or
 * replaced by one that throws.
 *
 * @param module The compiled WebAssembly module.
 * @param root The name the preopened directory has inside the module (e.g. `/espeak-ng-data`).
 * @param files The directory's files by relative path (`lang/gmw/de`); directories are implied.
 * @returns The shim.
 *
 * @example A module that imports nothing gets an empty import object
 * ```ts
 * import { createWasi } from "./wasi.ts";
 * const empty = new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
 * const wasi = createWasi(empty, "/data", new Map());
 * console.assert(Object.keys(wasi.imports).length === 0);
 * ```
 */
export function createWasi(
  module: WebAssembly.Module,
  root: string,
  files: ReadonlyMap<string, Uint8Array>,
): Wasi {
  const directories = new Set([""]);
  for (const path of files.keys()) {
    for (let i = path.indexOf("/"); i > 0; i = path.indexOf("/", i + 1)) {
      directories.add(path.slice(0, i));
    }
  }
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const rootName = encoder.encode(root);
  const handles = new Map<number, Handle>([[PREOPEN_FD, { path: "", position: 0 }]]);
  let nextFd = PREOPEN_FD + 1;
  let memory: WebAssembly.Memory | undefined;
  let written = "";

  const view = () => new DataView(memory!.buffer);
  const bytes = () => new Uint8Array(memory!.buffer);
  const readPath = (ptr: number, len: number) => decoder.decode(bytes().slice(ptr, ptr + len));

  /** Resolves `name` against the directory `fd`; "." and ".." are handled, "" is the root. */
  function resolve(fd: number, name: string): string | undefined {
    const base = handles.get(fd);
    if (!base || base.bytes) return undefined;
    const parts = base.path ? base.path.split("/") : [];
    for (const part of name.split("/")) {
      if (part === "..") parts.pop();
      else if (part && part !== ".") parts.push(part);
    }
    return parts.join("/");
  }

  function writeFilestat(ptr: number, path: string): void {
    const file = files.get(path);
    const v = view();
    for (let offset = 0; offset < 64; offset += 8) v.setBigUint64(ptr + offset, 0n, true);
    v.setUint8(ptr + 16, file ? REGULAR_FILE : DIRECTORY);
    v.setBigUint64(ptr + 24, 1n, true);
    v.setBigUint64(ptr + 32, BigInt(file?.length ?? 0), true);
  }

  /** The entries directly inside directory `path`, sorted, each with its WASI file type. */
  function listDirectory(path: string): [string, number][] {
    const prefix = path ? `${path}/` : "";
    const entries = new Map<string, number>();
    const add = (child: string, type: number) => {
      if (!child.startsWith(prefix) || !child.slice(prefix.length)) return;
      const name = child.slice(prefix.length);
      if (!name.includes("/")) entries.set(name, type);
    };
    for (const file of files.keys()) add(file, REGULAR_FILE);
    for (const directory of directories) add(directory, DIRECTORY);
    return [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  const implemented: Record<string, (...args: never[]) => number | void> = {
    environ_sizes_get(countPtr: number, sizePtr: number): number {
      view().setUint32(countPtr, 0, true);
      view().setUint32(sizePtr, 0, true);
      return ERRNO.SUCCESS;
    },
    environ_get(): number {
      return ERRNO.SUCCESS;
    },
    fd_prestat_get(fd: number, ptr: number): number {
      if (fd !== PREOPEN_FD) return ERRNO.BADF;
      view().setUint32(ptr, 0, true);
      view().setUint32(ptr + 4, rootName.length, true);
      return ERRNO.SUCCESS;
    },
    fd_prestat_dir_name(fd: number, ptr: number, len: number): number {
      if (fd !== PREOPEN_FD) return ERRNO.BADF;
      bytes().set(rootName.subarray(0, len), ptr);
      return ERRNO.SUCCESS;
    },
    fd_fdstat_get(fd: number, ptr: number): number {
      const handle = handles.get(fd);
      if (!handle && fd > 2) return ERRNO.BADF;
      const v = view();
      v.setUint8(ptr, handle ? (handle.bytes ? REGULAR_FILE : DIRECTORY) : 2); // 2: character device
      v.setUint16(ptr + 2, 0, true);
      v.setBigUint64(ptr + 8, 0xffffffffn, true);
      v.setBigUint64(ptr + 16, 0xffffffffn, true);
      return ERRNO.SUCCESS;
    },
    path_open(
      fd: number,
      _dirflags: number,
      pathPtr: number,
      pathLen: number,
      oflags: number,
      rightsBase: bigint,
      _rightsInheriting: bigint,
      _fdflags: number,
      fdPtr: number,
    ): number {
      const path = resolve(fd, readPath(pathPtr, pathLen));
      if (path === undefined) return ERRNO.BADF;
      if (oflags & O_CREAT_EXCL_TRUNC || rightsBase & RIGHT_FD_WRITE) return ERRNO.ROFS;
      const file = files.get(path);
      if (!file && !directories.has(path)) return ERRNO.NOENT;
      if (oflags & 2 && file) return ERRNO.NOTDIR; // O_DIRECTORY
      handles.set(nextFd, { path, bytes: file, position: 0 });
      view().setUint32(fdPtr, nextFd++, true);
      return ERRNO.SUCCESS;
    },
    path_filestat_get(fd: number, _flags: number, pathPtr: number, pathLen: number, ptr: number) {
      const path = resolve(fd, readPath(pathPtr, pathLen));
      if (path === undefined) return ERRNO.BADF;
      if (!files.has(path) && !directories.has(path)) return ERRNO.NOENT;
      writeFilestat(ptr, path);
      return ERRNO.SUCCESS;
    },
    fd_read(fd: number, iovs: number, iovsLen: number, nreadPtr: number): number {
      const handle = handles.get(fd);
      if (!handle) return ERRNO.BADF;
      if (!handle.bytes) return ERRNO.ISDIR;
      const v = view();
      let total = 0;
      for (let i = 0; i < iovsLen; i++) {
        const ptr = v.getUint32(iovs + 8 * i, true);
        const len = v.getUint32(iovs + 8 * i + 4, true);
        const chunk = handle.bytes.subarray(handle.position, handle.position + len);
        bytes().set(chunk, ptr);
        handle.position += chunk.length;
        total += chunk.length;
        if (chunk.length < len) break;
      }
      v.setUint32(nreadPtr, total, true);
      return ERRNO.SUCCESS;
    },
    fd_seek(fd: number, offset: bigint, whence: number, resultPtr: number): number {
      const handle = handles.get(fd);
      if (!handle?.bytes) return handle ? ERRNO.ISDIR : ERRNO.BADF;
      const base = [0, handle.position, handle.bytes.length][whence];
      const position = base === undefined ? -1 : base + Number(offset);
      if (position < 0) return ERRNO.INVAL;
      handle.position = position;
      view().setBigUint64(resultPtr, BigInt(position), true);
      return ERRNO.SUCCESS;
    },
    fd_readdir(fd: number, buf: number, bufLen: number, cookie: bigint, usedPtr: number): number {
      const handle = handles.get(fd);
      if (!handle) return ERRNO.BADF;
      if (handle.bytes) return ERRNO.NOTDIR;
      // Each entry: d_next u64, d_ino u64, d_namlen u32, d_type u8, padding, then the name.
      // The last entry may be cut at bufLen; wasi-libc then asks again with a bigger buffer.
      const out = new Uint8Array(bufLen);
      let used = 0;
      const entries = listDirectory(handle.path);
      for (let i = Number(cookie); i < entries.length && used < bufLen; i++) {
        const name = encoder.encode(entries[i][0]);
        const entry = new Uint8Array(24 + name.length);
        const e = new DataView(entry.buffer);
        e.setBigUint64(0, BigInt(i + 1), true);
        e.setBigUint64(8, BigInt(i + 1), true);
        e.setUint32(16, name.length, true);
        e.setUint8(20, entries[i][1]);
        entry.set(name, 24);
        const fit = entry.subarray(0, bufLen - used);
        out.set(fit, used);
        used += fit.length;
      }
      bytes().set(out.subarray(0, used), buf);
      view().setUint32(usedPtr, used, true);
      return ERRNO.SUCCESS;
    },
    fd_close(fd: number): number {
      if (fd === PREOPEN_FD || !handles.delete(fd)) return ERRNO.BADF;
      return ERRNO.SUCCESS;
    },
    fd_write(fd: number, iovs: number, iovsLen: number, nwrittenPtr: number): number {
      if (fd !== 1 && fd !== 2) return ERRNO.BADF;
      const v = view();
      let total = 0;
      for (let i = 0; i < iovsLen; i++) {
        const ptr = v.getUint32(iovs + 8 * i, true);
        const len = v.getUint32(iovs + 8 * i + 4, true);
        written += decoder.decode(bytes().subarray(ptr, ptr + len), { stream: true });
        total += len;
      }
      v.setUint32(nwrittenPtr, total, true);
      return ERRNO.SUCCESS;
    },
    proc_exit(code: number): void {
      throw new ValleError(
        `Cannot run espeak-ng: it exited with status ${code}, expected to return`,
      );
    },
  };

  const imports: WebAssembly.ModuleImports = {};
  for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
    if (from !== "wasi_snapshot_preview1" || kind !== "function") continue;
    imports[name] = implemented[name] ?? (() => {
      throw new ValleError(
        `Cannot run espeak-ng: it called the WASI function ${name}, which this read-only shim ` +
          `lacks, expected only file reads`,
      );
    });
  }
  return {
    imports,
    bind(instanceMemory) {
      memory = instanceMemory;
    },
    output: () => written,
  };
}
