/**
 * Loads a built-in module when it is first needed rather than at import: every
 * child imports this layer, and most never spawn a process or start a worker
 * (Bun spends ~16 ms importing the ones polyproc uses).
 *
 * @module
 */

/** The runtime's `process` global (importing "node:process" costs Deno ~30 ms). */
export const process: typeof import("node:process") = (globalThis as unknown as {
  process: typeof import("node:process");
}).process;

/** The built-in module `name` ("node:fs"), loaded synchronously. */
export function builtin<T>(name: string): T {
  return process.getBuiltinModule(name) as T;
}
