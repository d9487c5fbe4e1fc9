/**
 * The broker's server: FIFO queues for a whole program tree, served over unix
 * sockets to every isolate that holds the program's key (src/_broker_main.ts runs
 * it in a worker thread). Items are opaque bytes; the clients serialize.
 *
 * Nothing is lost when a consumer dies, because what a connection gets is a
 * *lease*: the items stay on the server's books until the client acknowledges that
 * it handed them to its caller (it does so before the caller can see them). When a
 * connection closes, its unacknowledged items go back to the front of their queue.
 * The same lease lets a lone consumer take items ahead of need: once it has had a
 * queue to itself for a while, the server *streams* items to it, keeping up to a
 * window of them unacknowledged (its acks reopen the window), so it never waits a
 * round trip. What it has not used yet is *revoked* (given back) as soon as another
 * consumer waits, and nobody is served past older items that such a consumer may
 * still hold, so items leave a queue in FIFO order however many consumers there are.
 *
 * @module
 */
import {
  encodeMessages,
  FrameReader,
  MAX_FRAME,
  MAX_HELLO,
  type Message,
  MessageReader,
  rawFrame,
  ServerHandshake,
  serverHello,
} from "./_broker_wire.ts";
import { SYNC_OPS, SyncProtocolError, SyncServer } from "./_broker_sync.ts";
import { Deque } from "./_deque.ts";
import type { NetSocket } from "./runtime/types.ts";

/** How many grants in a row one connection must get before items stream to it. */
const STREAK = 32;
/** A streaming consumer holds at most this many unacknowledged items, or bytes. */
const WINDOW_ITEMS = 512;
const WINDOW_BYTES = 1 << 20;
/** A frame of items stops growing at this many bytes (it always holds one item). */
const FRAME_BYTES = 64 * 1024;

interface Entry {
  seq: number;
  bytes: Uint8Array;
}

interface Lease {
  /** Granted and not yet acknowledged, oldest first. */
  items: Deque<Entry>;
  /** Their size in bytes. */
  bytes: number;
  /** Items are pushed to this consumer as they come, within the window. */
  streaming: boolean;
  revoking: boolean;
}

interface Waiter {
  kind: "get" | "put" | "join";
  conn: Conn;
  r: number;
  q: BrokerQueue;
  done: boolean;
  timer?: ReturnType<typeof setTimeout>;
}
interface Getter extends Waiter {
  max: number;
}
interface Putter extends Waiter {
  items: Uint8Array[];
  next: number;
}

class BrokerQueue {
  readonly id: number;
  readonly maxsize: number;
  items = new Deque<Entry>();
  /** Items out on leases: they still take room, and still count in qsize. */
  leased = 0;
  unfinished = 0;
  shut = false;
  immediate = false;
  getters: Getter[] = [];
  putters: Putter[] = [];
  joiners: Waiter[] = [];
  leases = new Map<Conn, Lease>();
  refs = new Map<Conn, number>();
  /** Open pipe ends that send into this queue, by connection, and copies on their way to a child. */
  writers = new Map<Conn, number>();
  lent = 0;
  /** Its maker has opened it (only then can the last reference free it). */
  claimed = false;
  lastConn: Conn | undefined;
  streak = 0;

  constructor(id: number, maxsize: number) {
    this.id = id;
    this.maxsize = maxsize;
  }

  room(): number {
    return this.maxsize === 0 ? Infinity : this.maxsize - this.items.length - this.leased;
  }
}

class ProtocolError extends Error {}

const QUEUE_OPS = new Set(["qsize", "taskDone", "join", "shutdown", "release", "writers"]);

function int(value: unknown, min = 0): number {
  if (!Number.isSafeInteger(value) || (value as number) < min) throw new ProtocolError();
  return value as number;
}

function timeout(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !(value >= 0)) throw new ProtocolError();
  return value;
}

class Conn {
  readonly socket: NetSocket;
  alive = true;
  authed = false;
  hello = new FrameReader(MAX_HELLO);
  messages = new MessageReader(MAX_FRAME);
  handshake: ServerHandshake;
  waiters = new Set<Waiter>();
  /** Queues this connection holds a lease or a reference on. */
  queues = new Set<BrokerQueue>();
  #out: { header: Record<string, unknown>; items: readonly Uint8Array[] }[] = [];
  #scheduled = false;

  constructor(socket: NetSocket, key: Uint8Array) {
    this.socket = socket;
    this.handshake = new ServerHandshake(key);
  }

  /** Queues a message; everything queued in one turn leaves in one write. */
  send(header: Record<string, unknown>, items: readonly Uint8Array[] = []): void {
    if (!this.alive) return;
    this.#out.push({ header, items });
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  flush(): void {
    this.#scheduled = false;
    if (!this.alive || this.#out.length === 0) return;
    const bytes = encodeMessages(this.#out);
    this.#out = [];
    // A failed write closes the socket, and closing gives the lease back: no item is
    // lost in a reply that never arrived.
    this.socket.write(bytes, (error) => {
      if (error) this.socket.destroy();
    });
  }
}

/**
 * The queues and the connections of one broker.
 *
 * @example
 * ```ts ignore
 * const server = new BrokerServer(authkey);
 * await runtime.net.listen(path, (socket) => server.accept(socket));
 * ```
 */
export class BrokerServer {
  #key: Uint8Array;
  #queues = new Map<number, BrokerQueue>();
  /** Ids of freed queues: a late handle must not bring one back empty. */
  #freed = new Set<number>();
  #nextId = 1;
  #seq = 0;
  /** Locks, semaphores, events, conditions and barriers (src/_broker_sync.ts). */
  #sync = new SyncServer();

  constructor(authkey: Uint8Array) {
    this.#key = authkey;
  }

  /** Serves one accepted connection: the handshake first, then messages. */
  accept(socket: NetSocket): void {
    const conn = new Conn(socket, this.#key);
    socket.onClose(() => this.#closed(conn));
    socket.onData((chunk) => {
      if (!conn.alive) return;
      try {
        if (!conn.authed) return this.#hello(conn, chunk);
        const messages = conn.messages.push(chunk);
        if (messages === undefined) throw new ProtocolError();
        for (const message of messages) {
          if (!conn.alive) return;
          this.#message(conn, message);
        }
      } catch (err) {
        // Garbage from a peer ends that peer, and only it; a bug of ours is worth a line.
        if (!(err instanceof ProtocolError || err instanceof SyncProtocolError)) console.error("polyproc broker:", err);
        this.#drop(conn);
      }
    });
    socket.write(rawFrame(conn.handshake.challenge));
  }

  #hello(conn: Conn, chunk: Uint8Array): void {
    const proof = serverHello(conn.hello, conn.handshake, chunk);
    if (proof === null) throw new ProtocolError();
    if (proof === undefined) return;
    conn.authed = true;
    conn.socket.write(rawFrame(proof));
  }

  #drop(conn: Conn): void {
    conn.socket.destroy();
    this.#closed(conn);
  }

  #message(conn: Conn, message: Message): void {
    const { header: h, items } = message;
    switch (h.op) {
      case "create": {
        const id = this.#nextId++;
        this.#open(conn, id, int(h.m), true);
        return conn.send({ r: int(h.r), v: id });
      }
      case "open": {
        const id = int(h.q);
        if (this.#freed.has(id)) return conn.send({ r: int(h.r), e: "closed" });
        this.#open(conn, id, int(h.m), h.c !== 0);
        return conn.send({ r: int(h.r) });
      }
      case "put":
        return this.#put(conn, int(h.r), int(h.q), items, h.b !== false, timeout(h.t));
      case "get":
        return this.#get(conn, int(h.r), int(h.q), int(h.m, 1), h.b !== false, timeout(h.t));
      case "ack":
        return this.#settle(conn, int(h.q), int(h.n, 1), false);
      case "unlease":
        return this.#settle(conn, int(h.q), int(h.n), true);
      case "cancel":
        return this.#cancel(conn, int(h.r));
      case "sync":
        // Everything this connection sent before has been read: say so.
        return conn.send({ r: int(h.r) });
    }
    if (SYNC_OPS.has(h.op as string)) return this.#sync.handle(conn, h);
    if (!QUEUE_OPS.has(h.op as string)) throw new ProtocolError();
    const r = int(h.r);
    const q = this.#queues.get(int(h.q));
    if (q === undefined) return conn.send({ r, e: "closed" });
    switch (h.op) {
      case "qsize":
        return conn.send({ r, v: q.items.length + q.leased });
      case "taskDone": {
        const n = int(h.n, 1);
        if (n > q.unfinished) return conn.send({ r, e: "range" });
        q.unfinished -= n;
        this.#checkJoin(q);
        return conn.send({ r });
      }
      case "join":
        if (q.unfinished === 0) return conn.send({ r });
        return void this.#enlist({ kind: "join", conn, r, q, done: false });
      case "shutdown":
        this.#shutdown(q, h.i === true);
        return conn.send({ r });
      case "release":
        this.#release(conn, q);
        return conn.send({ r });
      case "writers":
        this.#writers(conn, q, h.k as string);
        return conn.send({ r });
    }
    throw new ProtocolError();
  }

  // Pipe ends count their copies, as Python's file descriptors do: "own" (an end made
  // here), "lend" (a copy sent to a child), "adopt" (the child took it over), "drop"
  // (an end closed). The last close, or the death of the last holder, ends the queue.
  #writers(conn: Conn, q: BrokerQueue, kind: string): void {
    const mine = q.writers.get(conn) ?? 0;
    switch (kind) {
      case "own":
        q.writers.set(conn, mine + 1);
        return;
      case "lend":
        q.lent++;
        return;
      case "adopt":
        q.writers.set(conn, mine + 1);
        // The child's adopt may arrive before its parent's lend (two connections): lent
        // goes below zero for that moment, and the lend brings it back.
        q.lent--;
        return;
      case "drop":
        if (mine <= 1) q.writers.delete(conn);
        else q.writers.set(conn, mine - 1);
        return this.#endIfUnwritten(q);
    }
    throw new ProtocolError();
  }

  #endIfUnwritten(q: BrokerQueue): void {
    if (q.writers.size === 0 && q.lent === 0 && !q.shut) this.#shutdown(q, false);
  }

  #open(conn: Conn, id: number, maxsize: number, creator: boolean): void {
    let q = this.#queues.get(id);
    if (q === undefined) this.#queues.set(id, q = new BrokerQueue(id, maxsize));
    if (creator) q.claimed = true;
    q.refs.set(conn, (q.refs.get(conn) ?? 0) + 1);
    conn.queues.add(q);
  }

  #release(conn: Conn, q: BrokerQueue, all = false): void {
    const refs = q.refs.get(conn) ?? 0;
    if (refs > 1 && !all) q.refs.set(conn, refs - 1);
    else q.refs.delete(conn);
    // A child can open a queue, use it and end before the maker's own open arrives
    // (they come on two connections): only a queue its maker has opened can be freed.
    if (q.refs.size > 0 || !q.claimed) return;
    this.#queues.delete(q.id);
    this.#freed.add(q.id);
    for (const w of [...q.getters, ...q.putters, ...q.joiners]) this.#finish(w, { e: "closed" });
    // Holders drop what they prefetched; their give-back then finds no queue.
    for (const [holder] of q.leases) holder.send({ op: "revoke", q: q.id, d: 1 });
  }

  /** Adds a waiter to its queue's list (in arrival order) and to its connection's. */
  #enlist(w: Getter | Putter | Waiter): void {
    if (w.kind === "get") w.q.getters.push(w as Getter);
    else if (w.kind === "put") w.q.putters.push(w as Putter);
    else w.q.joiners.push(w);
    w.conn.waiters.add(w);
  }

  #unlist(w: Waiter): void {
    const list: Waiter[] = w.kind === "get" ? w.q.getters : w.kind === "put" ? w.q.putters : w.q.joiners;
    const i = list.indexOf(w);
    if (i >= 0) list.splice(i, 1);
  }

  /** What a waiter is told when it gives up (timeout, non-blocking, cancel). */
  #giveUp(w: Waiter, e: "empty" | "full" | "cancelled"): void {
    if (w.done) return;
    if (e === "empty" && w.kind === "put") e = "full";
    this.#finish(w, w.kind === "put" ? { e, n: (w as Putter).next } : { e });
    this.#unlist(w);
    this.#serve(w.q);
  }

  /** A waiter that was not served at once: fail it now, or arm its timeout. */
  #park(w: Waiter, block: boolean, ms?: number): void {
    if (w.done) return;
    if (!block || ms === 0) return this.#giveUp(w, "empty");
    if (ms !== undefined) w.timer = setTimeout(() => this.#giveUp(w, "empty"), ms);
  }

  /** Replies to a waiter (once) and forgets it. */
  #finish(w: Waiter, reply: Record<string, unknown>, items?: Uint8Array[]): void {
    if (w.done) return;
    w.done = true;
    clearTimeout(w.timer);
    w.conn.waiters.delete(w);
    w.conn.send({ r: w.r, ...reply }, items);
  }

  #put(conn: Conn, r: number, id: number, items: Uint8Array[], block: boolean, ms?: number): void {
    const q = this.#queues.get(id);
    if (q === undefined) return conn.send({ r, e: "closed", n: 0 });
    if (q.shut) return conn.send({ r, e: "shutdown", n: 0 });
    const putter: Putter = { kind: "put", conn, r, q, done: false, items, next: 0 };
    this.#enlist(putter);
    this.#serve(q);
    this.#park(putter, block, ms);
  }

  #get(conn: Conn, r: number, id: number, max: number, block: boolean, ms?: number): void {
    const q = this.#queues.get(id);
    if (q === undefined) return conn.send({ r, e: "closed" });
    const getter: Getter = { kind: "get", conn, r, q, done: false, max };
    this.#enlist(getter);
    this.#serve(q);
    // Not served at once: the queue is empty, or older items may be out on another
    // consumer's batch (then, like Python's get_nowait while another consumer holds
    // the read lock, a non-blocking get is "empty").
    this.#park(getter, block, ms);
  }

  /** Acknowledged (`back` false) or given back (`back` true): `n` items leave a lease. */
  #settle(conn: Conn, id: number, n: number, back: boolean): void {
    const q = this.#queues.get(id);
    if (q === undefined) return; // freed meanwhile: the items went with it
    const lease = q.leases.get(conn);
    if (n === 0 && back) {
      if (lease) lease.revoking = false;
      return this.#serve(q);
    }
    if (lease === undefined || n > lease.items.length) throw new ProtocolError();
    const entries: Entry[] = [];
    for (let i = 0; i < n; i++) {
      const entry = lease.items.shift()!;
      lease.bytes -= entry.bytes.length;
      entries.push(entry);
    }
    q.leased -= n;
    if (back) {
      lease.revoking = false;
      this.#giveBack(q, entries);
    }
    this.#serve(q);
  }

  /** Items a consumer never used return to the front, in their original order. */
  #giveBack(q: BrokerQueue, entries: Entry[]): void {
    if (entries.length === 0) return;
    if (q.immediate) {
      q.unfinished -= entries.length;
      return this.#checkJoin(q);
    }
    const last = entries[entries.length - 1].seq;
    const front: Entry[] = [];
    while (q.items.length > 0 && q.items.peek()!.seq < last) front.push(q.items.shift()!);
    const merged = front.length === 0 ? entries : [...entries, ...front].sort((a, b) => a.seq - b.seq);
    for (let i = merged.length - 1; i >= 0; i--) q.items.unshift(merged[i]);
  }

  #cancel(conn: Conn, r: number): void {
    for (const w of conn.waiters) if (w.r === r) return this.#giveUp(w, "cancelled");
    this.#sync.cancel(conn, r);
  }

  #shutdown(q: BrokerQueue, immediate: boolean): void {
    q.shut = true;
    if (immediate && !q.immediate) {
      q.immediate = true;
      q.unfinished -= q.items.length;
      q.items.clear();
      for (const [holder, lease] of q.leases) {
        if (lease.items.length > 0) holder.send({ op: "revoke", q: q.id, d: 1 });
      }
    }
    for (const p of q.putters) this.#finish(p, { e: "shutdown", n: p.next });
    q.putters = [];
    this.#serve(q);
    this.#checkJoin(q);
  }

  #checkJoin(q: BrokerQueue): void {
    if (q.unfinished !== 0 || q.joiners.length === 0) return;
    for (const j of q.joiners) this.#finish(j, {});
    q.joiners = [];
  }

  /** Moves items in from waiting putters and out to waiting getters (and streams), as far as they go. */
  #serve(q: BrokerQueue): void {
    this.#servePutters(q);
    this.#serveGetters(q);
    this.#stream(q);
  }

  /** Pushes items to a streaming consumer, once half its window is free. */
  #stream(q: BrokerQueue): void {
    const conn = q.lastConn;
    const lease = conn && q.leases.get(conn);
    if (!lease?.streaming || q.items.length === 0) return;
    if (!this.#alone(q, conn!)) {
      lease.streaming = false;
      return;
    }
    if (WINDOW_ITEMS - lease.items.length < WINDOW_ITEMS / 2 || WINDOW_BYTES - lease.bytes < WINDOW_BYTES / 2) return;
    while (q.items.length > 0 && lease.items.length < WINDOW_ITEMS && lease.bytes < WINDOW_BYTES) {
      conn!.send({ op: "push", q: q.id }, this.#lend(q, lease, WINDOW_ITEMS - lease.items.length));
    }
    // Room was made: putters may move in.
    this.#servePutters(q);
  }

  /** Moves up to `max` items (one frame's worth) from the queue onto a lease. */
  #lend(q: BrokerQueue, lease: Lease, max: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let bytes = 0;
    while (out.length < max && q.items.length > 0 && (out.length === 0 || bytes < FRAME_BYTES)) {
      const entry = q.items.shift()!;
      lease.items.push(entry);
      out.push(entry.bytes);
      bytes += entry.bytes.length;
    }
    lease.bytes += bytes;
    q.leased += out.length;
    return out;
  }

  #servePutters(q: BrokerQueue): void {
    while (q.putters.length > 0) {
      const p = q.putters[0];
      if (!p.done) {
        const room = Math.min(q.room(), p.items.length - p.next);
        for (let i = 0; i < room; i++) q.items.push({ seq: this.#seq++, bytes: p.items[p.next++] });
        q.unfinished += room;
        if (p.next < p.items.length) return;
        this.#finish(p, {});
      }
      q.putters.shift();
    }
  }

  #serveGetters(q: BrokerQueue): void {
    while (q.getters.length > 0) {
      const g = q.getters[0];
      if (!g.done) {
        if (q.items.length === 0 || this.#blocked(q, g.conn)) break;
        this.#grant(q, g);
      }
      q.getters.shift();
      // Room was made: putters may move in, and more getters be served.
      this.#servePutters(q);
    }
    if (q.getters.length === 0) return;
    if (q.items.length === 0 && q.shut) {
      // Drained and shut down: a getter is done unless another consumer may still give items back.
      for (const g of q.getters) {
        if (q.immediate || !this.#blocked(q, g.conn)) this.#finish(g, { e: "shutdown" });
      }
      q.getters = q.getters.filter((g) => !g.done);
    }
    const first = q.getters.find((g) => !g.done);
    if (first !== undefined) this.#revoke(q, first.conn);
  }

  /**
   * Whether another connection holds items it has not acknowledged. Then nobody else
   * is served: those items are older than any in the queue, and may come back (given
   * back, or left by a consumer that died), so serving past them would break FIFO.
   * Items handed to a waiting caller are acknowledged at once, so this lasts about
   * a one-way trip, unless the holder sits on prefetched items: those are revoked.
   */
  #blocked(q: BrokerQueue, conn: Conn): boolean {
    for (const [holder, lease] of q.leases) if (holder !== conn && lease.items.length > 0) return true;
    return false;
  }

  /** Asks every other holder of unacknowledged items to give back what it has not handed out. */
  #revoke(q: BrokerQueue, waiting: Conn): void {
    for (const [holder, lease] of q.leases) {
      if (holder !== waiting && !lease.revoking && lease.items.length > 0) {
        lease.revoking = true;
        lease.streaming = false;
        holder.send({ op: "revoke", q: q.id });
      }
    }
  }

  #grant(q: BrokerQueue, g: Getter): void {
    const conn = g.conn;
    let lease = q.leases.get(conn);
    if (lease === undefined) {
      lease = { items: new Deque(), bytes: 0, streaming: false, revoking: false };
      q.leases.set(conn, lease);
      conn.queues.add(q);
    }
    if (q.lastConn === conn) q.streak++;
    else [q.lastConn, q.streak] = [conn, 1];
    // A consumer that asks for more than one item, and has had the queue to itself
    // for a while, gets a frame's worth now and a stream from here on.
    lease.streaming = g.max > 1 && this.#alone(q, conn);
    this.#finish(g, {}, this.#lend(q, lease, lease.streaming ? g.max : 1));
  }

  /** Batches only for a consumer that has had the queue to itself for a while. */
  #alone(q: BrokerQueue, conn: Conn): boolean {
    return q.lastConn === conn && q.streak > STREAK && !q.leases.get(conn)?.revoking &&
      q.getters.every((o) => o.conn === conn || o.done);
  }

  #closed(conn: Conn): void {
    if (!conn.alive) return;
    conn.alive = false;
    for (const w of conn.waiters) {
      w.done = true;
      clearTimeout(w.timer);
      conn.queues.add(w.q);
    }
    conn.waiters.clear();
    for (const q of conn.queues) {
      q.getters = q.getters.filter((w) => !w.done);
      q.putters = q.putters.filter((w) => !w.done);
      q.joiners = q.joiners.filter((w) => !w.done);
      const lease = q.leases.get(conn);
      q.leases.delete(conn);
      if (q.lastConn === conn) q.lastConn = undefined;
      if (lease !== undefined) {
        q.leased -= lease.items.length;
        this.#giveBack(q, [...lease.items]);
      }
      if (q.writers.delete(conn)) this.#endIfUnwritten(q);
      if (q.refs.has(conn)) this.#release(conn, q, true);
      if (this.#queues.get(q.id) === q) this.#serve(q);
    }
    conn.queues.clear();
    this.#sync.closed(conn);
  }
}
