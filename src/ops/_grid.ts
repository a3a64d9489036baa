/**
 * Workgroup grids for WebGPU dispatches (the CPU backend ignores them).
 *
 * This module is browser compatible.
 *
 * @module
 */

/**
 * Splits `n` workgroups into a grid that respects the per-dimension limit (65535 by default):
 * kernels that accept a 2-D grid index it as `gid.x + gid.y · num_workgroups.x · WG`.
 *
 * @example
 * ```ts ignore
 * rec.dispatch(SPEC, [x, y], [n, …], grid1d(Math.ceil(n / 256)));
 * ```
 */
export function grid1d(n: number, limit = 65535): [number, number] {
  if (n <= limit) return [n, 1];
  const y = Math.ceil(n / limit);
  return [Math.ceil(n / y), y];
}
