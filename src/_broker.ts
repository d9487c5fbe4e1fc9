/**
 * The broker of the "process" start method (Python's manager/"resource" model, for
 * queues): one server per program tree holds FIFO queues of opaque byte payloads,
 * and every isolate of the tree that needs them (child processes, grandchildren,
 * workers inside them) talks to it directly over a unix socket, never relayed
 * through its ancestors.
 *
 * The server runs in a worker thread of the isolate that first needs it, so a busy
 * main thread does not stall it; the thread never keeps a program alive and ends
 * with its owner. The socket lives in a private (0700) temporary folder, and a
 * random key per program, handed to children over their private start message
 * (never env or argv), is checked by an HMAC challenge both ways.
 *
 * One {@linkcode BrokerClient} per isolate and broker, shared by all queue handles.
 * It batches: puts to one queue in one turn of the event loop leave in one frame
 * (Python's feeder thread does the same), and a lone fast consumer receives items
 * in batches. Both without losing anything when a process dies: see
 * src/_broker_server.ts on leases.
 *
 * @module
 */
import {
  ackFrame,
  clientHello,
  encodeHeader,
  MAX_FRAME,
  type Message,
  MessageReader,
  messageSize,
  writeMessage,
} from "./_broker_wire.ts";
import { Deque } from "./_deque.ts";
import { makeOwnDir } from "./_own_dirs.ts";
import { ProcessError } from "./errors.ts";
import { runtime } from "./runtime/detect.ts";
import type { NetSocket } from "./runtime/types.ts";

/** Why a broker call failed: Python's queue.Full, queue.Empty, ShutDown, ValueError, ... */
export type BrokerErrorKind =
  | "full" // put: no room (non-blocking, or after the timeout)
  | "empty" // get: nothing (non-blocking, or after the timeout)
  | "shutdown" // put after shutdown(); get once drained after shutdown()
  | "range" // taskDone() called more often than items were put
  | "closed" // the queue was released (freed), or this client was closed
  | "cancelled" // the call's AbortSignal fired (rejects with the signal's reason instead)
  | "lost" // the broker cannot be reached, or the connection to it ended
  | "auth"; // the broker and this program do not share a key

/** A broker call failed; `kind` says how. */
export class BrokerError extends ProcessError {
  readonly kind: BrokerErrorKind;
  constructor(kind: BrokerErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** Options of {@linkcode BrokerClient.get}. */
export interface GetOptions {
  /** Wait for an item (default true); false fails at once with kind "empty". */
  block?: boolean;
  /** Milliseconds to wait, when blocking; undefined waits forever. */
  timeoutMs?: number;
  /** Gives up the wait, rejecting with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of {@linkcode BrokerClient.put}. */
export interface PutOptions {
  /** Wait for room (default true); false fails at once with kind "full". */
  block?: boolean;
  /** Milliseconds to wait for room, when blocking; undefined waits forever. */
  timeoutMs?: number;
  /**
   * Resolve once the item is on its way (in order, batched), not when the broker
   * has it: for unbounded queues (Python's put, which hands the item to the feeder
   * thread). A failure (shutdown, closed) is kept and thrown by the next put or
   * {@linkcode BrokerClient.flush} on that queue. Ignores block and timeoutMs.
   */
  buffered?: boolean;
  /** Gives up the wait for room, rejecting with the signal's reason (unless the item got in first). */
  signal?: AbortSignal;
}

/** What a child inherits: the program's key and, if there is one yet, the broker's socket. */
export interface BrokerInheritance {
  authkey: Uint8Array;
  path?: string;
}

/** The broker thread's start message. */
export interface BrokerInit {
  path: string;
  authkey: Uint8Array;
}

/** What the broker thread reports to its owner. */
export type BrokerReport = { type: "listening" } | { type: "failed"; message: string };

// ------------------------------------------------------------------ the client

/** How many items a lone consumer asks for at once. */
const BATCH = 512;
/** Buffered puts leave at once when this many bytes wait: a frame the OS takes whole, so the producer rarely stalls. */
const FLUSH_BYTES = 64 * 1024;
const MAX_TIMER = 2 ** 31 - 1;

interface Call {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

interface Getter {
  resolve(item: Uint8Array): void;
  reject(error: unknown): void;
  block: boolean;
  /** When it gives up (performance.now() time), if ever. */
  deadline: number | undefined;
  /** Rejects it with "empty" at its deadline while it waits behind another getter. */
  timer?: ReturnType<typeof setTimeout>;
  done: boolean;
}

/** What this client knows about one queue. */
class QueueState {
  /** Items received and not yet handed out (leased: the server still has them on its books). */
  buffer = new Deque<Uint8Array>();
  /** Local callers waiting, in order; only the first has a request at the broker. */
  getters: Getter[] = [];
  /** The one get request at the broker for this queue (for the first getter): one at a time. */
  inflight: number | undefined;
  inflightFor: Getter | undefined;
  /** This queue's "ack 1" frame, made once. */
  ackFrame: Uint8Array | undefined;
  /** A failure of buffered puts (shutdown, closed), thrown by the next put or flush. */
  error: BrokerError | undefined;
  unconfirmed = 0;
  flushers: Call[] = [];
}

type Pending =
  | { op: "get"; q: number; getter?: Getter }
  | { op: "put"; q: number; calls: Call[]; buffered: boolean; signal?: AbortSignal }
  | { op: "call"; q: number; call: Call }
  // A request about a lock, event, ... (src/_broker_sync.ts): resolves with the whole reply header.
  | { op: "raw"; q: number; call: Call };

interface OutMessage {
  header: Record<string, unknown>;
  items: Uint8Array[];
  /** Set on messages that later ones may join: a put batch, or acks. */
  join?: "put" | "ack";
  pending?: Pending & { op: "put" };
}

/** Calls `onAbort` if `signal` fires while `promise` is pending; forgets it after. */
function whileWaiting<T>(promise: Promise<T>, signal: AbortSignal | undefined, onAbort: () => void): Promise<T> {
  if (signal === undefined) return promise;
  signal.addEventListener("abort", onAbort, { once: true });
  const forget = () => signal.removeEventListener("abort", onAbort);
  promise.then(forget, forget);
  return promise;
}

function checkTimeout(timeoutMs: number | undefined): number | null {
  if (timeoutMs === undefined) return null;
  if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs)) {
    throw new TypeError(`timeoutMs must be a number of milliseconds, got ${String(timeoutMs)}`);
  }
  return timeoutMs >= MAX_TIMER ? null : Math.max(0, timeoutMs);
}

function checkId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 0) throw new TypeError(`queue id must be a non-negative integer, got ${id}`);
  return id;
}

function describe(kind: BrokerErrorKind, q: number): string {
  switch (kind) {
    case "full":
      return `Queue ${q} is full`;
    case "empty":
      return `Queue ${q} is empty`;
    case "shutdown":
      return `Queue ${q} is shut down`;
    case "range":
      return `taskDone() called too many times on queue ${q}`;
    case "closed":
      return `Queue ${q} is closed`;
    case "cancelled":
      return `The call on queue ${q} was cancelled`;
    default:
      return `Broker call on queue ${q} failed (${kind})`;
  }
}

/**
 * A connection to a broker: one per isolate and broker, shared by every queue handle.
 *
 * @example
 * ```ts ignore
 * const client = await getBroker();
 * const q = await client.create({ maxsize: 0 });
 * await client.put(q, new Uint8Array([1]));
 * console.log(await client.get(q)); // Uint8Array [1]
 * ```
 */
export class BrokerClient {
  /** The broker's socket. */
  readonly path: string;
  #socket: NetSocket;
  #reader = new MessageReader(MAX_FRAME);
  #nextR = 1;
  #pending = new Map<number, Pending>();
  #queues = new Map<number, QueueState>();
  #out: OutMessage[] = [];
  #outBytes = 0;
  #soon = false;
  #later: ReturnType<typeof setImmediate> | undefined;
  #congested: Call[] | undefined;
  #refd = false;
  #closed: BrokerError | undefined;
  #onClose: () => void = () => {};
  #lazyAcks: boolean;

  private constructor(path: string, socket: NetSocket, lazyAcks: boolean) {
    this.path = path;
    this.#lazyAcks = lazyAcks;
    this.#socket = socket;
    socket.onData((chunk) => this.#data(chunk));
    socket.onClose(() => this.#lost(new BrokerError("lost", `Lost the connection to the broker at ${path}`)));
    socket.onDrain(() => {
      const waiting = this.#congested ?? [];
      this.#congested = undefined;
      for (const call of waiting) call.resolve(undefined);
      this.#unrefIfIdle();
    });
    socket.unref();
  }

  /**
   * Connects and authenticates. A broker that is starting (no socket yet) is waited
   * for, up to `timeoutMs` (default 30 s). `lazyAcks` is for the isolate that runs
   * the broker: it cannot die without it, so it need not acknowledge each item at once.
   *
   * @throws {BrokerError} kind "lost" if nobody listens at `path`, "auth" for a wrong key.
   */
  static async connect(
    path: string,
    authkey: Uint8Array,
    options: { timeoutMs?: number; lazyAcks?: boolean } = {},
  ): Promise<BrokerClient> {
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    let socket: NetSocket;
    for (let delay = 2;; delay = Math.min(2 * delay, 50)) {
      try {
        socket = await runtime.net.connect(path);
        break;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if ((code !== "ENOENT" && code !== "ECONNREFUSED") || Date.now() > deadline) {
          throw new BrokerError("lost", `Cannot reach the broker at ${path}: ${(err as Error).message}`);
        }
        // The owner has made the folder but its thread is not listening yet.
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
    await clientHello(socket, authkey, {
      lost: () => new BrokerError("lost", `The broker at ${path} hung up before the handshake`),
      refused: () => new BrokerError("auth", `The broker at ${path} refused this program's key`),
      impostor: () => new BrokerError("auth", `The server at ${path} does not hold this program's key`),
    });
    return new BrokerClient(path, socket, options.lazyAcks ?? false);
  }

  /** Whether the connection has ended (by {@linkcode BrokerClient.close} or loss). */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Creates a queue with a server-chosen id, held by this client until released. */
  create(options: { maxsize?: number } = {}): Promise<number> {
    const maxsize = options.maxsize ?? 0;
    if (!Number.isSafeInteger(maxsize) || maxsize < 0) throw new RangeError(`maxsize must be an integer >= 0, got ${maxsize}`);
    return this.#call(0, { op: "create", m: maxsize }) as Promise<number>;
  }

  /**
   * Opens queue `id` (from {@linkcode newQueueId}), creating it with `maxsize` if it
   * does not exist, and holds a reference to it until released. Later calls on this
   * connection are served after it, so there is no need to await it first.
   *
   * @throws {BrokerError} kind "closed" if the queue existed and was freed.
   */
  open(id: number, options: { maxsize?: number; borrowed?: boolean } = {}): Promise<void> {
    const maxsize = options.maxsize ?? 0;
    if (!Number.isSafeInteger(maxsize) || maxsize < 0) throw new RangeError(`maxsize must be an integer >= 0, got ${maxsize}`);
    // A borrowed handle (one a child received) does not make the queue freeable: the
    // maker's own open, which may arrive later on another connection, does.
    return this.#call(checkId(id), { op: "open", m: maxsize, ...(options.borrowed ? { c: 0 } : {}) }) as Promise<void>;
  }

  /**
   * Puts one item (opaque bytes). With `maxsize`, resolves once there was room for it.
   * Puts to one queue made in one turn of the event loop travel in one frame.
   *
   * @throws {BrokerError} kind "full", "shutdown", "closed" or "lost".
   */
  put(id: number, payload: Uint8Array, options: PutOptions = {}): Promise<void> {
    checkId(id);
    if (!(payload instanceof Uint8Array)) throw new TypeError("put() needs a Uint8Array payload");
    if (this.#closed) return Promise.reject(this.#closed);
    const st = this.#state(id);
    if (st.error) return Promise.reject(st.error);
    if (options.buffered) {
      this.#putMessage(id, payload, { b: true, t: null }, true);
      if (this.#outBytes >= FLUSH_BYTES) this.#flush();
      else this.#flushLater();
      // Backpressure: a producer faster than the socket waits for it to drain.
      if (this.#congested) return new Promise((resolve, reject) => this.#congested!.push({ resolve, reject }));
      return Promise.resolve();
    }
    const t = checkTimeout(options.timeoutMs);
    const block = options.block ?? true;
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let batch!: Pending & { op: "put" };
    const put = new Promise<void>((resolve, reject) => {
      batch = this.#putMessage(id, payload, { b: block, t }, false, signal);
      batch.calls.push({ resolve: resolve as (v: unknown) => void, reject });
      this.#flushSoon();
    });
    return whileWaiting(put, signal, () => {
      if (this.#out.some((m) => m.pending === batch)) {
        // Not sent yet: take it out.
        this.#out = this.#out.filter((m) => m.pending !== batch);
        return batch.calls[0].reject(signal!.reason);
      }
      // Sent: the broker says whether it got in first (then the put succeeds).
      for (const [r, p] of this.#pending) if (p === batch) this.#send({ op: "cancel", r });
    });
  }

  /** Resolves when every buffered put made so far on queue `id` is confirmed by the broker. */
  flush(id: number): Promise<void> {
    const st = this.#state(checkId(id));
    this.#flush();
    if (st.unconfirmed === 0) return st.error ? Promise.reject(st.error) : Promise.resolve();
    return new Promise((resolve, reject) => st.flushers.push({ resolve, reject }));
  }

  /**
   * Gets one item: from what this client has received already, or from the broker.
   *
   * @throws {BrokerError} kind "empty", "shutdown", "closed" or "lost".
   */
  get(id: number, options: GetOptions = {}): Promise<Uint8Array> {
    checkId(id);
    const t = checkTimeout(options.timeoutMs);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed) return Promise.reject(this.#closed);
    const st = this.#state(id);
    if (st.getters.length === 0 && st.buffer.length > 0) return Promise.resolve(this.#take(id, st));
    const block = options.block ?? true;
    // Python's get_nowait while another thread of the process is blocked in get(): Empty.
    if (!block && st.getters.length > 0) return Promise.reject(new BrokerError("empty", describe("empty", id)));
    let getter!: Getter;
    const got = new Promise<Uint8Array>((resolve, reject) => {
      const deadline = t === null ? undefined : performance.now() + t;
      getter = { resolve, reject, block, deadline, done: false };
      st.getters.push(getter);
      if (deadline !== undefined && st.getters.length > 1) {
        getter.timer = setTimeout(() => this.#drop(id, st, getter, new BrokerError("empty", describe("empty", id))), t!);
      }
      this.#pump(id, st);
    });
    return whileWaiting(got, signal, () => this.#drop(id, st, getter, signal!.reason));
  }

  /** A getter gives up. If its request is at the broker, that request is withdrawn. */
  #drop(q: number, st: QueueState, getter: Getter, reason: unknown): void {
    if (getter.done) return;
    const head = st.getters[0] === getter;
    getter.done = true;
    clearTimeout(getter.timer);
    st.getters.splice(st.getters.indexOf(getter), 1);
    getter.reject(reason);
    // An item that races the cancel arrives all the same (and goes to the next
    // getter, or back): none is lost. The next request waits for that answer.
    if (head && st.inflight !== undefined) this.#send({ op: "cancel", r: st.inflight });
    else this.#pump(q, st);
  }

  /** Sends the request for the first waiting getter, unless one is already at the broker. */
  #pump(q: number, st: QueueState): void {
    if (st.inflight !== undefined || this.#closed) return;
    const getter = st.getters[0];
    if (getter === undefined) return;
    clearTimeout(getter.timer);
    const t = getter.deadline === undefined ? null : Math.max(0, getter.deadline - performance.now());
    st.inflight = this.#request({ op: "get", q, b: getter.block, t, m: BATCH }, { op: "get", q, getter });
    st.inflightFor = getter;
  }

  /** The number of items put and not yet got (approximate, as in Python). */
  qsize(id: number): Promise<number> {
    return this.#call(checkId(id), { op: "qsize" }) as Promise<number>;
  }

  /**
   * Marks `count` got items as processed (JoinableQueue).
   *
   * @throws {BrokerError} kind "range" when that is more than the unfinished items.
   */
  taskDone(id: number, count = 1): Promise<void> {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`count must be an integer >= 1, got ${count}`);
    return this.#call(checkId(id), { op: "taskDone", n: count }) as Promise<void>;
  }

  /** Resolves when every item put has been marked done (JoinableQueue). */
  join(id: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    checkId(id);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed) return Promise.reject(this.#closed);
    let r!: number;
    let call!: Call;
    const joined = new Promise<void>((resolve, reject) => {
      call = { resolve: resolve as (v: unknown) => void, reject };
      r = this.#request({ op: "join", q: id }, { op: "call", q: id, call });
    });
    return whileWaiting(joined, signal, () => {
      if (!this.#pending.delete(r)) return;
      this.#send({ op: "cancel", r });
      call.reject(signal!.reason);
      this.#unrefIfIdle();
    });
  }

  /**
   * Shuts the queue down for everyone (Python 3.13): puts fail from now on; gets
   * drain what is left (nothing, if `immediate`), then fail with kind "shutdown".
   */
  shutdown(id: number, options: { immediate?: boolean } = {}): Promise<void> {
    return this.#call(checkId(id), { op: "shutdown", i: options.immediate === true }) as Promise<void>;
  }

  /**
   * Counts pipe ends sending into the queue: "own" (made here), "lend" (a copy on
   * its way to a child), "adopt" (this isolate took a lent copy over), "drop" (one
   * closed). When none is left, or the last holder's connection ends, the queue
   * shuts down: readers see end of file.
   */
  writers(id: number, kind: "own" | "lend" | "adopt" | "drop"): Promise<void> {
    return this.#call(checkId(id), { op: "writers", k: kind }) as Promise<void>;
  }

  /**
   * Sends a request about a shared object that is not a queue (a lock, an event,
   * ...: see src/_broker_sync.ts). `reply` resolves with the broker's whole answer,
   * errors included (`e`); it rejects only when the connection is lost. Requests on
   * one connection are served in the order they were sent.
   */
  request(header: Record<string, unknown>): { r: number; reply: Promise<Record<string, unknown>> } {
    if (this.#closed) return { r: 0, reply: Promise.reject(this.#closed) };
    let r = 0;
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      const call = { resolve: resolve as (v: unknown) => void, reject };
      r = this.#request(header, { op: "raw", q: Number(header.q ?? 0), call });
    });
    return { r, reply };
  }

  /** Withdraws request `r`: the broker answers it with `e: "cancelled"`, unless it served it first. */
  cancel(r: number): void {
    if (this.#pending.has(r)) this.#send({ op: "cancel", r });
  }

  /** Drops this client's reference to the queue; the last reference frees it. */
  release(id: number): Promise<void> {
    return (this.#call(checkId(id), { op: "release" }) as Promise<void>).then(() => {
      // Forget the queue here too, unless a call on it is still under way.
      const st = this.#queues.get(id);
      if (st && st.getters.length === 0 && st.buffer.length === 0 && st.unconfirmed === 0) this.#queues.delete(id);
    });
  }

  /**
   * Resolves once the broker has everything this client sent so far (puts, acks),
   * and has confirmed every buffered put. A process that ends after this loses
   * nothing it put and gets nothing it acknowledged delivered again (Deno may still
   * hold written bytes when a process exits at once).
   */
  async settle(): Promise<void> {
    if (this.#closed) return;
    const ids = [...this.#queues].filter(([, st]) => st.unconfirmed > 0).map(([id]) => id);
    await Promise.all([this.#call(0, { op: "sync" }), ...ids.map((id) => this.flush(id))]);
  }

  /**
   * Writes what waits to be sent (batched puts, acks) now, synchronously: for exit
   * handlers, where no later turn of the event loop comes. (Node hands the bytes to
   * the OS at once; Deno and Bun may still hold them.)
   */
  flushNow(): void {
    this.#flush();
  }

  /** Closes the connection: pending calls fail with kind "closed"; prefetched items go back. */
  close(): void {
    if (this.#closed) return;
    this.#flush();
    this.#lost(new BrokerError("closed", `The connection to the broker at ${this.path} is closed`));
    this.#socket.destroy();
  }

  /** @internal Called once the connection has ended. */
  set onClose(handler: () => void) {
    this.#onClose = handler;
  }

  // ---------------------------------------------------------------- sending

  #state(id: number): QueueState {
    let st = this.#queues.get(id);
    if (st === undefined) this.#queues.set(id, st = new QueueState());
    return st;
  }

  #call(q: number, header: Record<string, unknown>): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      const global = header.op === "create" || header.op === "sync";
      this.#request(global ? header : { ...header, q }, { op: "call", q, call: { resolve, reject } });
    });
  }

  #request(header: Record<string, unknown>, pending: Pending): number {
    const r = this.#nextR++;
    this.#pending.set(r, pending);
    this.#ref();
    this.#send({ ...header, r });
    return r;
  }

  #send(header: Record<string, unknown>, items: Uint8Array[] = []): void {
    if (this.#closed) return;
    this.#out.push({ header, items });
    this.#flushSoon();
  }

  /** The put message to add `payload` to: the last one, if it is for the same queue and options. */
  #putMessage(
    q: number,
    payload: Uint8Array,
    options: { b: boolean; t: number | null },
    buffered: boolean,
    signal?: AbortSignal,
  ): Pending & { op: "put" } {
    const last = this.#out[this.#out.length - 1];
    this.#outBytes += payload.length + 4;
    if (
      last?.join === "put" && last.header.q === q && last.header.b === options.b && last.header.t === options.t &&
      last.pending!.buffered === buffered && signal === undefined
    ) {
      last.items.push(payload);
      return last.pending!;
    }
    const pending = { op: "put" as const, q, calls: [], buffered, signal };
    if (buffered) this.#state(q).unconfirmed++;
    // A put that may be cancelled travels alone: a cancel applies to a whole frame.
    const join = signal === undefined ? "put" as const : undefined;
    this.#out.push({ header: { op: "put", q, ...options }, items: [payload], join, pending });
    return pending;
  }

  /** Acknowledges one item handed out; it leaves before the caller can see the item. */
  #ack(q: number): void {
    const last = this.#out[this.#out.length - 1];
    if (last?.join === "ack" && last.header.q === q) (last.header.n as number)++;
    else this.#out.push({ header: { op: "ack", q, n: 1 }, items: [], join: "ack" });
    // The broker's own isolate dies with the broker, so its acks can wait for a batch.
    if (this.#lazyAcks) this.#flushLater();
    else this.#flushSoon();
  }

  /** Before the current task's promise reactions run (acks must precede them). */
  #flushSoon(): void {
    if (this.#soon) return;
    this.#soon = true;
    queueMicrotask(() => this.#flush());
  }

  /** After the current macrotask, so that a loop of buffered puts fills one frame. */
  #flushLater(): void {
    this.#later ??= setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#soon = false;
    if (this.#later !== undefined) clearImmediate(this.#later);
    this.#later = undefined;
    if (this.#out.length === 0 || this.#closed) return;
    // A consumer sends one ack per item it hands out: keep that write cheap.
    const only = this.#out.length === 1 ? this.#out[0] : undefined;
    if (only?.join === "ack" && only.header.n === 1) {
      this.#out = [];
      this.#outBytes = 0;
      return this.#write(this.#state(only.header.q as number).ackFrame ??= ackFrame(only.header.q as number, 1));
    }
    // Headers are encoded now, so that batches could grow until the last moment.
    const heads = this.#out.map((m) => {
      if (m.join === "ack") return ackFrame(m.header.q as number, m.header.n as number);
      if (m.pending) {
        const r = this.#nextR++;
        m.header.r = r;
        this.#pending.set(r, m.pending);
        this.#ref();
      }
      return encodeHeader(m.header);
    });
    let size = 0;
    for (let i = 0; i < heads.length; i++) {
      size += this.#out[i].join === "ack" ? heads[i].length : messageSize(heads[i], this.#out[i].items);
    }
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (let i = 0; i < heads.length; i++) {
      if (this.#out[i].join === "ack") {
        bytes.set(heads[i], offset);
        offset += heads[i].length;
      } else offset = writeMessage(bytes, offset, heads[i], this.#out[i].items);
    }
    this.#out = [];
    this.#outBytes = 0;
    this.#write(bytes);
  }

  #write(bytes: Uint8Array): void {
    // What the OS did not take at once waits in the runtime: stay alive until it
    // drains (an ack lost at exit would have its item delivered twice).
    if (!this.#socket.write(bytes)) {
      this.#congested ??= [];
      this.#ref();
    }
  }

  #ref(): void {
    if (!this.#refd) {
      this.#refd = true;
      this.#socket.ref();
    }
  }

  #unrefIfIdle(): void {
    if (this.#refd && this.#pending.size === 0 && !this.#congested) {
      this.#refd = false;
      this.#socket.unref();
    }
  }

  // ---------------------------------------------------------------- receiving

  #data(chunk: Uint8Array): void {
    const messages = this.#reader.push(chunk);
    if (messages === undefined) return this.#socket.destroy();
    for (const message of messages) this.#message(message);
    this.#unrefIfIdle();
  }

  #message(message: Message): void {
    const { header: h, items } = message;
    if (h.op === "revoke") return this.#revoke(h.q as number);
    if (h.op === "push") return this.#pushed(h.q as number, items);
    const r = h.r as number;
    const pending = this.#pending.get(r);
    if (pending === undefined) return;
    this.#pending.delete(r);
    const kind = h.e as BrokerErrorKind | undefined;
    const error = kind && new BrokerError(kind, describe(kind, pending.q));
    switch (pending.op) {
      case "raw":
        return pending.call.resolve(h);
      case "call":
        return error ? pending.call.reject(error) : pending.call.resolve(h.v);
      case "put":
        return this.#putDone(pending, error, (h.n as number | undefined) ?? 0);
      case "get":
        return this.#got(pending.q, items, error, pending.getter);
    }
  }

  #putDone(batch: Pending & { op: "put" }, error: BrokerError | undefined, accepted: number): void {
    if (batch.buffered) {
      const st = this.#state(batch.q);
      if (error && (error.kind === "shutdown" || error.kind === "closed")) st.error ??= error;
      if (--st.unconfirmed === 0) {
        for (const f of st.flushers.splice(0)) st.error ? f.reject(st.error) : f.resolve(undefined);
      }
      return;
    }
    batch.calls.forEach((call, i) => {
      if (!error || i < accepted) call.resolve(undefined);
      else if (error.kind === "cancelled") call.reject(batch.signal?.reason ?? error);
      else call.reject(error);
    });
  }

  /** Items the broker streams to this lone consumer, ahead of need. */
  #pushed(q: number, items: Uint8Array[]): void {
    const st = this.#state(q);
    for (const item of items) st.buffer.push(item);
    this.#handOut(q, st);
  }

  /** Serves waiting getters from the buffer, in order. */
  #handOut(q: number, st: QueueState): void {
    while (st.buffer.length > 0 && st.getters.length > 0) {
      const g = st.getters.shift()!;
      g.done = true;
      clearTimeout(g.timer);
      // Served by a push: its own request would only bring an item nobody wants.
      if (g === st.inflightFor && st.inflight !== undefined) this.#send({ op: "cancel", r: st.inflight });
      g.resolve(this.#take(q, st));
    }
  }

  #got(q: number, items: Uint8Array[], error: BrokerError | undefined, getter?: Getter): void {
    const st = this.#state(q);
    st.inflight = st.inflightFor = undefined;
    for (const item of items) st.buffer.push(item);
    this.#handOut(q, st);
    // The getter this request was for gets the broker's "empty" or "shutdown".
    if (error && getter && !getter.done && error.kind !== "cancelled") this.#drop(q, st, getter, error);
    // An item whose getter gave up while it travelled stays for the next get: the
    // broker serves no other consumer meanwhile, and revokes it if one waits.
    this.#pump(q, st);
  }

  /** The next item, acknowledged (see #ack). */
  #take(q: number, st: QueueState): Uint8Array {
    const item = st.buffer.shift()!;
    this.#ack(q);
    return item;
  }

  #giveBack(q: number, st: QueueState): void {
    this.#send({ op: "unlease", q, n: st.buffer.length });
    st.buffer.clear();
  }

  /** Another consumer waits: what this one has not handed out goes back. */
  #revoke(q: number): void {
    this.#giveBack(q, this.#state(q));
  }

  #lost(error: BrokerError): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const pending of this.#pending.values()) {
      if (pending.op === "call" || pending.op === "raw") pending.call.reject(error);
      else if (pending.op === "put") for (const call of pending.calls) call.reject(error);
    }
    for (const [, st] of this.#queues) {
      for (const g of st.getters) {
        clearTimeout(g.timer);
        if (!g.done) g.reject(error);
      }
      for (const f of st.flushers) f.reject(error);
      st.buffer.clear();
    }
    for (const call of this.#congested ?? []) call.reject(error);
    this.#pending.clear();
    this.#queues.clear();
    this.#congested = undefined;
    this.#onClose();
  }
}

// ------------------------------------------------------------------ the program's broker

interface BrokerState {
  authkey?: Uint8Array;
  path?: string;
  /** Set in the owner: resolves when its broker thread listens. */
  ready?: Promise<void>;
}
const state: BrokerState = {};
const clients = new Map<string, Promise<BrokerClient>>();
const connected = new Set<BrokerClient>();
const MAIN = new URL(`./_broker_main${/\.[cm]?[jt]s$/.exec(import.meta.url)?.[0] ?? ".js"}`, import.meta.url);

function programAuthkey(): Uint8Array {
  return state.authkey ??= runtime.net.randomBytes(32);
}

const DIR_PREFIX = "polyproc-broker-";

/** Starts this isolate's broker thread; returns its socket path at once. */
function startServer(): string {
  runtime.net.checkCanServe();
  const dir = makeOwnDir(DIR_PREFIX);
  const path = `${dir}/broker.sock`;
  const init: BrokerInit = { path, authkey: programAuthkey() };
  const handle = runtime.spawnWorker(MAIN, { init });
  runtime.onExit(() => runtime.net.removeDir(dir));
  state.ready = new Promise((resolve, reject) => {
    handle.onMessage((m) => {
      const report = m as BrokerReport;
      if (report.type === "failed") reject(new BrokerError("lost", `The broker could not start: ${report.message}`));
      else resolve();
      handle.unref(); // ready or not, the thread must not keep the program alive
    });
    handle.onExit(() => reject(new BrokerError("lost", "The broker thread ended")));
  });
  state.ready.catch(() => {});
  return path;
}

/**
 * The socket path of this program's broker, starting the broker (in a worker thread
 * of this isolate) when none exists or was inherited. Synchronous, so that a queue
 * constructor can name its broker at once; clients wait for it to listen.
 *
 * @throws {StartMethodError} when the runtime forbids it (Deno without --allow-net, ...).
 */
export function brokerPath(): string {
  return state.path ??= startServer();
}

/**
 * The client of this program's broker, for this isolate: connects (and, in the
 * isolate that owns no inherited broker, first starts it) on first use.
 */
export async function getBroker(): Promise<BrokerClient> {
  return await connectBroker(brokerPath());
}

/** The client of the broker at `path` (this program's key), one per isolate and path. */
export function connectBroker(path: string): Promise<BrokerClient> {
  let client = clients.get(path);
  if (client === undefined) {
    client = (async () => {
      const owned = path === state.path && state.ready !== undefined;
      if (owned) await state.ready;
      const c = await BrokerClient.connect(path, programAuthkey(), { lazyAcks: owned });
      connected.add(c);
      c.onClose = () => {
        clients.delete(path);
        connected.delete(c);
      };
      return c;
    })();
    clients.set(path, client);
    client.catch(() => clients.delete(path));
  }
  return client;
}

/**
 * {@linkcode BrokerClient.settle} for every client of this isolate: a child awaits
 * this before it ends. Failures of buffered puts are ignored here (the puts that
 * made them have been told, or will be by the next put).
 */
export async function settleBrokers(): Promise<void> {
  await Promise.all([...connected].map((client) => client.settle().catch(() => {})));
}

/** {@linkcode BrokerClient.flushNow} for every client of this isolate: for exit handlers. */
export function flushBrokersNow(): void {
  for (const client of connected) client.flushNow();
}

/** What a child is handed in its start message: the program's key, and the broker's socket if any. */
export function brokerForChild(): BrokerInheritance {
  return { authkey: programAuthkey(), path: state.path };
}

/** Records, in a child, what its parent handed down. */
export function inheritBroker(inherited: BrokerInheritance | undefined): void {
  if (inherited === undefined) return;
  state.authkey = inherited.authkey;
  state.path = inherited.path;
}

/** A fresh queue id for {@linkcode BrokerClient.open}, unique in the program (random, above 2^32). */
export function newQueueId(): number {
  const b = runtime.net.randomBytes(6);
  return 2 ** 32 + (((b[0] << 16) | (b[1] << 8) | b[2]) * 2 ** 24 + ((b[3] << 16) | (b[4] << 8) | b[5]));
}
