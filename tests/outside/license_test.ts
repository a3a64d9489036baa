/**
 * What a user of the published package receives, licence by licence: the `license` of deno.json
 * names every licence of a published part, and the text of each ships with the package.
 */

import { deepStrictEqual, ok } from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

/** The published parts under a licence other than MIT, and a line of each that says so. */
const PARTS: readonly { path: string; license: string; notice: string }[] = [
  {
    path: "src/text/espeak151/_archive.ts",
    license: "GPL-3.0-or-later",
    notice: "and its data: GPL-3.0-or-later",
  },
  {
    path: "src/text/_language_profiles.ts",
    license: "Apache-2.0",
    notice: "Cybozu Labs, Inc., under the Apache License 2.0",
  },
];

/** The first line of each licence text as published. */
const TITLES: Readonly<Record<string, string>> = {
  "GPL-3.0-or-later": "GNU GENERAL PUBLIC LICENSE",
  "Apache-2.0": "Apache License",
};

Deno.test("the published licence names every licence the package's files are under", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const licenses = (config.license as string).split(" AND ");
  deepStrictEqual(new Set(licenses), new Set(["MIT", ...PARTS.map((p) => p.license)]));
  const include: string[] = config.publish.include;
  for (const entry of ["src/**/*.ts", "LICENSE", "LICENSES/"]) {
    ok(include.includes(entry), `publish.include has ${entry}: ${include.join(", ")}`);
  }
  for (const { path, license, notice } of PARTS) {
    const head = (await Deno.readTextFile(new URL(path, ROOT))).slice(0, 1000);
    ok(head.includes(notice), `${path} says it is ${license}`);
    const text = await Deno.readTextFile(new URL(`LICENSES/${license}.txt`, ROOT));
    ok(text.trimStart().startsWith(TITLES[license]), `LICENSES/${license}.txt is its text`);
  }
  const overview = await Deno.readTextFile(new URL("LICENSE", ROOT));
  ok(overview.startsWith(`@valle/core is distributed under ${config.license}:`), "LICENSE agrees");
  ok(overview.includes("MIT License\n"), "LICENSE holds the MIT text");
});
