/** Seeded inputs shared by the browser kernel page and its Deno test. */

import { Rng } from "../_helpers.ts";

/** The inputs of every kernel run in the browser. */
export function browserInputs() {
  const rng = new Rng(42);
  const [m, n, k] = [19, 70, 45];
  const [rows, d] = [3, 130];
  const [s, heads, headDim] = [21, 2, 16];
  // A quantized GEMM (more rows than the GEMV takes, K whole Q4_K super-blocks).
  const [qm, qn, qk] = [9, 40, 256];
  return {
    linear: { m, n, k, x: rng.normals(m * k), w: rng.normals(n * k, 0.1), b: rng.normals(n) },
    quant: { m: qm, n: qn, k: qk, x: rng.normals(qm * qk), w: rng.normals(qn * qk, 0.05) },
    norm: { rows, d, x: rng.normals(rows * d), w: rng.normals(d) },
    // Rows wider than a workgroup, and a row of large logits (the max matters).
    softmax: { rows: 2, cols: 1025, x: rng.normals(2 * 1025, 8) },
    attention: {
      s,
      heads,
      headDim,
      q: rng.normals(s * heads * headDim),
      k: rng.normals(s * heads * headDim),
      v: rng.normals(s * heads * headDim),
    },
  };
}
