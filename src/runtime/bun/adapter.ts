/**
 * Bun 1.x. It runs .ts natively in workers and children, so a child is just
 * `bun <entry>`.
 *
 * @module
 */
import { builtin, process } from "../_builtin.ts";
import { nodeApiAdapter } from "../_node_api.ts";
import type { RuntimeAdapter } from "../types.ts";
import { bunSockets } from "./net.ts";
import { bunSpawnCommand } from "./spawn.ts";

interface BunGlobal {
  main: string;
}
const pathToFileURL = (path: string) => builtin<typeof import("node:url")>("node:url").pathToFileURL(path);
const bun = (): BunGlobal => (globalThis as unknown as { Bun: BunGlobal }).Bun;

export const adapter: RuntimeAdapter = nodeApiAdapter({
  key: "bun",
  cpuCount: () => builtin<typeof import("node:os")>("node:os").availableParallelism(),
  mainModuleUrl: () => (bun().main ? pathToFileURL(bun().main).href : undefined),
  isMainModule: (meta) => (meta as { main?: boolean }).main === true,
  workerEntry: (entry) => ({ url: entry }),
  spawnCommand: bunSpawnCommand,
  sockets: bunSockets,
  processArgs: (entryPath) => [...process.execArgv, entryPath],
});
