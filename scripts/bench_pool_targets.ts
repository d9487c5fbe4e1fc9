/**
 * Task functions for scripts/bench_pool.ts, loaded by the pool's workers through `fromModule`
 * and imported by the parent for the serial runs. scripts/bench_pool_raw.mjs and
 * scripts/bench_pool_piscina.mjs carry plain-JS copies of the same two functions.
 * Nothing runs at top level.
 *
 * @module
 */

/** The trivial task: the cost measured is the pool's, not the task's. */
export function sq(x: number): number {
  return x * x;
}

/** The CPU-bound task, sum(i*i, i<n); bench_pool.ts picks n for ~10 ms. */
export function cpu(n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += i * i;
  return s;
}
