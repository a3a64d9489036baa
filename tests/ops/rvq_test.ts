import { rvqEncode, transposeCodebooks } from "../../src/ops/rvq.ts";
import { createTensor, readU32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { Rng } from "../_helpers.ts";
import * as ref from "../reference/codec.ts";
import { deepStrictEqual } from "node:assert";

backendTest(
  "rvqEncode() picks the nearest codewords of every codebook in turn",
  async (backend) => {
    const rng = new Rng(3);
    const [frames, d, bins, nq] = [7, 8, 1024, 4];
    const codebooks = rng.normals(nq * bins * d);
    const x = rng.normals(frames * d, 1.5);
    const codes = createTensor(backend, [nq, frames + 3], "u32", "codes");
    const rec = backend.createRecorder();
    rvqEncode(
      rec,
      codes,
      uploadTensor(backend, x, [frames, d], "f32", "x"),
      uploadTensor(backend, transposeCodebooks(codebooks, bins, d), [nq, d, bins], "f32", "cb"),
      { column: 2 },
    );
    rec.submit();
    const got = await readU32(backend, codes);
    const expected = ref.rvqEncode(x, frames, d, codebooks, bins, nq);
    for (let q = 0; q < nq; q++) {
      const row = Array.from(got.subarray(q * (frames + 3) + 2, q * (frames + 3) + 2 + frames));
      deepStrictEqual(row, Array.from(expected.subarray(q * frames, (q + 1) * frames)));
    }
  },
);

backendTest(
  "rvqEncode() breaks exact ties toward the lowest index, as torch's argmax does",
  async (backend) => {
    // Codewords 5 and 300 (and 900) are identical and nearest; small codebooks and a wide one.
    const [d, bins] = [130, 1000];
    const codebooks = new Float32Array(bins * d).fill(10);
    for (const j of [900, 300, 5]) codebooks.fill(0.5, j * d, (j + 1) * d);
    const x = new Float32Array(d).fill(0.25);
    const codes = createTensor(backend, [1, 1], "u32", "codes");
    const rec = backend.createRecorder();
    rvqEncode(
      rec,
      codes,
      uploadTensor(backend, x, [1, d], "f32", "x"),
      uploadTensor(backend, transposeCodebooks(codebooks, bins, d), [1, d, bins], "f32", "cb"),
    );
    rec.submit();
    deepStrictEqual(Array.from(await readU32(backend, codes)), [5]);
  },
);
