/**
 * Who this isolate is: the main program, or a child polyproc started. Kept on
 * `globalThis` so that two copies of the library in one isolate agree.
 *
 * @module
 */
import { runtime } from "./runtime/detect.ts";
import type { StartMethod } from "./_start_method.ts";
import type { Channel } from "./runtime/types.ts";

/**
 * What a process knows about itself or its parent (Python's `current_process()`).
 *
 * @example
 * ```ts
 * import { currentProcess, type ProcessInfo } from "polyproc";
 * const me: ProcessInfo = currentProcess();
 * console.log(me.name, me.pid);
 * ```
 */
export interface ProcessInfo {
  /** "MainProcess", or the name given to the child ("Process-1", "Process-1:2", ...). */
  readonly name: string;
  /** The OS pid (the hosting process's, for a worker). */
  readonly pid: number;
  /** A unique positive integer per child (the pid, for the main program and subprocesses). */
  readonly ident: number;
  /** Whether this process is a daemon. */
  readonly daemon: boolean;
}

/** What a child is told about itself when it starts. */
export interface ChildIdentity {
  self: ProcessInfo;
  parent: ProcessInfo;
  startMethod: StartMethod;
  /** The private channel to the parent (a pool worker takes its tasks from it). */
  channel: Channel;
  /** True while the child imports its target's module (Python's bootstrapping phase). */
  importing: boolean;
}

const KEY = Symbol.for("polyproc.identity");
const store = globalThis as unknown as { [KEY]?: ChildIdentity };

/** Records, once, that this isolate is a child. */
export function setChildIdentity(identity: ChildIdentity): void {
  store[KEY] = identity;
}

/** This isolate's identity as a child, or undefined in the main program. */
export function childIdentity(): ChildIdentity | undefined {
  return store[KEY];
}

/** Whether this isolate is a child started by polyproc. */
export function isChild(): boolean {
  return store[KEY] !== undefined;
}

/** The main program's own identity. */
export function mainInfo(): ProcessInfo {
  return { name: "MainProcess", pid: runtime.pid, ident: runtime.pid, daemon: false };
}
