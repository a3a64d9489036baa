/**
 * Float64 oracles of the training GEMMs: the general product with transposes (`matmul`) and the
 * input gradient of a linear layer.
 */

/**
 * alpha · op(a) · op(b) (+ c0): op(a) (M, K) is a, or aᵀ of a stored (K, M); op(b) (K, N) is b, or
 * bᵀ of b stored (N, K).
 */
export function matmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  [m, n, k]: readonly [number, number, number],
  { transA = false, transB = false, alpha = 1, c0 }: {
    transA?: boolean;
    transB?: boolean;
    alpha?: number;
    c0?: ArrayLike<number>;
  } = {},
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) {
        s += a[transA ? t * m + i : i * k + t] * b[transB ? j * k + t : t * n + j];
      }
      c[i * n + j] = alpha * s + (c0 ? c0[i * n + j] : 0);
    }
  }
  return c;
}
