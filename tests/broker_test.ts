// The broker of the "process" start method: queue semantics, children and
// grandchildren that reach it directly, dying consumers, and hostile peers.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createConnection, type Socket } from "node:net";
import process from "node:process";
import { test } from "node:test";
import { getContext } from "../mod.ts";
import { BrokerClient, type BrokerError, brokerForChild, brokerPath, getBroker, newQueueId } from "../src/_broker.ts";
import { ackFrame, encodeMessage as encodeWire, MessageReader } from "../src/_broker_wire.ts";
import { decode, encode, self as targets } from "./fixtures/broker_targets.ts";
import { fixture, METHODS, runProgram, runtimeKey, tempPath } from "./_helpers.ts";

const T = { timeout: 60_000 };
const { Process } = getContext("process");

const bytes = (...values: number[]) => new Uint8Array(values);

async function rejectsWith(promise: Promise<unknown>, kind: string): Promise<void> {
  await assert.rejects(promise, (err: BrokerError) => {
    assert.equal(err.kind, kind, `expected kind ${kind}, got ${err.kind}: ${err.message}`);
    return true;
  });
}

/** Resolves when `promise` settles; fails after `ms` naming `what`. */
function within<T>(promise: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function getAll(client: BrokerClient, q: number, n: number): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) out.push(decode(await within(client.get(q), `item ${i} of ${n}`)));
  return out;
}

test("broker wire: messages decode the same however the bytes are cut", () => {
  const items = [bytes(), bytes(1, 2, 3), new Uint8Array(70_000).fill(9), bytes(4)];
  const stream = Buffer.concat([
    encodeWire({ op: "put", q: 7, b: true }, items),
    ackFrame(2 ** 40 + 3, 5),
    encodeWire({ r: 1, v: "x" }),
  ]);
  const expected = [
    { header: { op: "put", q: 7, b: true }, items },
    { header: { op: "ack", q: 2 ** 40 + 3, n: 5 }, items: [] },
    { header: { r: 1, v: "x" }, items: [] },
  ];
  let seed = 1;
  for (const cut of [1, 3, 4096, 65_536, stream.length, 0]) {
    const reader = new MessageReader(2 ** 30);
    const got = [];
    for (let at = 0; at < stream.length;) {
      // cut 0: pseudo-random sizes from 1 byte to 32 KiB
      const size = cut || 1 + ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 32_768);
      got.push(...reader.push(new Uint8Array(stream.subarray(at, at + size)))!);
      at += size;
    }
    assert.deepEqual(got.map((m) => m.header), expected.map((m) => m.header), `headers, cut ${cut}`);
    assert.deepEqual(got.map((m) => m.items.map((i) => Buffer.from(i).toString("hex"))),
      expected.map((m) => m.items.map((i) => Buffer.from(i).toString("hex"))), `items, cut ${cut}`);
  }
  assert.equal(new MessageReader(100).push(bytes(0, 0, 0, 101)), undefined, "a frame over the limit");
  assert.equal(new MessageReader(100).push(bytes(0, 0, 0, 8, 0, 0, 0, 9)), undefined, "a header longer than its frame");
  assert.equal(new MessageReader(100).push(encodeWire({ op: "x" }).subarray(0, 8))?.length, 0, "half a message waits");
});

test("broker: put and get are FIFO, for single puts and batched puts alike", T, async () => {
  const client = await getBroker();
  const q = await client.create();
  await client.put(q, bytes(1));
  await Promise.all([client.put(q, bytes(2)), client.put(q, bytes(3))]); // one frame
  for (let i = 4; i <= 1000; i++) void client.put(q, bytes(i & 255), { buffered: true });
  await client.flush(q);
  assert.equal(await client.qsize(q), 1000);
  for (let i = 1; i <= 1000; i++) assert.deepEqual(await client.get(q), bytes(i & 255));
  assert.equal(await client.qsize(q), 0);
  await client.put(q, bytes()); // an empty payload is an item too
  await client.put(q, new Uint8Array(3 << 20).fill(5)); // and a large one arrives whole
  assert.deepEqual(await client.get(q), bytes());
  assert.deepEqual(await client.get(q), new Uint8Array(3 << 20).fill(5));
  await client.release(q);
});

test("broker: get rejects with kind 'empty' when non-blocking or after its timeout", T, async () => {
  const client = await getBroker();
  const q = await client.create();
  await rejectsWith(client.get(q, { block: false }), "empty");
  const started = performance.now();
  await rejectsWith(client.get(q, { timeoutMs: 100 }), "empty");
  assert.ok(performance.now() - started >= 90, "waited for the timeout");
  // A getter that timed out takes nothing away from the next.
  await client.put(q, bytes(7));
  assert.deepEqual(await client.get(q, { block: false }), bytes(7));
  await client.release(q);
});

test("broker: with maxsize, put waits for room, and rejects with kind 'full' when it cannot", T, async () => {
  const client = await getBroker();
  const q = await client.create({ maxsize: 2 });
  await client.put(q, bytes(1));
  await client.put(q, bytes(2));
  await rejectsWith(client.put(q, bytes(3), { block: false }), "full");
  const started = performance.now();
  await rejectsWith(client.put(q, bytes(3), { timeoutMs: 100 }), "full");
  assert.ok(performance.now() - started >= 90, "waited for the timeout");
  let resolved = false;
  const blocked = client.put(q, bytes(3)).then(() => (resolved = true));
  assert.equal(await client.qsize(q), 2); // the broker has seen the blocked put by now
  assert.equal(resolved, false);
  assert.deepEqual(await client.get(q), bytes(1));
  await within(blocked, "the blocked put");
  assert.deepEqual([await client.get(q), await client.get(q)], [bytes(2), bytes(3)]);
  await client.release(q);
});

test("broker: puts coalesced into one frame get in as far as there is room", T, async () => {
  const client = await getBroker();
  const q = await client.create({ maxsize: 2 });
  const results = await Promise.allSettled([1, 2, 3].map((i) => client.put(q, bytes(i), { block: false })));
  assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled", "rejected"]);
  assert.equal(((results[2] as PromiseRejectedResult).reason as BrokerError).kind, "full");
  assert.equal(await client.qsize(q), 2);
  await client.release(q);
});

test("broker: shutdown() fails puts, lets gets drain, then fails them; waiting getters are woken", T, async () => {
  const client = await getBroker();
  const q = await client.create();
  for (const i of [1, 2, 3]) void client.put(q, bytes(i), { buffered: true });
  await client.flush(q);
  await client.shutdown(q);
  await rejectsWith(client.put(q, bytes(4)), "shutdown");
  await rejectsWith(client.put(q, bytes(4), { buffered: true }).then(() => client.flush(q)), "shutdown");
  for (const i of [1, 2, 3]) assert.deepEqual(await client.get(q), bytes(i));
  await rejectsWith(client.get(q), "shutdown");
  await rejectsWith(client.get(q, { block: false }), "shutdown");
  await client.release(q);

  const r = await client.create();
  const parked = client.get(r);
  await client.qsize(r); // the get is at the broker
  await client.shutdown(r);
  await rejectsWith(within(parked, "the parked getter"), "shutdown");
  await client.release(r);
});

test("broker: shutdown({ immediate }) drops what is left, fails waiting putters, and unblocks join()", T, async () => {
  const client = await getBroker();
  const q = await client.create({ maxsize: 2 });
  await client.put(q, bytes(1));
  await client.put(q, bytes(2));
  const putter = client.put(q, bytes(3));
  const joined = client.join(q);
  await client.qsize(q);
  await client.shutdown(q, { immediate: true });
  await rejectsWith(putter, "shutdown");
  await within(joined, "join() after an immediate shutdown");
  await rejectsWith(client.get(q), "shutdown");
  assert.equal(await client.qsize(q), 0);
  await client.release(q);
});

test("broker: taskDone() and join(); over-calling taskDone() is kind 'range'", T, async () => {
  const client = await getBroker();
  const q = await client.create();
  await within(client.join(q), "join() of an empty queue");
  await client.put(q, bytes(1));
  await client.put(q, bytes(2));
  let joined = false;
  const join = client.join(q).then(() => (joined = true));
  await client.get(q);
  await client.get(q);
  await client.taskDone(q);
  assert.equal(await client.qsize(q), 0);
  assert.equal(joined, false);
  await client.taskDone(q);
  await within(join, "join() after the last taskDone()");
  await rejectsWith(client.taskDone(q), "range");
  await client.put(q, bytes(3));
  await rejectsWith(client.taskDone(q, 2), "range");
  await client.taskDone(q, 1);
  await client.release(q);
});

test("broker: get, put and join give up on their AbortSignal, and take nothing with them", T, async () => {
  const client = await getBroker();
  const q = await client.create({ maxsize: 1 });
  const aborter = new AbortController();
  const getting = client.get(q, { signal: aborter.signal });
  await client.qsize(q); // the get is at the broker
  aborter.abort(new Error("stop getting"));
  await assert.rejects(getting, /stop getting/);
  await client.put(q, bytes(1));
  assert.deepEqual(await client.get(q, { timeoutMs: 5_000 }), bytes(1));

  await client.put(q, bytes(2));
  const putter = new AbortController();
  const putting = client.put(q, bytes(3), { signal: putter.signal });
  await client.qsize(q);
  putter.abort(new Error("stop putting"));
  await assert.rejects(putting, /stop putting/);
  assert.equal(await client.qsize(q), 1);
  assert.deepEqual(await client.get(q), bytes(2));
  await rejectsWith(client.get(q, { block: false }), "empty");

  await client.put(q, bytes(4));
  const joiner = new AbortController();
  const joining = client.join(q, { signal: joiner.signal });
  joiner.abort(new Error("stop joining"));
  await assert.rejects(joining, /stop joining/);
  await assert.rejects(client.get(q, { signal: joiner.signal }), /stop joining/);
  await client.release(q);
});

test("broker: open() creates a queue once, under an id chosen by the caller, and counts references", T, async () => {
  const client = await getBroker();
  const id = newQueueId();
  assert.ok(Number.isSafeInteger(id) && id > 2 ** 32);
  await client.open(id, { maxsize: 1 });
  await client.open(id, { maxsize: 5 }); // exists: keeps its maxsize
  await client.put(id, bytes(1));
  await rejectsWith(client.put(id, bytes(2), { block: false }), "full");
  await client.release(id);
  assert.equal(await client.qsize(id), 1); // one reference left
  await client.release(id);
  await rejectsWith(client.qsize(id), "closed");
  await rejectsWith(client.open(id), "closed"); // a late handle does not bring it back empty
});

test("broker: a released queue is gone for every handle", T, async () => {
  const client = await getBroker();
  const q = await client.create();
  await client.release(q);
  await rejectsWith(client.put(q, bytes(1)), "closed");
  await rejectsWith(client.get(q), "closed");
  await rejectsWith(client.open(q), "closed");
});

for (const method of METHODS) {
  test(`broker: [${method}] a child reaches it by the inherited address and its items arrive in order`, T, async () => {
    const client = await getBroker();
    const q = await client.create();
    const p = new (getContext(method).Process)({ target: targets.produce, args: [q, "child", 500] });
    p.start();
    try {
      const items = await getAll(client, q, 500);
      assert.deepEqual(items, Array.from({ length: 500 }, (_, i) => ["child", i]));
      await p.join();
      assert.equal(p.exitCode, 0);
    } finally {
      p.kill();
      await client.release(q);
    }
  });
}

test("broker: grandchildren (a process's process and a process's worker) reach the same broker directly", T, async () => {
  const client = await getBroker();
  const q = await client.create();
  const procs = METHODS.map((method) =>
    new Process({ target: targets.produceViaGrandchild, args: [q, method, 200, method] })
  );
  procs.forEach((p) => p.start());
  try {
    const items = (await getAll(client, q, 400)) as [string, number][];
    for (const method of METHODS) {
      assert.deepEqual(items.filter(([tag]) => tag === method).map(([, i]) => i), [...Array(200).keys()]);
    }
    for (const p of procs) {
      await p.join();
      assert.equal(p.exitCode, 0);
    }
  } finally {
    for (const p of procs) p.kill();
    await client.release(q);
  }
});

test("broker: a consumer killed while blocked in get() takes nothing with it", T, async () => {
  const client = await getBroker();
  const [q, ready] = [await client.create(), await client.create()];
  const p = new Process({ target: targets.getForever, args: [q, ready] });
  p.start();
  try {
    assert.equal(decode(await within(client.get(ready), "the consumer to wait")), "waiting");
    p.kill();
    await p.join();
    assert.equal(p.exitCode, -9);
    for (let i = 0; i < 10; i++) await client.put(q, encode(i));
    assert.deepEqual(await getAll(client, q, 10), [...Array(10).keys()]);
    await rejectsWith(client.get(ready, { block: false }), "empty");
  } finally {
    p.kill();
    await client.release(q);
    await client.release(ready);
  }
});

test("broker: consumers that end at once have everything they got acknowledged: nothing comes back", T, async () => {
  const client = await getBroker();
  const q = await client.create();
  const n = 600;
  for (let i = 0; i < n; i++) void client.put(q, encode(i), { buffered: true });
  await client.flush(q);
  const files = [0, 1].map(() => tempPath("got.txt"));
  try {
    for (const file of files) {
      // One at a time, so that the later ones get items streamed to them.
      const p = new Process({ target: targets.getToFile, args: [q, file, 150] });
      p.start();
      await p.join();
      assert.equal(p.exitCode, 0);
    }
    const got = files.flatMap((file) => readFileSync(file, "utf8").trim().split("\n").map(Number));
    const rest = await getAll(client, q, n - got.length);
    await rejectsWith(client.get(q, { block: false }), "empty");
    assert.deepEqual([...got, ...rest], [...Array(n).keys()], "every item once, in order");
  } finally {
    await client.release(q);
  }
});

test("broker: items a consumer prefetched go back when another waits, and when it is killed", T, async () => {
  const client = await getBroker();
  const n = 2000;
  const q = await client.create();
  for (let i = 0; i < n; i++) void client.put(q, encode(i), { buffered: true });
  await client.flush(q);
  const consumers = [0, 1].map(() => ({ seen: 0, p: undefined as InstanceType<typeof Process> | undefined }));
  const got: unknown[] = [];
  try {
    for (const c of consumers) {
      c.seen = await client.create();
      // 100 one by one: by then it gets batches, and keeps what it does not use.
      c.p = new Process({ target: targets.getSomeThenIdle, args: [q, c.seen, 100] });
      c.p.start();
      for (;;) {
        const item = decode(await within(client.get(c.seen), "the consumer's report"));
        if (item === "idle") break;
        got.push(item);
      }
    }
    // The second consumer got its items only because the first, idle but alive, gave
    // back its batch. Now the second dies holding one.
    consumers[1].p!.kill();
    await consumers[1].p!.join();
    consumers[0].p!.kill();
    await consumers[0].p!.join();
    const rest = await getAll(client, q, n - got.length);
    await rejectsWith(client.get(q, { block: false }), "empty");
    const all = [...got, ...rest] as number[];
    assert.equal(new Set(all).size, n, "nothing delivered twice");
    assert.deepEqual([...all].sort((a, b) => a - b), [...Array(n).keys()], "nothing lost");
    assert.deepEqual(got, [...Array(200).keys()], "the consumers got the oldest items, in order");
  } finally {
    for (const c of consumers) {
      c.p?.kill();
      if (c.seen) await client.release(c.seen);
    }
    await client.release(q);
  }
});

test("broker: two consumer processes each see every producer's items in order, none twice", T, async () => {
  const client = await getBroker();
  const [q, out] = [await client.create(), await client.create()];
  const n = 1500;
  const procs = [
    new Process({ target: targets.consumeUntilNull, args: [q, out, "a"] }),
    new Process({ target: targets.consumeUntilNull, args: [q, out, "b"] }),
    new Process({ target: targets.produce, args: [q, "x", n] }),
    new Process({ target: targets.produce, args: [q, "y", n] }),
  ];
  try {
    procs.forEach((p) => p.start());
    await within(Promise.all(procs.slice(2).map((p) => p.join())), "the producers");
    await client.put(q, encode(null));
    await client.put(q, encode(null));
    const seen = new Map<string, Map<string, number[]>>();
    let nulls = 0;
    while (nulls < 2) {
      const [who, item] = decode(await within(client.get(out), "the consumers' reports")) as [string, [string, number]];
      if (item === null) {
        nulls++;
        continue;
      }
      const byProducer = seen.get(who) ?? seen.set(who, new Map()).get(who)!;
      (byProducer.get(item[0]) ?? byProducer.set(item[0], []).get(item[0])!).push(item[1]);
    }
    for (const tag of ["x", "y"]) {
      const all: number[] = [];
      for (const [who, byProducer] of seen) {
        const items = byProducer.get(tag) ?? [];
        assert.deepEqual(items, [...items].sort((a, b) => a - b), `consumer ${who} got ${tag}'s items in order`);
        all.push(...items);
      }
      assert.deepEqual(all.sort((a, b) => a - b), [...Array(n).keys()], `every item of ${tag}, once`);
    }
  } finally {
    for (const p of procs) p.kill();
    await client.release(q);
    await client.release(out);
  }
});

test("on Deno, the broker without the permissions it needs names the missing flags", {
  ...T,
  skip: runtimeKey !== "deno" && "permissions exist only on Deno",
}, async () => {
  const { spawn } = await import("node:child_process");
  const run = (flags: string[]) =>
    new Promise<string>((resolve) => {
      // Through sh: Deno's child_process adds -A to a command that names its own executable.
      const argv = ["-c", 'exec "$DENO_EXE" run "$@"', "sh", ...flags, fixture("programs/broker_permissions.ts")];
      const env = { ...process.env, DENO_EXE: process.execPath };
      const child = spawn("/bin/sh", argv, { stdio: ["ignore", "pipe", "inherit"], env });
      let out = "";
      child.stdout!.on("data", (d) => (out += d));
      child.on("close", () => resolve(out));
    });
  const needs = (missing: string) =>
    `StartMethodError: The "process" start method's broker (its queues and other shared objects) on Deno needs ` +
    `${missing} (run Deno with --allow-read --allow-write --allow-net --allow-run --allow-env)\n`;
  const base = ["--allow-read", "--allow-run", "--allow-env"];
  assert.equal(await within(run(base), "deno without write and net"), needs("--allow-write --allow-net"));
  assert.equal(await within(run([...base, "--allow-write"]), "deno without net"), needs("--allow-net"));
  assert.equal(await within(run([...base, "--allow-write", "--allow-net"]), "deno with all of them"), "ok: 1\n");
});

test("broker: a program removes its broker's folder at exit, and folders that killed programs left behind", T, async () => {
  const stale = join(tmpdir(), `polyproc-broker-${2 ** 22 + 1}-abcdef`); // a pid that cannot exist
  mkdirSync(stale, { recursive: true });
  writeFileSync(join(stale, "broker.sock"), "");
  const run = await runProgram("programs/broker_dir.ts");
  assert.equal(run.code, 0, run.stderr);
  const own = dirname(run.stdout.trim());
  assert.match(own, /polyproc-broker-\d+-/);
  assert.equal(existsSync(own), false, "the program's own folder is gone");
  assert.equal(existsSync(stale), false, "the stale folder is gone");
});

// ---------------------------------------------------------------------------------- hostile peers

function rawConnect(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(brokerPath());
    socket.once("connect", () => resolve(socket));
    socket.resume(); // a paused socket would never see the broker close it
    socket.once("error", reject);
  });
}

/** Resolves when the broker has closed `socket`. */
function closedByBroker(socket: Socket, what: string): Promise<void> {
  return within(new Promise((resolve) => socket.once("close", () => resolve())), what);
}

function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/** Connects and answers the challenge with `key`, as a client would. */
async function handshake(key: Uint8Array): Promise<Socket> {
  const socket = await rawConnect();
  socket.on("error", () => {});
  const challenge: Uint8Array = await new Promise((resolve) => socket.once("data", resolve));
  const answer = createHmac("sha256", key).update(Buffer.concat([Buffer.from("client"), challenge.subarray(4)])).digest();
  socket.write(frame(Buffer.concat([answer, Buffer.alloc(32)])));
  return socket;
}

async function stillServes(): Promise<void> {
  const client = await getBroker();
  const q = await client.create();
  await client.put(q, bytes(42));
  assert.deepEqual(await client.get(q), bytes(42));
  await client.release(q);
}

test("broker: a client with the wrong key is refused, and the broker serves on", T, async () => {
  await getBroker();
  await rejectsWith(BrokerClient.connect(brokerPath(), new Uint8Array(32).fill(7)), "auth");
  const socket = await handshake(new Uint8Array(32).fill(7));
  await closedByBroker(socket, "the broker to drop a wrong answer");
  await stillServes();
});

test("broker: garbage and absurd frame lengths end that connection only", T, async () => {
  await getBroker();
  const key = brokerForChild().authkey;
  const cases: [string, (socket: Socket) => void, boolean][] = [
    ["garbage before the handshake", (s) => s.write(Buffer.from("GET / HTTP/1.1\r\n\r\n")), false],
    ["a 4 GiB frame before the handshake", (s) => s.write(bytes(0xff, 0xff, 0xff, 0xff)), false],
    ["a 2 GiB frame after the handshake", (s) => s.write(bytes(0x80, 0, 0, 0)), true],
    ["a frame that is not a message", (s) => s.write(frame(Buffer.from("\x00\x00\x00\x05{nope"))), true],
    ["a message with a bad header", (s) => s.write(frame(encodeMessage({ op: "get", q: -1, r: "x" }))), true],
    ["an unknown operation", (s) => s.write(frame(encodeMessage({ op: "explode", q: 1, r: 1 }))), true],
  ];
  for (const [what, send, authenticate] of cases) {
    const socket = authenticate ? await handshake(key) : await rawConnect();
    socket.on("error", () => {});
    if (authenticate) await new Promise((resolve) => socket.once("data", resolve)); // the broker's proof
    const closed = closedByBroker(socket, `the broker to drop ${what}`);
    send(socket);
    await closed;
    await stillServes();
  }
});

function encodeMessage(header: unknown): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + head.length);
  new DataView(out.buffer).setUint32(0, head.length);
  out.set(head, 4);
  return out;
}
