/**
 * Downloads through a local HTTP server on 127.0.0.1: caching, detection and replacement of
 * truncated or corrupt cache entries, integrity failures, offline errors, progress.
 */

import { DownloadError, OptionError } from "../../src/errors.ts";
import { DirectoryCache } from "../../src/io/cache.ts";
import { fetchFile, sha256Hex } from "../../src/io/download.ts";
import { Rng } from "../_helpers.ts";
import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert";

const BODY = Uint8Array.from(new Rng(1).normals(50_000), (v) => Math.floor(Math.abs(v) * 97) & 255);

/** Serves BODY at /model.sft (or a broken variant), counting requests. */
function serve(options: { truncate?: boolean; etag?: string } = {}) {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    requests++;
    if (new URL(req.url).pathname !== "/model.sft") return new Response("no", { status: 404 });
    const headers: Record<string, string> = { "content-length": String(BODY.length) };
    if (options.etag) headers["x-linked-etag"] = `"${options.etag}"`;
    if (!options.truncate) return new Response(BODY, { headers });
    // Announce the full length but stop half-way.
    const half = BODY.slice(0, BODY.length / 2);
    return new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(half);
          c.close();
        },
      }),
      { headers },
    );
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/model.sft`,
    requests: () => requests,
    close: () => server.shutdown(),
  };
}

async function tempCache() {
  return new DirectoryCache(await Deno.makeTempDir({ prefix: "valle-cache-" }));
}

Deno.test("fetchFile() downloads once, then serves the verified cached copy", async () => {
  const server = serve();
  const cache = await tempCache();
  const file = { name: "org/model.sft", url: server.url };
  const events: boolean[] = [];
  const first = await fetchFile(file, { cache, onProgress: (p) => events.push(p.cached) });
  deepStrictEqual(first, BODY);
  const second = await fetchFile(file, { cache, onProgress: (p) => events.push(p.cached) });
  deepStrictEqual(second, BODY);
  equal(server.requests(), 1);
  ok(events.length >= 2 && events.at(-1) === true && events[0] === false);
  const meta = JSON.parse(await Deno.readTextFile(`${cache.locate(file.name)}.meta.json`));
  equal(meta.sha256, await sha256Hex(BODY));
  await server.close();
});

Deno.test("fetchFile() detects a truncated cached file and replaces it", async () => {
  const server = serve();
  const cache = await tempCache();
  const file = { name: "model.sft", url: server.url };
  await fetchFile(file, { cache });
  const path = cache.locate(file.name);
  await Deno.truncate(path, 1000);
  deepStrictEqual(await fetchFile(file, { cache }), BODY);
  equal(server.requests(), 2);
  equal((await Deno.stat(path)).size, BODY.length);
  await server.close();
});

Deno.test("fetchFile() detects a corrupted cached file of the right size and replaces it", async () => {
  const server = serve();
  const cache = await tempCache();
  const file = { name: "model.sft", url: server.url };
  await fetchFile(file, { cache });
  const path = cache.locate(file.name);
  const bad = await Deno.readFile(path);
  bad[1234] ^= 0xff;
  await Deno.writeFile(path, bad);
  deepStrictEqual(await fetchFile(file, { cache }), BODY);
  equal(server.requests(), 2);
  deepStrictEqual(await Deno.readFile(path), BODY);
  await server.close();
});

Deno.test("fetchFile() refuses an incomplete download and caches nothing", async () => {
  const server = serve({ truncate: true });
  const cache = await tempCache();
  await rejects(
    fetchFile({ name: "model.sft", url: server.url }, { cache }),
    (e: Error) => e instanceof DownloadError && /incomplete|broke/.test(e.message),
  );
  equal(await cache.get("model.sft"), undefined);
  await server.close();
});

Deno.test("fetchFile() checks the expected SHA-256, given or sent by the server", async () => {
  const wrong = "0".repeat(64);
  for (const options of [{ sha256: wrong }, { etag: wrong }]) {
    const server = serve({ etag: options.etag });
    const cache = await tempCache();
    await rejects(
      fetchFile({ name: "model.sft", url: server.url, sha256: options.sha256 }, { cache }),
      (e: Error) => e instanceof DownloadError && e.message.includes(wrong),
    );
    equal(await cache.get("model.sft"), undefined);
    await server.close();
  }
});

Deno.test("fetchFile() offline with nothing cached says what to download and where to put it", async () => {
  const server = serve();
  const url = server.url;
  await server.close();
  const cache = await tempCache();
  await rejects(
    fetchFile({ name: "ecker/vall-e/model.sft", url }, { cache }),
    (e: Error) =>
      e instanceof DownloadError && e.message.includes(url) &&
      e.message.includes(cache.locate("ecker/vall-e/model.sft")),
  );
});

Deno.test("fetchFile() reports HTTP errors with the status", async () => {
  const server = serve();
  await rejects(
    fetchFile({ name: "x", url: server.url.replace("model.sft", "missing") }, { cache: false }),
    /HTTP 404/,
  );
  await server.close();
});

Deno.test("DirectoryCache refuses keys that escape its directory", async () => {
  const cache = await tempCache();
  for (const key of ["../x", "a/../../b", "", "/abs"]) throws(() => cache.locate(key), OptionError);
});
