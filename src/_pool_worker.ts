/**
 * Inside a pool worker: run the initializer once, then run the tasks the parent
 * sends, one at a time and in the order sent, and send back their results in
 * batches. The parent's scheduler (`_scheduler.ts`) decides what each worker gets.
 *
 * @module
 */
import { childIdentity } from "./_child_state.ts";
import { Deque } from "./_deque.ts";
import { pack, type Transport } from "./serialization.ts";
import { loadTarget, type TargetSpec } from "./target.ts";
import { runtime } from "./runtime/detect.ts";
import type { Channel } from "./runtime/types.ts";
import {
  fromWire,
  MODE_APPLY,
  MODE_MAP,
  type ReleasedMessage,
  type ResultBatch,
  STATUS_ERROR,
  STATUS_OK,
  type TaskBatch,
  toWire,
  type ToWorker,
} from "./_pool_protocol.ts";

type Fn = (...args: unknown[]) => unknown;

// Results wait for the batch at most this long while later tasks run, so a slow
// task does not hold back the result of a quick one before it.
const FLUSH_AFTER_MS = 1;
const FLUSH_AT = 256;


class Server {
  #channel: Channel;
  #transport: Transport;
  #fns = new Map<number, Fn | Promise<Fn>>();
  #queue = new Deque<unknown>();
  #out: unknown[] = [];
  #outSince = 0;
  #busyMs = 0;
  #running = false;
  #ready = false;
  #retire = false;
  #done!: () => void;
  readonly finished = new Promise<void>((resolve) => (this.#done = resolve));

  constructor(channel: Channel, transport: Transport) {
    this.#channel = channel;
    this.#transport = transport;
    channel.onMessage((m) => this.#receive(m as ToWorker));
    // The parent holds the channel open; the worker lives until told to retire.
    channel.ref();
  }

  #receive(message: ToWorker): void {
    switch (message.k) {
      case "t":
        this.#accept(message);
        break;
      case "c":
        this.#release(message.ids);
        break;
      case "x":
        this.#retire = true;
        break;
    }
    if (this.#ready && !this.#running) void this.#run();
  }

  /** Starts running tasks (after the initializer). */
  start(): void {
    this.#ready = true;
    if (!this.#running) void this.#run();
  }

  #accept(batch: TaskBatch): void {
    if (batch.f !== undefined) {
      for (const [id, spec] of batch.f) this.#fns.set(id, loadTarget(spec as TargetSpec) as Promise<Fn>);
    }
    const b = batch.b;
    for (let i = 0; i < b.length; i++) this.#queue.push(b[i]);
  }

  // Removes the named tasks that have not started (a task being run is no longer in the queue).
  #release(ids: number[]): void {
    const wanted = new Set(ids);
    const released: number[] = [];
    const kept = new Deque<unknown>();
    const q = this.#queue;
    while (q.length > 0) {
      const task = [q.shift(), q.shift(), q.shift(), q.shift(), q.shift()];
      if (wanted.has(task[0] as number)) released.push(task[0] as number);
      else for (const entry of task) kept.push(entry);
    }
    this.#queue = kept;
    // The parent matches results to tasks in order: the results before the released ones go first.
    this.#flush();
    this.#channel.send({ k: "g", ids: released } satisfies ReleasedMessage);
  }

  async #run(): Promise<void> {
    this.#running = true;
    while (this.#queue.length > 0) {
      const q = this.#queue;
      // A task is five entries: id, function id, mode, wire value, wire kind.
      const id = q.shift() as number, fnId = q.shift() as number, mode = q.shift() as number;
      const v = q.shift(), how = q.shift() as number;
      const started = performance.now();
      let status = STATUS_OK, value: unknown;
      try {
        let fn = this.#fns.get(fnId)!;
        if (fn instanceof Promise) this.#fns.set(fnId, fn = await fn);
        const args = fromWire(v, how);
        value = mode === MODE_APPLY ? fn(...(args as unknown[])) : await runChunk(fn, args as unknown[], mode === MODE_MAP);
        if (value !== null && typeof (value as PromiseLike<unknown>)?.then === "function") value = await value;
      } catch (err) {
        status = STATUS_ERROR;
        value = err;
      }
      this.#busyMs += performance.now() - started;
      this.#pushResult(id, status, value);
    }
    this.#flush();
    this.#running = false;
    if (this.#retire) this.#done();
  }

  #pushResult(id: number, status: number, value: unknown): void {
    let wire: [unknown, number];
    try {
      wire = toWire(value, "result", this.#transport);
    } catch (err) {
      wire = toWire(err, "error", this.#transport);
      status = STATUS_ERROR;
    }
    this.#push(id, status, wire[0], wire[1]);
  }

  #push(id: number, status: number, v: unknown, how: number): void {
    const out = this.#out;
    if (out.length === 0) this.#outSince = performance.now();
    out.push(id, status, v, how);
    if (out.length >= FLUSH_AT * 4 || performance.now() - this.#outSince > FLUSH_AFTER_MS) this.#flush();
  }

  /** Sends what is held now: the worker is ending (exit() in a task, an uncaught error). */
  flushNow(): void {
    this.#flush();
  }

  #flush(): void {
    const b = this.#out;
    if (b.length === 0) return;
    this.#out = [];
    const message: ResultBatch = { k: "r", b, ms: this.#busyMs };
    this.#busyMs = 0;
    try {
      this.#channel.send(message);
    } catch {
      this.#sendOneByOne(b);
    }
  }

  // One result in the batch cannot be copied: send them singly, and turn each that
  // fails into an error for its own task, so the others arrive and the worker lives on.
  #sendOneByOne(b: unknown[]): void {
    for (let i = 0; i < b.length; i += 4) {
      const one = b.slice(i, i + 4);
      try {
        this.#channel.send({ k: "r", b: one, ms: 0 } satisfies ResultBatch);
      } catch (err) {
        const why = new TypeError(`Cannot copy the task's result back to the parent: ${(err as Error).message}`);
        const [v, how] = toWire(why, "error", this.#transport);
        this.#channel.send({ k: "r", b: [one[0], STATUS_ERROR, v, how], ms: 0 } satisfies ResultBatch);
      }
    }
  }

  // The parent reads this as "the initializer failed"; the worker then ends.
  reportInitError(err: unknown): void {
    const packed = pack(err, "error", this.#transport);
    this.#channel.send({ k: "i", v: packed.v, t: packed.t });
  }
}

async function runChunk(fn: Fn, items: unknown[], single: boolean): Promise<unknown[]> {
  const results = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    let r = single ? fn(items[i]) : fn(...(items[i] as unknown[]));
    if (r !== null && typeof (r as PromiseLike<unknown>)?.then === "function") r = await r;
    results[i] = r;
  }
  return results;
}

/**
 * A pool worker's target: runs `initializer(...initargs)`, then serves tasks
 * until the parent says to retire.
 */
export async function serve(initializer: TargetSpec | null, initargs: unknown[]): Promise<void> {
  const identity = childIdentity()!;
  const server = new Server(identity.channel, identity.startMethod);
  // Results held for a batch are sent even when a task ends the worker, so the parent
  // learns which tasks finished and blames the death on the one that was running.
  runtime.onExit(() => server.flushNow());
  if (initializer !== null) {
    try {
      await (await loadTarget(initializer))(...initargs);
    } catch (err) {
      server.reportInitError(err);
      throw err;
    }
  }
  server.start();
  await server.finished;
}
