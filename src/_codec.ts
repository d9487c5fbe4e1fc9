/**
 * Queue items and pipe messages as records. Small primitives stay as they are
 * and are written straight into shared memory (a queue of numbers moves millions
 * a second); everything else is packed and serialized here, before any lock is
 * taken, so that a value that cannot be copied fails at the call site.
 *
 * @module
 */
import { runtime } from "./runtime/detect.ts";
import { decodePortable, encodePortable } from "./_portable.ts";
import { pack, unpack } from "./serialization.ts";

/** Record tags: the first byte of every record's payload. */
export const Tag = {
  NULL: 1,
  UNDEFINED: 2,
  TRUE: 3,
  FALSE: 4,
  NUMBER: 5,
  STRING: 6,
  BYTES: 7,
  PLAIN: 8,
  TAGGED: 9,
  /** PLAIN and TAGGED in the portable format (src/_portable.ts): for a peer on another runtime. */
  PORTABLE_PLAIN: 10,
  PORTABLE_TAGGED: 11,
} as const;

/** An item already turned into bytes: a string, raw bytes, or a serialized value. */
export class Encoded {
  constructor(readonly tag: number, readonly bytes: Uint8Array) {}
}

/** What a FIFO stores: a small primitive as is, or its {@linkcode Encoded} bytes. */
export type Prepared = number | boolean | null | undefined | Encoded;

/** The values whose record is their tag alone. */
export const CONSTANTS: ReadonlyMap<number, unknown> = new Map<number, unknown>([
  [Tag.NULL, null],
  [Tag.UNDEFINED, undefined],
  [Tag.TRUE, true],
  [Tag.FALSE, false],
]);

/** The tag of a prepared item. */
export function tagOf(item: Prepared): number {
  switch (item) {
    case null:
      return Tag.NULL;
    case undefined:
      return Tag.UNDEFINED;
    case true:
      return Tag.TRUE;
    case false:
      return Tag.FALSE;
  }
  return typeof item === "number" ? Tag.NUMBER : item.tag;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Makes an item ready for a FIFO; `portable` for a reader on another runtime.
 *
 * @throws {TypeError} naming the part of `value` that cannot be copied.
 */
export function prepare(value: unknown, what = "item", portable = false): Prepared {
  switch (typeof value) {
    case "number":
    case "boolean":
    case "undefined":
      return value;
    case "string":
      return new Encoded(Tag.STRING, encoder.encode(value));
  }
  if (value === null) return null;
  // Bytes travel as bytes: no serializer on either side (it costs more than the copy).
  if (value instanceof Uint8Array && value.constructor === Uint8Array) return new Encoded(Tag.BYTES, value.slice());
  const packed = pack(value, what, "bytes");
  if (portable) return new Encoded(packed.t ? Tag.PORTABLE_TAGGED : Tag.PORTABLE_PLAIN, encodePortable(packed.v, what));
  try {
    return new Encoded(packed.t ? Tag.TAGGED : Tag.PLAIN, runtime.serialize(packed.v));
  } catch (err) {
    throw new TypeError(`Cannot copy ${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Raw bytes, kept as bytes (Connection.sendBytes). */
export function prepareBytes(bytes: Uint8Array): Encoded {
  return new Encoded(Tag.BYTES, bytes.slice());
}

/** The value of an encoded payload. */
export function decodeEncoded(tag: number, bytes: Uint8Array): unknown {
  switch (tag) {
    case Tag.STRING:
      return decoder.decode(bytes);
    case Tag.BYTES:
      return bytes;
    case Tag.PLAIN:
    case Tag.TAGGED:
      return unpack({ v: runtime.deserialize(bytes), t: tag === Tag.TAGGED });
    case Tag.PORTABLE_PLAIN:
    case Tag.PORTABLE_TAGGED:
      return unpack({ v: decodePortable(bytes), t: tag === Tag.PORTABLE_TAGGED });
    default:
      throw new TypeError(`Corrupt queue record (tag ${tag})`);
  }
}

/** The value of a prepared item (for FIFOs that keep items in memory). */
export function unprepare(item: Prepared): unknown {
  return item instanceof Encoded ? decodeEncoded(item.tag, item.bytes) : item;
}

/** A prepared item as one self-contained record: a tag byte, then its payload. */
export function toRecord(item: Prepared): Uint8Array {
  if (typeof item === "number") {
    const record = new Uint8Array(9);
    record[0] = Tag.NUMBER;
    new DataView(record.buffer).setFloat64(1, item);
    return record;
  }
  if (item instanceof Encoded) {
    const record = new Uint8Array(1 + item.bytes.length);
    record[0] = item.tag;
    record.set(item.bytes, 1);
    return record;
  }
  return Uint8Array.of(tagOf(item));
}

/** The value of a record made by {@linkcode toRecord}. */
export function fromRecord(record: Uint8Array): unknown {
  const tag = record[0];
  if (tag === Tag.NUMBER) return new DataView(record.buffer, record.byteOffset, 9).getFloat64(1);
  if (CONSTANTS.has(tag)) return CONSTANTS.get(tag);
  return decodeEncoded(tag, record.subarray(1));
}
