/**
 * Headless Chromium for the browser tests (Debian's /usr/bin/chromium, WebGPU on SwiftShader):
 * {@linkcode launchChromium} starts it, {@linkcode watchPage} records what a page logs, and
 * {@linkcode runInChromium} bundles a module, runs it in a page (cross-origin isolated or not)
 * and returns what its default export resolves to.
 */

import { type Browser, chromium, type Page } from "playwright-core";
import { bundleForBrowser } from "../../tools/_bundle.ts";
import { CROSS_ORIGIN_ISOLATION } from "../../tools/serve_web.ts";

/** Where Chromium is; override with CHROMIUM_PATH. */
const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** WebGPU on SwiftShader (Vulkan on the CPU), nothing fetched from outside. */
const ARGS = [
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-vulkan=swiftshader",
  "--use-webgpu-adapter=swiftshader",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];

/**
 * Starts headless Chromium with SwiftShader WebGPU. Close it when done.
 *
 * @param extraArgs More command-line switches (e.g. a fake microphone).
 */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  return await chromium.launch({ executablePath: CHROMIUM, args: [...ARGS, ...extraArgs] });
}

/** What a page reported: every console line, and its uncaught errors separately. */
export interface PageLog {
  /** Console messages, as `type: text`, and uncaught errors. */
  lines: string[];
  /** Uncaught errors and console errors only. */
  errors: string[];
}

/** Starts recording `page`'s console messages and uncaught errors. */
export function watchPage(page: Page): PageLog {
  const log: PageLog = { lines: [], errors: [] };
  page.on("console", (m) => {
    log.lines.push(`${m.type()}: ${m.text()}`);
    if (m.type() === "error") log.errors.push(m.text());
  });
  page.on("pageerror", (e) => {
    log.lines.push(String(e));
    log.errors.push(String(e));
  });
  return log;
}

/** The page: runs the bundle's default export on `input` and leaves the outcome in `__result`. */
function page(input: unknown): string {
  // JSON is a JavaScript expression; escaping "<" keeps it from closing the script element.
  const argument = (JSON.stringify(input) ?? "undefined").replaceAll("<", "\\u003c");
  return `<!doctype html><meta charset="utf-8"><script type="module">
import run from "./bundle.js";
run(${argument}).then(
  (value) => { globalThis.__result = { ok: true, value }; },
  (e) => { globalThis.__result = { ok: false, error: String((e && e.stack) || e) }; },
);
</script>`;
}

/** Options for {@linkcode runInChromium}. */
export interface BrowserRunOptions {
  /** Extra files to serve next to the page, by path (e.g. "/model.sft"). */
  files?: Record<string, Uint8Array<ArrayBuffer>>;
  /** Milliseconds to wait for the module's result. Default 10 minutes. */
  timeout?: number;
  /** What the module's default export is called with (JSON-serialisable). */
  input?: unknown;
  /**
   * Serve everything with COOP/COEP headers, so that the page is `crossOriginIsolated` and has
   * SharedArrayBuffer (the CPU backend's threads). Default false.
   */
  isolated?: boolean;
}

/**
 * Bundles `entry` (a module whose default export is `async (input) => unknown`), serves it on
 * 127.0.0.1, loads it in headless Chromium and returns the resolved value (JSON-serialisable).
 * Rejects with the page's error when the module throws.
 */
export async function runInChromium(entry: URL, options: BrowserRunOptions = {}): Promise<unknown> {
  const js = await bundleForBrowser(entry);
  const files = options.files ?? {};
  const html = page(options.input);
  const isolation = options.isolated ? CROSS_ORIGIN_ISOLATION : {};
  const reply = (body: BodyInit, type?: string) =>
    new Response(body, { headers: { ...isolation, ...(type ? { "content-type": type } : {}) } });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/bundle.js") return reply(js, "text/javascript");
    if (path in files) return reply(files[path]);
    if (path === "/") return reply(html, "text/html");
    return new Response("not found", { status: 404 });
  });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const log = watchPage(page);
    await page.goto(`http://127.0.0.1:${server.addr.port}/`);
    await page.waitForFunction(() => "__result" in globalThis, undefined, {
      timeout: options.timeout ?? 600_000,
    });
    const result = await page.evaluate(() =>
      (globalThis as unknown as { __result: { ok: boolean; value?: unknown; error?: string } })
        .__result
    );
    if (!result.ok) throw new Error(`Page failed: ${result.error}\n${log.lines.join("\n")}`);
    return result.value;
  } finally {
    await browser.close();
    await server.shutdown();
  }
}
