/**
 * The start-method contract (CPython's `Popen`): start a child, learn its pid,
 * wait for it, stop it. `_popen_worker.ts` and `_popen_process.ts` each fill in
 * how a child is launched and how its end is read.
 *
 * @module
 */
import type { ChildHandle, ExitStatus } from "./runtime/types.ts";

/** A launched child, as the Process object sees it. */
export abstract class Popen {
  /** Null while running; then the Python-style exit code (negative: killed by a signal). */
  exitCode: number | null = null;
  readonly handle: ChildHandle;
  readonly exited: Promise<number>;
  #resolve!: (code: number) => void;

  constructor(handle: ChildHandle) {
    this.handle = handle;
    this.exited = new Promise((resolve) => (this.#resolve = resolve));
    handle.onExit((status) => {
      this.exitCode = this.exitCodeOf(status);
      this.#resolve(this.exitCode);
    });
  }

  get pid(): number {
    return this.handle.pid;
  }
  get ident(): number {
    return this.handle.ident;
  }

  /** The exit code for how the child ended. */
  protected abstract exitCodeOf(status: ExitStatus): number;
  abstract terminate(): void;
  abstract kill(): void;
}
