/**
 * A binary encoding of structured-cloneable values that Deno, Bun and Node all
 * write and read byte for byte the same (for remote managers: a server on one
 * runtime, a client on another). `node:v8` serialize cannot be that format: on
 * Bun it writes JavaScriptCore's format, which V8 cannot read, and vice versa.
 *
 * What survives is what structured clone keeps (a class instance becomes a
 * plain object of its own enumerable properties, read through any getters),
 * with these differences:
 * - strings travel as UTF-8, so a lone surrogate becomes U+FFFD;
 * - an array keeps its length, a hole becomes `undefined`, and non-index
 *   properties of an array are dropped;
 * - a typed array or DataView carries only the bytes it views: the copy gets a
 *   fresh buffer of exactly that size (byteOffset 0), and two views of one
 *   buffer no longer share it;
 * - an Error keeps name, message, stack and cause (other own properties are
 *   dropped); a name that is not a built-in class's is kept as the own `name`
 *   of a plain Error;
 * - an object of none of the types below whose `Object.prototype.toString` tag
 *   is not `Object` (Promise, WeakMap, SharedArrayBuffer, a class with its own
 *   `Symbol.toStringTag`…) cannot be copied;
 * - a Float16Array decodes only where the runtime has the class (not Node 20).
 *
 * ## Byte format (a wire contract: change it only together with every reader)
 * A value is a tag byte and what the tag says follows. `uint` is an unsigned
 * LEB128 varint (7 bits a byte, low group first, at most 8 bytes, at most
 * 2^53 - 1); `str` is a uint byte length and that much UTF-8; `f64` is an IEEE
 * 754 double, little-endian, NaN always as 7ff8000000000000.
 *
 * | tag   | value                                | followed by                                         |
 * |-------|--------------------------------------|-----------------------------------------------------|
 * | 00 01 | undefined, null                      | nothing                                             |
 * | 02 03 | false, true                          | nothing                                             |
 * | 80–ff | integer 0–127                        | nothing: the integer is tag - 0x80                  |
 * | 04 05 | safe integer ≥ 128, ≤ -1             | uint magnitude                                      |
 * | 06    | any other number                     | f64 (-0, NaN, ±Infinity, fractions, unsafe ints)    |
 * | 07 08 | bigint ≥ 0, < 0                      | uint n, n bytes of the magnitude, low byte first    |
 * | 09    | string                               | str                                                 |
 * | 0a    | an object already written            | uint i: the i-th object tag (0b–14) of the encoding, from 0 |
 * | 0b    | Array                                | uint length, that many values                       |
 * | 0c    | plain object                         | uint count, count × (str key, value)                |
 * | 0d    | Map                                  | uint count, count × (key, value)                    |
 * | 0e    | Set                                  | uint count, count values                            |
 * | 0f    | Date                                 | f64 time (NaN: an invalid date)                     |
 * | 10    | RegExp                               | str source, str flags                               |
 * | 11    | ArrayBuffer                          | uint n, n bytes                                     |
 * | 12    | typed array, DataView                | kind byte, uint n, n bytes                          |
 * | 13    | Boolean, Number, String, BigInt object | the primitive inside, as a value                  |
 * | 14    | Error                                | str name, str message, stack (00 or a string value), then 00, or 01 and the cause |
 *
 * View kinds: 00 Int8Array, 01 Uint8Array, 02 Uint8ClampedArray, 03 Int16Array,
 * 04 Uint16Array, 05 Int32Array, 06 Uint32Array, 07 Float32Array, 08
 * Float64Array, 09 BigInt64Array, 0a BigUint64Array, 0b DataView, 0c Float16Array.
 * Elements go in the host's byte order: little-endian on every platform the
 * three runtimes ship for.
 *
 * Decoding is safe on untrusted bytes: nesting is limited to
 * {@linkcode MAX_DEPTH} objects on both sides (so a crafted input cannot exhaust
 * the stack), and every length is checked against the bytes left before
 * anything is allocated.
 *
 * @module
 */

const UNDEFINED = 0x00, NULL = 0x01, FALSE = 0x02, TRUE = 0x03, INT = 0x04, NEG_INT = 0x05, FLOAT = 0x06;
const BIGINT = 0x07, NEG_BIGINT = 0x08, STRING = 0x09, REF = 0x0a, ARRAY = 0x0b, OBJECT = 0x0c, MAP = 0x0d;
const SET = 0x0e, DATE = 0x0f, REGEXP = 0x10, ARRAY_BUFFER = 0x11, VIEW = 0x12, WRAPPER = 0x13, ERROR = 0x14;
const SMALL_INT = 0x80;

/** How many objects deep a value may nest (encoding and decoding alike). */
export const MAX_DEPTH = 1000;

type ViewClass = { new (buffer: ArrayBuffer): ArrayBufferView; readonly BYTES_PER_ELEMENT?: number };

/** A view's kind byte is its index here (the module doc lists them); Float16Array only where the runtime has it. */
const VIEWS: readonly (ViewClass | undefined)[] = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView,
  (globalThis as unknown as { Float16Array?: ViewClass }).Float16Array,
];
const VIEW_KINDS = new Map(VIEWS.map((cls, kind) => [cls?.name, kind]));
// Reads a typed array's internal class name (a Node Buffer says "Uint8Array"); undefined for a DataView.
const typedArrayName = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Int8Array.prototype), Symbol.toStringTag)!
  .get as (this: ArrayBufferView) => string | undefined;

/** The classes an Error is rebuilt as, by name (structured clone's list). */
const ERRORS = new Map<string, ErrorConstructor>(
  [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError].map((cls) => [cls.name, cls]),
);

const NAN_BYTES = [0, 0, 0, 0, 0, 0, 0xf8, 0x7f];
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const textEncoder = new TextEncoder();
// ignoreBOM: a string that starts with U+FEFF must keep it.
const textDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

function uintSize(n: number): number {
  let size = 1;
  for (; n >= 0x80; size++) n = Math.floor(n / 0x80);
  return size;
}

/** Thrown inside the encoder; each container adds its step of the path as it unwinds. */
class Uncopyable {
  path: string[] = [];
  constructor(readonly reason: string) {}
}

function addStep(err: unknown, step: string): unknown {
  if (err instanceof Uncopyable) err.path.push(step);
  return err;
}

const indexStep = (i: number) => `[${i}]`;
const itemStep = (i: number) => ` item #${i}`;

class Encoder {
  buf = new Uint8Array(64);
  pos = 0;
  #view = new DataView(this.buf.buffer);
  #refs = new Map<object, number>();
  #depth = 0;

  #reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
    this.#view = new DataView(grown.buffer);
  }

  #byte(b: number): void {
    this.#reserve(1);
    this.buf[this.pos++] = b;
  }

  #uint(n: number): void {
    this.#reserve(8);
    for (; n >= 0x80; n = Math.floor(n / 0x80)) this.buf[this.pos++] = (n % 0x80) | 0x80;
    this.buf[this.pos++] = n;
  }

  #float(x: number): void {
    this.#reserve(8);
    // setFloat64 may write any NaN bit pattern; the bytes must not depend on the runtime.
    if (x !== x) this.buf.set(NAN_BYTES, this.pos);
    else this.#view.setFloat64(this.pos, x, true);
    this.pos += 8;
  }

  #bytes(bytes: Uint8Array): void {
    this.#uint(bytes.length);
    this.#reserve(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  #string(s: string): void {
    const n = s.length;
    // Room for the worst case (3 bytes per UTF-16 unit); the length is written once the real size is known.
    this.#reserve(n * 3 + 8);
    const head = uintSize(n * 3), start = this.pos + head;
    let i = 0;
    // Short ASCII strings (most keys) are copied by hand: cheaper than a call into encodeInto.
    if (n < 64) {
      for (let c; i < n && (c = s.charCodeAt(i)) < 0x80; i++) this.buf[start + i] = c;
    }
    const len = i === n ? n : textEncoder.encodeInto(s, this.buf.subarray(start)).written;
    if (uintSize(len) !== head) this.buf.copyWithin(this.pos + uintSize(len), start, start + len);
    this.#uint(len);
    this.pos += len;
  }

  value(v: unknown): void {
    switch (typeof v) {
      case "number":
        if (!Number.isSafeInteger(v) || (v === 0 && 1 / v < 0)) {
          this.#byte(FLOAT);
          this.#float(v);
        } else if (v >= 0 && v < 0x80) this.#byte(SMALL_INT | v);
        else {
          this.#byte(v < 0 ? NEG_INT : INT);
          this.#uint(Math.abs(v));
        }
        return;
      case "string":
        this.#byte(STRING);
        return this.#string(v);
      case "boolean":
        return this.#byte(v ? TRUE : FALSE);
      case "undefined":
        return this.#byte(UNDEFINED);
      case "bigint": {
        this.#byte(v < 0n ? NEG_BIGINT : BIGINT);
        const hex = v === 0n ? "" : (v < 0n ? -v : v).toString(16);
        const n = (hex.length + 1) >> 1;
        this.#uint(n);
        this.#reserve(n);
        for (let end = hex.length; end > 0; end -= 2) this.buf[this.pos++] = parseInt(hex.slice(Math.max(0, end - 2), end), 16);
        return;
      }
      case "object":
        return v === null ? this.#byte(NULL) : this.#object(v);
    }
    throw new Uncopyable(`a ${typeof v}`);
  }

  #object(o: object): void {
    const ref = this.#refs.get(o);
    if (ref !== undefined) {
      this.#byte(REF);
      return this.#uint(ref);
    }
    this.#refs.set(o, this.#refs.size);
    if (++this.#depth > MAX_DEPTH) throw new Uncopyable(`nested too deeply (more than ${MAX_DEPTH} levels)`);
    const proto = Object.getPrototypeOf(o);
    if (Array.isArray(o)) this.#items(ARRAY, o, indexStep);
    else if (proto === Object.prototype || proto === null) this.#fields(o as Record<string, unknown>);
    else this.#builtin(o);
    this.#depth--;
  }

  /** A count and the items; `step` names item `i` in an error's path (only if one is thrown). */
  #items(tag: number, items: readonly unknown[], step: (i: number) => string, count = items.length): void {
    this.#byte(tag);
    this.#uint(count);
    let i = 0;
    try {
      for (; i < items.length; i++) this.value(items[i]);
    } catch (err) {
      throw addStep(err, step(i));
    }
  }

  #fields(o: Record<string, unknown>): void {
    const keys = Object.keys(o);
    this.#byte(OBJECT);
    this.#uint(keys.length);
    let key = "";
    try {
      for (key of keys) {
        this.#string(key);
        this.value(o[key]);
      }
    } catch (err) {
      throw addStep(err, /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`);
    }
  }

  #builtin(o: object): void {
    if (o instanceof Map) {
      // Keys and values alternate: item 2i is key #i, item 2i + 1 its value.
      const flat: unknown[] = [];
      for (const [key, value] of o) flat.push(key, value);
      const step = (i: number) => {
        const key = flat[i & ~1], n = i >> 1;
        return i & 1 ? `.get(${typeof key === "string" ? JSON.stringify(key) : `key #${n}`})` : ` key #${n}`;
      };
      return this.#items(MAP, flat, step, o.size);
    }
    if (o instanceof Set) return this.#items(SET, [...o], itemStep);
    if (o instanceof Date) {
      this.#byte(DATE);
      return this.#float(o.getTime());
    }
    if (o instanceof RegExp) {
      this.#byte(REGEXP);
      this.#string(o.source);
      return this.#string(o.flags);
    }
    if (o instanceof ArrayBuffer) {
      this.#byte(ARRAY_BUFFER);
      return this.#bytes(new Uint8Array(o));
    }
    if (ArrayBuffer.isView(o)) {
      this.#byte(VIEW);
      this.#byte(VIEW_KINDS.get(typedArrayName.call(o) ?? "DataView")!);
      return this.#bytes(new Uint8Array(o.buffer, o.byteOffset, o.byteLength));
    }
    if (o instanceof Error) {
      this.#byte(ERROR);
      this.#string(typeof o.name === "string" ? o.name : "Error");
      this.#string(String(o.message));
      this.value(typeof o.stack === "string" ? o.stack : undefined);
      if (!("cause" in o)) return this.#byte(0);
      this.#byte(1);
      try {
        return this.value(o.cause);
      } catch (err) {
        throw addStep(err, ".cause");
      }
    }
    if (o instanceof Boolean || o instanceof Number || o instanceof String || o instanceof BigInt) {
      this.#byte(WRAPPER);
      return this.value(o.valueOf());
    }
    const tag = Object.prototype.toString.call(o).slice(8, -1);
    // A class instance: structured clone copies its own enumerable properties.
    if (tag === "Object") return this.#fields(o as Record<string, unknown>);
    throw new Uncopyable(`a ${tag}`);
  }
}

/**
 * Bytes for `value`, the same on Deno, Bun and Node (the module doc gives the format).
 *
 * @param what Names the value in error messages.
 * @returns A fresh Uint8Array of exactly the encoding's size.
 * @throws {TypeError} naming the path of a part that cannot be copied
 * (`Cannot copy value.a[2]: a function`), or if nesting passes {@linkcode MAX_DEPTH}.
 */
export function encodePortable(value: unknown, what = "value"): Uint8Array {
  const encoder = new Encoder();
  try {
    encoder.value(value);
  } catch (err) {
    if (!(err instanceof Uncopyable)) throw err;
    const steps = err.path.reverse();
    const path = steps.length > 20 ? [...steps.slice(0, 10), "…", ...steps.slice(-10)] : steps;
    throw new TypeError(`Cannot copy ${what}${path.join("")}: ${err.reason}`);
  }
  return encoder.buf.slice(0, encoder.pos);
}

class Decoder {
  pos = 0;
  #depth = 0;
  #refs: unknown[] = [];
  #view: DataView;

  constructor(readonly bytes: Uint8Array) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(why: string): never {
    throw new TypeError(`Cannot decode portable bytes (at byte ${this.pos}): ${why}`);
  }

  #byte(): number {
    if (this.pos >= this.bytes.length) this.fail("truncated");
    return this.bytes[this.pos++];
  }

  #uint(): number {
    let n = 0;
    for (let scale = 1, i = 0;; scale *= 0x80, i++) {
      const b = this.#byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) break;
      if (i === 7) this.fail("integer too long");
    }
    if (n > Number.MAX_SAFE_INTEGER) this.fail("integer too large");
    return n;
  }

  /** A length, checked against the bytes left (each counted thing takes at least one). */
  #length(): number {
    const n = this.#uint();
    if (n > this.bytes.length - this.pos) this.fail(`length ${n} runs past the end`);
    return n;
  }

  #take(n: number): Uint8Array {
    return this.bytes.subarray(this.pos, (this.pos += n));
  }

  #float(): number {
    if (this.bytes.length - this.pos < 8) this.fail("truncated");
    const x = this.#view.getFloat64(this.pos, true);
    this.pos += 8;
    return x;
  }

  #string(): string {
    const n = this.#length();
    const bytes = this.bytes, start = this.pos;
    this.pos += n;
    // Short ASCII strings (most keys) by hand: cheaper than a call into TextDecoder.
    if (n < 32) {
      let s = "";
      for (let i = start; i < start + n; i++) {
        const c = bytes[i];
        if (c >= 0x80) return textDecoder.decode(bytes.subarray(start, start + n));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return textDecoder.decode(bytes.subarray(start, start + n));
  }

  value(): unknown {
    const tag = this.#byte();
    if (tag >= SMALL_INT) return tag - SMALL_INT;
    switch (tag) {
      case UNDEFINED:
        return undefined;
      case NULL:
        return null;
      case FALSE:
        return false;
      case TRUE:
        return true;
      case INT:
        return this.#uint();
      case NEG_INT:
        return -this.#uint();
      case FLOAT:
        return this.#float();
      case BIGINT:
      case NEG_BIGINT: {
        const magnitude = this.#take(this.#length());
        let hex = "0x0";
        for (let i = magnitude.length - 1; i >= 0; i--) hex += HEX[magnitude[i]];
        return tag === BIGINT ? BigInt(hex) : -BigInt(hex);
      }
      case STRING:
        return this.#string();
      case REF: {
        const index = this.#uint();
        if (index >= this.#refs.length) this.fail(`reference to object #${index}, not yet seen`);
        return this.#refs[index];
      }
    }
    if (++this.#depth > MAX_DEPTH) this.fail(`nested too deeply (more than ${MAX_DEPTH} levels)`);
    const object = this.#object(tag);
    this.#depth--;
    return object;
  }

  #object(tag: number): unknown {
    const refs = this.#refs;
    switch (tag) {
      case ARRAY: {
        const a: unknown[] = [];
        refs.push(a);
        for (let n = this.#length(); n > 0; n--) a.push(this.value());
        return a;
      }
      case OBJECT: {
        const o: Record<string, unknown> = {};
        refs.push(o);
        for (let n = this.#length(); n > 0; n--) {
          const key = this.#string();
          const value = this.value();
          // Assigning "__proto__" would set the prototype instead of making a property.
          if (key === "__proto__") Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
          else o[key] = value;
        }
        return o;
      }
      case MAP: {
        const m = new Map();
        refs.push(m);
        for (let n = this.#length(); n > 0; n--) m.set(this.value(), this.value());
        return m;
      }
      case SET: {
        const s = new Set();
        refs.push(s);
        for (let n = this.#length(); n > 0; n--) s.add(this.value());
        return s;
      }
      case DATE:
        return pushed(refs, new Date(this.#float()));
      case REGEXP: {
        const source = this.#string(), flags = this.#string();
        try {
          return pushed(refs, new RegExp(source, flags));
        } catch (err) {
          return this.fail(`bad RegExp: ${(err as Error).message}`);
        }
      }
      case ARRAY_BUFFER:
        return pushed(refs, this.#take(this.#length()).slice().buffer);
      case VIEW: {
        const cls = VIEWS[this.#byte()] ?? this.fail(`typed array kind ${this.bytes[this.pos - 1]} is unknown here`);
        const bytes = this.#take(this.#length());
        if (bytes.length % (cls.BYTES_PER_ELEMENT ?? 1) !== 0) this.fail(`${bytes.length} bytes do not fill a ${cls.name}`);
        return pushed(refs, new cls(bytes.slice().buffer));
      }
      case WRAPPER: {
        const index = refs.push(undefined) - 1;
        const inner = this.value();
        const type = typeof inner;
        if (type !== "boolean" && type !== "number" && type !== "string" && type !== "bigint") this.fail(`cannot wrap a ${type}`);
        return (refs[index] = Object(inner));
      }
      case ERROR:
        return this.#error();
    }
    return this.fail(`unknown tag 0x${HEX[tag]}`);
  }

  #error(): Error {
    const name = this.#string(), message = this.#string();
    const err = new (ERRORS.get(name) ?? Error)(message);
    const own = { writable: true, configurable: true };
    if (err.name !== name) Object.defineProperty(err, "name", { value: name, ...own });
    this.#refs.push(err);
    const stack = this.value();
    if (stack === undefined) delete (err as { stack?: string }).stack;
    else if (typeof stack === "string") Object.defineProperty(err, "stack", { value: stack, ...own });
    else this.fail("an Error's stack must be a string");
    const hasCause = this.#byte();
    if (hasCause === 1) Object.defineProperty(err, "cause", { value: this.value(), ...own });
    else if (hasCause !== 0) this.fail("bad Error cause flag");
    return err;
  }
}

function pushed<T>(refs: unknown[], object: T): T {
  refs.push(object);
  return object;
}

/**
 * The value of bytes from {@linkcode encodePortable}.
 *
 * Safe on untrusted input: work is linear in its size, nothing larger than the
 * input is allocated, and nesting is limited.
 *
 * @throws {TypeError} if `bytes` is not a whole, well-formed encoding (trailing bytes included).
 */
export function decodePortable(bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("decodePortable() needs a Uint8Array");
  const decoder = new Decoder(bytes);
  const value = decoder.value();
  if (decoder.pos !== bytes.length) decoder.fail(`${bytes.length - decoder.pos} bytes after the value`);
  return value;
}
