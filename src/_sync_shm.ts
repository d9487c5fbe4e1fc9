/**
 * The "worker" start method's locks, semaphores, events, conditions and barriers:
 * a few Int32 words in a SharedArrayBuffer that every thread holding the buffer
 * changes directly with Atomics (CPython builds every lock on one `SemLock`; so
 * do we). Nothing hops through another thread.
 *
 * Waits are `Atomics.waitAsync` on the word that must change, so an event loop is
 * never blocked; the `*Sync` methods use `Atomics.wait` and do block.
 *
 * A thread that is terminated while it holds a lock leaves it held: nothing in
 * shared memory can tell that a thread died (as with a killed process holding a
 * Python `SemLock`). Brokered locks ("process") do not have this problem.
 *
 * @module
 */
import { BrokenBarrierError, ProcessError } from "./errors.ts";

// ------------------------------------------------------------------ waiting

// Atomics.waitAsync does not keep an event loop alive (Node, Bun): while any wait
// is pending, one ref'd timer does.
let pendingWaits = 0;
let keepAlive: ReturnType<typeof setInterval> | undefined;

/**
 * Waits, without blocking the event loop, until `i32[index]` is no longer
 * `expected`, until `deadline` (a performance.now() time) or until `signal`
 * aborts (then rejects with its reason). Returns on any of them; callers recheck.
 */
export async function waitWhile(
  i32: Int32Array,
  index: number,
  expected: number,
  deadline?: number,
  signal?: AbortSignal,
): Promise<void> {
  signal?.throwIfAborted();
  const timeout = deadline === undefined ? Infinity : Math.max(0, deadline - performance.now());
  const result = Atomics.waitAsync(i32, index, expected, timeout);
  if (!result.async) return;
  if (pendingWaits++ === 0) keepAlive = setInterval(() => {}, 1 << 30);
  let onAbort = () => {};
  try {
    if (signal === undefined) {
      await result.value;
      return;
    }
    await Promise.race([
      result.value,
      new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
  } catch (err) {
    // This wait stays registered until it is woken: a wake-up meant for one
    // waiter (notify with a count of 1) must not end here, so pass it on.
    result.value.then((r) => r === "ok" && Atomics.notify(i32, index, 1));
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (--pendingWaits === 0) clearInterval(keepAlive);
  }
}

/** Milliseconds from now to `deadline`, for Atomics.wait. */
function remaining(deadline: number | undefined): number {
  return deadline === undefined ? Infinity : Math.max(0, deadline - performance.now());
}

/** Whether `deadline` (performance.now() time) has passed. */
export function expired(deadline: number | undefined): boolean {
  return deadline !== undefined && performance.now() >= deadline;
}

// Conditions and barriers change several words at once under a word-sized mutex,
// held for a few loads and stores only: spinning beats sleeping.
function lockWord(i32: Int32Array, index: number): void {
  for (let spins = 0; Atomics.compareExchange(i32, index, 0, 1) !== 0; spins++) {
    if (spins > 1_000) Atomics.wait(i32, index, 1, 1);
  }
}

function unlockWord(i32: Int32Array, index: number): void {
  Atomics.store(i32, index, 0);
}

// Who holds an RLock (or a Lock, for Condition's check): one random token per
// isolate, kept on globalThis so that two copies of the library agree.
const OWNER_KEY = Symbol.for("polyproc.syncOwner");
function ownerToken(): number {
  const store = globalThis as unknown as { [OWNER_KEY]?: number };
  while (!store[OWNER_KEY]) store[OWNER_KEY] = crypto.getRandomValues(new Int32Array(1))[0];
  return store[OWNER_KEY];
}
const me = ownerToken();

// ------------------------------------------------------------------ SemLock

/** The four kinds of CPython's SemLock. */
export type SemKind = "Lock" | "RLock" | "Semaphore" | "BoundedSemaphore";

// SemLock words.
const VALUE = 0; // units free (a lock: 1 free, 0 held)
const MAXVALUE = 1; // BoundedSemaphore's bound; -1 unbounded
const OWNER = 2; // Lock/RLock: the holder's token, 0 when free
const DEPTH = 3; // RLock: how many times its owner holds it
const WAITERS = 4; // threads waiting on VALUE
const SEM_BYTES = 32;
// A waiter spins this many reads before it sleeps: a holder's critical section is
// usually shorter than a sleep and a wake-up.
const SPINS = 1_000;

/** A semaphore or lock in shared memory. */
export class ShmSemLock {
  readonly buffer: SharedArrayBuffer;
  readonly kind: SemKind;
  readonly #i32: Int32Array;
  readonly #owned: boolean;

  /** A new one (`value` free units), or one more handle to `source`'s buffer. */
  constructor(kind: SemKind, source: number | SharedArrayBuffer) {
    this.kind = kind;
    this.#owned = kind === "Lock" || kind === "RLock";
    this.buffer = typeof source === "number" ? new SharedArrayBuffer(SEM_BYTES) : source;
    this.#i32 = new Int32Array(this.buffer, 0, SEM_BYTES / 4);
    if (typeof source === "number") {
      this.#i32[VALUE] = source;
      this.#i32[MAXVALUE] = kind === "BoundedSemaphore" ? source : -1;
    }
  }

  /** Takes a unit (or, for its owner, one more hold of an RLock) if it can at once. */
  tryAcquire(): boolean {
    const i32 = this.#i32;
    if (this.kind === "RLock" && Atomics.load(i32, OWNER) === me) {
      i32[DEPTH]++;
      return true;
    }
    for (let v = Atomics.load(i32, VALUE); v > 0;) {
      const seen = Atomics.compareExchange(i32, VALUE, v, v - 1);
      if (seen === v) {
        if (this.#owned) {
          Atomics.store(i32, OWNER, me);
          i32[DEPTH] = 1;
        }
        return true;
      }
      v = seen;
    }
    return false;
  }

  /** Takes a unit, waiting (until `deadline`) unless `block` is false; false if it could not. */
  acquire(block: boolean, deadline?: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryAcquire()) return TRUE;
    if (!block) return FALSE;
    return this.#acquireSlowly(deadline, signal);
  }

  async #acquireSlowly(deadline?: number, signal?: AbortSignal): Promise<boolean> {
    const i32 = this.#i32;
    for (;;) {
      for (let i = 0; i < SPINS; i++) if (Atomics.load(i32, VALUE) > 0 && this.tryAcquire()) return true;
      if (expired(deadline)) return false;
      Atomics.add(i32, WAITERS, 1);
      try {
        await waitWhile(i32, VALUE, 0, deadline, signal);
      } finally {
        Atomics.sub(i32, WAITERS, 1);
      }
      if (this.tryAcquire()) return true;
    }
  }

  /** {@linkcode ShmSemLock.acquire}, blocking this thread in `Atomics.wait`. */
  acquireSync(block: boolean, deadline?: number): boolean {
    const i32 = this.#i32;
    if (this.tryAcquire()) return true;
    if (!block) return false;
    for (;;) {
      if (expired(deadline)) return false;
      Atomics.add(i32, WAITERS, 1);
      try {
        Atomics.wait(i32, VALUE, 0, remaining(deadline));
      } finally {
        Atomics.sub(i32, WAITERS, 1);
      }
      if (this.tryAcquire()) return true;
    }
  }

  /**
   * Gives a unit back (an RLock: one hold).
   *
   * @throws {RangeError} for a lock that is not held, or a BoundedSemaphore released too often.
   * @throws {ProcessError} for an RLock held by another process or worker.
   */
  release(): void {
    const i32 = this.#i32;
    switch (this.kind) {
      case "RLock":
        if (Atomics.load(i32, OWNER) !== me) {
          if (Atomics.load(i32, VALUE) > 0) throw new RangeError("Cannot release an RLock that is not held");
          throw new ProcessError("Cannot release an RLock held by another process or worker");
        }
        if (--i32[DEPTH] > 0) return;
        // falls through: the last hold frees it like a Lock
      case "Lock":
        if (Atomics.load(i32, VALUE) !== 0) throw new RangeError(`Cannot release a ${this.kind} that is not held`);
        Atomics.store(i32, OWNER, 0);
        if (Atomics.compareExchange(i32, VALUE, 0, 1) !== 0) {
          throw new RangeError(`Cannot release a ${this.kind} that is not held`);
        }
        break;
      case "Semaphore":
        Atomics.add(i32, VALUE, 1);
        break;
      case "BoundedSemaphore":
        for (let v = Atomics.load(i32, VALUE);;) {
          if (v >= i32[MAXVALUE]) throw new RangeError("BoundedSemaphore released too many times");
          const seen = Atomics.compareExchange(i32, VALUE, v, v + 1);
          if (seen === v) break;
          v = seen;
        }
    }
    if (Atomics.load(i32, WAITERS) > 0) Atomics.notify(i32, VALUE, 1);
  }

  /** Whether no unit is free (a lock: whether anyone holds it). */
  locked(): boolean {
    return Atomics.load(this.#i32, VALUE) === 0;
  }

  /** The free units (Python's `get_value()`). */
  value(): number {
    return Atomics.load(this.#i32, VALUE);
  }

  /** Whether this isolate holds the lock (Condition's check). */
  isMine(): boolean {
    return Atomics.load(this.#i32, VALUE) === 0 && Atomics.load(this.#i32, OWNER) === me;
  }

  /** Gives the lock up whatever its depth (Condition.wait); returns the depth to restore. */
  releaseAll(): number {
    const depth = this.kind === "RLock" ? this.#i32[DEPTH] : 1;
    if (this.kind === "RLock") this.#i32[DEPTH] = 1;
    this.release();
    return depth;
  }

  /** After re-acquiring: the depth {@linkcode ShmSemLock.releaseAll} saved. */
  restore(depth: number): void {
    if (this.kind === "RLock") this.#i32[DEPTH] = depth;
  }
}

const TRUE = Promise.resolve(true);
const FALSE = Promise.resolve(false);

// ------------------------------------------------------------------ Event

const FLAG = 0;

/** An event flag in shared memory. */
export class ShmEvent {
  readonly buffer: SharedArrayBuffer;
  readonly #i32: Int32Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.buffer = buffer;
    this.#i32 = new Int32Array(buffer, 0, 1);
  }

  isSet(): boolean {
    return Atomics.load(this.#i32, FLAG) === 1;
  }

  set(): void {
    Atomics.store(this.#i32, FLAG, 1);
    Atomics.notify(this.#i32, FLAG);
  }

  clear(): void {
    Atomics.store(this.#i32, FLAG, 0);
  }

  /** Whether the flag is set, now or before `deadline`. */
  async wait(deadline?: number, signal?: AbortSignal): Promise<boolean> {
    while (!this.isSet()) {
      if (expired(deadline)) return false;
      await waitWhile(this.#i32, FLAG, 0, deadline, signal);
    }
    return true;
  }

  /** {@linkcode ShmEvent.wait}, blocking this thread. */
  waitSync(deadline?: number): boolean {
    while (!this.isSet()) {
      if (expired(deadline)) return false;
      Atomics.wait(this.#i32, FLAG, 0, remaining(deadline));
    }
    return true;
  }
}

// ------------------------------------------------------------------ Condition

// Condition words: a mutex, the next ticket, then one slot per waiter: its state
// and its ticket. Each waiter sleeps on its own slot, so notify(n) wakes exactly
// the n oldest waiters, and one that times out just frees its slot (Python keeps
// a list of per-waiter locks for the same reason).
const C_MUTEX = 0;
const C_TICKET = 1;
const C_SLOTS = 4;
/** The most threads that can wait on one Condition at once. */
export const MAX_CONDITION_WAITERS = 512;
const FREE = 0;
const WAITING = 1;
const NOTIFIED = 2;

/** The wait list of a Condition in shared memory; the lock is a {@linkcode ShmSemLock}. */
export class ShmCondition {
  readonly buffer: SharedArrayBuffer;
  readonly lock: ShmSemLock;
  readonly #i32: Int32Array;

  constructor(lock: ShmSemLock, buffer?: SharedArrayBuffer) {
    this.lock = lock;
    this.buffer = buffer ?? new SharedArrayBuffer((C_SLOTS + 2 * MAX_CONDITION_WAITERS) * 4);
    this.#i32 = new Int32Array(this.buffer);
  }

  /**
   * Releases the lock, waits for a notify (until `deadline`), re-acquires the lock
   * (whatever happened: as Python does) and says whether it was notified.
   */
  async wait(deadline?: number, signal?: AbortSignal): Promise<boolean> {
    this.#checkMine("wait");
    const i32 = this.#i32;
    const slot = this.#enlist();
    const depth = this.lock.releaseAll();
    let notified = false;
    try {
      while (Atomics.load(i32, slot) !== NOTIFIED && !expired(deadline)) {
        await waitWhile(i32, slot, WAITING, deadline, signal);
      }
    } finally {
      lockWord(i32, C_MUTEX);
      notified = i32[slot] === NOTIFIED;
      Atomics.store(i32, slot, FREE);
      unlockWord(i32, C_MUTEX);
      // Aborted just after a notify: hand the notify to the next waiter.
      if (notified && signal?.aborted) this.notify(1, false);
      await this.lock.acquire(true);
      this.lock.restore(depth);
    }
    return notified;
  }

  #enlist(): number {
    const i32 = this.#i32;
    lockWord(i32, C_MUTEX);
    try {
      for (let slot = C_SLOTS; slot < i32.length; slot += 2) {
        if (i32[slot] !== FREE) continue;
        i32[slot] = WAITING;
        i32[slot + 1] = i32[C_TICKET]++;
        return slot;
      }
    } finally {
      unlockWord(i32, C_MUTEX);
    }
    throw new RangeError(`Too many waiters: a Condition holds at most ${MAX_CONDITION_WAITERS} at once`);
  }

  #checkMine(what: string): void {
    if (!this.lock.isMine()) {
      throw new ProcessError(`Cannot ${what}: acquire() the Condition (its lock) before using ${what}()`);
    }
  }

  /** Wakes the `n` oldest waiters (fewer if fewer wait). */
  notify(n: number, check = true): void {
    if (check) this.#checkMine("notify");
    const i32 = this.#i32;
    const woken: number[] = [];
    lockWord(i32, C_MUTEX);
    try {
      const waiting: number[] = [];
      for (let slot = C_SLOTS; slot < i32.length; slot += 2) if (i32[slot] === WAITING) waiting.push(slot);
      // Tickets may wrap around: compare them by difference.
      waiting.sort((a, b) => (i32[a + 1] - i32[b + 1]) | 0);
      for (const slot of waiting.slice(0, n)) {
        Atomics.store(i32, slot, NOTIFIED);
        woken.push(slot);
      }
    } finally {
      unlockWord(i32, C_MUTEX);
    }
    for (const slot of woken) Atomics.notify(i32, slot);
  }
}

// ------------------------------------------------------------------ Barrier

// Barrier words (all changed under B_MUTEX). GEN changes whenever waiters may
// proceed; PASSES and RESETS tell them why.
const B_MUTEX = 0;
const B_COUNT = 1; // parties arrived in this pass
const B_PASSES = 2;
const B_RESETS = 3;
const B_BROKEN = 4;
const B_GEN = 5;
const B_DRAINING = 6; // the last party runs the action
const B_PARTIES = 7;

/** A barrier's state in shared memory. */
export class ShmBarrier {
  readonly buffer: SharedArrayBuffer;
  readonly #i32: Int32Array;

  constructor(source: number | SharedArrayBuffer) {
    this.buffer = typeof source === "number" ? new SharedArrayBuffer(32) : source;
    this.#i32 = new Int32Array(this.buffer, 0, 8);
    if (typeof source === "number") this.#i32[B_PARTIES] = source;
  }

  get parties(): number {
    return this.#i32[B_PARTIES];
  }

  /**
   * Arrives and waits for the other parties. The last to arrive runs `action`
   * before anyone is released. Returns this party's index (0 for exactly one).
   *
   * @throws {BrokenBarrierError} if the barrier is or gets broken, reset or aborted,
   *   or the deadline passes (which breaks it for everyone).
   */
  async wait(action: (() => Promise<void>) | undefined, deadline?: number, signal?: AbortSignal): Promise<number> {
    const i32 = this.#i32;
    lockWord(i32, B_MUTEX);
    // A pass whose action is running is not joined: wait until it is over.
    while (i32[B_DRAINING] === 1 && i32[B_BROKEN] === 0) {
      const gen = i32[B_GEN];
      unlockWord(i32, B_MUTEX);
      await this.#waitOrBreak(gen, deadline, signal);
      lockWord(i32, B_MUTEX);
    }
    if (i32[B_BROKEN] !== 0) {
      unlockWord(i32, B_MUTEX);
      throw broken();
    }
    const index = i32[B_COUNT]++;
    const passes = i32[B_PASSES];
    const resets = i32[B_RESETS];
    if (i32[B_COUNT] === i32[B_PARTIES]) {
      i32[B_DRAINING] = 1;
      unlockWord(i32, B_MUTEX);
      try {
        await action?.();
      } catch (err) {
        this.abort();
        throw err;
      }
      this.#change(() => {
        i32[B_COUNT] = 0;
        i32[B_DRAINING] = 0;
        i32[B_PASSES]++;
      });
      return index;
    }
    for (;;) {
      const gen = i32[B_GEN];
      unlockWord(i32, B_MUTEX);
      await this.#waitOrBreak(gen, deadline, signal);
      lockWord(i32, B_MUTEX);
      if (i32[B_PASSES] !== passes) {
        unlockWord(i32, B_MUTEX);
        return index;
      }
      if (i32[B_RESETS] !== resets || i32[B_BROKEN] !== 0) {
        unlockWord(i32, B_MUTEX);
        throw broken();
      }
    }
  }

  // Waits for GEN to move; a timeout or an abort breaks the barrier for everyone.
  async #waitOrBreak(gen: number, deadline?: number, signal?: AbortSignal): Promise<void> {
    try {
      await waitWhile(this.#i32, B_GEN, gen, deadline, signal);
    } catch (err) {
      this.abort();
      throw err;
    }
    if (Atomics.load(this.#i32, B_GEN) === gen && expired(deadline)) {
      this.abort();
      throw broken("a party's wait timed out");
    }
  }

  /** Breaks the barrier: every waiter, and every later wait, fails. */
  abort(): void {
    this.#change(() => this.#i32[B_BROKEN] = 1);
  }

  /** Fails the current waiters and makes the barrier new again. */
  reset(): void {
    const i32 = this.#i32;
    this.#change(() => {
      if (i32[B_COUNT] > 0 && i32[B_DRAINING] === 0) i32[B_RESETS]++;
      if (i32[B_DRAINING] === 0) i32[B_COUNT] = 0;
      i32[B_BROKEN] = 0;
    });
  }

  /** Parties waiting in the current pass. */
  nWaiting(): number {
    const i32 = this.#i32;
    return Atomics.load(i32, B_BROKEN) === 0 && Atomics.load(i32, B_DRAINING) === 0 ? Atomics.load(i32, B_COUNT) : 0;
  }

  broken(): boolean {
    return Atomics.load(this.#i32, B_BROKEN) !== 0;
  }

  #change(change: () => void): void {
    const i32 = this.#i32;
    lockWord(i32, B_MUTEX);
    try {
      change();
      i32[B_GEN]++;
    } finally {
      unlockWord(i32, B_MUTEX);
    }
    Atomics.notify(i32, B_GEN);
  }
}

function broken(why = "the barrier is broken"): BrokenBarrierError {
  return new BrokenBarrierError(`Barrier wait failed: ${why}`);
}
