// The adapter's sockets (runtime.net): what the broker and the managers rely on, on
// whichever socket API the runtime uses (node:net, Deno.listen, Bun.listen).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { runtime } from "../src/runtime/detect.ts";
import type { NetServer, NetSocket } from "../src/runtime/types.ts";
import { pidAlive, runtimeCommand, tempDir, waitUntil } from "./_helpers.ts";

const T = { timeout: 60_000 };
const CHILD = "POLYPROC_NET_TEST_CHILD";

/** Resolves when `promise` settles; fails after `ms` naming `what`. */
function within<V>(promise: Promise<V>, what: string, ms = 20_000): Promise<V> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function deferred<V = void>(): { promise: Promise<V>; resolve: (value: V) => void } {
  let resolve!: (value: V) => void;
  const promise = new Promise<V>((r) => (resolve = r));
  return { promise, resolve };
}

const pattern = (size: number): Uint8Array => {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >>> 12)) & 255;
  return bytes;
};

const socketPath = (): string => join(tempDir(), "s.sock");

/** A server at a fresh unix socket, and a client connected to it: both ends, once the server has seen the client. */
async function pair(onServer: (socket: NetSocket) => void = () => {}): Promise<{ server: NetServer; near: NetSocket; far: NetSocket; path: string }> {
  const path = socketPath();
  const accepted = deferred<NetSocket>();
  const server = await runtime.net.listen(path, (socket) => {
    onServer(socket);
    accepted.resolve(socket);
  });
  const near = await within(runtime.net.connect(path), "connect");
  return { server, near, far: await within(accepted.promise, "accept"), path };
}

/** Runs `body` on a fresh {@linkcode pair}, then destroys both ends and closes the server. */
async function withPair(body: (ends: { near: NetSocket; far: NetSocket }) => Promise<void>): Promise<void> {
  const { server, near, far } = await pair();
  try {
    await body({ near, far });
  } finally {
    near.destroy();
    far.destroy();
    await server.close();
  }
}

/** Collects what `socket` receives, keeping every chunk as it was handed over. */
function collect(socket: NetSocket, expected: number, onChunk: () => void = () => {}): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const all = deferred<Uint8Array[]>();
  socket.onData((chunk) => {
    chunks.push(chunk);
    size += chunk.byteLength;
    onChunk();
    if (size >= expected) all.resolve(chunks);
  });
  return all.promise;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) out.set(c, at), (at += c.byteLength);
  return out;
}

/** The first index where `a` and `b` differ, or -1. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

if (process.env[CHILD] !== undefined) {
  // Run as a program by the ref()/unref() test: connect, say so, then let the socket
  // decide whether the program stays.
  const [path, mode] = process.env[CHILD].split("|");
  const socket = await runtime.net.connect(path);
  socket.write(new TextEncoder().encode("connected"));
  if (mode === "unref") socket.unref();
  else if (mode === "unref-ref") (socket.unref(), socket.ref());
} else {
  test("runtime.net: a 10 MiB write, in small and large pieces, arrives whole and in order while the reader is slow", T, async () => {
    await withPair(async ({ near, far }) => {
      const small = 1024;
      const total = 10 * 1024 * 1024;
      const expected = pattern(total);
      // Busy for a moment at every chunk: the writer meets a full socket again and again.
      const received = collect(near, total, () => {
        const until = Date.now() + 1;
        while (Date.now() < until) { /* a slow reader */ }
      });
      const done: number[] = [];
      const errors: unknown[] = [];
      let refused = 0;
      let at = 0;
      let index = 0;
      const write = (end: number) => {
        const i = index++;
        if (!far.write(expected.subarray(at, end), (error) => (error ? errors.push(error) : done.push(i)))) refused++;
        at = end;
      };
      // 2,000 small writes, then 1 MiB ones, then small ones again: queued small frames are sent together.
      while (at < 2000 * small) write(at + small);
      while (at < total - 2000 * small) write(Math.min(at + 1024 * 1024, total - 2000 * small));
      while (at < total) write(at + small);
      const chunks = await within(received, "10 MiB to arrive", 50_000);
      const got = concat(chunks);
      assert.equal(got.byteLength, total);
      assert.equal(firstDifference(got, expected), -1, "the bytes arrive as written, and no chunk changes after it was handed over");
      await waitUntil(() => done.length + errors.length === index, "every write's done callback");
      assert.deepEqual(errors, []);
      assert.deepEqual(done, [...done].sort((a, b) => a - b), "done callbacks fire in write order");
      assert.ok(refused > 0, "a full socket refuses writes (back-pressure)");
    });
  });

  test("runtime.net: write() returns false on a full socket, and onDrain follows once it has emptied", T, async () => {
    await withPair(async ({ near, far }) => {
      const size = 4 * 1024 * 1024;
      const drained = deferred();
      far.onDrain(() => drained.resolve());
      const written = deferred<Error | undefined>();
      assert.equal(far.write(pattern(size), (error) => written.resolve(error)), false);
      const received = collect(near, size);
      await within(drained.promise, "onDrain");
      // Node passes null for "no error".
      assert.equal((await within(written.promise, "the write's done callback")) ?? undefined, undefined);
      assert.equal(concat(await within(received, "4 MiB to arrive")).byteLength, size);
      assert.equal(far.write(new Uint8Array(8)), true, "an empty socket takes a small write");
    });
  });

  test("runtime.net: done gets an Error for a write after the socket was destroyed", T, async () => {
    await withPair(async ({ near }) => {
      const closed = deferred();
      near.onClose(() => closed.resolve());
      near.destroy();
      await within(closed.promise, "onClose");
      const result = deferred<Error | undefined>();
      assert.equal(near.write(new Uint8Array(4), (error) => result.resolve(error)), false);
      assert.ok((await within(result.promise, "done")) instanceof Error);
    });
  });

  test("runtime.net: data the server sends right at connect reaches an onData handler set later", T, async () => {
    const sent = deferred();
    const { server, near, far } = await pair((socket) => socket.write(new TextEncoder().encode("hello"), () => sent.resolve()));
    try {
      await within(sent.promise, "the server's write");
      // Give the bytes time to reach the client before it has a handler (not needed for the test to pass).
      await new Promise((r) => setTimeout(r, 50));
      const got = await within(collect(near, 5), "the early data");
      assert.equal(new TextDecoder().decode(concat(got)), "hello");
    } finally {
      near.destroy();
      far.destroy();
      await server.close();
    }
  });

  for (const side of ["client", "server"] as const) {
    test(`runtime.net: destroy() on the ${side} side calls onClose once on both sides`, T, async () => {
      await withPair(async ({ near, far }) => {
        const counts = { near: 0, far: 0 };
        const bothClosed = deferred();
        const closed = (end: "near" | "far") => () => {
          counts[end]++;
          if (counts.near > 0 && counts.far > 0) bothClosed.resolve();
        };
        near.onClose(closed("near"));
        far.onClose(closed("far"));
        (side === "client" ? near : far).destroy();
        await within(bothClosed.promise, "onClose on both sides");
        (side === "client" ? near : far).destroy(); // again: no second onClose
        await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(counts, { near: 1, far: 1 });
        // A handler set after the close is called too.
        const late = deferred();
        near.onClose(() => late.resolve());
        await within(late.promise, "a late onClose");
      });
    });
  }

  test("runtime.net: connect() to a missing socket file rejects with code ENOENT", T, async () => {
    await assert.rejects(within(runtime.net.connect(socketPath()), "connect"), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ENOENT", e.message);
      return true;
    });
  });

  test("runtime.net: connect() to a TCP port where nobody listens rejects with code ECONNREFUSED", T, async () => {
    const server = await runtime.net.listen({ host: "127.0.0.1", port: 0 }, (s) => s.destroy());
    const { port } = server.address as { port: number };
    await server.close();
    await assert.rejects(within(runtime.net.connect({ host: "127.0.0.1", port }), "connect"), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ECONNREFUSED", e.message);
      return true;
    });
  });

  test("runtime.net: listen() on an address in use rejects with code EADDRINUSE, unix and TCP", T, async () => {
    const path = socketPath();
    const unix = await runtime.net.listen(path, (s) => s.destroy());
    const tcp = await runtime.net.listen({ host: "127.0.0.1", port: 0 }, (s) => s.destroy());
    try {
      for (const address of [path, tcp.address]) {
        await assert.rejects(within(runtime.net.listen(address, (s) => s.destroy()), "listen"), (e: Error & { code?: string }) => {
          assert.equal(e.code, "EADDRINUSE", e.message);
          assert.match(e.message, /in use/);
          return true;
        });
      }
    } finally {
      await unix.close();
      await tcp.close();
    }
  });

  test("runtime.net: listen() on TCP port 0 reports the real port, and a round trip works there", T, async () => {
    const server = await runtime.net.listen({ host: "127.0.0.1", port: 0 }, (socket) => socket.onData((chunk) => socket.write(chunk)));
    try {
      const address = server.address as { host: string; port: number };
      assert.equal(address.host, "127.0.0.1");
      assert.ok(address.port > 0);
      const client = await within(runtime.net.connect(address), "connect");
      try {
        const echoed = collect(client, 4);
        client.write(new Uint8Array([1, 2, 3, 4]));
        assert.deepEqual([...concat(await within(echoed, "the echo"))], [1, 2, 3, 4]);
      } finally {
        client.destroy();
      }
    } finally {
      await server.close();
    }
  });

  test("runtime.net: close() removes the socket file, keeps open connections, and refuses new ones", T, async () => {
    const { server, near, far, path } = await pair();
    try {
      assert.equal(server.address, path);
      assert.ok(existsSync(path));
      await server.close();
      assert.equal(existsSync(path), false);
      await assert.rejects(within(runtime.net.connect(path), "connect"), (e: Error & { code?: string }) => e.code === "ENOENT");
      const got = collect(near, 2);
      far.write(new Uint8Array([7, 8]));
      assert.deepEqual([...concat(await within(got, "data on the open connection"))], [7, 8]);
    } finally {
      near.destroy();
      far.destroy();
    }
  });

  test("runtime.net: an unref'd idle socket lets the program end; a ref'd one keeps it alive", T, async () => {
    const path = socketPath();
    const connected = new Map<string, NetSocket>();
    const server = await runtime.net.listen(path, (socket) => {
      socket.onData(() => {});
      connected.set(`#${connected.size}`, socket);
    });
    const children: ReturnType<typeof spawn>[] = [];
    const run = (mode: string) => {
      const [exe, ...argv] = runtimeCommand(fileURLToPath(import.meta.url));
      const child = spawn(exe, argv, { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, [CHILD]: `${path}|${mode}` } });
      children.push(child);
      return { child, exited: new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code))) };
    };
    try {
      const unref = run("unref");
      assert.equal(await within(unref.exited, "the unref'd child to end by itself", 30_000), 0);
      for (const mode of ["ref", "unref-ref"]) {
        const before = connected.size;
        const ref = run(mode);
        await waitUntil(() => connected.size > before, `the ${mode} child to connect`, 30_000);
        await new Promise((r) => setTimeout(r, 300));
        assert.ok(pidAlive(ref.child.pid!), `the ${mode} child is still running with its socket open`);
        [...connected.values()].at(-1)!.destroy();
        assert.equal(await within(ref.exited, `the ${mode} child to end once its socket is closed`, 30_000), 0);
      }
    } finally {
      for (const child of children) child.kill("SIGKILL");
      for (const socket of connected.values()) socket.destroy();
      await server.close();
    }
  });
}
