/**
 * Child targets for scripts/bench_queue.ts: a queue producer and a pipe echo.
 * Nothing runs at top level.
 *
 * @module
 */
import type { Connection, Queue } from "../mod.ts";

/** Puts the ints 0..n-1, one `await put()` each, as a user would write it. */
export async function produceInts(q: Queue<unknown>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await q.put(i);
}

/** Puts n copies of one `size`-byte Uint8Array (each put copies it). */
export async function produceBytes(q: Queue<unknown>, n: number, size: number): Promise<void> {
  const item = new Uint8Array(size).fill(120);
  for (let i = 0; i < n; i++) await q.put(item);
}

/** Sends back every message until a null one. */
export async function echo(conn: Connection): Promise<void> {
  for (;;) {
    const m = await conn.recv();
    if (m === null) break;
    conn.send(m);
  }
  conn.close();
}
