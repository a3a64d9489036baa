import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { tokenizePhonemes } from "../../src/text/tokenizer.ts";
import { readFixture } from "../_helpers.ts";

interface Vector {
  group: string;
  note: string;
  input: string;
  ids: number[];
}

const { cases } = JSON.parse(
  new TextDecoder().decode(await readFixture("text_tokenizer_vectors.json")),
) as { cases: Vector[] };

Deno.test("tokenizePhonemes() matches all 38 reference vectors exactly", () => {
  assertEquals(cases.length, 38);
  for (const c of cases) {
    assertEquals(
      tokenizePhonemes(c.input),
      c.ids,
      `${c.group}: ${c.note} (${JSON.stringify(c.input)})`,
    );
  }
});

Deno.test("tokenizePhonemes() wraps the empty string as <bos> </eos>", () => {
  assertEquals(tokenizePhonemes(""), [1, 2]);
});
