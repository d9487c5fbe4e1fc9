/**
 * Deno 2. Children get exactly the permissions the parent holds (never `-A`):
 * each granted permission is passed on as its `--allow-*` flag. Permissions
 * granted only for some paths or hosts cannot be read back and are not passed.
 * (Deno's child_process turns a `deno run` without any permission flag into
 * `deno run -A`; the "process" method always passes at least --allow-read,
 * --allow-run and --allow-env, so that never happens here.)
 *
 * @module
 */
import { StartMethodError } from "../../errors.ts";
import { nodeApiAdapter } from "../_node_api.ts";
import type { RuntimeAdapter } from "../types.ts";
import { denoSockets } from "./net.ts";
import { denoSpawnCommand } from "./spawn.ts";

interface DenoGlobal {
  mainModule: string;
  permissions: { querySync(d: { name: string }): { state: "granted" | "denied" | "prompt" } };
}
const deno = (): DenoGlobal => (globalThis as unknown as { Deno: DenoGlobal }).Deno;

const PERMISSIONS = ["read", "write", "net", "env", "run", "sys", "ffi", "import"];

function granted(name: string): boolean {
  try {
    return deno().permissions.querySync({ name }).state === "granted";
  } catch {
    return false; // a permission name this Deno does not know
  }
}

const FLAGS = {
  worker: "--allow-read",
  process: "--allow-read --allow-run --allow-env",
  broker: "--allow-read --allow-write --allow-net --allow-run --allow-env",
};
const WHAT = {
  worker: 'The "worker" start method',
  process: 'The "process" start method',
  broker: `The "process" start method's broker (its queues and other shared objects)`,
};

// Without these, Deno would fail later and less clearly: in the child, or asynchronously.
function requirePermissions(use: keyof typeof FLAGS, names: string[]): void {
  const missing = names.filter((name) => !granted(name));
  if (missing.length > 0) {
    throw new StartMethodError(
      `${WHAT[use]} on Deno needs ${missing.map((n) => `--allow-${n}`).join(" ")} (run Deno with ${FLAGS[use]})`,
    );
  }
}

export const adapter: RuntimeAdapter = nodeApiAdapter({
  key: "deno",
  // os.cpus() would need --allow-sys; navigator needs no permission.
  cpuCount: () => (globalThis as unknown as { navigator: { hardwareConcurrency: number } }).navigator.hardwareConcurrency,
  mainModuleUrl: () => deno().mainModule,
  isMainModule: (meta) => (meta as ImportMeta & { main?: boolean }).main === true,
  workerEntry: (entry) => ({ url: entry }),
  spawnCommand: denoSpawnCommand,
  processArgs: (entryPath) => [
    "run",
    "--quiet",
    ...PERMISSIONS.filter(granted).map((name) => `--allow-${name}`),
    entryPath,
  ],
  // Deno reports some rejections only as a global event, which would end the isolate.
  onGlobalError(handler) {
    const target = globalThis as unknown as EventTarget;
    target.addEventListener("error", (e: Event & { error?: unknown }) => {
      e.preventDefault();
      handler(e.error);
    });
    target.addEventListener("unhandledrejection", (e: Event & { reason?: unknown }) => {
      e.preventDefault();
      handler(e.reason);
    });
  },
  checkCanSpawnWorker: () => requirePermissions("worker", ["read"]),
  checkCanSpawnProcess: () => requirePermissions("process", ["read", "run", "env"]),
  // A unix socket in a private temporary folder: the folder's name comes from TMPDIR
  // (env), and a listen without net permission kills the program asynchronously.
  checkCanServe: () => requirePermissions("broker", ["read", "write", "net", "env"]),
  sockets: denoSockets,
  // No pollSoon: a chain of setImmediate or of 0 ms timers left a manager call no faster
  // on Deno (and a socket ping-pong with a read loop half as fast).
  pollSoon: undefined,
});
