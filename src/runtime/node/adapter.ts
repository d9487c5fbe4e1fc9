/**
 * Node.js (20+), running TypeScript through tsx or plain JavaScript.
 *
 * tsx registers its loader hooks on the main thread only (Node < 22.22.3), so a
 * worker that must load .ts starts from a tiny data: module that registers tsx
 * first. Children get the parent's flags with bare loader names made absolute,
 * because a bare `--import tsx` fails from any other cwd.
 *
 * @module
 */
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { nodeApiAdapter } from "../_node_api.ts";
import type { RuntimeAdapter } from "../types.ts";

const LOADER_FLAGS = new Set(["--import", "--require", "-r", "--loader", "--experimental-loader"]);

function resolveFromCwd(specifier: string, asUrl: boolean): string {
  try {
    const resolved = import.meta.resolve(specifier);
    return asUrl ? resolved : new URL(resolved).pathname;
  } catch {
    const path = createRequire(join(process.cwd(), "noop.js")).resolve(specifier);
    return asUrl ? pathToFileURL(path).href : path;
  }
}

function isBare(specifier: string): boolean {
  return !/^(\.|\/|file:|data:|node:)/.test(specifier);
}

/** The parent's exec flags, fit for a child: loaders absolute, debugger and test flags dropped. */
function childExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (/^--(inspect|debug|test)/.test(flag)) continue;
    if (LOADER_FLAGS.has(flag) && i + 1 < argv.length) {
      const value = argv[++i];
      const asUrl = flag !== "--require" && flag !== "-r";
      out.push(flag, isBare(value) ? resolveFromCwd(value, asUrl) : value);
      continue;
    }
    out.push(flag);
  }
  return out;
}

function usesTsx(): boolean {
  return process.execArgv.some((a) => a.includes("tsx"));
}

/** The exec flags a worker may take: everything but the module loaders (workers ignore them). */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const argv = childExecArgv();
  for (let i = 0; i < argv.length; i++) {
    if (LOADER_FLAGS.has(argv[i])) i++;
    else out.push(argv[i]);
  }
  return out;
}

let tsxApi: string | undefined;

export const adapter: RuntimeAdapter = nodeApiAdapter({
  key: "node",
  cpuCount: () => availableParallelism(),
  mainModuleUrl: () => (process.argv[1] ? pathToFileURL(process.argv[1]).href : undefined),
  isMainModule: (meta) => !!process.argv[1] && meta.url === pathToFileURL(process.argv[1]).href,
  workerEntry(entry) {
    const execArgv = workerExecArgv();
    if (!usesTsx()) return { url: entry, execArgv };
    tsxApi ??= resolveFromCwd("tsx/esm/api", true);
    const source = `const { register } = await import(${JSON.stringify(tsxApi)});\n` +
      `register();\nawait import(${JSON.stringify(entry.href)});\n`;
    return { url: new URL("data:text/javascript," + encodeURIComponent(source)), execArgv };
  },
  processArgs: (entryPath) => [...childExecArgv(), entryPath],
});
