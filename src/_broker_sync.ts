/**
 * The broker's locks, semaphores, events, conditions and barriers (the "process"
 * start method): their state lives in the broker thread, and each connection (one
 * per isolate) is one "thread" in Python's sense, so an RLock's owner or a
 * Condition's lock holder is a connection.
 *
 * A connection that ends (its process was killed, or ended without releasing)
 * gives back the Lock or RLock it holds, so nobody waits forever for a dead
 * holder. Semaphores count units, not holders: theirs are not given back (a unit
 * taken by a process that died may have been a signal it consumed).
 *
 * Requests (JSON headers; `q` is the object's id, `r` the request's number):
 * `sopen` (k: kind, v: value/parties, l: lock id, c: 0 for a borrowed handle),
 * `sclose`; locks `sacq` (b, t), `srel`, `slocked`, `svalue`; events `eset`,
 * `eclear`, `eis`, `ewait` (t); conditions `cwait` (t), `cnotify` (n, -1 = all);
 * barriers `bwait` (t, a: 1 if the party can run the action), `bdone` (ok),
 * `babort`, `breset`, `bstate`. Replies carry `v`, or `e` ("range", "owner",
 * "broken", "closed", "cancelled") and a message `m`.
 *
 * @module
 */

/** What the broker's server needs of a connection. */
export interface Peer {
  send(header: Record<string, unknown>): void;
}

/** The requests this module serves. */
export const SYNC_OPS: ReadonlySet<string> = new Set([
  "sopen", "sclose", "sacq", "srel", "slocked", "svalue",
  "eset", "eclear", "eis", "ewait", "cwait", "cnotify",
  "bwait", "bdone", "babort", "breset", "bstate",
]);

type Kind = "Lock" | "RLock" | "Semaphore" | "BoundedSemaphore" | "Event" | "Condition" | "Barrier";
const KINDS = new Set<string>(["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Event", "Condition", "Barrier"]);

/** A request that waits: answered once, by a grant, a timeout, a cancel or its connection's end. */
interface Waiter {
  conn: Peer;
  r: number;
  done: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

/** Thrown for a malformed request: the server drops that connection. */
export class SyncProtocolError extends Error {}

function int(value: unknown, min = 0): number {
  if (!Number.isSafeInteger(value) || (value as number) < min) throw new SyncProtocolError();
  return value as number;
}

function ms(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !(value >= 0)) throw new SyncProtocolError();
  return value;
}

class Sem {
  owner: Peer | undefined;
  depth = 0;
  /** Waiting acquirers, oldest first; `granted` answers each. */
  waiters: (Waiter & { depth: number; granted(): void })[] = [];

  constructor(readonly kind: Kind, public value: number, readonly max: number) {}

  get owned(): boolean {
    return this.kind === "Lock" || this.kind === "RLock";
  }

  isHeldBy(conn: Peer): boolean {
    return this.owned && this.value === 0 && this.owner === conn;
  }

  /** Gives free units to the oldest waiters. */
  grant(): void {
    while (this.value > 0 && this.waiters.length > 0) {
      const w = this.waiters.shift()!;
      if (w.done) continue;
      this.value--;
      if (this.owned) [this.owner, this.depth] = [w.conn, w.depth];
      w.granted();
    }
  }

  /** Frees a Lock or RLock whatever its depth (a Condition's wait, or a holder that died). */
  free(): void {
    this.owner = undefined;
    this.depth = 0;
    this.value = 1;
    this.grant();
  }

  /** Releases once; returns an error reply if it may not. */
  release(conn: Peer): Record<string, unknown> | undefined {
    if (this.kind === "RLock") {
      if (this.owner !== conn || this.value > 0) {
        return this.value > 0
          ? { e: "range", m: "Cannot release an RLock that is not held" }
          : { e: "owner", m: "Cannot release an RLock held by another process or worker" };
      }
      if (--this.depth > 0) return;
    }
    if (this.owned) {
      if (this.value > 0) return { e: "range", m: `Cannot release a ${this.kind} that is not held` };
      this.free();
      return;
    }
    if (this.kind === "BoundedSemaphore" && this.value >= this.max) {
      return { e: "range", m: "BoundedSemaphore released too many times" };
    }
    this.value++;
    this.grant();
  }
}

class Ev {
  flag = false;
  waiters: Waiter[] = [];
}

interface CondWaiter extends Waiter {
  depth: number;
  /** Ends the wait with `reply`, once the lock is re-acquired. */
  wake(reply: Record<string, unknown>): void;
}

class Cond {
  waiters: CondWaiter[] = [];
  constructor(readonly lock: Sem) {}
}

class Bar {
  count = 0;
  broken = false;
  /** The party that runs the action of a full pass, until it says it is done. */
  drainer: Peer | undefined;
  waiters: (Waiter & { index: number })[] = [];
  /** Parties that arrived while the action ran: they join the next pass. */
  arrivals: { conn: Peer; r: number; t?: number; a: boolean }[] = [];
  constructor(readonly parties: number) {}
}

type SyncObject = Sem | Ev | Cond | Bar;

interface Entry {
  obj: SyncObject;
  refs: Map<Peer, number>;
  /** Its maker has opened it: only then may the last reference free it. */
  claimed: boolean;
}

/**
 * Every synchronization object of one broker.
 *
 * @example
 * ```ts ignore
 * const sync = new SyncServer();
 * if (SYNC_OPS.has(header.op)) sync.handle(conn, header);
 * ```
 */
export class SyncServer {
  #objects = new Map<number, Entry>();
  /** Ids of freed objects: a late handle must not bring one back new. */
  #freed = new Set<number>();
  /** Each connection's waiting requests, by request number: how to give each up. */
  #parked = new Map<Peer, Map<number, (reply: Record<string, unknown>) => void>>();

  /** Serves one request (its op is in {@linkcode SYNC_OPS}). */
  handle(conn: Peer, h: Record<string, unknown>): void {
    const r = int(h.r);
    const id = int(h.q);
    const reply = (fields: Record<string, unknown> = {}) => conn.send({ r, ...fields });
    if (h.op === "sopen") return reply(this.#open(conn, id, h));
    const entry = this.#objects.get(id);
    if (entry === undefined) return reply({ e: "closed", m: "The object is closed" });
    const obj = entry.obj;
    switch (h.op) {
      case "sclose":
        this.#release(conn, id, entry);
        return reply();
      case "sacq":
        return this.#acquire(cast(obj, Sem), conn, r, h.b !== false, ms(h.t));
      case "srel":
        return reply(cast(obj, Sem).release(conn));
      case "slocked":
        return reply({ v: cast(obj, Sem).value === 0 });
      case "svalue":
        return reply({ v: cast(obj, Sem).value });
      case "eset": {
        const ev = cast(obj, Ev);
        ev.flag = true;
        for (const w of ev.waiters.splice(0)) this.#finish(w, { v: true });
        return reply();
      }
      case "eclear":
        cast(obj, Ev).flag = false;
        return reply();
      case "eis":
        return reply({ v: cast(obj, Ev).flag });
      case "ewait":
        return this.#eventWait(cast(obj, Ev), conn, r, ms(h.t));
      case "cwait":
        return this.#condWait(cast(obj, Cond), conn, r, ms(h.t));
      case "cnotify":
        return reply(this.#notify(cast(obj, Cond), conn, h.n === -1 ? Infinity : int(h.n)));
      case "bwait":
        return this.#barrierWait(cast(obj, Bar), conn, r, ms(h.t), h.a === 1);
      case "bdone": {
        const bar = cast(obj, Bar);
        if (bar.drainer !== conn) return reply({ e: "broken", m: "the barrier was reset or aborted while its action ran" });
        if (h.ok === true) this.#pass(bar);
        else this.#break(bar);
        return reply();
      }
      case "babort":
        this.#break(cast(obj, Bar));
        return reply();
      case "breset":
        this.#reset(cast(obj, Bar));
        return reply();
      case "bstate": {
        const bar = cast(obj, Bar);
        return reply({ v: [bar.broken || bar.drainer ? 0 : bar.count, bar.broken] });
      }
    }
    throw new SyncProtocolError();
  }

  /** Gives up request `r` of `conn`, if it waits here; false if it is not ours. */
  cancel(conn: Peer, r: number): boolean {
    const giveUp = this.#parked.get(conn)?.get(r);
    if (giveUp === undefined) return false;
    giveUp({ e: "cancelled" });
    return true;
  }

  /** A connection ended: its waits go, its Locks and RLocks are freed, its references dropped. */
  closed(conn: Peer): void {
    // A dead waiter of a Condition must not re-acquire its lock: drop it first.
    for (const { obj } of this.#objects.values()) {
      if (!(obj instanceof Cond)) continue;
      for (const w of obj.waiters) if (w.conn === conn) clearTimeout(w.timer);
      obj.waiters = obj.waiters.filter((w) => w.conn !== conn);
    }
    const parked = this.#parked.get(conn);
    this.#parked.delete(conn);
    for (const giveUp of parked?.values() ?? []) giveUp({});
    for (const [id, entry] of this.#objects) {
      const obj = entry.obj;
      if (obj instanceof Sem) {
        obj.waiters = obj.waiters.filter((w) => w.conn !== conn);
        if (obj.owned && obj.owner === conn && obj.value === 0) obj.free();
      } else if (obj instanceof Bar) {
        obj.arrivals = obj.arrivals.filter((a) => a.conn !== conn);
        // Nobody else can finish a pass whose action its runner never finished.
        if (obj.drainer === conn) this.#break(obj);
      }
      if (entry.refs.has(conn)) this.#release(conn, id, entry, true);
    }
  }

  #open(conn: Peer, id: number, h: Record<string, unknown>): Record<string, unknown> {
    if (this.#freed.has(id)) return { e: "closed", m: "The object is closed" };
    let entry = this.#objects.get(id);
    if (entry === undefined) {
      const kind = h.k;
      if (typeof kind !== "string" || !KINDS.has(kind)) throw new SyncProtocolError();
      entry = { obj: this.#make(kind as Kind, h), refs: new Map(), claimed: false };
      this.#objects.set(id, entry);
    }
    if (h.c !== 0) entry.claimed = true;
    entry.refs.set(conn, (entry.refs.get(conn) ?? 0) + 1);
    return {};
  }

  #make(kind: Kind, h: Record<string, unknown>): SyncObject {
    switch (kind) {
      case "Event":
        return new Ev();
      case "Barrier":
        return new Bar(int(h.v, 1));
      case "Condition": {
        const lock = this.#objects.get(int(h.l))?.obj;
        if (!(lock instanceof Sem) || !lock.owned) throw new SyncProtocolError();
        return new Cond(lock);
      }
      default: {
        const value = int(h.v);
        return new Sem(kind, value, value);
      }
    }
  }

  #release(conn: Peer, id: number, entry: Entry, all = false): void {
    const refs = entry.refs.get(conn) ?? 0;
    if (refs > 1 && !all) entry.refs.set(conn, refs - 1);
    else entry.refs.delete(conn);
    if (entry.refs.size > 0 || !entry.claimed) return;
    this.#objects.delete(id);
    this.#freed.add(id);
    const closed = { e: "closed", m: "The object was closed while waiting" };
    const obj = entry.obj;
    for (const w of obj.waiters) this.#finish(w, closed);
    if (obj instanceof Bar) for (const a of obj.arrivals) a.conn.send({ r: a.r, ...closed });
  }

  /** Answers a waiter (once) and forgets it. */
  #finish(w: Waiter, reply: Record<string, unknown>): void {
    if (w.done) return;
    w.done = true;
    clearTimeout(w.timer);
    this.#parked.get(w.conn)?.delete(w.r);
    w.conn.send({ r: w.r, ...reply });
  }

  /** Registers how a waiting request gives up (a cancel, or its connection's end with an empty reply). */
  #park(w: Waiter, giveUp: (reply: Record<string, unknown>) => void, t: number | undefined, onTimeout: () => void): void {
    let parked = this.#parked.get(w.conn);
    if (parked === undefined) this.#parked.set(w.conn, parked = new Map());
    parked.set(w.r, giveUp);
    if (t !== undefined) w.timer = setTimeout(onTimeout, t);
  }

  #acquire(sem: Sem, conn: Peer, r: number, block: boolean, t: number | undefined): void {
    if (sem.kind === "RLock" && sem.isHeldBy(conn)) {
      sem.depth++;
      return conn.send({ r, v: true });
    }
    if (sem.waiters.length === 0 && sem.value > 0) {
      sem.value--;
      if (sem.owned) [sem.owner, sem.depth] = [conn, 1];
      return conn.send({ r, v: true });
    }
    if (!block || t === 0) return conn.send({ r, v: false });
    const w = { conn, r, done: false, depth: 1, granted: () => this.#finish(w, { v: true }) };
    sem.waiters.push(w);
    const giveUp = (reply: Record<string, unknown>) => {
      sem.waiters.splice(sem.waiters.indexOf(w), 1);
      this.#finish(w, reply);
    };
    this.#park(w, giveUp, t, () => giveUp({ v: false }));
  }

  #eventWait(ev: Ev, conn: Peer, r: number, t: number | undefined): void {
    if (ev.flag) return conn.send({ r, v: true });
    if (t === 0) return conn.send({ r, v: false });
    const w: Waiter = { conn, r, done: false };
    ev.waiters.push(w);
    const giveUp = (reply: Record<string, unknown>) => {
      ev.waiters.splice(ev.waiters.indexOf(w), 1);
      this.#finish(w, reply);
    };
    this.#park(w, giveUp, t, () => giveUp({ v: false }));
  }

  #condWait(cond: Cond, conn: Peer, r: number, t: number | undefined): void {
    const lock = cond.lock;
    if (!lock.isHeldBy(conn)) {
      return conn.send({ r, e: "owner", m: "Cannot wait: acquire() the Condition (its lock) before using wait()" });
    }
    // However the wait ends, the lock is re-acquired (at its old depth) before the answer.
    const w: CondWaiter = {
      conn,
      r,
      done: false,
      depth: lock.depth,
      wake: (reply) => {
        const i = cond.waiters.indexOf(w);
        if (i < 0) return;
        cond.waiters.splice(i, 1);
        clearTimeout(w.timer);
        this.#parked.get(conn)?.delete(r);
        lock.waiters.push({ conn, r, done: false, depth: w.depth, granted: () => this.#finish(w, reply) });
        lock.grant();
      },
    };
    cond.waiters.push(w);
    lock.free();
    this.#park(w, w.wake, t, () => w.wake({ v: false }));
  }

  #notify(cond: Cond, conn: Peer, n: number): Record<string, unknown> {
    if (!cond.lock.isHeldBy(conn)) {
      return { e: "owner", m: "Cannot notify: acquire() the Condition (its lock) before using notify()" };
    }
    for (const w of cond.waiters.slice(0, n)) w.wake({ v: true });
    return {};
  }

  #barrierWait(bar: Bar, conn: Peer, r: number, t: number | undefined, action: boolean): void {
    if (bar.drainer !== undefined) return void bar.arrivals.push({ conn, r, t, a: action });
    if (bar.broken) return conn.send({ r, e: "broken", m: "the barrier is broken" });
    const index = bar.count++;
    if (bar.count === bar.parties) {
      if (!action) return this.#pass(bar, { conn, r, index });
      bar.drainer = conn;
      return conn.send({ r, v: index, a: 1 });
    }
    const w = { conn, r, done: false, index };
    bar.waiters.push(w);
    // A party that times out or gives up breaks the barrier for everyone (Python's rule).
    const giveUp = (reply: Record<string, unknown>) => {
      this.#finish(w, reply);
      this.#break(bar);
    };
    this.#park(w, giveUp, t, () => giveUp({ e: "broken", m: "a party's wait timed out" }));
  }

  #pass(bar: Bar, last?: { conn: Peer; r: number; index: number }): void {
    for (const w of bar.waiters) this.#finish(w, { v: w.index });
    last?.conn.send({ r: last.r, v: last.index });
    bar.waiters = [];
    bar.count = 0;
    bar.drainer = undefined;
    for (const a of bar.arrivals.splice(0)) this.#barrierWait(bar, a.conn, a.r, a.t, a.a);
  }

  #break(bar: Bar): void {
    bar.broken = true;
    this.#failWaiters(bar);
  }

  #reset(bar: Bar): void {
    this.#failWaiters(bar);
    bar.broken = false;
  }

  #failWaiters(bar: Bar): void {
    const broken = { e: "broken", m: "the barrier is broken" };
    for (const w of bar.waiters) this.#finish(w, broken);
    for (const a of bar.arrivals) a.conn.send({ r: a.r, ...broken });
    bar.waiters = [];
    bar.arrivals = [];
    bar.count = 0;
    bar.drainer = undefined;
  }
}

function cast<T extends SyncObject>(obj: SyncObject, cls: abstract new (...args: never[]) => T): T {
  if (!(obj instanceof cls)) throw new SyncProtocolError();
  return obj;
}
