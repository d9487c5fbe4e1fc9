/**
 * Targets for scripts/bench_process.ts. Nothing runs at top level, so this file is
 * also the "tiny .ts module" that the raw baselines start as a worker or a subprocess.
 *
 * @module
 */

/** Does nothing: the child's cost is all start-up and shutdown. */
export function noop(): void {}
