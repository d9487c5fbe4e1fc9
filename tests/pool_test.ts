// Pool and AsyncResult under both start methods: CPython's _TestPool,
// _TestPoolWorkerErrors, _TestPoolWorkerLifetime and TestInitializers, ported,
// and what DESIGN.md §4/§4b add (worker death, abort, per-task timeout, lazy imap).
//
// Tasks that must stay running are held on a polyproc Queue (fixtures' waitFor)
// and released by putting into it: no sleeps, no timing assertions. Every wait on
// the pool is bounded (within()), so a bug fails its test instead of hanging the run.
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import {
  type AsyncResult,
  fromModule,
  getContext,
  Pool,
  type PoolOptions,
  ProcessError,
  Queue,
  TimeoutError,
} from "../mod.ts";
import { PoolTaskError } from "./fixtures/pool_targets.ts";
import { METHODS, runProgram, runtimeKey, waitUntil } from "./_helpers.ts";

const t = fromModule<typeof import("./fixtures/pool_targets.ts")>(new URL("./fixtures/pool_targets.ts", import.meta.url));

const T = { timeout: 90_000 };
const WAIT_MS = 60_000;

/** `promise`, or a failure naming `what` after `ms`: a pool that never answers fails the test instead of hanging it. */
function within<R>(promise: Promise<R>, what = "the pool's answer", ms = WAIT_MS): Promise<R> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Every value of an async iterator (bounded in time). */
function collect<R>(it: AsyncIterable<R>, what = "the iterator's values"): Promise<R[]> {
  return within((async () => {
    const out: R[] = [];
    for await (const v of it) out.push(v);
    return out;
  })(), what);
}

/** The values an iterator yields before it throws, and what it threw (bounded in time). */
function collectUntilError<R>(it: AsyncIterable<R>): Promise<{ values: R[]; error: unknown }> {
  return within((async () => {
    const values: R[] = [];
    try {
      for await (const v of it) values.push(v);
    } catch (error) {
      return { values, error };
    }
    return { values, error: undefined };
  })(), "the iterator to yield and then throw");
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const squares = (n: number): number[] => range(n).map((x) => x * x);
const byNumber = (a: number, b: number): number => a - b;

function* gen(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i;
}

async function* asyncGen(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) {
    await Promise.resolve();
    yield i;
  }
}

/** 0, 1, 2, ... then throws `error` where item `at` would be. */
function* failingAt(at: number, error: Error): Generator<number> {
  for (let i = 0;; i++) {
    if (i === at) throw error;
    yield i;
  }
}

async function* asyncFailingAt(at: number, error: Error): AsyncGenerator<number> {
  for (let i = 0;; i++) {
    await Promise.resolve();
    if (i === at) throw error;
    yield i;
  }
}

// ------------------------------------------------------------------------------------ argument checks
// These throw before any worker starts, so one start method is enough.

test("Pool() rejects processes 0, -1, 1.5 and \"2\" with RangeError (test_make_pool)", () => {
  for (const processes of [0, -1, 1.5, "2", NaN]) {
    assert.throws(() => new Pool({ processes: processes as number }), RangeError, `processes: ${String(processes)}`);
  }
});

test("Pool() rejects maxTasksPerChild 0, -1, 0.5 and \"12\" with RangeError (test_pool_maxtasksperchild_invalid)", () => {
  for (const maxTasksPerChild of [0, -1, 0.5, "12"]) {
    assert.throws(
      () => new Pool({ processes: 1, maxTasksPerChild: maxTasksPerChild as number }),
      RangeError,
      `maxTasksPerChild: ${String(maxTasksPerChild)}`,
    );
  }
});

test("Pool() rejects a non-callable initializer with TypeError (test_pool_initializer)", () => {
  assert.throws(() => new Pool({ processes: 1, initializer: 1 as never }), TypeError);
  assert.throws(() => new Pool({ processes: 1, initializer: "init" as never }), TypeError);
});

for (const method of METHODS) {
  /** Runs `body` with a fresh pool of this start method, then terminates and joins it whatever happened. */
  const withPool = async (options: PoolOptions, body: (pool: Pool) => Promise<void>): Promise<void> => {
    const pool = new Pool({ context: method, ...options });
    try {
      await body(pool);
    } finally {
      pool.terminate();
      await within(pool.join(), "join() after terminate()");
    }
  };
  const newQueue = <I>() => new Queue<I>(0, { context: method });

  // ---------------------------------------------------------------------------------- results

  test(`[${method}] apply() and applyAsync() return what a direct call returns (test_apply, test_async)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      assert.equal(await within(pool.apply(t.sqr, [5])), 25);
      assert.equal(await within(pool.apply(t.mul, [3, 4])), 12);
      assert.equal(await pool.applyAsync(t.sqr, [7]).get(WAIT_MS), 49);
      assert.equal(await within(pool.apply(t.sqrLater, [6])), 36, "an async task's result is awaited");
      assert.equal(await within(pool.apply((x: number) => x * 2, [21])), 42, "a shipped arrow function");
      assert.equal(await within(pool.apply(t.whoami)).then((w) => typeof w.name), "string", "args default to []");
    });
  });

  test(`[${method}] map() and mapAsync() equal Array.map, with the default chunksize and chunksize 20 over 100 items (test_map)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      assert.deepEqual(await within(pool.map(t.sqr, range(10))), squares(10));
      assert.deepEqual(await within(pool.map(t.sqr, range(100))), squares(100));
      assert.deepEqual(await within(pool.map(t.sqr, range(100), { chunksize: 20 })), squares(100));
      assert.deepEqual(await pool.mapAsync(t.sqr, range(100)).get(WAIT_MS), squares(100));
      assert.deepEqual(await pool.mapAsync(t.sqr, range(100), { chunksize: 20 }).get(WAIT_MS), squares(100));
      assert.deepEqual(await within(pool.map(t.sqr, range(100), { chunksize: 1 })), squares(100));
    });
  });

  test(`[${method}] starmap() and starmapAsync() equal a direct call on each args array (test_starmap)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      const pairs = range(100).map((i) => [i, i + 1] as [number, number]);
      const expected = pairs.map(([a, b]) => a * b);
      assert.deepEqual(await within(pool.starmap(t.mul, pairs.slice(0, 10))), expected.slice(0, 10));
      assert.deepEqual(await within(pool.starmap(t.mul, pairs)), expected);
      assert.deepEqual(await within(pool.starmap(t.mul, pairs, { chunksize: 20 })), expected);
      assert.deepEqual(await pool.starmapAsync(t.mul, pairs).get(WAIT_MS), expected);
      assert.deepEqual(await pool.starmapAsync(t.mul, pairs, { chunksize: 20 }).get(WAIT_MS), expected);
    });
  });

  test(`[${method}] map() cuts its input in Python's default chunks, ceil(length / (4 × processes)), or in chunksize`, T, async () => {
    // With maxTasksPerChild 1 each chunk runs on a fresh worker, so the workers seen count the chunks.
    await withPool({ processes: 2, maxTasksPerChild: 1 }, async (pool) => {
      const byDefault = await within(pool.map(t.sqrWho, range(100)));
      assert.deepEqual(byDefault.map(([sq]) => sq), squares(100));
      const size = Math.ceil(100 / (4 * 2)); // 13
      assert.equal(new Set(byDefault.map(([, ident]) => ident)).size, Math.ceil(100 / size), "13 items a chunk: 8 chunks");
      const byFifties = await within(pool.map(t.sqrWho, range(100), { chunksize: 50 }));
      assert.deepEqual(byFifties.map(([sq]) => sq), squares(100));
      assert.equal(new Set(byFifties.map(([, ident]) => ident)).size, 2, "50 items a chunk: 2 chunks");
    });
  });

  test(`[${method}] chunksize 0, -1 or 1.5 is a RangeError (Python's map returns [None]*n for 0)`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      for (const chunksize of [0, -1, 1.5]) {
        await assert.rejects(async () => await pool.map(t.sqr, [1, 2], { chunksize }), RangeError);
        assert.throws(() => pool.imap(t.sqr, [1, 2], { chunksize }), RangeError);
        assert.throws(() => pool.imapUnordered(t.sqr, [1, 2], { chunksize }), RangeError);
      }
      assert.deepEqual(await within(pool.map(t.sqr, [1, 2])), [1, 4]);
    });
  });

  test(`[${method}] empty input gives [] from map, mapAsync, starmap, imap and imapUnordered (test_empty_iterable, test_map_chunksize)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      assert.deepEqual(await within(pool.map(t.sqr, [])), []);
      assert.deepEqual(await within(pool.map(t.sqr, [], { chunksize: 1 })), []);
      assert.deepEqual(await within(pool.map(t.sqr, gen(0))), []);
      assert.deepEqual(await pool.mapAsync(t.sqr, []).get(WAIT_MS), []);
      assert.deepEqual(await pool.mapAsync(t.sqr, [], { chunksize: 1 }).get(WAIT_MS), []);
      assert.deepEqual(await within(pool.starmap(t.mul, [])), []);
      assert.deepEqual(await collect(pool.imap(t.sqr, [])), []);
      assert.deepEqual(await collect(pool.imap(t.sqr, asyncGen(0))), []);
      assert.deepEqual(await collect(pool.imapUnordered(t.sqr, [])), []);
      assert.deepEqual(await collect(pool.imapUnordered(t.sqr, [], { chunksize: 1 })), []);
    });
  });

  test(`[${method}] generators, async generators, Sets and strings are accepted as input`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      assert.deepEqual(await within(pool.map(t.sqr, gen(10))), squares(10));
      assert.deepEqual(await within(pool.map(t.sqr, asyncGen(10))), squares(10));
      assert.deepEqual(await within(pool.map(t.sqr, asyncGen(50), { chunksize: 7 })), squares(50));
      assert.deepEqual(await pool.mapAsync(t.sqr, asyncGen(10)).get(WAIT_MS), squares(10));
      assert.deepEqual(await within(pool.map(t.sqr, new Set([1, 2, 3]))), [1, 4, 9]);
      assert.deepEqual(await within(pool.map(t.toInt, "123")), [1, 2, 3]);
      async function* pairs() {
        for (let i = 0; i < 5; i++) yield [i, 10] as [number, number];
      }
      assert.deepEqual(await within(pool.starmap(t.mul, pairs())), [0, 10, 20, 30, 40]);
      assert.deepEqual(await collect(pool.imap(t.sqr, asyncGen(10))), squares(10));
      assert.deepEqual((await collect(pool.imapUnordered(t.sqr, gen(10)))).sort(byNumber), squares(10));
      assert.throws(() => pool.imap(t.sqr, 42 as never), TypeError, "a number is not iterable");
      await assert.rejects(async () => await pool.map(t.sqr, null as never), TypeError);
    });
  });

  test(`[${method}] an input iterable that throws at the start or at item 3 rejects map() with that very error; the pool stays usable (test_map_handle_iterable_exception)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      const boom = new RangeError("the input broke");
      for (const at of [0, 3]) {
        await assert.rejects(within(pool.map(t.sqr, failingAt(at, boom))), (e) => e === boom, `sync, at ${at}`);
        await assert.rejects(within(pool.map(t.sqr, failingAt(at, boom), { chunksize: 1 })), (e) => e === boom);
        await assert.rejects(within(pool.map(t.sqr, asyncFailingAt(at, boom))), (e) => e === boom, `async, at ${at}`);
        await assert.rejects(pool.mapAsync(t.sqr, failingAt(at, boom)).get(WAIT_MS), (e) => e === boom);
      }
      assert.deepEqual(await within(pool.map(t.sqr, range(10))), squares(10));
    });
  });

  test(`[${method}] map() rejects with a task's error; the pool stays usable`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      const args = range(10).map((x) => [3, x] as [number, number]);
      await assert.rejects(within(pool.starmap(t.sqrUnless, args)), (e: Error) => e instanceof RangeError && e.message === "bad item 3");
      await assert.rejects(within(pool.starmap(t.sqrUnless, args, { chunksize: 1 })), RangeError);
      assert.deepEqual(await within(pool.map(t.sqr, range(10))), squares(10));
    });
  });

  // ---------------------------------------------------------------------------------- callbacks, AsyncResult

  test(`[${method}] callback and errorCallback run exactly once, before get() settles (test_map_async_callbacks, test_async_error_callback)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      const calls: unknown[] = [];
      const errors: unknown[] = [];
      const track = <R>(r: AsyncResult<R>) =>
        r.get(WAIT_MS).then(
          (value) => ({ ok: true, value, callsThen: calls.length, errorsThen: errors.length }),
          (error) => ({ ok: false, value: error as unknown, callsThen: calls.length, errorsThen: errors.length }),
        );
      const options = { callback: (v: unknown) => calls.push(v), errorCallback: (e: unknown) => errors.push(e) };

      const applied = await track(pool.applyAsync(t.sqr, [7], options));
      assert.deepEqual(applied, { ok: true, value: 49, callsThen: 1, errorsThen: 0 });
      const mapped = await track(pool.mapAsync(t.toInt, ["1"], options));
      assert.deepEqual(mapped, { ok: true, value: [1], callsThen: 2, errorsThen: 0 });
      assert.deepEqual(calls, [49, [1]]);

      const failedMap = await track(pool.mapAsync(t.toInt, ["a"], options));
      assert.equal(failedMap.ok, false);
      assert.equal(failedMap.errorsThen, 1, "errorCallback ran before get() rejected");
      assert.ok(errors[0] instanceof RangeError);
      assert.equal(errors[0], failedMap.value, "errorCallback got the error get() rejects with");

      const failedApply = await track(pool.applyAsync(t.failWith, ["TypeError", "nope"], options));
      assert.equal(failedApply.ok, false);
      assert.equal(failedApply.errorsThen, 2);
      assert.ok(errors[1] instanceof TypeError && (errors[1] as Error).message === "nope");

      // Nothing more arrives later: one more round trip, then count again.
      assert.equal(await within(pool.apply(t.sqr, [2])), 4);
      assert.equal(calls.length, 2);
      assert.equal(errors.length, 2);
    });
  });

  test(`[${method}] a callback that throws does not change the result`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      const r = pool.applyAsync(t.sqr, [3], { callback: () => { throw new Error("callback broke (expected in this test)"); } });
      assert.equal(await r.get(WAIT_MS), 9);
      assert.equal(r.successful(), true);
    });
  });

  test(`[${method}] get(timeout) rejects with TimeoutError while the task runs, and the task goes on (test_async_timeout)`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      const gate = newQueue<number>();
      const r = pool.applyAsync(t.waitFor, [gate]);
      await assert.rejects(r.get(50), TimeoutError);
      await assert.rejects(r.get(0), TimeoutError);
      assert.equal(r.ready(), false);
      await gate.put(7);
      assert.equal(await r.get(WAIT_MS), 7);
      assert.throws(() => r.get(-1), RangeError);
    });
  });

  test(`[${method}] ready(), successful() and wait() follow the task; successful() before ready is a ProcessError`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      const gate = newQueue<string>();
      const r = pool.applyAsync(t.waitFor, [gate]);
      assert.equal(r.ready(), false);
      assert.throws(() => r.successful(), ProcessError);
      assert.equal(await r.wait(20), undefined, "wait(timeout) resolves, ready or not");
      assert.equal(r.ready(), false);
      await gate.put("done");
      await r.wait(WAIT_MS);
      assert.equal(r.ready(), true);
      assert.equal(r.successful(), true);
      assert.equal(await r.get(), "done");

      const bad = pool.applyAsync(t.failWith, ["RangeError", "no"]);
      await bad.wait(WAIT_MS);
      assert.equal(bad.ready(), true);
      assert.equal(bad.successful(), false);
      await assert.rejects(bad.get(), RangeError);
    });
  });

  // ---------------------------------------------------------------------------------- imap

  test(`[${method}] imap() yields in input order, with chunksize 1 and 100, and next() ends after the last (test_imap)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      assert.deepEqual(await collect(pool.imap(t.sqr, range(10))), squares(10));
      assert.deepEqual(await collect(pool.imap(t.sqr, range(1000), { chunksize: 100 })), squares(1000));
      assert.deepEqual(await collect(pool.imap(t.sqr, gen(37), { chunksize: 5 })), squares(37));
      const it = pool.imap(t.sqr, range(10));
      for (let i = 0; i < 10; i++) assert.deepEqual(await within(it.next()), { value: i * i, done: false });
      assert.equal((await within(it.next())).done, true);
      assert.equal((await within(it.next())).done, true);
    });
  });

  test(`[${method}] imap() raises a task's error at its position`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      const failAt5 = (x: number) => {
        if (x === 5) throw new RangeError("five");
        return x * x;
      };
      const { values, error } = await collectUntilError(pool.imap(failAt5, range(10)));
      assert.deepEqual(values, squares(5));
      assert.ok(error instanceof RangeError && error.message === "five");
      assert.deepEqual(await collect(pool.imap(t.sqr, range(5))), squares(5));
    });
  });

  test(`[${method}] imap() pulls its input lazily: breaking out of an endless generator stops it (§4b)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      let pulled = 0;
      function* naturals() {
        for (let i = 0;; i++) {
          pulled++;
          yield i;
        }
      }
      const got: number[] = [];
      await within((async () => {
        for await (const v of pool.imap(t.sqr, naturals())) {
          got.push(v);
          if (got.length === 10) break;
        }
      })());
      assert.deepEqual(got, squares(10));
      assert.ok(pulled < 10_000, `pulled ${pulled} items for 10 results`);
      const afterBreak = pulled;
      assert.equal(await within(pool.apply(t.sqr, [3])), 9);
      assert.equal(pulled, afterBreak, "no item was pulled after the break");

      let asyncPulled = 0;
      async function* asyncNaturals() {
        for (let i = 0;; i++) {
          asyncPulled++;
          await Promise.resolve();
          yield i;
        }
      }
      const firstFive: number[] = [];
      await within((async () => {
        for await (const v of pool.imap(t.sqr, asyncNaturals(), { chunksize: 3 })) {
          firstFive.push(v);
          if (firstFive.length === 5) break;
        }
      })());
      assert.deepEqual(firstFive, squares(5));
      assert.ok(asyncPulled < 10_000, `pulled ${asyncPulled} items for 5 results`);
      assert.deepEqual(await within(pool.map(t.sqr, range(10))), squares(10), "the pool is still usable");
    });
  });

  test(`[${method}] imap() with its input failing at item 3 (chunksize 1) yields 0, 1, 4 then throws; at item 7, chunksize 2 gives 6 values and chunksize 4 gives 4 (test_imap_handle_iterable_exception)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      const boom = new RangeError("the input broke");
      const one = await collectUntilError(pool.imap(t.sqr, failingAt(3, boom), { chunksize: 1 }));
      assert.deepEqual(one.values, [0, 1, 4]);
      assert.equal(one.error, boom);
      const two = await collectUntilError(pool.imap(t.sqr, failingAt(7, boom), { chunksize: 2 }));
      assert.deepEqual(two.values, squares(6));
      assert.equal(two.error, boom);
      const four = await collectUntilError(pool.imap(t.sqr, failingAt(7, boom), { chunksize: 4 }));
      assert.deepEqual(four.values, squares(4));
      assert.equal(four.error, boom);
      const asyncOne = await collectUntilError(pool.imap(t.sqr, asyncFailingAt(3, boom)));
      assert.deepEqual(asyncOne.values, [0, 1, 4]);
      assert.equal(asyncOne.error, boom);
      assert.deepEqual(await collect(pool.imap(t.sqr, range(5))), squares(5), "the pool is still usable");
    });
  });

  test(`[${method}] imapUnordered() yields the same results as map(), in some order; an input error is raised in the end (test_imap_unordered*)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      assert.deepEqual((await collect(pool.imapUnordered(t.sqr, range(100)))).sort(byNumber), squares(100));
      assert.deepEqual((await collect(pool.imapUnordered(t.sqr, range(100), { chunksize: 7 }))).sort(byNumber), squares(100));
      const boom = new RangeError("the input broke");
      const { values, error } = await collectUntilError(pool.imapUnordered(t.sqr, failingAt(10, boom)));
      assert.equal(error, boom);
      assert.ok(values.every((v) => squares(10).includes(v)), `values ${values} come from the items before the failure`);
    });
  });

  // ---------------------------------------------------------------------------------- errors from tasks

  test(`[${method}] a task that throws rejects with the child's error: same class, message, and the child's stack; the pool keeps serving (test_traceback)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      await assert.rejects(within(pool.apply(t.failWith, ["RangeError", "123"])), (e: Error) => {
        assert.ok(e instanceof RangeError, `got ${e?.constructor?.name}`);
        assert.equal(e.name, "RangeError");
        assert.equal(e.message, "123");
        assert.match(e.stack ?? "", /failWith/, "the stack names the function that threw");
        assert.match(e.stack ?? "", /pool_targets\.[jt]s/, "the stack is the child's");
        return true;
      });
      await assert.rejects(within(pool.apply(t.failWith, ["TypeError", "wrong"])), (e: Error) => e instanceof TypeError && e.message === "wrong");
      await assert.rejects(pool.applyAsync(t.toInt, ["x"]).get(WAIT_MS), RangeError);
      assert.equal(await within(pool.apply(t.sqr, [8])), 64);
      assert.deepEqual(await within(pool.map(t.sqr, range(4))), squares(4));
    });
  });

  test(`[${method}] an error of a class registered with registerClass comes back as that class`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      await assert.rejects(within(pool.apply(t.failWith, ["PoolTaskError", "custom"])), (e: Error) => {
        assert.ok(e instanceof PoolTaskError, `got ${e?.constructor?.name}`);
        assert.equal(e.name, "PoolTaskError");
        assert.equal(e.message, "custom");
        assert.equal((e as PoolTaskError).code, "E_POOL_TASK");
        assert.match(e.stack ?? "", /pool_targets\.[jt]s/);
        return true;
      });
    });
  });

  test(`[${method}] a result that cannot be copied back rejects with TypeError, five times over, and the pool keeps working (test_unpickleable_result)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      for (let i = 0; i < 5; i++) {
        await assert.rejects(within(pool.apply(t.returnFunction)), TypeError, `function, round ${i}`);
        await assert.rejects(within(pool.apply(t.returnObjectWithFunction)), TypeError, `object with a function, round ${i}`);
        assert.equal(await within(pool.apply(t.sqr, [i])), i * i);
      }
      await assert.rejects(within(pool.map(t.returnFunction, range(3))), TypeError, "from map");
      assert.deepEqual(await within(pool.map(t.sqr, range(20))), squares(20));
      assert.equal(pool.stats().workers, 2);
    });
  });

  test(`[${method}] an argument that cannot be copied is a TypeError: thrown by applyAsync(), a rejection from map() and imap(), with no hang (test_map_unplicklable)`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      const fn = () => 3;
      assert.throws(() => pool.applyAsync(t.sqr, [fn as never]), TypeError);
      await assert.rejects(async () => await pool.apply(t.sqr, [{ f: fn } as never]), TypeError);
      await assert.rejects(async () => await within(pool.map(t.sqr, [1, 2, fn as never])), TypeError);
      await assert.rejects(async () => await within(pool.map(t.sqr, [1, 2, fn as never], { chunksize: 1 })), TypeError);
      const { error } = await collectUntilError(pool.imap(t.sqr, [1, fn as never, 3]));
      assert.ok(error instanceof TypeError, `imap threw ${String(error)}`);
      assert.deepEqual(await within(pool.map(t.sqr, range(10))), squares(10));
    });
  });

  // ---------------------------------------------------------------------------------- worker death

  test(`[${method}] a worker that calls exit(3) mid-task: that task rejects with a ProcessError saying the worker died, and the pool replaces the worker`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      const before = await within(pool.apply(t.whoami));
      await assert.rejects(within(pool.apply(t.exitWith, [3])), (e: Error) => {
        assert.ok(e instanceof ProcessError, `got ${e?.constructor?.name}: ${e?.message}`);
        assert.match(e.message, /died/);
        assert.match(e.message, /\b3\b/, "the message gives the exit code");
        return true;
      });
      const after = await within(pool.apply(t.whoami));
      assert.notEqual(after.ident, before.ident, "a new worker");
      assert.equal(pool.stats().workers, 1);
      assert.deepEqual(await within(pool.map(t.sqr, range(10))), squares(10));
    });
  });

  test(`[${method}] the tasks queued before and after a task that calls exit(3) on the same worker still complete, and it runs once`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      const before = await within(pool.apply(t.whoami)); // the worker is up and its tasks are known to be quick
      const results = await within(Promise.allSettled([
        pool.apply(t.sqr, [2]),
        pool.apply(t.exitWith, [3]),
        pool.apply(t.sqr, [4]),
        pool.apply(t.sqr, [5]),
      ]));
      const outcomes = results.map((r) => r.status === "fulfilled" ? r.value : `rejected: ${(r.reason as Error).message}`);
      assert.deepEqual(outcomes.filter((_, i) => i !== 1), [4, 16, 25], "the other tasks complete");
      assert.ok(results[1].status === "rejected" && results[1].reason instanceof ProcessError, String(outcomes[1]));
      assert.match(String(outcomes[1]), new RegExp(`${before.name} died`), "the exit task ran once, in the worker that had it");
    });
  });

  if (method === "process") {
    test(`[${method}] a worker SIGKILLed mid-task: that task rejects with a ProcessError saying the worker died, the other tasks complete, and the pool replaces the worker`, T, async () => {
      await withPool({ processes: 2 }, async (pool) => {
        const before = await within(pool.apply(t.whoami));
        const killed = pool.apply(t.killSelf);
        const others = range(10).map((x) => pool.apply(t.sqr, [x]));
        await assert.rejects(within(killed), (e: Error) => e instanceof ProcessError && /died/.test(e.message));
        const settled = await within(Promise.allSettled(others));
        assert.deepEqual(settled.map((r) => r.status === "fulfilled" ? r.value : `rejected: ${(r.reason as Error).message}`), squares(10));
        await waitUntil(() => pool.stats().workers === 2, "the pool has 2 workers again");
        assert.ok(before.pid > 0);
        assert.deepEqual(await within(pool.map(t.sqr, range(10), { chunksize: 1 })), squares(10));
      });
    });
  }

  // ---------------------------------------------------------------------------------- lifecycle

  test(`[${method}] Pool({ processes: 3 }) starts 3 workers (test_make_pool)`, T, async () => {
    await withPool({ processes: 3 }, async (pool) => {
      assert.equal(pool.processes, 3);
      assert.equal(pool.stats().workers, 3);
      assert.deepEqual(await within(pool.map(t.sqr, range(30), { chunksize: 1 })), squares(30));
    });
  });

  test(`[${method}] the initializer runs once in each worker, before its tasks (test_pool_initializer)`, T, async () => {
    await withPool({ processes: 2, initializer: t.init, initargs: ["ready"] }, async (pool) => {
      const states = await within(Promise.all(range(20).map(() => pool.apply(t.initState))));
      for (const s of states) assert.deepEqual({ value: s.value, calls: s.calls }, { value: "ready", calls: 1 });
    });
    const shipped = (v: string) => {
      (globalThis as Record<string, unknown>).poolInitValue = v;
    };
    await withPool({ processes: 1, initializer: shipped, initargs: ["shipped"] }, async (pool) => {
      assert.equal(await within(pool.apply(() => (globalThis as Record<string, unknown>).poolInitValue)), "shipped");
    });
  });

  test(`[${method}] maxTasksPerChild 10: 100 tasks all correct, spread over at least 10 workers (test_pool_worker_lifetime)`, T, async () => {
    await withPool({ processes: 3, maxTasksPerChild: 10 }, async (pool) => {
      const results = await within(Promise.all(range(100).map((x) => pool.applyAsync(t.sqrWho, [x]).get())));
      assert.deepEqual(results.map(([sq]) => sq), squares(100));
      const perWorker = new Map<number, number>();
      for (const [, ident] of results) perWorker.set(ident, (perWorker.get(ident) ?? 0) + 1);
      assert.ok(perWorker.size >= 10, `${perWorker.size} workers ran 100 tasks`);
      for (const [ident, n] of perWorker) assert.ok(n <= 10, `worker ${ident} ran ${n} tasks`);
      assert.deepEqual(await within(pool.map(t.sqr, range(10))), squares(10), "replacements keep serving");
    });
  });

  test(`[${method}] maxTasksPerChild 1, close() then join() with 6 tasks pending: no hang, all 6 results (test_pool_worker_lifetime_early_close)`, T, async () => {
    const pool = new Pool({ context: method, processes: 2, maxTasksPerChild: 1 });
    try {
      const results = range(6).map((x) => pool.applyAsync(t.sqrWho, [x]));
      pool.close();
      await within(pool.join(), "join() after close()");
      assert.ok(results.every((r) => r.ready()), "every result is ready once join() resolves");
      const values = await within(Promise.all(results.map((r) => r.get())));
      assert.deepEqual(values.map(([sq]) => sq), squares(6));
      assert.equal(new Set(values.map(([, ident]) => ident)).size, 6, "each task ran in its own worker");
      assert.equal(pool.stats().workers, 0);
    } finally {
      pool.terminate();
      await within(pool.join());
    }
  });

  test(`[${method}] close() lets the queued tasks finish, then join() resolves`, T, async () => {
    const pool = new Pool({ context: method, processes: 2 });
    try {
      const gate = newQueue<number>();
      const held = range(4).map(() => pool.applyAsync(t.waitFor, [gate]));
      const quick = range(10).map((x) => pool.applyAsync(t.sqr, [x]));
      pool.close();
      for (const i of range(4)) await gate.put(i);
      await within(pool.join(), "join() after close()");
      assert.deepEqual((await within(Promise.all(held.map((r) => r.get())))).sort(), range(4));
      assert.deepEqual(await within(Promise.all(quick.map((r) => r.get(0)))), squares(10));
      assert.equal(pool.stats().workers, 0);
    } finally {
      pool.terminate();
      await within(pool.join());
    }
  });

  test(`[${method}] mapAsync() and starmapAsync() started just before close() still run to the end (Python's map_async; close; join)`, T, async () => {
    const pool = new Pool({ context: method, processes: 2 });
    try {
      const mapped = pool.mapAsync(t.sqr, range(10));
      const starmapped = pool.starmapAsync(t.mul, [[2, 3]]);
      pool.close();
      await within(pool.join(), "join() after close()");
      assert.deepEqual(await mapped.get(0), squares(10));
      assert.deepEqual(await starmapped.get(0), [6]);
    } finally {
      pool.terminate();
      await within(pool.join());
    }
  });

  test(`[${method}] imap() started just before close() still yields every result (Python's imap; close; iterate; join)`, T, async () => {
    const pool = new Pool({ context: method, processes: 2 });
    try {
      const iterated = pool.imap(t.sqr, range(100));
      pool.close();
      assert.deepEqual(await collect(iterated), squares(100));
      await within(pool.join(), "join() after close()");
    } finally {
      pool.terminate();
      await within(pool.join());
    }
  });

  test(`[${method}] a closed or terminated pool refuses new work with ProcessError; join() before either is a ProcessError (test_context, test_enter)`, T, async () => {
    const pool = new Pool({ context: method, processes: 1 });
    try {
      await assert.rejects(within(pool.join()), (e: Error) => e instanceof ProcessError && /running/.test(e.message));
      assert.equal(await within(pool.apply(t.sqr, [2])), 4, "the failed join() changed nothing");
      pool.close();
      const closed = (e: Error) => e instanceof ProcessError && /closed/.test(e.message);
      assert.throws(() => pool.applyAsync(t.sqr, [1]), closed);
      assert.throws(() => pool.mapAsync(t.sqr, [1]), closed);
      assert.throws(() => pool.starmapAsync(t.mul, [[1, 2]]), closed);
      assert.throws(() => pool.imap(t.sqr, [1]), closed);
      assert.throws(() => pool.imapUnordered(t.sqr, [1]), closed);
      await assert.rejects(async () => await pool.apply(t.sqr, [1]), closed);
      await assert.rejects(async () => await pool.map(t.sqr, [1]), closed);
      await assert.rejects(async () => await pool.starmap(t.mul, [[1, 2]]), closed);
      pool.terminate();
      const terminated = (e: Error) => e instanceof ProcessError && /terminated/.test(e.message);
      assert.throws(() => pool.applyAsync(t.sqr, [1]), terminated);
      await assert.rejects(async () => await pool.map(t.sqr, [1]), terminated);
      await within(pool.join());
      await within(pool.join(), "a second join()");
      pool.close();
      pool.terminate();
    } finally {
      pool.terminate();
      await within(pool.join());
    }
  });

  test(`[${method}] terminate() rejects pending results with ProcessError, and join() returns promptly with 1,000 long tasks queued (test_terminate)`, T, async () => {
    const pool = new Pool({ context: method, processes: 2 });
    try {
      const gate = newQueue<number>();
      const started = newQueue<number>();
      const many = pool.starmapAsync(t.waitFor, range(1000).map(() => [gate, started] as [Queue, Queue]), { chunksize: 1 });
      const one = pool.applyAsync(t.waitFor, [gate, started]);
      await started.get({ timeout: WAIT_MS });
      await started.get({ timeout: WAIT_MS }); // both workers are inside a task
      pool.terminate();
      await within(pool.join(), "join() after terminate()", 30_000);
      const terminated = (e: Error) => e instanceof ProcessError && /terminated/.test(e.message);
      await assert.rejects(many.get(0), terminated);
      await assert.rejects(one.get(0), terminated);
      assert.equal(many.successful(), false);
      assert.deepEqual(pool.stats(), { workers: 0, idle: 0, queued: 0, completed: 0 });
    } finally {
      pool.terminate();
      await within(pool.join());
    }
  });

  test(`[${method}] await using terminates and joins the pool at the end of its block`, T, async () => {
    const gate = newQueue<number>();
    let pool!: Pool;
    let pending!: AsyncResult<unknown>;
    await within((async () => {
      await using p = new Pool({ context: method, processes: 2 });
      pool = p;
      assert.equal(await within(p.apply(t.sqr, [3])), 9);
      pending = p.applyAsync(t.waitFor, [gate]);
    })(), "the await using block to end");
    await assert.rejects(pending.get(0), (e: Error) => e instanceof ProcessError && /terminated/.test(e.message));
    assert.equal(pool.stats().workers, 0);
    assert.throws(() => pool.applyAsync(t.sqr, [1]), ProcessError);
  });

  // ---------------------------------------------------------------------------------- abort, timeout

  test(`[${method}] aborting a queued task rejects with signal.reason and the task never runs`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      const gate = newQueue<string>();
      const started = newQueue<number>();
      const blocker = pool.applyAsync(t.waitFor, [gate, started]);
      const blockerIdent = await started.get({ timeout: WAIT_MS });
      const reason = new Error("not needed any more");
      const ac = new AbortController();
      const victim = pool.apply(t.mark, ["victim"], { signal: ac.signal });
      const victimResult = pool.applyAsync(t.mark, ["victim-async"], { signal: ac.signal });
      ac.abort(reason);
      await assert.rejects(within(victim), (e) => e === reason);
      await assert.rejects(victimResult.get(WAIT_MS), (e) => e === reason);
      await assert.rejects(
        within(pool.apply(t.mark, ["pre-aborted"], { signal: AbortSignal.abort(reason) })),
        (e) => e === reason,
        "an already aborted signal",
      );
      await gate.put("go");
      assert.equal(await blocker.get(WAIT_MS), "go");
      assert.equal(await within(pool.apply(t.mark, ["after"])), "after");
      const seen = await within(pool.apply(t.marks));
      assert.equal(seen.ident, blockerIdent, "the same worker: aborting a queued task stops no worker");
      assert.deepEqual(seen.tags, ["after"], "no aborted task ran");
    });
  });

  test(`[${method}] aborting a running task rejects with signal.reason, stops its worker, and the pool replaces it`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      const gate = newQueue<string>();
      const started = newQueue<number>();
      const reason = new Error("stop it");
      const ac = new AbortController();
      const running = pool.apply(t.waitFor, [gate, started], { signal: ac.signal });
      const runningIdent = await started.get({ timeout: WAIT_MS });
      ac.abort(reason);
      await assert.rejects(within(running), (e) => e === reason);
      const next = await within(pool.apply(t.whoami));
      assert.notEqual(next.ident, runningIdent, "a new worker runs the next task");
      assert.equal(pool.stats().workers, 1);
      assert.deepEqual(await within(pool.map(t.sqr, range(10))), squares(10));
    });
  });

  test(`[${method}] aborting a map rejects it with signal.reason; the pool keeps working`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      const gate = newQueue<string>();
      const started = newQueue<number>();
      const reason = new Error("map no longer wanted");
      const ac = new AbortController();
      const mapped = pool.starmap(t.waitFor, range(6).map(() => [gate, started] as [Queue, Queue]), { chunksize: 1, signal: ac.signal });
      await started.get({ timeout: WAIT_MS });
      ac.abort(reason);
      await assert.rejects(within(mapped, "the aborted map to reject"), (e) => e === reason);
      await waitUntil(() => pool.stats().workers === 2, "the pool has 2 workers again");
      // The aborted tasks are dropped: were any of them run again, they would hold both workers on the gate.
      assert.deepEqual(await within(pool.map(t.sqr, range(10)), "a map after the abort", 20_000), squares(10));
    });
  });

  test(`[${method}] a task over its timeout rejects with TimeoutError; its worker is replaced and later tasks run`, T, async () => {
    await withPool({ processes: 1 }, async (pool) => {
      const first = await within(pool.apply(t.whoami));
      const gate = newQueue<string>();
      await assert.rejects(within(pool.apply(t.waitFor, [gate], { timeout: 100 })), TimeoutError);
      const next = await within(pool.apply(t.whoami));
      assert.notEqual(next.ident, first.ident, "the stuck worker was replaced");
      assert.equal(await within(pool.apply(t.sqr, [5], { timeout: WAIT_MS })), 25, "a task within its timeout");
      assert.deepEqual(await within(pool.map(t.sqr, range(10))), squares(10));
      assert.throws(() => pool.applyAsync(t.sqr, [1], { timeout: -1 }), RangeError);
    });
  });

  // ---------------------------------------------------------------------------------- stats, queues, contexts

  test(`[${method}] stats() reports workers, idle, queued and completed`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      assert.deepEqual(pool.stats(), { workers: 2, idle: 2, queued: 0, completed: 0 });
      const gate = newQueue<number>();
      const started = newQueue<number>();
      const held = range(4).map(() => pool.applyAsync(t.waitFor, [gate, started]));
      await started.get({ timeout: WAIT_MS });
      await started.get({ timeout: WAIT_MS });
      const busy = pool.stats();
      assert.equal(busy.workers, 2);
      assert.equal(busy.idle, 0);
      assert.equal(busy.completed, 0);
      assert.ok(busy.queued >= 0 && busy.queued <= 2, `queued ${busy.queued} of 4 tasks, 2 running`);
      for (const i of range(4)) await gate.put(i);
      await within(Promise.all(held.map((r) => r.get())));
      assert.deepEqual(pool.stats(), { workers: 2, idle: 2, queued: 0, completed: 4 });
      await assert.rejects(within(pool.apply(t.failWith, ["RangeError", "counted"])), RangeError);
      assert.equal(pool.stats().completed, 5, "a task that throws is completed too");
    });
  });

  test(`[${method}] a Queue passed as a task argument carries items from the task to the parent`, T, async () => {
    await withPool({ processes: 2 }, async (pool) => {
      const q = newQueue<unknown>();
      assert.equal(await within(pool.apply(t.putInto, [q, "hello"])), "hello");
      assert.equal(await q.get({ timeout: WAIT_MS }), "hello");
      await within(pool.starmap(t.putInto, [[q, 1], [q, 2], [q, 3]], { chunksize: 1 }));
      const got = [];
      for (let i = 0; i < 3; i++) got.push(await q.get({ timeout: WAIT_MS }));
      assert.deepEqual(got.sort(), [1, 2, 3]);
    });
  });

  test(`[${method}] getContext("${method}").Pool makes a pool of that start method`, T, async () => {
    const pool = new (getContext(method).Pool)({ processes: 1 });
    try {
      const who = await within(pool.apply(t.whoami));
      assert.match(who.name, /^PoolWorker-\d+$/);
      if (method === "process") {
        assert.notEqual(who.pid, process.pid, "a subprocess has its own pid");
        assert.equal(who.ident, who.pid);
      } else {
        assert.equal(who.pid, process.pid, "a worker thread shares its process's pid");
      }
    } finally {
      pool.terminate();
      await within(pool.join());
    }
  });

  test(`[${method}] a worker that runs out of memory mid-task: that task rejects with a ProcessError saying the worker died; the pool goes on`, {
    ...T,
    skip: runtimeKey !== "node" &&
      "only Node can limit a heap and survive a worker's OOM: Deno aborts the whole process (V8 fatal OOM), Bun has no heap limit (the OS would SIGKILL, as the SIGKILL test does)",
  }, async () => {
    const run = await runProgram("programs/pool_oom.ts", [method], 60_000, { NODE_OPTIONS: "--max-old-space-size=64" });
    assert.match(run.stdout, /^hog: ProcessError: Pool worker \S+ died \(exit code -?\d+\) while running this task$/m, run.stderr);
    assert.match(run.stdout, /^after: 49$/m, run.stderr);
    assert.equal(run.code, 0, run.stderr);
  });

  test(`[${method}] idle pool workers do not keep the program alive (a program that never closes its pool ends)`, T, async () => {
    const run = await runProgram("programs/pool_idle.ts", [method]);
    assert.equal(run.stdout, "[2,4,6]\n", run.stderr);
    assert.equal(run.code, 0, run.stderr);
  });
}
