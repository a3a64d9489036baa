/**
 * LoRAs through the product on the tiny models, on every backend: `Valle.load({ lora })` speaks
 * as `setLora` after loading does, removal speaks as the base model bit for bit, a LoRA from a URL
 * is downloaded once through the cache, a LoRA that does not fit leaves the model as it was, and
 * a synthesis under which the LoRA changes fails instead of mixing LoRAs.
 */

import assert from "node:assert/strict";
import { LoraError, OptionError } from "../../src/errors.ts";
import { DirectoryCache } from "../../src/io/cache.ts";
import { parseSafetensors } from "../../src/io/safetensors.ts";
import { Valle } from "../../src/tts/valle.ts";
import { backendTest } from "../_backends.ts";
import { tinyModels } from "../_tiny_models.ts";
import { makeTinyLora } from "../_tiny_lora.ts";

const TEXT = "Hello there. How are you?";
const SETTINGS = { language: "en", seed: 5, maxSeconds: 0.4, steps: 3 } as const;

const tiny = await tinyModels();
const LORA = makeTinyLora(parseSafetensors(tiny.model), { rank: 4, alpha: 8, seed: 11 });

backendTest(
  "Valle speaks with a LoRA from load or setLora alike, and as the base without",
  async (backend) => {
    const base = await Valle.load({ ...tiny, backend, cache: false });
    const plain = await base.synthesize(TEXT, SETTINGS);
    const withLora = await Valle.load({
      ...tiny,
      backend,
      cache: false,
      lora: LORA.bytes,
      loraStrength: 0.8,
    });
    assert.equal(withLora.lora?.strength, 0.8);
    const fromLoad = await withLora.synthesize(TEXT, SETTINGS);
    await base.setLora(LORA.bytes, { strength: 0.8 });
    const fromSet = await base.synthesize(TEXT, SETTINGS);
    assert.deepEqual(fromSet.samples, fromLoad.samples);
    assert.notDeepEqual(fromSet.pieces[0].codes.data, plain.pieces[0].codes.data);
    await withLora.setLora(null);
    assert.equal(withLora.lora, null);
    const removed = await withLora.synthesize(TEXT, SETTINGS);
    assert.deepEqual(removed.samples, plain.samples);
    await Promise.all([base.dispose(), withLora.dispose()]);
  },
);

backendTest(
  "a LoRA that does not fit is refused and the model stays as it was",
  async (backend) => {
    const valle = await Valle.load({ ...tiny, backend, cache: false, lora: LORA.bytes });
    const before = await valle.synthesize(TEXT, SETTINGS);
    const wrong = makeTinyLora(parseSafetensors(tiny.model), { rank: 4, config: { rank: 2 } });
    await assert.rejects(valle.setLora(wrong.bytes), LoraError);
    await assert.rejects(valle.setLora(LORA.bytes, { strength: Infinity }), OptionError);
    await assert.rejects(valle.setLora(LORA.bytes, { strength: 1e9 }), OptionError);
    assert.equal(valle.lora?.strength, 1);
    assert.deepEqual((await valle.synthesize(TEXT, SETTINGS)).samples, before.samples);
    await valle.dispose();
  },
);

backendTest(
  "a refused rank-0 LoRA keeps the LoRA before and leaves no work behind",
  async (backend) => {
    const valle = await Valle.load({ ...tiny, backend, cache: false, lora: LORA.bytes });
    const before = await valle.synthesize(TEXT, SETTINGS);
    // A config without a rank: the rank comes from the tensors, 0.
    const rank0 = makeTinyLora(parseSafetensors(tiny.model), { rank: 0, config: { rank: null } });
    await assert.rejects(valle.setLora(rank0.bytes), LoraError);
    assert.equal(valle.lora?.strength, 1);
    assert.deepEqual((await valle.synthesize(TEXT, SETTINGS)).samples, before.samples);
    await valle.encodeReference({ samples: new Float32Array(4800), sampleRate: 24000 });
    await valle.dispose(); // threw "Cannot destroy a recorder with unsubmitted work"
  },
);

backendTest(
  "a load whose LoRA does not fit leaves nothing on the caller's backend",
  async (backend) => {
    const held = backend.memory.current;
    const wrong = makeTinyLora(parseSafetensors(tiny.model), { rank: 4, config: { rank: 2 } });
    await assert.rejects(
      Valle.load({ ...tiny, backend, cache: false, lora: wrong.bytes }),
      LoraError,
    );
    await assert.rejects(
      Valle.load({ ...tiny, backend, cache: false, lora: LORA.bytes, loraStrength: -1e9 }),
      {
        name: "OptionError",
        message: "Cannot load a LoRA: loraStrength is -1000000000, expected a number in [-10, 10]",
      },
    );
    assert.equal(backend.memory.current, held);
  },
);

backendTest("overlapping setLora calls take effect in call order", async (backend) => {
  const dir = await Deno.makeTempDir({ prefix: "valle-lora-order-" });
  const valle = await Valle.load({ ...tiny, backend, cache: false });
  try {
    // A file is read more slowly than bytes are: were calls not ordered, the later would win.
    const path = `${dir}/lora.sft`;
    await Deno.writeFile(path, LORA.bytes);
    const plain = await valle.synthesize(TEXT, SETTINGS);
    await Promise.all([valle.setLora(path), valle.setLora(null)]);
    assert.equal(valle.lora, null);
    assert.deepEqual((await valle.synthesize(TEXT, SETTINGS)).samples, plain.samples);

    const other = makeTinyLora(parseSafetensors(tiny.model), { rank: 2, alpha: 2, seed: 12 });
    const [first, last] = await Promise.all([
      valle.setLora(path, { strength: 0.2 }),
      valle.setLora(other.bytes, { strength: 0.9 }),
    ]);
    assert.deepEqual([first?.source, first?.strength], [path, 0.2]);
    assert.deepEqual(valle.lora, last);
    assert.deepEqual([last?.source, last?.strength], ["<lora bytes>", 0.9]);
    const alone = await Valle.load({
      ...tiny,
      backend,
      cache: false,
      lora: other.bytes,
      loraStrength: 0.9,
    });
    assert.deepEqual(
      (await valle.synthesize(TEXT, SETTINGS)).samples,
      (await alone.synthesize(TEXT, SETTINGS)).samples,
    );
    await alone.dispose();

    // A refused or aborted call holds up none of the calls after it.
    const wrong = makeTinyLora(parseSafetensors(tiny.model), { rank: 4, config: { rank: 2 } });
    const [refused, aborted, applied] = await Promise.allSettled([
      valle.setLora(wrong.bytes),
      valle.setLora(path, { signal: AbortSignal.abort() }),
      valle.setLora(path, { strength: 0.5 }),
    ]);
    assert.ok(refused.status === "rejected" && refused.reason instanceof LoraError);
    assert.ok(aborted.status === "rejected" && aborted.reason.name === "AbortError");
    assert.ok(applied.status === "fulfilled");
    assert.deepEqual([applied.value?.source, applied.value?.strength], [path, 0.5]);
    assert.deepEqual(valle.lora, applied.value);
  } finally {
    await valle.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

backendTest("a refused LoRA does not disturb a running synthesis", async (backend) => {
  const valle = await Valle.load({ ...tiny, backend, cache: false });
  const alone = await valle.synthesize(TEXT, SETTINGS);
  const pieces = valle.stream(TEXT, SETTINGS);
  const first = await pieces.next();
  const wrong = makeTinyLora(parseSafetensors(tiny.model), { rank: 4, config: { rank: 2 } });
  await assert.rejects(valle.setLora(wrong.bytes), LoraError);
  const second = await pieces.next();
  assert.deepEqual(
    [first.value?.samples, second.value?.samples],
    alone.pieces.map((piece) => piece.samples),
  );
  await valle.dispose();
});

backendTest("a synthesis under which the LoRA changes fails instead of mixing", async (backend) => {
  const valle = await Valle.load({ ...tiny, backend, cache: false });
  const pieces = valle.stream(TEXT, SETTINGS);
  const first = await pieces.next();
  assert.equal(first.value?.index, 0);
  await valle.setLora(LORA.bytes);
  await assert.rejects(pieces.next(), /the LoRA changed during this synthesis/);
  // The next synthesis speaks with the new LoRA, from its first piece.
  const speech = await valle.synthesize(TEXT, SETTINGS);
  assert.equal(speech.pieces.length, 2);
  await valle.dispose();
});

Deno.test({
  name: "a LoRA from a URL is downloaded once, through the cache",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let requests = 0;
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
      requests++;
      return new Response(LORA.bytes);
    });
    const dir = await Deno.makeTempDir({ prefix: "valle-lora-cache-" });
    try {
      const url = `http://127.0.0.1:${server.addr.port}/loras/lora-tiny-r4-a8/lora.sft`;
      const cache = new DirectoryCache(dir);
      const valle = await Valle.load({ ...tiny, backend: "cpu", cache, lora: url });
      assert.equal(valle.lora?.source, url);
      await valle.setLora(null);
      await valle.setLora(url, { strength: 0.5 });
      assert.equal(requests, 1);
      assert.equal(valle.lora?.strength, 0.5);
      await valle.dispose();
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
