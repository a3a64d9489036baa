import { DownloadError, FormatError } from "../../src/errors.ts";
import { readAllBytes } from "../../src/io/source.ts";
import { Rng } from "../_helpers.ts";
import { deepStrictEqual, equal, rejects } from "node:assert";

const DATA = Uint8Array.from(new Rng(3).normals(3_000_000), (v) => Math.abs(v * 50) & 255);

/** A stream of DATA in 100 kB chunks, with no size. */
function stream(): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= DATA.length) return c.close();
      c.enqueue(DATA.slice(at, at + 100_000));
      at += 100_000;
    },
  });
}

Deno.test("readAllBytes() reads paths, file URLs, Blobs and unsized streams into one buffer", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/data.bin`;
  await Deno.writeFile(path, DATA);
  for (const input of [path, new URL(`file://${path}`), new Blob([DATA]), stream()]) {
    const progress: number[] = [];
    const got = await readAllBytes(input, { onProgress: (n) => progress.push(n) });
    deepStrictEqual(got, DATA);
    equal(progress.at(-1), DATA.length);
  }
  equal(await readAllBytes(DATA), DATA, "bytes are returned as they are");
});

Deno.test("readAllBytes() reports HTTP errors as FormatErrors naming the URL", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("gone", { status: 410 }),
  );
  const url = `http://127.0.0.1:${server.addr.port}/ref.wav`;
  await rejects(
    readAllBytes(url, { kind: "WAV" }),
    (e: Error) => e instanceof FormatError && e.message.startsWith(`Cannot read WAV "${url}"`),
  );
  await server.shutdown();
});

Deno.test("readAllBytes() reports an unreachable URL as a DownloadError naming it", async () => {
  // A port that was listening and is closed now: the connection is refused.
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(),
  );
  const url = `http://127.0.0.1:${server.addr.port}/model.sft`;
  await server.shutdown();
  await rejects(
    readAllBytes(url, { kind: "model" }),
    (e: Error) =>
      e instanceof DownloadError && e.url === url &&
      e.message.startsWith(`Cannot fetch model ${url}`),
  );
});

Deno.test("readAllBytes() stops on an aborted signal", async () => {
  const controller = new AbortController();
  controller.abort(new Error("stop"));
  await rejects(readAllBytes(stream(), { signal: controller.signal }), /stop/);
});
