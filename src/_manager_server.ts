/**
 * A manager's server (Python's `managers.Server`): holds objects, and calls their
 * methods for authenticated clients over a socket (unix or TCP).
 *
 * The server listens on a network, so it trusts nothing it reads: the HMAC
 * handshake comes first (no object is touched before it succeeds), a client that
 * does not finish it in time is dropped, frames are parsed as they arrive and one
 * announcing more than {@linkcode MAX_MANAGER_FRAME} bytes drops its sender (a
 * length is never allocated on the peer's word), and any malformed message drops
 * only the connection that sent it.
 *
 * @module
 */
import { Waker } from "./_awake.ts";
import { encodeMessages, FrameReader, MAX_HELLO, type Message, MessageReader, rawFrame, ServerHandshake, serverHello } from "./_broker_wire.ts";
import { BUILTINS, callAs, type CallContext, methodsOf } from "./_manager_objects.ts";
import "./_manager_sync.ts";
import {
  addressKey,
  BaseProxy,
  type Channel,
  channelNames,
  decodeValue,
  encodeValue,
  isJsonPlain,
  type Link,
  localServers,
  MAX_MANAGER_FRAME,
  openChannel,
  randomName,
} from "./_manager_proxy.ts";
import type { QueueProxy } from "./_manager_proxy.ts";
import { ProcessError, RemoteError } from "./errors.ts";
import { runtime } from "./runtime/detect.ts";
import type { NetAddress, NetServer, NetSocket } from "./runtime/types.ts";
import { loadTarget, type TargetSpec } from "./target.ts";

/** A registered type, as the server receives it. */
export interface RegistryEntry {
  typeid: string;
  /** How to make one; undefined for a typeid only a client names. */
  factory?: TargetSpec;
  /** The methods proxies may call; default: the object's methods not starting with "_". */
  exposed?: string[];
}

/** What a server is started with. */
export interface ServerInit {
  address: NetAddress;
  authkey: Uint8Array;
  registry: RegistryEntry[];
  /** Milliseconds a client has to finish the handshake (default 10 s). */
  helloTimeout?: number;
}

/** Someone that holds references: a connection, or the server's own isolate (proxies stored in objects). */
type Holder = object;

interface Held {
  obj: object;
  typeid: string;
  exposed: Set<string>;
  refs: Map<Holder, number>;
  /** Copies on their way to a receiver (lent, not yet adopted); below 0 for a moment if the adopt came first. */
  lent: number;
}

class ProtocolError extends Error {}

/** The reason a withdrawn call's waits are aborted with. */
const WITHDRAWN = new Error("withdrawn by the client");

function int(value: unknown): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new ProtocolError();
  return value as number;
}

function str(value: unknown): string {
  if (typeof value !== "string") throw new ProtocolError();
  return value;
}

/** One client connection (or the server's own isolate, with no socket). */
class Conn {
  alive = true;
  authed = false;
  hello = new FrameReader(MAX_HELLO);
  messages = new MessageReader(MAX_MANAGER_FRAME);
  handshake: ServerHandshake;
  /** Aborts the waits of this client's calls when it goes. */
  abort = new AbortController();
  /** Calls in progress that the client may withdraw ("cancel"), by request number. */
  calls = new Map<number, AbortController>();
  /** Whether the client runs on another runtime: values it gets are then written portably. */
  portable = false;
  /** A client in this process: the thread channels its requests come on and its replies go on (once it calls that way). */
  channels: { requests: Channel; replies: Channel } | undefined;
  viaChannel = false;
  waker = new Waker();
  #out: Message[] = [];
  #scheduled = false;
  #holding = false;

  constructor(readonly socket: NetSocket | undefined, key: Uint8Array, readonly deliver?: (m: Message) => void) {
    this.handshake = new ServerHandshake(key);
  }

  send(header: Record<string, unknown>, items: Uint8Array[] = []): void {
    if (!this.alive) return;
    if (this.deliver) return this.deliver({ header, items });
    this.#out.push({ header, items });
    if (this.#scheduled || this.#holding) return;
    this.#scheduled = true;
    queueMicrotask(this.#flush);
  }

  /**
   * Runs `work` (the requests of one received chunk); the replies it makes at once leave
   * together when it returns, before the socket's next read is set up: on Deno every
   * microsecond between a request and its reply costs about two, as the client is woken
   * once more when its request is read.
   */
  batch(work: () => void): void {
    this.#holding = true;
    try {
      work();
    } finally {
      this.#holding = false;
      this.#flush();
    }
  }

  #flush = (): void => {
    this.#scheduled = false;
    const messages = this.#out;
    if (!this.alive || messages.length === 0) return;
    this.#out = [];
    // The client's next request tends to follow its reply at once.
    this.waker.sent();
    if (this.viaChannel) return this.channels!.replies.postMessage(messages);
    this.socket!.write(encodeMessages(messages), (error) => error && this.socket!.destroy());
  };
}

/** Wraps an iterator a method returned, so a proxy can walk it from afar. */
class IteratorObject {
  constructor(readonly it: Iterator<unknown> | AsyncIterator<unknown>) {}
  async next(): Promise<IteratorResult<unknown>> {
    const { done, value } = await this.it.next();
    return { done: done === true, value };
  }
}

function isIterator(value: unknown): value is Iterator<unknown> {
  return typeof value === "object" && value !== null && typeof (value as Iterator<unknown>).next === "function" &&
    (Symbol.iterator in value || Symbol.asyncIterator in value) && !Array.isArray(value);
}

/**
 * The objects of one manager and the connections to it.
 *
 * @example
 * ```ts ignore
 * const server = await ManagerServer.listen({ address, authkey, registry: [] });
 * await server.serveForever(); // until a client asks it to shut down
 * ```
 */
export class ManagerServer {
  readonly address: NetAddress;
  /** A name no other server has (tokens carry it), whatever spelling of the address clients use. */
  readonly id: string = randomName(8);
  #key: Uint8Array;
  #registry = new Map<string, RegistryEntry>();
  #factories = new Map<string, Promise<(...args: unknown[]) => unknown>>();
  #objects = new Map<number, Held>();
  #nextId = 1;
  #conns = new Set<Conn>();
  #listener: NetServer | undefined;
  #helloTimeout: number;
  #done!: () => void;
  #finished = new Promise<void>((resolve) => (this.#done = resolve));
  #local: Conn;

  private constructor(init: ServerInit, address: NetAddress) {
    this.address = address;
    this.#key = init.authkey;
    this.#helloTimeout = init.helloTimeout ?? 10_000;
    for (const entry of init.registry) this.#registry.set(entry.typeid, entry);
    this.#local = new Conn(undefined, this.#key, () => {});
    this.#local.authed = true;
  }

  /** Listens at `init.address` (port 0: any free port; `address` then says which). */
  static async listen(init: ServerInit): Promise<ManagerServer> {
    let server: ManagerServer | undefined;
    const listener = await runtime.net.listen(init.address, (socket) => server ? server.#accept(socket) : socket.destroy());
    server = new ManagerServer(init, listener.address);
    server.#listener = listener;
    const link = () => server!.#localLink();
    localServers.set(addressKey(server.address), link);
    localServers.set(server.id, link);
    return server;
  }

  /** Resolves when the server has shut down (a client asked, or {@linkcode ManagerServer.shutdown}). */
  serveForever(): Promise<void> {
    return this.#finished;
  }

  /** Stops listening and drops every connection; {@linkcode ManagerServer.serveForever} resolves once nobody can connect. */
  shutdown(): void {
    if (this.#listener === undefined) return;
    const closed = this.#listener.close();
    this.#listener = undefined;
    localServers.delete(addressKey(this.address));
    localServers.delete(this.id);
    for (const conn of this.#conns) this.#drop(conn);
    this.#objects.clear();
    void closed.then(this.#done);
  }

  /** A link for proxies inside this isolate: calls go straight to the dispatcher. */
  #localLink(): Link {
    return {
      request: (header, items = []) =>
        new Promise((resolve) => {
          const conn = new Conn(undefined, this.#key, resolve);
          this.#dispatch(conn, { header: { ...header, r: 0 }, items }, this.#local);
        }),
      notify: (header) => this.#dispatch(this.#local, { header, items: [] }),
      portable: false,
      ready: () => Promise.resolve(false),
    };
  }

  #accept(socket: NetSocket): void {
    const conn = new Conn(socket, this.#key);
    this.#conns.add(conn);
    // A client that says nothing, or too little, is not left holding a socket.
    const timer = setTimeout(() => conn.authed || this.#drop(conn), this.#helloTimeout);
    socket.onClose(() => {
      clearTimeout(timer);
      this.#closed(conn);
    });
    socket.onData((chunk) => {
      if (!conn.alive) return;
      if (!conn.authed) return this.#guard(conn, () => this.#hello(conn, chunk));
      this.#receive(conn, conn.messages.push(chunk));
    });
    socket.write(rawFrame(conn.handshake.challenge));
  }

  /** Messages from `conn`; anything malformed (undefined: a bad frame) drops it. */
  #receive(conn: Conn, messages: unknown[] | undefined): void {
    conn.waker.answered();
    this.#guard(conn, () => {
      if (messages === undefined) throw new ProtocolError();
      conn.batch(() => {
        for (const m of messages) {
          if (!isMessage(m)) throw new ProtocolError();
          if (conn.alive) this.#dispatch(conn, m);
        }
      });
    });
  }

  #guard(conn: Conn, work: () => void): void {
    try {
      work();
    } catch (err) {
      if (!(err instanceof ProtocolError)) console.error("polyproc manager:", err);
      this.#drop(conn);
    }
  }

  /**
   * A client in this process asked to call by thread channel: its replies will go on
   * the one named after it (a probe there proves it hears), once it calls that way.
   */
  #openChannel(conn: Conn, r: number, id: string): void {
    if (!/^[0-9a-f]{32}$/.test(id) || conn.socket === undefined || conn.channels !== undefined) throw new ProtocolError();
    const names = channelNames(this.id, id);
    const channels = conn.channels = { requests: openChannel(names.requests), replies: openChannel(names.replies) };
    channels.requests.onmessage = (e) => {
      if (!conn.alive) return;
      conn.viaChannel = true;
      this.#receive(conn, Array.isArray(e.data) ? e.data : undefined);
    };
    channels.replies.postMessage("probe");
    conn.send({ r });
  }

  #hello(conn: Conn, chunk: Uint8Array): void {
    const proof = serverHello(conn.hello, conn.handshake, chunk);
    // A wrong key, or anything sent before the server's proof, ends the connection here.
    if (proof === null) throw new ProtocolError();
    if (proof === undefined) return;
    conn.authed = true;
    conn.socket!.write(rawFrame(proof));
  }

  #drop(conn: Conn): void {
    conn.socket?.destroy();
    this.#closed(conn);
  }

  #closed(conn: Conn): void {
    if (!conn.alive) return;
    conn.alive = false;
    conn.abort.abort(new ProcessError("the client disconnected"));
    this.#conns.delete(conn);
    conn.channels?.requests.close();
    conn.channels?.replies.close();
    this.#release(conn);
  }

  /** Drops every reference `conn` holds. */
  #release(conn: Conn): void {
    for (const [id, held] of this.#objects) {
      if (held.refs.delete(conn)) this.#freeIfUnheld(id, held);
    }
  }

  /** One message from `conn`; `holder` is who holds references made by it (the connection itself, or the server). */
  #dispatch(conn: Conn, m: Message, holder: Holder = conn): void {
    const h = m.header;
    switch (h.op) {
      case "call": {
        const call = new Call(conn, int(h.r), holder);
        const id = int(h.id), name = str(h.m), args = this.#args(m);
        let value: unknown;
        try {
          value = this.#call(call, id, name, args);
        } catch (err) {
          return this.#answer(call, Promise.reject(err));
        }
        return this.#answer(call, value);
      }
      case "cancel":
        return conn.calls.get(int(h.r))?.abort(WITHDRAWN);
      case "create": {
        const call = new Call(conn, int(h.r), holder);
        return this.#answer(call, this.#create(str(h.t), this.#args(m)));
      }
      case "lend":
        return this.#count(int(h.id), (held) => held.lent++);
      case "adopt":
        return this.#count(int(h.id), (held) => {
          held.lent--;
          held.refs.set(holder, (held.refs.get(holder) ?? 0) + 1);
        });
      case "decref":
        return this.#count(int(h.id), (held) => {
          const n = held.refs.get(holder) ?? 0;
          if (n <= 1) held.refs.delete(holder);
          else held.refs.set(holder, n - 1);
        });
      case "hello":
        conn.portable = str(h.f) !== runtime.serialFormat;
        return conn.send({ r: int(h.r), f: runtime.serialFormat, p: runtime.pid, s: this.id });
      case "channel":
        return this.#openChannel(conn, int(h.r), str(h.c));
      case "release":
        this.#release(conn);
        return conn.send({ r: int(h.r) });
      case "count":
        return conn.send({ r: int(h.r), v: this.#objects.size });
      case "ping":
        return conn.send({ r: int(h.r), v: true });
      case "shutdown":
        conn.send({ r: int(h.r), v: true });
        // The reply leaves in this turn's write; then the server goes.
        return void setTimeout(() => this.shutdown(), 0);
    }
    throw new ProtocolError();
  }

  #args(m: Message): unknown[] {
    if (m.header.a !== undefined) {
      if (!Array.isArray(m.header.a) || m.items.length !== 0) throw new ProtocolError();
      return m.header.a;
    }
    if (m.items.length !== 1) throw new ProtocolError();
    let args: unknown;
    try {
      args = decodeValue(m.items[0]);
    } catch {
      throw new ProtocolError();
    }
    if (!Array.isArray(args)) throw new ProtocolError();
    return args;
  }

  #count(id: number, change: (held: Held) => void): void {
    const held = this.#objects.get(id);
    if (held === undefined) return;
    change(held);
    this.#freeIfUnheld(id, held);
  }

  #freeIfUnheld(id: number, held: Held): void {
    if (held.refs.size === 0 && held.lent === 0) this.#objects.delete(id);
  }

  /**
   * Sends a call's outcome: a value, a new object, or the error. A method that returns
   * a value (most do) is answered in this turn, with no promise made.
   */
  #answer(call: Call, value: unknown): void {
    const { conn, r, caller } = call;
    if (!isThenable(value)) {
      call.done();
      return this.#succeed(conn, r, value, caller);
    }
    value.then(
      (v) => (call.done(), this.#succeed(conn, r, v, caller)),
      (err) => (call.done(), this.#fail(conn, r, err)),
    );
  }

  #succeed(conn: Conn, r: number, value: unknown, holder: Holder): void {
    if (value instanceof NewObject) {
      const held = value.held;
      const id = this.#nextId++;
      held.refs.set(holder, 1);
      this.#objects.set(id, held);
      return conn.send({ r, id, s: this.id, t: held.typeid, x: [...held.exposed] });
    }
    if (value === undefined) return conn.send({ r });
    if (isJsonPlain(value)) return conn.send({ r, v: value });
    let bytes: Uint8Array;
    try {
      bytes = encodeValue(value, "the result", conn.portable);
    } catch (err) {
      return this.#fail(conn, r, err);
    }
    conn.send({ r }, [bytes]);
  }

  #fail(conn: Conn, r: number, err: unknown): void {
    // A call its client withdrew says so (the client rejects with its own reason).
    if (err === WITHDRAWN) return conn.send({ r, e: 1, c: 1 });
    let bytes: Uint8Array;
    try {
      bytes = encodeValue(err, "the error", conn.portable);
    } catch {
      const remote = new RemoteError(String((err as Error)?.name), String((err as Error)?.message ?? err));
      bytes = encodeValue(remote, "the error", conn.portable);
    }
    conn.send({ r, e: 1 }, [bytes]);
  }

  async #create(typeid: string, args: unknown[]): Promise<NewObject> {
    const builtin = BUILTINS.get(typeid);
    if (builtin !== undefined) {
      const made = builtin.referents ? args.map((a) => this.#referent(a)) : args;
      const obj = await (builtin.make as (...a: unknown[]) => object | Promise<object>)(...made);
      return new NewObject({ obj, typeid, exposed: new Set(builtin.exposed), refs: new Map(), lent: 0 });
    }
    const entry = this.#registry.get(typeid);
    if (entry?.factory === undefined) throw new RemoteError("KeyError", `The manager has no type "${typeid}" registered`);
    let factory = this.#factories.get(typeid);
    if (factory === undefined) this.#factories.set(typeid, factory = loadTarget(entry.factory));
    const obj = await (await factory)(...args);
    if (typeof obj !== "object" || obj === null) {
      throw new TypeError(`The factory of "${typeid}" returned ${obj === null ? "null" : typeof obj}, not an object`);
    }
    return new NewObject({ obj, typeid, exposed: new Set(entry.exposed ?? methodsOf(obj)), refs: new Map(), lent: 0 });
  }

  /**
   * The object a proxy of this server names (a proxy argument was rebuilt here as a
   * proxy); anything else as it is. The object is kept by whoever uses it now, so the
   * rebuilt proxy gives up its reference at once.
   */
  #referent(value: unknown): unknown {
    if (!(value instanceof BaseProxy) || value._server !== this.id) return value;
    const held = this.#objects.get(value.id);
    value.close();
    if (held === undefined) throw new ProcessError(`The manager holds no object ${value.id} (it was freed)`);
    return held.obj;
  }

  /** Calls the method; its value, or a promise of it when the method is async. */
  #call(context: CallContext, id: number, method: string, args: unknown[]): unknown {
    const held = this.#objects.get(id);
    if (held === undefined) throw new ProcessError(`The manager holds no object ${id} (it was freed)`);
    const fn = (held.obj as Record<string, unknown>)[method];
    if (!held.exposed.has(method) || typeof fn !== "function") {
      throw new RemoteError("AttributeError", `method '${method}' of '${held.typeid}' object is not exposed`);
    }
    const result = callAs(context, fn as (...args: unknown[]) => unknown, held.obj, args);
    return isThenable(result) ? result.then((value) => walked(held, value)) : walked(held, result);
  }
}

/** An iterator a registered type returns is walked from afar, through a proxy. */
function walked(held: Held, value: unknown): unknown {
  if (!isIterator(value) || BUILTINS.has(held.typeid)) return value;
  return new NewObject({ obj: new IteratorObject(value), typeid: "Iterator", exposed: new Set(["next"]), refs: new Map(), lent: 0 });
}

function isMessage(value: unknown): value is Message {
  const m = value as Message | undefined;
  return typeof m?.header === "object" && m.header !== null && Array.isArray(m.items) && m.items.every((i) => i instanceof Uint8Array);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === "function";
}

/**
 * One call: who makes it, and its signal, made only if the method reads it (a queue's
 * get, a lock's acquire; before its first await). AbortSignal.any and its garbage cost
 * more than an append, so other calls go without.
 */
class Call implements CallContext {
  #signal: AbortSignal | undefined;

  constructor(readonly conn: Conn, readonly r: number, readonly caller: Holder) {}

  get signal(): AbortSignal {
    if (this.#signal === undefined) {
      const withdraw = new AbortController();
      this.conn.calls.set(this.r, withdraw);
      this.#signal = AbortSignal.any([this.conn.abort.signal, withdraw.signal]);
    }
    return this.#signal;
  }

  /** The call is answered: it can no longer be withdrawn. */
  done(): void {
    if (this.#signal !== undefined) this.conn.calls.delete(this.r);
  }
}

/** A method's result that becomes an object on the server, returned as a proxy. */
class NewObject {
  constructor(readonly held: Held) {}
}

/** What a server child tells its starter: where it listens, or why it could not. */
export type ServerReport = { address: NetAddress } | { error: string };

/**
 * The target of a manager's server child: listens, reports the bound address on
 * `ready`, and serves until it is shut down.
 */
export async function serveManager(init: ServerInit, ready: QueueProxy<ServerReport> | { put(v: ServerReport): Promise<void> }): Promise<void> {
  let server: ManagerServer;
  try {
    server = await ManagerServer.listen(init);
  } catch (err) {
    await ready.put({ error: `${(err as Error)?.message ?? err}` });
    return;
  }
  await ready.put({ address: server.address });
  await server.serveForever();
}
