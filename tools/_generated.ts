/** The shared tail of every generator in tools/: write the module, or with --check fail if stale. */

/**
 * Writes `fresh` to `output`; with `--check` among the arguments, exits 1 instead when the file
 * on disk differs, telling the user to run `command`.
 */
export async function writeGenerated(output: URL, fresh: string, command: string): Promise<void> {
  if (!Deno.args.includes("--check")) {
    await Deno.writeTextFile(output, fresh);
    return;
  }
  const current = await Deno.readTextFile(output).catch(() => "");
  if (current !== fresh) {
    console.error(`${output.pathname.split("/").slice(-3).join("/")} is stale: run ${command}`);
    Deno.exit(1);
  }
}
