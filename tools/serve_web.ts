/**
 * Serves the browser demo (examples/web/) on 127.0.0.1: the page, its stylesheet, `main.js` (the
 * demo bundled with `deno bundle --platform browser`, rebuilt on every page load so edits show up;
 * the phonemizer and its data are inside it), and optionally local model files at fixed URLs, which the printed address names as query parameters. Every response carries
 * {@linkcode CROSS_ORIGIN_ISOLATION}, so that the CPU backend gets SharedArrayBuffer and threads.
 *
 *   deno task web [--port 8000] [--model m.sft] [--codec model.safetensors] [--codec-config c.json]
 *                 [--vocoder vocos.bin] [--vocoder-config v.json]
 */

import { parseArgs } from "node:util";
import { bundleForBrowser } from "./_bundle.ts";

const WEB = new URL("../examples/web/", import.meta.url);
const ENTRY = new URL("main.ts", WEB);
const STATIC = ["index.html", "style.css"];

/** The model files a page can be pointed at, by their query parameter (the `Valle.load` option). */
export const MODEL_FILES = ["model", "codec", "codecConfig", "vocoder", "vocoderConfig"] as const;

/** One of {@linkcode MODEL_FILES}. */
export type ModelFile = typeof MODEL_FILES[number];

const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  json: "application/json",
};

/**
 * The headers that make a page cross-origin isolated (`crossOriginIsolated`, hence
 * SharedArrayBuffer and the CPU backend's worker threads). Under `require-corp` a page may still
 * fetch from other origins in CORS mode, as the library does (Hugging Face answers with
 * `Access-Control-Allow-Origin: *`); only no-cors loads of cross-origin resources without a
 * `Cross-Origin-Resource-Policy` header are blocked, and the demo makes none.
 */
export const CROSS_ORIGIN_ISOLATION: Readonly<Record<string, string>> = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
};

/** Options of {@linkcode startWebServer}. */
export interface WebServerOptions {
  /** The port; 0 picks a free one. Default 8000. */
  port?: number;
  /** Local model files to serve, by the option they are for. */
  models?: Partial<Record<ModelFile, string>>;
}

/** A running demo server. */
export interface WebServer {
  /** The page's address, with query parameters naming the served model files. */
  url: URL;
  /** Stops serving. */
  shutdown(): Promise<void>;
}

/**
 * Bundles the demo and starts serving it.
 *
 * @param options Port and local model files.
 * @returns The page's address and a way to stop.
 * @throws {Error} The bundle fails, or a model file does not exist.
 *
 * @example
 * ```ts ignore
 * const server = await startWebServer({ port: 0, models: { model: "tiny.sft" } });
 * console.log(`open ${server.url}`);
 * await server.shutdown();
 * ```
 */
export async function startWebServer(options: WebServerOptions = {}): Promise<WebServer> {
  const files = new Map<string, URL>();
  for (const name of STATIC) files.set(`/${name}`, new URL(name, WEB));
  files.set("/", new URL("index.html", WEB));
  const query = new URLSearchParams();
  for (const [option, path] of Object.entries(options.models ?? {})) {
    const file = new URL(path, `file://${Deno.cwd()}/`);
    if (!(await Deno.stat(file).then((s) => s.isFile, () => false))) {
      throw new Error(`Cannot serve the ${option} file ${path}: no such file`);
    }
    const served = `/models/${option}/${encodeURIComponent(file.pathname.split("/").at(-1)!)}`;
    files.set(served, file);
    query.set(option, served);
  }
  // Fail now on a broken build, not at the first page load.
  await bundleForBrowser(ENTRY);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? 8000, onListen() {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      try {
        if (path === "/main.js") return reply(await bundleForBrowser(ENTRY), "main.js");
        const file = files.get(path);
        if (!file) return new Response("Not found", { status: 404 });
        return await serveFile(file, request.method === "HEAD");
      } catch (e) {
        console.error(`${path}: ${e}`);
        return new Response(String(e), { status: 500 });
      }
    },
  );
  const search = query.size ? `?${query}` : "";
  return {
    url: new URL(`http://127.0.0.1:${server.addr.port}/${search}`),
    shutdown: () => server.shutdown(),
  };
}

/** A file from disk, streamed, with its length (so that pages can show download progress). */
async function serveFile(file: URL, headOnly: boolean): Promise<Response> {
  const { size } = await Deno.stat(file);
  const headers = { "content-length": String(size) };
  if (headOnly) return reply(null, file.pathname, headers);
  return reply((await Deno.open(file)).readable, file.pathname, headers);
}

function reply(
  body: BodyInit | null,
  name: string,
  headers: Record<string, string> = {},
): Response {
  const type = CONTENT_TYPES[name.split(".").at(-1)!] ?? "application/octet-stream";
  return new Response(body, {
    headers: {
      ...headers,
      ...CROSS_ORIGIN_ISOLATION,
      "content-type": type,
      "cache-control": "no-store",
    },
  });
}

const USAGE = `Usage: deno task web [--port 8000] [model files]

Serves the browser demo on 127.0.0.1, cross-origin isolated (COOP/COEP headers) so that the
CPU backend can use threads. Without model files the page downloads the released weights
(about 550 MB) into the browser's cache on first use.

  --port <n>               port (default 8000; 0 picks a free one)
  --model <path>           VALL-E weights (.sft, or .gguf from deno task quantize)
  --codec <path>           EnCodec weights       --codec-config <path>    its config.json
  --vocoder <path>         Vocos weights         --vocoder-config <path>  its config JSON
  -h, --help               this text`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "8000" },
      model: { type: "string" },
      codec: { type: "string" },
      "codec-config": { type: "string" },
      vocoder: { type: "string" },
      "vocoder-config": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const port = Number(values.port);
  if (values.port === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`Cannot use --port ${values.port}: expected an integer in [0, 65535]`);
  }
  const models: Partial<Record<ModelFile, string>> = {};
  for (const option of MODEL_FILES) {
    const flag = option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) as keyof typeof values;
    if (values[flag] !== undefined) models[option] = values[flag] as string;
  }
  const server = await startWebServer({ port, models });
  console.log(`Serving the VALL-E demo (Ctrl-C stops). Open:\n  ${server.url}`);
}

if (import.meta.main) {
  await main().catch((e) => {
    console.error(`error: ${e instanceof Error ? e.message : e}\n\n${USAGE}`);
    Deno.exit(2);
  });
}
