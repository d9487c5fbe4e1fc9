/**
 * Locks, semaphores, events, conditions and barriers shared by processes
 * (Python's `multiprocessing.synchronize`).
 *
 * Under "worker" each object is a few words of shared memory that every thread
 * holding it changes directly with Atomics; under "process" the program's broker
 * serves it to every descendant. One API for both: every method that touches the
 * shared state returns a Promise. Waits never block an event loop; the `*Sync`
 * variants (shared memory only, inside a worker) do.
 *
 * @module
 */
import { childIdentity } from "./_child_state.ts";
import { asyncDispose } from "./_dispose.ts";
import { checkStartMethod, getStartMethod, type StartMethod } from "./_start_method.ts";
import { brokeredSync } from "./_sync_brokered.ts";
import { expired, ShmBarrier, ShmCondition, ShmEvent, type SemKind, ShmSemLock } from "./_sync_shm.ts";
import { ProcessError, StartMethodError, TimeoutError } from "./errors.ts";
import { registerReducer, type Transport } from "./serialization.ts";
import { loadTarget, type TargetLike, type TargetSpec, toSpec } from "./target.ts";

/** Options of the synchronization constructors. */
export interface SyncOptions {
  /** The start method of the children that will share the object; defaults to {@linkcode getStartMethod}(). */
  context?: StartMethod;
}

/** Options of `acquire()`. */
export interface AcquireOptions {
  /** Wait for the lock (default true); false answers at once. */
  block?: boolean;
  /** Milliseconds to wait at most, when blocking; default forever. */
  timeout?: number;
  /** Aborting rejects the wait with `signal.reason` (and gives back a lock that was got meanwhile). */
  signal?: AbortSignal;
}

/** Options of the waits that take a positional timeout (`Event.wait`, `Condition.wait`, `Barrier.wait`). */
export interface WaitOptions {
  /** Aborting rejects the wait with `signal.reason`. */
  signal?: AbortSignal;
}

// ------------------------------------------------------------------ backends

/** What a lock or semaphore does, in shared memory or at the broker. */
export interface SemBackend {
  readonly kind: SemKind;
  acquire(block: boolean, deadline?: number, signal?: AbortSignal): Promise<boolean>;
  acquireSync?(block: boolean, deadline?: number): boolean;
  release(): void | Promise<void>;
  locked(): boolean | Promise<boolean>;
  value(): number | Promise<number>;
  close?(): Promise<void>;
}

/** What an event does, in shared memory or at the broker. */
export interface EventBackend {
  isSet(): boolean | Promise<boolean>;
  set(): void | Promise<void>;
  clear(): void | Promise<void>;
  wait(deadline?: number, signal?: AbortSignal): Promise<boolean>;
  waitSync?(deadline?: number): boolean;
  close?(): Promise<void>;
}

/** What a condition's wait list does (its lock is a {@linkcode SemBackend}). */
export interface ConditionBackend {
  wait(deadline?: number, signal?: AbortSignal): Promise<boolean>;
  notify(n: number): void | Promise<void>;
  close?(): Promise<void>;
}

/** What a barrier does; the party that completes a pass runs `action` first. */
export interface BarrierBackend {
  readonly parties: number;
  wait(action: (() => Promise<void>) | undefined, deadline?: number, signal?: AbortSignal): Promise<number>;
  abort(): void | Promise<void>;
  reset(): void | Promise<void>;
  nWaiting(): number | Promise<number>;
  broken(): boolean | Promise<boolean>;
  close?(): Promise<void>;
}

/** How the "process" start method makes and rebuilds its objects (src/_sync_brokered.ts). */
export interface BrokeredSyncFactory {
  sem(kind: SemKind, value: number): SemBackend;
  event(): EventBackend;
  condition(lock: SemBackend): ConditionBackend;
  barrier(parties: number): BarrierBackend;
  /** What crosses to a child for one of its objects. */
  reduce(backend: object): unknown;
  rebuild(state: unknown): object;
}

// ------------------------------------------------------------------ helpers

function methodOf(options: SyncOptions | undefined): StartMethod {
  const context = options?.context;
  return context === undefined ? getStartMethod() : checkStartMethod(context, "context");
}

function checkTimeout(timeout: unknown, what = "timeout"): number | undefined {
  if (timeout === undefined || timeout === null) return undefined;
  if (typeof timeout !== "number" || Number.isNaN(timeout)) {
    throw new TypeError(`${what} must be a number of milliseconds, got ${String(timeout)}`);
  }
  if (timeout < 0) throw new RangeError(`${what} must be a non-negative number of milliseconds, got ${timeout}`);
  return timeout;
}

/** A performance.now() deadline for `timeout` ms, or undefined for none. */
function deadlineOf(timeout: unknown): number | undefined {
  const ms = checkTimeout(timeout);
  return ms === undefined || ms === Infinity ? undefined : performance.now() + ms;
}

function acquireArgs(options: AcquireOptions): [boolean, number | undefined] {
  const { block = true, timeout } = options;
  if (typeof block !== "boolean") throw new TypeError(`block must be a boolean, got ${typeof block}`);
  return [block, block ? deadlineOf(timeout) : undefined];
}

function checkSyncAllowed(what: string): void {
  if (childIdentity()?.startMethod !== "worker") {
    throw new ProcessError(
      `${what} would block this event loop: it is only allowed inside a "worker" child (use the async method)`,
    );
  }
}

function notShared(what: string): never {
  throw new StartMethodError(`${what} needs shared memory: it exists only for objects of the "worker" start method`);
}

function checkWorkerTransport(transport: Transport, what: string): void {
  if (transport !== "worker") {
    throw new StartMethodError(
      `a ${what} made for the "worker" start method lives in this process's shared memory and can only be ` +
        `passed to "worker" children; make it with { context: "process" } to share it with subprocesses`,
    );
  }
}

// A handle crossing to a child is rebuilt around its backend without running the constructor's checks.
let attaching: { method: StartMethod; backend: unknown; extra?: unknown } | undefined;

function attach<T>(make: () => T, method: StartMethod, backend: unknown, extra?: unknown): T {
  attaching = { method, backend, extra };
  try {
    return make();
  } finally {
    attaching = undefined;
  }
}

// ------------------------------------------------------------------ locks and semaphores

/** Something acquired: disposing of it (`await using`) releases it. */
export interface Held extends AsyncDisposable {
  /** Releases what was acquired (once; later calls do nothing). */
  release(): Promise<void>;
}

/**
 * What Lock, RLock, Semaphore and BoundedSemaphore share (CPython's `SemLock`).
 * Not constructed directly.
 */
export abstract class SemLock {
  /** @internal */
  readonly sem: SemBackend;
  /** The start method this object was made for. */
  readonly startMethod: StartMethod;
  #closed = false;

  /** @internal */
  protected constructor(kind: SemKind, value: number, options: SyncOptions | undefined) {
    if (attaching !== undefined) {
      this.startMethod = attaching.method;
      this.sem = attaching.backend as SemBackend;
      return;
    }
    this.startMethod = methodOf(options);
    this.sem = this.startMethod === "worker" ? new ShmSemLock(kind, value) : brokeredSync.sem(kind, value);
  }

  /**
   * Acquires: takes the lock (a semaphore: one unit), waiting for it unless
   * `block` is false.
   *
   * @returns true if acquired; false if not blocking and unavailable, or after the timeout.
   * @throws {RangeError} for a negative timeout.
   */
  acquire(options: AcquireOptions = {}): Promise<boolean> {
    const [block, deadline] = acquireArgs(options);
    return this.#open().acquire(block, deadline, options.signal);
  }

  /**
   * {@linkcode SemLock.acquire}, blocking this thread in `Atomics.wait`: only in a
   * "worker" child, and only for objects of the "worker" start method.
   *
   * @throws {ProcessError} on a main thread (it would block its event loop).
   * @throws {StartMethodError} for an object of the "process" start method.
   */
  acquireSync(options: Omit<AcquireOptions, "signal"> = {}): boolean {
    const [block, deadline] = acquireArgs(options);
    const sem = this.#open();
    if (sem.acquireSync === undefined) notShared("acquireSync()");
    if (block) checkSyncAllowed("acquireSync()");
    return sem.acquireSync(block, deadline);
  }

  /**
   * Releases the lock (a semaphore: gives a unit back).
   *
   * @throws {RangeError} (the Promise rejects) if a Lock or RLock is not held, or a
   *   BoundedSemaphore would go above its initial value.
   * @throws {ProcessError} for an RLock held by another process or worker.
   */
  async release(): Promise<void> {
    await this.#open().release();
  }

  /**
   * {@linkcode SemLock.release} for objects of the "worker" start method, synchronously.
   *
   * @throws {StartMethodError} for an object of the "process" start method.
   */
  releaseSync(): void {
    const sem = this.#open();
    if (!(sem instanceof ShmSemLock)) notShared("releaseSync()");
    sem.release();
  }

  /** Whether the lock is held (a semaphore: whether no unit is free). */
  async locked(): Promise<boolean> {
    return await this.#open().locked();
  }

  /**
   * Acquires, runs `fn`, and releases however `fn` ends (Python's `with lock:`).
   *
   * @throws {TimeoutError} if the lock could not be acquired (timeout, or `block: false`).
   */
  async withLock<R>(fn: () => R | PromiseLike<R>, options: AcquireOptions = {}): Promise<Awaited<R>> {
    await this.#acquireOrThrow(options);
    try {
      return await fn();
    } finally {
      await this.release();
    }
  }

  /**
   * Acquires and returns a handle that releases on disposal:
   * `await using _ = await lock.hold();` (Python's `with lock:`).
   *
   * @throws {TimeoutError} if the lock could not be acquired (timeout, or `block: false`).
   */
  async hold(options: AcquireOptions = {}): Promise<Held> {
    await this.#acquireOrThrow(options);
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await this.release();
    };
    return { release, [asyncDispose]: release };
  }

  async #acquireOrThrow(options: AcquireOptions): Promise<void> {
    if (!(await this.acquire(options))) {
      throw new TimeoutError(`Could not acquire the ${this.sem.kind}${options.block === false ? " without blocking" : " in time"}`);
    }
  }

  /** Frees the shared object at the broker once every handle is closed; this handle is unusable after. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.sem.close?.();
  }

  #open(): SemBackend {
    if (this.#closed) throw new ProcessError(`${this.sem.kind} is closed`);
    return this.sem;
  }
}

/**
 * A lock shared by processes (Python's `multiprocessing.Lock`): non-recursive, and
 * any process may release it, as in Python.
 *
 * A holder that dies: under "process" the broker releases the lock when the
 * holder's connection ends (its process was killed, or ended without releasing),
 * so nobody waits forever. Under "worker" a worker terminated while holding the
 * lock leaves it held (shared memory cannot tell a thread died): give `acquire()`
 * a timeout where that can happen.
 *
 * @example A shared counter under a lock
 * ```ts
 * import { Lock, Process } from "polyproc";
 * const lock = new Lock();
 * const p = new Process({
 *   target: async (lock: Lock) => await lock.withLock(() => console.log("child holds it")),
 *   args: [lock],
 * });
 * p.start();
 * await lock.withLock(() => console.log("parent holds it"));
 * await p.join();
 * ```
 */
export class Lock extends SemLock {
  constructor(options?: SyncOptions) {
    super("Lock", 1, options);
  }
}

/**
 * A re-entrant lock (Python's `multiprocessing.RLock`): its owner may acquire it
 * again, and must release it as many times.
 *
 * The owner is the isolate (a worker, or a process's main thread: one "thread" in
 * Python's sense), so concurrent async functions of one isolate share ownership.
 * Releasing an RLock another isolate holds is a `ProcessError`; releasing one
 * nobody holds is a `RangeError`.
 *
 * @example
 * ```ts
 * import { RLock } from "polyproc";
 * const lock = new RLock();
 * await lock.acquire();
 * await lock.acquire(); // the owner again: no wait
 * await lock.release();
 * console.log(await lock.locked()); // true: held once more
 * await lock.release();
 * ```
 */
export class RLock extends SemLock {
  constructor(options?: SyncOptions) {
    super("RLock", 1, options);
  }
}

function checkValue(value: unknown): number {
  if (typeof value !== "number") throw new TypeError(`value must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
    throw new RangeError(`value must be a non-negative integer, got ${value}`);
  }
  return value;
}

/**
 * A semaphore shared by processes (Python's `multiprocessing.Semaphore`): a count
 * of free units; `acquire()` takes one, `release()` gives one back, and may raise
 * the count above its initial value.
 *
 * @example At most two at a time
 * ```ts
 * import { Semaphore } from "polyproc";
 * const sem = new Semaphore(2);
 * await sem.acquire();
 * console.log(await sem.getValue()); // 1
 * await sem.release();
 * ```
 */
export class Semaphore extends SemLock {
  /**
   * @param value The initial count (default 1).
   * @throws {RangeError} if value is negative or not an integer.
   */
  constructor(value = 1, options?: SyncOptions) {
    const bounded = new.target === BoundedSemaphore || new.target.prototype instanceof BoundedSemaphore;
    super(bounded ? "BoundedSemaphore" : "Semaphore", attaching ? 0 : checkValue(value), options);
  }

  /** The number of free units (Python's `get_value()`). */
  async getValue(): Promise<number> {
    return await this.sem.value();
  }
}

/**
 * A {@linkcode Semaphore} that may not be released above its initial value
 * (Python's `multiprocessing.BoundedSemaphore`): that release is a `RangeError`.
 *
 * @example
 * ```ts
 * import { BoundedSemaphore } from "polyproc";
 * const sem = new BoundedSemaphore(1);
 * await sem.release().catch((e) => console.log(e instanceof RangeError)); // true
 * ```
 */
export class BoundedSemaphore extends Semaphore {
  /**
   * @param value The initial count, and the most it may reach (default 1).
   * @throws {RangeError} if value is negative or not an integer.
   */
  constructor(value = 1, options?: SyncOptions) {
    super(value, options);
  }
}

// ------------------------------------------------------------------ Event

/**
 * A flag shared by processes (Python's `multiprocessing.Event`): `wait()` waits
 * until some process calls `set()`.
 *
 * @example Releasing a waiting child
 * ```ts
 * import { Event, Process } from "polyproc";
 * const ready = new Event();
 * const p = new Process({ target: async (ready: Event) => console.log(await ready.wait(10_000)), args: [ready] });
 * p.start();
 * await ready.set(); // the child prints true
 * await p.join();
 * ```
 */
export class Event {
  /** @internal */
  readonly backend: EventBackend;
  /** The start method this object was made for. */
  readonly startMethod: StartMethod;

  constructor(options?: SyncOptions) {
    if (attaching !== undefined) {
      this.startMethod = attaching.method;
      this.backend = attaching.backend as EventBackend;
      return;
    }
    this.startMethod = methodOf(options);
    this.backend = this.startMethod === "worker" ? new ShmEvent() : brokeredSync.event();
  }

  /** Whether the flag is set. */
  async isSet(): Promise<boolean> {
    return await this.backend.isSet();
  }

  /** Sets the flag: every waiter wakes, and later waits return at once. */
  async set(): Promise<void> {
    await this.backend.set();
  }

  /** Clears the flag. */
  async clear(): Promise<void> {
    await this.backend.clear();
  }

  /**
   * Waits until the flag is set.
   *
   * @param timeout Milliseconds to wait at most; default forever.
   * @returns Whether the flag is set (false only after the timeout).
   */
  wait(timeout?: number, options: WaitOptions = {}): Promise<boolean> {
    return this.backend.wait(deadlineOf(timeout), options.signal);
  }

  /**
   * {@linkcode Event.wait}, blocking this thread: only in a "worker" child, and only
   * for events of the "worker" start method.
   */
  waitSync(timeout?: number): boolean {
    const deadline = deadlineOf(timeout);
    if (this.backend.waitSync === undefined) notShared("waitSync()");
    if (deadline === undefined || deadline > performance.now()) checkSyncAllowed("waitSync()");
    return this.backend.waitSync(deadline);
  }

  /** Frees the shared object at the broker once every handle is closed. */
  async close(): Promise<void> {
    await this.backend.close?.();
  }
}

// ------------------------------------------------------------------ Condition

/**
 * A condition variable shared by processes (Python's `multiprocessing.Condition`):
 * a lock plus a list of waiters that `notify()` wakes.
 *
 * `wait()` and `notify()` need the lock held by this isolate (else `ProcessError`,
 * Python's "must acquire() condition before using wait()"). The default lock is a
 * new {@linkcode RLock}, as in Python. Under "worker", at most 512 parties wait on
 * one Condition at once.
 *
 * @example Waiting for a state change
 * ```ts
 * import { Condition } from "polyproc";
 * const cond = new Condition();
 * await cond.acquire();
 * console.log(await cond.wait(10)); // false: nobody notified within 10 ms
 * await cond.release();
 * ```
 */
export class Condition {
  /** @internal */
  readonly backend: ConditionBackend;
  #lock: SemLock;
  /** The start method this object was made for. */
  readonly startMethod: StartMethod;

  /**
   * @param lock The lock to use (a Lock or RLock of the same start method); default a new RLock.
   * @throws {TypeError} if `lock` is not a Lock or RLock, or belongs to another start method.
   */
  constructor(lock?: Lock | RLock, options?: SyncOptions) {
    if (attaching !== undefined) {
      this.startMethod = attaching.method;
      this.backend = attaching.backend as ConditionBackend;
      this.#lock = attaching.extra as SemLock;
      return;
    }
    if (lock !== undefined && !(lock instanceof Lock || lock instanceof RLock)) {
      throw new TypeError("Condition(lock): lock must be a Lock or an RLock");
    }
    this.startMethod = lock?.startMethod ?? methodOf(options);
    if (options?.context !== undefined && checkStartMethod(options.context, "context") !== this.startMethod) {
      throw new TypeError(`Condition(lock): the lock was made for "${this.startMethod}", not "${options.context}"`);
    }
    this.#lock = lock ?? new RLock({ context: this.startMethod });
    this.backend = this.startMethod === "worker"
      ? new ShmCondition(this.#lock.sem as ShmSemLock)
      : brokeredSync.condition(this.#lock.sem);
  }

  /** The condition's lock. */
  get lock(): Lock | RLock {
    return this.#lock;
  }

  /** Acquires the condition's lock (see {@linkcode SemLock.acquire}). */
  acquire(options?: AcquireOptions): Promise<boolean> {
    return this.#lock.acquire(options);
  }

  /** Releases the condition's lock (see {@linkcode SemLock.release}). */
  release(): Promise<void> {
    return this.#lock.release();
  }

  /** Runs `fn` holding the condition's lock (Python's `with cond:`). */
  withLock<R>(fn: () => R | PromiseLike<R>, options?: AcquireOptions): Promise<Awaited<R>> {
    return this.#lock.withLock(fn, options);
  }

  /** Acquires the condition's lock and returns a handle that releases it on disposal. */
  hold(options?: AcquireOptions): Promise<Held> {
    return this.#lock.hold(options);
  }

  /**
   * Releases the lock, waits until notified (or the timeout), and re-acquires the
   * lock before it returns, whatever happened.
   *
   * @param timeout Milliseconds to wait at most; default forever.
   * @returns false after the timeout, else true.
   * @throws {ProcessError} if this isolate does not hold the lock.
   */
  wait(timeout?: number, options: WaitOptions = {}): Promise<boolean> {
    return this.backend.wait(deadlineOf(timeout), options.signal);
  }

  /**
   * Waits until `predicate` is truthy (checked first, then after every notify), or
   * the timeout; the lock must be held.
   *
   * @returns The predicate's last value.
   */
  async waitFor<T>(predicate: () => T | PromiseLike<T>, timeout?: number, options: WaitOptions = {}): Promise<T> {
    const deadline = deadlineOf(timeout);
    let result = await predicate();
    while (!result && !expired(deadline)) {
      await this.backend.wait(deadline, options.signal);
      result = await predicate();
    }
    return result;
  }

  /**
   * Wakes up to `n` waiters (the longest waiting first).
   *
   * @throws {ProcessError} if this isolate does not hold the lock.
   */
  async notify(n = 1): Promise<void> {
    if (typeof n !== "number" || !(n >= 0)) throw new RangeError(`n must be a non-negative number, got ${n}`);
    await this.backend.notify(n);
  }

  /** Wakes every waiter. */
  async notifyAll(): Promise<void> {
    await this.backend.notify(Infinity);
  }

  /** Frees the shared object at the broker once every handle is closed (not the lock). */
  async close(): Promise<void> {
    await this.backend.close?.();
  }
}

// ------------------------------------------------------------------ Barrier

/** Options of the Barrier constructor. */
export interface BarrierOptions extends SyncOptions {
  /**
   * Run once per pass, by the party whose arrival completes it, before any party
   * is released: a self-contained function or a {@linkcode fromModule} reference
   * (it runs wherever that party is). If it throws, the barrier breaks.
   */
  action?: TargetLike<[], unknown>;
  /** The default timeout of `wait()`, in milliseconds. */
  timeout?: number;
}

/**
 * A barrier for a fixed number of parties (Python's `multiprocessing.Barrier`):
 * each `wait()` blocks until `parties` waits are pending, then all are released
 * together and the barrier can be used again.
 *
 * A wait that times out breaks the barrier for everyone (Python's rule), as do
 * `abort()` and a failing `action`; `reset()` fails the current waiters and
 * makes it new.
 *
 * @example Two parties in step
 * ```ts
 * import { Barrier, Process } from "polyproc";
 * const barrier = new Barrier(2, { timeout: 10_000 });
 * const p = new Process({ target: async (b: Barrier) => { await b.wait(); }, args: [barrier] });
 * p.start();
 * const index = await barrier.wait(); // 0 or 1: the other party got the other
 * await p.join();
 * ```
 */
export class Barrier {
  /** @internal */
  readonly backend: BarrierBackend;
  /** @internal */
  readonly actionSpec: TargetSpec | undefined;
  /** The default timeout of {@linkcode Barrier.wait} (ms), if any. */
  readonly timeout: number | undefined;
  /** The start method this object was made for. */
  readonly startMethod: StartMethod;
  #action: Promise<(...args: unknown[]) => unknown> | undefined;

  /**
   * @param parties How many waits release each other (an integer >= 1).
   * @throws {RangeError} if parties is not a positive integer, or the timeout is negative.
   * @throws {TypeError} if `action` is not a function or a fromModule() reference.
   */
  constructor(parties: number, options: BarrierOptions = {}) {
    if (attaching !== undefined) {
      const extra = attaching.extra as { action?: TargetSpec; timeout?: number };
      this.startMethod = attaching.method;
      this.backend = attaching.backend as BarrierBackend;
      this.actionSpec = extra.action;
      this.timeout = extra.timeout;
      return;
    }
    if (typeof parties !== "number") throw new TypeError(`parties must be a number, got ${typeof parties}`);
    if (!Number.isInteger(parties) || parties < 1 || parties > 0x7fffffff) {
      throw new RangeError(`parties must be a positive integer, got ${parties}`);
    }
    this.timeout = checkTimeout(options.timeout);
    this.actionSpec = options.action === undefined ? undefined : toSpec(options.action, "action");
    this.startMethod = methodOf(options);
    this.backend = this.startMethod === "worker" ? new ShmBarrier(parties) : brokeredSync.barrier(parties);
  }

  /** The number of parties. */
  get parties(): number {
    return this.backend.parties;
  }

  /**
   * Waits until all parties wait; the last to arrive runs the action first.
   *
   * @param timeout Milliseconds; default the constructor's `timeout`, else forever.
   * @returns This party's index in the pass: distinct per party, 0 to parties - 1.
   * @throws {BrokenBarrierError} if the barrier is broken, aborted or reset meanwhile,
   *   or the timeout passes (which breaks it for every party).
   */
  wait(timeout: number | undefined = this.timeout, options: WaitOptions = {}): Promise<number> {
    const deadline = deadlineOf(timeout);
    const action = this.actionSpec === undefined ? undefined : () => this.#runAction();
    return this.backend.wait(action, deadline, options.signal);
  }

  async #runAction(): Promise<void> {
    const action = await (this.#action ??= loadTarget(this.actionSpec!));
    await action();
  }

  /** Breaks the barrier: current and later waits fail with BrokenBarrierError until `reset()`. */
  async abort(): Promise<void> {
    await this.backend.abort();
  }

  /** Fails the current waiters with BrokenBarrierError and makes the barrier new (unbroken, empty). */
  async reset(): Promise<void> {
    await this.backend.reset();
  }

  /** How many parties wait in the current pass (Python's `n_waiting`). */
  async nWaiting(): Promise<number> {
    return await this.backend.nWaiting();
  }

  /** Whether the barrier is broken. */
  async broken(): Promise<boolean> {
    return await this.backend.broken();
  }

  /** Frees the shared object at the broker once every handle is closed. */
  async close(): Promise<void> {
    await this.backend.close?.();
  }
}

// ------------------------------------------------------------------ crossing to children

interface SemState {
  method: StartMethod;
  kind: SemKind;
  shm?: SharedArrayBuffer;
  remote?: unknown;
}

/** @internal What crosses to a child for a lock or semaphore (also used by sharedctypes.ts). */
export function reduceSem(lock: SemLock, transport: Transport): SemState {
  const sem = lock.sem;
  if (sem instanceof ShmSemLock) {
    checkWorkerTransport(transport, sem.kind);
    return { method: "worker", kind: sem.kind, shm: sem.buffer };
  }
  return { method: "process", kind: sem.kind, remote: brokeredSync.reduce(sem) };
}

const SEM_CLASSES = { Lock, RLock, Semaphore, BoundedSemaphore } as const;

/** @internal The handle a reduced lock or semaphore names, in this isolate. */
export function rebuildSem(state: unknown): SemLock {
  const s = state as SemState;
  const backend = s.shm !== undefined ? new ShmSemLock(s.kind, s.shm) : brokeredSync.rebuild(s.remote);
  const cls = SEM_CLASSES[s.kind] as new () => SemLock;
  return attach(() => new cls(), s.method, backend);
}

for (const [kind, cls] of Object.entries(SEM_CLASSES)) {
  registerReducer(cls as abstract new () => SemLock, kind, { reduce: reduceSem, rebuild: rebuildSem });
}

registerReducer(Event, "Event", {
  reduce(event, transport) {
    const b = event.backend;
    if (b instanceof ShmEvent) {
      checkWorkerTransport(transport, "Event");
      return { method: "worker", shm: b.buffer };
    }
    return { method: "process", remote: brokeredSync.reduce(b) };
  },
  rebuild(state) {
    const s = state as { method: StartMethod; shm?: SharedArrayBuffer; remote?: unknown };
    const backend = s.shm !== undefined ? new ShmEvent(s.shm) : brokeredSync.rebuild(s.remote);
    return attach(() => new Event(), s.method, backend);
  },
});

registerReducer(Condition, "Condition", {
  reduce(cond, transport) {
    const b = cond.backend;
    const lock = reduceSem(cond.lock, transport);
    if (b instanceof ShmCondition) return { method: "worker", lock, shm: b.buffer };
    return { method: "process", lock, remote: brokeredSync.reduce(b) };
  },
  rebuild(state) {
    const s = state as { method: StartMethod; lock: SemState; shm?: SharedArrayBuffer; remote?: unknown };
    const lock = rebuildSem(s.lock);
    const backend = s.shm !== undefined
      ? new ShmCondition(lock.sem as ShmSemLock, s.shm)
      : brokeredSync.rebuild(s.remote);
    return attach(() => new Condition(), s.method, backend, lock);
  },
});

registerReducer(Barrier, "Barrier", {
  reduce(barrier, transport) {
    const b = barrier.backend;
    const extra = { action: barrier.actionSpec, timeout: barrier.timeout };
    if (b instanceof ShmBarrier) {
      checkWorkerTransport(transport, "Barrier");
      return { method: "worker", extra, shm: b.buffer };
    }
    return { method: "process", extra, remote: brokeredSync.reduce(b) };
  },
  rebuild(state) {
    const s = state as { method: StartMethod; extra: unknown; shm?: SharedArrayBuffer; remote?: unknown };
    const backend = s.shm !== undefined ? new ShmBarrier(s.shm) : brokeredSync.rebuild(s.remote);
    return attach(() => new Barrier(0), s.method, backend, s.extra);
  },
});
