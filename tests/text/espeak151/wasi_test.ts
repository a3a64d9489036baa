/**
 * The read-only WASI shim, called directly on a small memory: what each function writes there and
 * returns, against the WASI preview1 layouts and errno values.
 */

import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { ValleError } from "../../../src/errors.ts";
import { createWasi, type Wasi } from "../../../src/text/espeak151/wasi.ts";

type Call = (...args: (number | bigint)[]) => number;

/** A valid module that imports `names` from wasi_snapshot_preview1, all typed `() -> ()`. */
function moduleImporting(names: string[]): WebAssembly.Module {
  const text = (s: string) => [s.length, ...new TextEncoder().encode(s)];
  const leb = (n: number): number[] => n < 128 ? [n] : [(n & 127) | 128, ...leb(n >> 7)];
  const imports = names.flatMap((name) => [...text("wasi_snapshot_preview1"), ...text(name), 0, 0]);
  const body = [...leb(names.length), ...imports];
  return new WebAssembly.Module(
    new Uint8Array([
      0,
      97,
      115,
      109,
      1,
      0,
      0,
      0,
      1,
      4,
      1,
      0x60,
      0,
      0,
      2,
      ...leb(body.length),
      ...body,
    ]),
  );
}

const FUNCTIONS = [
  "environ_get",
  "environ_sizes_get",
  "fd_close",
  "fd_fdstat_get",
  "fd_prestat_get",
  "fd_prestat_dir_name",
  "fd_read",
  "fd_readdir",
  "fd_seek",
  "fd_write",
  "path_filestat_get",
  "path_open",
  "proc_exit",
];

const FILES = new Map([
  ["phontab", new Uint8Array([1, 2, 3, 4, 5])],
  ["lang/gmw/de", new TextEncoder().encode("name German\n")],
  ["lang/ko", new Uint8Array([9])],
]);

/** A shim over FILES bound to a fresh one-page memory, with helpers to call it. */
function setup(): { wasi: Wasi; view: DataView; bytes: Uint8Array; call: Record<string, Call> } {
  const wasi = createWasi(moduleImporting(FUNCTIONS), "/espeak-ng-data", FILES);
  const memory = new WebAssembly.Memory({ initial: 1 });
  wasi.bind(memory);
  return {
    wasi,
    view: new DataView(memory.buffer),
    bytes: new Uint8Array(memory.buffer),
    call: wasi.imports as unknown as Record<string, Call>,
  };
}

/** Opens `path` relative to the preopened directory; returns [errno, fd]. */
function open(env: ReturnType<typeof setup>, path: string, oflags = 0, rights = 0n): number[] {
  const name = new TextEncoder().encode(path);
  env.bytes.set(name, 1000);
  const errno = env.call.path_open(3, 1, 1000, name.length, oflags, rights, 0n, 0, 2000);
  return [errno, env.view.getUint32(2000, true)];
}

Deno.test("the shim provides exactly the functions the module imports", () => {
  const wasi = createWasi(moduleImporting(["fd_read", "path_unlink_file"]), "/d", FILES);
  assertEquals(Object.keys(wasi.imports).sort(), ["fd_read", "path_unlink_file"]);
});

Deno.test("a WASI function the shim lacks throws an error naming it", () => {
  const wasi = createWasi(moduleImporting(["path_unlink_file"]), "/d", FILES);
  throws(() => (wasi.imports.path_unlink_file as Call)(3, 0, 0), (e: unknown) => {
    return e instanceof ValleError && e.message.includes("path_unlink_file");
  });
});

Deno.test("the preopened directory is fd 3, named by the root; the environment is empty", () => {
  const env = setup();
  assertEquals(env.call.fd_prestat_get(3, 100), 0);
  assertEquals([env.view.getUint8(100), env.view.getUint32(104, true)], [0, 15]);
  assertEquals(env.call.fd_prestat_dir_name(3, 200, 15), 0);
  assertEquals(new TextDecoder().decode(env.bytes.slice(200, 215)), "/espeak-ng-data");
  assertEquals(env.call.fd_prestat_get(4, 100), 8); // EBADF: no other preopen
  assertEquals(env.call.environ_sizes_get(300, 304), 0);
  assertEquals([env.view.getUint32(300, true), env.view.getUint32(304, true)], [0, 0]);
});

Deno.test("files open, read in pieces, seek, stat and close; writes and missing files fail", () => {
  const env = setup();
  const [errno, fd] = open(env, "phontab");
  assertEquals([errno, fd], [0, 4]);
  // Two iovecs of 2 bytes each at 400 and 410.
  env.view.setUint32(300, 400, true);
  env.view.setUint32(304, 2, true);
  env.view.setUint32(308, 410, true);
  env.view.setUint32(312, 2, true);
  assertEquals(env.call.fd_read(fd, 300, 2, 320), 0);
  assertEquals(env.view.getUint32(320, true), 4);
  assertEquals([...env.bytes.slice(400, 402), ...env.bytes.slice(410, 412)], [1, 2, 3, 4]);
  assertEquals(env.call.fd_read(fd, 300, 2, 320), 0);
  assertEquals([env.view.getUint32(320, true), env.bytes[400]], [1, 5]);
  assertEquals(env.call.fd_seek(fd, -2n, 2, 330), 0); // SEEK_END
  assertEquals(env.view.getBigUint64(330, true), 3n);
  assertEquals(env.call.fd_seek(fd, -9n, 1, 330), 28); // EINVAL: before the start
  assertEquals(env.call.fd_close(fd), 0);
  assertEquals(env.call.fd_close(fd), 8); // EBADF
  const name = new TextEncoder().encode("lang/gmw/de");
  env.bytes.set(name, 1000);
  assertEquals(env.call.path_filestat_get(3, 0, 1000, name.length, 500), 0);
  assertEquals([env.view.getUint8(516), env.view.getBigUint64(532, true)], [4, 12n]);
  assertEquals(open(env, "missing")[0], 44); // ENOENT
  assertEquals(open(env, "phontab", 1)[0], 69); // O_CREAT: EROFS
  assertEquals(open(env, "phontab", 0, 1n << 6n)[0], 69); // the fd_write right: EROFS
  assertEquals(open(env, "phontab", 2)[0], 54); // O_DIRECTORY on a file: ENOTDIR
});

Deno.test("directories list their files and subdirectories in order, from any cookie", () => {
  const env = setup();
  const [errno, fd] = open(env, "lang", 2);
  assertEquals(errno, 0);
  const list = (cookie: bigint) => {
    assertEquals(env.call.fd_readdir(fd, 600, 256, cookie, 900), 0);
    const used = env.view.getUint32(900, true);
    const entries: [string, number, bigint][] = [];
    for (let at = 600; at < 600 + used;) {
      const length = env.view.getUint32(at + 16, true);
      const name = new TextDecoder().decode(env.bytes.slice(at + 24, at + 24 + length));
      entries.push([name, env.view.getUint8(at + 20), env.view.getBigUint64(at, true)]);
      at += 24 + length;
    }
    return entries;
  };
  assertEquals(list(0n), [["gmw", 3, 1n], ["ko", 4, 2n]]);
  assertEquals(list(1n), [["ko", 4, 2n]]);
  assertEquals(env.call.fd_read(fd, 300, 0, 320), 31); // EISDIR
});

Deno.test("stdout and stderr are collected as text; proc_exit throws", () => {
  const env = setup();
  const message = new TextEncoder().encode("warning: ü\n");
  env.bytes.set(message, 700);
  env.view.setUint32(300, 700, true);
  env.view.setUint32(304, message.length, true);
  assertEquals(env.call.fd_write(2, 300, 1, 320), 0);
  assertEquals(env.view.getUint32(320, true), message.length);
  assertEquals(env.wasi.output(), "warning: ü\n");
  assertEquals(env.call.fd_write(5, 300, 1, 320), 8); // EBADF: only stdout and stderr
  throws(() => env.call.proc_exit(3), /exited with status 3/);
});
