import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { splitText } from "../../src/text/split.ts";

Deno.test("splitText() cuts sentences and trims them", () => {
  assertEquals(splitText("First.  Second!\tThird?\nFourth"), [
    "First.",
    "Second!",
    "Third?",
    "Fourth",
  ]);
});

Deno.test("splitText() keeps a sentence going after a closing straight quote, as upstream", () => {
  assertEquals(splitText('He said "Hi." Then he left. "Stop!" she said.'), [
    'He said "Hi." Then he left.',
    '"Stop!" she said.',
  ]);
});

Deno.test("splitText() does not cut after titles", () => {
  assertEquals(splitText("Dr. Smith met Mr. Jones. They talked."), [
    "Dr. Smith met Mr. Jones.",
    "They talked.",
  ]);
});

Deno.test("splitText() handles full-width sentence marks", () => {
  assertEquals(splitText("おはよう。元気？ うん、元気だよ！", { locale: "ja" }), [
    "おはよう。",
    "元気？",
    "うん、元気だよ！",
  ]);
});

Deno.test("splitText() by lines keeps lines as they are and drops blank ones", () => {
  assertEquals(splitText("one. two.\r\n\n  \nthree ", { by: "lines" }), ["one. two.", "three "]);
  assertEquals(splitText(""), []);
});

Deno.test("splitText() ends a sentence before a lowercase word or a digit, as punkt does", () => {
  assertEquals(splitText("i went home. then i slept."), ["i went home.", "then i slept."]);
  assertEquals(splitText("he left (home.) then 3 cats came."), [
    "he left (home.)",
    "then 3 cats came.",
  ]);
  // Abbreviations, inner periods, initials, numbers and ellipses leave the sentence going.
  assertEquals(splitText("apples, pears etc. and more. e.g. plums at 3 p.m. today."), [
    "apples, pears etc. and more.",
    "e.g. plums at 3 p.m. today.",
  ]);
  assertEquals(splitText("by j. smith in vol. 2 of 3. the end... or not."), [
    "by j. smith in vol. 2 of 3. the end... or not.",
  ]);
});
