import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { detectLanguage } from "../../src/text/detect.ts";
import { CORPUS } from "./_corpus.ts";

Deno.test("detectLanguage() recognizes every plain corpus sentence", async () => {
  const plain = CORPUS.filter((entry) => entry.tags.includes("plain"));
  assertEquals(plain.length, 90);
  const wrong = [];
  for (const entry of plain) {
    const detected = await detectLanguage(entry.text);
    if (detected !== entry.lang) wrong.push(`${entry.id}: ${detected}`);
  }
  assertEquals(wrong, []);
});

Deno.test("detectLanguage() is deterministic and answers en without letters", async () => {
  const text = "Ceci est une phrase.";
  assertEquals(await detectLanguage(text), await detectLanguage(text));
  assertEquals(await detectLanguage(""), "en");
  assertEquals(await detectLanguage("12345 !?"), "en");
});

Deno.test("detectLanguage() maps both Chinese profiles to zh", async () => {
  assertEquals(await detectLanguage("我喜歡吃蘋果。"), "zh");
  assertEquals(await detectLanguage("我喜欢吃苹果。"), "zh");
});
