// Values crossing to children keep their types: DESIGN.md §3.
import assert from "node:assert/strict";
import { test } from "node:test";
import { activeChildren, getContext, registerClass, RemoteError } from "../mod.ts";
import { pack, packChecked, unpack } from "../src/serialization.ts";
import { check, self as values, sample, stacksOf } from "./fixtures/values.ts";
import { self as targets } from "./fixtures/targets.ts";
import { METHODS, readJson, tempPath } from "./_helpers.ts";

const roundTrip = (v: unknown) => {
  const packed = pack(v);
  return unpack({ v: structuredClone(packed.v), t: packed.t });
};

test("pack/unpack keep bigint, Map, Set, Date, typed arrays, registered classes and Errors", () => {
  const original = sample();
  check(roundTrip(original) as Record<string, unknown>, stacksOf(original));
});

test("pack() leaves values without Errors or registered classes untouched", () => {
  const plain = { a: [1, 2, { b: new Map([[1, new Set([2])]]) }] };
  const packed = pack(plain);
  assert.equal(packed.v, plain);
  assert.equal(packed.t, false);
});

test("pack/unpack keep shared references and cycles", () => {
  const inner = { n: 1 };
  const cyclic: Record<string, unknown> = { a: inner, b: inner, err: new Error("e") };
  cyclic.self = cyclic;
  const out = roundTrip(cyclic) as Record<string, unknown>;
  assert.equal(out.a, out.b);
  assert.ok(out.err instanceof Error);
});

test("an Error with a custom name and own properties keeps both", () => {
  const err = Object.assign(new Error("with props"), { code: "E42", details: { n: 1 } });
  err.name = "CustomName";
  const out = roundTrip(err) as Error & { code: string; details: unknown };
  assert.ok(out instanceof Error && !(out instanceof RemoteError));
  assert.equal(out.name, "CustomName");
  assert.equal(out.code, "E42");
  assert.deepEqual(out.details, { n: 1 });
  assert.equal(out.stack, err.stack);
});

test("unpack() of a class not registered here names the class", () => {
  class Local {}
  registerClass(Local, "OnlyInTheSender");
  const packed = pack(new Local());
  const wire = structuredClone(packed.v) as Record<string, unknown>;
  wire.name = "NeverRegistered";
  assert.throws(() => unpack({ v: wire, t: true }), /class "NeverRegistered": it is not registered here/);
});

test("registerClass() refuses a second class under a taken name", () => {
  class A {}
  class B {}
  registerClass(A, "Taken");
  registerClass(A, "Taken"); // the same class again is fine
  assert.throws(() => registerClass(B, "Taken"), /another class is registered under that name/);
});

test("packChecked() names the part that cannot be copied", () => {
  assert.throws(() => packChecked([1, { a: { b: () => 1 } }], "args"), /Cannot copy args\[1\]\.a\.b: a function/);
  assert.throws(() => packChecked([Symbol("s")], "args"), /Cannot copy args\[0\]: a symbol/);
  assert.throws(() => packChecked([new WeakMap()], "args"), /Cannot copy args\[0\]: a WeakMap/);
  const { port1, port2 } = new MessageChannel();
  try {
    // The walker lets built-ins through; the transport's own check names them.
    assert.throws(() => packChecked([{ port: port1 }], "args"), /Cannot copy args: /);
  } finally {
    port1.close();
    port2.close();
  }
});

for (const method of METHODS) {
  const ctx = getContext(method);

  test(`[${method}] values survive parent → child → grandchild with their types`, { timeout: 60_000 }, async () => {
    const out = tempPath();
    const original = sample();
    const p = new ctx.Process({ target: values.checkAndForward, args: [out, method, original, stacksOf(original)] });
    p.start();
    await p.join(60_000);
    assert.equal(p.exitCode, 0, "the child's checks passed");
    assert.deepEqual(readJson(out), { grandchildExitCode: 0 });
  });

  test(`[${method}] start() with an argument that cannot be copied throws and starts nothing`, () => {
    const before = activeChildren().length;
    const p = new ctx.Process({ target: targets.report, args: ["x", { callback: () => 1 }] });
    assert.throws(() => p.start(), (e: Error) => e instanceof TypeError && /args\[1\]\.callback/.test(e.message));
    assert.equal(p.pid, undefined);
    assert.equal(p.isAlive(), false);
    assert.equal(activeChildren().length, before);
  });
}
