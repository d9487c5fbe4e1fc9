/**
 * The lazy side of the scheduler: `Pool.imap`, `Pool.imapUnordered` and
 * `ProcessPoolExecutor.map`. Input is pulled chunk by chunk only while fewer than
 * a bounded number of chunks are out (sent and not yet handed to the consumer), so
 * an endless generator works, and a slow consumer stops the input.
 *
 * @module
 */
import { Deque } from "./_deque.ts";
import { CANCELLED, type Scheduler, type Task, type TaskOptions } from "./_scheduler.ts";
import { CancelledError, TimeoutError } from "./errors.ts";

type FnEntry = Parameters<Scheduler["submit"]>[0];
type Outcome = { ok: boolean; value: unknown };

/** Options of the lazy iterators. */
export interface ResultIteratorOptions extends TaskOptions {
  chunksize: number;
  ordered: boolean;
  /** An absolute deadline (performance.now()) for each next() (the executor's map timeout). */
  deadline?: number;
}

/** Turns any iterable or async iterable into a uniform source; the sync case is kept sync for speed. */
export function sourceOf(input: unknown, what: string): Iterator<unknown> | AsyncIterator<unknown> {
  const it = input as { [Symbol.iterator]?: () => Iterator<unknown>; [Symbol.asyncIterator]?: () => AsyncIterator<unknown> };
  if (it !== null && typeof it === "object" || typeof it === "string") {
    if (typeof it[Symbol.asyncIterator] === "function") return it[Symbol.asyncIterator]!();
    if (typeof it[Symbol.iterator] === "function") return it[Symbol.iterator]!();
  }
  throw new TypeError(`${what} must be an iterable or an async iterable, got ${input === null ? "null" : typeof input}`);
}

export class ResultIterator<R> implements AsyncIterableIterator<R> {
  #scheduler: Scheduler;
  #fn: FnEntry;
  #mode: number;
  #source: Iterator<unknown> | AsyncIterator<unknown>;
  #options: ResultIteratorOptions;
  #submitted = 0;
  #handed = 0;
  #tasks = new Map<number, Task>();
  #outcomes = new Map<number, Outcome>(); // ordered: by chunk index
  #arrivals = new Deque<Outcome>(); // unordered: by arrival
  #buffer = new Deque<unknown>();
  #inputDone = false;
  #inputError: { error: unknown } | undefined;
  #feeding = false;
  #finished = false;
  #wake: (() => void) | undefined;
  #end: () => void;

  constructor(scheduler: Scheduler, fn: FnEntry, mode: number, source: Iterator<unknown> | AsyncIterator<unknown>, options: ResultIteratorOptions) {
    this.#scheduler = scheduler;
    this.#fn = fn;
    this.#mode = mode;
    this.#source = source;
    this.#options = options;
    this.#end = scheduler.begin(() => void this.#feed());
    void this.#feed();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<R> {
    return this;
  }

  // Chunks out at once: enough to keep every worker at its depth, and no more.
  #limit(): number {
    // Once the pool is closed, the input is read to its end, as Python's pool reads it all: join() waits for it.
    if (this.#scheduler.state !== "running") return Infinity;
    const n = this.#scheduler.options.processes;
    return n * (Math.ceil(this.#scheduler.depth() / this.#options.chunksize) + 1);
  }

  async #feed(): Promise<void> {
    if (this.#feeding) return;
    this.#feeding = true;
    try {
      const { chunksize, signal } = this.#options;
      while (!this.#inputDone && !this.#finished && this.#submitted - this.#handed < this.#limit() && !signal?.aborted) {
        const chunk: unknown[] = [];
        try {
          while (chunk.length < chunksize) {
            let r = this.#source.next();
            if (r instanceof Promise) r = await r;
            if ((r as IteratorResult<unknown>).done) {
              this.#inputDone = true;
              break;
            }
            chunk.push((r as IteratorResult<unknown>).value);
          }
        } catch (error) {
          // Python drops the chunk the failing item was in, and raises after the chunks before it.
          this.#inputDone = true;
          this.#inputError = { error };
          break;
        }
        if (chunk.length === 0 || this.#finished) continue;
        this.#submit(chunk);
        // Reading to the end after close() (no limit): let the program breathe between chunks.
        if (this.#scheduler.state !== "running" && this.#submitted % 1024 === 0) {
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
      }
    } finally {
      this.#feeding = false;
      if (this.#inputDone || this.#finished) this.#end();
      this.#wakeUp();
    }
  }

  #submit(chunk: unknown[]): void {
    const index = this.#submitted++;
    const settle = (ok: boolean, value: unknown) => {
      this.#tasks.delete(index);
      if (value === CANCELLED) {
        if (this.#finished) return; // our own return() dropped it
        ok = false;
        value = new CancelledError("The rest of the map was cancelled (shutdown with cancelFutures)");
      }
      const outcome = { ok, value };
      if (this.#options.ordered) this.#outcomes.set(index, outcome);
      else this.#arrivals.push(outcome);
      this.#wakeUp();
    };
    try {
      const task = this.#scheduler.submit(this.#fn, this.#mode, chunk, this.#options, { settle }, true);
      if (task.state !== 2) this.#tasks.set(index, task);
    } catch (error) {
      settle(false, error);
      this.#inputDone = true;
    }
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #take(): Outcome | undefined {
    if (!this.#options.ordered) return this.#arrivals.shift();
    const outcome = this.#outcomes.get(this.#handed);
    if (outcome !== undefined) this.#outcomes.delete(this.#handed);
    return outcome;
  }

  async next(): Promise<IteratorResult<R>> {
    for (;;) {
      if (this.#buffer.length > 0) return { value: this.#buffer.shift() as R, done: false };
      if (this.#finished) return { value: undefined, done: true };
      const outcome = this.#take();
      if (outcome !== undefined) {
        this.#handed++;
        if (!outcome.ok) {
          await this.return();
          throw outcome.value;
        }
        for (const value of outcome.value as unknown[]) this.#buffer.push(value);
        void this.#feed();
        continue;
      }
      if (this.#inputDone && !this.#feeding && this.#handed === this.#submitted) {
        const failure = this.#inputError;
        await this.return();
        if (failure !== undefined) throw failure.error;
        return { value: undefined, done: true };
      }
      void this.#feed();
      await this.#waitForChange();
    }
  }

  async #waitForChange(): Promise<void> {
    const changed = new Promise<void>((resolve) => (this.#wake = resolve));
    const deadline = this.#options.deadline;
    if (deadline === undefined) return changed;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), Math.max(0, deadline - performance.now()))));
    const timedOut = await Promise.race([changed.then(() => false), expired]);
    clearTimeout(timer);
    if (timedOut) {
      await this.return();
      throw new TimeoutError("The map's results did not all arrive within its timeout");
    }
  }

  /** Stops: no more input is read, and chunks not yet started are dropped. */
  async return(): Promise<IteratorResult<R>> {
    if (!this.#finished) {
      this.#finished = true;
      this.#end();
      this.#buffer.clear();
      for (const task of this.#tasks.values()) this.#scheduler.cancel(task, CANCELLED);
      this.#tasks.clear();
      try {
        await (this.#source.return?.() as unknown);
      } catch {
        // The input's own cleanup failing does not change the outcome.
      }
    }
    return { value: undefined, done: true };
  }
}
