/**
 * A many-producer, many-consumer FIFO of byte records in one growable
 * SharedArrayBuffer: the "worker" start method's queues and pipes. Every thread
 * that holds the buffer reads and writes it directly, so no message hops through
 * another thread, however busy that thread is.
 *
 * All changes happen under a small futex lock, held only for a copy. Waiting is
 * `Atomics.waitAsync` on a sequence word, so an event loop is never blocked.
 *
 * @module
 */

import { CONSTANTS, decodeEncoded, Encoded, type Prepared, Tag, tagOf } from "./_codec.ts";
import { EMPTY, FifoRefused, type FifoRefusal, RESOLVED, SHUT } from "./_fifo.ts";
import { runtime } from "./runtime/detect.ts";

// Header words (Int32). The sequence words change whenever a waiter may proceed.
const LOCK = 0; // 0 free, 1 held, 2 held and contended
const COUNT = 1; // records in the ring
const HEAD = 2; // byte offset of the first record in the data area
const USED = 3; // bytes in use
const CAPACITY = 4; // bytes in the data area
const MAXSIZE = 5; // 0 = unbounded
const UNFINISHED = 6; // put() minus taskDone()
const SHUTDOWN = 7; // 0 open, 1 shut down, 2 shut down immediately
const PUT_SEQ = 8; // bumped on every put and on shutdown: wakes getters
const GET_SEQ = 9; // bumped on every get and on shutdown: wakes putters
const DONE_SEQ = 10; // bumped when UNFINISHED reaches 0: wakes join()
const GETTERS = 11; // threads waiting on PUT_SEQ
const PUTTERS = 12; // threads waiting on GET_SEQ
const WRITERS = 13; // open pipe ends that send into this FIFO
const HEADER_BYTES = 64;

const INITIAL_CAPACITY = 64 * 1024;
const SPINS = 2_000;
const LOCK_SPINS = 20_000;
const MAX_BYTES = 1024 * 1024 * 1024;

// Atomics.waitAsync does not keep an event loop alive (Node, Bun): a waiting
// thread holds one ref'd timer for as long as any wait is pending.
let pendingWaits = 0;
let keepAlive: ReturnType<typeof setInterval> | undefined;

async function waitChange(
  i32: Int32Array,
  index: number,
  seen: number,
  deadline: number | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const timeout = deadline === undefined ? Infinity : Math.max(0, deadline - Date.now());
  if (pendingWaits++ === 0) keepAlive = setInterval(() => {}, 1 << 30);
  try {
    const result = Atomics.waitAsync(i32, index, seen, timeout);
    if (!result.async) return;
    if (signal === undefined) {
      await result.value;
      return;
    }
    signal.throwIfAborted();
    let onAbort: () => void = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      await Promise.race([result.value, aborted]);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  } finally {
    if (--pendingWaits === 0) clearInterval(keepAlive);
  }
}

const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);

function payloadSize(item: Prepared): number {
  if (typeof item === "number") return 8;
  return item instanceof Encoded ? item.bytes.length : 0;
}


// Puts to an unbounded FIFO are buffered here and written in batches, as Python's
// feeder thread does: one lock and one wake-up per batch instead of per item.
const BATCH = 64;
const buffered = new Set<SharedFifo>();
let flushTimer: ReturnType<typeof setTimeout> | undefined;
let exitHooked = false;

/** Writes every buffered put now (before this isolate exits, so that nothing put is lost). */
export function flushAll(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  for (const fifo of buffered) fifo.flush();
}

/** One FIFO; any number of `SharedFifo` objects in any threads may share its buffer. */
export class SharedFifo {
  readonly buffer: SharedArrayBuffer;
  readonly #i32: Int32Array;
  #pending: Prepared[] = [];
  // Fixed-length views, remade when some thread has grown the buffer: element
  // access through length-tracking views of a growable buffer is several times slower.
  #bytes: Uint8Array;
  #view: DataView;

  /** Makes a new FIFO, or attaches to the buffer of an existing one. */
  constructor(source: { maxsize: number } | SharedArrayBuffer) {
    this.buffer = source instanceof SharedArrayBuffer
      ? source
      : new SharedArrayBuffer(HEADER_BYTES + INITIAL_CAPACITY, { maxByteLength: MAX_BYTES });
    this.#i32 = new Int32Array(this.buffer, 0, HEADER_BYTES / 4);
    this.#bytes = new Uint8Array(this.buffer, 0, this.buffer.byteLength);
    this.#view = new DataView(this.buffer, 0, this.buffer.byteLength);
    if (!(source instanceof SharedArrayBuffer)) {
      this.#i32[CAPACITY] = INITIAL_CAPACITY;
      this.#i32[MAXSIZE] = source.maxsize;
    }
  }

  /** 0 = unbounded; fixed at creation. */
  get maxsize(): number {
    return this.#maxsize ??= this.#i32[MAXSIZE];
  }
  #maxsize: number | undefined;

  /** Approximate, as in Python. */
  qsize(): number {
    this.flush();
    return Atomics.load(this.#i32, COUNT);
  }

  isShutdown(): boolean {
    return Atomics.load(this.#i32, SHUTDOWN) !== 0;
  }

  /**
   * Appends items (one put of several keeps them together). Rejects with
   * FifoRefused: "full" (non-blocking, or at the deadline) or "shutdown".
   */
  put(items: Prepared[], block: boolean, deadline?: number, signal?: AbortSignal): Promise<void> {
    if (this.maxsize === 0) {
      // Unbounded: the put cannot wait, so it may resolve once buffered here. The
      // shutdown flag is read once per batch: the header's cache line is the one the
      // consumers write, and reading it on every put makes it bounce between cores.
      if (this.#pending.length === 0 && Atomics.load(this.#i32, SHUTDOWN) !== 0) {
        return Promise.reject(new FifoRefused("shutdown"));
      }
      for (const item of items) this.#pending.push(item);
      if (this.#pending.length >= BATCH) this.flush();
      else if (this.#pending.length === items.length) this.#scheduleFlush();
      return RESOLVED;
    }
    const refusal = this.tryPut(items);
    if (refusal === undefined) return RESOLVED;
    return this.#putSlowly(refusal, items, block, deadline, signal);
  }

  async #putSlowly(
    refusal: FifoRefusal,
    items: Prepared[],
    block: boolean,
    deadline?: number,
    signal?: AbortSignal,
  ): Promise<void> {
    for (;;) {
      if (refusal === "shutdown" || !block) throw new FifoRefused(refusal);
      if (deadline !== undefined && Date.now() >= deadline) throw new FifoRefused("full");
      const seen = Atomics.load(this.#i32, GET_SEQ);
      const again = this.tryPut(items);
      if (again === undefined) return;
      refusal = again;
      Atomics.add(this.#i32, PUTTERS, 1);
      try {
        await waitChange(this.#i32, GET_SEQ, seen, deadline, signal);
      } finally {
        Atomics.sub(this.#i32, PUTTERS, 1);
      }
    }
  }

  /** Writes the buffered puts. (Dropped if the FIFO was shut down meanwhile, as Python's feeder drops them.) */
  flush(): void {
    if (this.#pending.length === 0) return;
    const items = this.#pending;
    this.#pending = [];
    buffered.delete(this);
    this.tryPut(items);
  }

  #scheduleFlush(): void {
    if (!exitHooked) {
      exitHooked = true;
      runtime.onExit(flushAll);
    }
    buffered.add(this);
    flushTimer ??= setTimeout(flushAll, 0);
  }

  /** Appends at once if there is room; returns why not otherwise. */
  tryPut(items: Prepared[]): FifoRefusal | undefined {
    const i32 = this.#i32;
    let needed = 0;
    for (const item of items) needed += 5 + payloadSize(item);
    this.#lock();
    try {
      if (i32[SHUTDOWN] !== 0) return "shutdown";
      const max = i32[MAXSIZE];
      if (max > 0 && i32[COUNT] > 0 && i32[COUNT] + items.length > max) return "full";
      if (i32[USED] + needed > i32[CAPACITY]) this.#grow(i32[USED] + needed);
      for (const item of items) this.#append(item);
      i32[COUNT] += items.length;
      i32[UNFINISHED] += items.length;
      i32[PUT_SEQ]++;
    } finally {
      this.#unlock();
    }
    if (Atomics.load(i32, GETTERS) > 0) Atomics.notify(i32, PUT_SEQ);
    return undefined;
  }

  /**
   * Takes the first item. Rejects with FifoRefused: "empty" (non-blocking, or at
   * the deadline), or "shutdown" once shut down and drained.
   */
  get(block: boolean, deadline?: number, signal?: AbortSignal): Promise<unknown> {
    this.flush();
    const seen = Atomics.load(this.#i32, PUT_SEQ);
    const item = this.tryGet();
    if (item !== EMPTY && item !== SHUT) return Promise.resolve(item);
    return this.#getSlowly(item === SHUT ? "shutdown" : "empty", seen, block, deadline, signal);
  }

  async #getSlowly(
    refusal: FifoRefusal,
    seen: number,
    block: boolean,
    deadline?: number,
    signal?: AbortSignal,
  ): Promise<unknown> {
    for (;;) {
      if (refusal === "shutdown" || !block) throw new FifoRefused(refusal);
      if (deadline !== undefined && Date.now() >= deadline) throw new FifoRefused("empty");
      // A producer that is a little slower than us is the common case: a short spin
      // catches its next item without the cost of sleeping and being woken.
      if (this.#spinUntilChanged(seen)) {
        seen = Atomics.load(this.#i32, PUT_SEQ);
        const item = this.tryGet();
        if (item !== EMPTY && item !== SHUT) return item;
        refusal = item === SHUT ? "shutdown" : "empty";
        continue;
      }
      Atomics.add(this.#i32, GETTERS, 1);
      try {
        await waitChange(this.#i32, PUT_SEQ, seen, deadline, signal);
      } finally {
        Atomics.sub(this.#i32, GETTERS, 1);
      }
      seen = Atomics.load(this.#i32, PUT_SEQ);
      const item = this.tryGet();
      if (item !== EMPTY && item !== SHUT) return item;
      refusal = item === SHUT ? "shutdown" : "empty";
    }
  }

  #spinUntilChanged(seen: number): boolean {
    for (let i = 0; i < SPINS; i++) if (Atomics.load(this.#i32, PUT_SEQ) !== seen) return true;
    return false;
  }

  /** Takes the first item at once, or returns EMPTY or SHUT. */
  tryGet(): unknown {
    const i32 = this.#i32;
    let value: unknown;
    this.#lock();
    try {
      if (i32[COUNT] === 0) return i32[SHUTDOWN] !== 0 ? SHUT : EMPTY;
      value = this.#take();
      i32[COUNT]--;
      i32[GET_SEQ]++;
    } finally {
      this.#unlock();
    }
    if (Atomics.load(i32, PUTTERS) > 0) Atomics.notify(i32, GET_SEQ);
    // Deserializing happens outside the lock: it may be slow, and it may throw.
    return value instanceof Encoded ? decodeEncoded(value.tag, value.bytes) : value;
  }

  /** Whether an item is there now, or arrives before the deadline. */
  async poll(deadline?: number, signal?: AbortSignal): Promise<boolean> {
    this.flush();
    for (;;) {
      const seen = Atomics.load(this.#i32, PUT_SEQ);
      if (Atomics.load(this.#i32, COUNT) > 0) return true;
      if (this.isShutdown()) return false;
      if (deadline !== undefined && Date.now() >= deadline) return false;
      Atomics.add(this.#i32, GETTERS, 1);
      try {
        await waitChange(this.#i32, PUT_SEQ, seen, deadline, signal);
      } finally {
        Atomics.sub(this.#i32, GETTERS, 1);
      }
    }
  }

  /** One more open pipe end sends into this FIFO (made here, or a copy on its way to a child). */
  addWriter(kind: "own" | "lend" | "adopt"): void {
    // A lent copy was counted when it left; taking it over changes nothing.
    if (kind !== "adopt") Atomics.add(this.#i32, WRITERS, 1);
  }

  /** A pipe end that sent into this FIFO closed; the last one ends it (end of file). */
  removeWriter(): void {
    if (Atomics.sub(this.#i32, WRITERS, 1) <= 1) this.shutdown(false);
  }

  /** JoinableQueue.task_done(); false if it was called more often than put(). */
  taskDone(): boolean {
    const i32 = this.#i32;
    this.#lock();
    try {
      if (i32[UNFINISHED] <= 0) return false;
      if (--i32[UNFINISHED] === 0) i32[DONE_SEQ]++;
    } finally {
      this.#unlock();
    }
    Atomics.notify(i32, DONE_SEQ);
    return true;
  }

  /** Resolves when every item put has had its taskDone(). */
  async join(signal?: AbortSignal): Promise<void> {
    this.flush();
    for (;;) {
      const seen = Atomics.load(this.#i32, DONE_SEQ);
      if (Atomics.load(this.#i32, UNFINISHED) === 0) return;
      await waitChange(this.#i32, DONE_SEQ, seen, undefined, signal);
    }
  }

  /** Ends the FIFO for every holder; `immediate` also drops what is left. */
  shutdown(immediate: boolean): void {
    this.flush();
    const i32 = this.#i32;
    this.#lock();
    try {
      i32[SHUTDOWN] = immediate ? 2 : Math.max(i32[SHUTDOWN], 1);
      if (immediate) {
        i32[UNFINISHED] = Math.max(0, i32[UNFINISHED] - i32[COUNT]);
        i32[COUNT] = 0;
        i32[USED] = 0;
        i32[HEAD] = 0;
        if (i32[UNFINISHED] === 0) i32[DONE_SEQ]++;
      }
      i32[PUT_SEQ]++;
      i32[GET_SEQ]++;
    } finally {
      this.#unlock();
    }
    Atomics.notify(i32, PUT_SEQ);
    Atomics.notify(i32, GET_SEQ);
    Atomics.notify(i32, DONE_SEQ);
  }

  #lock(): void {
    const i32 = this.#i32;
    let state = Atomics.compareExchange(i32, LOCK, 0, 1);
    if (state === 0) return this.#refresh();
    // Contended: spin (holders only copy bytes; sleeping and being woken costs far
    // more), reading before trying so the spin does not fight the holder for the line.
    for (let spins = 0; spins < LOCK_SPINS; spins++) {
      if (Atomics.load(i32, LOCK) !== 0) continue;
      state = Atomics.compareExchange(i32, LOCK, 0, 1);
      if (state === 0) return this.#refresh();
    }
    if (state !== 2) state = Atomics.exchange(i32, LOCK, 2);
    while (state !== 0) {
      Atomics.wait(i32, LOCK, 2, 10);
      state = Atomics.exchange(i32, LOCK, 2);
    }
    this.#refresh();
  }

  // Under the lock: follow a growth made by another thread.
  #refresh(): void {
    const length = HEADER_BYTES + this.#i32[CAPACITY];
    if (this.#bytes.length !== length) {
      this.#bytes = new Uint8Array(this.buffer, 0, length);
      this.#view = new DataView(this.buffer, 0, length);
    }
  }

  #unlock(): void {
    if (Atomics.sub(this.#i32, LOCK, 1) !== 1) {
      Atomics.store(this.#i32, LOCK, 0);
      Atomics.notify(this.#i32, LOCK, 1);
    }
  }

  // Under the lock: make room for `needed` bytes, keeping the ring's contents in order.
  #grow(needed: number): void {
    const i32 = this.#i32;
    const old = i32[CAPACITY];
    let capacity = old;
    while (capacity < needed) capacity *= 2;
    if (HEADER_BYTES + capacity > MAX_BYTES) {
      throw new RangeError(`Queue item too large: a queue holds at most ${MAX_BYTES - HEADER_BYTES} bytes at once`);
    }
    if (this.buffer.byteLength < HEADER_BYTES + capacity) this.buffer.grow(HEADER_BYTES + capacity);
    this.#bytes = new Uint8Array(this.buffer, 0, HEADER_BYTES + capacity);
    this.#view = new DataView(this.buffer, 0, HEADER_BYTES + capacity);
    const wrapped = i32[HEAD] + i32[USED] - old;
    if (wrapped > 0) {
      // The part that had wrapped to the start now follows the rest, in the new space.
      this.#bytes.copyWithin(HEADER_BYTES + old, HEADER_BYTES, HEADER_BYTES + wrapped);
    }
    i32[CAPACITY] = capacity;
  }

  // Record: u32 payload length, u8 tag, payload. Either part may wrap around the end.
  #append(item: Prepared): void {
    const i32 = this.#i32;
    const capacity = i32[CAPACITY];
    const size = payloadSize(item);
    let at = (i32[HEAD] + i32[USED]) % capacity;
    if (at + 5 <= capacity) {
      this.#view.setUint32(HEADER_BYTES + at, size);
      this.#bytes[HEADER_BYTES + at + 4] = tagOf(item);
    } else {
      const bytes = this.#bytes;
      for (let k = 0; k < 4; k++) bytes[HEADER_BYTES + (at + k) % capacity] = (size >>> (24 - 8 * k)) & 0xff;
      bytes[HEADER_BYTES + (at + 4) % capacity] = tagOf(item);
    }
    at = (at + 5) % capacity;
    if (typeof item === "number") {
      if (at + 8 <= capacity) {
        this.#view.setFloat64(HEADER_BYTES + at, item);
      } else {
        scratchView.setFloat64(0, item);
        this.#write(scratch, at, capacity);
      }
    } else if (item instanceof Encoded) {
      this.#write(item.bytes, at, capacity);
    }
    i32[USED] += 5 + size;
  }

  #write(src: Uint8Array, at: number, capacity: number): void {
    const first = Math.min(src.length, capacity - at);
    this.#bytes.set(first === src.length ? src : src.subarray(0, first), HEADER_BYTES + at);
    if (first < src.length) this.#bytes.set(src.subarray(first), HEADER_BYTES);
  }

  // Under the lock: removes the first record; a payload comes back still encoded.
  #take(): unknown {
    const i32 = this.#i32;
    const capacity = i32[CAPACITY];
    const head = i32[HEAD];
    const bytes = this.#bytes;
    let size = 0;
    let tag: number;
    if (head + 5 <= capacity) {
      size = this.#view.getUint32(HEADER_BYTES + head);
      tag = bytes[HEADER_BYTES + head + 4];
    } else {
      for (let k = 0; k < 4; k++) size = (size << 8) | bytes[HEADER_BYTES + (head + k) % capacity];
      size >>>= 0;
      tag = bytes[HEADER_BYTES + (head + 4) % capacity];
    }
    const at = (head + 5) % capacity;
    i32[HEAD] = (head + 5 + size) % capacity;
    i32[USED] -= 5 + size;
    if (i32[USED] === 0) i32[HEAD] = 0;
    if (tag === Tag.NUMBER) {
      if (at + 8 <= capacity) return this.#view.getFloat64(HEADER_BYTES + at);
      this.#read(at, scratch, capacity);
      return scratchView.getFloat64(0);
    }
    if (CONSTANTS.has(tag)) return CONSTANTS.get(tag);
    const payload = new Uint8Array(size);
    this.#read(at, payload, capacity);
    return new Encoded(tag, payload);
  }

  #read(at: number, out: Uint8Array, capacity: number): void {
    const length = out.length;
    const first = Math.min(length, capacity - at);
    out.set(this.#bytes.subarray(HEADER_BYTES + at, HEADER_BYTES + at + first));
    if (first < length) out.set(this.#bytes.subarray(HEADER_BYTES, HEADER_BYTES + length - first), first);
  }
}
