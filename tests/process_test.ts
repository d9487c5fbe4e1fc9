// Process lifecycle under both start methods: CPython's _TestProcess, ported.
import assert from "node:assert/strict";
import { test } from "node:test";
import process from "node:process";
import { activeChildren, cpuCount, currentProcess, getContext, parentProcess, Process, ProcessError } from "../mod.ts";
import { self as targets } from "./fixtures/targets.ts";
import { METHODS, readJson, tempPath } from "./_helpers.ts";

const T = { timeout: 60_000 };

test("currentProcess() in the main program is MainProcess with ident equal to pid", () => {
  const me = currentProcess();
  assert.equal(me.name, "MainProcess");
  assert.equal(me.daemon, false);
  assert.equal(me.pid, process.pid);
  assert.equal(me.ident, me.pid);
  assert.equal(parentProcess(), null);
});

test("cpuCount() is an integer of at least 1", () => {
  assert.ok(Number.isInteger(cpuCount()) && cpuCount() >= 1);
});

test("Process names count up and a name can be given", () => {
  const a = new Process({ target: targets.report });
  const b = new Process({ target: targets.report });
  assert.match(a.name, /^Process-\d+$/);
  assert.equal(Number(b.name.slice(8)), Number(a.name.slice(8)) + 1);
  assert.equal(new Process({ target: targets.report, name: "mine" }).name, "mine");
});

test("Process() rejects bad options with TypeError/RangeError", () => {
  assert.throws(() => new Process({ target: 42 as never }), TypeError);
  assert.throws(() => new Process({ target: targets.report, args: "x" as never }), /args must be an array/);
  assert.throws(() => new Process({ target: targets.report, daemon: "yes" as never }), TypeError);
  assert.throws(() => new Process({ target: targets.report, context: "fork" as never }), RangeError);
});

for (const method of METHODS) {
  const ctx = getContext(method);

  test(`[${method}] Process runs the target with its args and reports the child's identity`, T, async () => {
    const out = tempPath();
    const p = new ctx.Process({ target: targets.report, args: [out, 1, ["two"], { three: 3 }] });
    assert.equal(p.isAlive(), false);
    assert.equal(p.exitCode, null);
    assert.equal(p.pid, undefined);
    assert.ok(!activeChildren().includes(p as Process));
    p.start();
    assert.equal(p.isAlive(), true);
    assert.ok(activeChildren().includes(p as Process));
    await p.join();
    assert.equal(p.exitCode, 0);
    assert.equal(p.isAlive(), false);
    assert.ok(!activeChildren().includes(p as Process));
    const seen = readJson(out) as Record<string, any>;
    assert.deepEqual(seen.args, [1, ["two"], { three: 3 }]);
    assert.equal(seen.current.name, p.name);
    assert.equal(seen.current.pid, p.pid);
    assert.equal(seen.current.ident, p.ident);
    assert.equal(seen.current.daemon, false);
    assert.equal(seen.parent.name, "MainProcess");
    assert.equal(seen.parent.pid, process.pid);
    assert.equal(seen.parent.alive, true);
    if (method === "process") assert.notEqual(p.pid, process.pid);
    else assert.equal(p.pid, process.pid);
    assert.ok(Number.isInteger(p.ident) && p.ident! > 0);
  });

  test(`[${method}] exitCode is 1 after an uncaught error, sync or async`, T, async () => {
    for (const target of [targets.throwTypeError, targets.rejectLater]) {
      const p = new ctx.Process({ target, args: ["expected test error, printed by the child"] });
      p.start();
      await p.join();
      assert.equal(p.exitCode, 1);
    }
  });

  test(`[${method}] exit(n) in the child sets exitCode to n`, T, async () => {
    for (const [arg, expected] of [[8, 8], [undefined, 0], [0, 0], [3, 3]] as const) {
      const p = new ctx.Process({ target: targets.exitWith, args: arg === undefined ? [] : [arg] });
      p.start();
      await p.join();
      assert.equal(p.exitCode, expected, `exit(${arg})`);
    }
  });

  test(`[${method}] terminate() gives -15 and kill() gives -9; join(0) and join(-1) return at once`, T, async () => {
    for (const [stop, code] of [["terminate", -15], ["kill", -9]] as const) {
      for (const target of [targets.sleepForever, targets.busyForever]) {
        const p = new ctx.Process({ target, daemon: true });
        p.start();
        await p.join(0);
        await p.join(-1);
        await p.join(50);
        assert.equal(p.isAlive(), true);
        p[stop]();
        await p.join(30_000);
        assert.equal(p.exitCode, code, `${stop}() of ${target.name}`);
        assert.equal(p.isAlive(), false);
        assert.ok(!activeChildren().includes(p as Process));
      }
    }
  });

  test(`[${method}] start() twice, join() before start() and close() while running are ProcessErrors`, T, async () => {
    const p = new ctx.Process({ target: targets.sleepForever, daemon: true });
    await assert.rejects(p.join(), (e: Error) => e instanceof ProcessError && /not been started/.test(e.message));
    p.start();
    assert.throws(() => p.start(), (e: Error) => e instanceof ProcessError && /already started/.test(e.message));
    assert.throws(() => (p.daemon = false), ProcessError);
    assert.throws(() => p.close(), (e: Error) => e instanceof ProcessError && /still running/.test(e.message));
    p.kill();
    await p.join(30_000);
    p.close();
    p.close(); // idempotent
    assert.throws(() => p.isAlive(), /process object is closed/);
    await assert.rejects(p.join(), /process object is closed/);
    assert.throws(() => p.terminate(), /process object is closed/);
  });

  test(`[${method}] daemon flag: default false, honoured, and a daemon cannot have children`, T, async () => {
    assert.equal(new ctx.Process({ target: targets.report }).daemon, false);
    const out = tempPath();
    const p = new ctx.Process({ target: targets.startFromDaemon, args: [out, method], daemon: true });
    assert.equal(p.daemon, true);
    p.start();
    await p.join(30_000);
    assert.equal(p.exitCode, 0);
    const seen = readJson(out) as { error: string; message: string };
    assert.equal(seen.error, "ProcessError");
    assert.match(seen.message, /daemonic processes are not allowed to have children/);
  });

  test(`[${method}] children start grandchildren, named Process-N:M, in order (test_recursion)`, T, async () => {
    const out = tempPath("lines.txt");
    const p = new ctx.Process({ target: targets.recurse, args: [out, method, []] });
    p.start();
    await p.join(60_000);
    assert.equal(p.exitCode, 0);
    const { readFileSync } = await import("node:fs");
    const lines = readFileSync(out, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines, [[], [0], [0, 0], [0, 1], [1], [1, 0], [1, 1]]);

    const info = tempPath();
    const q = new ctx.Process({ target: targets.startGrandchild, args: [info, method] });
    q.start();
    await q.join(60_000);
    const seen = readJson(info) as { name: string; during: number; exitCode: number };
    assert.equal(seen.name, `${q.name}:1`);
    assert.equal(seen.during, 1);
    assert.equal(seen.exitCode, 0);
    const grand = readJson(info + ".grandchild") as Record<string, any>;
    assert.equal(grand.current.name, `${q.name}:1`);
    assert.equal(grand.parent.name, q.name);
    assert.equal(grand.parent.pid, q.pid);
    assert.equal(grand.parent.ident, q.ident);
  });

  test(`[${method}] a child can start a grandchild of the other start method`, T, async () => {
    const other = method === "worker" ? "process" : "worker";
    const info = tempPath();
    const p = new ctx.Process({ target: targets.startGrandchild, args: [info, other] });
    p.start();
    await p.join(60_000);
    assert.equal(p.exitCode, 0);
    assert.equal((readJson(info) as { exitCode: number }).exitCode, 0);
    const grand = readJson(info + ".grandchild") as Record<string, any>;
    assert.equal(grand.parent.name, p.name);
    if (other === "process") assert.notEqual(grand.current.pid, grand.parent.pid);
    else assert.equal(grand.current.pid, grand.parent.pid);
  });

  test(`[${method}] a child that returns stops its daemon children`, T, async () => {
    const out = tempPath();
    const p = new ctx.Process({ target: targets.startDaemonAndReturn, args: [out, method] });
    p.start();
    await p.join(30_000);
    assert.equal(p.exitCode, 0);
  });

  test(`[${method}] many children all exit 0; many terminated at once all give -15`, T, async () => {
    const n = method === "worker" ? 10 : 4;
    const done = Array.from({ length: n }, () => new ctx.Process({ target: targets.report, args: [tempPath()] }));
    for (const p of done) p.start();
    for (const p of done) await p.join(60_000);
    assert.deepEqual(done.map((p) => p.exitCode), done.map(() => 0));
    const stopped = Array.from({ length: n }, () => new ctx.Process({ target: targets.sleepForever }));
    for (const p of stopped) p.start();
    for (const p of stopped) p.terminate();
    for (const p of stopped) await p.join(60_000);
    assert.deepEqual(stopped.map((p) => p.exitCode), stopped.map(() => -15));
  });
}
