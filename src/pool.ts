/**
 * Python's `multiprocessing.Pool` and its `AsyncResult`: one face of the
 * scheduler in `_scheduler.ts` (the other is `futures.ts`).
 *
 * @module
 */
import { asyncDispose } from "./_dispose.ts";
import { ResultIterator, sourceOf } from "./_result_iterator.ts";
import {
  checkTimeout,
  fnEntry,
  MODE_APPLY,
  MODE_MAP,
  MODE_STARMAP,
  type PoolStats,
  Scheduler,
  type TaskOptions,
  withTimeout,
} from "./_scheduler.ts";
import { type StartMethod, useStartMethod } from "./_start_method.ts";
import { ProcessError, TimeoutError } from "./errors.ts";
import { cpuCount } from "./process.ts";
import { runtime } from "./runtime/detect.ts";
import { type TargetLike, toSpec } from "./target.ts";

export type { PoolStats, TaskOptions } from "./_scheduler.ts";

// deno-lint-ignore no-explicit-any
type AnyArgs = any[];

/**
 * Options for {@linkcode Pool}.
 *
 * @example
 * ```ts
 * import { Pool, type PoolOptions } from "polyproc";
 * const options: PoolOptions = { processes: 2, maxTasksPerChild: 100 };
 * await using pool = new Pool(options);
 * ```
 */
export interface PoolOptions {
  /** Number of workers; default {@linkcode cpuCount}(). */
  processes?: number;
  /** Runs once in each worker, before its first task: a {@linkcode fromModule} reference or a shipped function. */
  initializer?: TargetLike<AnyArgs, unknown>;
  /** The initializer's arguments. */
  initargs?: unknown[];
  /** A worker is replaced after this many tasks (a map chunk counts as one); default: never. */
  maxTasksPerChild?: number;
  /** The start method; defaults to {@linkcode getStartMethod}(). */
  context?: StartMethod;
}

/**
 * Options for {@linkcode Pool.applyAsync}.
 *
 * @example
 * ```ts
 * import type { ApplyOptions } from "polyproc";
 * const options: ApplyOptions<number> = { callback: (r) => console.log(r), timeout: 5_000 };
 * ```
 */
export interface ApplyOptions<R> extends TaskOptions {
  /** Called with the result, once, before `get()` resolves. */
  callback?: (result: R) => void;
  /** Called with the error, once, before `get()` rejects. */
  errorCallback?: (error: unknown) => void;
}

/**
 * Options for {@linkcode Pool.map} and its relatives.
 *
 * @example
 * ```ts
 * import type { MapOptions } from "polyproc";
 * const options: MapOptions = { chunksize: 100, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface MapOptions extends TaskOptions {
  /** Items per task sent to a worker. `map` defaults to Python's formula, `imap` to 1. */
  chunksize?: number;
}

/** Reports a user callback's error without changing the result (Python logs it). */
export function reportCallbackError(what: string, err: unknown): void {
  runtime.writeStderr(`polyproc: ${what} threw: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
}

let settleResult: <R>(result: AsyncResult<R>, ok: boolean, value: unknown) => void;

/**
 * The pending result of {@linkcode Pool.applyAsync} or {@linkcode Pool.mapAsync}
 * (Python's `AsyncResult`). Not a Promise itself: call `get()`.
 *
 * @example
 * ```ts
 * import { Pool } from "polyproc";
 * await using pool = new Pool({ processes: 2 });
 * const r = pool.applyAsync((x: number) => x * x, [12]);
 * console.log(await r.get(10_000), r.ready(), r.successful()); // 144 true true
 * ```
 */
export class AsyncResult<R> {
  #state: "pending" | "ok" | "error" = "pending";
  #promise: Promise<R>;
  #resolve!: (value: R) => void;
  #reject!: (error: unknown) => void;
  #callback: ((result: R) => void) | undefined;
  #errorCallback: ((error: unknown) => void) | undefined;

  static {
    settleResult = (result, ok, value) => result.#settle(ok, value);
  }

  /** @internal Made by the pool. */
  constructor(callback?: (result: R) => void, errorCallback?: (error: unknown) => void) {
    if (callback !== undefined && typeof callback !== "function") throw new TypeError("callback must be a function");
    if (errorCallback !== undefined && typeof errorCallback !== "function") throw new TypeError("errorCallback must be a function");
    this.#callback = callback;
    this.#errorCallback = errorCallback;
    this.#promise = new Promise<R>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // A failure nobody asks about is dropped quietly, as in Python.
    this.#promise.catch(() => {});
  }

  #settle(ok: boolean, value: unknown): void {
    if (this.#state !== "pending") return;
    this.#state = ok ? "ok" : "error";
    try {
      if (ok) this.#callback?.(value as R);
      else this.#errorCallback?.(value);
    } catch (err) {
      reportCallbackError(ok ? "a pool callback" : "a pool errorCallback", err);
    }
    if (ok) this.#resolve(value as R);
    else this.#reject(value);
  }

  /**
   * The result, or the task's error. With `timeout` (ms), rejects with
   * {@linkcode TimeoutError} if not ready by then; the task goes on.
   */
  get(timeout?: number): Promise<R> {
    return withTimeout(this.#promise, checkTimeout(timeout), () => new TimeoutError(`The result was not ready within ${timeout} ms`));
  }

  /** Waits until the result is ready, or `timeout` ms. Never rejects. */
  async wait(timeout?: number): Promise<void> {
    await this.get(timeout).catch(() => {});
  }

  /** Whether the task has finished. */
  ready(): boolean {
    return this.#state !== "pending";
  }

  /**
   * Whether the task finished without an error.
   *
   * @throws {ProcessError} if it has not finished.
   */
  successful(): boolean {
    if (this.#state === "pending") throw new ProcessError("Cannot tell whether the result is successful: it is not ready");
    return this.#state === "ok";
  }
}

/** Python's default map chunksize: a quarter of an even share per worker, rounded up. */
export function defaultChunksize(length: number, workers: number): number {
  return Math.max(1, Math.ceil(length / (workers * 4)));
}

function checkChunksize(chunksize: unknown): number | undefined {
  if (chunksize === undefined) return undefined;
  if (!Number.isInteger(chunksize) || (chunksize as number) < 1) {
    throw new RangeError(`chunksize must be an integer ≥ 1, got ${String(chunksize)}`);
  }
  return chunksize as number;
}

/** Checks a count option: an integer ≥ 1. */
export function checkCount(value: unknown, what: string): number {
  if (!Number.isInteger(value) || (value as number) < 1) {
    throw new RangeError(`${what} must be an integer ≥ 1, got ${typeof value === "string" ? JSON.stringify(value) : String(value)}`);
  }
  return value as number;
}

function checkArgs(args: unknown): unknown[] {
  if (!Array.isArray(args)) throw new TypeError(`args must be an array, got ${typeof args}`);
  return args;
}

function taskOptions(options: TaskOptions): TaskOptions {
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new TypeError("signal must be an AbortSignal");
  return { signal: options.signal, timeout: checkTimeout(options.timeout) };
}

async function materialize(source: Iterator<unknown> | AsyncIterator<unknown>): Promise<unknown[]> {
  const items: unknown[] = [];
  for (;;) {
    const r = await source.next();
    if (r.done) return items;
    items.push(r.value);
  }
}

/** The scheduler's settings from a pool's or an executor's options. */
export function schedulerSettings(
  options: PoolOptions,
): { method: StartMethod; initializer?: ReturnType<typeof toSpec>; initargs: unknown[]; maxTasksPerChild?: number } {
  const { initializer, initargs = [], maxTasksPerChild, context } = options;
  if (!Array.isArray(initargs)) throw new TypeError(`initargs must be an array, got ${typeof initargs}`);
  return {
    method: useStartMethod(context),
    initializer: initializer === undefined ? undefined : toSpec(initializer, "initializer"),
    initargs,
    maxTasksPerChild: maxTasksPerChild === undefined ? undefined : checkCount(maxTasksPerChild, "maxTasksPerChild"),
  };
}

/**
 * A pool of workers that run tasks (Python's `multiprocessing.Pool`).
 *
 * Workers start with the pool; each runs one task at a time. A task that throws
 * rejects its own result with the child's error (same class, message and stack)
 * and the pool carries on. A worker that dies mid-task is replaced, and that task
 * rejects with a {@linkcode ProcessError} saying the worker died (Python's pool
 * would hang). Idle workers do not keep the program alive.
 *
 * Unlike Python, `map` results are ordered and its first error is raised once all
 * chunks have run (as Python does), `imap` pulls its input lazily, and
 * `[Symbol.asyncDispose]` (`await using`) terminates and joins, as Python's `with`
 * terminates.
 *
 * @example Mapping a function over a range
 * ```ts
 * import { Pool } from "polyproc";
 * await using pool = new Pool({ processes: 4 });
 * console.log(await pool.map((x: number) => x * x, [0, 1, 2, 3])); // [0, 1, 4, 9]
 * ```
 */
export class Pool {
  #scheduler: Scheduler;
  #processes: number;

  /**
   * @throws {RangeError} if `processes` or `maxTasksPerChild` is not an integer ≥ 1.
   * @throws {TypeError} if `initializer` cannot be sent to a worker, or `initargs` cannot be copied.
   */
  constructor(options: PoolOptions = {}) {
    if (typeof options !== "object" || options === null) throw new TypeError("Pool() takes an options object");
    const processes = options.processes === undefined ? cpuCount() : checkCount(options.processes, "processes");
    this.#processes = processes;
    this.#scheduler = new Scheduler({
      ...schedulerSettings(options),
      processes,
      lazy: false,
      breakOnDeath: false,
      prefix: "PoolWorker",
    });
  }

  /** The number of workers the pool keeps. */
  get processes(): number {
    return this.#processes;
  }

  /** Runs `fn(...args)` in a worker and resolves to its result. */
  apply<A extends unknown[], R>(fn: TargetLike<A, R>, args?: A, options: TaskOptions = {}): Promise<Awaited<R>> {
    return this.applyAsync(fn, args, options).get();
  }

  /**
   * Starts `fn(...args)` in a worker.
   *
   * @throws {ProcessError} if the pool is closed or terminated.
   * @throws {TypeError} if `fn` cannot be sent or `args` cannot be copied.
   */
  applyAsync<A extends unknown[], R>(fn: TargetLike<A, R>, args: A = [] as unknown as A, options: ApplyOptions<Awaited<R>> = {}): AsyncResult<Awaited<R>> {
    this.#scheduler.checkRunning("apply");
    const entry = fnEntry(fn as TargetLike<never[], unknown>);
    const result = new AsyncResult<Awaited<R>>(options.callback, options.errorCallback);
    this.#scheduler.submit(entry, MODE_APPLY, checkArgs(args), taskOptions(options), {
      settle: (ok, value) => settleResult(result, ok, value),
    });
    return result;
  }

  /** `fn(x)` for each item, in order (Python's `map`). Rejects with the first error, after every chunk has run. */
  map<T, R>(fn: TargetLike<[T], R>, iterable: Iterable<T> | AsyncIterable<T>, options: MapOptions = {}): Promise<Awaited<R>[]> {
    return this.mapAsync(fn, iterable, options).get();
  }

  /** Starts a {@linkcode Pool.map}; the callbacks get the whole list, or the first error. */
  mapAsync<T, R>(
    fn: TargetLike<[T], R>,
    iterable: Iterable<T> | AsyncIterable<T>,
    options: MapOptions & ApplyOptions<Awaited<R>[]> = {},
  ): AsyncResult<Awaited<R>[]> {
    return this.#mapAsync(fn as TargetLike<never[], unknown>, MODE_MAP, iterable, options as MapOptions & ApplyOptions<unknown[]>) as AsyncResult<Awaited<R>[]>;
  }

  /** `fn(...args)` for each args array, in order (Python's `starmap`). */
  starmap<A extends unknown[], R>(fn: TargetLike<A, R>, iterable: Iterable<A> | AsyncIterable<A>, options: MapOptions = {}): Promise<Awaited<R>[]> {
    return this.starmapAsync(fn, iterable, options).get();
  }

  /** Starts a {@linkcode Pool.starmap}. */
  starmapAsync<A extends unknown[], R>(
    fn: TargetLike<A, R>,
    iterable: Iterable<A> | AsyncIterable<A>,
    options: MapOptions & ApplyOptions<Awaited<R>[]> = {},
  ): AsyncResult<Awaited<R>[]> {
    return this.#mapAsync(fn as TargetLike<never[], unknown>, MODE_STARMAP, iterable, options as MapOptions & ApplyOptions<unknown[]>) as AsyncResult<Awaited<R>[]>;
  }

  #mapAsync(fn: TargetLike<never[], unknown>, mode: number, iterable: unknown, options: MapOptions & ApplyOptions<unknown[]>): AsyncResult<unknown[]> {
    this.#scheduler.checkRunning("map");
    const entry = fnEntry(fn);
    const chunksize = checkChunksize(options.chunksize);
    const opts = taskOptions(options);
    const result = new AsyncResult<unknown[]>(options.callback, options.errorCallback);
    const settle = (ok: boolean, value: unknown) => settleResult(result, ok, value);
    const submitAll = (items: unknown[], admitted: boolean) => {
      if (items.length === 0) return settle(true, []);
      const size = chunksize ?? defaultChunksize(items.length, this.#processes);
      const out = new Array(items.length);
      let left = Math.ceil(items.length / size);
      let failure: { error: unknown } | undefined;
      for (let start = 0; start < items.length; start += size) {
        const chunk = items.slice(start, start + size);
        const done = (ok: boolean, value: unknown) => {
          if (ok) for (let i = 0; i < chunk.length; i++) out[start + i] = (value as unknown[])[i];
          else failure ??= { error: value };
          if (--left === 0) settle(failure === undefined, failure === undefined ? out : failure.error);
        };
        try {
          this.#scheduler.submit(entry, mode, chunk, opts, { settle: done }, admitted);
        } catch (err) {
          done(false, err);
        }
      }
    };
    const source = sourceOf(iterable, "iterable");
    if (typeof (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator] !== "function") {
      // A sync input is read now, as Python's list(iterable): map_async(); close() runs it all.
      let items: unknown[];
      try {
        items = Array.isArray(iterable) ? iterable : Array.from({ [Symbol.iterator]: () => source as Iterator<unknown> });
      } catch (err) {
        settle(false, err);
        return result;
      }
      submitAll(items, false);
      return result;
    }
    const end = this.#scheduler.begin();
    void materialize(source).then((items) => submitAll(items, true), (err) => settle(false, err)).finally(end);
    return result;
  }

  /** `fn(x)` for each item, yielded in order as they are ready; input is read as workers need it. */
  imap<T, R>(fn: TargetLike<[T], R>, iterable: Iterable<T> | AsyncIterable<T>, options: MapOptions = {}): AsyncIterableIterator<Awaited<R>> {
    return this.#imap(fn as TargetLike<never[], unknown>, iterable, options, true) as AsyncIterableIterator<Awaited<R>>;
  }

  /** Like {@linkcode Pool.imap}, yielding results in the order they finish. */
  imapUnordered<T, R>(fn: TargetLike<[T], R>, iterable: Iterable<T> | AsyncIterable<T>, options: MapOptions = {}): AsyncIterableIterator<Awaited<R>> {
    return this.#imap(fn as TargetLike<never[], unknown>, iterable, options, false) as AsyncIterableIterator<Awaited<R>>;
  }

  #imap(fn: TargetLike<never[], unknown>, iterable: unknown, options: MapOptions, ordered: boolean): AsyncIterableIterator<unknown> {
    this.#scheduler.checkRunning("imap");
    const entry = fnEntry(fn);
    const chunksize = checkChunksize(options.chunksize) ?? 1;
    const source = sourceOf(iterable, "iterable");
    return new ResultIterator(this.#scheduler, entry, MODE_MAP, source, { ...taskOptions(options), chunksize, ordered });
  }

  /** What the pool is doing now. */
  stats(): PoolStats {
    return this.#scheduler.stats();
  }

  /** Accepts no more tasks; the workers end once the queued ones are done. */
  close(): void {
    this.#scheduler.close();
  }

  /** Stops every worker now; every pending result rejects with a {@linkcode ProcessError}. */
  terminate(): void {
    this.#scheduler.terminate(new ProcessError("The pool was terminated before this task finished"));
  }

  /**
   * Waits for every worker to end.
   *
   * @throws {ProcessError} if the pool is still running (call `close()` or `terminate()` first).
   */
  join(): Promise<void> {
    if (this.#scheduler.state === "running") {
      return Promise.reject(new ProcessError("Cannot join the pool: it is still running; call close() or terminate() first"));
    }
    return this.#scheduler.join();
  }

  /** `await using pool = new Pool()`: terminates and joins, as Python's `with` does. */
  async [asyncDispose](): Promise<void> {
    this.terminate();
    await this.join();
  }
}
