/**
 * What a manager server holds for `Manager().list()`, `.dict()`, `.Namespace()`,
 * `.Value()`, `.Array()`, `.Queue()` and `.JoinableQueue()` (Python's SyncManager
 * referents: list, dict, Namespace, Value, queue.Queue). Each public method is
 * what the matching proxy calls; nothing here knows about sockets.
 *
 * @module
 */
import { QueueEmptyError, QueueFullError } from "./errors.ts";

/** Python's `==` for values that arrived as copies: equal primitives, or equal contents. */
export function same(a: unknown, b: unknown): boolean {
  if (a === b || (Number.isNaN(a) && Number.isNaN(b))) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Map || a instanceof Set || a instanceof Date) {
    return a instanceof Date ? a.getTime() === (b as Date).getTime() : same([...a], [...(b as Iterable<unknown>)]);
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length &&
    ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Python's ordering for sort(): numbers by value, strings by code unit, else as strings. */
function compare(a: unknown, b: unknown): number {
  if (typeof a === typeof b && (typeof a === "number" || typeof a === "bigint" || typeof a === "string")) {
    return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
  }
  if (typeof a !== typeof b) throw new TypeError(`'<' not supported between ${typeof a} and ${typeof b}`);
  const [x, y] = [String(a), String(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

/** `list` on the server (Python's ListProxy referent). Negative indices count from the end. */
export class ListObject {
  items: unknown[];
  constructor(init: Iterable<unknown> = []) {
    this.items = [...init];
  }
  #at(i: unknown, insert = false): number {
    if (!Number.isInteger(i)) throw new TypeError(`list index must be an integer, got ${String(i)}`);
    const n = this.items.length;
    const at = (i as number) < 0 ? n + (i as number) : (i as number);
    if (insert) return Math.max(0, Math.min(n, at));
    if (at < 0 || at >= n) throw new RangeError(`list index ${i} out of range (length ${n})`);
    return at;
  }
  append(x: unknown): void {
    this.items.push(x);
  }
  extend(xs: Iterable<unknown>): void {
    for (const x of xs) this.items.push(x);
  }
  get(i: number): unknown {
    return this.items[this.#at(i)];
  }
  set(i: number, v: unknown): void {
    this.items[this.#at(i)] = v;
  }
  delete(i: number): void {
    this.items.splice(this.#at(i), 1);
  }
  length(): number {
    return this.items.length;
  }
  toArray(): unknown[] {
    return this.items.slice();
  }
  slice(start?: number, end?: number): unknown[] {
    return this.items.slice(start, end);
  }
  pop(i = -1): unknown {
    if (this.items.length === 0) throw new RangeError("pop from empty list");
    return this.items.splice(this.#at(i), 1)[0];
  }
  insert(i: number, x: unknown): void {
    this.items.splice(this.#at(i, true), 0, x);
  }
  index(x: unknown, start = 0, end = this.items.length): number {
    for (let i = this.#at(start, true); i < Math.min(end, this.items.length); i++) if (same(this.items[i], x)) return i;
    throw new RangeError("list.index(x): x not in list");
  }
  count(x: unknown): number {
    return this.items.filter((item) => same(item, x)).length;
  }
  remove(x: unknown): void {
    const i = this.items.findIndex((item) => same(item, x));
    if (i < 0) throw new RangeError("list.remove(x): x not in list");
    this.items.splice(i, 1);
  }
  sort(options: { reverse?: boolean } = {}): void {
    this.items.sort(compare);
    if (options.reverse) this.items.reverse();
  }
  reverse(): void {
    this.items.reverse();
  }
  clear(): void {
    this.items.length = 0;
  }
}

/** `dict` on the server (Python's DictProxy referent), on a Map: keys are compared as Map keys. */
export class DictObject {
  map: Map<unknown, unknown>;
  constructor(init?: Map<unknown, unknown> | Record<string, unknown> | Iterable<[unknown, unknown]>) {
    this.map = init === undefined ? new Map() : new Map(entriesOf(init));
  }
  get(k: unknown, fallback?: unknown): unknown {
    return this.map.has(k) ? this.map.get(k) : fallback;
  }
  /** Python's `d[k]`: a missing key is an error. */
  getItem(k: unknown): unknown {
    if (!this.map.has(k)) throw new RangeError(`KeyError: ${String(k)}`);
    return this.map.get(k);
  }
  set(k: unknown, v: unknown): void {
    this.map.set(k, v);
  }
  delete(k: unknown): boolean {
    return this.map.delete(k);
  }
  has(k: unknown): boolean {
    return this.map.has(k);
  }
  keys(): unknown[] {
    return [...this.map.keys()];
  }
  values(): unknown[] {
    return [...this.map.values()];
  }
  items(): [unknown, unknown][] {
    return [...this.map.entries()];
  }
  update(other: Map<unknown, unknown> | Record<string, unknown> | Iterable<[unknown, unknown]>): void {
    for (const [k, v] of entriesOf(other)) this.map.set(k, v);
  }
  pop(k: unknown, ...fallback: unknown[]): unknown {
    if (this.map.has(k)) {
      const v = this.map.get(k);
      this.map.delete(k);
      return v;
    }
    if (fallback.length > 0) return fallback[0];
    throw new RangeError(`KeyError: ${String(k)}`);
  }
  setdefault(k: unknown, v?: unknown): unknown {
    if (!this.map.has(k)) this.map.set(k, v);
    return this.map.get(k);
  }
  clear(): void {
    this.map.clear();
  }
  length(): number {
    return this.map.size;
  }
  toObject(): Record<string, unknown> {
    return Object.fromEntries(this.map as Map<string, unknown>);
  }
  toMap(): Map<unknown, unknown> {
    return new Map(this.map);
  }
}

function entriesOf(init: unknown): Iterable<[unknown, unknown]> {
  if (init instanceof Map) return init;
  if (typeof init === "object" && init !== null && !(Symbol.iterator in init)) return Object.entries(init);
  if (typeof init === "object" && init !== null) return init as Iterable<[unknown, unknown]>;
  throw new TypeError("dict() needs a plain object, a Map or an iterable of [key, value] pairs");
}

/** `Namespace` on the server: named attributes. */
export class NamespaceObject {
  attrs = new Map<string, unknown>();
  constructor(init: Record<string, unknown> = {}) {
    for (const [k, v] of Object.entries(init)) this.attrs.set(k, v);
  }
  get(name: string): unknown {
    return this.attrs.get(name);
  }
  set(name: string, v: unknown): void {
    this.attrs.set(name, v);
  }
  delete(name: string): boolean {
    return this.attrs.delete(name);
  }
  has(name: string): boolean {
    return this.attrs.has(name);
  }
  toObject(): Record<string, unknown> {
    return Object.fromEntries(this.attrs);
  }  /** Python's Namespace repr: strings, arrays and plain objects as JSON, anything else as String() makes it. */
  repr(): string {
    const show = (v: unknown) => {
      const plain = typeof v === "string" || Array.isArray(v) || (typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype);
      try {
        return plain ? JSON.stringify(v) : String(v);
      } catch {
        return String(v); // JSON refuses a bigint inside
      }
    };
    const attrs = [...this.attrs].filter(([k]) => !k.startsWith("_")).map(([k, v]) => `${k}=${show(v)}`);
    return `Namespace(${attrs.join(", ")})`;
  }
}

/** `Value` on the server: one value of any kind (Python's manager ignores the typecode too). */
export class ValueObject {
  constructor(readonly typecode: string, public value: unknown) {}
  get(): unknown {
    return this.value;
  }
  set(v: unknown): void {
    this.value = v;
  }
}

/** `Array` on the server: a fixed-length list. */
export class ArrayObject extends ListObject {
  constructor(readonly typecode: string, init: number | Iterable<unknown>) {
    super(typeof init === "number" ? new Array(init).fill(0) : init);
  }
}

/** Options a server queue receives. */
export interface ServerWaitOptions {
  block?: boolean;
  timeout?: number;
}

/** Who calls a server object's method: its connection, and a signal that aborts when that connection ends. */
export interface CallContext {
  caller: object;
  signal: AbortSignal;
}

const nobody: CallContext = { caller: {}, signal: new AbortController().signal };
let current: CallContext = nobody;

/**
 * Calls `fn` on `self` with `args` as a call from `ctx`. A method reads
 * {@linkcode callContext} before its first await (it runs synchronously until then),
 * so no argument carries it and a client cannot forge it.
 */
export function callAs(ctx: CallContext, fn: (...args: unknown[]) => unknown, self: object, args: unknown[]): unknown {
  current = ctx;
  try {
    return fn.apply(self, args);
  } finally {
    current = nobody;
  }
}

/** The caller of the running method (read it before the method's first await). */
export function callContext(): CallContext {
  return current;
}

/**
 * Waits in `list` until woken (true), the timeout (false) or the caller's signal
 * (rejects): what every blocking server method is made of.
 */
export function park(list: (() => void)[], timeout: number | undefined, signal: AbortSignal): Promise<boolean> {
  if (timeout !== undefined && (typeof timeout !== "number" || !(timeout >= 0))) {
    return Promise.reject(new RangeError(`timeout must be a non-negative number of milliseconds, got ${String(timeout)}`));
  }
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (how: () => void) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      const i = list.indexOf(wake);
      if (i >= 0) list.splice(i, 1);
      how();
    };
    const wake = () => done(() => resolve(true));
    const onAbort = () => done(() => reject(signal.reason));
    if (timeout !== undefined) timer = setTimeout(() => done(() => resolve(false)), timeout);
    signal.addEventListener("abort", onAbort, { once: true });
    list.push(wake);
  });
}

/**
 * `Queue` and `JoinableQueue` on the server (Python's queue.Queue). A waiting get or
 * put whose caller disconnects is withdrawn, so no item is taken for a caller who
 * can no longer receive it.
 */
export class QueueObject {
  items: unknown[] = [];
  #getters: (() => void)[] = [];
  #putters: (() => void)[] = [];
  #joiners: (() => void)[] = [];
  #unfinished = 0;
  constructor(readonly maxsize = 0) {
    if (!Number.isInteger(maxsize) || maxsize < 0) throw new RangeError(`maxsize must be an integer >= 0, got ${maxsize}`);
  }
  #full(): boolean {
    return this.maxsize > 0 && this.items.length >= this.maxsize;
  }
  async put(item: unknown, options: ServerWaitOptions = {}): Promise<void> {
    const { signal } = callContext();
    const { block = true, timeout } = options ?? {};
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    while (this.#full()) {
      const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
      if (!block || left === 0 || !(await park(this.#putters, left, signal))) throw new QueueFullError("Queue is full");
    }
    this.items.push(item);
    this.#unfinished++;
    this.#getters[0]?.();
  }
  async get(options: ServerWaitOptions = {}): Promise<unknown> {
    const { signal } = callContext();
    const { block = true, timeout } = options ?? {};
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    while (this.items.length === 0) {
      const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
      if (!block || left === 0 || !(await park(this.#getters, left, signal))) throw new QueueEmptyError("Queue is empty");
    }
    const item = this.items.shift();
    this.#putters[0]?.();
    // Another getter may find an item left (two puts woke one getter).
    if (this.items.length > 0) this.#getters[0]?.();
    return item;
  }
  putNowait(item: unknown): Promise<void> {
    return this.put(item, { block: false });
  }
  getNowait(): Promise<unknown> {
    return this.get({ block: false });
  }
  qsize(): number {
    return this.items.length;
  }
  empty(): boolean {
    return this.items.length === 0;
  }
  full(): boolean {
    return this.#full();
  }
  taskDone(): void {
    if (this.#unfinished === 0) throw new RangeError("taskDone() called too many times");
    if (--this.#unfinished === 0) for (const j of this.#joiners.splice(0)) j();
  }
  join(): Promise<void> {
    return this.#unfinished === 0 ? Promise.resolve() : new Promise((resolve) => this.#joiners.push(resolve));
  }
}

/** A built-in type: how to make one, and the methods a proxy may call. */
export interface Builtin {
  make: (...args: never[]) => object | Promise<object>;
  exposed: string[];
  /** Arguments that are proxies of this server arrive as the objects they name (a Condition's lock). */
  referents?: boolean;
}

/** The built-in types, by typeid. */
export const BUILTINS: ReadonlyMap<string, Builtin> = new Map<string, Builtin>([
  ["list", { make: (init?: Iterable<unknown>) => new ListObject(init), exposed: methodsOf(ListObject) }],
  ["dict", { make: (init?: Record<string, unknown>) => new DictObject(init), exposed: methodsOf(DictObject) }],
  ["Namespace", { make: (init?: Record<string, unknown>) => new NamespaceObject(init), exposed: methodsOf(NamespaceObject) }],
  ["Value", { make: (tc: string, v: unknown) => new ValueObject(tc, v), exposed: ["get", "set"] }],
  ["Array", { make: (tc: string, init: number | unknown[]) => new ArrayObject(tc, init), exposed: ["get", "set", "length", "toArray", "slice"] }],
  ["Queue", { make: (maxsize?: number) => new QueueObject(maxsize), exposed: methodsOf(QueueObject).filter((m) => m !== "taskDone" && m !== "join") }],
  ["JoinableQueue", { make: (maxsize?: number) => new QueueObject(maxsize), exposed: methodsOf(QueueObject) }],
]);

/** Adds built-in types (the synchronization objects live in their own module). */
export function addBuiltins(entries: [string, Builtin][]): void {
  for (const [typeid, entry] of entries) (BUILTINS as Map<string, typeof entry>).set(typeid, entry);
}

/** The public method names of an object's class chain (Python exposes names not starting with "_"). */
export function methodsOf(cls: { prototype: object } | object): string[] {
  const names = new Set<string>();
  let proto: object | null = typeof cls === "function" ? (cls as { prototype: object }).prototype : Object.getPrototypeOf(cls);
  for (; proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const d = Object.getOwnPropertyDescriptor(proto, name);
      if (name !== "constructor" && !name.startsWith("_") && typeof d?.value === "function") names.add(name);
    }
  }
  if (typeof cls === "object") {
    for (const name of Object.keys(cls)) {
      if (!name.startsWith("_") && typeof (cls as Record<string, unknown>)[name] === "function") names.add(name);
    }
  }
  return [...names];
}
