/**
 * Every numeric synthesis option against NaN, ±Infinity, negative and out-of-range values and a
 * valid one, in both modalities, through `Valle.synthesize` on the tiny models: bad values are
 * refused before anything runs (no progress report, no GPU submit) with a message naming the
 * option, the value and the range; each valid value synthesizes. Also the one-call
 * `synthesize()`, `stream()`, and advice that names the caller's own options.
 */

import { OptionError } from "../../src/errors.ts";
import { synthesize, type SynthesizeOptions, Valle } from "../../mod.ts";
import { testGpu } from "../_backends.ts";
import { tinyModels } from "../_tiny_models.ts";
import { equal, ok, rejects, throws } from "node:assert";

const BASE = { language: "en", seed: 5, maxSeconds: 0.4, steps: 3 } as const;

type NumericOption = {
  [K in keyof SynthesizeOptions]-?: NonNullable<SynthesizeOptions[K]> extends number ? K : never;
}[keyof SynthesizeOptions];

/**
 * Each numeric option: the range the message states, the values outside it besides NaN and
 * ±Infinity (negative ones included where negative is refused), and a valid value.
 */
const OPTIONS: Record<NumericOption, { range: string; bad: number[]; good: number }> = {
  promptSeconds: { range: "a number in [0, 120]", bad: [-1, 121], good: 3 },
  contextHistory: { range: "an integer in [0, 64]", bad: [-1, 0.5, 65], good: 2 },
  batchSize: { range: "an integer in [1, 64]", bad: [-1, 0, 65, 1.5], good: 4 },
  maxSeconds: { range: "a number in (0, 120]", bad: [-0.4, 0, 121], good: 0.3 },
  arTemperature: { range: "a number in [0, 100]", bad: [-0.5, 101, 1e300], good: 0.7 },
  minArTemperature: { range: "a number in [-1, 100]", bad: [-2, 101], good: 0.3 }, // < 0: off
  narTemperature: { range: "a number in [0, 100]", bad: [-1, 1e300], good: 0.5 },
  topK: { range: "an integer in [0, 65536]", bad: [-1, 2.5, 65537], good: 40 },
  topP: { range: "a number in (0, 1]", bad: [-0.1, 0, 1.01], good: 0.9 },
  minP: { range: "a number in [0, 1)", bad: [-0.1, 1], good: 0.05 },
  topNSigma: { range: "a number in [0, 100]", bad: [-1, 101], good: 1 },
  repetitionPenalty: { range: "a number in (0, 100]", bad: [-1.2, 0, 1e300], good: 1.2 },
  repetitionPenaltyDecay: { range: "a number in [-8, 8]", bad: [-9, 9], good: -0.5 },
  lengthPenalty: { range: "a number in [-8, 8]", bad: [-9, 1e300], good: -0.5 },
  steps: { range: "an integer in [1, 1000]", bad: [-3, 0, 1001, 2.5], good: 2 },
  cfgStrength: { range: "a number in [0, 100]", bad: [-1, 101, 1e300], good: 3 },
  cfgRescale: { range: "a number in [0, 1]", bad: [-0.5, 1.5], good: 0.5 },
  seed: { range: "an integer in [0, 4294967296)", bad: [-1, 2 ** 32, 1.5], good: 123 },
  pauseSeconds: { range: "a number in [0, 60]", bad: [-0.1, 61], good: 0.05 },
};

let shared: Promise<Valle> | undefined;
function tinyValle(): Promise<Valle> {
  shared ??= (async () => {
    const gpu = await testGpu();
    return await Valle.load({ ...await tinyModels(), backend: gpu, cache: false });
  })();
  return shared;
}

function test(name: string, fn: (valle: Valle) => Promise<void>) {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => fn(await tinyValle()),
  });
}

for (const modality of ["ar+nar", "nar-len"] as const) {
  for (const [name, { range, bad }] of Object.entries(OPTIONS)) {
    test(`synthesize() with ${modality} refuses ${name} out of ${range} before anything runs`, async (valle) => {
      for (const value of [NaN, Infinity, -Infinity, ...bad]) {
        const reports: string[] = [];
        const submits = valle.backend.stats.submits;
        await rejects(
          valle.synthesize("Hello.", {
            ...BASE,
            modality,
            [name]: value,
            onProgress: (p) => reports.push(p.phase),
          }),
          (e: Error) => {
            ok(e instanceof OptionError, String(e));
            equal(e.message, `Cannot synthesize: ${name} is ${value}, expected ${range}`);
            return true;
          },
          `${name} = ${value}`,
        );
        equal(reports.length, 0, `${name} = ${value}: progress was reported`);
        equal(valle.backend.stats.submits, submits, `${name} = ${value}: GPU work was submitted`);
      }
    });
  }

  test(`synthesize() with ${modality} accepts a valid value of every numeric option`, async (valle) => {
    for (const [name, { good }] of Object.entries(OPTIONS)) {
      const speech = await valle.synthesize("Hello.", { ...BASE, modality, [name]: good });
      ok(speech.samples.length > 0, `${name} = ${good} gave no audio`);
      equal(speech.pieces[0].modality, modality);
    }
  });
}

test("stream() refuses a bad option when called, before anything runs", (valle) => {
  const submits = valle.backend.stats.submits;
  throws(() => valle.stream("Hello.", { ...BASE, modality: "nar-len", arTemperature: NaN }), {
    name: "OptionError",
    message: "Cannot synthesize: arTemperature is NaN, expected a number in [0, 100]",
  });
  equal(valle.backend.stats.submits, submits);
  return Promise.resolve();
});

test("encodeReference() refuses promptSeconds out of range", async (valle) => {
  await rejects(
    valle.encodeReference({ samples: new Float32Array(2400), sampleRate: 24000 }, -1),
    {
      name: "OptionError",
      message: "Cannot encode a voice: promptSeconds is -1, expected a number in [0, 120]",
    },
  );
});

Deno.test("the one-call synthesize() checks its options before loading anything", async () => {
  // The model file does not exist: loading would fail with another error.
  await rejects(
    synthesize("Hello.", { model: "/nonexistent/model.sft", narTemperature: -1 }),
    {
      name: "OptionError",
      message: "Cannot synthesize: narTemperature is -1, expected a number in [0, 100]",
    },
  );
});

test("a piece over the token limit gets advice in synthesize()'s own options", async (valle) => {
  const long = Array.from({ length: 40 }, () => "and then again").join(" ") + ".";
  for (
    const [split, advice] of [
      ["sentences", "split the text into shorter sentences"],
      ["none", 'split the text into shorter sentences (split: "sentences")'],
    ] as const
  ) {
    await rejects(valle.synthesize(`${long} ${long}`, { ...BASE, split }), (e: Error) => {
      ok(e instanceof OptionError, String(e));
      ok(e.message.endsWith(`expected at most 256; ${advice}`), e.message);
      ok(!e.message.includes("maxTokens"), e.message);
      return true;
    });
  }
});

Deno.test("loading refuses a backend that is not one, a bogus precision and a string of threads, before reading any file", async () => {
  // The model file does not exist: reading it would fail with another error.
  const model = "/nonexistent/model.sft";
  for (
    const [options, message] of [
      [{ backend: null }, 'Cannot use backend null: expected "auto", "webgpu", "cpu" or a Backend'],
      [{ backend: {} }, 'Cannot use backend {}: expected "auto", "webgpu", "cpu" or a Backend'],
      [{ backend: "gpu" }, 'Cannot create a backend: backend is "gpu", expected "auto", "webgpu"'],
      [{ precision: "bogus" }, 'Cannot load weights: precision is "bogus", expected "auto", "f16"'],
    ] as const
  ) {
    await rejects(
      Valle.load({ model, ...options } as never),
      (e: Error) => e instanceof OptionError && e.message.startsWith(message),
      JSON.stringify(options),
    );
  }
  await rejects(
    Valle.load({ ...await tinyModels(), backend: "cpu", threads: "2" as never, cache: false }),
    {
      name: "OptionError",
      message: 'Cannot create the CPU backend: threads is "2", expected an integer in [1, 256]',
    },
  );
});

test("synthesizeBatch() names the text that is blank or phonemizes to nothing", async (valle) => {
  await rejects(valle.synthesizeBatch(["Hello.", "  ", "Bye."], BASE), {
    name: "OptionError",
    message: "Cannot prepare text 2 of 3: it is blank (2 characters), expected some words",
  });
  await rejects(
    valle.synthesizeBatch(["Hello.", "１２３４５"], { ...BASE, language: "ja" }),
    (e: Error) =>
      e instanceof OptionError &&
      e.message.startsWith(
        'Cannot prepare text 2 of 2, piece 1 of 1 ("１２３４５"): it phonemizes to nothing',
      ),
  );
});
