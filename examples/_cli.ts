/**
 * What the command-line tools (examples/speak.ts, examples/train_lora.ts) do alike around their
 * work: run in the user's folder, keep the graphics stack quiet.
 */

/**
 * `deno task` runs in the repository; paths on the command line are the user's: go to the folder
 * the task was started from.
 */
export function enterUserDir(): void {
  const userDir = Deno.env.get("INIT_CWD");
  if (userDir) Deno.chdir(userDir);
}

/**
 * On a Linux machine without a desktop session, probing for a WebGPU adapter makes the graphics
 * stack print "error: XDG_RUNTIME_DIR is invalid or not set" twice: give it a private folder.
 *
 * @returns Removes the folder, if one was made.
 */
export function quietGraphicsStack(): () => void {
  if (Deno.build.os !== "linux" || Deno.env.get("XDG_RUNTIME_DIR")) return () => {};
  const dir = Deno.makeTempDirSync({ prefix: "valle-runtime-" });
  Deno.env.set("XDG_RUNTIME_DIR", dir);
  return () => Deno.removeSync(dir, { recursive: true });
}

const encoder = new TextEncoder();

/**
 * A one-line status display on stderr, redrawn in place (nothing when disabled: stderr not a
 * terminal, or --quiet); messages printed through it first clear the line.
 */
export class StatusLine {
  #enabled: boolean;
  #last = "";

  /** @param enabled Whether to draw the line at all. */
  constructor(enabled: boolean) {
    this.#enabled = enabled;
  }

  /** Draws `line` in place of the last one (unless it is the same). */
  show(line: string): void {
    if (!this.#enabled || line === this.#last) return;
    this.#last = line;
    Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${line}`));
  }

  /** Clears the line, then prints `message` on a line of its own. */
  print(message: string): void {
    this.clear();
    Deno.stderr.writeSync(encoder.encode(`${message}\n`));
  }

  /** Clears the line. */
  clear(): void {
    if (!this.#enabled || !this.#last) return;
    this.#last = "";
    Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
  }
}
