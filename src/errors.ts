/**
 * Every error class polyproc throws on purpose. All extend {@linkcode ProcessError}
 * (as in Python's multiprocessing); bad arguments stay `TypeError`/`RangeError`.
 *
 * @module
 */

/**
 * Base class of polyproc's errors, and the error for using an object in the wrong state.
 *
 * @example
 * ```ts
 * import { Process, ProcessError } from "polyproc";
 * const p = new Process({ target: () => {} });
 * p.start();
 * try { p.start(); } catch (e) { console.log(e instanceof ProcessError); } // true
 * ```
 */
export class ProcessError extends Error {
  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A wait with a timeout ran out (Python's `multiprocessing.TimeoutError`).
 * Not the DOMException named "TimeoutError" that `AbortSignal.timeout()` raises:
 * test with `instanceof`, not by name.
 *
 * @example
 * ```ts
 * import { TimeoutError } from "polyproc";
 * const isOurs = (e: unknown) => e instanceof TimeoutError;
 * ```
 */
export class TimeoutError extends ProcessError {}

/**
 * A start method was asked for something it cannot do.
 *
 * @example
 * ```ts
 * import { StartMethodError } from "polyproc";
 * const unsupported = (e: unknown) => e instanceof StartMethodError;
 * ```
 */
export class StartMethodError extends ProcessError {}

/**
 * A child's error whose own class could not be rebuilt here; keeps its name and stack.
 *
 * @example
 * ```ts
 * import { RemoteError } from "polyproc";
 * const describe = (e: unknown) => e instanceof RemoteError ? `${e.remoteName}: ${e.message}` : String(e);
 * ```
 */
export class RemoteError extends ProcessError {
  /** The error's class name in the child. */
  readonly remoteName: string;
  constructor(remoteName: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.remoteName = remoteName;
  }
}

/**
 * `get()` found the queue empty (non-blocking, or after its timeout): Python's `queue.Empty`.
 *
 * @example
 * ```ts
 * import { Queue, QueueEmptyError } from "polyproc";
 * const q = new Queue();
 * await q.getNowait().catch((e) => console.log(e instanceof QueueEmptyError)); // true
 * ```
 */
export class QueueEmptyError extends ProcessError {}

/**
 * `put()` found the queue full (non-blocking, or after its timeout): Python's `queue.Full`.
 *
 * @example
 * ```ts
 * import { Queue, QueueFullError } from "polyproc";
 * const q = new Queue(1);
 * await q.put(1);
 * await q.putNowait(2).catch((e) => console.log(e instanceof QueueFullError)); // true
 * ```
 */
export class QueueFullError extends ProcessError {}

/**
 * `recv()` on a connection whose other end is closed and which has nothing left: Python's `EOFError`.
 *
 * @example
 * ```ts
 * import { EOFError, pipe } from "polyproc";
 * const [a, b] = pipe();
 * b.close();
 * await a.recv().catch((e) => console.log(e instanceof EOFError)); // true
 * ```
 */
export class EOFError extends ProcessError {}

/**
 * A pool cannot be used any more: one of its workers ended abruptly, or its
 * initializer failed (Python's `concurrent.futures.process.BrokenProcessPool`).
 * Every pending task of the pool fails with it.
 *
 * @example
 * ```ts
 * import { BrokenProcessPoolError, fromModule, ProcessPoolExecutor } from "polyproc";
 * // tasks.ts: export function crash(): never { exit(9); }  (polyproc's exit ends the worker)
 * const { crash } = fromModule<{ crash(): never }>(new URL("./tasks.ts", import.meta.url));
 * await using ex = new ProcessPoolExecutor({ maxWorkers: 1 });
 * await ex.submit(crash).then(undefined, (e) => console.log(e instanceof BrokenProcessPoolError)); // true
 * ```
 */
export class BrokenProcessPoolError extends ProcessError {}

/**
 * The future was cancelled before it ran (Python's `concurrent.futures.CancelledError`).
 *
 * @example
 * ```ts
 * import { CancelledError, ProcessPoolExecutor } from "polyproc";
 * await using ex = new ProcessPoolExecutor({ maxWorkers: 1 });
 * const futures = [1, 2, 3, 4].map((n) => ex.submit((x: number) => x, n));
 * if (futures[3].cancel()) await futures[3].result().catch((e) => console.log(e instanceof CancelledError)); // true
 * ```
 */
export class CancelledError extends ProcessError {}

/**
 * A Barrier wait failed: the barrier was aborted, reset, or broken by a party's
 * timeout or a failed action (Python's `threading.BrokenBarrierError`).
 *
 * @example
 * ```ts
 * import { Barrier, BrokenBarrierError } from "polyproc";
 * const barrier = new Barrier(2);
 * await barrier.abort();
 * await barrier.wait().catch((e) => console.log(e instanceof BrokenBarrierError)); // true
 * ```
 */
export class BrokenBarrierError extends ProcessError {}

/**
 * A manager connection failed its HMAC handshake: the two sides hold different
 * authkeys (Python's `multiprocessing.AuthenticationError`).
 *
 * @example
 * ```ts
 * import { AuthenticationError, BaseManager } from "polyproc";
 * const m = new BaseManager({ address: { host: "127.0.0.1", port: 50000 }, authkey: "wrong" });
 * await m.connect().catch((e) => console.log(e instanceof AuthenticationError));
 * ```
 */
export class AuthenticationError extends ProcessError {}

/**
 * Base class of the subprocess errors (Python's `subprocess.SubprocessError`); also
 * the error for a program that could not be started, whose `code` says why
 * ("ENOENT": no such program, "EACCES": not executable) — where Python raises OSError.
 *
 * @example
 * ```ts
 * import { run, SubprocessError } from "polyproc";
 * await run(["no-such-program"]).catch((e) => console.log(e instanceof SubprocessError, e.code)); // true ENOENT
 * ```
 */
export class SubprocessError extends ProcessError {
  /** Why the program could not be started ("ENOENT", "EACCES", ...); undefined for the subclasses. */
  readonly code: string | undefined;
  constructor(message?: string, options?: ErrorOptions & { code?: string }) {
    super(message, options);
    this.code = options?.code;
  }
}

// Python names the signal too; these numbers are the same on Linux and macOS.
const SIGNALS: Record<number, string> = { 1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM" };
const showCommand = (cmd: string | readonly string[]) => JSON.stringify(cmd);

/**
 * A program checked by `run({ check: true })` or `checkOutput()` ended with a
 * non-zero return code (Python's `subprocess.CalledProcessError`). `returncode` is
 * negative when a signal killed it; `stdout` and `stderr` hold what was captured.
 *
 * @example
 * ```ts
 * import { CalledProcessError, run } from "polyproc";
 * await run(["false"], { check: true }).catch((e) => console.log(e instanceof CalledProcessError, e.returncode)); // true 1
 * ```
 */
export class CalledProcessError extends SubprocessError {
  /** The program's return code: its exit status, or -N after signal N. */
  readonly returncode: number;
  /** The command, as given. */
  readonly cmd: string | readonly string[];
  /** Captured standard output, or null when it was not piped. */
  readonly stdout: Uint8Array | string | null;
  /** Captured standard error, or null when it was not piped. */
  readonly stderr: Uint8Array | string | null;
  constructor(
    returncode: number,
    cmd: string | readonly string[],
    stdout: Uint8Array | string | null = null,
    stderr: Uint8Array | string | null = null,
  ) {
    super(
      returncode < 0
        ? `Command ${showCommand(cmd)} died with signal ${-returncode}${SIGNALS[-returncode] ? ` (${SIGNALS[-returncode]})` : ""}`
        : `Command ${showCommand(cmd)} returned non-zero exit status ${returncode}`,
    );
    this.returncode = returncode;
    this.cmd = cmd;
    this.stdout = stdout;
    this.stderr = stderr;
  }
  /** Python's alias of `stdout`. */
  get output(): Uint8Array | string | null {
    return this.stdout;
  }
}

/**
 * A subprocess wait ran out of time (Python's `subprocess.TimeoutExpired`):
 * `Popen.wait()` and `communicate()` leave the program running, `run()` has killed
 * and reaped it. `stdout` and `stderr` hold what was captured before then.
 *
 * @example
 * ```ts
 * import { run, TimeoutExpiredError } from "polyproc";
 * await run(["sleep", "5"], { timeout: 100 }).catch((e) => console.log(e instanceof TimeoutExpiredError)); // true
 * ```
 */
export class TimeoutExpiredError extends SubprocessError {
  /** The command, as given. */
  readonly cmd: string | readonly string[];
  /** The timeout, in milliseconds. */
  readonly timeout: number;
  /** Standard output captured before the timeout, or null when it was not piped. */
  readonly stdout: Uint8Array | string | null;
  /** Standard error captured before the timeout, or null when it was not piped. */
  readonly stderr: Uint8Array | string | null;
  constructor(
    cmd: string | readonly string[],
    timeout: number,
    stdout: Uint8Array | string | null = null,
    stderr: Uint8Array | string | null = null,
  ) {
    super(`Command ${showCommand(cmd)} timed out after ${timeout} ms`);
    this.cmd = cmd;
    this.timeout = timeout;
    this.stdout = stdout;
    this.stderr = stderr;
  }
  /** Python's alias of `stdout`. */
  get output(): Uint8Array | string | null {
    return this.stdout;
  }
}

/** Classes rebuilt by name when an error crosses into this isolate. */
export const errorClasses: ReadonlyMap<string, new (message?: string) => Error> = new Map<
  string,
  new (message?: string) => Error
>([
  ["Error", Error],
  ["TypeError", TypeError],
  ["RangeError", RangeError],
  ["SyntaxError", SyntaxError],
  ["ReferenceError", ReferenceError],
  ["EvalError", EvalError],
  ["URIError", URIError],
  ["ProcessError", ProcessError],
  ["TimeoutError", TimeoutError],
  ["StartMethodError", StartMethodError],
  ["QueueEmptyError", QueueEmptyError],
  ["QueueFullError", QueueFullError],
  ["EOFError", EOFError],
  ["BrokenProcessPoolError", BrokenProcessPoolError],
  ["CancelledError", CancelledError],
  ["AuthenticationError", AuthenticationError],
  ["BrokenBarrierError", BrokenBarrierError],
]);
