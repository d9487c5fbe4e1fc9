/**
 * Queues shared by processes (Python's `multiprocessing.Queue`, `JoinableQueue`
 * and `SimpleQueue`).
 *
 * @module
 */
import { prepare } from "./_codec.ts";
import { EMPTY, type Fifo, FifoRefused, RESOLVED, SHUT } from "./_fifo.ts";
import { openFifo, reduceFifo, rebuildFifo } from "./_fifo_open.ts";
import { checkStartMethod, getStartMethod, type StartMethod } from "./_start_method.ts";
import { ProcessError, QueueEmptyError, QueueFullError } from "./errors.ts";
import { registerReducer, type Transport } from "./serialization.ts";

/** Options of the Queue constructors. */
export interface QueueOptions {
  /** The start method of the children that will share the queue; defaults to {@linkcode getStartMethod}(). */
  context?: StartMethod;
}

/** Options of `put()` and `get()`. */
export interface QueueWaitOptions {
  /** Wait for room (put) or an item (get); false fails at once. Default true. */
  block?: boolean;
  /** Milliseconds to wait at most, when blocking; default forever. */
  timeout?: number;
  /** Aborting rejects the wait with `signal.reason`. */
  signal?: AbortSignal;
}

function checkMaxsize(maxsize: unknown): number {
  if (typeof maxsize !== "number") throw new TypeError(`maxsize must be a number, got ${typeof maxsize}`);
  if (!Number.isInteger(maxsize) || maxsize < 0) {
    throw new RangeError(`maxsize must be a non-negative integer (0 = unbounded), got ${maxsize}`);
  }
  return maxsize;
}

function deadlineOf(options: QueueWaitOptions): { block: boolean; deadline?: number } {
  const { block = true, timeout } = options;
  if (typeof block !== "boolean") throw new TypeError("block must be a boolean");
  if (timeout === undefined || !block) return { block };
  if (typeof timeout !== "number" || Number.isNaN(timeout)) {
    throw new TypeError(`timeout must be a number of milliseconds, got ${String(timeout)}`);
  }
  if (timeout < 0) throw new RangeError(`timeout must be a non-negative number of milliseconds, got ${timeout}`);
  return { block, deadline: Date.now() + timeout };
}

function methodOf(options: QueueOptions | undefined): StartMethod {
  const context = options?.context;
  return context === undefined ? getStartMethod() : checkStartMethod(context, "context");
}

/**
 * A FIFO queue that every child it is passed to shares (Python's `multiprocessing.Queue`).
 *
 * Items are copied when they are put: a later change to the object is not seen
 * by the receiver (unlike Python, which pickles later). An item that cannot be
 * copied makes `put()` throw at once and the queue keeps working (Python drops
 * it silently). FIFO per producer; nothing is lost or delivered twice.
 *
 * Under "worker" the queue lives in shared memory that every thread reads and
 * writes directly; under "process" a broker serves it to every descendant.
 *
 * `close()` is per handle (this handle puts and gets no more); `shutdown()` ends
 * the queue for everyone (Python 3.13): puts throw, gets drain what is left, then
 * throw, and `for await` ends.
 *
 * @example Passing a queue to a child
 * ```ts
 * import { Process, Queue } from "polyproc";
 * const q = new Queue<string>();
 * const p = new Process({ target: async (q: Queue<string>) => await q.put("hello"), args: [q] });
 * p.start();
 * console.log(await q.get({ timeout: 10_000 })); // "hello"
 * await p.join();
 * ```
 */
export class Queue<T = unknown> implements AsyncIterable<T> {
  /** @internal */
  protected readonly fifo: Fifo;
  /** @internal */
  protected readonly method: StartMethod;
  #closed = false;

  /**
   * @param maxsize The most items the queue holds; 0 (the default) is unbounded.
   * @throws {TypeError} if maxsize is not a number.
   * @throws {RangeError} if maxsize is negative or not an integer.
   */
  constructor(maxsize = 0, options?: QueueOptions) {
    if (attaching !== undefined) {
      ({ method: this.method, fifo: this.fifo } = attaching);
      return;
    }
    this.method = methodOf(options);
    this.fifo = openFifo(this.method, checkMaxsize(maxsize));
  }

  /** The bound given at construction (0 = unbounded). */
  get maxsize(): number {
    return this.fifo.maxsize;
  }

  /**
   * Adds an item, waiting for room if the queue is full.
   *
   * @throws {TypeError} at once if the item cannot be copied.
   * @throws {ProcessError} if this handle is closed or the queue shut down.
   * @throws {QueueFullError} when full and not blocking, or after the timeout.
   */
  put(item: T, options: QueueWaitOptions = {}): Promise<void> {
    this.#checkOpen("put to");
    const { block, deadline } = deadlineOf(options);
    const prepared = prepare(item, "item");
    const done = this.fifo.put([prepared], block, deadline, options.signal);
    // The common case is already settled: skip the extra promise of a catch handler.
    return done === RESOLVED ? done : done.catch((err) => this.#fail(err));
  }

  /**
   * Removes and returns the first item, waiting for one if the queue is empty.
   *
   * @throws {ProcessError} if this handle is closed, or the queue is shut down and drained.
   * @throws {QueueEmptyError} when empty and not blocking, or after the timeout.
   */
  get(options: QueueWaitOptions = {}): Promise<T> {
    this.#checkOpen("get from");
    if (this.fifo.tryGet !== undefined) {
      // The common case, an item waiting in shared memory, needs no deadline or handler.
      const item = this.fifo.tryGet();
      if (item !== EMPTY && item !== SHUT) return Promise.resolve(item as T);
    }
    const { block, deadline } = deadlineOf(options);
    return (this.fifo.get(block, deadline, options.signal) as Promise<T>).catch((err) => this.#fail(err));
  }

  /** `put(item, { block: false })`. */
  putNowait(item: T): Promise<void> {
    return this.put(item, { block: false });
  }

  /** `get({ block: false })`. */
  getNowait(): Promise<T> {
    return this.get({ block: false });
  }

  /** The approximate number of items (as in Python, it may be stale at once). */
  async qsize(): Promise<number> {
    return await this.fifo.qsize();
  }

  /** Whether the queue is (approximately) empty. */
  async empty(): Promise<boolean> {
    return (await this.fifo.qsize()) === 0;
  }

  /** Whether the queue is (approximately) full. */
  async full(): Promise<boolean> {
    return this.maxsize > 0 && (await this.fifo.qsize()) >= this.maxsize;
  }

  /** This handle puts and gets no more; other handles keep working. Idempotent. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Ends the queue for every handle: puts throw from now on; gets drain what is
   * left (nothing, if `immediate`), then throw; `for await` loops end.
   */
  async shutdown(options: { immediate?: boolean } = {}): Promise<void> {
    await this.fifo.shutdown(options.immediate ?? false);
  }

  /** Yields items until the queue is shut down and drained. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      let item: unknown;
      try {
        item = await this.fifo.get(true);
      } catch (err) {
        if (err instanceof FifoRefused && err.reason === "shutdown") return;
        throw err;
      }
      yield item as T;
    }
  }

  #checkOpen(action: string): void {
    if (this.#closed) throw new ProcessError(`Cannot ${action} the queue: Queue is closed`);
  }

  #fail(err: unknown): never {
    if (!(err instanceof FifoRefused)) throw err;
    switch (err.reason) {
      case "empty":
        throw new QueueEmptyError("Queue is empty");
      case "full":
        throw new QueueFullError("Queue is full");
      case "shutdown":
        throw new ProcessError("Queue is shut down");
    }
  }
}

/**
 * A {@linkcode Queue} that counts unfinished items (Python's `JoinableQueue`):
 * every `put()` adds one, every `taskDone()` removes one, and `join()` waits for none.
 *
 * @example Waiting until every item was processed
 * ```ts
 * import { JoinableQueue } from "polyproc";
 * const q = new JoinableQueue<number>();
 * await q.put(1);
 * await q.get();
 * await q.taskDone();
 * await q.join(); // resolves: nothing unfinished
 * ```
 */
export class JoinableQueue<T = unknown> extends Queue<T> {
  /**
   * Marks one item that a `get()` returned as processed.
   *
   * @throws {RangeError} if called more often than items were put.
   */
  async taskDone(): Promise<void> {
    if (!(await this.fifo.taskDone())) throw new RangeError("taskDone() called too many times");
  }

  /** Resolves when every item put has had its `taskDone()`. */
  join(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.fifo.join(options.signal);
  }
}

/**
 * An unbounded queue with only `put`, `get`, `empty` and `close` (Python's
 * `SimpleQueue`). `put()` copies the item before it returns, so a bad item throws at once.
 *
 * @example
 * ```ts
 * import { SimpleQueue } from "polyproc";
 * const q = new SimpleQueue<string>();
 * await q.put("a");
 * console.log(await q.get()); // "a"
 * ```
 */
export class SimpleQueue<T = unknown> {
  /** @internal */
  readonly queue: Queue<T>;

  constructor(options?: QueueOptions) {
    this.queue = new Queue<T>(0, options);
  }

  /** Adds an item. @throws {TypeError} at once if it cannot be copied. */
  put(item: T): Promise<void> {
    return this.queue.put(item);
  }

  /** Removes and returns the first item, waiting for one. */
  get(options: { signal?: AbortSignal } = {}): Promise<T> {
    return this.queue.get(options);
  }

  /** Whether the queue is (approximately) empty. */
  empty(): Promise<boolean> {
    return this.queue.empty();
  }

  /** This handle puts and gets no more. Idempotent. */
  close(): void {
    this.queue.close();
  }
}

// A queue crosses to a child as its storage; `closed` is per handle and stays behind.
let attaching: { method: StartMethod; fifo: Fifo } | undefined;

function attach<Q>(make: () => Q, state: unknown): Q {
  attaching = rebuildFifo(state);
  try {
    return make();
  } finally {
    attaching = undefined;
  }
}

registerReducer(Queue, "Queue", {
  reduce: (q, transport) => reduceFifo(q["fifo"], q["method"], transport, "Queue"),
  rebuild: (state) => attach(() => new Queue(), state),
});
registerReducer(JoinableQueue, "JoinableQueue", {
  reduce: (q, transport) => reduceFifo(q["fifo"], q["method"], transport, "JoinableQueue"),
  rebuild: (state) => attach(() => new JoinableQueue(), state),
});
registerReducer(SimpleQueue, "SimpleQueue", {
  reduce: (q, transport) => reduceFifo(q.queue["fifo"], q.queue["method"], transport, "SimpleQueue"),
  rebuild: (state) => attach(() => new SimpleQueue(), state),
});
