import { createRopeTable, rope } from "../../src/ops/rope.ts";
import { readF32, uploadTensor } from "../../src/backends/tensor.ts";
import { backendTest } from "../_backends.ts";
import { assertClose, Rng } from "../_helpers.ts";
import * as ref from "../reference/ops.ts";

// [rows, heads, headDim, column, width]: plain rows, odd head counts, and K inside fused QKV rows.
const CASES: [number, number, number, number, number][] = [
  [1, 1, 2, 0, 2],
  [7, 3, 16, 0, 48],
  [5, 16, 64, 0, 1024],
  [9, 4, 8, 32, 96],
];

for (const [s, heads, headDim, column, width] of CASES) {
  backendTest(
    `rope() matches CPU for S=${s} heads=${heads} headDim=${headDim} column=${column}`,
    async (backend) => {
      const rng = new Rng(s + heads + headDim);
      const x = rng.normals(s * width);
      // Segment-relative positions restart, repeat and reach the thousands.
      const positions = Uint32Array.from({ length: s }, (_, i) => (i * 997) % 3001);
      const table = createRopeTable(backend, headDim, 10000, 3001);
      const xt = uploadTensor(backend, x, [s, width], "f32", "x");
      const pt = uploadTensor(backend, positions, [s], "u32", "positions");
      const rec = backend.createRecorder();
      rope(rec, xt, pt, table, { heads, headDim, column });
      rec.submit();
      const expected = ref.rope(x, positions, { heads, headDim, width, column });
      assertClose(await readF32(backend, xt), expected, { atol: 1e-5 });
    },
  );
}
