/**
 * Running other programs (Python's `subprocess`): {@linkcode Popen}, {@linkcode run},
 * {@linkcode checkOutput} and {@linkcode CompletedProcess}, the same on Deno, Bun and
 * Node. Each runtime starts the program with its own primitive (see
 * `src/runtime/_spawn.ts`); this file holds everything Python users rely on.
 *
 * No shell is involved unless `shell: true` is given: each argument reaches the
 * program exactly as written, so spaces, quotes, `$` or `;` in a file name or in user
 * input are never interpreted. With `shell: true` the command line is one string that
 * `/bin/sh -c` parses: quote every value you put in it yourself, and never build it
 * from untrusted input (that is how command injection happens).
 *
 * @module
 */
import { asyncDispose } from "./_dispose.ts";
import { CalledProcessError, ProcessError, SubprocessError, TimeoutExpiredError } from "./errors.ts";
import { runtime } from "./runtime/detect.ts";
import type { CommandHandle, StdioMode } from "./runtime/types.ts";

/** How a standard stream is connected: a new pipe (Python's `PIPE`), this process's own (`None`), or nowhere (`DEVNULL`). */
export type StdioOption = "pipe" | "inherit" | "ignore";

/**
 * Options for {@linkcode Popen}. Streams default to "inherit".
 *
 * @example
 * ```ts
 * import { Popen, type PopenOptions } from "polyproc";
 * const options: PopenOptions<true> = { stdout: "pipe", stderr: "stdout", text: true };
 * const { stdout } = await new Popen(["ls"], options).communicate();
 * ```
 */
export interface PopenOptions<Text extends boolean = boolean> {
  stdin?: StdioOption;
  stdout?: StdioOption;
  /**
   * "stdout" sends it where stdout goes (Python's `STDOUT`). When both are piped they
   * are merged chunk by chunk, as each read returns them: the order of a program's
   * writes to stdout and stderr is kept only between chunks.
   */
  stderr?: StdioOption | "stdout";
  /** The working directory of the program (a path or a file URL). */
  cwd?: string | URL;
  /** The program's whole environment (it replaces this process's, as in Python and Node). */
  env?: Record<string, string>;
  /** Run `args` through `/bin/sh -c` (see the module doc for why that needs care). */
  shell?: boolean;
  /** `communicate()` returns strings (UTF-8) instead of bytes. The streams stay bytes. */
  text?: Text;
}

/** What {@linkcode Popen.communicate} and {@linkcode run} capture: a string with `text: true`, else bytes. */
export type Output<Text extends boolean> = Text extends true ? string : Uint8Array;

/**
 * The result of {@linkcode Popen.communicate}: null for a stream that was not piped.
 *
 * @example
 * ```ts
 * import { Popen, type Communicated } from "polyproc";
 * const result: Communicated<string> = await new Popen(["echo", "hi"], { stdout: "pipe", text: true }).communicate();
 * ```
 */
export interface Communicated<T> {
  stdout: T | null;
  stderr: T | null;
}

const STDIO = ["pipe", "inherit", "ignore"];
const encoder = new TextEncoder();
// After run()'s timeout kills a program, how long to wait for the last of its output
// (a grandchild may hold the pipe open, and would otherwise block run() until it ends).
const DRAIN_AFTER_KILL_MS = 200;

function checkStdio(name: string, value: unknown, extra: string[] = []): StdioMode | "stdout" {
  if (value === undefined) return "inherit";
  if (!STDIO.includes(value as string) && !extra.includes(value as string)) {
    throw new RangeError(`${name} must be one of ${[...STDIO, ...extra].map((s) => `"${s}"`).join(", ")}, got ${JSON.stringify(value)}`);
  }
  return value as StdioMode | "stdout";
}

function checkTimeout(timeout: number | undefined): void {
  if (timeout !== undefined && (typeof timeout !== "number" || Number.isNaN(timeout))) {
    throw new TypeError(`timeout must be a number of milliseconds, got ${String(timeout)}`);
  }
}

/** The program and its arguments, checked: what a bad `args` means is said here, not by the OS. */
function commandLine(args: unknown, shell: boolean): [string, string[]] {
  if (shell) {
    if (typeof args === "string") return ["/bin/sh", ["-c", args]];
    if (Array.isArray(args) && args.length > 0) return ["/bin/sh", ["-c", ...checkArgs(args)]];
  }
  if (typeof args === "string") return [checkArgs([args])[0], []];
  if (!Array.isArray(args)) {
    throw new TypeError(`args must be an array of strings (or a string with shell: true), got ${typeof args}`);
  }
  const [file, ...rest] = checkArgs(args);
  return [file, rest];
}

function checkArgs(args: unknown[]): string[] {
  if (args.length === 0) throw new RangeError("args is empty: it needs at least the program to run");
  const program = typeof args[0] === "string" ? args[0] : undefined;
  args.forEach((arg, i) => {
    const where = i === 0 ? "the program" : `argument ${i} of ${JSON.stringify(program)}`;
    if (typeof arg !== "string") throw new TypeError(`${where} must be a string, got ${arg === null ? "null" : typeof arg}`);
    if (arg.includes("\0")) throw new RangeError(`${where} contains a NUL character`);
  });
  if (program === "") throw new RangeError("the program is an empty string");
  return args as string[];
}

function checkEnv(env: unknown): Record<string, string> | undefined {
  if (env === undefined) return undefined;
  if (typeof env !== "object" || env === null) throw new TypeError("env must be an object of strings");
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== "string") throw new TypeError(`env.${k} must be a string, got ${typeof v}`);
  }
  return env as Record<string, string>;
}

function startError(err: unknown, program: string, cwd: string | undefined): SubprocessError {
  const code = (err as { code?: unknown })?.code;
  const why = code === "ENOENT"
    ? `no such file or directory${cwd === undefined ? "" : ` (the program, or the working directory ${JSON.stringify(cwd)})`}`
    : code === "EACCES"
    ? "permission denied (not an executable file?)"
    : (err as Error)?.message ?? String(err);
  return new SubprocessError(`Cannot run ${JSON.stringify(program)}: ${why}`, {
    cause: err,
    code: typeof code === "string" ? code : undefined,
  });
}

/** Settles like `promise`, or rejects with `onTimeout()` after `ms` milliseconds. */
function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), Math.max(0, ms));
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** One stream with a queue of at most one chunk per source: both are read as fast as it is. */
function mergeStreams(a: ReadableStream<Uint8Array>, b: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  type Reader = ReadableStreamDefaultReader<Uint8Array>;
  type Read = { reader: Reader; result: Awaited<ReturnType<Reader["read"]>> };
  const live = new Set([a.getReader(), b.getReader()]);
  const pending = new Map<Reader, Promise<Read>>();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        for (const reader of live) {
          if (!pending.has(reader)) pending.set(reader, reader.read().then((result) => ({ reader, result })));
        }
        const { reader, result } = await Promise.race(pending.values());
        pending.delete(reader);
        if (!result.done) return controller.enqueue(result.value);
        live.delete(reader);
        if (live.size === 0) return controller.close();
      }
    },
    cancel() {
      for (const reader of live) reader.cancel().catch(() => {});
    },
  });
}

/** Reads a stream to its end, keeping every chunk; what has arrived can be taken at any time. */
class Collector {
  readonly #chunks: Uint8Array[] = [];
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    const reader = this.#reader = stream.getReader();
    this.done = (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        this.#chunks.push(value);
      }
    })();
    this.done.catch(() => {});
  }

  bytes(): Uint8Array {
    if (this.#chunks.length === 1) return this.#chunks[0];
    const out = new Uint8Array(this.#chunks.reduce((n, c) => n + c.byteLength, 0));
    let at = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, at);
      at += chunk.byteLength;
    }
    return out;
  }

  cancel(): void {
    this.#reader.cancel().catch(() => {});
  }
}

/** Writes `input` and closes stdin. A program that exits without reading it all is not an error (as in Python). */
async function feed(stdin: WritableStream<Uint8Array>, input: string | Uint8Array | undefined): Promise<void> {
  const writer = stdin.getWriter();
  try {
    if (input !== undefined && input.length > 0) await writer.write(typeof input === "string" ? encoder.encode(input) : input);
    await writer.close();
  } catch {
    writer.abort().catch(() => {});
  }
}

interface Communication {
  stdout: Collector | null;
  stderr: Collector | null;
  all: Promise<unknown>;
}

let drainAfterTimeout: (p: Popen<boolean>, timeout: number) => Promise<TimeoutExpiredError>;

/**
 * A running program (Python's `subprocess.Popen`). The constructor starts it and
 * returns at once; the program runs while this one carries on.
 *
 * Differences from Python: `wait()` and `communicate()` return Promises and take
 * timeouts in milliseconds; the piped streams are web streams of bytes
 * (`stdin` a WritableStream, `stdout`/`stderr` ReadableStreams; `text: true` changes
 * what `communicate()` returns, not the streams). A program that cannot be started
 * (missing, not executable) does not make the constructor throw: `pid` is undefined,
 * and `wait()`/`communicate()` reject with a {@linkcode SubprocessError} whose `code` is
 * "ENOENT" (or "EACCES", ...) and whose message names the program. `await using`
 * kills a program still running and waits for it (Python's `with` only waits).
 * A running program keeps the event loop alive, so this program ends after it.
 *
 * @example Start `ls` and carry on while it runs
 * ```ts
 * import { Popen } from "polyproc";
 * const p = new Popen(["ls"]);
 * console.log("returncode while running:", p.returncode); // null
 * console.log("ls exited with", await p.wait()); // 0
 * ```
 *
 * @example Pipe data through a program
 * ```ts
 * import { Popen } from "polyproc";
 * const p = new Popen(["sort"], { stdin: "pipe", stdout: "pipe", text: true });
 * const { stdout } = await p.communicate("b\na\n");
 * console.log(stdout); // "a\nb\n"
 * ```
 */
export class Popen<Text extends boolean = false> {
  /** The command, as given. */
  readonly args: string | readonly string[];
  /** The program's OS pid; undefined when it could not be started. */
  readonly pid: number | undefined;
  /** The program's stdin, when it is "pipe"; close it to signal the end of input. */
  readonly stdin: WritableStream<Uint8Array> | null;
  /** The program's stdout (with stderr merged in for `stderr: "stdout"`), when it is "pipe". */
  readonly stdout: ReadableStream<Uint8Array> | null;
  /** The program's stderr, when it is "pipe". */
  readonly stderr: ReadableStream<Uint8Array> | null;
  #handle: CommandHandle;
  #returncode: number | null = null;
  #startError: SubprocessError | undefined;
  #done: Promise<number>;
  #stdinPiped: boolean;
  #text: boolean;
  #communication: Communication | undefined;

  static {
    drainAfterTimeout = (p, timeout) => p.#drainAfterTimeout(timeout);
  }

  /**
   * @param args The program and its arguments; or, with `shell: true`, a command line.
   * @throws {TypeError} for args that are not strings, or an option of the wrong type.
   * @throws {RangeError} for an empty args list or an unknown stream mode.
   */
  constructor(args: string | readonly string[], options: PopenOptions<Text> = {}) {
    if (typeof options !== "object" || options === null) throw new TypeError("options must be an object");
    const [file, argv] = commandLine(args, options.shell === true);
    const stdin = checkStdio("stdin", options.stdin) as StdioMode;
    const stdout = checkStdio("stdout", options.stdout) as StdioMode;
    const stderr = checkStdio("stderr", options.stderr, ["stdout"]);
    const cwd = options.cwd instanceof URL ? decodeURIComponent(options.cwd.pathname) : options.cwd;
    if (cwd !== undefined && typeof cwd !== "string") throw new TypeError("cwd must be a string or a file URL");
    const env = checkEnv(options.env);
    this.args = args;
    this.#text = options.text === true;
    this.#stdinPiped = stdin === "pipe";
    // stderr "stdout": merged here when piped, else wherever stdout goes.
    const merge = stderr === "stdout" && stdout === "pipe";
    const stderrMode = merge ? "pipe" : stderr === "stdout" && stdout === "ignore" ? "ignore" : stderr;
    this.#handle = runtime.spawnCommand(file, argv, { stdin, stdout, stderr: stderrMode, cwd, env });
    this.pid = this.#handle.pid;
    this.stdin = this.#handle.stdin;
    this.stdout = merge ? mergeStreams(this.#handle.stdout!, this.#handle.stderr!) : this.#handle.stdout;
    this.stderr = merge ? null : this.#handle.stderr;
    this.#done = this.#handle.status.then(
      ({ code, signal }) => (this.#returncode = code ?? -runtime.signalNumber(signal!)),
      (err) => {
        throw (this.#startError = startError(err, file, cwd));
      },
    );
    this.#done.catch(() => {});
  }

  /** The return code: null while running; the exit status; -N after signal N (Python's rule). */
  get returncode(): number | null {
    return this.#returncode;
  }

  /**
   * The return code if the program has ended, else null.
   * @throws {SubprocessError} if the program could not be started.
   */
  poll(): number | null {
    if (this.#startError) throw this.#startError;
    return this.#returncode;
  }

  /**
   * Waits for the program to end and returns its return code.
   *
   * @param timeout Milliseconds; after it, rejects with {@linkcode TimeoutExpiredError} and the program keeps running.
   * @throws {SubprocessError} if the program could not be started.
   */
  async wait(timeout?: number): Promise<number> {
    checkTimeout(timeout);
    if (timeout === undefined) return await this.#done;
    return await withTimeout(this.#done, timeout, () => new TimeoutExpiredError(this.args, timeout));
  }

  /**
   * Writes `input` to stdin and closes it, reads stdout and stderr to their end (all at
   * once, so no pipe fills up and blocks the program), and waits for the program.
   *
   * @param input Bytes or text (UTF-8) for stdin, which must be "pipe".
   * @param timeout Milliseconds; after it, rejects with {@linkcode TimeoutExpiredError}
   *   holding the output so far, and the program keeps running (Python's rule): kill it
   *   and call `communicate()` again to collect the rest.
   * @returns The captured output; null for a stream that is not piped.
   * @throws {ProcessError} for `input` without stdin "pipe", or input on a second call.
   * @throws {SubprocessError} if the program could not be started.
   */
  async communicate(input?: string | Uint8Array, timeout?: number): Promise<Communicated<Output<Text>>> {
    checkTimeout(timeout);
    if (input !== undefined && typeof input !== "string" && !(input instanceof Uint8Array)) {
      throw new TypeError("input must be a string or a Uint8Array");
    }
    if (input !== undefined && !this.#stdinPiped) throw new ProcessError('communicate(input) needs stdin: "pipe"');
    if (input !== undefined && this.#communication) {
      throw new ProcessError("Cannot send input after communication has started");
    }
    const c = this.#communication ??= this.#communicate(input);
    try {
      await (timeout === undefined
        ? c.all
        : withTimeout(c.all, timeout, () => new TimeoutExpiredError(this.args, timeout)));
    } catch (err) {
      if (err instanceof TimeoutExpiredError) throw new TimeoutExpiredError(this.args, err.timeout, ...this.#output());
      throw err;
    }
    const [stdout, stderr] = this.#output();
    return { stdout, stderr };
  }

  #communicate(input: string | Uint8Array | undefined): Communication {
    const stdout = this.stdout && new Collector(this.stdout);
    const stderr = this.stderr && new Collector(this.stderr);
    // A stdin the caller holds a writer on is theirs to close (Python skips a closed stdin).
    const fed = this.stdin && !(input === undefined && this.stdin.locked) ? feed(this.stdin, input) : undefined;
    return { stdout, stderr, all: Promise.all([stdout?.done, stderr?.done, fed, this.#done]) };
  }

  #output(): [Output<Text> | null, Output<Text> | null] {
    const c = this.#communication;
    const take = (collector: Collector | null | undefined) => {
      if (!collector) return null;
      const bytes = collector.bytes();
      return (this.#text ? new TextDecoder().decode(bytes) : bytes) as Output<Text>;
    };
    return [take(c?.stdout), take(c?.stderr)];
  }

  // run()'s timeout: kill, reap, take what the program wrote before it died, stop reading.
  async #drainAfterTimeout(timeout: number): Promise<TimeoutExpiredError> {
    this.kill();
    await this.#done;
    const c = this.#communication;
    const reads = Promise.all([c?.stdout?.done, c?.stderr?.done]);
    await withTimeout(reads, DRAIN_AFTER_KILL_MS, () => new Error("still open")).catch(() => {});
    c?.stdout?.cancel();
    c?.stderr?.cancel();
    return new TimeoutExpiredError(this.args, timeout, ...this.#output());
  }

  /**
   * Sends `signal` ("SIGTERM" or 15) to the program; nothing once it has been reaped.
   * @throws {RangeError} for an unknown signal.
   */
  sendSignal(signal: string | number): void {
    if (typeof signal === "string" ? runtime.signalNumber(signal) <= 0 : !Number.isInteger(signal) || signal <= 0) {
      throw new RangeError(`Unknown signal ${JSON.stringify(signal)}`);
    }
    if (this.#returncode === null && this.pid !== undefined) this.#handle.kill(signal);
  }

  /** Sends SIGTERM: `returncode` becomes -15 unless the program catches it. */
  terminate(): void {
    this.sendSignal("SIGTERM");
  }

  /** Sends SIGKILL: `returncode` becomes -9. */
  kill(): void {
    this.sendSignal("SIGKILL");
  }

  /** Kills the program if it still runs, stops reading its pipes, and waits for it. */
  async [asyncDispose](): Promise<void> {
    if (this.#returncode === null) this.kill();
    for (const stream of [this.stdout, this.stderr]) {
      if (stream && !stream.locked) stream.cancel().catch(() => {});
    }
    this.#communication?.stdout?.cancel();
    this.#communication?.stderr?.cancel();
    if (this.stdin && !this.stdin.locked) this.stdin.abort().catch(() => {});
    await this.#done.catch(() => {});
  }
}

/**
 * A program that {@linkcode run} ran to its end (Python's `subprocess.CompletedProcess`).
 *
 * @example
 * ```ts
 * import { run } from "polyproc";
 * const done = await run(["echo", "hi"], { captureOutput: true, text: true });
 * console.log(done.returncode, done.stdout); // 0 "hi\n"
 * done.checkReturncode(); // throws CalledProcessError when returncode is not 0
 * ```
 */
export class CompletedProcess<T extends string | Uint8Array = Uint8Array> {
  /** The command, as given. */
  readonly args: string | readonly string[];
  /** The exit status, or -N after signal N. */
  readonly returncode: number;
  /** Captured stdout; null when it was not piped. */
  readonly stdout: T | null;
  /** Captured stderr; null when it was not piped. */
  readonly stderr: T | null;

  constructor(args: string | readonly string[], returncode: number, stdout: T | null = null, stderr: T | null = null) {
    this.args = args;
    this.returncode = returncode;
    this.stdout = stdout;
    this.stderr = stderr;
  }

  /** @throws {CalledProcessError} if `returncode` is not 0. */
  checkReturncode(): void {
    if (this.returncode !== 0) throw new CalledProcessError(this.returncode, this.args, this.stdout, this.stderr);
  }
}

/**
 * Options for {@linkcode run}: {@linkcode PopenOptions} and these.
 *
 * @example
 * ```ts
 * import { run, type RunOptions } from "polyproc";
 * const options: RunOptions<true> = { captureOutput: true, text: true, check: true, timeout: 5_000 };
 * await run(["ls"], options);
 * ```
 */
export interface RunOptions<Text extends boolean = boolean> extends PopenOptions<Text> {
  /** Written to stdin, which is then closed (stdin becomes "pipe"; do not give both). */
  input?: string | Uint8Array;
  /** Pipe and capture stdout and stderr (do not give `stdout`/`stderr` as well). */
  captureOutput?: boolean;
  /** Reject with {@linkcode CalledProcessError} when the return code is not 0. */
  check?: boolean;
  /** Milliseconds; after it the program is killed and reaped, then {@linkcode TimeoutExpiredError}. */
  timeout?: number;
  /** Aborting kills the program and rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * Runs a program to its end and returns what happened (Python's `subprocess.run`).
 * Nothing is captured unless asked for (`captureOutput`, or `stdout: "pipe"`).
 *
 * @param args The program and its arguments; or, with `shell: true`, a command line.
 * @throws {TypeError} for `input` with `stdin`, or `captureOutput` with `stdout`/`stderr`.
 * @throws {CalledProcessError} with `check: true` and a non-zero return code.
 * @throws {TimeoutExpiredError} after `timeout`: the program has been killed and reaped;
 *   the error holds what it wrote before.
 * @throws {SubprocessError} if the program could not be started (`code` "ENOENT", ...).
 *
 * @example
 * ```ts
 * import { run } from "polyproc";
 * const { stdout } = await run(["ls", "-l"], { captureOutput: true, text: true, check: true });
 * console.log(stdout);
 * ```
 */
export async function run<Text extends boolean = false>(
  args: string | readonly string[],
  options: RunOptions<Text> = {},
): Promise<CompletedProcess<Output<Text>>> {
  const { input, captureOutput = false, check = false, timeout, signal, ...popenOptions } = options;
  if (input !== undefined && popenOptions.stdin !== undefined) throw new TypeError("stdin and input may not both be used");
  if (captureOutput && (popenOptions.stdout !== undefined || popenOptions.stderr !== undefined)) {
    throw new TypeError("stdout and stderr may not be used with captureOutput");
  }
  checkTimeout(timeout);
  signal?.throwIfAborted();
  const p = new Popen<Text>(args, {
    ...popenOptions,
    stdin: input !== undefined ? "pipe" : popenOptions.stdin,
    stdout: captureOutput ? "pipe" : popenOptions.stdout,
    stderr: captureOutput ? "pipe" : popenOptions.stderr,
  });
  const onAbort = () => p.kill();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const { stdout, stderr } = await p.communicate(input, timeout).catch(async (err) => {
      throw err instanceof TimeoutExpiredError ? await drainAfterTimeout(p, timeout!) : err;
    });
    signal?.throwIfAborted();
    const done = new CompletedProcess(args, p.returncode!, stdout, stderr);
    if (check) done.checkReturncode();
    return done;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Runs a program and returns its stdout, rejecting unless it exits 0 (Python's
 * `subprocess.check_output`).
 *
 * @throws {CalledProcessError} for a non-zero return code (with `stdout` and `stderr`).
 * @throws {TimeoutExpiredError}, {SubprocessError} as {@linkcode run} does.
 *
 * @example
 * ```ts
 * import { checkOutput } from "polyproc";
 * const today = await checkOutput(["date", "+%Y"], { text: true });
 * ```
 */
export async function checkOutput<Text extends boolean = false>(
  args: string | readonly string[],
  options: Omit<RunOptions<Text>, "stdout" | "check" | "captureOutput"> = {},
): Promise<Output<Text>> {
  const done = await run<Text>(args, { ...options, stdout: "pipe", check: true });
  return done.stdout!;
}
