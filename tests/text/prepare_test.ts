import { deepStrictEqual as assertEquals, rejects, throws } from "node:assert/strict";
import { OptionError } from "../../src/errors.ts";
import { ipaPassthrough } from "../../src/text/phonemizer.ts";
import { phonemize, prepareText } from "../../src/text/prepare.ts";
import { LANGUAGES, mapPinyinTones, parseLanguage } from "../../src/text/languages.ts";

Deno.test("phonemize() gives the released model's sample string", async () => {
  assertEquals(
    await phonemize("Once again, excellent work.", "en"),
    "wˈʌns ɐɡˈɛn, ˈɛksələnt wˈɜːk.",
  );
});

Deno.test("phonemize() detects the language for auto", async () => {
  assertEquals(await phonemize("Bonjour tout le monde.", "auto"), "bɔ̃ʒˈuʁ tulmˈɔ̃d.");
});

Deno.test("prepareText() splits, phonemizes and tokenizes each sentence", async () => {
  const pieces = await prepareText("Once again, excellent work. Guten Morgen!", {
    language: "auto",
  });
  assertEquals(pieces.map((p) => [p.text, p.language, p.languageId]), [
    ["Once again, excellent work.", "en", 0],
    ["Guten Morgen!", "de", 2],
  ]);
  assertEquals(pieces[0].tokens, [
    1,
    211,
    33,
    4,
    48,
    57,
    123,
    9,
    4,
    83,
    171,
    111,
    139,
    4,
    37,
    115,
    25,
    11,
    2,
  ]);
});

Deno.test("prepareText() keeps the accent language apart from the text language", async () => {
  const [piece] = await prepareText("Bonjour.", { language: "en", textLanguage: "fr" });
  assertEquals([piece.language, piece.languageId, piece.textLanguage], ["en", 0, "fr"]);
  assertEquals(piece.phonemes, "bɔ̃ʒˈuʁ.");
});

Deno.test("prepareText() passes IPA through and splits by lines", async () => {
  const pieces = await prepareText("həlˈoʊ\n\nwˈɜːld", {
    language: "en",
    split: "lines",
    phonemizer: ipaPassthrough,
  });
  assertEquals(pieces.map((p) => p.tokens), [[1, 22, 111, 100, 2], [1, 37, 115, 169, 2]]);
});

Deno.test("unsupported language codes throw OptionError naming what is accepted", async () => {
  await rejects(phonemize("hello", "es" as "en"), {
    name: "OptionError",
    message: 'Cannot use language "es": expected one of en, ja, de, fr, zh, ko',
  });
  await rejects(prepareText("hello", { textLanguage: "en-us" as "en" }), {
    name: "OptionError",
    message: 'Cannot use textLanguage "en-us": expected one of en, ja, de, fr, zh, ko',
  });
  throws(() => parseLanguage("", "language"), OptionError);
});

Deno.test("empty and blank text throw OptionError", async () => {
  await rejects(phonemize("", "en"), {
    name: "OptionError",
    message: "Cannot phonemize: text is empty, expected at least one character",
  });
  await rejects(prepareText(" \n\t", { language: "en" }), {
    name: "OptionError",
    message: "Cannot prepare text: it is blank (3 characters), expected some words",
  });
});

Deno.test("text that phonemizes to nothing throws OptionError", async () => {
  await rejects(prepareText("１２３４５", { language: "ja" }), {
    name: "OptionError",
    message: 'Cannot prepare piece 1 of 1 ("１２３４５"): it phonemizes to nothing in ja, ' +
      "expected at least one phoneme",
  });
});

Deno.test("over-long pieces throw OptionError with the count and the limit", async () => {
  await rejects(prepareText("Once again, excellent work.", { language: "en", maxTokens: 10 }), {
    name: "OptionError",
    message: 'Cannot prepare piece 1 of 1 ("Once again, excellent work."): it has 19 tokens, ' +
      "expected at most 10; split the text into shorter sentences or raise maxTokens",
  });
  await rejects(prepareText("a", { maxTokens: 1.5 }), {
    name: "OptionError",
    message: "Cannot prepare text: maxTokens is 1.5, expected an integer > 2",
  });
  await rejects(prepareText("a", { split: "words" as "lines" }), {
    name: "OptionError",
    message: 'Cannot split text by "words": expected "sentences" or "lines"',
  });
});

Deno.test("LANGUAGES holds the model's ids and upstream's espeak languages", () => {
  assertEquals(
    Object.entries(LANGUAGES).map(([code, l]) => `${code}:${l.id}:${l.espeakLanguage}`),
    ["en:0:en-us", "ja:1:ja", "de:2:de", "fr:3:fr-fr", "zh:4:cmn-latn-pinyin", "ko:5:ko"],
  );
  assertEquals(mapPinyinTones("a1b2c3d4e5ɜ"), "aˇbˉcˊdˋe_ɜ");
});
