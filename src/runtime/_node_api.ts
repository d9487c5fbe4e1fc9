/**
 * The part of the adapter that all three runtimes share: each of them runs
 * `node:worker_threads` and `node:child_process` well enough, and those are the
 * only APIs that report exit codes everywhere (research/runtime-matrix.md §1, §4).
 * The per-runtime files supply what differs: how a child of this runtime is
 * launched, where the main module is, how many CPUs there are.
 *
 * @module
 */
import type { ChildProcess } from "node:child_process";
import type { Worker } from "node:worker_threads";
import { builtin, process } from "./_builtin.ts";
import { nodeNet } from "./_node_net.ts";
import { forgetChild, watchChild } from "./_reaper.ts";
import { nodeSpawnCommand } from "./_spawn.ts";
import type { Channel, ChildHandle, ChildInit, ExitStatus, NetAdapter, RuntimeAdapter, SpawnOptions } from "./types.ts";

type WorkerThreads = typeof import("node:worker_threads");
const workerThreads = () => builtin<WorkerThreads>("node:worker_threads");

/** What a runtime must say about itself; the rest is shared. */
export interface RuntimeTraits {
  key: RuntimeAdapter["key"];
  cpuCount(): number;
  mainModuleUrl(): string | undefined;
  isMainModule(importMeta: ImportMeta): boolean;
  /** The module a worker is started from, and the exec flags it gets. */
  workerEntry(entry: URL): { url: URL; execArgv?: string[] };
  /** The argv (after the executable) that runs `entryPath` as a child of this runtime. */
  processArgs(entryPath: string): string[];
  /** Routes the runtime's own uncaught-error events to `handler`, where it has any. */
  onGlobalError?(handler: (error: unknown) => void): void;
  /** Throws a clear error when the runtime forbids starting a worker. */
  checkCanSpawnWorker?(): void;
  /** Throws a clear error when the runtime forbids starting a subprocess. */
  checkCanSpawnProcess?(): void;
  /** Throws a clear error when the runtime forbids serving on a unix socket. */
  checkCanServe?(): void;
  /** Starts a program for `Popen`, where `node:child_process` is not the best way. */
  spawnCommand?: RuntimeAdapter["spawnCommand"];
  /** Sockets on the runtime's own API, where `node:net` is slower (a manager call is a round trip). */
  sockets?: Pick<NetAdapter, "listen" | "connect">;
  /** {@linkcode RuntimeAdapter.pollSoon}, where setImmediate is not the way (undefined: none). */
  pollSoon?: RuntimeAdapter["pollSoon"];
}

const INIT_KEY = "polyproc.init";

class WorkerChild implements ChildHandle {
  readonly pid = process.pid;
  readonly ident: number;
  #worker: Worker;
  #onMessage: (m: unknown) => void = () => {};
  #exitHandler: (s: ExitStatus) => void = () => {};

  constructor(worker: Worker) {
    this.#worker = worker;
    this.ident = worker.threadId;
    worker.on("message", (m) => this.#onMessage(m));
    // The child reports its own errors over the channel; this event only keeps an
    // error the child could not report from crashing the parent.
    worker.on("error", (err) => {
      process.stderr.write(`polyproc worker ${this.ident} failed: ${err?.stack ?? err}\n`);
    });
    worker.on("exit", (code) => this.#exitHandler({ code, signal: null }));
  }
  send(message: unknown): void {
    this.#worker.postMessage(message);
  }
  onMessage(handler: (m: unknown) => void): void {
    this.#onMessage = handler;
  }
  onExit(handler: (s: ExitStatus) => void): void {
    this.#exitHandler = handler;
  }
  ref(): void {
    this.#worker.ref();
  }
  unref(): void {
    this.#worker.unref();
  }
  terminate(): void {
    void this.#worker.terminate();
  }
  kill(): void {
    void this.#worker.terminate();
  }
}

const CLOSE_GRACE_MS = 500;

class ProcessChild implements ChildHandle {
  readonly pid: number;
  readonly ident: number;
  #child: ChildProcess;
  #onMessage: (m: unknown) => void = () => {};
  #exitHandler: (s: ExitStatus) => void = () => {};
  #exited = false;

  constructor(child: ChildProcess) {
    this.#child = child;
    this.pid = child.pid ?? -1;
    this.ident = this.pid;
    child.on("message", (m) => this.#onMessage(m));
    // EPIPE on a child that just died is reported through "exit" as well.
    child.on("error", () => {});
    child.stdin?.on("error", () => {});
    // "close" comes after "exit" once stdio and the IPC channel are drained, so
    // every message the child sent has been delivered by then.
    // Deno 2.9: a message sent to a child just as it exits can leave the channel open
    // for good: no "close", and the open channel keeps the program alive. Once the
    // child is gone and what it wrote has had time to arrive, let the channel go.
    child.on("exit", () => {
      const timer = setTimeout(() => {
        if (this.#exited || !child.connected) return;
        try {
          child.disconnect();
        } catch {
          // already disconnected
        }
      }, CLOSE_GRACE_MS);
      (timer as { unref?: () => void }).unref?.();
    });
    child.on("close", (code, signal) => {
      this.#exited = true;
      forgetChild(this.pid);
      this.#exitHandler({ code, signal });
    });
    watchChild(this.pid);
  }
  send(message: unknown): void {
    this.#child.send(message as Parameters<ChildProcess["send"]>[0]);
  }
  onMessage(handler: (m: unknown) => void): void {
    this.#onMessage = handler;
  }
  onExit(handler: (s: ExitStatus) => void): void {
    this.#exitHandler = handler;
  }
  ref(): void {
    this.#child.ref();
    (this.#child.channel as { ref?: () => void } | undefined)?.ref?.();
    (this.#child.stdin as { ref?: () => void } | null)?.ref?.();
  }
  unref(): void {
    this.#child.unref();
    (this.#child.channel as { unref?: () => void } | undefined)?.unref?.();
    (this.#child.stdin as { unref?: () => void } | null)?.unref?.();
  }
  terminate(): void {
    if (!this.#exited) this.#child.kill("SIGTERM");
  }
  kill(): void {
    if (!this.#exited) this.#child.kill("SIGKILL");
  }
}

// The parent may send right after the first message, before the child's code has
// chosen a handler: keep what arrives until then, so nothing sent is lost.
function bufferedOnMessage(listen: (h: (m: unknown) => void) => void): (h: (m: unknown) => void) => void {
  let early: unknown[] | undefined = [];
  let handler = (m: unknown): void => void early!.push(m);
  listen((m) => handler(m));
  return (h) => {
    handler = h;
    const waiting = early ?? [];
    early = undefined;
    for (const m of waiting) h(m);
  };
}

function workerChannel(): Channel {
  const port = workerThreads().parentPort!;
  const onMessage = bufferedOnMessage((h) => port.on("message", h));
  // Listening refs the port; the child's own code decides what keeps it alive.
  port.unref();
  return {
    send: (m) => port.postMessage(m),
    onMessage,
    ref: () => port.ref(),
    unref: () => port.unref(),
  };
}

function processChannel(): Channel {
  const proc = process as unknown as {
    send(m: unknown): boolean;
    channel?: { ref?(): void; unref?(): void };
  };
  const onMessage = bufferedOnMessage((h) => process.on("message", h));
  proc.channel?.unref?.();
  return {
    send: (m) => proc.send(m),
    onMessage,
    ref: () => proc.channel?.ref?.(),
    unref: () => proc.channel?.unref?.(),
  };
}

function refusedFlags(err: unknown): string[] | undefined {
  if ((err as { code?: string })?.code !== "ERR_WORKER_INVALID_EXEC_ARGV") return undefined;
  const list = /flags: (.*)$/.exec((err as Error).message)?.[1];
  return list?.split(", ");
}

/** Builds a full adapter from a runtime's traits. */
export function nodeApiAdapter(traits: RuntimeTraits): RuntimeAdapter {
  return {
    key: traits.key,
    pid: process.pid,
    cpuCount: traits.cpuCount,
    mainModuleUrl: traits.mainModuleUrl,
    isMainModule: traits.isMainModule,

    spawnWorker(entry: URL, options: SpawnOptions): ChildHandle {
      traits.checkCanSpawnWorker?.();
      const { url, execArgv } = traits.workerEntry(entry);
      const start = (argv: string[] | undefined) =>
        new (workerThreads().Worker)(url, { workerData: { [INIT_KEY]: options.init }, ...(argv ? { execArgv: argv } : {}) });
      try {
        return new WorkerChild(start(execArgv));
      } catch (err) {
        // Per-process flags (--max-old-space-size, ...) are the process's, not a thread's:
        // a worker refuses them, and runs well without them.
        const refused = refusedFlags(err);
        if (refused === undefined || execArgv === undefined) throw err;
        return new WorkerChild(start(execArgv.filter((flag) => !refused.includes(flag))));
      }
    },

    spawnProcess(entry: URL, options: SpawnOptions): ChildHandle {
      traits.checkCanSpawnProcess?.();
      const args = traits.processArgs(decodeURIComponent(entry.pathname));
      const { spawn } = builtin<typeof import("node:child_process")>("node:child_process");
      const child = spawn(process.execPath, args, {
        // stdin is a private pipe, so that a child never reads the parent's terminal.
        stdio: ["pipe", "inherit", "inherit", "ipc"],
        serialization: "advanced",
      });
      const handle = new ProcessChild(child);
      handle.send(options.init);
      return handle;
    },

    childInit(): Promise<ChildInit | undefined> {
      const { parentPort, threadId, workerData } = workerThreads();
      const data = workerData as Record<string, unknown> | null;
      if (parentPort && data && INIT_KEY in data) {
        return Promise.resolve({ channel: workerChannel(), init: data[INIT_KEY], ident: threadId });
      }
      if (typeof (process as { send?: unknown }).send !== "function") {
        return Promise.resolve(undefined);
      }
      return new Promise((resolve) => {
        process.once("message", (init) => resolve({ channel: processChannel(), init, ident: process.pid }));
      });
    },

    watchParent(parentPid: number, handler: () => void): void {
      // The parent's reaper kills a child that is busy when the parent dies; an idle
      // child sees the channel close and leaves by itself, a little sooner.
      if (process.ppid !== parentPid) handler(); // it died before we got here
      process.once("disconnect", handler);
    },

    exit(code: number): never {
      process.exit(code);
    },

    onUncaughtError(handler: (error: unknown) => void): void {
      process.on("uncaughtException", handler);
      process.on("unhandledRejection", handler);
      traits.onGlobalError?.(handler);
    },

    onExit(handler: () => void): void {
      process.on("exit", handler);
    },

    writeStderr(text: string): void {
      process.stderr.write(text);
    },

    pidAlive(pid: number): boolean {
      // A dead orphan can linger as a zombie, which kill(pid, 0) still reports.
      // Deno reads /proc only with --allow-all, hence the fallback.
      try {
        const stat = builtin<typeof import("node:fs")>("node:fs").readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
      } catch {
        try {
          process.kill(pid, 0);
          return true;
        } catch (err) {
          // EPERM: it exists but is not ours; a permission refusal tells nothing.
          return (err as { code?: string }).code !== "ESRCH";
        }
      }
    },

    serialize(value: unknown): Uint8Array {
      return builtin<typeof import("node:v8")>("node:v8").serialize(value);
    },

    // Bun's node:v8 writes JSC's clone format; Node's and Deno's V8 read each other's.
    serialFormat: traits.key === "bun" ? "jsc" : "v8",

    pollSoon: "pollSoon" in traits ? traits.pollSoon : (callback) => void setImmediate(callback),

    deserialize(bytes: Uint8Array): unknown {
      return builtin<typeof import("node:v8")>("node:v8").deserialize(bytes);
    },

    signalNumber(name: string): number {
      const { constants } = builtin<typeof import("node:os")>("node:os");
      return (constants.signals as Record<string, number>)[name] ?? 0;
    },

    net: withSockets(nodeNet(() => traits.checkCanServe?.()), traits),

    spawnCommand: traits.spawnCommand ?? nodeSpawnCommand,
  };
}

/** `net` with the runtime's own sockets, if it has them; serving is still checked first. */
function withSockets(net: NetAdapter, traits: RuntimeTraits): NetAdapter {
  const own = traits.sockets;
  if (own === undefined) return net;
  return {
    ...net,
    // Deno's and Bun's own sockets (47k, 75k round trips/s) beat their BroadcastChannel (26k).
    threadChannels: false,
    listen(address, onConnection) {
      net.checkCanServe();
      return own.listen(address, onConnection);
    },
    connect: own.connect,
  };
}
