/**
 * The client side of a manager: links to a server, and the proxies that call
 * methods of the objects it holds (Python's `BaseProxy` and its kinds).
 *
 * A link is one authenticated socket per isolate and server, shared by every proxy
 * of that server (Python opens one per thread; here calls are pipelined on one
 * socket, matched to replies by a request number). Inside the server's own isolate
 * a proxy (one stored in a list, say) talks to the server directly instead.
 *
 * Lifetimes are Python's reference counts, held per connection: the server keeps
 * an object while some connection holds a reference, and a connection that ends
 * gives up all of its references. A proxy sent somewhere is *lent* (the sender says
 * so first, on its own connection) and *adopted* by the receiver, so the object
 * cannot be freed while the copy is on its way, whichever message arrives first.
 *
 * @module
 */
import {
  clientHello,
  encodeMessage,
  encodeMessages,
  type Message,
  MessageReader,
} from "./_broker_wire.ts";
import { Waker } from "./_awake.ts";
import { fromRecord, prepare, toRecord } from "./_codec.ts";
import { AuthenticationError, ProcessError } from "./errors.ts";
import { runtime } from "./runtime/detect.ts";
import type { NetAddress, NetSocket } from "./runtime/types.ts";
import { registerReducer } from "./serialization.ts";

/** The largest frame a manager's peer may announce; more drops the connection. */
export const MAX_MANAGER_FRAME = 2 ** 28;

/** What names an object on a server: Python's `Token`. */
export interface Token {
  address: NetAddress;
  /** The server's own name for itself: one server reached by two spellings of its address is still one. */
  server: string;
  id: number;
  typeid: string;
  exposed: string[];
}

/** A way to send requests to one server: a socket, or a direct call inside the server's isolate. */
export interface Link {
  /**
   * Sends a request and resolves with the reply; `header` is the link's now (it adds
   * the request number). When `signal` aborts, the server is
   * asked to withdraw the call; the reply still decides (a call that completed
   * first keeps its result, so nothing it took is lost).
   */
  request(header: Record<string, unknown>, items?: Uint8Array[], signal?: AbortSignal): Promise<Message>;
  /** Sends a message that has no reply (lend, adopt, decref), in order with requests. */
  notify(header: Record<string, unknown>): void;
  /** Whether values must be written portably (the server runs on another runtime); undefined until known. */
  readonly portable: boolean | undefined;
  /** Resolves once connected, with {@linkcode Link.portable}. */
  ready(): Promise<boolean>;
}

/** A key for an address, for maps. */
export function addressKey(address: NetAddress): string {
  return typeof address === "string" ? `unix:${address}` : `tcp:${address.host}:${address.port}`;
}

/** Servers running in this isolate, by address and by server name: their proxies skip the socket. */
export const localServers: Map<string, () => Link> = new Map();

/** Bytes for one value (arguments, results, errors); `portable` for a peer on another runtime. */
export function encodeValue(value: unknown, what: string, portable = false): Uint8Array {
  return toRecord(prepare(value, what, portable));
}

export const decodeValue: (bytes: Uint8Array) => unknown = fromRecord;

/**
 * Whether a value survives JSON unchanged (finite numbers but -0, strings, booleans,
 * null): such arguments and results ride in the message header, skipping the
 * runtime's serializer, which costs more than the whole round trip otherwise.
 */
export function isJsonPlain(value: unknown): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    default:
      return value === null;
  }
}

const NO_ITEMS: Uint8Array[] = [];

/** A request's header (given `args`) and items, for a call of `name`. */
export function withArgs(header: Record<string, unknown>, args: unknown[], name: string, portable: boolean): [Record<string, unknown>, Uint8Array[]] {
  if (!args.every(isJsonPlain)) return [header, [encodeValue(args, `${name}() arguments`, portable)]];
  header.a = args;
  return [header, NO_ITEMS];
}

function describeAddress(address: NetAddress): string {
  return typeof address === "string" ? address : `${address.host}:${address.port}`;
}

/**
 * Connects to a manager server and runs the handshake both ways.
 *
 * @throws {AuthenticationError} if either side's key is wrong.
 * @throws {ProcessError} (with the socket error's `code`) if nobody listens there.
 */
export async function connectManager(address: NetAddress, authkey: Uint8Array): Promise<NetSocket> {
  let socket: NetSocket;
  try {
    socket = await runtime.net.connect(address);
  } catch (err) {
    const error = new ProcessError(`Cannot connect to the manager at ${describeAddress(address)}: ${(err as Error).message}`);
    Object.assign(error, { code: (err as { code?: string }).code });
    throw error;
  }
  await clientHello(socket, authkey, {
    lost: () => Object.assign(new ProcessError(`Cannot connect to the manager at ${describeAddress(address)}: it hung up before the handshake`), { code: "ECONNRESET" }),
    refused: () => new AuthenticationError("digest sent was rejected"),
    impostor: () => new AuthenticationError("digest received was wrong: the server does not hold this key"),
  });
  return socket;
}

interface Call {
  resolve(message: Message): void;
  reject(error: unknown): void;
}

/**
 * The names of the thread channels between `server` and one client: one per direction,
 * each with a single listener (a BroadcastChannel without one queues what it hears).
 */
export function channelNames(server: string, client: string): { requests: string; replies: string } {
  const name = `polyproc.manager.${server}.${client}`;
  return { requests: `${name}.requests`, replies: `${name}.replies` };
}

/** What is used of a BroadcastChannel (typed here: not every lib the build checks with declares its type). */
export interface Channel {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  /** Node's: whether a listening channel keeps the program alive. */
  ref?(): void;
  unref?(): void;
}

/** `bytes` random bytes in hex: a name nobody else picks (a server's, a client's channel). */
export function randomName(bytes: number): string {
  return [...runtime.net.randomBytes(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A thread channel named `name`. */
export function openChannel(name: string): Channel {
  return new BroadcastChannel(name) as unknown as Channel;
}

/** One socket to a server, shared by this isolate's proxies; connects on first use. */
export class SocketLink implements Link {
  readonly address: NetAddress;
  #socket: Promise<NetSocket>;
  /** The socket, once ready for calls. */
  #connected: NetSocket | undefined;
  #pending = new Map<number, Call>();
  #nextR = 1;
  #out: Message[] = [];
  #scheduled = false;
  #lost: Error | undefined;
  #onLost: () => void;
  /** When the server runs in this process: requests go to it, and replies come back, by thread channels. */
  #channel: { requests: Channel; replies: Channel } | undefined;
  #waker = new Waker();
  portable: boolean | undefined;

  constructor(address: NetAddress, authkey: Uint8Array, onLost: () => void = () => {}) {
    this.address = address;
    this.#onLost = onLost;
    this.#socket = connectManager(address, authkey).then(async (socket) => {
      const reader = new MessageReader(MAX_MANAGER_FRAME);
      socket.onData((chunk) => {
        const messages = reader.push(chunk);
        if (messages === undefined) return socket.destroy();
        this.#receive(messages);
        if (this.#pending.size === 0) socket.unref();
      });
      socket.onClose(() => this.#fail(new ProcessError(`Lost the connection to the manager at ${describeAddress(address)}`)));
      // Each side says how it writes values; a server on another runtime gets portable ones.
      const hello = await this.#ask(socket, { op: "hello", f: runtime.serialFormat });
      this.portable = hello.header.f !== runtime.serialFormat;
      if (runtime.net.threadChannels && hello.header.p === runtime.pid && typeof hello.header.s === "string") {
        await this.#openChannel(socket, hello.header.s);
      }
      // Idle proxies must not keep a program alive; a call in flight does. The socket stays
      // open when calls go by channel: its end tells the server that this client is gone.
      if (this.#pending.size === 0) this.#unref(socket);
      this.#connected = socket;
      return socket;
    });
    this.#socket.catch((err) => this.#fail(err));
  }

  /** A request on the socket itself, before the link is ready. */
  #ask(socket: NetSocket, header: Record<string, unknown>): Promise<Message> {
    const r = this.#nextR++;
    const reply = new Promise<Message>((resolve, reject) => this.#pending.set(r, { resolve, reject }));
    socket.write(encodeMessage({ ...header, r }));
    return reply;
  }

  #receive(messages: Message[]): void {
    this.#waker.answered();
    for (const m of messages) {
      const call = this.#pending.get(m.header.r as number);
      if (call === undefined) continue;
      this.#pending.delete(m.header.r as number);
      call.resolve(m);
    }
    if (this.#pending.size === 0 && this.#channel !== undefined) this.#channel.replies.unref?.();
  }

  /**
   * Moves calls to thread channels: a server in this process (same pid) answers a probe
   * on this client's channel. One in another pid namespace cannot, and the socket stays.
   */
  async #openChannel(socket: NetSocket, server: string): Promise<void> {
    const id = randomName(16);
    const names = channelNames(server, id);
    const replies = openChannel(names.replies);
    let probed!: () => void;
    const probe = new Promise<void>((resolve) => (probed = resolve));
    replies.onmessage = (e) => (e.data === "probe" ? probed() : this.#receive(e.data as Message[]));
    await this.#ask(socket, { op: "channel", c: id });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reached = await Promise.race([probe.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, 5_000, false)))]);
    clearTimeout(timer);
    if (reached) this.#channel = { requests: openChannel(names.requests), replies };
    else replies.close();
  }

  #unref(socket: NetSocket): void {
    socket.unref();
    this.#channel?.replies.unref?.();
  }

  /** Resolves once connected and authenticated, with {@linkcode SocketLink.portable}. */
  async ready(): Promise<boolean> {
    await this.#socket;
    return this.portable!;
  }

  #fail(err: Error): void {
    if (this.#lost) return;
    this.#lost = err;
    this.#onLost();
    this.#channel?.requests.close();
    this.#channel?.replies.close();
    for (const call of this.#pending.values()) call.reject(err);
    this.#pending.clear();
  }

  request(header: Record<string, unknown>, items: Uint8Array[] = NO_ITEMS, signal?: AbortSignal): Promise<Message> {
    if (this.#lost) return Promise.reject(this.#lost);
    const r = this.#nextR++;
    const reply = new Promise<Message>((resolve, reject) => this.#pending.set(r, { resolve, reject }));
    header.r = r;
    this.#send(header, items);
    if (signal === undefined) return reply;
    const cancel = () => this.notify({ op: "cancel", r });
    signal.addEventListener("abort", cancel, { once: true });
    const forget = () => signal.removeEventListener("abort", cancel);
    reply.then(forget, forget);
    return reply;
  }

  notify(header: Record<string, unknown>): void {
    if (!this.#lost) this.#send(header, NO_ITEMS);
  }

  // Everything sent in one turn leaves in one write (or one post): pipelined calls cost one syscall.
  #send(header: Record<string, unknown>, items: Uint8Array[]): void {
    this.#out.push({ header, items });
    if (this.#scheduled) return;
    this.#scheduled = true;
    if (this.#connected !== undefined) queueMicrotask(this.#flush);
    else void this.#socket.then(this.#flush, () => {});
  }

  #flush = (): void => {
    this.#scheduled = false;
    const messages = this.#out;
    this.#out = [];
    // Lost meanwhile: the calls were failed already.
    if (this.#lost) return;
    const socket = this.#connected!;
    const channel = this.#channel;
    const waiting = this.#pending.size > 0;
    if (waiting) this.#waker.sent();
    if (channel !== undefined) {
      if (waiting) channel.replies.ref?.();
      return channel.requests.postMessage(messages);
    }
    if (waiting) socket.ref();
    socket.write(encodeMessages(messages));
  };

  /** Asks the server to drop this isolate's references and waits (at most `timeout` ms), then closes. */
  async release(timeout: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout)));
    await Promise.race([this.request({ op: "release" }).catch(() => {}), late]);
    clearTimeout(timer);
    await this.close();
  }

  /** Closes the socket: the server drops this isolate's references. */
  async close(): Promise<void> {
    this.#fail(new ProcessError(`The connection to the manager at ${describeAddress(this.address)} is closed`));
    try {
      (await this.#socket).destroy();
    } catch {
      // never connected: nothing to close
    }
  }
}

const links = new Map<string, SocketLink>();
const keys = new Map<string, Uint8Array>();

/** The link of this isolate to the server at `address` (made on first use); `server` is its name, if known. */
export function linkFor(address: NetAddress, authkey: Uint8Array, server?: string): Link {
  const key = addressKey(address);
  const local = (server !== undefined ? localServers.get(server) : undefined) ?? localServers.get(key);
  if (local !== undefined) return local();
  let link = links.get(key);
  if (link === undefined || !sameBytes(keys.get(key)!, authkey)) {
    link = new SocketLink(address, authkey, () => {
      if (links.get(key) === link) links.delete(key);
    });
    links.set(key, link);
    keys.set(key, authkey);
  }
  return link;
}

/**
 * Gives up every reference this isolate holds and closes its links, once each server
 * said it dropped them (at most `timeout` ms each): a child's last step, so that its
 * parent, once join() returns, sees what only the child held freed (Python's child
 * sends its decrefs at exit and waits for each).
 */
export async function releaseAll(timeout = 2_000): Promise<void> {
  await Promise.all([...links.values()].map((link) => link.release(timeout)));
  links.clear();
}

/** Forgets (and closes) this isolate's link to `address`. */
export async function closeLink(address: NetAddress): Promise<void> {
  const key = addressKey(address);
  const link = links.get(key);
  links.delete(key);
  await link?.close();
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The reply of a call: its value, a new proxy, or the rebuilt server-side error. */
export function replyValue(m: Message, address: NetAddress, authkey: Uint8Array, link: Link): unknown {
  const h = m.header;
  if (typeof h.id === "number") {
    return makeProxy({ address, server: String(h.s), id: h.id, typeid: String(h.t), exposed: h.x as string[] }, authkey, link);
  }
  if ("v" in h) return h.v;
  const value = m.items.length > 0 ? decodeValue(m.items[0]) : undefined;
  if (h.e) throw value;
  return value;
}

const finalizer = new FinalizationRegistry<{ link: Link; id: number }>(({ link, id }) => {
  link.notify({ op: "decref", id });
});

/**
 * A reference to an object held by a manager's server (Python's `BaseProxy`).
 * Every method is a call to the server, so every method is async. Proxies can be
 * passed to children of either start method, stored in other proxies, and are
 * copied as working proxies to the same object.
 *
 * The object lives while some proxy to it does: `close()` gives this one up at
 * once (otherwise the garbage collector does, later).
 */
export class BaseProxy {
  #token: Token;
  #authkey: Uint8Array;
  #link: Link;
  #closed = false;

  /** @internal Proxies come from a manager's factories, or from being received. */
  constructor(token: Token, authkey: Uint8Array, link: Link = linkFor(token.address, authkey, token.server)) {
    this.#token = token;
    this.#authkey = authkey;
    this.#link = link;
    finalizer.register(this, { link, id: token.id }, this);
  }

  /** The type name the object was made under ("list", "dict", or a registered typeid). */
  get typeid(): string {
    return this.#token.typeid;
  }

  /** The object's id on its server. */
  get id(): number {
    return this.#token.id;
  }

  /**
   * Calls `method` of the object with `args` on the server (Python's `_callmethod`):
   * the way to a method this proxy kind has no wrapper for. A method the server
   * does not expose rejects with RemoteError.
   */
  async callMethod(method: string, args: unknown[] = [], options: { signal?: AbortSignal } = {}): Promise<unknown> {
    if (this.#closed) throw new ProcessError(`Cannot call ${method}() on a ${this.typeid} proxy: proxy is closed`);
    const { signal } = options;
    if (signal?.aborted) throw signal.reason;
    const link = this.#link;
    const portable = link.portable ?? await link.ready();
    const [header, items] = withArgs({ op: "call", id: this.#token.id, m: method }, args, method, portable);
    const reply = await this.#link.request(header, items, signal);
    // Withdrawn by the server: the caller sees its own abort reason.
    if (reply.header.e && reply.header.c) throw signal?.reason;
    return replyValue(reply, this.#token.address, this.#authkey, this.#link);
  }

  /** Gives up this proxy's reference now; the object is freed when no proxy holds it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    finalizer.unregister(this);
    this.#link.notify({ op: "decref", id: this.#token.id });
  }

  /** @internal The name of the proxy's server. */
  get _server(): string {
    return this.#token.server;
  }

  /** @internal The state a copy is rebuilt from; the server is told a copy is on its way. */
  _reduce(): unknown {
    if (this.#closed) throw new TypeError(`a closed ${this.typeid} proxy cannot be sent`);
    this.#link.notify({ op: "lend", id: this.#token.id });
    // The key travels with the proxy, as Python's does to a spawned child: every
    // path a value takes here (child start messages, the broker, the manager) is private.
    return { token: this.#token, authkey: this.#authkey };
  }

  /** @internal */
  toString(): string {
    return `<${this.constructor.name} object, typeid '${this.typeid}' id ${this.id}>`;
  }
}

type Entries<K, V> = Map<K, V> | Record<string, V> | Iterable<[K, V]>;

/** Options of a manager queue's `put()` and `get()`. */
export interface ProxyWaitOptions {
  /** Wait for room or an item (default true); false fails at once. */
  block?: boolean;
  /** Milliseconds to wait at most, when blocking; default forever. */
  timeout?: number;
  /** Aborting withdraws the wait (rejecting with `signal.reason`) unless it was served first. */
  signal?: AbortSignal;
}

/** A `Manager().Array(typecode, init)`: a fixed-length list (and what a list proxy can do besides growing). */
export class ArrayProxy<T = number> extends BaseProxy {
  get(i: number): Promise<T> {
    return this.callMethod("get", [i]) as Promise<T>;
  }
  set(i: number, v: T): Promise<void> {
    return this.callMethod("set", [i, v]) as Promise<void>;
  }
  length(): Promise<number> {
    return this.callMethod("length") as Promise<number>;
  }
  /** A copy of the whole list (Python's `l[:]`). */
  toArray(): Promise<T[]> {
    return this.callMethod("toArray") as Promise<T[]>;
  }
  /** A copy of `l[start:end]`. */
  slice(start?: number, end?: number): Promise<T[]> {
    return this.callMethod("slice", [start, end]) as Promise<T[]>;
  }
}

/**
 * A `Manager().list()` (Python's ListProxy). Negative indices count from the end;
 * `for await` walks it index by index, so it sees changes made meanwhile (as Python's does).
 */
export class ListProxy<T = unknown> extends ArrayProxy<T> implements AsyncIterable<T> {
  append(x: T): Promise<void> {
    return this.callMethod("append", [x]) as Promise<void>;
  }
  extend(xs: Iterable<T>): Promise<void> {
    return this.callMethod("extend", [[...xs]]) as Promise<void>;
  }
  /** Removes the item at `i` (Python's `del l[i]`). */
  delete(i: number): Promise<void> {
    return this.callMethod("delete", [i]) as Promise<void>;
  }
  pop(i?: number): Promise<T> {
    return this.callMethod("pop", i === undefined ? [] : [i]) as Promise<T>;
  }
  insert(i: number, x: T): Promise<void> {
    return this.callMethod("insert", [i, x]) as Promise<void>;
  }
  /** Removes the first item equal to `x`; RangeError if there is none (Python's ValueError). */
  remove(x: T): Promise<void> {
    return this.callMethod("remove", [x]) as Promise<void>;
  }
  index(x: T, start?: number, end?: number): Promise<number> {
    return this.callMethod("index", [x, start, end].filter((a) => a !== undefined)) as Promise<number>;
  }
  count(x: T): Promise<number> {
    return this.callMethod("count", [x]) as Promise<number>;
  }
  /** Sorts in place: numbers by value, strings by code unit (no key function: it could not reach the server). */
  sort(options: { reverse?: boolean } = {}): Promise<void> {
    return this.callMethod("sort", [{ reverse: options.reverse === true }]) as Promise<void>;
  }
  reverse(): Promise<void> {
    return this.callMethod("reverse") as Promise<void>;
  }
  clear(): Promise<void> {
    return this.callMethod("clear") as Promise<void>;
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (let i = 0; i < await this.length(); i++) yield await this.get(i);
  }
}

/** A `Manager().dict()` (Python's DictProxy): a Map on the server; `for await` yields its keys (see its iterator). */
export class DictProxy<K = string, V = unknown> extends BaseProxy implements AsyncIterable<K> {
  /** The value of `k`, or `fallback` (default undefined) if it has none. */
  get(k: K, fallback?: V): Promise<V | undefined> {
    return this.callMethod("get", fallback === undefined ? [k] : [k, fallback]) as Promise<V | undefined>;
  }
  /** The value of `k`; RangeError "KeyError" if it has none (Python's `d[k]`). */
  getItem(k: K): Promise<V> {
    return this.callMethod("getItem", [k]) as Promise<V>;
  }
  set(k: K, v: V): Promise<void> {
    return this.callMethod("set", [k, v]) as Promise<void>;
  }
  /** Removes `k`; resolves to whether it was there. */
  delete(k: K): Promise<boolean> {
    return this.callMethod("delete", [k]) as Promise<boolean>;
  }
  has(k: K): Promise<boolean> {
    return this.callMethod("has", [k]) as Promise<boolean>;
  }
  keys(): Promise<K[]> {
    return this.callMethod("keys") as Promise<K[]>;
  }
  values(): Promise<V[]> {
    return this.callMethod("values") as Promise<V[]>;
  }
  items(): Promise<[K, V][]> {
    return this.callMethod("items") as Promise<[K, V][]>;
  }
  update(other: Entries<K, V>): Promise<void> {
    const plain = other instanceof Map || Array.isArray(other) || !(Symbol.iterator in Object(other)) ? other : [...(other as Iterable<[K, V]>)];
    return this.callMethod("update", [plain]) as Promise<void>;
  }
  /** Removes `k` and resolves to its value; without a `fallback`, a missing key is RangeError "KeyError". */
  pop(k: K, ...fallback: [V?]): Promise<V> {
    return this.callMethod("pop", [k, ...fallback]) as Promise<V>;
  }
  setdefault(k: K, v?: V): Promise<V> {
    return this.callMethod("setdefault", [k, v]) as Promise<V>;
  }
  clear(): Promise<void> {
    return this.callMethod("clear") as Promise<void>;
  }
  length(): Promise<number> {
    return this.callMethod("length") as Promise<number>;
  }
  /** A plain-object copy (keys as strings). */
  toObject(): Promise<Record<string, V>> {
    return this.callMethod("toObject") as Promise<Record<string, V>>;
  }
  /** A Map copy. */
  toMap(): Promise<Map<K, V>> {
    return this.callMethod("toMap") as Promise<Map<K, V>>;
  }
  /**
   * Yields the keys; like Python's, it fails (Error "dictionary changed size during
   * iteration") at the next step after the dict gained or lost keys, which costs a
   * round trip per key.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<K> {
    const keys = await this.keys();
    for (let i = 0; i <= keys.length; i++) {
      // Python checks at every step after the first, the last (which would end) included.
      if (i > 0 && (await this.length()) !== keys.length) throw new Error("dictionary changed size during iteration");
      if (i < keys.length) yield keys[i];
    }
  }
}

/** A `Manager().Namespace()`: named attributes, read and written with `get(name)` and `set(name, v)`. */
export class NamespaceProxy extends BaseProxy {
  get<T = unknown>(name: string): Promise<T | undefined> {
    return this.callMethod("get", [name]) as Promise<T | undefined>;
  }
  set(name: string, v: unknown): Promise<void> {
    return this.callMethod("set", [name, v]) as Promise<void>;
  }
  delete(name: string): Promise<boolean> {
    return this.callMethod("delete", [name]) as Promise<boolean>;
  }
  has(name: string): Promise<boolean> {
    return this.callMethod("has", [name]) as Promise<boolean>;
  }
  toObject(): Promise<Record<string, unknown>> {
    return this.callMethod("toObject") as Promise<Record<string, unknown>>;
  }  /** Python's `str(ns)`: "Namespace(a=1, b=\"x\")" (names starting with "_" left out, as Python's). toString() is sync, so cannot. */
  repr(): Promise<string> {
    return this.callMethod("repr") as Promise<string>;
  }
}

/** A `Manager().Value(typecode, v)`: one value of any kind (the typecode is kept, not enforced, as in Python). */
export class ValueProxy<T = unknown> extends BaseProxy {
  get(): Promise<T> {
    return this.callMethod("get") as Promise<T>;
  }
  set(v: T): Promise<void> {
    return this.callMethod("set", [v]) as Promise<void>;
  }
}

function waitArgs(options: ProxyWaitOptions): [ProxyWaitOptions] {
  const { block, timeout } = options;
  if (block !== undefined && typeof block !== "boolean") throw new TypeError("block must be a boolean");
  if (timeout !== undefined && (typeof timeout !== "number" || !(timeout >= 0))) {
    throw new RangeError(`timeout must be a non-negative number of milliseconds, got ${String(timeout)}`);
  }
  return [{ block, timeout }];
}

/**
 * A `Manager().Queue()` or `.JoinableQueue()` (Python's queue.Queue behind a proxy).
 * Unlike a plain {@linkcode Queue}, it can be stored in other proxies and reached by
 * `connect()`ed clients. A blocked `get()` whose caller disconnects takes nothing.
 */
export class QueueProxy<T = unknown> extends BaseProxy {
  /** Puts `item`; with a maxsize, waits for room (QueueFullError at the timeout, or at once if not blocking). */
  put(item: T, options: ProxyWaitOptions = {}): Promise<void> {
    return this.callMethod("put", [item, ...waitArgs(options)], options) as Promise<void>;
  }
  /** Takes the next item; QueueEmptyError at the timeout, or at once if not blocking. */
  get(options: ProxyWaitOptions = {}): Promise<T> {
    return this.callMethod("get", waitArgs(options), options) as Promise<T>;
  }
  putNowait(item: T): Promise<void> {
    return this.callMethod("putNowait", [item]) as Promise<void>;
  }
  getNowait(): Promise<T> {
    return this.callMethod("getNowait") as Promise<T>;
  }
  qsize(): Promise<number> {
    return this.callMethod("qsize") as Promise<number>;
  }
  empty(): Promise<boolean> {
    return this.callMethod("empty") as Promise<boolean>;
  }
  full(): Promise<boolean> {
    return this.callMethod("full") as Promise<boolean>;
  }
  /** JoinableQueue only: marks a got item as processed (RangeError if called too often). */
  taskDone(): Promise<void> {
    return this.callMethod("taskDone") as Promise<void>;
  }
  /** JoinableQueue only: resolves once every item put has been marked done. */
  join(): Promise<void> {
    return this.callMethod("join") as Promise<void>;
  }
}

/** Options of a manager lock's `acquire()`. */
export interface ProxyAcquireOptions {
  /** Wait for the lock (default true); false answers at once. */
  block?: boolean;
  /** Milliseconds to wait at most; then `acquire()` resolves to false. */
  timeout?: number;
  /** Aborting withdraws the wait (rejecting with `signal.reason`) unless the lock was got first. */
  signal?: AbortSignal;
}

/**
 * A `Manager().Lock()`, `.RLock()`, `.Semaphore()` or `.BoundedSemaphore()`, held on
 * the server. Ownership is per connection, that is per process (or worker) and
 * manager, as Python's is per server thread: all async functions of one process share it.
 */
export class AcquirerProxy extends BaseProxy {
  /** Resolves to true once acquired, false if not blocking or at the timeout. */
  acquire(options: ProxyAcquireOptions = {}): Promise<boolean> {
    return this.callMethod("acquire", [{ block: options.block, timeout: options.timeout }], options) as Promise<boolean>;
  }
  /** RangeError when a Lock is not locked or a BoundedSemaphore is over-released; ProcessError for an RLock held elsewhere. */
  release(): Promise<void> {
    return this.callMethod("release") as Promise<void>;
  }
  locked(): Promise<boolean> {
    return this.callMethod("locked") as Promise<boolean>;
  }
  /** Semaphores only: the current value. */
  getValue(): Promise<number> {
    return this.callMethod("getValue") as Promise<number>;
  }
  /** Runs `fn` holding the lock (Python's `with lock:`), releasing it however `fn` ends. */
  async withLock<R>(fn: () => R | PromiseLike<R>): Promise<Awaited<R>> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      await this.release();
    }
  }
}

/** A `Manager().Event()`. */
export class EventProxy extends BaseProxy {
  set(): Promise<void> {
    return this.callMethod("set") as Promise<void>;
  }
  clear(): Promise<void> {
    return this.callMethod("clear") as Promise<void>;
  }
  isSet(): Promise<boolean> {
    return this.callMethod("isSet") as Promise<boolean>;
  }
  /** Resolves to true once set, or to the flag at the timeout (milliseconds). */
  wait(timeout?: number): Promise<boolean> {
    return this.callMethod("wait", timeout === undefined ? [] : [timeout]) as Promise<boolean>;
  }
}

/** A `Manager().Condition(lock?)`: on the given Lock or RLock proxy's lock, else its own RLock; held by connection. */
export class ConditionProxy extends AcquirerProxy {
  /** Releases the lock, waits for a notify (or the timeout: false), and takes the lock back. */
  wait(timeout?: number): Promise<boolean> {
    return this.callMethod("wait", timeout === undefined ? [] : [timeout]) as Promise<boolean>;
  }
  /** Waits until `predicate()` is truthy (evaluated here, holding the lock); its last value. */
  async waitFor<T>(predicate: () => T | PromiseLike<T>, timeout?: number): Promise<T> {
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    let result = await predicate();
    while (!result) {
      const left = deadline === undefined ? undefined : deadline - Date.now();
      if (left !== undefined && left <= 0) break;
      await this.wait(left);
      result = await predicate();
    }
    return result;
  }
  notify(n = 1): Promise<void> {
    return this.callMethod("notify", [n]) as Promise<void>;
  }
  notifyAll(): Promise<void> {
    return this.callMethod("notifyAll") as Promise<void>;
  }
}

/** A `Manager().Barrier(parties)`. */
export class BarrierProxy extends BaseProxy {
  /** Resolves to this party's index once all have arrived; BrokenBarrierError if broken or timed out. */
  wait(timeout?: number): Promise<number> {
    return this.callMethod("wait", timeout === undefined ? [] : [timeout]) as Promise<number>;
  }
  abort(): Promise<void> {
    return this.callMethod("abort") as Promise<void>;
  }
  reset(): Promise<void> {
    return this.callMethod("reset") as Promise<void>;
  }
  nWaiting(): Promise<number> {
    return this.callMethod("nWaiting") as Promise<number>;
  }
  broken(): Promise<boolean> {
    return this.callMethod("broken") as Promise<boolean>;
  }
  parties(): Promise<number> {
    return this.callMethod("getParties") as Promise<number>;
  }
}

/** An iterator that a registered type's method returned, left on the server and walked with `for await`. */
export class IteratorProxy<T = unknown> extends BaseProxy implements AsyncIterable<T> {
  next(): Promise<IteratorResult<T>> {
    return this.callMethod("next") as Promise<IteratorResult<T>>;
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (let r = await this.next(); !r.done; r = await this.next()) yield r.value;
  }
}

/**
 * The proxy of a registered type (Python's AutoProxy): each exposed method of the
 * object is an async method here. Type it with the object's class: `AutoProxy<Foo>`.
 */
export type AutoProxy<T> = BaseProxy & { [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never };

class AutoProxyBase extends BaseProxy {}

// A JavaScript Proxy around the BaseProxy: an exposed name becomes a call. Own
// members are bound to the target, since their #fields are not on the wrapper.
function autoProxy(token: Token, authkey: Uint8Array, link: Link): BaseProxy {
  const base = new AutoProxyBase(token, authkey, link);
  const exposed = new Set(token.exposed);
  return new Proxy(base, {
    get(target, prop) {
      if (typeof prop === "string" && exposed.has(prop) && !(prop in target)) {
        return (...args: unknown[]) => target.callMethod(prop, args);
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
    has: (target, prop) => (typeof prop === "string" && exposed.has(prop)) || prop in target,
  });
}

const KINDS: Record<string, new (token: Token, authkey: Uint8Array, link: Link) => BaseProxy> = {
  list: ListProxy,
  dict: DictProxy,
  Namespace: NamespaceProxy,
  Value: ValueProxy,
  Array: ArrayProxy,
  Queue: QueueProxy,
  JoinableQueue: QueueProxy,
  Iterator: IteratorProxy,
  Lock: AcquirerProxy,
  RLock: AcquirerProxy,
  Semaphore: AcquirerProxy,
  BoundedSemaphore: AcquirerProxy,
  Event: EventProxy,
  Condition: ConditionProxy,
  Barrier: BarrierProxy,
};

/** The proxy kind for a token's typeid. */
export function makeProxy(token: Token, authkey: Uint8Array, link = linkFor(token.address, authkey, token.server)): BaseProxy {
  const kind = KINDS[token.typeid];
  return kind === undefined ? autoProxy(token, authkey, link) : new kind(token, authkey, link);
}

for (const cls of [...new Set(Object.values(KINDS)), AutoProxyBase]) {
  registerReducer(cls as typeof BaseProxy, "manager-proxy", {
    reduce: (proxy: BaseProxy) => proxy._reduce(),
    rebuild(state) {
      const { token, authkey } = state as { token: Token; authkey: Uint8Array };
      const link = linkFor(token.address, authkey, token.server);
      const proxy = makeProxy(token, authkey, link);
      link.notify({ op: "adopt", id: token.id });
      return proxy;
    },
  });
}
