/**
 * Numbers and arrays of numbers in shared memory (Python's `multiprocessing.Value`,
 * `Array`, `RawValue` and `RawArray`).
 *
 * They exist under the "worker" start method, where children are threads of one
 * process: the storage is a SharedArrayBuffer, read and written synchronously.
 * Under "process" the runtimes offer no memory shared between OS processes that
 * Atomics can use, so construction throws a `StartMethodError` naming
 * `Manager().Value` and `Manager().list()`, which work under both methods.
 *
 * @module
 */
import { checkStartMethod, getStartMethod, type StartMethod } from "./_start_method.ts";
import { StartMethodError } from "./errors.ts";
import { registerReducer, type Transport } from "./serialization.ts";
import { Lock, rebuildSem, reduceSem, RLock, type SemLock, type SyncOptions } from "./synchronize.ts";

const ARRAYS = {
  b: Int8Array,
  B: Uint8Array,
  h: Int16Array,
  H: Uint16Array,
  i: Int32Array,
  I: Uint32Array,
  l: BigInt64Array,
  L: BigUint64Array,
  q: BigInt64Array,
  Q: BigUint64Array,
  f: Float32Array,
  d: Float64Array,
} as const;

/**
 * Python's typecodes: `b`/`B` 8-bit, `h`/`H` 16-bit, `i`/`I` 32-bit, `l`/`L` and
 * `q`/`Q` 64-bit (as bigint; Python's `l` is 64-bit on Linux), `f` float32, `d`
 * float64. Upper case is unsigned.
 */
export type Typecode = keyof typeof ARRAYS;

/** The JavaScript type of one element: bigint for the 64-bit integer typecodes, else number. */
export type ElementOf<C extends Typecode> = C extends "l" | "L" | "q" | "Q" ? bigint : number;

/** One of the typed arrays above, over a SharedArrayBuffer. */
interface Storage extends Iterable<number | bigint> {
  [index: number]: number | bigint;
  readonly length: number;
  readonly buffer: ArrayBufferLike;
  set(items: ArrayLike<unknown>): void;
}

function view(typecode: Typecode, buffer: SharedArrayBuffer): Storage {
  return new (ARRAYS[typecode] as unknown as new (buffer: SharedArrayBuffer) => Storage)(buffer);
}

/** Options of Value and SharedArray. */
export interface SharedCtypesOptions extends SyncOptions {
  /**
   * true (default): a new {@linkcode Lock} guards it (`getLock()`); a Lock or RLock:
   * that one; false: none (like {@linkcode RawValue}).
   */
  lock?: boolean | Lock | RLock;
}

function checkTypecode(typecode: unknown): Typecode {
  if (typeof typecode !== "string" || !Object.hasOwn(ARRAYS, typecode)) {
    throw new TypeError(`Unknown typecode ${JSON.stringify(typecode)}: use one of ${Object.keys(ARRAYS).join(" ")}`);
  }
  return typecode as Typecode;
}

function isBig(typecode: Typecode): boolean {
  return ARRAYS[typecode] === BigInt64Array || ARRAYS[typecode] === BigUint64Array;
}

function checkElement(typecode: Typecode, value: unknown, what: string): void {
  const expected = isBig(typecode) ? "bigint" : "number";
  if (typeof value !== expected) {
    throw new TypeError(`${what} of typecode "${typecode}" must be a ${expected}, got ${typeof value}`);
  }
}

function methodOf(options: SyncOptions | undefined): StartMethod {
  const context = options?.context;
  return context === undefined ? getStartMethod() : checkStartMethod(context, "context");
}

function allocate(typecode: Typecode, length: number, options: SyncOptions | undefined, what: string): Storage {
  if (methodOf(options) === "process") {
    throw new StartMethodError(
      `${what} needs memory shared between processes, which the "process" start method does not have on this ` +
        `runtime: use Manager().Value(typecode, value) (or Manager().list() for an array) instead`,
    );
  }
  return view(typecode, new SharedArrayBuffer(length * ARRAYS[typecode].BYTES_PER_ELEMENT));
}

function lockOf(option: SharedCtypesOptions["lock"], context: StartMethod): Lock | RLock | undefined {
  if (option === undefined || option === true) return new Lock({ context });
  if (option === false) return undefined;
  if (option instanceof Lock || option instanceof RLock) return option;
  throw new TypeError("lock must be true, false, a Lock or an RLock");
}

function noLock(what: string): never {
  throw new TypeError(`This ${what} has no lock: it was made with lock: false`);
}

// A handle crossing to a child is rebuilt around its storage without the constructor's checks.
let attaching: { storage: Storage; lock: Lock | RLock | undefined } | undefined;

/**
 * A number in shared memory without a lock (Python's `multiprocessing.RawValue`).
 *
 * `value` is read and written synchronously. Integers wrap like the typed array
 * beneath (`new RawValue("b", 300).value` is 44, as in Python); an unknown typecode
 * is a `TypeError`.
 *
 * @example
 * ```ts
 * import { RawValue } from "polyproc";
 * const v = new RawValue("i", 7);
 * v.value += 1;
 * console.log(v.value); // 8
 * ```
 */
export class RawValue<C extends Typecode = Typecode> {
  /** The typecode given at construction. */
  readonly typecode: C;
  /** @internal */
  readonly storage: Storage;

  /**
   * @param typecode One of `b B h H i I l L q Q f d`.
   * @param value The initial value; default 0 (0n for 64-bit integers).
   * @throws {TypeError} for an unknown typecode, or a value of the wrong type.
   * @throws {StartMethodError} under the "process" start method.
   */
  constructor(typecode: C, value?: ElementOf<C>, options?: SyncOptions) {
    if (attaching !== undefined) {
      this.storage = attaching.storage;
      this.typecode = typecode;
      return;
    }
    this.typecode = checkTypecode(typecode) as C;
    if (value !== undefined) checkElement(this.typecode, value, "value");
    this.storage = allocate(this.typecode, 1, options, new.target.name);
    if (value !== undefined) this.storage[0] = value as never;
  }

  /** The number: bigint for typecodes l L q Q. Setting it wraps like the typed array. */
  get value(): ElementOf<C> {
    return this.storage[0] as ElementOf<C>;
  }

  set value(value: ElementOf<C>) {
    checkElement(this.typecode, value, "value");
    this.storage[0] = value as never;
  }
}

/**
 * A number in shared memory, with a lock (Python's `multiprocessing.Value`).
 *
 * `v.value += 1` is a read and then a write, not one atomic step: hold
 * `getLock()` around it when several processes change the value. The default
 * lock is a plain {@linkcode Lock} (Python's is an RLock, whose per-isolate
 * ownership would let two async functions of one worker hold it at once).
 * Only under the "worker" start method (see the module doc).
 *
 * @example A counter shared by workers
 * ```ts
 * import { Process, Value } from "polyproc";
 * const counter = new Value("i", 0);
 * const add = async (v: Value<"i">) => {
 *   for (let i = 0; i < 100; i++) await v.getLock().withLock(() => { v.value += 1; });
 * };
 * const children = [1, 2].map(() => new Process({ target: add, args: [counter] }));
 * children.forEach((p) => p.start());
 * for (const p of children) await p.join();
 * console.log(counter.value); // 200
 * ```
 */
export class Value<C extends Typecode = Typecode> extends RawValue<C> {
  #lock: Lock | RLock | undefined;

  /**
   * @param typecode One of `b B h H i I l L q Q f d`.
   * @param value The initial value; default 0 (0n for 64-bit integers).
   * @throws {TypeError} for an unknown typecode, a value of the wrong type, or a bad `lock`.
   * @throws {StartMethodError} under the "process" start method.
   */
  constructor(typecode: C, value?: ElementOf<C>, options: SharedCtypesOptions = {}) {
    super(typecode, value, options);
    this.#lock = attaching !== undefined ? attaching.lock : lockOf(options.lock, methodOf(options));
  }

  /** The lock that guards the value. @throws {TypeError} if made with `lock: false`. */
  getLock(): Lock | RLock {
    return this.#lock ?? noLock("Value");
  }
}

/** @internal The lock of a Value or SharedArray, if any. */
function lockOfHandle(handle: Value | SharedArray): Lock | RLock | undefined {
  try {
    return handle.getLock();
  } catch {
    return undefined;
  }
}

/**
 * A fixed-length array of numbers in shared memory, without a lock (Python's
 * `multiprocessing.RawArray`). See {@linkcode SharedArray}.
 *
 * @example
 * ```ts
 * import { RawArray } from "polyproc";
 * const a = new RawArray("d", [1.5, 2.5]);
 * a.set(-1, 3);
 * console.log(a.toArray()); // [1.5, 3]
 * ```
 */
export class RawArray<C extends Typecode = Typecode> implements Iterable<ElementOf<C>> {
  /** The typecode given at construction. */
  readonly typecode: C;
  /** @internal */
  readonly storage: Storage;

  /**
   * @param typecode One of `b B h H i I l L q Q f d`.
   * @param sizeOrInit A length (zero-filled) or the initial elements.
   * @throws {TypeError} for an unknown typecode, or elements of the wrong type.
   * @throws {RangeError} for a negative or fractional length.
   * @throws {StartMethodError} under the "process" start method.
   */
  constructor(typecode: C, sizeOrInit: number | Iterable<ElementOf<C>>, options?: SyncOptions) {
    if (attaching !== undefined) {
      this.storage = attaching.storage;
      this.typecode = typecode;
      return;
    }
    this.typecode = checkTypecode(typecode) as C;
    let items: ElementOf<C>[] | undefined;
    let length: number;
    if (typeof sizeOrInit === "number") {
      if (!Number.isSafeInteger(sizeOrInit) || sizeOrInit < 0) {
        throw new RangeError(`size must be a non-negative integer, got ${sizeOrInit}`);
      }
      length = sizeOrInit;
    } else if (sizeOrInit !== null && typeof (sizeOrInit as Iterable<unknown>)?.[Symbol.iterator] === "function") {
      items = [...sizeOrInit];
      items.forEach((item, i) => checkElement(this.typecode, item, `element ${i}`));
      length = items.length;
    } else {
      throw new TypeError("sizeOrInit must be a length or an iterable of initial elements");
    }
    this.storage = allocate(this.typecode, length, options, new.target.name);
    if (items) this.storage.set(items);
  }

  /** The number of elements. */
  get length(): number {
    return this.storage.length;
  }

  /**
   * Element `index`; negative indexes count from the end, as in Python.
   *
   * @throws {RangeError} for an index beyond either end.
   */
  get(index: number): ElementOf<C> {
    return this.storage[this.#at(index)] as ElementOf<C>;
  }

  /**
   * Sets element `index` (wrapping like the typed array); negative indexes count from the end.
   *
   * @throws {RangeError} for an index beyond either end.
   * @throws {TypeError} for a value of the wrong type.
   */
  set(index: number, value: ElementOf<C>): void {
    const at = this.#at(index);
    checkElement(this.typecode, value, "value");
    this.storage[at] = value as never;
  }

  /** A copy of the elements, as a plain array. */
  toArray(): ElementOf<C>[] {
    return Array.from(this.storage) as ElementOf<C>[];
  }

  /** The elements, read as iteration reaches them. */
  [Symbol.iterator](): Iterator<ElementOf<C>> {
    return (this.storage as Iterable<ElementOf<C>>)[Symbol.iterator]();
  }

  #at(index: number): number {
    if (!Number.isInteger(index)) throw new TypeError(`index must be an integer, got ${index}`);
    const at = index < 0 ? index + this.storage.length : index;
    if (at < 0 || at >= this.storage.length) {
      throw new RangeError(`index ${index} is out of range for a SharedArray of length ${this.storage.length}`);
    }
    return at;
  }
}

/**
 * A fixed-length array of numbers in shared memory, with a lock (Python's
 * `multiprocessing.Array`; renamed so as not to shadow the global `Array`).
 *
 * Made from a length (zero-filled) or from initial elements. Elements are read
 * and written synchronously with `get(i)`/`set(i, v)` (negative indexes count
 * from the end); integers wrap like the typed array beneath. Only under the
 * "worker" start method (see the module doc).
 *
 * @example A child fills a shared array
 * ```ts
 * import { Process, SharedArray } from "polyproc";
 * const squares = new SharedArray("i", 5);
 * const p = new Process({
 *   target: (a: SharedArray<"i">) => { for (let i = 0; i < a.length; i++) a.set(i, i * i); },
 *   args: [squares],
 * });
 * p.start();
 * await p.join();
 * console.log(squares.toArray()); // [0, 1, 4, 9, 16]
 * ```
 */
export class SharedArray<C extends Typecode = Typecode> extends RawArray<C> {
  #lock: Lock | RLock | undefined;

  /**
   * @param typecode One of `b B h H i I l L q Q f d`.
   * @param sizeOrInit A length (zero-filled) or the initial elements.
   * @throws {TypeError} for an unknown typecode, elements of the wrong type, or a bad `lock`.
   * @throws {RangeError} for a negative or fractional length.
   * @throws {StartMethodError} under the "process" start method.
   */
  constructor(typecode: C, sizeOrInit: number | Iterable<ElementOf<C>>, options: SharedCtypesOptions = {}) {
    super(typecode, sizeOrInit, options);
    this.#lock = attaching !== undefined ? attaching.lock : lockOf(options.lock, methodOf(options));
  }

  /** The lock that guards the array. @throws {TypeError} if made with `lock: false`. */
  getLock(): Lock | RLock {
    return this.#lock ?? noLock("SharedArray");
  }
}

// ------------------------------------------------------------------ crossing to children

interface CtypesState {
  typecode: Typecode;
  buffer: SharedArrayBuffer;
  lock: unknown;
}

function reduce(handle: RawValue | RawArray, transport: Transport, what: string): CtypesState {
  if (transport !== "worker") {
    throw new StartMethodError(`a ${what} lives in this process's shared memory: only "worker" children can share it`);
  }
  const lock = handle instanceof Value || handle instanceof SharedArray ? lockOfHandle(handle) : undefined;
  return {
    typecode: handle.typecode,
    buffer: handle.storage.buffer as SharedArrayBuffer,
    lock: lock === undefined ? null : reduceSem(lock, transport),
  };
}

function rebuild<T>(state: unknown, make: (typecode: never) => T): T {
  const s = state as CtypesState;
  const storage = view(s.typecode, s.buffer);
  attaching = { storage, lock: s.lock === null ? undefined : rebuildSem(s.lock) as SemLock as Lock | RLock };
  try {
    return make(s.typecode as never);
  } finally {
    attaching = undefined;
  }
}

registerReducer(RawValue, "RawValue", {
  reduce: (v, transport) => reduce(v, transport, "RawValue"),
  rebuild: (state) => rebuild(state, (tc) => new RawValue(tc)) as RawValue<never>,
});
registerReducer(Value, "Value", {
  reduce: (v, transport) => reduce(v, transport, "Value"),
  rebuild: (state) => rebuild(state, (tc) => new Value(tc)) as Value<never>,
});
registerReducer(RawArray, "RawArray", {
  reduce: (a, transport) => reduce(a, transport, "RawArray"),
  rebuild: (state) => rebuild(state, (tc) => new RawArray(tc, 0)) as RawArray<never>,
});
registerReducer(SharedArray, "SharedArray", {
  reduce: (a, transport) => reduce(a, transport, "SharedArray"),
  rebuild: (state) => rebuild(state, (tc) => new SharedArray(tc, 0)) as SharedArray<never>,
});
