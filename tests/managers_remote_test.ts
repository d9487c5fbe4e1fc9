// Remote managers over TCP with an authkey (Python's _TestRemoteManager and the
// challenge tests), and the server's hardening: it listens on a network, so it must
// survive garbage, truncated and oversized frames, silent clients, clients that
// vanish mid-call, and many clients at once.
import assert from "node:assert/strict";
import { createConnection, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { AuthenticationError, BaseManager, type DictProxy, Manager, Process, ProcessError, run } from "../mod.ts";
import { ClientHandshake, encodeMessage, type Message, MessageReader, rawFrame } from "../src/_broker_wire.ts";
import { connectManager, MAX_MANAGER_FRAME } from "../src/_manager_proxy.ts";
import { ManagerServer } from "../src/_manager_server.ts";
import type { NetSocket } from "../src/runtime/types.ts";
import { QueueManager, richValue, self as t } from "./fixtures/manager_targets.ts";
import { fixture, METHODS, runtimeKey } from "./_helpers.ts";

const T = { timeout: 60_000 };
const KEY = "a 32-byte secret for the tests!!";
const HOST = "127.0.0.1";

/** Resolves when `socket` closes; fails after `ms` naming `what`. */
function closed(socket: Socket | NetSocket, what: string, ms = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: the server did not close the connection in ${ms} ms`)), ms);
    const done = () => (clearTimeout(timer), resolve());
    if ("onClose" in socket) socket.onClose(done);
    else socket.once("close", done);
  });
}

function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // Flowing, so that the server's hang-up is read (a paused socket never sees its end).
    const s = createConnection(port, HOST, () => resolve(s.resume()));
    s.once("error", reject);
  });
}

/** An authenticated connection that speaks the wire directly: one request at a time, or pipelined. */
async function rawClient(port: number, key = KEY) {
  const socket = await connectManager({ host: HOST, port }, new TextEncoder().encode(key));
  const reader = new MessageReader(MAX_MANAGER_FRAME);
  const waiting = new Map<number, { resolve(m: Message): void; reject(e: Error): void }>();
  socket.onData((chunk) => {
    for (const m of reader.push(chunk) ?? []) waiting.get(m.header.r as number)?.resolve(m);
  });
  socket.onClose(() => {
    for (const w of waiting.values()) w.reject(new Error("the connection closed"));
  });
  let r = 0;
  return {
    socket,
    request(header: Record<string, unknown>, ms = 20_000): Promise<Message> {
      const id = ++r;
      socket.write(encodeMessage({ ...header, r: id }));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply to ${JSON.stringify(header)} in ${ms} ms`)), ms);
        const settle = () => (clearTimeout(timer), waiting.delete(id));
        waiting.set(id, { resolve: (m) => (settle(), resolve(m)), reject: (e) => (settle(), reject(e)) });
      });
    },
  };
}

/** A server in this process (so the test can set its handshake timeout), on TCP port 0. */
async function localServer(helloTimeout = 10_000): Promise<{ server: ManagerServer; port: number }> {
  const server = await ManagerServer.listen({
    address: { host: HOST, port: 0 },
    authkey: new TextEncoder().encode(KEY),
    registry: [],
    helloTimeout,
  });
  return { server, port: (server.address as { port: number }).port };
}

/** Runs `fn` with a server in this process on TCP port 0, and shuts the server down after. */
async function withLocalServer(fn: (port: number) => Promise<void>, helloTimeout?: number): Promise<void> {
  const { server, port } = await localServer(helloTimeout);
  try {
    await fn(port);
  } finally {
    server.shutdown();
  }
}

/** The server still serves: a new client makes a list, appends, and reads it back. */
async function stillServes(port: number): Promise<void> {
  const c = await rawClient(port);
  const made = await c.request({ op: "create", t: "list", a: [] });
  const id = made.header.id as number;
  await c.request({ op: "call", id, m: "append", a: [42] });
  const got = await c.request({ op: "call", id, m: "get", a: [0] });
  assert.equal(got.header.v, 42);
  c.socket.destroy();
}

for (const method of METHODS) {
  test(`[${method}] remote manager on 127.0.0.1: a child connects and puts, another client gets (test_remote)`, T, async () => {
    const server = new QueueManager({ address: { host: HOST, port: 0 }, authkey: KEY, context: method });
    await server.start();
    try {
      const { port } = server.address as { port: number };
      assert.ok(port > 0, "port 0 became a real port");
      const p = new Process({ target: t.remotePut, args: [server.address, KEY, [[1, "two"], 3]], context: method });
      p.start();
      await p.join(30_000);
      assert.equal(p.exitCode, 0);
      const client = new QueueManager({ address: { host: HOST, port }, authkey: KEY });
      await client.connect();
      const q = await client.getQueue();
      assert.equal(await q.size(), 2);
      assert.deepEqual(await q.get(), [1, "two"]);
      assert.equal(await q.get(), 3);
      await client.close();
    } finally {
      await server.shutdown();
    }
  });
}

/** The next runtime round (node → bun → deno → node): the three runs of this file try each pair once. */
function foreignRuntime(file: string): { name: string; argv: string[] } {
  const bin = (name: string) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));
  switch (runtimeKey) {
    case "node":
      return { name: "bun", argv: [bin("bun"), file] };
    case "bun":
      return { name: "deno", argv: [bin("deno"), "run", "--allow-read", "--allow-net", "--allow-env", file] };
    default:
      return { name: "node", argv: ["node", "--import", "tsx", file] };
  }
}

test(`a client on another runtime (${foreignRuntime("").name}) uses the server: values cross both ways in the portable format`, T, async () => {
  await using server = new QueueManager({ address: { host: HOST, port: 0 }, authkey: KEY });
  await server.start();
  const q = await server.getQueue();
  await q.put(richValue());
  const { port } = server.address as { port: number };
  const other = foreignRuntime(fixture("programs/manager_foreign_client.ts"));
  const result = await run([...other.argv, String(port), KEY], {
    captureOutput: true,
    text: true,
    timeout: 60_000,
    cwd: fileURLToPath(new URL("..", import.meta.url)),
  });
  assert.equal(result.returncode, 0, `the ${other.name} client failed: ${result.stderr}`);
  const seen = JSON.parse(result.stdout as string);
  assert.deepEqual(seen, { keys: Object.keys(richValue()), big: String(-(2n ** 70n)), error: "RangeError: bad range" });

  const { error: backError, ...back } = await q.get() as Record<string, unknown>;
  const { error: _, ...expected } = richValue();
  assert.deepStrictEqual(back, expected, "the value came back whole from the other runtime");
  assert.ok(Object.is((((back.map as Map<string, unknown[]>).get("two"))![1]), -0), "-0 kept");
  assert.ok(backError instanceof RangeError && backError.message === "bad range");

  const d = await q.get() as DictProxy<string, unknown>;
  const { error: mineError, ...mine } = await d.get("mine") as Record<string, unknown>;
  assert.deepStrictEqual(mine, expected, "a proxy the other runtime made, and the value it set");
  assert.ok(mineError instanceof RangeError);
});

test("a wrong authkey is AuthenticationError, and the server keeps serving the right one", T, async () => {
  await using server = new Manager({ address: { host: HOST, port: 0 }, authkey: KEY });
  await server.start();
  const li = await server.list([1]);
  const wrong = new Manager({ address: server.address, authkey: "not the key" });
  await assert.rejects(wrong.connect(), AuthenticationError);
  await assert.rejects(wrong.list(), ProcessError, "a manager that failed to connect makes nothing");
  assert.equal(await server.numberOfObjects(), 1, "nothing was made for the wrong key");
  assert.deepEqual(await li.toArray(), [1]);
});

test("a request sent instead of the handshake's answer is dropped before it is read", T, async () => {
  await withLocalServer(async (port) => {
  const s = await rawSocket(port);
  const gone = closed(s, "a create without the handshake");
  s.write(encodeMessage({ op: "create", t: "list", r: 1, a: [] }));
  await gone;
  const c = await rawClient(port);
  assert.equal((await c.request({ op: "count" })).header.v, 0, "no object was made");
  c.socket.destroy();
  });
});

test("the client refuses a server that does not hold its key (the check goes both ways)", T, async () => {
  // A fake server that accepts any answer and "proves" itself with random bytes.
  const fake = createServer((s) => {
    s.write(rawFrame(new Uint8Array(32).fill(7)));
    s.once("data", () => s.write(rawFrame(new Uint8Array(32).fill(9))));
    s.on("error", () => {});
  });
  await new Promise<void>((resolve) => fake.listen(0, HOST, resolve));
  const { port } = fake.address() as { port: number };
  try {
    const m = new Manager({ address: { host: HOST, port }, authkey: KEY });
    await assert.rejects(m.connect(), AuthenticationError);
  } finally {
    fake.close();
  }
});

test("connect() to an address where nobody listens is ProcessError with code ECONNREFUSED", T, async () => {
  const { server, port } = await localServer();
  server.shutdown();
  await server.serveForever();
  const m = new Manager({ address: { host: HOST, port }, authkey: KEY });
  await assert.rejects(m.connect(), (e: Error & { code?: string }) => e instanceof ProcessError && e.code === "ECONNREFUSED");
});

test("a server that hangs up before its challenge is ProcessError ECONNRESET, not AuthenticationError (a dying server)", T, async () => {
  // What a client meets when the server dies with the connection in its backlog.
  const hangUp = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => hangUp.listen(0, HOST, resolve));
  const port = (hangUp.address() as { port: number }).port;
  try {
    const m = new Manager({ address: { host: HOST, port }, authkey: KEY });
    await assert.rejects(m.connect(), (e: Error & { code?: string }) => {
      assert.ok(e instanceof ProcessError && !(e instanceof AuthenticationError), `${e.name}: ${e.message}`);
      assert.equal(e.code, "ECONNRESET");
      assert.match(e.message, /hung up before the handshake/);
      return true;
    });
  } finally {
    await new Promise((resolve) => hangUp.close(resolve));
  }
});

test("serve() in this process; a child connects and uses it", T, async () => {
  const m = new QueueManager({ address: { host: HOST, port: 0 }, authkey: KEY });
  const server = await m.getServer();
  const served = server.serveForever();
  const p = new Process({ target: t.remotePut, args: [m.address, KEY, ["from the child"]], context: "process" });
  p.start();
  await p.join(30_000);
  assert.equal(p.exitCode, 0);
  // In the server's own process, proxies call the server directly.
  const q = await m.getQueue();
  assert.equal(await q.get(), "from the child");
  await m.shutdown();
  await served;
});

// --- hardening ---

test("garbage bytes before the handshake drop that client only", T, async () => {
  await withLocalServer(async (port) => {
  const s = await rawSocket(port);
  const gone = closed(s, "garbage");
  s.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await gone;
  await stillServes(port);
  });
});

test("garbage after the handshake (a frame that is not a message) drops that client only", T, async () => {
  await withLocalServer(async (port) => {
  const c = await rawClient(port);
  const gone = closed(c.socket, "garbage after auth");
  c.socket.write(rawFrame(new Uint8Array(64).fill(0xff)));
  await gone;
  // Well-formed frames whose header is not a request also drop the client.
  const d = await rawClient(port);
  const goneToo = closed(d.socket, "an unknown op");
  d.socket.write(encodeMessage({ op: "format-disk", r: 1 }));
  await goneToo;
  const e = await rawClient(port);
  const goneThree = closed(e.socket, "args that are not an array");
  e.socket.write(encodeMessage({ op: "call", r: 1, id: 1, m: "x", a: "nope" }));
  await goneThree;
  await stillServes(port);
  });
});

test("a frame announcing a huge length is refused without allocating it, before and after the handshake", T, async () => {
  await withLocalServer(async (port) => {
  const s = await rawSocket(port);
  const gone = closed(s, "a huge hello frame");
  s.write(Uint8Array.of(0xff, 0xff, 0xff, 0xf0));
  await gone;
  const c = await rawClient(port);
  const goneToo = closed(c.socket, "a huge message frame");
  c.socket.write(Uint8Array.of(0xff, 0xff, 0xff, 0xf0, 1, 2, 3));
  await goneToo;
  await stillServes(port);
  });
});

test("a truncated frame, then a hang-up, leaves the server serving", T, async () => {
  await withLocalServer(async (port) => {
  const c = await rawClient(port);
  const frame = encodeMessage({ op: "create", t: "list", r: 1, a: [] });
  c.socket.write(frame.subarray(0, frame.length - 3));
  // The server waits for the rest (it was announced) and serves others meanwhile.
  await stillServes(port);
  c.socket.destroy();
  await stillServes(port);
  const before = await rawClient(port);
  assert.equal((await before.request({ op: "count" })).header.v, 0, "the truncated create made nothing");
  before.socket.destroy();
  });
});

test("a client that connects and says nothing is dropped after the handshake timeout; others are served meanwhile", T, async () => {
  await withLocalServer(async (port) => {
  const silent = await rawSocket(port);
  const gone = closed(silent, "a silent client");
  await stillServes(port);
  await gone;
  }, 300);
});

test("a client that disconnects during a blocked get() takes no item", T, async () => {
  await withLocalServer(async (port) => {
  const a = await rawClient(port);
  const id = (await a.request({ op: "create", t: "Queue", a: [0] })).header.id as number;
  // Lend the queue so it outlives its maker's connection (as a copy on its way would).
  a.socket.write(encodeMessage({ op: "lend", id }));
  const get = a.request({ op: "call", id, m: "get", a: [] });
  // Served in order: once this reply is here, the get above waits on the server.
  await a.request({ op: "ping" });
  a.socket.destroy();
  await assert.rejects(get, /the connection closed/);
  const b = await rawClient(port);
  b.socket.write(encodeMessage({ op: "adopt", id }));
  await b.request({ op: "call", id, m: "put", a: ["item"] });
  const got = await b.request({ op: "call", id, m: "get", a: [{ timeout: 10_000 }] });
  assert.equal(got.header.v, "item", "the vanished client's get did not take the item");
  b.socket.destroy();
  });
});

test("100 concurrent clients are all served", T, async () => {
  await withLocalServer(async (port) => {
  const maker = await rawClient(port);
  const id = (await maker.request({ op: "create", t: "list", a: [] })).header.id as number;
  const clients = await Promise.all(Array.from({ length: 100 }, () => rawClient(port)));
  await Promise.all(clients.map((c, i) => c.request({ op: "call", id, m: "append", a: [i] })));
  const all = await maker.request({ op: "call", id, m: "toArray", a: [] });
  assert.equal(all.header.v, undefined);
  const { decodeValue } = await import("../src/_manager_proxy.ts");
  const items = decodeValue(all.items[0]) as number[];
  assert.deepEqual(items.sort((x, y) => x - y), [...Array(100).keys()]);
  for (const c of clients) c.socket.destroy();
  maker.socket.destroy();
  });
});

test("a client whose handshake answer is wrong is dropped and gets nothing", T, async () => {
  await withLocalServer(async (port) => {
  const s = await rawSocket(port);
  const gone = closed(s, "a wrong answer");
  const hs = new ClientHandshake(new TextEncoder().encode("wrong key"));
  s.once("data", (chunk: Uint8Array) => s.write(rawFrame(hs.answer(chunk.subarray(4, 36))!)));
  let replied = false;
  s.on("data", (chunk: Uint8Array) => (replied ||= chunk.length > 36));
  await gone;
  assert.equal(replied, false, "no proof was sent to a wrong key");
  await stillServes(port);
  });
});

test("start() on an address in use rejects with ProcessError saying why", T, async () => {
  await withLocalServer(async (port) => {
    const m = new Manager({ address: { host: HOST, port }, authkey: KEY });
    await assert.rejects(m.start(), (e: Error) => e instanceof ProcessError && /EADDRINUSE|in use/i.test(e.message));
    await assert.rejects(m.list(), ProcessError);
  });
});
