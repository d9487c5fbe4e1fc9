// Queues under both start methods: CPython's _TestQueue, ported, and the issue's
// producer/consumer guarantees.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import {
  getContext,
  JoinableQueue,
  ProcessError,
  Queue,
  QueueEmptyError,
  QueueFullError,
  SimpleQueue,
} from "../mod.ts";
import { self as q } from "./fixtures/queue_targets.ts";
import { METHODS, runProgram, tempPath, waitUntil } from "./_helpers.ts";

const T = { timeout: 90_000 };



test("Queue() rejects a bad maxsize with TypeError/RangeError", () => {
  assert.throws(() => new Queue(-1), RangeError);
  assert.throws(() => new Queue(1.5), RangeError);
  assert.throws(() => new Queue("1" as never), TypeError);
  assert.throws(() => new Queue(0, { context: "fork" as never }), RangeError);
});

for (const method of METHODS) {
  const ctx = getContext(method);
  const opts = { context: method };


  test(`[${method}] put() on a full queue: QueueFullError at once or after the timeout (test_put)`, T, async () => {
    const queue = new Queue<number>(6, opts);
    for (let i = 0; i < 6; i++) await queue.put(i);
    assert.equal(await queue.full(), true);
    assert.equal(await queue.qsize(), 6);
    await assert.rejects(queue.put(7, { block: false }), QueueFullError);
    await assert.rejects(queue.putNowait(7), QueueFullError);
    await assert.rejects(queue.put(7, { block: false, timeout: 1_000 }), QueueFullError);
    await assert.rejects(queue.put(7, { timeout: 20 }), QueueFullError);
    const p = new ctx.Process({ target: q.drain, args: [queue, 6] });
    p.start();
    await p.join(60_000);
    assert.equal(p.exitCode, 0);
    assert.equal(await queue.empty(), true);
    assert.equal(await queue.full(), false);
  });

  test(`[${method}] get() in every form, then QueueEmptyError at once or after the timeout (test_get)`, T, async () => {
    const queue = new Queue<number>(0, opts);
    const p = new ctx.Process({ target: q.putAll, args: [queue, [2, 3, 4, 5]] });
    p.start();
    assert.equal(await queue.get({ timeout: 30_000 }), 2);
    assert.equal(await queue.get({ block: true, timeout: 30_000 }), 3);
    assert.equal(await queue.get({ timeout: 30_000 }), 4);
    await p.join(30_000);
    assert.equal(await queue.getNowait(), 5);
    await assert.rejects(queue.get({ block: false }), QueueEmptyError);
    await assert.rejects(queue.getNowait(), QueueEmptyError);
    await assert.rejects(queue.get({ timeout: 20 }), QueueEmptyError);
    assert.throws(() => queue.get({ timeout: -1 }), RangeError);
  });

  test(`[${method}] what the parent put before start() comes before what the child puts (test_fork)`, T, async () => {
    const queue = new Queue<number>(0, opts);
    for (let i = 0; i < 10; i++) await queue.put(i);
    const p = new ctx.Process({ target: q.putAll, args: [queue, [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]] });
    p.start();
    await p.join(30_000);
    const got = [];
    for (let i = 0; i < 20; i++) got.push(await queue.get({ timeout: 30_000 }));
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i));
    await assert.rejects(queue.getNowait(), QueueEmptyError);
  });

  test(`[${method}] a child that puts 5,000 items and returns ends by itself, and every item arrives`, T, async () => {
    const queue = new Queue<number>(0, opts);
    const items = Array.from({ length: 5_000 }, (_, i) => i);
    const p = new ctx.Process({ target: q.putAll, args: [queue, items] });
    p.start();
    await p.join(60_000);
    assert.equal(p.exitCode, 0, "the child ended by itself");
    const got = [];
    for (let i = 0; i < items.length; i++) got.push(await queue.get({ timeout: 30_000 }));
    assert.deepEqual(got, items);
    await assert.rejects(queue.getNowait(), QueueEmptyError);
  });

  test(`[${method}] an aborted get() or put() rejects with the signal's reason and takes nothing`, T, async () => {
    const queue = new Queue<number>(1, opts);
    const reason = new Error("stop waiting");
    const getting = new AbortController();
    const pending = queue.get({ signal: getting.signal });
    getting.abort(reason);
    await assert.rejects(pending, (e) => e === reason);
    await queue.put(1);
    const putting = new AbortController();
    const blocked = queue.put(2, { signal: putting.signal });
    putting.abort(reason);
    await assert.rejects(blocked, (e) => e === reason);
    assert.equal(await queue.get({ timeout: 30_000 }), 1);
    await assert.rejects(queue.get({ timeout: 50 }), QueueEmptyError, "the aborted put left nothing behind");
  });

  test(`[${method}] qsize() counts puts and gets (test_qsize)`, async () => {
    const queue = new Queue(0, opts);
    await queue.put(1);
    assert.equal(await queue.qsize(), 1);
    await queue.put(2);
    assert.equal(await queue.qsize(), 2);
    await queue.get();
    assert.equal(await queue.qsize(), 1);
    await queue.get();
    assert.equal(await queue.qsize(), 0);
  });

  test(`[${method}] items keep their types; a 16 MiB item and an empty string round-trip`, T, async () => {
    const queue = new Queue(0, opts);
    const items = [0, -0, 1.5, "", "é", true, null, undefined, 2n ** 80n, new Map([[1, new Set([2])]]), new RangeError("r")];
    for (const item of items) await queue.put(item);
    for (const item of items) {
      const got = await queue.get();
      if (item instanceof Error) {
        assert.ok(got instanceof RangeError);
        assert.equal((got as Error).stack, item.stack);
      } else assert.deepEqual(got, item);
    }
    const big = new Uint8Array(16 * 1024 * 1024).map((_, i) => i % 251);
    await queue.put(big);
    assert.deepEqual(await queue.get(), big);
  });

  test(`[${method}] put() of a value that cannot be copied throws at once and the queue keeps working`, async () => {
    const queue = new Queue(1, opts);
    assert.throws(() => queue.put({ f: () => 1 }), (e: Error) => e instanceof TypeError && /item\.f/.test(e.message));
    await queue.put(true);
    assert.equal(await queue.qsize(), 1);
    assert.equal(await queue.get(), true);
    assert.equal(await queue.empty(), true);
  });

  test(`[${method}] put() and get() on a closed handle throw saying so; other handles keep working`, T, async () => {
    const queue = new Queue(0, opts);
    queue.close();
    queue.close();
    assert.throws(() => queue.put(1), (e: Error) => e instanceof ProcessError && /Queue is closed/.test(e.message));
    assert.throws(() => queue.get(), (e: Error) => e instanceof ProcessError && /Queue is closed/.test(e.message));
    const open = new Queue<number>(0, opts);
    const p = new ctx.Process({ target: q.putAll, args: [open, [1]] });
    open.close(); // the child's handle is its own
    p.start();
    await p.join(30_000);
    assert.equal(p.exitCode, 0);
  });

  test(`[${method}] shutdown(): puts throw, gets drain then throw, for await ends; immediate drops`, T, async () => {
    const queue = new Queue<number>(0, opts);
    for (const i of [1, 2, 3]) await queue.put(i);
    await queue.shutdown();
    await assert.rejects(queue.put(4), (e: Error) => e instanceof ProcessError && /shut down/.test(e.message));
    assert.equal(await queue.get(), 1);
    const rest = [];
    for await (const item of queue) rest.push(item);
    assert.deepEqual(rest, [2, 3]);
    await assert.rejects(queue.get({ timeout: 1_000 }), (e: Error) => e instanceof ProcessError && /shut down/.test(e.message));
    const dropped = new Queue<number>(0, opts);
    await dropped.put(1);
    await dropped.shutdown({ immediate: true });
    await assert.rejects(dropped.get(), /shut down/);
  });

  test(`[${method}] JoinableQueue: join() waits for every taskDone(); too many is a RangeError (test_task_done)`, T, async () => {
    const queue = new JoinableQueue<number | null>(0, opts);
    const results = new Queue<number>(0, opts);
    const workers = Array.from({ length: 2 }, () => new ctx.Process({ target: q.joinableWorker, args: [queue, results] }));
    for (const w of workers) w.start();
    for (let i = 0; i < 10; i++) await queue.put(i);
    await queue.join();
    const got = [];
    for (let i = 0; i < 10; i++) got.push(await results.get({ timeout: 30_000 }));
    assert.deepEqual(got.sort((a, b) => a - b), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    for (const _ of workers) await queue.put(null);
    for (const w of workers) await w.join(30_000);
    assert.deepEqual(workers.map((w) => w.exitCode), [0, 0]);
    await queue.join();
    await assert.rejects(queue.taskDone(), (e: Error) => e instanceof RangeError && /too many times/.test(e.message));
  });

  test(`[${method}] SimpleQueue: empty(), put/get across a child, close twice`, T, async () => {
    const queue = new SimpleQueue<string>(opts);
    assert.equal(await queue.empty(), true);
    const p = new ctx.Process({ target: q.putAll, args: [queue, ["a", "b"]] });
    p.start();
    await p.join(30_000);
    assert.equal(await queue.empty(), false);
    assert.equal(await queue.get(), "a");
    assert.equal(await queue.get(), "b");
    assert.equal(await queue.empty(), true);
    queue.close();
    queue.close();
  });

  test(`[${method}] a child hands its queue on to a grandchild (test_nested_startmethod)`, T, async () => {
    const queue = new Queue<number>(0, opts);
    const p = new ctx.Process({ target: q.forwardToGrandchild, args: [queue, method] });
    p.start();
    const got = [await queue.get({ timeout: 60_000 }), await queue.get({ timeout: 60_000 })];
    await p.join(30_000);
    assert.deepEqual(got.sort(), [1, 2]);
  });

  test(`[${method}] many producers, many consumers: FIFO per producer, nothing lost or twice, one consumer killed`, T, async () => {
    const queue = new Queue<[number, number] | null>(0, opts);
    const victimLog = tempPath("victim.txt");
    const victim = new ctx.Process({ target: q.waitOnQueue, args: [queue, victimLog] });
    victim.start();
    // The file exists a moment before its line is written: wait for the line itself.
    const waiting = () => existsSync(victimLog) && readFileSync(victimLog, "utf8") === "waiting\n";
    await waitUntil(waiting, "the victim consumer waits in get()", 60_000);
    victim.kill();
    await victim.join(30_000);
    const logs = [tempPath("c0.txt"), tempPath("c1.txt")];
    const consumers = logs.map((log) => new ctx.Process({ target: q.consume, args: [queue, log] }));
    for (const c of consumers) c.start();
    const n = 200;
    const producers = [0, 1, 2].map((id) => new ctx.Process({ target: q.produce, args: [queue, id, n] }));
    for (const p of producers) p.start();
    for (const p of producers) await p.join(60_000);
    for (const _ of consumers) await queue.put(null);
    for (const c of consumers) await c.join(60_000);
    assert.deepEqual([...producers, ...consumers].map((p) => p.exitCode), [0, 0, 0, 0, 0]);
    const seen = new Set<string>();
    for (const log of logs) {
      const items = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
      const last = new Map<number, number>();
      for (const [id, i] of items as [number, number][]) {
        assert.ok((last.get(id) ?? -1) < i, `FIFO per producer: ${id}:${i} after ${last.get(id)}`);
        last.set(id, i);
        const key = `${id}:${i}`;
        assert.ok(!seen.has(key), `delivered twice: ${key}`);
        seen.add(key);
      }
    }
    assert.equal(seen.size, 3 * n, "every item was delivered");
    assert.equal(readFileSync(victimLog, "utf8"), "waiting\n");
  });

  test(`[${method}] main awaiting get() stays alive while only a daemon child works`, T, async () => {
    const run = await runProgram("programs/queue_wait.ts", [method]);
    assert.equal(run.stdout, "got 42\n", run.stderr);
    assert.equal(run.code, 0);
  });
}

test("a Queue made for \"worker\" cannot be passed to a \"process\" child", () => {
  const queue = new Queue(0, { context: "worker" });
  const p = new (getContext("process").Process)({ target: q.putAll, args: [queue, [1]] });
  assert.throws(() => p.start(), (e: Error) => e instanceof TypeError && /args\[0\].*"worker" start method/.test(e.message));
  assert.equal(p.pid, undefined);
});
