/**
 * "Default sentence, CPU": `deno task speak "Once again, excellent work."` timed as a user runs it,
 * a subprocess of examples/speak.ts through `deno task` with only the model, codec and vocoder file
 * flags, on the CPU backend: wall time from the start of the command to the WAV written (the CLI's
 * `wrote …` line), with the backend line the CLI printed (the default on the CPU backend is q8,
 * quantized while loading), then the same with `--dtype f16` (the file's weights) and `--dtype q4`. Called by
 * `deno task bench`; the issue's target is under 20 s.
 *
 * Where `backend: "auto"` would take a hardware GPU, `--backend cpu` is added (and recorded): the
 * entry is about machines without one. The command runs in a temporary folder, so its
 * `speech.wav` lands there. With random weights the AR stage rarely draws its stop code, so a
 * piece runs towards the CLI's 12 s limit: the audio length (and the seed the CLI drew) are
 * recorded beside the time, and a run is comparable with another only through them.
 */

import { requestGpu } from "../src/backends/webgpu/device.ts";
import { USAGE } from "../examples/_speak_args.ts";
import { lines, markdownTable } from "./_report.ts";

/** The sentence of the issue. */
export const DEFAULT_SENTENCE = "Once again, excellent work.";
/** The issue's target: the WAV written within this many seconds. */
export const TARGET_SECONDS = 20;

/** One timed `deno task speak`. */
export interface SentenceRun {
  /** `"default"` (no `--dtype`), or the `--dtype` given. */
  dtype: string;
  /** The command as run (in a temporary folder). */
  command: string;
  /** Seconds from the start of the command to the WAV written (the CLI's `wrote` line). */
  wallSeconds?: number;
  /** Seconds from the start of the command to its exit. */
  exitSeconds?: number;
  /** What the CLI says it spent (loading, synthesis and the write; not Deno's start). */
  cliSeconds?: number;
  /** Seconds of audio written. */
  audioSeconds?: number;
  /** Pieces spoken. */
  pieces?: number;
  /** The seed the CLI drew. */
  seed?: number;
  /** The CLI's `backend:` line: the backend, why, and the modality `auto` took. */
  backend?: string;
  /** Whether `wallSeconds` is within {@linkcode TARGET_SECONDS}. */
  underTarget?: boolean;
  /** Why there is no time: the command's exit and its last line. */
  error?: string;
}

/** Everything {@linkcode benchDefaultSentence} measures. */
export interface DefaultSentenceFigures {
  /** The sentence. */
  text: string;
  /** The target, seconds. */
  targetSeconds: number;
  /** Whether `--backend cpu` was added (a hardware GPU was present). */
  backendFlag: boolean;
  /** One run per dtype. */
  runs: SentenceRun[];
}

/** What {@linkcode benchDefaultSentence} runs. */
export interface DefaultSentenceSettings {
  /** `"default"` and any of `"f16"`, `"q8"`, `"q4"` (only if the CLI has `--dtype`). */
  dtypes: string[];
}

/**
 * Times `deno task speak` on the default sentence with the given weight files, once per dtype.
 *
 * @example
 * ```ts ignore
 * const figures = await benchDefaultSentence(files, { dtypes: ["default", "f16", "q4"] });
 * console.log(figures.runs.map((r) => `${r.dtype}: ${r.wallSeconds} s`));
 * ```
 */
export async function benchDefaultSentence(
  files: { valle: string; encodec: string; vocos: string },
  settings: DefaultSentenceSettings,
): Promise<DefaultSentenceFigures> {
  const backendFlag = await hardwareGpu();
  const base = [
    DEFAULT_SENTENCE,
    "--model",
    await Deno.realPath(files.valle),
    "--codec",
    await Deno.realPath(files.encodec),
    "--vocoder",
    await Deno.realPath(files.vocos),
    ...(backendFlag ? ["--backend", "cpu"] : []),
  ];
  const dtypes = settings.dtypes.filter((d) => d === "default" || USAGE.includes("--dtype"));
  const runs: SentenceRun[] = [];
  for (const dtype of dtypes) {
    runs.push(await speak(dtype === "default" ? base : [...base, "--dtype", dtype], dtype));
  }
  return { text: DEFAULT_SENTENCE, targetSeconds: TARGET_SECONDS, backendFlag, runs };
}

/** Whether `backend: "auto"` would take a GPU here (a hardware WebGPU adapter). */
async function hardwareGpu(): Promise<boolean> {
  try {
    const gpu = await requestGpu();
    const hardware = !gpu.adapter.software;
    gpu.destroy();
    return hardware;
  } catch {
    return false;
  }
}

/** One `deno task speak` in a temporary folder, timed from its start to the `wrote` line. */
async function speak(args: string[], dtype: string): Promise<SentenceRun> {
  const config = new URL("../deno.json", import.meta.url).pathname;
  const argv = ["task", "--config", config, "speak", ...args];
  const command = `deno task speak ${args.map(quote).join(" ")}`;
  const dir = await Deno.makeTempDir({ prefix: "valle-sentence-" });
  // `deno task` keeps an INIT_CWD it inherits (`deno task bench` sets one: the repository), and
  // speak.ts moves there to write its output: the user's folder here is the temporary one.
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  const run: SentenceRun = { dtype, command };
  const start = performance.now();
  const seconds = () => +((performance.now() - start) / 1000).toFixed(2);
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: argv,
      cwd: dir,
      env: { ...env, NO_COLOR: "1" },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let last = "";
    for await (
      const line of child.stderr.pipeThrough(new TextDecoderStream()).pipeThrough(lines())
    ) {
      if (!line.trim()) continue;
      last = line.trim();
      console.error(`  speak: ${last}`);
      const backend = last.match(/^backend: (.*)$/);
      if (backend) run.backend = backend[1];
      const wrote = last.match(
        /^wrote .*: ([\d.]+) s of audio, (\d+) piece\(s\), seed (\d+), ([\d.]+) s on /,
      );
      if (wrote) {
        run.wallSeconds = seconds();
        run.audioSeconds = Number(wrote[1]);
        run.pieces = Number(wrote[2]);
        run.seed = Number(wrote[3]);
        run.cliSeconds = Number(wrote[4]);
        run.underTarget = run.wallSeconds <= TARGET_SECONDS;
      }
    }
    const status = await child.status;
    run.exitSeconds = seconds();
    if (!status.success || run.wallSeconds === undefined) {
      run.error = `exit ${status.code}: ${last || "no output"}`;
    }
  } catch (e) {
    run.error = String(e);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return run;
}

/** A shell word. */
function quote(word: string): string {
  return /^[\w./:=+-]+$/.test(word) ? word : `"${word.replace(/(["\\$`])/g, "\\$1")}"`;
}

/**
 * The runs as a table, the command and the backend line above it.
 *
 * @example
 * ```ts ignore
 * console.log(defaultSentenceTable(await benchDefaultSentence(files, { dtypes: ["default"] })));
 * ```
 */
export function defaultSentenceTable(figures: DefaultSentenceFigures): string {
  const first = figures.runs[0];
  const backends = [...new Set(figures.runs.map((r) => r.backend).filter(Boolean))];
  const head = [
    first ? `\`${first.command}\`${figures.backendFlag ? " (a hardware GPU is here)" : ""}` : "",
    ...backends.map((b) => `backend: ${b}`),
  ].filter(Boolean).join("\n\n");
  const rows = figures.runs.map((r) => ({
    "--dtype": r.dtype,
    "to the WAV, s": r.wallSeconds ?? "-",
    [`under ${figures.targetSeconds} s`]: r.underTarget === undefined
      ? "-"
      : r.underTarget
      ? "yes"
      : "no",
    "CLI's own, s": r.cliSeconds ?? "-",
    "audio, s": r.audioSeconds ?? "-",
    seed: r.seed ?? "-",
    error: r.error ?? "",
  }));
  return `${head}\n\n${markdownTable(rows)}`;
}

/** A figure of the side-by-side table: seconds to the WAV, and the audio's length. */
export function sentenceCell(
  figures: DefaultSentenceFigures | undefined,
  dtype: string,
): string | undefined {
  const run = figures?.runs.find((r) => r.dtype === dtype);
  if (!run) return undefined;
  if (run.wallSeconds === undefined) return "failed";
  return `${run.wallSeconds} (${run.audioSeconds} s of audio)`;
}
