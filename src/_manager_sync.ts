/**
 * Locks, semaphores, events, conditions and barriers held by a manager's server
 * (Python's SyncManager keeps threading objects there). Ownership is per client
 * connection, as Python's is per server thread, which serves one connection: an
 * RLock held through one connection is not held by another. A blocked call whose
 * client disconnects is withdrawn.
 *
 * @module
 */
import { addBuiltins, callContext, methodsOf, park } from "./_manager_objects.ts";
import { BrokenBarrierError, ProcessError } from "./errors.ts";
import { loadTarget, type TargetSpec } from "./target.ts";

export interface AcquireArgs {
  block?: boolean;
  timeout?: number;
}

function remaining(deadline: number | undefined): number | undefined {
  return deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
}

function deadlineOf(timeout: unknown): number | undefined {
  if (timeout === undefined || timeout === null) return undefined;
  if (typeof timeout !== "number" || !(timeout >= 0)) {
    throw new RangeError(`timeout must be a non-negative number of milliseconds, got ${String(timeout)}`);
  }
  return Date.now() + timeout;
}

/** Semaphore, BoundedSemaphore and Lock (a bounded semaphore of 1, not owner-checked, as Python's). */
export class SemaphoreObject {
  #waiters: (() => void)[] = [];
  constructor(public value = 1, readonly bound?: number, readonly kind = "Semaphore") {
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`${kind} value must be an integer >= 0, got ${value}`);
  }
  acquire(options: AcquireArgs = {}): Promise<boolean> {
    return this.acquireFor(callContext().signal, options?.block ?? true, deadlineOf(options?.timeout));
  }
  async acquireFor(signal: AbortSignal, block: boolean, deadline?: number): Promise<boolean> {
    while (this.value === 0) {
      const left = remaining(deadline);
      if (!block || left === 0 || !(await park(this.#waiters, left, signal))) return false;
    }
    this.value--;
    return true;
  }
  release(): void {
    if (this.bound !== undefined && this.value >= this.bound) {
      throw new RangeError(this.kind === "Lock" ? "Cannot release an unlocked Lock" : `${this.kind} released too many times`);
    }
    this.value++;
    this.#waiters[0]?.();
  }
  locked(): boolean {
    return this.value === 0;
  }
  getValue(): number {
    return this.value;
  }
}

/** RLock: held by one connection, any number of times. */
export class RLockObject {
  owner: object | undefined;
  count = 0;
  #waiters: (() => void)[] = [];
  async acquire(options: AcquireArgs = {}): Promise<boolean> {
    const { caller, signal } = callContext();
    return this.acquireFor(caller, signal, options?.block ?? true, deadlineOf(options?.timeout));
  }
  async acquireFor(caller: object, signal: AbortSignal, block: boolean, deadline?: number, count = 1): Promise<boolean> {
    if (this.owner === caller) {
      this.count += count;
      return true;
    }
    while (this.owner !== undefined) {
      const left = remaining(deadline);
      if (!block || left === 0 || !(await park(this.#waiters, left, signal))) return false;
    }
    this.owner = caller;
    this.count = count;
    return true;
  }
  release(): void {
    this.releaseFor(callContext().caller, false);
  }
  /** Releases once, or fully (`all`); returns how many times the caller held it. */
  releaseFor(caller: object, all: boolean): number {
    if (this.owner !== caller) throw new ProcessError("Cannot release an RLock: it is not held by this connection");
    const held = this.count;
    this.count = all ? 0 : this.count - 1;
    if (this.count === 0) {
      this.owner = undefined;
      this.#waiters[0]?.();
    }
    return held;
  }
  locked(): boolean {
    return this.owner !== undefined;
  }
}

export class EventObject {
  flag = false;
  #waiters: (() => void)[] = [];
  set(): void {
    this.flag = true;
    for (const wake of [...this.#waiters]) wake();
  }
  clear(): void {
    this.flag = false;
  }
  isSet(): boolean {
    return this.flag;
  }
  async wait(timeout?: number): Promise<boolean> {
    const { signal } = callContext();
    const deadline = deadlineOf(timeout);
    while (!this.flag) if (!(await park(this.#waiters, remaining(deadline), signal))) return this.flag;
    return true;
  }
}

/** A signal that never aborts: for waits that must finish (a Condition taking its lock back). */
const NEVER = new AbortController().signal;

/**
 * Condition on a Lock or RLock of the same server (Python's manager Condition(lock)),
 * by default its own RLock. Acquiring the condition acquires that lock itself.
 */
export class ConditionObject {
  #waiters: (() => void)[] = [];
  constructor(readonly lock: SemaphoreObject | RLockObject = new RLockObject()) {
    // A proxy of another manager arrives as a proxy, not as an object held here.
    if (!(lock instanceof RLockObject || (lock instanceof SemaphoreObject && lock.kind === "Lock"))) {
      throw new TypeError("Condition(lock): lock must be a Lock or RLock made by the same manager");
    }
  }
  acquire(options: AcquireArgs = {}): Promise<boolean> {
    return this.lock.acquire(options);
  }
  release(): void {
    this.lock.release();
  }
  /** Python's _is_owned: an RLock knows its owner; a Lock has none, so locked counts as held. */
  #owned(caller: object): boolean {
    return this.lock instanceof RLockObject ? this.lock.owner === caller : this.lock.locked();
  }
  /** Releases the lock fully; how many times the caller held it. */
  #releaseAll(caller: object): number {
    if (this.lock instanceof RLockObject) return this.lock.releaseFor(caller, true);
    this.lock.release();
    return 1;
  }
  async wait(timeout?: number): Promise<boolean> {
    const { caller, signal } = callContext();
    const deadline = deadlineOf(timeout);
    if (!this.#owned(caller)) throw new ProcessError("Cannot wait on a Condition: its lock is not held by this connection");
    const held = this.#releaseAll(caller);
    let woken: boolean;
    try {
      woken = await park(this.#waiters, remaining(deadline), signal);
    } finally {
      // Python reacquires whatever happened; a caller that is gone gets it too, and gives it up at once.
      if (this.lock instanceof RLockObject) await this.lock.acquireFor(caller, NEVER, true, undefined, held);
      else await this.lock.acquireFor(NEVER, true);
      if (signal.aborted) this.#releaseAll(caller);
    }
    return woken;
  }
  notify(n = 1): void {
    if (!this.#owned(callContext().caller)) throw new ProcessError("Cannot notify a Condition: its lock is not held by this connection");
    for (const wake of this.#waiters.slice(0, n)) wake();
  }
  notifyAll(): void {
    this.notify(this.#waiters.length);
  }
}

/**
 * Barrier: `parties` waits release each other; a timeout or abort() breaks it for everyone.
 * `action` runs here, in the server, once per pass before anyone is released; if it
 * throws, the barrier breaks (its caller gets the error, the others BrokenBarrierError).
 */
export class BarrierObject {
  #count = 0;
  #generation = 0;
  #broken = false;
  /** The generation a break happened in: its waiters fail, later ones do not. */
  #brokenGeneration = -1;
  /** While the action runs, the pass is not over: waiters keep waiting, newcomers wait for the next pass. */
  #acting = false;
  #waiters: (() => void)[] = [];
  constructor(readonly parties: number, readonly timeout?: number, readonly action?: () => unknown) {
    if (!Number.isInteger(parties) || parties < 1) throw new RangeError(`parties must be an integer >= 1, got ${parties}`);
  }
  async wait(timeout: number | undefined = this.timeout): Promise<number> {
    const { signal } = callContext();
    const deadline = deadlineOf(timeout);
    // Python holds the barrier's lock during the action, so nobody arrives meanwhile.
    while (this.#acting) await park(this.#waiters, undefined, signal);
    if (this.#broken) throw new BrokenBarrierError("Barrier is broken");
    const index = this.#count++;
    const generation = this.#generation;
    if (this.#count === this.parties) {
      if (this.action !== undefined) {
        this.#acting = true;
        try {
          await this.action();
        } catch (err) {
          this.abort();
          throw err;
        } finally {
          this.#acting = false;
        }
        // abort() or reset() during the action broke this pass.
        if (this.#brokenGeneration === generation) throw new BrokenBarrierError("Barrier is broken");
      }
      this.#count = 0;
      this.#generation++;
      for (const wake of [...this.#waiters]) wake();
      return index;
    }
    while (generation === this.#generation && !this.#broken) {
      let woken: boolean;
      try {
        // A pass whose action runs is complete: no timeout breaks it.
        woken = await park(this.#waiters, this.#acting ? undefined : remaining(deadline), signal);
      } catch (err) {
        this.abort();
        throw err;
      }
      if (!woken && generation === this.#generation && !this.#acting) {
        this.abort();
        break;
      }
    }
    if (this.#brokenGeneration === generation) throw new BrokenBarrierError("Barrier is broken");
    return index;
  }
  abort(): void {
    this.#broken = true;
    this.#brokenGeneration = this.#generation;
    this.#count = 0;
    for (const wake of [...this.#waiters]) wake();
  }
  reset(): void {
    if (this.#count > 0) this.abort();
    this.#broken = false;
    this.#count = 0;
    this.#generation++;
  }
  nWaiting(): number {
    return this.#count;
  }
  broken(): boolean {
    return this.#broken;
  }
  getParties(): number {
    return this.parties;
  }
}

addBuiltins([
  ["Lock", { make: () => new SemaphoreObject(1, 1, "Lock"), exposed: ["acquire", "release", "locked"] }],
  ["RLock", { make: () => new RLockObject(), exposed: ["acquire", "release", "locked"] }],
  ["Semaphore", { make: (value = 1) => new SemaphoreObject(value), exposed: ["acquire", "release", "locked", "getValue"] }],
  [
    "BoundedSemaphore",
    { make: (value = 1) => new SemaphoreObject(value, value, "BoundedSemaphore"), exposed: ["acquire", "release", "locked", "getValue"] },
  ],
  ["Event", { make: () => new EventObject(), exposed: methodsOf(EventObject) }],
  // Its lock argument, a proxy of this server, arrives as the object it names.
  ["Condition", { make: (lock?: RLockObject) => new ConditionObject(lock), exposed: methodsOf(ConditionObject), referents: true }],
  [
    "Barrier",
    {
      // The action arrives as a TargetSpec (a module export or a function's source) and is loaded here.
      make: async (parties: number, timeout?: number, action?: TargetSpec) =>
        new BarrierObject(parties, timeout ?? undefined, action === undefined ? undefined : await loadTarget(action)),
      exposed: methodsOf(BarrierObject),
    },
  ],
]);
