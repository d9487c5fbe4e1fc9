// Targets: module references, shipped functions, and the main-module guard.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromModule, getContext, Process } from "../mod.ts";
import { self as targets } from "./fixtures/targets.ts";
import { METHODS, readJson, runProgram, tempPath } from "./_helpers.ts";

const T = { timeout: 60_000 };

test("fromModule() gives frozen, typed references that are not thenables", () => {
  const url = new URL("./fixtures/targets.ts", import.meta.url);
  const mod = fromModule<typeof import("./fixtures/targets.ts")>(url);
  assert.deepEqual({ ...mod.report }, { module: url.href, name: "report" });
  assert.equal(mod.report, mod.report);
  assert.ok(Object.isFrozen(mod.report));
  assert.equal((mod as unknown as { then: unknown }).then, undefined);
  assert.throws(() => fromModule("./relative.ts"), /absolute module URL/);
});

test("a function that cannot be shipped is a TypeError when the Process is made", () => {
  class Shape {
    area(): number {
      return 1;
    }
  }
  const cases: [unknown, RegExp][] = [
    [Math.max, /native and bound functions/],
    [targets.report.constructor.bind(null), /native and bound functions/],
    [Shape, /is a class/],
    [new Shape().area, /not class or object methods/],
    [{ method() {} }.method, /not class or object methods/],
    ["report", /must be a function or a fromModule\(\) reference, got string/],
  ];
  for (const [target, message] of cases) {
    assert.throws(() => new Process({ target: target as never }), (e: Error) => e instanceof TypeError && message.test(e.message));
  }
});

for (const method of METHODS) {
  const ctx = getContext(method);

  test(`[${method}] a shipped function may be async, use globals, import built-ins and define inner named functions`, T, async () => {
    const out = tempPath();
    const p = new ctx.Process({
      target: async (path: string, n: number) => {
        function double(x: number): number {
          return x * 2;
        }
        const twice = function named(x: number) {
          return double(double(x)) / 2;
        };
        await new Promise((r) => setTimeout(r, 1));
        const fs = await import("node:fs");
        fs.writeFileSync(path, JSON.stringify({ n: twice(n), max: Math.max(n, 3), name: double.name }));
      },
      args: [out, 21],
    });
    p.start();
    await p.join(30_000);
    assert.equal(p.exitCode, 0);
    assert.deepEqual(readJson(out), { n: 42, max: 21, name: "double" });
  });

  test(`[${method}] module state is per child: each child has its own copy (data isolation)`, T, async () => {
    for (const i of [0, 1, 2]) {
      const out = tempPath();
      const p = new ctx.Process({ target: targets.appendToData, args: [out, i] });
      p.start();
      await p.join(30_000);
      assert.deepEqual(readJson(out), [i]);
    }
    const { data } = await import("./fixtures/targets.ts");
    assert.deepEqual(data, []);
  });

  test(`[${method}] a missing free variable names the variable and points to fromModule`, T, async () => {
    const run = await runProgram("programs/closure.ts", [method]);
    assert.equal(run.stdout, "exitCode=1\n");
    assert.match(run.stderr, /ReferenceError: secret is not defined in the child/);
    assert.match(run.stderr, /fromModule\(url\)/);
  });

  test(`[${method}] isMainModule() is true in the main program and false in a child importing it`, T, async () => {
    const run = await runProgram("programs/guarded.ts", [method]);
    assert.equal(run.stdout, "main: isMainModule=true\nchild: isMainModule=false\nexitCode=0\n", run.stderr);
  });

  test(`[${method}] an unguarded module that starts children at import fails in the child, not a fork bomb`, T, async () => {
    const run = await runProgram("programs/unguarded.ts", [method]);
    assert.equal(run.stdout, "exitCode=1\n");
    assert.match(run.stderr, /still importing its target's module.*isMainModule\(import\.meta\)/s);
  });

  test(`[${method}] a module target that is not an exported function fails the child with a clear error`, T, async () => {
    const mod = fromModule<Record<string, (...a: unknown[]) => void>>(new URL("./fixtures/targets.ts", import.meta.url));
    const p = new ctx.Process({ target: mod.doesNotExist });
    p.start();
    await p.join(30_000);
    assert.equal(p.exitCode, 1);
  });
}
