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
import { builtin, process } from "../_builtin.ts";
import { nodeApiAdapter } from "../_node_api.ts";
import type { RuntimeAdapter } from "../types.ts";

const pathToFileURL = (path: string) => builtin<typeof import("node:url")>("node:url").pathToFileURL(path);

const LOADER_FLAGS = new Set(["--import", "--require", "-r", "--loader", "--experimental-loader"]);

function resolveFromCwd(specifier: string, asUrl: boolean): string {
  try {
    const resolved = import.meta.resolve(specifier);
    return asUrl ? resolved : new URL(resolved).pathname;
  } catch {
    const { createRequire } = builtin<typeof import("node:module")>("node:module");
    const path = createRequire(`${process.cwd()}/noop.js`).resolve(specifier);
    return asUrl ? pathToFileURL(path).href : path;
  }
}

function isBare(specifier: string): boolean {
  return !/^(\.|\/|file:|data:|node:)/.test(specifier);
}

// A worker's own process.execArgv holds only what it was started with, so the
// first thread records the real flags here for workers to pass on.
const INHERITED = Symbol.for("polyproc.node.execArgv");
const store = globalThis as unknown as { [INHERITED]?: string[] };

/** The parent's exec flags, fit for a child: loaders absolute, debugger and test flags dropped. */
function childExecArgv(): string[] {
  const inherited = store[INHERITED];
  if (inherited !== undefined) return inherited;
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (/^--(inspect|debug|test)/.test(flag)) continue;
    if (LOADER_FLAGS.has(flag) && i + 1 < argv.length) {
      const value = argv[++i];
      const asUrl = flag !== "--require" && flag !== "-r";
      // As URLs, so that a worker's bootstrap can find tsx in them (`--import /path/to/tsx/...`).
      const absolute = asUrl && value.startsWith("/") ? pathToFileURL(value).href : value;
      out.push(flag, isBare(value) ? resolveFromCwd(value, asUrl) : absolute);
      continue;
    }
    out.push(flag);
  }
  return store[INHERITED] = out;
}

/** The exec flags a worker may take: everything but the module loaders, which workers ignore. */
function workerExecArgv(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (LOADER_FLAGS.has(argv[i])) i++;
    else out.push(argv[i]);
  }
  return out;
}

/**
 * A worker starts from a data: module that hands down the exec flags and, when
 * the program runs under tsx, registers tsx in the thread before loading `entry`.
 */
function workerBootstrap(entry: URL): URL {
  const argv = childExecArgv();
  // `--import tsx` names tsx/dist/loader.mjs, `--import tsx/esm` tsx/dist/esm/index.mjs: its register() is in the package's dist/esm/api.
  const tsx = argv.find((a) => a.startsWith("file:") && a.includes("/tsx/dist/"));
  let source = `globalThis[Symbol.for("polyproc.node.execArgv")] = ${JSON.stringify(argv)};\n`;
  if (tsx !== undefined) {
    const api = `${tsx.slice(0, tsx.lastIndexOf("/tsx/dist/"))}/tsx/dist/esm/api/index.mjs`;
    source += `const { register } = await import(${JSON.stringify(api)});\nregister();\n`;
  }
  source += `await import(${JSON.stringify(entry.href)});\n`;
  return new URL("data:text/javascript," + encodeURIComponent(source));
}

export const adapter: RuntimeAdapter = nodeApiAdapter({
  key: "node",
  cpuCount: () => builtin<typeof import("node:os")>("node:os").availableParallelism(),
  mainModuleUrl: () => (process.argv[1] ? pathToFileURL(process.argv[1]).href : undefined),
  isMainModule: (meta) => !!process.argv[1] && meta.url === pathToFileURL(process.argv[1]).href,
  workerEntry: (entry) => ({ url: workerBootstrap(entry), execArgv: workerExecArgv(childExecArgv()) }),
  processArgs: (entryPath) => [...childExecArgv(), entryPath],
});
