/**
 * Bun 1.x. It runs .ts natively in workers and children, so a child is just
 * `bun <entry>`.
 *
 * @module
 */
import { availableParallelism } from "node:os";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { nodeApiAdapter } from "../_node_api.ts";
import type { RuntimeAdapter } from "../types.ts";

interface BunGlobal {
  main: string;
}
const bun = (): BunGlobal => (globalThis as unknown as { Bun: BunGlobal }).Bun;

export const adapter: RuntimeAdapter = nodeApiAdapter({
  key: "bun",
  cpuCount: () => availableParallelism(),
  mainModuleUrl: () => (bun().main ? pathToFileURL(bun().main).href : undefined),
  isMainModule: (meta) => (meta as { main?: boolean }).main === true,
  workerEntry: (entry) => ({ url: entry }),
  processArgs: (entryPath) => [...process.execArgv, entryPath],
});
