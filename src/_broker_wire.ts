/**
 * What the broker and its clients say to each other, byte for byte.
 *
 * A frame is a big-endian u32 length and that many bytes. Before authentication a
 * frame holds raw bytes (nonces and HMACs, at most {@linkcode MAX_HELLO} of them).
 * After it, a frame is a message: a u32 header length, the header as JSON (small
 * numbers and strings only), then the message's items, each a u32 length and the
 * bytes. Items are opaque payloads that the caller serialized; keeping them out of
 * the header means nobody re-encodes them, and a batch of 1,000 items costs one
 * frame. JSON, not the runtime's serializer, for headers: it is cheap for small
 * objects and safe to parse from a peer that sends garbage. One message has a
 * binary form (see {@linkcode ackFrame}): a header length of 0 marks it.
 *
 * The handshake is Python's challenge, both ways: the server sends a nonce; the
 * client answers HMAC(key, "client" + nonce) and sends its own nonce; the server
 * checks, and proves itself with HMAC(key, "server" + client nonce). A wrong answer
 * closes the connection before any message is read.
 *
 * @module
 */
import { runtime } from "./runtime/detect.ts";
import type { NetSocket } from "./runtime/types.ts";

/** The largest frame a peer may announce after the handshake; more drops the connection. */
export const MAX_FRAME = 2 ** 30;
/** The largest frame of the handshake. */
export const MAX_HELLO = 128;
const NONCE = 32;
/** An ack's payload after its zero header length: a float64 queue id and a u32 count. */
const ACK_LENGTH = 12;

/** A decoded message: its header and its items. */
export interface Message {
  header: Record<string, unknown>;
  items: Uint8Array[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Received bytes not yet parsed: a list of chunks, read from the front. */
class ByteQueue {
  #chunks: Uint8Array[] = [];
  /** The first chunk not fully read, and how far it is read: indexes, so that a read allocates nothing it need not. */
  #head = 0;
  #offset = 0;
  size = 0;

  push(chunk: Uint8Array): void {
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    this.#chunks.push(chunk);
    this.size += chunk.length;
  }

  /** The next `n` bytes (n <= size): a view when one chunk holds them, else a copy. */
  take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    this.size -= n;
    const first = this.#chunks[this.#head];
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#advance(first, n);
      return view;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[this.#head];
      const part = Math.min(chunk.length - this.#offset, n - filled);
      out.set(chunk.subarray(this.#offset, this.#offset + part), filled);
      filled += part;
      this.#advance(chunk, part);
    }
    return out;
  }

  u32(): number {
    const first = this.#chunks[this.#head];
    const at = this.#offset;
    if (first.length - at < 4) {
      const b = this.take(4);
      return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
    }
    this.size -= 4;
    this.#advance(first, 4);
    return ((first[at] << 24) | (first[at + 1] << 16) | (first[at + 2] << 8) | first[at + 3]) >>> 0;
  }

  #advance(chunk: Uint8Array, n: number): void {
    this.#offset += n;
    if (this.#offset === chunk.length) {
      this.#chunks[this.#head++] = EMPTY; // let it go
      this.#offset = 0;
    }
  }

  /** Hands over what is left. */
  drain(): Uint8Array[] {
    const rest = this.#chunks.slice(this.#head);
    if (rest.length > 0) rest[0] = rest[0].subarray(this.#offset);
    this.#chunks = [];
    this.#head = this.#offset = 0;
    this.size = 0;
    return rest;
  }
}

const EMPTY = new Uint8Array(0);

/** Splits the handshake's byte stream into frames, refusing any frame longer than `max`. */
export class FrameReader {
  readonly max: number;
  #bytes = new ByteQueue();
  #need = -1;

  constructor(max: number) {
    this.max = max;
  }

  /** Adds bytes; returns the frames now complete, or undefined if a frame is too long. */
  push(chunk: Uint8Array): Uint8Array[] | undefined {
    this.#bytes.push(chunk);
    const frames: Uint8Array[] = [];
    for (;;) {
      if (this.#need < 0) {
        if (this.#bytes.size < 4) break;
        this.#need = this.#bytes.u32();
        // Never allocate what a frame merely claims.
        if (this.#need > this.max) return undefined;
      }
      if (this.#bytes.size < this.#need) break;
      frames.push(this.#bytes.take(this.#need));
      this.#need = -1;
    }
    return frames;
  }

  /** The bytes received after the last complete frame (and any length read of the next). */
  rest(): Uint8Array[] {
    return this.#bytes.drain();
  }
}

/**
 * Splits the byte stream after the handshake into messages as the bytes arrive: an
 * item that one received chunk holds is a view of it, so a large frame is never
 * copied whole (only the items that straddle two chunks are). Refuses, by returning
 * undefined, a frame longer than `max` and anything malformed.
 */
export class MessageReader {
  readonly max: number;
  #bytes = new ByteQueue();
  /** Bytes left in the current frame; -1 between frames. */
  #left = -1;
  #headerLength = -1;
  #header: Record<string, unknown> | undefined;
  #itemLength = -1;
  #items: Uint8Array[] = [];

  constructor(max: number) {
    this.max = max;
  }

  push(chunk: Uint8Array): Message[] | undefined {
    const bytes = this.#bytes;
    bytes.push(chunk);
    const messages: Message[] = [];
    for (;;) {
      if (this.#left < 0) {
        if (bytes.size < 4) break;
        this.#left = bytes.u32();
        if (this.#left > this.max || this.#left < 4) return undefined;
      }
      if (this.#header === undefined) {
        if (this.#headerLength < 0) {
          if (bytes.size < 4) break;
          this.#headerLength = bytes.u32();
          this.#left -= 4;
          if (this.#headerLength > this.#left) return undefined;
        }
        if (this.#headerLength === 0) {
          if (this.#left !== ACK_LENGTH) return undefined;
          if (bytes.size < ACK_LENGTH) break;
          const ack = bytes.take(ACK_LENGTH);
          const view = new DataView(ack.buffer, ack.byteOffset, ACK_LENGTH);
          this.#header = { op: "ack", q: view.getFloat64(0), n: view.getUint32(8) };
          this.#left = 0;
        } else {
          if (bytes.size < this.#headerLength) break;
          const header = parseHeader(bytes.take(this.#headerLength));
          if (header === undefined) return undefined;
          this.#header = header;
          this.#left -= this.#headerLength;
        }
      }
      while (this.#left > 0) {
        if (this.#itemLength < 0) {
          if (this.#left < 4) return undefined;
          if (bytes.size < 4) return messages;
          this.#itemLength = bytes.u32();
          this.#left -= 4;
          if (this.#itemLength > this.#left) return undefined;
        }
        if (bytes.size < this.#itemLength) return messages;
        this.#items.push(bytes.take(this.#itemLength));
        this.#left -= this.#itemLength;
        this.#itemLength = -1;
      }
      messages.push({ header: this.#header, items: this.#items });
      this.#left = this.#headerLength = -1;
      this.#header = undefined;
      this.#items = [];
    }
    return messages;
  }
}

function parseHeader(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const header = JSON.parse(decoder.decode(bytes));
    return typeof header === "object" && header !== null && !Array.isArray(header) ? header : undefined;
  } catch {
    return undefined;
  }
}

/** A frame of raw bytes (the handshake). */
export function rawFrame(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

/** The size {@linkcode writeMessage} needs for a message. */
export function messageSize(header: Uint8Array, items: readonly Uint8Array[]): number {
  let size = 8 + header.length;
  for (const item of items) size += 4 + item.length;
  return size;
}

/** The JSON bytes of a header. */
export function encodeHeader(header: Record<string, unknown>): Uint8Array {
  return encoder.encode(JSON.stringify(header));
}

/** Writes a message frame at `offset` of `out`; returns the offset after it. */
export function writeMessage(out: Uint8Array, offset: number, header: Uint8Array, items: readonly Uint8Array[]): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(offset, messageSize(header, items) - 4);
  view.setUint32(offset + 4, header.length);
  out.set(header, offset + 8);
  return writeItems(view, out, offset + 8 + header.length, items);
}

function writeItems(view: DataView, out: Uint8Array, offset: number, items: readonly Uint8Array[]): number {
  for (const item of items) {
    view.setUint32(offset, item.length);
    out.set(item, offset + 4);
    offset += 4 + item.length;
  }
  return offset;
}

/** Messages as frames, one after the other in one buffer (one write sends them all). */
export function encodeMessages(messages: readonly { header: Record<string, unknown>; items: readonly Uint8Array[] }[]): Uint8Array {
  const jsons = messages.map((m) => JSON.stringify(m.header));
  let room = 0;
  for (let i = 0; i < messages.length; i++) {
    // Headers are encoded in place: room for UTF-8's worst case, 3 bytes per UTF-16 unit.
    room += 8 + 3 * jsons[i].length;
    for (const item of messages[i].items) room += 4 + item.length;
  }
  const out = new Uint8Array(room);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (let i = 0; i < messages.length; i++) {
    const headerLength = encoder.encodeInto(jsons[i], out.subarray(offset + 8)).written;
    const end = writeItems(view, out, offset + 8 + headerLength, messages[i].items);
    view.setUint32(offset, end - offset - 4);
    view.setUint32(offset + 4, headerLength);
    offset = end;
  }
  return out.subarray(0, offset);
}

/** One message as a frame of its own. */
export function encodeMessage(header: Record<string, unknown>, items: readonly Uint8Array[] = []): Uint8Array {
  return encodeMessages([{ header, items }]);
}

/**
 * A consumer acknowledges every item it hands out, each in a write of its own (see
 * src/_broker.ts): so that message has a fixed binary form, cheap to write and to
 * read. A header length of 0 marks it: then a float64 queue id and a u32 count.
 */
export function ackFrame(q: number, n: number): Uint8Array {
  const out = new Uint8Array(8 + ACK_LENGTH);
  const view = new DataView(out.buffer);
  view.setUint32(0, 4 + ACK_LENGTH);
  view.setUint32(4, 0);
  view.setFloat64(8, q);
  view.setUint32(16, n);
  return out;
}

function tagged(tag: string, nonce: Uint8Array): Uint8Array {
  const tagBytes = encoder.encode(tag);
  const out = new Uint8Array(tagBytes.length + nonce.length);
  out.set(tagBytes);
  out.set(nonce, tagBytes.length);
  return out;
}

/** The server's side of the handshake, one frame at a time. */
export class ServerHandshake {
  readonly challenge: Uint8Array = runtime.net.randomBytes(NONCE);
  #key: Uint8Array;

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  /** The client's answer and nonce in; the server's proof out, or undefined for a wrong answer. */
  answer(frame: Uint8Array): Uint8Array | undefined {
    const { net } = runtime;
    if (frame.length !== 2 * NONCE) return undefined;
    const expected = net.hmacSha256(this.#key, tagged("client", this.challenge));
    if (!net.timingSafeEqual(frame.subarray(0, NONCE), expected)) return undefined;
    return net.hmacSha256(this.#key, tagged("server", frame.subarray(NONCE)));
  }
}

/** The client's side: answers the challenge, then checks the server's proof. */
export class ClientHandshake {
  #key: Uint8Array;
  #nonce: Uint8Array = runtime.net.randomBytes(NONCE);

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  /** The server's challenge in; the answer frame's bytes out (undefined if malformed). */
  answer(challenge: Uint8Array): Uint8Array | undefined {
    if (challenge.length !== NONCE) return undefined;
    const out = new Uint8Array(2 * NONCE);
    out.set(runtime.net.hmacSha256(this.#key, tagged("client", challenge)));
    out.set(this.#nonce, NONCE);
    return out;
  }

  /** Whether the server's proof shows it holds the key. */
  verify(proof: Uint8Array): boolean {
    return runtime.net.timingSafeEqual(proof, runtime.net.hmacSha256(this.#key, tagged("server", this.#nonce)));
  }
}

/**
 * The server's side on a connection: feeds it the client's bytes. Returns the proof to
 * send once the client answered right, undefined while the answer is incomplete, and
 * null for a wrong key or anything sent before the proof (the connection must end).
 */
export function serverHello(hello: FrameReader, handshake: ServerHandshake, chunk: Uint8Array): Uint8Array | undefined | null {
  const frames = hello.push(chunk);
  if (frames === undefined) return null;
  if (frames.length === 0) return undefined;
  // A client says nothing after its answer until it has the server's proof.
  const proof = handshake.answer(frames[0]);
  if (proof === undefined || frames.length > 1 || hello.rest().length > 0) return null;
  return proof;
}

/** The errors of a failed {@linkcode clientHello}. */
export interface HelloErrors {
  /** The server hung up before it sent its challenge (it is going away, or was not one). */
  lost(): Error;
  /** The server hung up after our answer: it refused it. */
  refused(): Error;
  /** The server's proof was wrong: it does not hold the key. */
  impostor(): Error;
}

/**
 * The client's side on a fresh connection: answers the challenge and checks the
 * server's proof; rejects with one of `errors`, and the socket is then destroyed.
 * The caller sets its own handlers once this resolves (the server says nothing more
 * before a request, so nothing follows the proof).
 */
export function clientHello(socket: NetSocket, authkey: Uint8Array, errors: HelloErrors): Promise<void> {
  const reader = new FrameReader(MAX_HELLO);
  const handshake = new ClientHandshake(authkey);
  return new Promise((resolve, reject) => {
    let answered = false;
    // A server that dies while this connection waits in its backlog accepts it, then hangs up unheard.
    socket.onClose(() => reject(answered ? errors.refused() : errors.lost()));
    socket.onData((chunk) => {
      for (const frame of reader.push(chunk) ?? []) {
        if (!answered) {
          const answer = handshake.answer(frame);
          if (answer === undefined) return socket.destroy();
          socket.write(rawFrame(answer));
          answered = true;
        } else if (!handshake.verify(frame)) {
          reject(errors.impostor());
          return socket.destroy();
        } else {
          return resolve();
        }
      }
    });
  });
}
