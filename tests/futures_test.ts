// concurrent.futures under both start methods: ProcessPoolExecutor, Future,
// asCompleted and wait (DESIGN §4 "concurrent.futures", §4b; Python's behaviour
// from research §1.9). Tasks that must stay running wait on a Queue the test
// releases; every wait has a timeout, so a bug fails instead of hanging.
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import {
  ALL_COMPLETED,
  asCompleted,
  BrokenProcessPoolError,
  CancelledError,
  type ExecutorOptions,
  FIRST_COMPLETED,
  FIRST_EXCEPTION,
  Future,
  getContext,
  ProcessError,
  ProcessPoolExecutor,
  Queue,
  RemoteError,
  TimeoutError,
  wait,
} from "../mod.ts";
import { self as f } from "./fixtures/futures_targets.ts";
import { METHODS, runProgram } from "./_helpers.ts";

const T = { timeout: 90_000 };
// Future<R> is invariant in R (its private callback list takes Future<R>), so futures of
// different result types only go into one wait()/asCompleted() call as Future<any>.
// deno-lint-ignore no-explicit-any
type AnyFuture = Future<any>;
const mixed = (...fs: AnyFuture[]): AnyFuture[] => fs;
const LONG = 60_000;
// Guards for outcomes that should come quickly (a worker's death, quick tasks on an idle worker):
// short enough that a hang there cannot eat the run's time, long enough for a loaded machine.
const DEATH = 10_000;
const QUICK = 10_000;

/**
 * How each future ends: "fulfilled <json>" or its error's class name; one still pending
 * after `ms` is "still pending" (so a hang shows which futures hung, instead of a bare timeout).
 */
async function outcomes(fs: AnyFuture[], ms = DEATH): Promise<string[]> {
  const out: string[] = fs.map(() => `still pending after ${ms} ms`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  const each = fs.map((fut, i) =>
    fut.result().then(
      (v) => void (out[i] = `fulfilled ${JSON.stringify(v)}`),
      (e) => void (out[i] = (e as Error)?.constructor?.name ?? String(e)),
    )
  );
  await Promise.race([Promise.all(each), expired]);
  clearTimeout(timer);
  return out;
}

/** `p`, or a failure naming `what` after `ms` (so a bug fails instead of hanging). */
function within<V>(p: PromiseLike<V>, what: string, ms = LONG): Promise<V> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([Promise.resolve(p), expired]).finally(() => clearTimeout(timer));
}

/** Lets timers and I/O run once, so the scheduler can hand out queued work (not a synchronisation). */
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

async function collect<V>(it: AsyncIterable<V>, what: string): Promise<V[]> {
  return await within((async () => {
    const out: V[] = [];
    for await (const x of it) out.push(x);
    return out;
  })(), what);
}

test("ProcessPoolExecutor() rejects maxWorkers 0, -1, 1.5 and a bad maxTasksPerChild with RangeError", () => {
  for (const maxWorkers of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new ProcessPoolExecutor({ maxWorkers }), RangeError, `maxWorkers ${maxWorkers}`);
    assert.throws(() => new (getContext("process").ProcessPoolExecutor)({ maxWorkers }), RangeError);
  }
  for (const maxTasksPerChild of [0, -2, 2.5]) {
    assert.throws(() => new ProcessPoolExecutor({ maxTasksPerChild }), RangeError, `maxTasksPerChild ${maxTasksPerChild}`);
  }
  assert.throws(() => new ProcessPoolExecutor({ context: "fork" as never }), RangeError);
  assert.equal(FIRST_COMPLETED, "FIRST_COMPLETED");
  assert.equal(FIRST_EXCEPTION, "FIRST_EXCEPTION");
  assert.equal(ALL_COMPLETED, "ALL_COMPLETED");
});

test("asCompleted() and wait() take only Futures", async () => {
  assert.throws(() => asCompleted([1 as never]), TypeError);
  assert.throws(() => asCompleted(null as never), TypeError);
  await assert.rejects(wait([Promise.resolve(1) as never]), TypeError);
  const empty = await wait([]);
  assert.equal(empty.done.size + empty.notDone.size, 0);
  assert.deepEqual(await asCompleted([]).next(), { value: undefined, done: true });
});

for (const method of METHODS) {
  const opts = { context: method };
  const executor = (options: ExecutorOptions = {}) => new ProcessPoolExecutor({ ...opts, ...options });
  const queue = <V>() => new Queue<V>(0, opts);

  test(`[${method}] submit() returns a thenable Future: await, Promise.all, result(), exception()`, T, async () => {
    const ex = executor({ maxWorkers: 2 });
    try {
      const fut = ex.submit(f.square, 7);
      assert.ok(fut instanceof Future);
      assert.equal(typeof fut.then, "function");
      assert.equal(await within(fut, "await future"), 49);
      assert.equal(await fut.result(LONG), 49);
      assert.equal(await fut.exception(LONG), null);
      assert.equal(fut.done(), true);
      assert.equal(fut.running(), false);
      assert.equal(fut.cancelled(), false);
      assert.equal(fut.cancel(), false, "a done future cannot be cancelled");

      const all = await within(Promise.all([1, 2, 3, 4].map((x) => ex.submit(f.square, x))), "Promise.all(futures)");
      assert.deepEqual(all, [1, 4, 9, 16]);
      // Shipped functions, async targets and values that need more than JSON.
      assert.equal(await within(ex.submit((a: number, b: number) => a * b, 6, 7), "shipped"), 42);
      assert.equal(await within(ex.submit(async (x: number) => await Promise.resolve(x + 1), 1), "async shipped"), 2);
      const value = { when: new Date(0), big: 2n ** 70n, map: new Map([[1, "one"]]), set: new Set([2]), bytes: new Uint8Array([1, 2]) };
      assert.deepEqual(await within(ex.submit(f.echo, value), "echo"), value);
      assert.deepEqual(await within(ex.submit(f.add, 2, 3), "add"), 5);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] result(timeout) and exception(timeout) reject with TimeoutError while the task runs; done/running/cancelled move on`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const fut = ex.submit(f.gate, started, release);
      assert.equal(fut.running(), false);
      assert.equal(fut.done(), false);
      assert.equal(fut.cancelled(), false);
      await started.get({ timeout: LONG });
      assert.equal(fut.running(), true, "a worker has it");
      assert.equal(fut.cancel(), false, "a running future cannot be cancelled");
      await assert.rejects(fut.result(50), TimeoutError);
      await assert.rejects(fut.exception(50), TimeoutError);
      await assert.rejects(fut.result(0), TimeoutError);
      assert.equal(fut.done(), false, "the task goes on after a result() timeout");
      assert.equal(fut.running(), true);
      assert.equal(fut.cancelled(), false);
      await release.put("released");
      assert.equal(await fut.result(LONG), "released");
      assert.equal(fut.done(), true);
      assert.equal(fut.running(), false);
      assert.equal(fut.cancelled(), false);
      assert.equal(fut.cancel(), false);
      assert.throws(() => fut.result(-1), RangeError);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] an fn that throws: result() rejects with the same class and message, exception() returns it`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    try {
      const range = ex.submit(f.fail, "RangeError", "bad value 7");
      await assert.rejects(range.result(LONG), (e: unknown) => e instanceof RangeError && e.message === "bad value 7");
      await assert.rejects(within(range, "await a failed future"), (e: unknown) => e instanceof RangeError && e.message === "bad value 7");
      const err = await range.exception(LONG);
      assert.ok(err instanceof RangeError);
      assert.equal((err as Error).message, "bad value 7");
      assert.equal(range.done(), true);
      assert.equal(range.cancelled(), false);

      const type = ex.submit(f.fail, "TypeError", "wrong type");
      await assert.rejects(type.result(LONG), (e: unknown) => e instanceof TypeError && e.message === "wrong type");
      const shipped = ex.submit((m: string) => {
        throw new SyntaxError(m);
      }, "from a shipped fn");
      await assert.rejects(shipped.result(LONG), (e: unknown) => e instanceof SyntaxError && e.message === "from a shipped fn");
      const custom = ex.submit(f.fail, "CustomError", "custom");
      await assert.rejects(custom.result(LONG), (e: unknown) => e instanceof RemoteError && e.remoteName === "CustomError" && e.message === "custom");

      // A failure nobody observes is dropped quietly, and the executor keeps working.
      ex.submit(f.fail, "Error", "nobody looks at this one");
      assert.equal(await within(ex.submit(f.square, 5), "square after failures"), 25);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] cancel(): true for futures no worker has taken, false for running and done ones`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const first = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      const rest = Array.from({ length: 10 }, (_, i) => ex.submit(f.square, i));
      await turn(); // let the scheduler hand the worker what it holds in line
      const last = rest[rest.length - 1];
      const calls: unknown[] = [];
      last.addDoneCallback((g) => calls.push(g));
      assert.equal(last.cancel(), true, "the last of many is still waiting for a worker");
      assert.deepEqual(calls, [last], "done callbacks run on cancel, with the future");
      assert.equal(last.cancelled(), true);
      assert.equal(last.done(), true);
      assert.equal(last.running(), false);
      assert.equal(last.cancel(), true, "cancelling again still says cancelled");
      await assert.rejects(last.result(LONG), CancelledError);
      await assert.rejects(last.exception(LONG), CancelledError);
      await assert.rejects(within(last, "await a cancelled future"), CancelledError);
      assert.equal(first.cancel(), false);
      assert.equal(first.running(), true);

      // The worker may hold a few tasks in line (running, as in Python): only a tail can be cancelled.
      const cancels = rest.map((r) => r.cancel());
      const firstCancelled = cancels.indexOf(true);
      assert.ok(firstCancelled >= 0);
      assert.deepEqual(cancels.slice(firstCancelled), cancels.slice(firstCancelled).map(() => true), `cancel() outcomes ${cancels}`);
      for (let i = 0; i < firstCancelled; i++) assert.equal(rest[i].running(), true, `future ${i} was not cancellable, so it is running`);

      await release.put("go");
      assert.equal(await first.result(LONG), "go");
      for (let i = 0; i < rest.length; i++) {
        if (cancels[i]) await assert.rejects(rest[i].result(LONG), CancelledError);
        else assert.equal(await rest[i].result(LONG), i * i);
      }
      assert.equal(calls.length, 1, "called once");
      assert.equal(ex.stats().completed, 1 + firstCancelled, "cancelled futures never ran");
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] addDoneCallback: called once with the future, before result() resolves; at once if already done`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const fut = ex.submit(f.gate, started, release);
      const order: string[] = [];
      const calls: unknown[] = [];
      fut.addDoneCallback((g) => {
        calls.push(g);
        order.push(`first done=${g.done()}`);
      });
      fut.addDoneCallback(() => order.push("second"));
      const viaResult = fut.result().then((v) => order.push(`result ${v}`));
      const viaThen = fut.then((v) => order.push(`then ${v}`));
      await started.get({ timeout: LONG });
      assert.deepEqual(order, [], "not before the future is done");
      await release.put(5);
      await within(Promise.all([viaResult, viaThen]), "result() and then()");
      assert.deepEqual(order.slice(0, 2), ["first done=true", "second"], `order ${order}`);
      assert.deepEqual(order.slice(2).sort(), ["result 5", "then 5"]);
      assert.deepEqual(calls, [fut], "called once, with the future");

      let late = 0;
      fut.addDoneCallback((g) => {
        assert.equal(g, fut);
        late++;
      });
      assert.equal(late, 1, "called at once when the future is already done");
      assert.equal(calls.length, 1);

      const bad = ex.submit(f.fail, "Error", "fails");
      let badCalls = 0;
      bad.addDoneCallback((g) => {
        assert.equal(g.done(), true);
        badCalls++;
      });
      await assert.rejects(bad.result(LONG), /fails/);
      assert.equal(badCalls, 1, "called for a failed future too");
      assert.throws(() => fut.addDoneCallback(42 as never), TypeError);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] a done callback that throws does not change the result and is reported on stderr`, T, async () => {
    const run = await runProgram("programs/futures_callback.ts", [method]);
    assert.equal(run.code, 0, `stderr: ${run.stderr}`);
    const line = run.stdout.trim().split("\n").pop()!;
    assert.deepEqual(JSON.parse(line), {
      result: 42,
      seen: ["first", "second", "late"],
      escaped: false,
      exception: null,
      badError: "task error",
    });
    assert.match(run.stderr, /boom from a done callback/);
    assert.match(run.stderr, /boom from a late callback/);
    assert.match(run.stderr, /boom from a failed future's callback/);
  });

  test(`[${method}] map(): ordered, zips iterables to the shortest, chunksize, async iterables`, T, async () => {
    const ex = executor({ maxWorkers: 3 });
    try {
      const xs = Array.from({ length: 30 }, (_, i) => i);
      // Early items spin longest, so results finish out of order; map yields them in order.
      assert.deepEqual(await collect(ex.map(f.spinThen, xs, xs.map((i) => (30 - i) * 20_000)), "ordered map"), xs);
      assert.deepEqual(await collect(ex.map(f.square, xs), "map"), xs.map((x) => x * x));
      assert.deepEqual(await collect(ex.map(f.add, [1, 2, 3], [10, 20]), "zip"), [11, 22]);
      assert.deepEqual(await collect(ex.map(f.add, [1, 2], [10, 20, 30, 40]), "zip"), [11, 22]);
      const big = Array.from({ length: 100 }, (_, i) => i);
      assert.deepEqual(await collect(ex.map(f.square, big, { chunksize: 7 }), "chunksize 7"), big.map((x) => x * x));
      assert.deepEqual(await collect(ex.map(f.add, big, big, { chunksize: 30 }), "chunksize 30, two iterables"), big.map((x) => 2 * x));
      let asyncClosed = false;
      async function* hundreds() {
        try {
          for (let i = 1; ; i++) yield i * 100;
        } finally {
          asyncClosed = true;
        }
      }
      assert.deepEqual(await collect(ex.map(f.add, [1, 2, 3], hundreds()), "sync and async zipped"), [101, 202, 303]);
      assert.equal(asyncClosed, true, "the longer input was closed");
      assert.deepEqual(await collect(ex.map(f.square, []), "empty map"), []);
      assert.deepEqual(await collect(ex.map((s: string) => s.toUpperCase(), ["a", "b"]), "shipped fn"), ["A", "B"]);
      assert.throws(() => ex.map(f.square, xs, { chunksize: 0 }), RangeError);
      assert.throws(() => ex.map(f.square), TypeError);
      assert.throws(() => ex.map(f.square, 5 as never), TypeError);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] map(): an fn error is raised when iteration reaches it; timeout rejects next() with TimeoutError`, T, async () => {
    const ex = executor({ maxWorkers: 2 });
    const release = queue<unknown>();
    try {
      const got: number[] = [];
      await assert.rejects(
        within((async () => {
          for await (const x of ex.map(f.failAt, [1, 2, 3, 4, 5], [3, 3, 3, 3, 3])) got.push(x);
        })(), "map with a failing item"),
        (e: unknown) => e instanceof RangeError && e.message === "item 3 is bad",
      );
      assert.deepEqual(got, [1, 2], "the results before the failure were yielded");

      const it = ex.map(f.waitFor, [release, release], { timeout: 200 });
      await assert.rejects(within(it.next(), "map timeout"), TimeoutError);
      assert.deepEqual(await within(it.next(), "next after timeout"), { value: undefined, done: true });
      await release.put("a");
      await release.put("b");
      assert.equal(await within(ex.submit(f.square, 3), "submit after a map timeout"), 9);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] map() over an endless generator with an early break (lazy)`, T, async () => {
    const ex = executor({ maxWorkers: 2 });
    try {
      let pulled = 0;
      let closed = false;
      function* naturals() {
        try {
          for (let i = 0; ; i++) {
            pulled++;
            yield i;
          }
        } finally {
          closed = true;
        }
      }
      const got = await within((async () => {
        const out: number[] = [];
        for await (const y of ex.map(f.square, naturals())) {
          out.push(y);
          if (out.length === 10) break;
        }
        return out;
      })(), "map over naturals");
      assert.deepEqual(got, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
      assert.equal(closed, true, "break closed the input");
      const after = pulled;
      assert.equal(await within(ex.submit(f.square, 12), "submit after break"), 144);
      assert.equal(pulled, after, "no input is read after the break");
      assert.ok(pulled < 1_000_000, `pulled ${pulled}`);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] asCompleted() yields Future objects as they finish, each once, duplicates once`, T, async () => {
    const ex = executor({ maxWorkers: 2 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const slow = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      const quick = ex.submit(f.square, 3);
      const it = asCompleted(mixed(slow, quick, slow, quick));
      const a = await within(it.next(), "first of asCompleted");
      assert.equal(a.done, false);
      assert.ok(a.value instanceof Future, "a Future, not its value");
      assert.equal(a.value, quick);
      assert.equal(slow.done(), false);
      await release.put("slow done");
      const b = await within(it.next(), "second of asCompleted");
      assert.equal(b.value, slow);
      assert.equal(await b.value!.result(), "slow done");
      assert.deepEqual(await within(it.next(), "end of asCompleted"), { value: undefined, done: true });

      // for await over futures, some already done (yielded first), with duplicates.
      const fs = [1, 2, 3, 4, 5].map((x) => ex.submit(f.square, x));
      await within(fs[4], "fs[4]");
      const seen: unknown[] = [];
      // TypeScript types a for-await variable as the awaited element (number here); at run time it is the Future.
      for await (const fut of asCompleted([...fs, fs[0], fs[4]], LONG) as AsyncIterable<unknown>) {
        assert.ok(fut instanceof Future);
        seen.push(fut);
      }
      assert.equal(seen.length, 5);
      assert.equal(new Set(seen).size, 5);
      assert.deepEqual(await Promise.all(fs.map((x) => x.result())), [1, 4, 9, 16, 25]);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] asCompleted() with a timeout: TimeoutError "(of N) futures unfinished" from next()`, T, async () => {
    const ex = executor({ maxWorkers: 2 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const slow = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      const quick = ex.submit(f.square, 2);
      await within(quick, "quick");
      const it = asCompleted(mixed(slow, quick), 150);
      assert.equal((await within(it.next(), "the done one")).value, quick);
      await assert.rejects(within(it.next(), "asCompleted timeout"), (e: unknown) => {
        assert.ok(e instanceof TimeoutError, String(e));
        assert.match(e.message, /1 \(of 2\) futures unfinished/);
        return true;
      });
      await release.put(1);
      assert.equal(await slow.result(LONG), 1);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] wait(): ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, and a timeout that never rejects`, T, async () => {
    const ex = executor({ maxWorkers: 2 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const fs = [1, 2, 3].map((x) => ex.submit(f.square, x));
      const all = await within(wait(fs), "wait ALL_COMPLETED (default)");
      assert.deepEqual(all.done, new Set(fs));
      assert.equal(all.notDone.size, 0);
      const none = await within(wait(fs, { returnWhen: FIRST_EXCEPTION }), "FIRST_EXCEPTION with no failure");
      assert.equal(none.done.size, 3);

      const slow = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      const timedOut = await within(wait([slow], { timeout: 50 }), "wait with a timeout");
      assert.equal(timedOut.done.size, 0);
      assert.deepEqual(timedOut.notDone, new Set([slow]));
      const stillNot = await within(wait(mixed(slow, fs[0]), { timeout: 0, returnWhen: ALL_COMPLETED }), "timeout 0");
      assert.deepEqual(stillNot.done, new Set([fs[0]]));
      assert.deepEqual(stillNot.notDone, new Set([slow]));

      const quick = ex.submit(f.square, 4);
      const first = await within(wait(mixed(slow, quick), { returnWhen: FIRST_COMPLETED, timeout: LONG }), "FIRST_COMPLETED");
      assert.deepEqual(first.done, new Set([quick]));
      assert.deepEqual(first.notDone, new Set([slow]));

      const failing = ex.submit(f.fail, "Error", "first exception");
      const exc = await within(wait(mixed(slow, quick, failing), { returnWhen: FIRST_EXCEPTION, timeout: LONG }), "FIRST_EXCEPTION");
      assert.deepEqual(exc.done, new Set(mixed(quick, failing)));
      assert.deepEqual(exc.notDone, new Set([slow]), "returned on the failure, without waiting for the rest");
      await assert.rejects(wait([slow], { returnWhen: "SOMETIMES" as never }), RangeError);

      await release.put("done");
      const end = await within(wait(mixed(slow, quick, failing), { timeout: LONG }), "wait for all");
      assert.equal(end.done.size, 3);
      assert.equal(end.notDone.size, 0);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] with one worker busy on a long task, later tasks run on the idle one (none waits behind the long task)`, T, async () => {
    // Python's workers take tasks from one shared call queue, so an idle worker never leaves a task
    // waiting behind a busy one (a consumer task and the producer task it waits for, run together).
    const ex = executor({ maxWorkers: 2 });
    const started = queue<number>(), release = queue<unknown>();
    let released = false;
    try {
      // Warm both workers up with quick tasks, so that the scheduler knows tasks are quick.
      await within(Promise.all([ex.submit(f.square, 1), ex.submit(f.square, 2)]), "warm-up");
      for (let i = 0; i < 15; i++) await ex.submit(f.square, i).result(LONG);
      assert.equal(ex.stats().workers, 2);
      const slow = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      const later = [1, 2, 3, 4].map((x) => ex.submit(f.square, x));
      const got = await outcomes(later, QUICK);
      await release.put("done");
      released = true;
      assert.deepEqual(got, ["fulfilled 1", "fulfilled 4", "fulfilled 9", "fulfilled 16"]);
      assert.equal(await slow.result(LONG), "done");
    } finally {
      if (!released) await release.put("done");
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] shutdown(): submit and map afterwards throw ProcessError; shutdown is idempotent`, T, async () => {
    const unused = executor({ maxWorkers: 2 });
    await within(unused.shutdown(), "shutdown of an executor that never ran a task");
    assert.throws(() => unused.submit(f.square, 1), ProcessError);

    const ex = executor({ maxWorkers: 2 });
    try {
      const fut = ex.submit(f.square, 4);
      await within(ex.shutdown(), "shutdown");
      assert.equal(fut.done(), true, "shutdown({ wait: true }) waited for the pending future");
      assert.equal(await fut.result(), 16);
      assert.throws(() => ex.submit(f.square, 1), (e: unknown) => e instanceof ProcessError && /cannot schedule new futures after shutdown/i.test(e.message));
      assert.throws(() => ex.submitWith(f.square, [1]), ProcessError);
      assert.throws(() => ex.map(f.square, [1]), ProcessError);
      await within(ex.shutdown(), "second shutdown");
      await within(ex.shutdown({ wait: false, cancelFutures: true }), "third shutdown");
      assert.equal(ex.stats().workers, 0);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] shutdown({ cancelFutures: true }) cancels the futures no worker has taken`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    const started = queue<number>(), release = queue<unknown>();
    let closing: Promise<void> | undefined;
    try {
      const first = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      const rest = Array.from({ length: 8 }, (_, i) => ex.submit(f.square, i));
      await turn();
      closing = ex.shutdown({ cancelFutures: true });
      assert.equal(rest[rest.length - 1].cancelled(), true, "the last queued future is cancelled at once");
      assert.equal(first.cancelled(), false);
      for (const r of rest) assert.ok(r.cancelled() || r.running(), "each is cancelled, or a worker holds it");
      assert.throws(() => ex.submit(f.square, 1), ProcessError);
      await release.put("released");
      await within(closing, "shutdown after the release");
      assert.equal(await first.result(), "released");
      for (let i = 0; i < rest.length; i++) {
        if (rest[i].cancelled()) await assert.rejects(rest[i].result(), CancelledError);
        else assert.equal(await rest[i].result(), i * i);
      }
      assert.equal(ex.stats().workers, 0);
    } finally {
      if (closing === undefined) await release.put("released");
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] shutdown({ wait: false }) returns without waiting; the running future still finishes`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const first = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      await within(ex.shutdown({ wait: false }), "shutdown({ wait: false })");
      assert.equal(first.done(), false, "returned while the task still runs");
      assert.throws(() => ex.submit(f.square, 1), ProcessError);
      await release.put(7);
      assert.equal(await first.result(LONG), 7);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] await using: disposal shuts down and waits`, T, async () => {
    let fut: Future<number> | undefined;
    let escaped: ProcessPoolExecutor | undefined;
    // (within() holds a timer, so this checks what disposal does; the program test below checks that
    // disposal alone keeps a program alive.)
    await within((async () => {
      await using ex = executor({ maxWorkers: 1 });
      escaped = ex;
      fut = ex.submit(f.square, 6);
    })(), "await using disposal");
    assert.equal(fut!.done(), true, "disposal waited for the pending future");
    assert.equal(await fut!.result(), 36);
    assert.throws(() => escaped!.submit(f.square, 1), ProcessError);
    assert.equal(escaped!.stats().workers, 0);
    const dispose = (Symbol as { asyncDispose?: symbol }).asyncDispose ?? Symbol.for("Symbol.asyncDispose");
    await within((escaped as unknown as Record<symbol, () => Promise<void>>)[dispose](), "second disposal");
  });

  for (const mode of ["using", "shutdown"]) {
    test(`[${method}] a program that submits, then ends with ${mode === "using" ? "await using disposal" : "await shutdown()"}, runs to its end`, T, async () => {
      const run = await runProgram("programs/futures_dispose.ts", [method, mode]);
      assert.equal(run.code, 0, `exit code ${run.code}, stdout: ${run.stdout}, stderr: ${run.stderr}`);
      assert.deepEqual(JSON.parse(run.stdout.trim().split("\n").pop()!), { done: true, result: 42 });
    });
  }

  test(`[${method}] maxTasksPerChild=2 with 1 worker: 7 tasks at once, then 5 one by one, complete (gh-115634); no worker runs more than 2`, T, async () => {
    const ex = executor({ maxWorkers: 1, maxTasksPerChild: 2 });
    try {
      const idents = await within(Promise.all(Array.from({ length: 7 }, () => ex.submit(f.ident))), "7 tasks at once");
      // One at a time too, as a Python user would after the hang.
      for (let i = 0; i < 5; i++) idents.push(await ex.submit(f.ident).result(LONG));
      const counts = new Map<number, number>();
      for (const id of idents) counts.set(id, (counts.get(id) ?? 0) + 1);
      assert.ok(counts.size >= 6, `12 tasks, 2 per worker: at least 6 workers, got idents ${idents}`);
      for (const [id, n] of counts) assert.ok(n <= 2, `worker ${id} ran ${n} tasks (idents ${idents})`);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] initializer runs once per worker, with initargs`, T, async () => {
    const ex = executor({ maxWorkers: 2, initializer: f.init, initargs: ["tag-1"] });
    const started = queue<number>(), release = queue<unknown>();
    try {
      // Two tasks that both wait until both have started: two workers for sure.
      const a = ex.submit(f.initStateGated, started, release);
      const b = ex.submit(f.initStateGated, started, release);
      await started.get({ timeout: LONG });
      await started.get({ timeout: LONG });
      await release.put(1);
      await release.put(2);
      const states = await within(Promise.all([a, b]), "gated tasks");
      assert.notEqual(states[0].ident, states[1].ident);
      for (const s of states) assert.deepEqual({ inits: s.inits, tag: s.tag }, { inits: 1, tag: "tag-1" });
      const more = await within(Promise.all(Array.from({ length: 8 }, () => ex.submit(f.initState))), "more tasks");
      for (const s of more) {
        assert.deepEqual({ inits: s.inits, tag: s.tag }, { inits: 1, tag: "tag-1" });
        assert.ok(s.ident === states[0].ident || s.ident === states[1].ident, "the same two workers");
      }
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] an initializer that throws: every future fails with BrokenProcessPoolError`, T, async () => {
    const ex = executor({ maxWorkers: 2, initializer: f.failingInit });
    try {
      const fs = [1, 2, 3].map((x) => ex.submit(f.square, x));
      for (const fut of fs) await assert.rejects(fut.result(LONG), BrokenProcessPoolError);
      assert.ok((await fs[0].exception()) instanceof BrokenProcessPoolError);
      assert.throws(() => ex.submit(f.square, 1), BrokenProcessPoolError);
    } finally {
      await within(ex.shutdown(), "shutdown of a broken executor");
    }
  });

  test(`[${method}] a worker that exits mid-task breaks the executor: BrokenProcessPoolError everywhere`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    try {
      const dying = ex.submit(f.exitWith, 3);
      const pending = [2, 3, 4].map((x) => ex.submit(f.square, x));
      assert.deepEqual(await outcomes(mixed(dying, ...pending)), Array(4).fill("BrokenProcessPoolError"));
      assert.match(((await dying.exception()) as Error).message, /terminated abruptly/);
      assert.ok([dying, ...pending].every((p) => p.done() && !p.cancelled() && !p.running()));
      assert.ok((await dying.exception()) instanceof BrokenProcessPoolError);
      assert.throws(() => ex.submit(f.square, 1), BrokenProcessPoolError);
      assert.throws(() => ex.map(f.square, [1]), BrokenProcessPoolError);
    } finally {
      await within(ex.shutdown(), "shutdown of a broken executor");
    }
  });

  test(`[${method}] a worker's death also fails the future running on another worker`, T, async () => {
    const ex = executor({ maxWorkers: 2 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const slow = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      const dying = ex.submit(f.exitWith, 3);
      assert.deepEqual(await outcomes(mixed(dying, slow)), ["BrokenProcessPoolError", "BrokenProcessPoolError"]);
      assert.throws(() => ex.submit(f.square, 1), BrokenProcessPoolError);
    } finally {
      await within(ex.shutdown(), "shutdown of a broken executor");
    }
  });

  if (method === "process") {
    test(`[${method}] a worker killed by SIGKILL mid-task breaks the executor`, T, async () => {
      const ex = executor({ maxWorkers: 1 });
      try {
        const dying = ex.submit(f.killSelf);
        const pending = [2, 3].map((x) => ex.submit(f.square, x));
        assert.deepEqual(await outcomes(mixed(dying, ...pending)), Array(3).fill("BrokenProcessPoolError"));
        assert.throws(() => ex.submit(f.square, 1), BrokenProcessPoolError);
      } finally {
        await within(ex.shutdown(), "shutdown of a broken executor");
      }
    });
  }

  test(`[${method}] a result that cannot be copied back rejects with TypeError; the executor keeps working`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    try {
      const bad = ex.submit(f.returnsFunction);
      await assert.rejects(bad.result(LONG), TypeError);
      assert.equal(await within(ex.submit(f.square, 5), "square after"), 25);
      // Arguments that cannot be copied, and functions that cannot be sent, fail at the call site.
      assert.throws(() => ex.submit(f.echo, () => 1), TypeError);
      assert.throws(() => ex.submit(Math.max, 1, 2), TypeError);
      assert.throws(() => ex.submit(42 as never), TypeError);
      assert.equal(await within(ex.submit(f.square, 6), "square after bad calls"), 36);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] submitWith({ signal }): aborting a queued task rejects with the reason and it never runs`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const reason = new Error("not wanted any more");
      const pre = ex.submitWith(f.square, [1], { signal: AbortSignal.abort(reason) });
      await assert.rejects(pre.result(LONG), (e: unknown) => e === reason);

      const first = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      const behind = [0, 1, 2, 3, 4, 5].map((x) => ex.submit(f.square, x));
      const controller = new AbortController();
      const aborted = ex.submitWith(f.square, [99], { signal: controller.signal });
      await turn();
      assert.equal(aborted.running(), false, "the last of many is still queued");
      controller.abort(reason);
      await assert.rejects(aborted.result(LONG), (e: unknown) => e === reason);
      assert.equal(aborted.done(), true);
      await release.put("go");
      assert.equal(await first.result(LONG), "go");
      assert.deepEqual(await within(Promise.all(behind), "the others"), [0, 1, 4, 9, 16, 25]);
      assert.equal(ex.stats().completed, 1 + behind.length, "the aborted task never ran");
      assert.throws(() => ex.submitWith(f.square, [1], { signal: "no" as never }), TypeError);
      assert.throws(() => ex.submitWith(f.square, 1 as never), TypeError);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] submitWith({ signal }): aborting a running task stops its worker; the executor is not broken`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const reason = new Error("stop it");
      const controller = new AbortController();
      const running = ex.submitWith(f.gate, [started, release], { signal: controller.signal });
      const before = await started.get({ timeout: LONG });
      const behind = ex.submit(f.ident);
      await turn();
      assert.equal(running.running(), true);
      controller.abort(reason);
      await assert.rejects(running.result(LONG), (e: unknown) => e === reason);
      const after = await behind.result(LONG);
      assert.notEqual(after, before, "the task behind it ran on a new worker");
      assert.equal(await within(ex.submit(f.square, 4), "square after the abort"), 16);
      assert.ok(ex.stats().workers <= 1);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] submitWith({ timeout }): TimeoutError once the task runs too long; the executor still works`, T, async () => {
    const ex = executor({ maxWorkers: 1 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      const timed = ex.submitWith(f.gate, [started, release], { timeout: 300 });
      await assert.rejects(timed.result(LONG), TimeoutError);
      assert.equal(timed.done(), true);
      assert.equal(await within(ex.submit(f.square, 9), "square after the timeout"), 81);
      assert.equal(await within(ex.submitWith(f.square, [3], { timeout: LONG }), "a task within its timeout"), 9);
      assert.throws(() => ex.submitWith(f.square, [1], { timeout: -1 }), RangeError);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });

  test(`[${method}] getContext(method).ProcessPoolExecutor starts workers with that method; stats()`, T, async () => {
    const ex = new (getContext(method).ProcessPoolExecutor)({ maxWorkers: 1 });
    const started = queue<number>(), release = queue<unknown>();
    try {
      assert.deepEqual(ex.stats(), { workers: 0, idle: 0, queued: 0, completed: 0 }, "workers start as tasks need them");
      const who = await within(ex.submit(f.whoami), "whoami");
      if (method === "process") {
        assert.notEqual(who.pid, process.pid);
        assert.equal(who.ident, who.pid);
      } else {
        assert.equal(who.pid, process.pid, "a worker thread shares the process");
      }
      assert.notEqual(who.name, "MainProcess");

      const first = ex.submit(f.gate, started, release);
      await started.get({ timeout: LONG });
      const rest = Array.from({ length: 8 }, (_, i) => ex.submit(f.square, i));
      await turn();
      const busy = ex.stats();
      assert.equal(busy.workers, 1);
      assert.equal(busy.idle, 0);
      assert.ok(busy.queued >= 1 && busy.queued <= 8, `queued ${busy.queued}`);
      assert.equal(busy.completed, 1);
      await release.put(0);
      await within(Promise.all([first, ...rest]), "all tasks");
      assert.deepEqual(ex.stats(), { workers: 1, idle: 1, queued: 0, completed: 10 });
      await within(ex.shutdown(), "shutdown");
      assert.equal(ex.stats().workers, 0);
    } finally {
      await within(ex.shutdown(), "shutdown");
    }
  });
}
