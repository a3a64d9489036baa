/** erf in float64 to ~1e-15 (JavaScript has none): Taylor series near 0, continued fraction beyond. */

/** The error function. */
export function erf(x: number): number {
  if (x < 0) return -erf(-x);
  if (x < 2) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 80; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  return 1 - erfc(x);
}

/** The complementary error function 1 - erf(x), accurate in the tails. */
export function erfc(x: number): number {
  if (x < 2) return 1 - erf(x);
  // Lentz's method for erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = x + a / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** PyTorch's exact GELU, 0.5 x (1 + erf(x / √2)). */
export function gelu(x: number): number {
  return 0.5 * x * erfc(-x / Math.SQRT2);
}
