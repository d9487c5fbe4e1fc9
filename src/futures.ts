/**
 * Python's `concurrent.futures` for processes: `ProcessPoolExecutor`, `Future`,
 * `asCompleted` and `wait`. The executor is the second face of the scheduler
 * behind `Pool` (`_scheduler.ts`).
 *
 * @module
 */
import { asyncDispose } from "./_dispose.ts";
import { ResultIterator, sourceOf } from "./_result_iterator.ts";
import {
  CANCELLED,
  checkTimeout,
  fnEntry,
  MODE_APPLY,
  MODE_STARMAP,
  type PoolStats,
  Scheduler,
  type Task,
  type TaskOptions,
  withTimeout,
} from "./_scheduler.ts";
import type { StartMethod } from "./_start_method.ts";
import { CancelledError, ProcessError, TimeoutError } from "./errors.ts";
import { checkCount, reportCallbackError, schedulerSettings } from "./pool.ts";
import { cpuCount } from "./process.ts";
import type { TargetLike } from "./target.ts";

// deno-lint-ignore no-explicit-any
type AnyArgs = any[];

/**
 * Options for {@linkcode ProcessPoolExecutor}.
 *
 * @example
 * ```ts
 * import { ProcessPoolExecutor, type ExecutorOptions } from "polyproc";
 * const options: ExecutorOptions = { maxWorkers: 2, context: "process" };
 * await using ex = new ProcessPoolExecutor(options);
 * ```
 */
export interface ExecutorOptions {
  /** Most workers at once (started as tasks need them); default {@linkcode cpuCount}(). */
  maxWorkers?: number;
  /** Runs once in each worker, before its first task. If it throws, the executor is broken. */
  initializer?: TargetLike<AnyArgs, unknown>;
  /** The initializer's arguments. */
  initargs?: unknown[];
  /** A worker is replaced after this many tasks; default: never. */
  maxTasksPerChild?: number;
  /** The start method; defaults to {@linkcode getStartMethod}(). */
  context?: StartMethod;
}

/**
 * Options for {@linkcode ProcessPoolExecutor.map}.
 *
 * @example
 * ```ts
 * import type { ExecutorMapOptions } from "polyproc";
 * const options: ExecutorMapOptions = { timeout: 30_000, chunksize: 64 };
 * ```
 */
export interface ExecutorMapOptions {
  /** Milliseconds from the `map()` call: a result not ready by then rejects that `next()` with {@linkcode TimeoutError}. */
  timeout?: number;
  /** Items per task sent to a worker; default 1. */
  chunksize?: number;
  /** Aborting stops the map: queued items are dropped and running ones stopped. */
  signal?: AbortSignal;
}

type State = "pending" | "running" | "finished" | "cancelled";

let failed: (future: Future<unknown>) => boolean;
let attach: (future: Future<unknown>, cancel: () => boolean) => { dispatched(): void; settle(ok: boolean, value: unknown): void };

/**
 * The eventual result of {@linkcode ProcessPoolExecutor.submit} (Python's
 * `concurrent.futures.Future`). It is thenable: `await ex.submit(f, 1)` and
 * `Promise.all(futures)` work.
 *
 * @example
 * ```ts
 * import { ProcessPoolExecutor } from "polyproc";
 * await using ex = new ProcessPoolExecutor({ maxWorkers: 2 });
 * const f = ex.submit((a: number, b: number) => a + b, 2, 3);
 * f.addDoneCallback((done) => console.log("done:", done.done()));
 * console.log(await f); // 5
 * ```
 */
export class Future<R> implements PromiseLike<R> {
  #state: State = "pending";
  #ok = false;
  #value: unknown;
  // Typed loosely on purpose: a field typed with R as a parameter would make Future<R>
  // invariant, and a Future<number> could not go where a Future<unknown> is expected.
  #callbacks: ((future: never) => void)[] = [];
  #promise: Promise<R>;
  #resolve!: (value: unknown) => void;
  #reject!: (error: unknown) => void;
  #cancel: () => boolean = () => false;

  static {
    failed = (future) => future.#state === "finished" && !future.#ok;
    attach = (future, cancel) => {
      future.#cancel = cancel;
      return {
        dispatched: () => {
          if (future.#state === "pending") future.#state = "running";
        },
        settle: (ok, value) => future.#settle(ok, value),
      };
    };
  }

  /** @internal Made by the executor. */
  constructor() {
    this.#promise = new Promise<R>((resolve, reject) => {
      this.#resolve = resolve as (value: unknown) => void;
      this.#reject = reject;
    });
    this.#promise.catch(() => {});
  }

  #settle(ok: boolean, value: unknown): void {
    if (this.#state === "finished" || this.#state === "cancelled") return;
    if (value === CANCELLED) {
      this.#state = "cancelled";
      value = new CancelledError("The future was cancelled");
    } else {
      this.#state = "finished";
    }
    this.#ok = ok;
    this.#value = value;
    for (const callback of this.#callbacks) this.#call(callback);
    this.#callbacks = [];
    if (ok) this.#resolve(value);
    else this.#reject(value);
  }

  #call(callback: (future: never) => void): void {
    try {
      callback(this as never);
    } catch (err) {
      reportCallbackError("a Future's done callback", err);
    }
  }

  /**
   * The result, or the task's error; {@linkcode CancelledError} if cancelled;
   * {@linkcode TimeoutError} if not done within `timeout` ms (the task goes on).
   */
  result(timeout?: number): Promise<R> {
    return withTimeout(this.#promise, checkTimeout(timeout), () => new TimeoutError(`The future was not done within ${timeout} ms`));
  }

  /** The task's error, or null if it succeeded; rejects as {@linkcode Future.result} does for cancel and timeout. */
  async exception(timeout?: number): Promise<unknown> {
    try {
      await this.result(timeout);
      return null;
    } catch (err) {
      if (err instanceof TimeoutError && !this.done()) throw err;
      if (this.#state === "cancelled") throw err;
      return err;
    }
  }

  /** Cancels the task if no worker has it yet. True if it is (now) cancelled. */
  cancel(): boolean {
    if (this.#state === "cancelled") return true;
    if (this.#state !== "pending") return false;
    return this.#cancel();
  }

  /** Whether the future was cancelled. */
  cancelled(): boolean {
    return this.#state === "cancelled";
  }

  /** Whether a worker has the task and it has not finished (tasks a worker holds in line count). */
  running(): boolean {
    return this.#state === "running";
  }

  /** Whether the future finished or was cancelled. */
  done(): boolean {
    return this.#state === "finished" || this.#state === "cancelled";
  }

  /** Calls `fn(future)` once the future is done, before `result()` resolves; at once if it is done. */
  addDoneCallback(fn: (future: Future<R>) => void): void {
    if (typeof fn !== "function") throw new TypeError("addDoneCallback() needs a function");
    if (this.done()) this.#call(fn);
    else this.#callbacks.push(fn);
  }

  // deno-lint-ignore no-explicit-any
  then<T1 = R, T2 = never>(onFulfilled?: ((value: R) => T1 | PromiseLike<T1>) | null, onRejected?: ((reason: any) => T2 | PromiseLike<T2>) | null): Promise<T1 | T2> {
    return this.#promise.then(onFulfilled, onRejected);
  }
}

function isOptions(value: unknown): value is ExecutorMapOptions {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  return !(Symbol.iterator in value) && !(Symbol.asyncIterator in value);
}

// Zips iterables (sync or async) into argument arrays; ends with the shortest.
async function* zip(sources: (Iterator<unknown> | AsyncIterator<unknown>)[]): AsyncGenerator<unknown[]> {
  try {
    for (;;) {
      const row: unknown[] = [];
      for (const source of sources) {
        const r = await source.next();
        if (r.done) return;
        row.push(r.value);
      }
      yield row;
    }
  } finally {
    for (const source of sources) await source.return?.();
  }
}

function* zipSync(sources: Iterator<unknown>[]): Generator<unknown[]> {
  try {
    for (;;) {
      const row: unknown[] = [];
      for (const source of sources) {
        const r = source.next();
        if (r.done) return;
        row.push(r.value);
      }
      yield row;
    }
  } finally {
    for (const source of sources) source.return?.();
  }
}

/**
 * A pool of worker processes behind Futures (Python's
 * `concurrent.futures.ProcessPoolExecutor`). Workers start as tasks need them, up
 * to `maxWorkers`. If a worker ends abruptly, the executor is broken: every
 * pending future fails with {@linkcode BrokenProcessPoolError}, as in Python.
 * It shares its scheduler with {@linkcode Pool}.
 *
 * @example
 * ```ts
 * import { asCompleted, ProcessPoolExecutor } from "polyproc";
 * await using ex = new ProcessPoolExecutor({ maxWorkers: 2 });
 * const futures = [1, 2, 3].map((n) => ex.submit((x: number) => x * x, n));
 * for await (const f of asCompleted(futures)) console.log(await f.result());
 * ```
 */
export class ProcessPoolExecutor {
  #scheduler: Scheduler;

  /**
   * @throws {RangeError} if `maxWorkers` or `maxTasksPerChild` is not an integer ≥ 1.
   * @throws {TypeError} if `initializer` cannot be sent, or `initargs` cannot be copied.
   */
  constructor(options: ExecutorOptions = {}) {
    if (typeof options !== "object" || options === null) throw new TypeError("ProcessPoolExecutor() takes an options object");
    const processes = options.maxWorkers === undefined ? cpuCount() : checkCount(options.maxWorkers, "maxWorkers");
    this.#scheduler = new Scheduler({
      ...schedulerSettings(options),
      processes,
      lazy: true,
      breakOnDeath: true,
      prefix: "ExecutorWorker",
    });
  }

  /**
   * Schedules `fn(...args)` and returns its Future.
   *
   * @throws {ProcessError} after `shutdown()`; {@linkcode BrokenProcessPoolError} once broken.
   * @throws {TypeError} if `fn` cannot be sent or `args` cannot be copied.
   */
  submit<A extends unknown[], R>(fn: TargetLike<A, R>, ...args: A): Future<Awaited<R>> {
    return this.submitWith(fn, args);
  }

  /** {@linkcode ProcessPoolExecutor.submit} with per-task options: an abort `signal` and a running `timeout`. */
  submitWith<A extends unknown[], R>(fn: TargetLike<A, R>, args: A, options: TaskOptions = {}): Future<Awaited<R>> {
    this.#checkSubmit();
    const entry = fnEntry(fn as TargetLike<never[], unknown>);
    if (!Array.isArray(args)) throw new TypeError(`args must be an array, got ${typeof args}`);
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
    const future = new Future<Awaited<R>>();
    let task: Task | undefined;
    const hooks = attach(future, () => task !== undefined && this.#scheduler.cancel(task, CANCELLED));
    task = this.#scheduler.submit(entry, MODE_APPLY, args, { signal: options.signal, timeout: checkTimeout(options.timeout) }, hooks);
    return future;
  }

  #checkSubmit(): void {
    if (this.#scheduler.state === "closed") throw new ProcessError("Cannot schedule new futures after shutdown");
    this.#scheduler.checkRunning("submit");
  }

  /**
   * `fn(...row)` for each row of the zipped iterables, yielded in order. Input is
   * read as workers need it (Python's reads it all at once).
   *
   * @example
   * ```ts
   * import { ProcessPoolExecutor } from "polyproc";
   * await using ex = new ProcessPoolExecutor({ maxWorkers: 2 });
   * for await (const s of ex.map((a: number, b: number) => a + b, [1, 2], [10, 20])) console.log(s); // 11, 22
   * ```
   */
  map<R>(fn: TargetLike<AnyArgs, R>, ...iterablesAndOptions: (Iterable<unknown> | AsyncIterable<unknown> | ExecutorMapOptions)[]): AsyncIterableIterator<Awaited<R>> {
    this.#checkSubmit();
    const entry = fnEntry(fn as TargetLike<never[], unknown>);
    const last = iterablesAndOptions[iterablesAndOptions.length - 1];
    const options: ExecutorMapOptions = isOptions(last) ? (iterablesAndOptions.pop() as ExecutorMapOptions) : {};
    if (iterablesAndOptions.length === 0) throw new TypeError("map() needs at least one iterable");
    const timeout = checkTimeout(options.timeout);
    const chunksize = options.chunksize === undefined ? 1 : checkCount(options.chunksize, "chunksize");
    const sources = iterablesAndOptions.map((it, i) => sourceOf(it, `iterables[${i}]`));
    const allSync = iterablesAndOptions.every((it) => typeof (it as Iterable<unknown>)[Symbol.iterator] === "function");
    const rows = allSync ? zipSync(sources as Iterator<unknown>[]) : zip(sources);
    return new ResultIterator(this.#scheduler, entry, MODE_STARMAP, rows, {
      chunksize,
      ordered: true,
      signal: options.signal,
      deadline: timeout === undefined ? undefined : performance.now() + timeout,
    });
  }

  /** What the executor is doing now. */
  stats(): PoolStats {
    return this.#scheduler.stats();
  }

  /**
   * Accepts no more work. With `cancelFutures`, futures no worker has taken are
   * cancelled. With `wait` (default), resolves once every worker has ended.
   */
  async shutdown(options: { wait?: boolean; cancelFutures?: boolean } = {}): Promise<void> {
    const { wait = true, cancelFutures = false } = options;
    if (cancelFutures) this.#scheduler.cancelQueued();
    this.#scheduler.close();
    if (wait) await this.#scheduler.join();
  }

  /** `await using ex = new ProcessPoolExecutor()`: shuts down and waits, as Python's `with` does. */
  async [asyncDispose](): Promise<void> {
    await this.shutdown({ wait: true });
  }
}

/** {@linkcode wait} returns when any future finishes or is cancelled. */
export const FIRST_COMPLETED = "FIRST_COMPLETED";
/** {@linkcode wait} returns when any future fails, or when all are done. */
export const FIRST_EXCEPTION = "FIRST_EXCEPTION";
/** {@linkcode wait} returns when all futures are done. */
export const ALL_COMPLETED = "ALL_COMPLETED";

function checkFutures<F extends Future<unknown>>(fs: Iterable<F>): Set<F> {
  if (fs === null || typeof (fs as Iterable<F>)?.[Symbol.iterator] !== "function") {
    throw new TypeError("expected an iterable of Futures");
  }
  const set = new Set(fs);
  for (const f of set) if (!(f instanceof Future)) throw new TypeError("expected an iterable of Futures");
  return set;
}

/**
 * A future as {@linkcode asCompleted} yields it. TypeScript types a `for await`
 * variable as the awaited value of what is yielded, which for a thenable Future
 * would be its result; the loop gets the Future itself, so its `then` is hidden
 * from the type (it is still there: `await f.result()` reads the result).
 *
 * @example
 * ```ts
 * import { asCompleted, type Completed, type Future, ProcessPoolExecutor } from "polyproc";
 * await using ex = new ProcessPoolExecutor({ maxWorkers: 2 });
 * const fs: Future<number>[] = [1, 2].map((n) => ex.submit((x: number) => x * 10, n));
 * for await (const f of asCompleted(fs)) {
 *   const done: Completed<Future<number>> = f;
 *   console.log(await done.result());
 * }
 * ```
 */
export type Completed<F> = F & { then: never };

/**
 * Yields the futures as they finish (done ones first), each once. With `timeout`
 * (ms), a `next()` past it rejects with {@linkcode TimeoutError}. Yields Future
 * objects, not their results.
 *
 * @example
 * ```ts
 * import { asCompleted, ProcessPoolExecutor } from "polyproc";
 * await using ex = new ProcessPoolExecutor({ maxWorkers: 2 });
 * const fs = [3, 1, 2].map((n) => ex.submit((x: number) => x, n));
 * for await (const f of asCompleted(fs)) console.log(await f.result());
 * ```
 */
export function asCompleted<F extends Future<unknown>>(fs: Iterable<F>, timeout?: number): AsyncIterableIterator<Completed<F>> {
  const all = checkFutures(fs);
  const limit = checkTimeout(timeout);
  const deadline = limit === undefined ? undefined : performance.now() + limit;
  const finished: F[] = [];
  let wake: (() => void) | undefined;
  let yielded = 0;
  for (const f of all) {
    f.addDoneCallback(() => {
      finished.push(f);
      wake?.();
    });
  }
  // Written by hand: an async generator's `yield` would unwrap the thenable Future.
  const iterator: AsyncIterableIterator<Completed<F>> = {
    [Symbol.asyncIterator]: () => iterator,
    async next(): Promise<IteratorResult<Completed<F>>> {
      while (finished.length === 0) {
        if (yielded === all.size) return { value: undefined, done: true };
        const changed = new Promise<void>((resolve) => (wake = resolve));
        const left = deadline === undefined ? undefined : Math.max(0, deadline - performance.now());
        await withTimeout(changed, left, () => new TimeoutError(`${all.size - yielded - finished.length} (of ${all.size}) futures unfinished`));
      }
      yielded++;
      return { value: finished.shift()! as Completed<F>, done: false };
    },
    return(): Promise<IteratorResult<Completed<F>>> {
      yielded = all.size;
      finished.length = 0;
      return Promise.resolve({ value: undefined, done: true });
    },
  };
  return iterator;
}

/**
 * Waits for futures (Python's `concurrent.futures.wait`): until all are done, the
 * first is done, or the first fails (`returnWhen`), or `timeout` ms pass. Never
 * rejects on timeout.
 *
 * @example
 * ```ts
 * import { FIRST_COMPLETED, ProcessPoolExecutor, wait } from "polyproc";
 * await using ex = new ProcessPoolExecutor({ maxWorkers: 2 });
 * const fs = [1, 2].map((n) => ex.submit((x: number) => x, n));
 * const { done, notDone } = await wait(fs, { returnWhen: FIRST_COMPLETED });
 * console.log(done.size >= 1, done.size + notDone.size); // true 2
 * ```
 */
export async function wait<F extends Future<unknown>>(
  fs: Iterable<F>,
  options: { timeout?: number; returnWhen?: "FIRST_COMPLETED" | "FIRST_EXCEPTION" | "ALL_COMPLETED" } = {},
): Promise<{ done: Set<F>; notDone: Set<F> }> {
  const all = checkFutures(fs);
  const { returnWhen = ALL_COMPLETED } = options;
  if (returnWhen !== FIRST_COMPLETED && returnWhen !== FIRST_EXCEPTION && returnWhen !== ALL_COMPLETED) {
    throw new RangeError(`returnWhen must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED, got ${String(returnWhen)}`);
  }
  const timeout = checkTimeout(options.timeout);
  let doneCount = 0, failedCount = 0;
  const satisfied = () =>
    (returnWhen === FIRST_COMPLETED && doneCount > 0) || (returnWhen === FIRST_EXCEPTION && failedCount > 0) ||
    doneCount === all.size;
  await withTimeout(
    new Promise<void>((resolve) => {
      // Done futures call back at once, so the counts start right.
      for (const f of all) {
        f.addDoneCallback(() => {
          doneCount++;
          if (failed(f)) failedCount++;
          if (satisfied()) resolve();
        });
      }
      if (satisfied()) resolve();
    }),
    timeout,
    () => new TimeoutError("wait() timed out"),
  ).catch((err) => {
    if (!(err instanceof TimeoutError)) throw err;
  });
  const done = new Set([...all].filter((f) => f.done()));
  return { done, notDone: new Set([...all].filter((f) => !done.has(f))) };
}
