// Pipes under both start methods: CPython's _TestConnection, ported.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type Connection, EOFError, getContext, pipe, ProcessError } from "../mod.ts";
import { self as q } from "./fixtures/queue_targets.ts";
import { METHODS } from "./_helpers.ts";

const T = { timeout: 90_000 };



test("pipe() rejects bad options", () => {
  assert.throws(() => pipe({ duplex: "yes" as never }), TypeError);
  assert.throws(() => pipe({ context: "fork" as never }), RangeError);
});

for (const method of METHODS) {
  const ctx = getContext(method);
  const opts = { context: method };


  test(`[${method}] an echo child: send/recv, sendBytes/recvBytes, poll, 16 MiB, then EOFError (test_connection)`, T, async () => {
    const [conn, child] = pipe(opts);
    const p = new ctx.Process({ target: q.echo, args: [child] });
    p.start();
    assert.equal(await conn.poll(), false);
    assert.equal(await conn.poll(-1), false);
    assert.equal(await conn.poll(20), false);
    const values = [1, "two", [3], { four: 4n }, new Map([[5, 5]])];
    for (const v of values) conn.send(v);
    for (const v of values) assert.deepEqual(await conn.recv(), v);
    conn.sendBytes(new TextEncoder().encode("hello"));
    assert.equal(await conn.poll(30_000), true);
    assert.equal(await conn.poll(), true, "poll() is idempotent");
    assert.deepEqual(await conn.recvBytes(), new TextEncoder().encode("hello"));
    const big = new Uint8Array(16 * 1024 * 1024).map((_, i) => i % 253);
    conn.sendBytes(big);
    assert.deepEqual(await conn.recvBytes(), big);
    conn.sendBytes(new Uint8Array(0));
    assert.deepEqual(await conn.recvBytes(), new Uint8Array(0));
    conn.close();
    await p.join(60_000);
    assert.equal(p.exitCode, 0);
    assert.throws(() => conn.recv(), ProcessError, "this end is closed");
    const [a, b] = pipe(opts);
    b.close();
    await assert.rejects(a.recv(), (e: Error) => e instanceof EOFError && /other end of the pipe is closed/.test(e.message));
  });

  test(`[${method}] duplex: false gives a receive-only then a send-only end (test_duplex_false)`, async () => {
    const [reader, writer] = pipe<number>({ ...opts, duplex: false });
    assert.deepEqual([reader.readable, reader.writable, writer.readable, writer.writable], [true, false, false, true]);
    assert.throws(() => reader.send(1), /read-only/);
    assert.throws(() => writer.recv(), /write-only/);
    assert.throws(() => writer.poll(), /write-only/);
    writer.send(7);
    assert.equal(await reader.recv(), 7);
    writer.close();
    assert.equal(writer.closed, true);
    assert.throws(() => writer.send(1), (e: Error) => e instanceof ProcessError && /Connection is closed/.test(e.message));
    await assert.rejects(reader.recv(), EOFError);
  });

  test(`[${method}] sendBytes(buf, offset, size) sends that slice; bad ranges are RangeErrors (test_sendbytes)`, async () => {
    const [a, b] = pipe<Uint8Array>(opts);
    const msg = new TextEncoder().encode("abcdefghijklmnopqrstuvwxyz");
    a.sendBytes(msg, 5);
    assert.deepEqual(await b.recvBytes(), msg.subarray(5));
    a.sendBytes(msg, 7, 8);
    assert.deepEqual(await b.recvBytes(), msg.subarray(7, 15));
    a.sendBytes(msg, 26);
    assert.deepEqual(await b.recvBytes(), new Uint8Array(0));
    a.sendBytes(msg, 26, 0);
    assert.deepEqual(await b.recvBytes(), new Uint8Array(0));
    for (const [offset, size] of [[27], [22, 5], [26, 1], [-1], [4, -1]]) {
      assert.throws(() => a.sendBytes(msg, offset, size), RangeError, `sendBytes(msg, ${offset}, ${size})`);
    }
    a.sendBytes(msg.buffer as ArrayBuffer, 0, 3);
    assert.deepEqual(await b.recvBytes(), msg.subarray(0, 3));
    a.sendBytes(msg);
    await assert.rejects(b.recvBytes(10), /longer than maxlength 10/);
  });

  test(`[${method}] messages from a child keep their boundaries, empty ones too (test_strings, test_dont_merge)`, T, async () => {
    const [reader, writer] = pipe({ ...opts, duplex: false });
    const messages = [[104, 105], [], [97], [98], [], [98, 121, 101], [], [99, 100]];
    const p = new ctx.Process({ target: q.sendAllBytes, args: [writer, messages] });
    p.start();
    writer.close(); // the child holds its own copy; end of file comes when it closes that
    const got: number[][] = [];
    for (;;) {
      try {
        got.push([...await reader.recvBytes()]);
      } catch (err) {
        if (err instanceof EOFError) break;
        throw err;
      }
    }
    await p.join(30_000);
    assert.deepEqual(got, messages);
  });

  test(`[${method}] end of file comes only when every copy of the other end is closed`, T, async () => {
    const [reader, writer] = pipe<number>({ ...opts, duplex: false });
    const p = new ctx.Process({ target: q.sendAllBytes, args: [writer, [[1]]] });
    p.start();
    await p.join(30_000);
    assert.deepEqual([...await reader.recvBytes()], [1]);
    // Our copy of the writer is still open, so the pipe has not ended: it still carries messages.
    writer.sendBytes(Uint8Array.of(2));
    assert.deepEqual([...await reader.recvBytes()], [2]);
    writer.close();
    await assert.rejects(reader.recv(), EOFError);
  });

  test(`[${method}] recvBytes() of a message sent with send() says so`, async () => {
    const [a, b]: [Connection, Connection] = pipe(opts);
    a.send("text");
    await assert.rejects(b.recvBytes(), /sent with send\(\)/);
  });
}
