/**
 * Runs a module in headless Chromium (Debian's /usr/bin/chromium, WebGPU on SwiftShader) and
 * returns what its default export resolves to. The module is bundled with
 * `deno bundle --platform browser`, so this also proves the code has no Deno-only dependency.
 */

import { chromium } from "playwright-core";

/** Where Chromium is; override with CHROMIUM_PATH. */
const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

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

const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
import run from "./bundle.js";
run().then(
  (value) => { globalThis.__result = { ok: true, value }; },
  (e) => { globalThis.__result = { ok: false, error: String((e && e.stack) || e) }; },
);
</script>`;

/** Options for {@linkcode runInChromium}. */
export interface BrowserRunOptions {
  /** Extra files to serve next to the page, by path (e.g. "/model.sft"). */
  files?: Record<string, Uint8Array<ArrayBuffer>>;
  /** Milliseconds to wait for the module's result. Default 10 minutes. */
  timeout?: number;
}

/**
 * Bundles `entry` (a module whose default export is `async () => unknown`), serves it on
 * 127.0.0.1, loads it in headless Chromium and returns the resolved value (JSON-serialisable).
 * Rejects with the page's error when the module throws.
 */
export async function runInChromium(entry: URL, options: BrowserRunOptions = {}): Promise<unknown> {
  const dir = await Deno.makeTempDir({ prefix: "valle-browser-" });
  const bundlePath = `${dir}/bundle.js`;
  const bundle = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", "-o", bundlePath, entry.pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!bundle.success) {
    throw new Error(
      `deno bundle failed for ${entry.pathname}:\n${new TextDecoder().decode(bundle.stderr)}`,
    );
  }
  const js = await Deno.readFile(bundlePath);
  await Deno.remove(dir, { recursive: true });
  const files = options.files ?? {};
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/bundle.js") {
      return new Response(js, { headers: { "content-type": "text/javascript" } });
    }
    if (path in files) return new Response(files[path]);
    if (path === "/") return new Response(PAGE, { headers: { "content-type": "text/html" } });
    return new Response("not found", { status: 404 });
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on("console", (m) => logs.push(m.text()));
    page.on("pageerror", (e) => logs.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.addr.port}/`);
    await page.waitForFunction(() => "__result" in globalThis, undefined, {
      timeout: options.timeout ?? 600_000,
    });
    const result = await page.evaluate(() =>
      (globalThis as unknown as { __result: { ok: boolean; value?: unknown; error?: string } })
        .__result
    );
    if (!result.ok) throw new Error(`Page failed: ${result.error}\n${logs.join("\n")}`);
    return result.value;
  } finally {
    await browser.close();
    await server.shutdown();
  }
}
