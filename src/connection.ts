/**
 * Pipes (Python's `multiprocessing.Pipe()` and `Connection`).
 *
 * @module
 */
import { prepare, prepareBytes } from "./_codec.ts";
import { type Fifo, FifoRefused } from "./_fifo.ts";
import { openFifo, rebuildFifo, reduceFifo } from "./_fifo_open.ts";
import { checkStartMethod, getStartMethod, type StartMethod } from "./_start_method.ts";
import { EOFError, ProcessError } from "./errors.ts";
import { registerReducer } from "./serialization.ts";

/** Options of {@linkcode pipe}. */
export interface PipeOptions {
  /** Both ends send and receive (default); false: the first end receives, the second sends. */
  duplex?: boolean;
  /** The start method of the children that will hold the ends; defaults to {@linkcode getStartMethod}(). */
  context?: StartMethod;
}

let attaching: { method: StartMethod; inbox?: Fifo; outbox?: Fifo } | undefined;

// Ends open in this isolate, closed when it ends (as the OS closes a dying process's fds).
const open = new Set<Connection>();

/** Closes every pipe end still open in this isolate. */
export function closeAllConnections(): void {
  for (const conn of open) conn.close();
}

/**
 * One end of a pipe. Messages keep their boundaries: each `send()` is one
 * `recv()`, whatever its size (an empty message too).
 *
 * Python's `Connection`, with these differences: `recv()`, `recvBytes()` and
 * `poll()` return Promises; `poll()` takes milliseconds. As in Python, the other
 * end's `recv()` rejects with {@linkcode EOFError} once every copy of this end
 * (this one, and those passed to children) is closed and what was sent is read. A
 * child closes its copies when it ends; a child that is killed cannot, so end of
 * file does not come through an end that a killed child still held.
 *
 * @example
 * ```ts
 * import { pipe } from "polyproc";
 * const [a, b] = pipe();
 * a.send({ hello: "world" });
 * console.log(await b.recv()); // { hello: "world" }
 * ```
 */
export class Connection<T = unknown> {
  readonly #method: StartMethod;
  readonly #inbox: Fifo | undefined;
  readonly #outbox: Fifo | undefined;
  #closed = false;

  /** @internal Made by {@linkcode pipe}. */
  constructor() {
    if (attaching === undefined) throw new TypeError("Connections are made by pipe()");
    this.#method = attaching.method;
    this.#inbox = attaching.inbox;
    this.#outbox = attaching.outbox;
    open.add(this);
  }

  /** Whether `close()` was called on this end. */
  get closed(): boolean {
    return this.#closed;
  }
  /** Whether this end can receive. */
  get readable(): boolean {
    return this.#inbox !== undefined;
  }
  /** Whether this end can send. */
  get writable(): boolean {
    return this.#outbox !== undefined;
  }

  /**
   * Sends a copy of `obj` as one message.
   *
   * @throws {TypeError} if it cannot be copied.
   * @throws {ProcessError} if this end is closed or receive-only.
   */
  send(obj: T): void {
    this.#write(prepare(obj, "message"));
  }

  /**
   * Sends `buf[offset, offset + size)` as one message of raw bytes.
   *
   * @throws {RangeError} if offset or size fall outside `buf`.
   */
  sendBytes(buf: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): void {
    const bytes = buf instanceof ArrayBuffer
      ? new Uint8Array(buf)
      : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    if (!Number.isInteger(offset) || offset < 0 || offset > bytes.length) {
      throw new RangeError(`offset must be an integer from 0 to ${bytes.length}, got ${offset}`);
    }
    const end = size === undefined ? bytes.length : offset + size;
    if (size !== undefined && (!Number.isInteger(size) || size < 0 || end > bytes.length)) {
      throw new RangeError(`size must be an integer from 0 to ${bytes.length - offset}, got ${size}`);
    }
    this.#write(prepareBytes(bytes.subarray(offset, end)));
  }

  /**
   * Receives the next message.
   *
   * @throws {EOFError} once the other end is closed and every message was read.
   * @throws {ProcessError} if this end is closed or send-only.
   */
  recv(options: { signal?: AbortSignal } = {}): Promise<T> {
    const inbox = this.#reader("receive from");
    return (inbox.get(true, undefined, options.signal) as Promise<T>).catch((err) => {
      if (err instanceof FifoRefused) throw new EOFError("The other end of the pipe is closed");
      throw err;
    });
  }

  /**
   * Receives the next message, which must have been sent with `sendBytes()`.
   *
   * @param maxlength Rejects (and drops the message) if it is longer.
   */
  async recvBytes(maxlength?: number): Promise<Uint8Array> {
    const message = await this.recv();
    if (!(message instanceof Uint8Array)) {
      throw new TypeError("recvBytes() received a message sent with send(); use recv() for it");
    }
    if (maxlength !== undefined && message.length > maxlength) {
      throw new ProcessError(`Message of ${message.length} bytes is longer than maxlength ${maxlength}`);
    }
    return message;
  }

  /**
   * Whether a message can be received without waiting, waiting up to `timeout`
   * milliseconds for one (0, the default, does not wait; `Infinity` waits forever).
   */
  poll(timeout = 0): Promise<boolean> {
    const inbox = this.#reader("poll");
    if (typeof timeout !== "number" || Number.isNaN(timeout)) {
      throw new TypeError(`timeout must be a number of milliseconds, got ${String(timeout)}`);
    }
    return inbox.poll(timeout === Infinity ? undefined : Date.now() + Math.max(0, timeout));
  }

  /**
   * Closes this end. When every copy of it is closed, the other end reads what
   * was sent, then gets EOFError. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    open.delete(this);
    this.#outbox?.flush?.();
    this.#outbox?.removeWriter();
  }

  #reader(action: string): Fifo {
    if (this.#closed) throw new ProcessError(`Cannot ${action} the connection: Connection is closed`);
    if (this.#inbox === undefined) throw new ProcessError(`Cannot ${action} the connection: it is write-only`);
    return this.#inbox;
  }

  #write(message: ReturnType<typeof prepare>): void {
    if (this.#closed) throw new ProcessError("Cannot send on the connection: Connection is closed");
    const outbox = this.#outbox;
    if (outbox === undefined) throw new ProcessError("Cannot send on the connection: it is read-only");
    // Pipes are for latency: the message goes out now, not with the next batch.
    void outbox.put([message], true).catch(() => {});
    outbox.flush?.();
  }

  /** @internal */
  static reduce(conn: Connection, transport: Parameters<typeof reduceFifo>[2]): unknown {
    if (conn.#closed) throw new ProcessError("the pipe end is closed");
    const side = (fifo: Fifo | undefined) => fifo && reduceFifo(fifo, conn.#method, transport, "pipe end");
    const state = { inbox: side(conn.#inbox), outbox: side(conn.#outbox) };
    // The copy counts as open from now, so that closing ours before the child has
    // rebuilt its copy does not end the pipe.
    conn.#outbox?.addWriter("lend");
    return state;
  }
}

function connect<T>(method: StartMethod, inbox: Fifo | undefined, outbox: Fifo | undefined): Connection<T> {
  attaching = { method, inbox, outbox };
  try {
    return new Connection<T>();
  } finally {
    attaching = undefined;
  }
}

/**
 * Makes a pipe: two connected {@linkcode Connection} ends (Python's `Pipe()`).
 * With `duplex: false` the first end only receives and the second only sends,
 * in Python's order.
 *
 * @example An echo child
 * ```ts
 * import { pipe, Process } from "polyproc";
 * const [parent, child] = pipe();
 * const p = new Process({ target: async (c) => c.send(`echo: ${await c.recv()}`), args: [child] });
 * p.start();
 * parent.send("hi");
 * console.log(await parent.recv()); // "echo: hi"
 * await p.join();
 * ```
 */
export function pipe<T = unknown>(options: PipeOptions = {}): [Connection<T>, Connection<T>] {
  const { duplex = true, context } = options;
  if (typeof duplex !== "boolean") throw new TypeError("duplex must be a boolean");
  const method = context === undefined ? getStartMethod() : checkStartMethod(context, "context");
  const forward = openFifo(method, 0);
  forward.addWriter("own");
  if (!duplex) return [connect(method, forward, undefined), connect(method, undefined, forward)];
  const backward = openFifo(method, 0);
  backward.addWriter("own");
  return [connect(method, forward, backward), connect(method, backward, forward)];
}

registerReducer(Connection, "Connection", {
  reduce: (conn, transport) => Connection.reduce(conn, transport),
  rebuild: (state) => {
    const { inbox, outbox } = state as { inbox?: unknown; outbox?: unknown };
    const a = inbox === undefined ? undefined : rebuildFifo(inbox);
    const b = outbox === undefined ? undefined : rebuildFifo(outbox);
    b?.fifo.addWriter("adopt");
    return connect((a ?? b)!.method, a?.fifo, b?.fifo);
  },
});
