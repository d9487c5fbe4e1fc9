/**
 * Copying values between isolates (Python's pickling).
 *
 * The transport is structured clone (workers) or the runtime's serializer (IPC),
 * which already carry bigint, Map, Set, Date, RegExp and typed arrays. What every
 * runtime drops on its own is wrapped here first: Errors lose their class, own
 * properties and (on Bun) their cause; class instances lose their prototype.
 *
 * @module
 */
import { errorClasses, RemoteError } from "./errors.ts";

const TAG = "__polyproc__";

/** A value ready for the transport, and whether decoding has any work to do. */
export interface Packed {
  v: unknown;
  t: boolean;
}

type Class = abstract new (...args: never[]) => object;

const classesByName = new Map<string, Class>();
const namesByClass = new Map<Class, string>();

/**
 * Where a packed value travels: structured clone to a worker thread, the IPC
 * channel to a subprocess, or bytes (queue items, pipe messages).
 */
export type Transport = "worker" | "process" | "bytes";

/** How a polyproc object (a Queue, a pipe end) crosses: as state that rebuilds a handle to the same object. */
export interface Reducer<T> {
  /** The state to send; throws a TypeError saying why if `obj` cannot go by `transport`. */
  reduce(obj: T, transport: Transport): unknown;
  /** A working handle to the same object, in the receiving isolate. */
  rebuild(state: unknown): T;
}

const reducers = new Map<Class, { kind: string; reducer: Reducer<never> }>();
const reducersByKind = new Map<string, Reducer<unknown>>();

/** Registers how instances of `cls` (exactly that class) cross to other isolates. */
export function registerReducer<T extends object>(cls: abstract new (...args: never[]) => T, kind: string, reducer: Reducer<T>): void {
  reducers.set(cls, { kind, reducer: reducer as Reducer<never> });
  reducersByKind.set(kind, reducer as Reducer<unknown>);
}

// The reducer of a class or of its nearest registered ancestor: a context's bound
// classes (`getContext("process").Lock`) subclass the public ones.
function reducerOf(proto: { constructor: Class } | null): { kind: string; reducer: Reducer<never> } | undefined {
  for (; proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    const handle = reducers.get(proto.constructor);
    if (handle !== undefined) return handle;
  }
  return undefined;
}

/**
 * Lets instances of `cls` cross to children and back as instances of `cls`
 * (Python pickles classes by reference). Call it at module top level, so a child
 * that imports the module registers the class too. Own enumerable fields are
 * copied; the constructor is not run on the receiving side.
 *
 * @param cls The class to register.
 * @param name The name it travels under; defaults to `cls.name`.
 * @throws {TypeError} if `cls` is not a class, or another class has that name.
 *
 * @example Registering a class
 * ```ts
 * import { registerClass } from "polyproc";
 * export class Point { constructor(public x = 0, public y = 0) {} }
 * registerClass(Point);
 * ```
 */
export function registerClass(cls: Class, name: string = cls.name): void {
  if (typeof cls !== "function") throw new TypeError("registerClass() needs a class");
  if (typeof name !== "string" || name === "") throw new TypeError("registerClass() needs a non-empty name");
  const existing = classesByName.get(name);
  if (existing !== undefined && existing !== cls) {
    throw new TypeError(`Cannot register class "${name}": another class is registered under that name`);
  }
  classesByName.set(name, cls);
  namesByClass.set(cls, name);
}

function errorName(err: Error): string {
  const name = err.name;
  return typeof name === "string" && name !== "" ? name : err.constructor?.name ?? "Error";
}

class Encoder {
  tagged = false;
  #seen = new Map<object, unknown>();

  constructor(readonly transport: Transport) {}

  encode(value: unknown, path: string): unknown {
    if (typeof value === "function") {
      throw new TypeError(
        `Cannot copy ${path}: a function cannot be sent to another process or thread (pass it as the target, or use fromModule())`,
      );
    }
    if (typeof value === "symbol") throw new TypeError(`Cannot copy ${path}: a symbol cannot be sent to another process or thread`);
    if (typeof value !== "object" || value === null) return value;
    if (this.#seen.has(value)) return this.#seen.get(value);
    this.#seen.set(value, value);
    const out = this.#encodeObject(value, path);
    this.#seen.set(value, out);
    return out;
  }

  #encodeObject(value: object, path: string): unknown {
    if (value instanceof Error) return this.#encodeError(value, path);
    if (Array.isArray(value)) {
      let copy: unknown[] | undefined;
      for (let i = 0; i < value.length; i++) {
        const raw = value[i];
        // Most items are plain numbers and strings: skip the call and its path string.
        if ((typeof raw !== "object" || raw === null) && typeof raw !== "function" && typeof raw !== "symbol") continue;
        const item = this.encode(raw, `${path}[${i}]`);
        if (item !== value[i]) (copy ??= value.slice())[i] = item;
      }
      return copy ?? value;
    }
    if (value instanceof Map) {
      let changed = false;
      const entries = [...value].map(([k, v], i) => {
        const ek = this.encode(k, `${path} key #${i}`);
        const ev = this.encode(v, `${path}.get(${typeof k === "string" ? JSON.stringify(k) : `key #${i}`})`);
        if (ek !== k || ev !== v) changed = true;
        return [ek, ev] as const;
      });
      return changed ? new Map(entries) : value;
    }
    if (value instanceof Set) {
      let changed = false;
      const items = [...value].map((v, i) => {
        const ev = this.encode(v, `${path} item #${i}`);
        if (ev !== v) changed = true;
        return ev;
      });
      return changed ? new Set(items) : value;
    }
    if (value instanceof WeakMap || value instanceof WeakSet || value instanceof Promise) {
      throw new TypeError(`Cannot copy ${path}: a ${value.constructor.name} cannot be sent to another process or thread`);
    }
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) return this.#encodeFields(value, path);
    const handle = reducerOf(proto);
    if (handle !== undefined) {
      this.tagged = true;
      let state: unknown;
      try {
        state = handle.reducer.reduce(value as never, this.transport);
      } catch (err) {
        throw new TypeError(`Cannot copy ${path}: ${(err as Error).message}`, { cause: err });
      }
      return { [TAG]: "handle", kind: handle.kind, state };
    }
    const className = namesByClass.get(proto.constructor);
    if (className !== undefined) {
      this.tagged = true;
      return { [TAG]: "class", name: className, fields: this.#encodeFields(value, path) };
    }
    // Dates, typed arrays and other built-ins: the transport copies them (or says why not).
    return value;
  }

  #encodeFields(value: object, path: string): object {
    let copy: Record<string, unknown> | undefined;
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const field = this.encode(record[key], `${path}.${key}`);
      if (field !== record[key]) (copy ??= { ...record })[key] = field;
    }
    return copy ?? value;
  }

  #encodeError(err: Error, path: string): unknown {
    this.tagged = true;
    const props: Record<string, unknown> = {};
    for (const key of Object.keys(err)) {
      if (key !== "name" && key !== "message" && key !== "stack" && key !== "cause") {
        props[key] = this.encode((err as unknown as Record<string, unknown>)[key], `${path}.${key}`);
      }
    }
    const ctor = err.constructor as Class;
    return {
      [TAG]: "error",
      name: errorName(err),
      className: namesByClass.get(ctor) ?? (errorClasses.has(ctor.name) ? ctor.name : undefined),
      message: String(err.message),
      stack: typeof err.stack === "string" ? err.stack : undefined,
      hasCause: "cause" in err,
      cause: "cause" in err ? this.encode(err.cause, `${path}.cause`) : undefined,
      errors: err instanceof AggregateError ? this.encode(err.errors, `${path}.errors`) : undefined,
      props,
    };
  }
}

/**
 * Prepares `value` for the transport.
 *
 * @param what Names the value in error messages ("args[0]").
 * @throws {TypeError} naming the path to a part that cannot be copied.
 */
export function pack(value: unknown, what = "value", transport: Transport = "bytes"): Packed {
  const encoder = new Encoder(transport);
  const v = encoder.encode(value, what);
  return { v, t: encoder.tagged };
}

function isPlain(item: unknown): boolean {
  const type = typeof item;
  return (type !== "object" || item === null) && type !== "function" && type !== "symbol";
}

/** {@linkcode pack}, without allocating for a primitive (the common task argument and result). */
export function packFast(value: unknown, what: string, transport: Transport): Packed {
  if (isPlain(value)) return { v: value, t: false };
  if (Array.isArray(value) && value.length <= 16 && value.every(isPlain)) return { v: value, t: false };
  return pack(value, what, transport);
}

/**
 * Like {@linkcode pack}, and also proves the transport can copy the result, so a
 * bad value fails here, before anything is started.
 */
export function packChecked(value: unknown, what = "value", transport: Transport = "bytes"): Packed {
  const packed = pack(value, what, transport);
  try {
    structuredClone(packed.v);
  } catch (err) {
    throw new TypeError(`Cannot copy ${what}: ${(err as Error).message}`, { cause: err });
  }
  return packed;
}

/** Rebuilds what {@linkcode pack} wrapped. Received values are private copies, so this works in place. */
export function unpack(packed: Packed): unknown {
  return packed.t ? decode(packed.v, new Set()) : packed.v;
}

function decode(value: unknown, seen: Set<object>): unknown {
  if (typeof value !== "object" || value === null || seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = decode(value[i], seen);
    return value;
  }
  if (value instanceof Map) {
    const entries = [...value].map(([k, v]) => [decode(k, seen), decode(v, seen)] as const);
    value.clear();
    for (const [k, v] of entries) value.set(k, v);
    return value;
  }
  if (value instanceof Set) {
    const items = [...value].map((v) => decode(v, seen));
    value.clear();
    for (const v of items) value.add(v);
    return value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) record[key] = decode(record[key], seen);
  switch (record[TAG]) {
    case "error":
      return decodeError(record);
    case "class":
      return decodeInstance(record);
    case "handle": {
      const reducer = reducersByKind.get(record.kind as string);
      if (reducer === undefined) throw new TypeError(`Cannot rebuild a ${String(record.kind)}: its module is not loaded here`);
      return reducer.rebuild(record.state);
    }
    default:
      return value;
  }
}

function decodeInstance(record: Record<string, unknown>): object {
  const name = record.name as string;
  const cls = classesByName.get(name);
  if (cls === undefined) {
    throw new TypeError(
      `Cannot rebuild an instance of class "${name}": it is not registered here ` +
        `(call registerClass(${name}) at the top level of the module that defines it)`,
    );
  }
  return Object.assign(Object.create(cls.prototype), record.fields);
}

function decodeError(record: Record<string, unknown>): Error {
  const name = record.name as string;
  const message = record.message as string;
  const className = record.className as string | undefined;
  const registered = className === undefined ? undefined : classesByName.get(className);
  let err: Error;
  if (registered !== undefined) {
    err = Object.create(registered.prototype);
    Object.defineProperty(err, "message", { value: message, writable: true, configurable: true });
  } else if (name === "AggregateError") {
    err = new AggregateError((record.errors as unknown[]) ?? [], message);
  } else {
    const builtin = errorClasses.get(className ?? name);
    err = builtin !== undefined ? new builtin(message) : new RemoteError(name, message);
  }
  if (err.name !== name && !(err instanceof RemoteError)) {
    Object.defineProperty(err, "name", { value: name, writable: true, configurable: true });
  }
  if (record.stack !== undefined) {
    Object.defineProperty(err, "stack", { value: record.stack, writable: true, configurable: true });
  }
  if (record.hasCause) {
    Object.defineProperty(err, "cause", { value: record.cause, writable: true, configurable: true });
  }
  Object.assign(err, record.props);
  return err;
}
