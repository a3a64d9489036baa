/**
 * Batched synthesis in the product: texts and pieces generated in batches give the audio they
 * give one by one, streaming puts the first piece out alone before batching the rest and yields
 * pieces in order as each batch is decoded, and progress names the batch's rows.
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert";
import { OptionError } from "../../src/errors.ts";
import { Valle } from "../../src/tts/valle.ts";
import type { SynthesisProgress } from "../../src/tts/options.ts";
import { backendTest } from "../_backends.ts";
import { tinyModels } from "../_tiny_models.ts";

/** Short pieces: 0.4 s = 30 frames at most. */
const BASE = { language: "en", seed: 5, maxSeconds: 0.4, steps: 3 } as const;

for (const modality of ["ar+nar", "nar-len"] as const) {
  backendTest(
    `synthesizeBatch() with ${modality} equals synthesize() one piece at a time`,
    async (backend) => {
      const valle = await Valle.load({ ...await tinyModels(), backend, cache: false });
      const texts = ["Hello there. How are you today, my friend?", "Fine.", "Thanks a lot."];
      const options = { ...BASE, modality, decoder: "encodec" as const };
      const batched = await valle.synthesizeBatch(texts, { ...options, batchSize: 3 });
      equal(batched.length, 3);
      for (const [t, text] of texts.entries()) {
        const alone = await valle.synthesize(text, { ...options, batchSize: 1 });
        equal(batched[t].pieces.length, alone.pieces.length);
        batched[t].pieces.forEach((p, i) => deepStrictEqual(p.codes, alone.pieces[i].codes));
        deepStrictEqual(batched[t].samples, alone.samples);
      }
      await rejects(valle.synthesizeBatch([], options), OptionError);
      await rejects(valle.synthesizeBatch(texts, { ...options, batchSize: 0 }), /batchSize/);
      await valle.dispose();
    },
  );
}

for (const modality of ["ar+nar", "nar-len"] as const) {
  backendTest(
    `stream() with ${modality} and the default batchSize yields the first piece before generating the rest, each piece as batchSize 1 gives it`,
    async (backend) => {
      const valle = await Valle.load({ ...await tinyModels(), backend, cache: false });
      const text = "One. Two. Three. Four.";
      const options = { ...BASE, modality, decoder: "encodec" as const };
      const events: string[] = [];
      const onProgress = (p: SynthesisProgress) => {
        const event = p.phase === "decode"
          ? `decode ${p.piece}`
          : ["duration", "level0", "nar"].includes(p.phase)
          ? `generate ${p.piece}+${p.rows ?? 1}`
          : undefined;
        if (event && events.at(-1) !== event) events.push(event);
      };
      const streamed = [];
      for await (const piece of valle.stream(text, { ...options, onProgress })) {
        events.push(`piece ${piece.index}`);
        streamed.push(piece);
      }
      // The default (4 rows here) batches what follows the first piece, spoken alone.
      deepStrictEqual(events, [
        "generate 0+1",
        "decode 0",
        "piece 0",
        "generate 1+3",
        "decode 1",
        "piece 1",
        "decode 2",
        "piece 2",
        "decode 3",
        "piece 3",
      ]);
      const alone = await Array.fromAsync(valle.stream(text, { ...options, batchSize: 1 }));
      equal(streamed.length, alone.length);
      streamed.forEach((p, i) => {
        deepStrictEqual(p.codes, alone[i].codes, `piece ${i} codes`);
        deepStrictEqual(p.samples, alone[i].samples, `piece ${i} samples`);
      });
      await valle.dispose();
    },
  );
}

backendTest(
  "stream() with a batchSize yields the first piece alone, then the rest in batches, in order",
  async (backend) => {
    const valle = await Valle.load({ ...await tinyModels(), backend, cache: false });
    const events: string[] = [];
    const onProgress = (p: SynthesisProgress) => {
      if (p.phase === "level0" && p.step === 0) {
        events.push(
          p.rows === undefined
            ? `alone ${p.piece}`
            : `batch ${p.piece}+${p.rows} running ${p.running}`,
        );
      }
    };
    const text = "One. Two. Three.";
    const options = { ...BASE, modality: "ar+nar" as const, decoder: "encodec" as const };
    for await (const piece of valle.stream(text, { ...options, batchSize: 2, onProgress })) {
      events.push(`piece ${piece.index}/${piece.count}`);
    }
    deepStrictEqual(events, [
      "alone 0",
      "piece 0/3",
      "batch 1+2 running 2",
      "piece 1/3",
      "piece 2/3",
    ]);
    ok(valle.backend.memory.current > 0);
    await valle.dispose();
  },
);
