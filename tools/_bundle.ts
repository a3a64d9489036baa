/** Bundling for browsers, shared by the demo server and the browser test harness. */

/**
 * Bundles `entry` and everything it imports (npm packages included) into one ES module with
 * `deno bundle --platform browser`; this also proves the code has no Deno-only dependency.
 *
 * @param entry The entry module.
 * @returns The bundle's JavaScript.
 * @throws {Error} With the bundler's output when bundling fails.
 *
 * @example
 * ```ts ignore
 * const js = await bundleForBrowser(new URL("../examples/web/main.ts", import.meta.url));
 * ```
 */
export async function bundleForBrowser(entry: URL): Promise<Uint8Array<ArrayBuffer>> {
  const dir = await Deno.makeTempDir({ prefix: "valle-bundle-" });
  try {
    const output = `${dir}/bundle.js`;
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "browser", "-o", output, entry.pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      throw new Error(
        `deno bundle failed for ${entry.pathname}:\n${new TextDecoder().decode(result.stderr)}`,
      );
    }
    return await Deno.readFile(output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
