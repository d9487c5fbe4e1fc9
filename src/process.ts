/**
 * Process objects (Python's `multiprocessing.Process`), and what a process knows
 * about itself, its parent and its children.
 *
 * @module
 */
import { brokerForChild } from "./_broker.ts";
import { childIdentity, mainInfo, type ProcessInfo } from "./_child_state.ts";
import type { Popen } from "./_popen.ts";
import { ProcessPopen } from "./_popen_process.ts";
import { flushAll } from "./_shm_fifo.ts";
import { WorkerPopen } from "./_popen_worker.ts";
import type { StartMessage } from "./_protocol.ts";
import { checkStartMethod, getStartMethod, type StartMethod, useStartMethod } from "./_start_method.ts";
import { ProcessError } from "./errors.ts";
import { runtime } from "./runtime/detect.ts";
import { packChecked } from "./serialization.ts";
import { type TargetLike, type TargetSpec, toSpec } from "./target.ts";

export type { ProcessInfo } from "./_child_state.ts";

/**
 * Options for {@linkcode Process}.
 *
 * @example
 * ```ts
 * import { Process, type ProcessOptions } from "polyproc";
 * const options: ProcessOptions<[number]> = { target: (n: number) => console.log(n), args: [1], daemon: true };
 * new Process(options).start();
 * ```
 */
export interface ProcessOptions<A extends unknown[] = unknown[]> {
  /** What the child runs: a {@linkcode fromModule} reference or a self-contained function. */
  target: TargetLike<A, unknown>;
  /** The target's arguments, copied to the child at `start()`. */
  args?: A;
  /** Defaults to "Process-N" ("Process-1:N" in a child named "Process-1"). */
  name?: string;
  /** A daemon child is stopped when its parent exits; others are waited for. Default false. */
  daemon?: boolean;
  /** The start method; defaults to {@linkcode getStartMethod}() at `start()`. */
  context?: StartMethod;
}

/** The URL of a sibling module of this one, with this module's own extension (.ts in source, .js built). */
export function siblingModule(name: string): URL {
  return new URL(`./${name}${/\.[cm]?[jt]s$/.exec(import.meta.url)?.[0] ?? ".js"}`, import.meta.url);
}

const BOOTSTRAP = siblingModule("_bootstrap");

const live = new Set<Process>();
let counter = 0;
let exitHookInstalled = false;

// Python's atexit rule, for an exit that does not wait (exit(), or the runtime's own):
// no subprocess child may outlive us. Workers end with their process anyway.
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  runtime.onExit(() => {
    for (const p of live) p.terminate();
  });
}

/** Why this isolate may not start a child now, or undefined if it may. */
export function whyCannotStart(): string | undefined {
  const identity = childIdentity();
  if (identity?.self.daemon) return "daemonic processes are not allowed to have children";
  if (identity?.importing) {
    // The child is importing the module that names its target, and that module
    // starts children at top level: without this, every child would do the same.
    return "the child is still importing its target's module, whose top level starts processes. " +
      "Guard the main program with `if (isMainModule(import.meta))`";
  }
  return undefined;
}

/** What a child is started with, beyond what every child is told (see {@linkcode StartMessage}). */
export type LaunchFields = Pick<StartMessage, "target" | "args" | "name" | "daemon">;

/** Starts a child with `method`: the one place a StartMessage is made (Process and pools). */
export function launch(method: StartMethod, fields: LaunchFields): Popen {
  const init: StartMessage = {
    type: "start",
    ...fields,
    parent: currentProcess(),
    startMethod: method,
    defaultStartMethod: getStartMethod(),
    broker: brokerForChild(),
  };
  // What this process put before start() is in the queue before anything the child puts.
  flushAll();
  return method === "worker" ? new WorkerPopen(BOOTSTRAP, init) : new ProcessPopen(BOOTSTRAP, init);
}

/**
 * A child that runs `target(...args)`, in a worker thread or an OS subprocess.
 *
 * Python's `multiprocessing.Process`, with these differences: `join()` returns a
 * Promise; the target is a module reference or a shipped function, not a pickled
 * callable; `run()` cannot be overridden (a subclass's method cannot cross to
 * another isolate). The child ends as soon as its target returns (or its returned
 * Promise settles): work the target left pending is dropped, as Python's child
 * exits after `run()`.
 *
 * `exitCode` is null while the child runs; then 0 after a normal return, 1 after an
 * uncaught error (which the child prints to stderr with its stack), `n` after
 * `exit(n)`, -15 after `terminate()` and -9 after `kill()`. Under "worker" the
 * negative codes record which method was called: threads get no signals.
 *
 * @example Starting and joining a child
 * ```ts
 * import { Process } from "polyproc";
 * const p = new Process({ target: (who: string) => console.log(`hello ${who}`), args: ["world"] });
 * p.start();
 * await p.join();
 * console.log(p.exitCode); // 0
 * ```
 */
export class Process<A extends unknown[] = unknown[]> {
  /** The process's name, for messages and `currentProcess().name`. */
  name: string;
  #daemon: boolean;
  #target: TargetSpec;
  #args: unknown[];
  #context: StartMethod | undefined;
  #popen: Popen | undefined;
  #closed = false;
  #joiners = 0;

  /**
   * @throws {TypeError} if the target cannot be sent to a child, or an option has the wrong type.
   * @throws {RangeError} for an unknown `context`.
   */
  constructor(options: ProcessOptions<A>) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("Process() needs an options object: { target, args?, name?, daemon?, context? }");
    }
    const { target, args = [] as unknown as A, name, daemon, context } = options;
    this.#target = toSpec(target, "target");
    if (!Array.isArray(args)) throw new TypeError(`args must be an array, got ${typeof args}`);
    if (name !== undefined && typeof name !== "string") throw new TypeError("name must be a string");
    if (daemon !== undefined && typeof daemon !== "boolean") throw new TypeError("daemon must be a boolean");
    this.#context = context === undefined ? undefined : checkStartMethod(context, "context");
    this.#args = args;
    this.#daemon = daemon ?? childIdentity()?.self.daemon ?? false;
    const prefix = childIdentity()?.self.name;
    this.name = name ?? (prefix === undefined ? `Process-${++counter}` : `${prefix}:${++counter}`);
  }

  /** Whether the child is a daemon. Settable until `start()`. */
  get daemon(): boolean {
    return this.#daemon;
  }
  set daemon(value: boolean) {
    if (this.#popen !== undefined) throw this.#error("set daemon on", "process has already started");
    if (typeof value !== "boolean") throw new TypeError("daemon must be a boolean");
    this.#daemon = value;
  }

  /** The child's OS pid (the hosting process's, under "worker"); undefined before `start()`. */
  get pid(): number | undefined {
    return this.#popen?.pid;
  }

  /** A unique positive integer per child: the pid under "process", the thread id under "worker". */
  get ident(): number | undefined {
    return this.#popen?.ident;
  }

  /** Null until the child has ended; then its exit code (see the class doc). */
  get exitCode(): number | null {
    return this.#popen?.exitCode ?? null;
  }

  /**
   * Starts the child. Arguments are copied now: a later change to them is not seen.
   *
   * @throws {ProcessError} if already started or closed, or called in a daemon child.
   * @throws {TypeError} if an argument cannot be copied; then no child is started.
   */
  start(): void {
    this.#checkOpen("start");
    if (this.#popen !== undefined) throw this.#error("start", "process has already started");
    const refusal = whyCannotStart();
    if (refusal !== undefined) throw this.#error("start", refusal);
    const method = useStartMethod(this.#context);
    const args = packChecked(this.#args, "args", method);
    const popen = launch(method, { target: this.#target, args, name: this.name, daemon: this.#daemon });
    this.#popen = popen;
    live.add(this);
    installExitHook();
    if (this.#daemon) popen.handle.unref();
    void popen.exited.then(() => live.delete(this));
  }

  /**
   * Waits until the child ends, or until `timeout` milliseconds have passed.
   * Resolves either way, and never rejects for the child's own errors: look at
   * `exitCode` or `isAlive()` afterwards. A timeout of 0 or less returns at once.
   *
   * @throws {ProcessError} if the process was never started, or is closed.
   */
  async join(timeout?: number): Promise<void> {
    this.#checkOpen("join");
    const popen = this.#popen;
    if (popen === undefined) throw this.#error("join", "process has not been started");
    if (timeout !== undefined && (typeof timeout !== "number" || Number.isNaN(timeout))) {
      throw new TypeError(`timeout must be a number of milliseconds, got ${String(timeout)}`);
    }
    if (popen.exitCode !== null || (timeout !== undefined && timeout <= 0)) return;
    // A daemon child does not keep the program alive, but someone awaiting it must.
    if (this.#joiners++ === 0) popen.handle.ref();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await (timeout === undefined ? popen.exited : Promise.race([
        popen.exited,
        new Promise((resolve) => (timer = setTimeout(resolve, timeout))),
      ]));
    } finally {
      clearTimeout(timer);
      if (--this.#joiners === 0 && this.#daemon && popen.exitCode === null) popen.handle.unref();
    }
  }

  /** Whether the child has started and not yet ended. */
  isAlive(): boolean {
    this.#checkOpen("check");
    return this.#popen !== undefined && this.#popen.exitCode === null;
  }

  /** Stops the child: SIGTERM under "process"; the thread is stopped under "worker". Exit code -15. */
  terminate(): void {
    this.#checkOpen("terminate");
    this.#popen?.terminate();
  }

  /** Stops the child: SIGKILL under "process"; the thread is stopped under "worker". Exit code -9. */
  kill(): void {
    this.#checkOpen("kill");
    this.#popen?.kill();
  }

  /**
   * Releases the object. Afterwards every method but `close()` throws.
   *
   * @throws {ProcessError} if the child is still running.
   */
  close(): void {
    if (this.#closed) return;
    if (this.#popen !== undefined && this.#popen.exitCode === null) {
      throw this.#error("close", "it is still running; join() or terminate() it first");
    }
    this.#closed = true;
  }

  #checkOpen(action: string): void {
    if (this.#closed) throw this.#error(action, "process object is closed");
  }

  #error(action: string, why: string): ProcessError {
    return new ProcessError(`Cannot ${action} process "${this.name}": ${why}`);
  }

  /** Called by the child's bootstrap: the Python atexit rule for a child whose target returned. */
  static async finishChildren(): Promise<void> {
    for (const p of [...live]) if (p.#daemon) p.terminate();
    for (const p of [...live]) if (!p.#daemon) await p.join();
  }
}

/**
 * The calling process: "MainProcess" in the main program, or the child's own name,
 * pid and ident inside a child (equal to the parent's `p.pid` and `p.ident`).
 *
 * @example
 * ```ts
 * import { currentProcess } from "polyproc";
 * console.log(currentProcess().name); // "MainProcess"
 * ```
 */
export function currentProcess(): ProcessInfo {
  return childIdentity()?.self ?? mainInfo();
}

/**
 * What a child knows about its parent.
 *
 * @example
 * ```ts
 * import { parentProcess } from "polyproc";
 * const parent = parentProcess(); // in a child: { name: "MainProcess", pid, ident, daemon, isAlive() }
 * if (parent !== null && !parent.isAlive()) console.log("orphaned");
 * ```
 */
export interface ParentProcessInfo extends ProcessInfo {
  /** Whether the parent still runs (a subprocess child exits soon after its parent anyway). */
  isAlive(): boolean;
}

/**
 * The parent of the calling process, or null in the main program.
 *
 * @example
 * ```ts
 * import { parentProcess } from "polyproc";
 * console.log(parentProcess()?.name ?? "no parent"); // "no parent" in the main program
 * ```
 */
export function parentProcess(): ParentProcessInfo | null {
  const identity = childIdentity();
  if (identity === undefined) return null;
  const parent = identity.parent;
  return { ...parent, isAlive: () => runtime.pidAlive(parent.pid) };
}

/**
 * The children of the calling process that have started and not yet ended.
 *
 * @example
 * ```ts
 * import { activeChildren } from "polyproc";
 * console.log(activeChildren().length);
 * ```
 */
export function activeChildren(): Process[] {
  return [...live];
}

/**
 * The number of logical CPUs (Python's `os.cpu_count()`).
 *
 * @example
 * ```ts
 * import { cpuCount } from "polyproc";
 * console.log(cpuCount() >= 1); // true
 * ```
 */
export function cpuCount(): number {
  return runtime.cpuCount();
}

/**
 * Ends the calling process or child now with `code` (Python's `sys.exit`). In a
 * child, its `exitCode` becomes `code`. Unlike Python, nothing is unwound: pending
 * work and `finally` blocks are dropped, and subprocess children are terminated.
 *
 * @param code An integer exit code, default 0.
 * @throws {TypeError} if `code` is not an integer.
 *
 * @example Ending a child with a code
 * ```ts
 * // tasks.ts
 * import { exit } from "polyproc";
 * export function check(ok: boolean): void {
 *   if (!ok) exit(3); // the parent sees p.exitCode === 3
 * }
 * ```
 */
export function exit(code = 0): never {
  if (!Number.isInteger(code)) throw new TypeError(`exit() needs an integer code, got ${String(code)}`);
  return runtime.exit(code);
}
