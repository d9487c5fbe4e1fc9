// Managers under both start methods: the seed program, every proxy type used from a
// child, CPython's _TestContainers / TestSyncManagerTypes / _TestMyManager, lifetimes.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { test } from "node:test";
import {
  BaseManager,
  BrokenBarrierError,
  type BaseProxy,
  type DictProxy,
  getContext,
  type ListProxy,
  Manager,
  Pool,
  Process,
  ProcessError,
  Queue,
  type QueueProxy,
  QueueEmptyError,
  QueueFullError,
  RemoteError,
} from "../mod.ts";
import { ActionManager, type Counter, type FooBar, self as t } from "./fixtures/manager_targets.ts";
import { fixture, METHODS, pidAlive, runProgram, runtimeCommand, runtimeKey, waitUntil } from "./_helpers.ts";

const T = { timeout: 60_000 };

/** Runs `target(...args)` in a child and checks it ended well. */
async function inChild(method: string, target: unknown, args: unknown[]): Promise<void> {
  const p = new Process({ target: target as never, args, context: method as never });
  p.start();
  await p.join(30_000);
  if (p.exitCode === null) p.kill();
  assert.equal(p.exitCode, 0, "the child ends with exit code 0");
}

test("Manager() rejects bad options", () => {
  assert.throws(() => new Manager({ context: "fork" as never }), RangeError);
  assert.throws(() => new Manager({ authkey: 5 as never }), TypeError);
  assert.throws(() => new Manager({ address: { host: "127.0.0.1", port: 70000 } }), RangeError);
  assert.throws(() => BaseManager.register(""), TypeError);
});

test("getContext(m).Manager starts its server with that method", T, async () => {
  for (const method of METHODS) {
    await using manager = new (getContext(method).Manager)();
    await manager.start();
    const li = await manager.list([method]);
    assert.deepEqual(await li.toArray(), [method]);
  }
});

test("a proxy factory before start() throws ProcessError", T, async () => {
  const m = new Manager();
  await assert.rejects(m.list(), ProcessError);
});

for (const method of METHODS) {
  const opts = { context: method };

  test(`[${method}] 10 children append to one Manager().list(); the parent reads all ten (seed program)`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const shared = await manager.list<number>();
    const ps = Array.from({ length: 10 }, (_, i) => new Process({ target: t.appendTo, args: [shared, i], context: method }));
    for (const p of ps) p.start();
    for (const p of ps) await p.join(30_000);
    assert.deepEqual(ps.map((p) => p.exitCode), Array(10).fill(0));
    assert.equal(await shared.length(), 10);
    assert.deepEqual((await shared.toArray()).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test(`[${method}] a shipped function in a child uses a list proxy`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const shared = await manager.list<string>(["a"]);
    await inChild(method, async (li: ListProxy<string>) => {
      await li.append("b");
      await li.set(0, "A");
    }, [shared]);
    assert.deepEqual(await shared.toArray(), ["A", "b"]);
  });

  test(`[${method}] every proxy type used from a child is seen by the parent (TestSyncManagerTypes)`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const li = await manager.list([1, 2, 3]);
    const d = await manager.dict({ a: 1 });
    const v = await manager.Value("i", 1);
    const ns = await manager.Namespace();
    const q = await manager.Queue<number>(2);
    const arr = await manager.Array("d", [1, 2, 3]);
    await inChild(method, t.emptyList, [li]);
    await inChild(method, t.emptyDict, [d]);
    await inChild(method, t.setValue, [v, 2]);
    await inChild(method, t.setName, [ns, "name", "Bob"]);
    await inChild(method, t.putItems, [q, 2]);
    await inChild(method, t.doubleArray, [arr]);
    assert.equal(await li.length(), 0);
    assert.equal(await d.length(), 0);
    assert.equal(await v.get(), 2);
    assert.equal(await ns.get("name"), "Bob");
    assert.equal(await q.full(), true);
    assert.equal(await q.qsize(), 2);
    assert.deepEqual(await arr.toArray(), [2, 4, 6]);
  });

  test(`[${method}] ListProxy: slices, extend, index, count, insert, remove, pop, sort, reverse (test_list)`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const a = await manager.list<number>([...Array(10).keys()]);
    assert.deepEqual(await a.slice(2, 10), [2, 3, 4, 5, 6, 7, 8, 9]);
    await a.extend([10, 11]);
    assert.equal(await a.length(), 12);
    assert.equal(await a.get(-1), 11);
    assert.equal(await a.index(5), 5);
    assert.equal(await a.count(3), 1);
    await a.insert(0, 99);
    assert.equal(await a.get(0), 99);
    await a.remove(99);
    assert.equal(await a.pop(), 11);
    assert.equal(await a.pop(0), 0);
    await a.reverse();
    assert.deepEqual(await a.toArray(), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    await a.sort();
    assert.deepEqual(await a.slice(0, 3), [1, 2, 3]);
    await a.sort({ reverse: true });
    assert.equal(await a.get(0), 10);
    await a.delete(0);
    assert.equal(await a.get(0), 9);
    // Python's IndexError and ValueError are RangeError here, rebuilt from the server.
    await assert.rejects(a.get(100), RangeError);
    await assert.rejects(a.remove(1234), RangeError);
    await assert.rejects(a.index(1234), RangeError);
    const seen: number[] = [];
    for await (const x of a) seen.push(x);
    assert.deepEqual(seen, await a.toArray());
    // A fetched value is a copy: changing it does not change the list (Python's rule).
    const nested = await manager.list<number[]>([[1]]);
    (await nested.get(0)).push(2);
    assert.deepEqual(await nested.get(0), [1]);
  });

  test(`[${method}] DictProxy: get, set, has, delete, keys, values, items, update, pop, setdefault, clear`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const d = await manager.dict<string, number>({ a: 1 });
    await d.set("b", 2);
    assert.equal(await d.get("a"), 1);
    assert.equal(await d.get("zz"), undefined);
    assert.equal(await d.get("zz", 7), 7);
    await assert.rejects(d.getItem("zz"), RangeError);
    assert.equal(await d.has("b"), true);
    assert.deepEqual(await d.keys(), ["a", "b"]);
    assert.deepEqual(await d.values(), [1, 2]);
    assert.deepEqual(await d.items(), [["a", 1], ["b", 2]]);
    await d.update(new Map([["c", 3]]));
    await d.update({ d: 4 });
    assert.deepEqual(await d.toObject(), { a: 1, b: 2, c: 3, d: 4 });
    assert.equal(await d.pop("d"), 4);
    assert.equal(await d.pop("d", 0), 0);
    await assert.rejects(d.pop("d"), RangeError);
    assert.equal(await d.setdefault("e", 5), 5);
    assert.equal(await d.setdefault("e", 6), 5);
    assert.equal(await d.delete("e"), true);
    const keys: string[] = [];
    for await (const k of d) keys.push(k);
    assert.deepEqual(keys, ["a", "b", "c"]);
    // Python: RuntimeError at the next step after the dict gained or lost a key, the last step included.
    const walk = async (change: (k: string) => Promise<unknown>) => {
      for await (const k of d) await change(k);
    };
    await assert.rejects(walk((k) => k === "a" ? d.set("z", 0) : Promise.resolve()), /dictionary changed size during iteration/);
    await assert.rejects(walk((k) => k === "a" ? d.delete("z") : Promise.resolve()), /dictionary changed size during iteration/);
    await assert.rejects(walk((k) => k === "c" ? d.set("z", 0) : Promise.resolve()), /dictionary changed size during iteration/);
    await d.delete("z");
    await walk(async (k) => d.set(k, await d.getItem(k))); // setting existing keys is fine
    assert.deepEqual(await d.toMap(), new Map([["a", 1], ["b", 2], ["c", 3]]));
    await d.clear();
    assert.equal(await d.length(), 0);
    const m = await manager.dict(new Map<number, string>([[1, "one"]]));
    assert.equal(await m.get(1), "one");
  });

  test(`[${method}] Namespace attributes set, read and deleted (test_namespace); Value of any kind`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const n = await manager.Namespace();
    await n.set("name", "Bob");
    await n.set("job", "Builder");
    await n.set("_hidden", "x");
    assert.equal(await n.get("name"), "Bob");
    assert.equal(await n.delete("job"), true);
    assert.equal(await n.get("job"), undefined);
    assert.deepEqual(await n.toObject(), { name: "Bob", _hidden: "x" });
    await n.set("n", 2);
    assert.equal(await n.repr(), 'Namespace(name="Bob", n=2)', "Python's str(n), hiding _hidden");
    // Python's manager.Value ignores its typecode and stores any object.
    const v = await manager.Value("i", { big: 2n ** 70n, at: new Date(0) });
    assert.deepEqual(await v.get(), { big: 2n ** 70n, at: new Date(0) });
  });

  test(`[${method}] manager Queue: FIFO, timeouts, QueueEmptyError/QueueFullError, JoinableQueue`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const q = await manager.Queue<number>(2);
    await q.put(1);
    await q.putNowait(2);
    await assert.rejects(q.put(3, { timeout: 50 }), QueueFullError);
    await assert.rejects(q.putNowait(3), QueueFullError);
    assert.equal(await q.get(), 1);
    assert.equal(await q.getNowait(), 2);
    await assert.rejects(q.get({ timeout: 50 }), QueueEmptyError);
    await assert.rejects(q.get({ block: false }), QueueEmptyError);
    // A get waiting on the server is served by a later put from a child.
    const got = q.get({ timeout: 30_000 });
    await inChild(method, t.putItems, [q, 1]);
    assert.equal(await got, 0);
    const jq = await manager.JoinableQueue<string>();
    await jq.put("x");
    const joined = jq.join();
    assert.equal(await jq.get(), "x");
    await jq.taskDone();
    await joined;
    await assert.rejects(jq.taskDone(), RangeError);
    // A plain Queue has no join(): Python's queue has it, ours keeps JoinableQueue's apart.
    await assert.rejects(q.join(), RemoteError);
  });

  test(`[${method}] an AbortSignal withdraws a waiting get() or acquire(); nothing is lost`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const q = await manager.Queue<string>();
    const ac = new AbortController();
    const got = q.get({ signal: ac.signal });
    await manager.numberOfObjects(); // a round trip: the get waits on the server now
    ac.abort(new Error("stop"));
    await assert.rejects(got, /stop/);
    await q.put("item");
    assert.equal(await q.get({ timeout: 10_000 }), "item", "the withdrawn get took nothing");
    const aborted = new AbortController();
    aborted.abort(new Error("already"));
    await assert.rejects(q.get({ signal: aborted.signal }), /already/);
    const lock = await manager.Lock();
    await lock.acquire();
    const ac2 = new AbortController();
    const waiting = lock.acquire({ signal: ac2.signal });
    await manager.numberOfObjects();
    ac2.abort(new Error("give up"));
    await assert.rejects(waiting, /give up/);
    await lock.release();
    assert.equal(await lock.acquire({ block: false }), true, "the withdrawn acquire does not hold the lock");
  });

  test(`[${method}] nested proxies: a dict of lists, written by a child (test_dict_proxy_nested)`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const inner = await manager.list<string>();
    const d = await manager.dict<string, ListProxy<string>>();
    await d.set("supplies", inner);
    await inChild(method, t.appendNested, [d, "supplies", "water"]);
    assert.deepEqual(await inner.toArray(), ["water"]);
    const again = (await d.get("supplies"))!;
    assert.deepEqual(await again.toArray(), ["water"]);
    // The inner list survives the dict's clear(): this side still holds it.
    await d.clear();
    await inner.append("food");
    assert.deepEqual(await again.toArray(), ["water", "food"]);
  });

  test(`[${method}] a manager queue stored in a list works through it (test_nested_queue)`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const q = await manager.Queue<number>();
    const li = await manager.list<QueueProxy<number>>([q]);
    const viaList = await li.get(0);
    await viaList.put(5);
    assert.equal(await q.get({ timeout: 10_000 }), 5);
    await inChild(method, async (li: ListProxy<QueueProxy<number>>) => {
      await (await li.get(0)).put(6);
    }, [li]);
    assert.equal(await q.get({ timeout: 10_000 }), 6);
  });

  test(`[${method}] Event, Lock, RLock, Semaphore used from a child (TestSyncManagerTypes)`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const e = await manager.Event();
    await e.set();
    await inChild(method, t.clearEvent, [e]);
    assert.equal(await e.isSet(), false);
    assert.equal(await e.wait(10), false);
    // A Lock the child acquired is released by the parent; a second release is RangeError.
    const lock = await manager.Lock();
    await inChild(method, t.acquireLock, [lock]);
    assert.equal(await lock.locked(), true);
    assert.equal(await lock.acquire({ block: false }), false);
    await lock.release();
    await assert.rejects(lock.release(), RangeError);
    // An RLock is held per connection: the child neither gets nor releases the parent's.
    const rlock = await manager.RLock();
    assert.equal(await rlock.acquire(), true);
    assert.equal(await rlock.acquire(), true);
    const out = await manager.list();
    await inChild(method, t.tryRLock, [rlock, out]);
    assert.deepEqual(await out.toArray(), [false, "ProcessError"]);
    await rlock.release();
    await rlock.release();
    await assert.rejects(rlock.release(), ProcessError);
    const sem = await manager.BoundedSemaphore(2);
    assert.equal(await sem.acquire(), true);
    assert.equal(await sem.getValue(), 1);
    await sem.release();
    await assert.rejects(sem.release(), RangeError);
    const plain = await manager.Semaphore(0);
    assert.equal(await plain.acquire({ timeout: 10 }), false);
    await plain.release();
    assert.equal(await plain.acquire({ timeout: 10 }), true);
  });

  test(`[${method}] Condition: a child waits for a predicate, the parent notifies; Barrier between parent and child`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const cond = await manager.Condition();
    const ns = await manager.Namespace({ state: "wait" });
    const p = new Process({ target: t.waitForGo, args: [cond, ns], context: method });
    p.start();
    await assert.rejects(cond.notify(), ProcessError, "notify without the lock");
    await cond.withLock(async () => {
      await ns.set("state", "go");
      await cond.notifyAll();
    });
    await p.join(30_000);
    assert.equal(p.exitCode, 0);
    assert.equal(await ns.get("seen"), true);
    assert.equal(await cond.acquire(), true);
    assert.equal(await cond.wait(10), false, "a wait times out without a notify");
    await cond.release();

    const barrier = await manager.Barrier(2);
    const out = await manager.list<number>();
    const q = new Process({ target: t.barrierWait, args: [barrier, out], context: method });
    q.start();
    const mine = await barrier.wait(20_000);
    await q.join(30_000);
    assert.equal(q.exitCode, 0);
    assert.deepEqual([mine, ...(await out.toArray())].sort(), [0, 1]);
    assert.equal(await barrier.parties(), 2);
    await assert.rejects(barrier.wait(10), BrokenBarrierError);
    assert.equal(await barrier.broken(), true);
    await barrier.reset();
    assert.equal(await barrier.broken(), false);
  });

  test(`[${method}] Condition(lock) uses that Lock or RLock: wait() releases it and takes it back`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const lock = await manager.RLock();
    const cond = await manager.Condition(lock);
    const ready = await manager.Event();
    const ns = await manager.Namespace({ state: "wait" });
    const p = new Process({ target: t.waitOnLock, args: [cond, lock, ready, ns], context: method });
    p.start();
    assert.equal(await ready.wait(20_000), true);
    assert.equal(await lock.acquire({ timeout: 20_000 }), true, "the child's wait() released the RLock");
    await ns.set("state", "go");
    await cond.notifyAll(); // allowed: the condition's lock is the RLock this connection holds
    await lock.release();
    await p.join(30_000);
    assert.equal(p.exitCode, 0);
    assert.equal(await ns.get("seen"), true, "the child's wait() took the RLock back");
    assert.equal(await lock.locked(), false);

    const plain = await manager.Lock();
    const cond2 = await manager.Condition(plain);
    assert.equal(await cond2.acquire(), true);
    assert.equal(await plain.locked(), true);
    const waiting = cond2.wait(20_000);
    assert.equal(await plain.acquire({ timeout: 20_000 }), true, "wait() released the Lock");
    await cond2.notify();
    await plain.release();
    assert.equal(await waiting, true);
    assert.equal(await plain.locked(), true, "wait() took the Lock back");
    await cond2.release();
    assert.equal(await plain.locked(), false);

    await using other = new Manager(opts);
    await other.start();
    await assert.rejects(manager.Condition(await other.Lock()), TypeError, "a lock of another manager");
    await assert.rejects(manager.Condition(await manager.list() as never), TypeError, "not a lock");
    await assert.rejects(manager.Condition(await manager.Semaphore()), TypeError, "a Semaphore is not a lock");
  });

  test(`[${method}] a lock reached through another spelling of the server's address is still that server's lock`, T, async () => {
    const authkey = "one key for both spellings";
    await using manager = new Manager({ ...opts, authkey });
    await manager.start();
    const { path } = manager.address as { path: string };
    const elsewhere = path.replace(/\/([^/]+)$/, "/./$1");
    assert.notEqual(elsewhere, path);
    const client = new Manager({ address: { path: elsewhere }, authkey });
    await client.connect();
    try {
      const lock = await client.Lock();
      const cond = await manager.Condition(lock);
      await cond.acquire();
      assert.equal(await lock.locked(), true, "the Condition holds the client's lock");
      await cond.release();
      assert.equal(await lock.locked(), false);
    } finally {
      await client.close();
    }
  });

  test(`[${method}] Barrier action runs in the server once per pass, before release; one that throws breaks the barrier`, T, async () => {
    await using manager = new ActionManager(opts);
    await manager.start();
    const log = await manager.passLog();
    const barrier = await manager.Barrier(2, { action: t.recordPass });
    const out = await manager.list<number>();
    const p = new Process({ target: t.barrierWaitCount, args: [barrier, log, out], context: method });
    p.start();
    await barrier.wait(20_000);
    const seen = await log.count();
    await p.join(30_000);
    assert.equal(p.exitCode, 0);
    assert.deepEqual([seen, ...(await out.toArray())], [1, 1], "both parties are released after the action");
    await Promise.all([barrier.wait(20_000), barrier.wait(20_000)]);
    assert.equal(await log.count(), 2, "once per pass");
    const third = await Promise.allSettled([barrier.wait(20_000), barrier.wait(20_000)]);
    const reasons = third.map((r) => (r as PromiseRejectedResult).reason);
    assert.equal(reasons.filter((e) => e instanceof RangeError && /the action failed/.test(e.message)).length, 1, "the action's caller gets its error");
    assert.equal(reasons.filter((e) => e instanceof BrokenBarrierError).length, 1, "the other party: BrokenBarrierError");
    assert.equal(await barrier.broken(), true);

    const shipped = await manager.Barrier(1, { action: () => 42 });
    assert.equal(await shipped.wait(20_000), 0);
    const failing = await manager.Barrier(1, { action: () => { throw new TypeError("shipped action"); } });
    await assert.rejects(failing.wait(20_000), /shipped action/);
    assert.equal(await failing.broken(), true);
    assert.throws(() => manager.Barrier(2, { action: 5 as never }), TypeError);
  });

  test(`[${method}] proxies travel through a Queue and as Pool task arguments; a Pool initializer uses a Namespace`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const li = await manager.list<string>();
    const q = new Queue<ListProxy<string>>(0, opts);
    const p = new Process({ target: t.appendFromQueue, args: [q], context: method });
    p.start();
    await q.put(li);
    await p.join(30_000);
    assert.equal(p.exitCode, 0);
    assert.deepEqual(await li.toArray(), ["via queue"]);
    const ns = await manager.Namespace();
    const lock = await manager.Lock();
    const nums = await manager.list<number>();
    const pool = new Pool({ processes: 2, initializer: t.countInit, initargs: [ns, lock], context: method });
    try {
      const inits = await pool.starmap(t.poolAppend, [1, 2, 3, 4].map((x) => [nums, x] as [ListProxy<number>, number]));
      assert.ok(inits.every((n) => n >= 1), `every task ran after an initializer: ${inits}`);
    } finally {
      pool.terminate();
      await pool.join();
    }
    assert.equal(await ns.get("inits"), 2);
    assert.deepEqual((await nums.toArray()).sort(), [1, 2, 3, 4]);
  });

  test(`[${method}] a list's async iterator sees a change made after it started (test_list_iter)`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    const a = await manager.list([0, 1, 2]);
    const seen: number[] = [];
    for await (const x of a) {
      if (seen.length === 0) await a.set(1, 100);
      seen.push(x);
    }
    assert.deepEqual(seen, [0, 100, 2]);
  });

  test(`[${method}] objects are freed when no proxy holds them`, T, async () => {
    await using manager = new Manager(opts);
    await manager.start();
    assert.equal(await manager.numberOfObjects(), 0);
    const a = await manager.list();
    const b = await manager.dict();
    assert.equal(await manager.numberOfObjects(), 2);
    a.close();
    assert.equal(await manager.numberOfObjects(), 1);
    await assert.rejects(a.length(), ProcessError);
    // A copy sent to a child keeps the object alive until the child gives it up.
    await inChild(method, async (d: DictProxy) => await d.set("k", 1), [b]);
    assert.equal(await manager.numberOfObjects(), 1);
    b.close();
    assert.equal(await manager.numberOfObjects(), 0);
  });

  test(`[${method}] proxies fail with ProcessError once the manager is shut down`, T, async () => {
    const manager = new Manager(opts);
    await manager.start();
    const li = await manager.list([1]);
    await manager.shutdown();
    await assert.rejects(li.length(), ProcessError);
    await assert.rejects(manager.list(), ProcessError);
    await manager.shutdown(); // a second shutdown does nothing
  });
}

// Python's _TestMyManager: registered types, exposed methods, iterators.
class MyManager extends BaseManager {
  declare Foo: () => Promise<BaseProxy & Record<string, (...a: unknown[]) => Promise<unknown>>>;
}
MyManager.register("Foo", t.makeFooBar);
MyManager.register("Bar", t.makeFooBar, { exposed: ["f", "_h"] });
MyManager.register("Squares", t.makeSquares);
MyManager.register("Counter", t.makeCounter);
MyManager.register("Leaky", t.makeLeaky);

for (const method of METHODS) {
  test(`[${method}] BaseManager.register: exposed methods, hidden _names, errors, iterators (test_mymanager)`, T, async () => {
    await using manager = new MyManager({ context: method });
    await manager.start();
    const foo = await manager.Foo() as unknown as BaseProxy & FooBar;
    assert.equal(await foo.f(), "f()");
    await assert.rejects(Promise.resolve().then(() => foo.g()), RangeError);
    assert.equal((foo as unknown as Record<string, unknown>)._h, undefined);
    await assert.rejects(foo.callMethod("_h"), RemoteError);
    const bar = await manager.create("Bar") as BaseProxy;
    assert.equal(await bar.callMethod("_h"), "_h()");
    await assert.rejects(bar.callMethod("g"), RemoteError);
    const sq = await manager.create("Squares") as BaseProxy;
    const it = await sq.callMethod("squares", [10]) as AsyncIterable<number>;
    const got: number[] = [];
    for await (const x of it) got.push(x);
    assert.deepEqual(got, [...Array(10).keys()].map((i) => i * i));
    // A registered type's proxy travels to a child and keeps its state on the server.
    const c = await manager.create("Counter", 5) as BaseProxy & Counter;
    await inChild(method, async (c: Counter) => await c.add(10), [c]);
    assert.equal(await c.value(), 15);
    await assert.rejects(manager.create("Nope"), RemoteError);
  });

  test(`[${method}] a child killed while its get() waits in the server takes no item (its call is withdrawn)`, T, async () => {
    await using manager = new Manager({ context: method });
    await manager.start();
    const q = await manager.Queue<number>();
    const parked = await manager.Event();
    // Held by the child alone once the parent closes its proxy: freed when the server sees the child go.
    const childs = await manager.list();
    const p = new Process({ target: t.blockInGet, args: [q, parked, childs], context: method });
    p.start();
    assert.equal(await parked.wait(30_000), true, "the child's get() reached the server");
    childs.close();
    const before = await manager.numberOfObjects();
    p.kill();
    await p.join(30_000);
    assert.notEqual(p.exitCode, null);
    // A put racing the server's notice of the end could still meet the dead get (as in Python).
    let now = before;
    const counting = setInterval(() => void manager.numberOfObjects().then((n) => (now = n)), 25);
    try {
      await waitUntil(() => now < before, "the server saw the child's connection end");
    } finally {
      clearInterval(counting);
    }
    await q.put(1);
    assert.equal(await q.get({ timeout: 20_000 }), 1, "the item is still there");
  });

}

test("a value that cannot be copied is a TypeError at the call site, and the proxy keeps working (test_remote's put(time.sleep))", T, async () => {
  await using manager = new Manager({ context: "worker" });
  await manager.start();
  const q = await manager.Queue();
  await assert.rejects(q.put(() => 1), TypeError);
  await assert.rejects(q.put({ s: Symbol("x") }), TypeError);
  await q.put("fine");
  assert.equal(await q.get(), "fine");
  // A result the server cannot send back is that call's error, not the connection's.
  await using mine = new MyManager({ context: "worker" });
  await mine.start();
  const leaky = await mine.create("Leaky");
  await assert.rejects(leaky.callMethod("fn"), TypeError);
  assert.equal(await leaky.callMethod("ok"), "ok");
});

test("a subclass's registry is its own, starting as a copy of its parent's", () => {
  class A extends BaseManager {}
  class B extends A {}
  A.register("x", t.makeFooBar);
  B.register("y", t.makeFooBar);
  assert.equal(typeof (A.prototype as unknown as Record<string, unknown>).x, "function");
  assert.equal((A.prototype as unknown as Record<string, unknown>).y, undefined);
  assert.equal(typeof (B.prototype as unknown as Record<string, unknown>).y, "function");
});

async function firstLine(child: ReturnType<typeof spawn>): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the program printed nothing within 60 s")), 60_000);
    createInterface({ input: child.stdout! }).once("line", (l) => {
      clearTimeout(timer);
      resolve(l);
    });
  });
}

test("a manager's server child does not outlive its program, killed or ending without shutdown()", T, async () => {
  for (const mode of ["wait", "end"]) {
    const [exe, ...args] = runtimeCommand(fixture("programs/manager_orphan.ts"));
    const program = spawn(exe, [...args, mode], { stdio: ["ignore", "pipe", "inherit"] });
    let pid: number | undefined;
    try {
      const out = JSON.parse(await firstLine(program)) as { pid: number; items: number[] };
      pid = out.pid;
      assert.deepEqual(out.items, [1, 2]);
      if (mode === "wait") {
        assert.ok(pidAlive(pid), "the server runs before the kill");
        program.kill("SIGKILL");
      }
      await waitUntil(() => !pidAlive(pid!), `the server of a program that ${mode === "wait" ? "was killed" : "ended"} has exited`, 20_000);
      if (mode === "end") {
        const code = await new Promise((resolve) => program.exitCode !== null ? resolve(program.exitCode) : program.once("exit", resolve));
        assert.equal(code, 0, "the program ended by itself");
      }
    } finally {
      program.kill("SIGKILL");
      if (pid !== undefined && pidAlive(pid)) process.kill(pid, "SIGKILL");
    }
  }
});

test("a Manager removes the socket folders that killed programs left behind", T, async () => {
  const stale = join(tmpdir(), `polyproc-manager-${2 ** 22 + 1}-abcdef`); // a pid that cannot exist
  mkdirSync(stale, { recursive: true });
  writeFileSync(join(stale, "manager.sock"), "");
  const manager = new Manager({ context: "worker" });
  try {
    await manager.start();
    assert.equal(existsSync(stale), false, "the stale folder is gone");
  } finally {
    await manager.shutdown();
    rmSync(stale, { recursive: true, force: true });
  }
});

test("a Manager whose server cannot report back (its queue lost the broker) fails start() instead of spinning", T, async () => {
  const run = await runProgram("programs/manager_lost_report.ts", [], 60_000);
  assert.equal(run.signal, null, `the program ended by itself (stderr: ${run.stderr.slice(-500)})`);
  assert.equal(run.code, 0);
  assert.match(run.stdout, /^ProcessError: Cannot start the manager's server: its report could not arrive: .*broker/m);
});

test("on Deno, a Manager without --allow-write --allow-net, or without --allow-run, fails at start() naming the flags; shutdown() then works", {
  ...T,
  skip: runtimeKey !== "deno" && "Deno permissions only",
}, async () => {
  const cases: [string[], RegExp][] = [
    [["--allow-read", "--allow-run", "--allow-env"], /^ProcessError: Cannot start the manager's server: .*--allow-write --allow-net/],
    [["--allow-read", "--allow-write", "--allow-net", "--allow-env"], /^StartMethodError: .*needs --allow-run/],
  ];
  for (const [flags, expected] of cases) {
    const child = spawn(process.execPath, ["run", ...flags, fixture("programs/manager_permissions.ts")], { stdio: ["ignore", "pipe", "inherit"] });
    const line = await firstLine(child);
    await new Promise((resolve) => child.exitCode !== null ? resolve(null) : child.once("exit", resolve));
    assert.match(line, expected);
    assert.equal(child.exitCode, 0, `shutdown() after the failed start() ended the program cleanly (${flags.join(" ")})`);
  }
});
