/**
 * The one scheduler behind `Pool` and `ProcessPoolExecutor`: a FIFO of tasks in
 * the parent, a set of workers (children serving `_pool_worker.ts`), and a pump
 * that hands each worker a few tasks at a time.
 *
 * A worker runs its tasks one at a time, in the order given. To hide the round
 * trip, a worker holds more than one task when tasks are quick: its depth is about
 * 2 ms of work by the running average of task times (up to 512 trivial tasks, one
 * task for long ones), so balance is kept where it matters. Tasks and results
 * travel in batches.
 *
 * A worker that dies fails the task it was running (the first it holds) and the
 * others it held go back to the front of the queue, untouched. The executor face
 * instead breaks the whole pool, as Python does.
 *
 * @module
 */
import { Deque } from "./_deque.ts";
import type { Popen } from "./_popen.ts";
import { fromWire, MODE_APPLY, toWire, type FromWorker, type ResultBatch, STATUS_ERROR, type TaskBatch } from "./_pool_protocol.ts";
import type { StartMethod } from "./_start_method.ts";
import { BrokenProcessPoolError, ProcessError, TimeoutError } from "./errors.ts";
import { launch, siblingModule, whyCannotStart } from "./process.ts";
import { packChecked, unpack } from "./serialization.ts";
import { type TargetLike, type TargetSpec, toSpec } from "./target.ts";

export { MODE_APPLY, MODE_MAP, MODE_STARMAP } from "./_pool_protocol.ts";

const SERVE = { kind: "module", module: siblingModule("_pool_worker").href, name: "serve" } as const;
const DEPTH_BUDGET_MS = 2;
const MAX_DEPTH = 512;
const SLOW_TASK_MS = 20;

/** What a caller learns about its task. */
export interface TaskHooks {
  /** The task was handed to a worker (a Future is then "running"). */
  dispatched?(): void;
  /** Called exactly once: the result, or the error. */
  settle(ok: boolean, value: unknown): void;
}

/** Per-task options of every submitting method. */
export interface TaskOptions {
  /** Aborting drops a queued task, or stops the worker running it (it is replaced). */
  signal?: AbortSignal;
  /** Milliseconds the task may run, counted from when a worker takes it; then its worker is stopped. */
  timeout?: number;
}

const QUEUED = 0, SENT = 1, DONE = 2;

/** A submitted unit of work (one call, or one chunk of a map). */
export class Task {
  state = QUEUED;
  worker: Worker | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  #unlisten: (() => void) | undefined;

  constructor(
    readonly id: number,
    readonly fn: FnEntry,
    readonly mode: number,
    readonly v: unknown,
    readonly how: number,
    readonly timeout: number | undefined,
    readonly hooks: TaskHooks,
  ) {}

  listen(signal: AbortSignal, onAbort: () => void): void {
    signal.addEventListener("abort", onAbort, { once: true });
    this.#unlisten = () => signal.removeEventListener("abort", onAbort);
  }

  /** Settles the task once; later calls are ignored. */
  finish(ok: boolean, value: unknown): void {
    if (this.state === DONE) return;
    this.state = DONE;
    clearTimeout(this.timer);
    this.#unlisten?.();
    this.hooks.settle(ok, value);
  }
}

interface FnEntry {
  id: number;
  spec: TargetSpec;
}

interface Worker {
  name: string;
  popen: Popen;
  /** Tasks sent and not yet answered, in the order the worker runs them. */
  inflight: Deque<Task>;
  /** Function ids this worker has been told about. */
  known: Set<number>;
  /** Tasks sent so far (for maxTasksPerChild). */
  sent: number;
  retiring: boolean;
  /** Has been asked to give back the tasks it holds unstarted, for an idle worker. */
  releasing: boolean;
  /** Holds a task with a timeout: its clock must start now, so nothing queues behind it. */
  exclusive: boolean;
  /** The task whose abort or timeout made us stop this worker (already settled). */
  stoppedFor: Task | undefined;
  out: unknown[];
  outTasks: Task[];
  outFns: [number, unknown][];
}

/** How a scheduler is set up. */
export interface SchedulerOptions {
  processes: number;
  method: StartMethod;
  initializer?: TargetSpec;
  initargs: unknown[];
  maxTasksPerChild?: number;
  /** Start workers only as tasks need them (the executor), not all at once (Pool). */
  lazy: boolean;
  /** A worker ending abruptly breaks the pool (the executor), instead of failing one task (Pool). */
  breakOnDeath: boolean;
  /** Names workers `${prefix}-N`. */
  prefix: string;
}

/** A snapshot of a pool's state. */
export interface PoolStats {
  /** Workers alive (including any finishing their last tasks before retiring). */
  workers: number;
  /** Workers with no task. */
  idle: number;
  /** Tasks waiting for a worker. */
  queued: number;
  /** Tasks finished by a worker, with a result or an error. */
  completed: number;
}

let workerCounter = 0;
let taskCounter = 0;
let fnCounter = 0;
const fnEntries = new WeakMap<object, FnEntry>();
const fnBySource = new Map<string, FnEntry>();

/** The wire entry for a target, made once per function or reference. */
export function fnEntry(target: TargetLike<never[], unknown>, what = "fn"): FnEntry {
  if ((typeof target !== "object" && typeof target !== "function") || target === null) {
    throw new TypeError(`${what} must be a function or a fromModule() reference, got ${target === null ? "null" : typeof target}`);
  }
  let entry = fnEntries.get(target);
  if (entry !== undefined) return entry;
  // An arrow written inline is a new object at every call: the same source is the same function.
  const spec = toSpec(target, what);
  const key = spec.kind === "source" ? spec.source : `${spec.module}#${spec.name}`;
  entry = fnBySource.get(key);
  if (entry === undefined) fnBySource.set(key, entry = { id: ++fnCounter, spec });
  fnEntries.set(target, entry);
  return entry;
}

/** Settles a Future as cancelled (not as failed). */
export const CANCELLED: unique symbol = Symbol("polyproc.cancelled");

/**
 * `promise`, or a rejection with `onTimeout()` after `timeout` ms (undefined: no limit).
 * The work behind `promise` goes on either way.
 */
export function withTimeout<T>(promise: Promise<T>, timeout: number | undefined, onTimeout: () => Error): Promise<T> {
  if (timeout === undefined) return promise;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(onTimeout()), timeout)));
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Checks a timeout option: a non-negative number of milliseconds, or undefined. */
export function checkTimeout(timeout: unknown, what = "timeout"): number | undefined {
  if (timeout === undefined) return undefined;
  if (typeof timeout !== "number" || Number.isNaN(timeout) || timeout < 0) {
    throw new RangeError(`${what} must be a non-negative number of milliseconds, got ${String(timeout)}`);
  }
  return timeout;
}

export class Scheduler {
  readonly options: SchedulerOptions;
  #state: "running" | "closed" | "terminated" | "broken" = "running";
  #brokenBy: Error | undefined;
  #queue = new Deque<Task>();
  #queued = 0;
  #workers = new Set<Worker>();
  #completed = 0;
  #avgMs: number | undefined;
  #pumpScheduled = false;
  #allExited: Promise<void>;
  #resolveAllExited!: () => void;
  /** join() was called: the program waits for the workers, so none is unref'd from now on. */
  #joining = false;
  /** Operations begun while running (a map, an imap) that may still submit after close(), and what to tell them at close. */
  #open = new Set<() => void>();

  constructor(options: SchedulerOptions) {
    this.options = options;
    this.#allExited = new Promise((resolve) => (this.#resolveAllExited = resolve));
    packChecked(options.initargs, "initargs", options.method);
    const refusal = whyCannotStart();
    if (refusal !== undefined) throw new ProcessError(`Cannot start a pool: ${refusal}`);
    try {
      this.#replenish();
    } catch (err) {
      // Python's rule: if one worker cannot start, the ones already started are stopped.
      this.terminate(err as Error);
      throw err;
    }
  }

  get state(): "running" | "closed" | "terminated" | "broken" {
    return this.#state;
  }

  /** Cancels every task still waiting in the parent (Python's `cancel_futures`). */
  cancelQueued(): void {
    for (let task = this.#queue.shift(); task !== undefined; task = this.#queue.shift()) {
      if (task.state === QUEUED) task.finish(false, CANCELLED);
    }
    this.#queued = 0;
    this.#checkAllExited();
  }

  /**
   * Starts an operation that submits over time (a map of an async input, an imap):
   * until `end()` is called, it may submit after close() (pass `admitted`), and the
   * workers stay. `onClose` runs when the pool closes, so the operation can finish its input.
   */
  begin(onClose: () => void = () => {}): () => void {
    this.checkRunning("start");
    this.#open.add(onClose);
    return () => {
      if (!this.#open.delete(onClose)) return;
      this.#schedulePump();
      this.#checkAllExited();
    };
  }

  /** Throws unless new work is accepted. */
  checkRunning(what: string): void {
    if (this.#state === "running") return;
    if (this.#state === "broken") throw this.#brokenBy!;
    throw new ProcessError(`Cannot ${what}: the pool is ${this.#state === "closed" ? "closed" : "terminated"}`);
  }

  /**
   * Queues a task. `args` is the arguments (MODE_APPLY) or the chunk's items.
   *
   * @throws {TypeError} if `args` holds something that cannot be sent.
   */
  submit(fn: FnEntry, mode: number, args: unknown[], options: TaskOptions, hooks: TaskHooks, admitted = false): Task {
    if (!(admitted && this.#state === "closed")) this.checkRunning("submit a task");
    const [v, how] = toWire(args, mode === MODE_APPLY ? "args" : "items", this.options.method);
    const task = new Task(++taskCounter, fn, mode, v, how, options.timeout, hooks);
    const signal = options.signal;
    if (signal?.aborted) {
      task.finish(false, signal.reason);
      return task;
    }
    if (signal !== undefined) task.listen(signal, () => this.#abort(task, signal.reason));
    this.#queue.push(task);
    this.#queued++;
    this.#schedulePump();
    return task;
  }

  /** Drops a task still waiting in the parent; false if a worker already has it. */
  cancel(task: Task, reason: unknown): boolean {
    if (task.state !== QUEUED) return false;
    this.#queued--;
    task.finish(false, reason);
    return true;
  }

  #abort(task: Task, reason: unknown): void {
    if (task.state === QUEUED) {
      this.cancel(task, reason);
      return;
    }
    if (task.state !== SENT) return;
    const w = task.worker!;
    task.finish(false, reason);
    if (w.inflight.peek() === task) this.#stop(w, task);
    else w.popen.handle.send({ k: "c", ids: [task.id] });
  }

  #stop(w: Worker, task: Task): void {
    w.stoppedFor = task;
    w.popen.kill();
  }

  stats(): PoolStats {
    let idle = 0;
    for (const w of this.#workers) if (w.inflight.length === 0 && !w.retiring) idle++;
    return { workers: this.#workers.size, idle, queued: this.#queued, completed: this.#completed };
  }

  /** No new work; the workers end once the queue is done. */
  close(): void {
    if (this.#state !== "running") return;
    this.#state = "closed";
    for (const onClose of this.#open) onClose();
    this.#schedulePump();
  }

  /** Fails every pending task with `error` and stops every worker now. */
  terminate(error: Error): void {
    if (this.#state === "terminated") return;
    if (this.#state !== "broken") this.#state = "terminated";
    this.#failAll(error);
    for (const w of this.#workers) w.popen.terminate();
    this.#checkAllExited();
  }

  /** Resolves once every worker has ended (after close() or terminate()). */
  join(): Promise<void> {
    // Idle workers are unref'd; someone waiting for them to end must keep the program alive.
    this.#joining = true;
    for (const w of this.#workers) w.popen.handle.ref();
    this.#checkAllExited();
    return this.#allExited;
  }

  #failAll(error: Error): void {
    for (let task = this.#queue.shift(); task !== undefined; task = this.#queue.shift()) task.finish(false, error);
    this.#queued = 0;
    for (const w of this.#workers) {
      for (const task of w.inflight) task.finish(false, error);
    }
  }

  #break(error: Error): void {
    if (this.#state === "broken" || this.#state === "terminated") return;
    this.#brokenBy = error;
    this.#state = "broken";
    this.terminate(error);
  }

  #checkAllExited(): void {
    const drained = (this.#queued === 0 && this.#open.size === 0) || this.#state === "terminated" || this.#state === "broken";
    if (this.#state !== "running" && this.#workers.size === 0 && drained) this.#resolveAllExited();
  }

  // A Pool keeps `processes` workers that take work; once closed, it keeps one while work is queued.
  // (The executor starts workers in the pump, as tasks need them.)
  #replenish(): void {
    if (this.options.lazy) return;
    let taking = 0;
    for (const w of this.#workers) if (!w.retiring && w.stoppedFor === undefined) taking++;
    if (this.#state === "running") {
      for (; taking < this.options.processes; taking++) this.#spawn();
    } else if (this.#state === "closed" && this.#queued > 0 && taking === 0) {
      this.#spawn();
    }
  }

  #spawn(): Worker {
    const name = `${this.options.prefix}-${++workerCounter}`;
    const args = packChecked([this.options.initializer ?? null, this.options.initargs], "initargs", this.options.method);
    const popen = launch(this.options.method, { target: SERVE, args, name, daemon: true });
    const w: Worker = {
      name,
      popen,
      inflight: new Deque(),
      known: new Set(),
      sent: 0,
      retiring: false,
      releasing: false,
      exclusive: false,
      stoppedFor: undefined,
      out: [],
      outTasks: [],
      outFns: [],
    };
    // An idle pool does not keep the program alive (Python's daemon pool workers).
    if (!this.#joining) popen.handle.unref();
    popen.handle.onMessage((m) => this.#receive(w, m as FromWorker));
    void popen.exited.then((code) => this.#exited(w, code));
    this.#workers.add(w);
    return w;
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  /** How many tasks a worker holds at once, by the average task time so far. */
  depth(): number {
    const avg = this.#avgMs;
    if (avg === undefined) return 2;
    if (avg > SLOW_TASK_MS) return 1;
    return Math.min(MAX_DEPTH, Math.max(2, Math.ceil(DEPTH_BUDGET_MS / Math.max(avg, 1e-4))));
  }

  #pump(): void {
    const { lazy, processes, maxTasksPerChild } = this.options;
    if (this.#state === "terminated" || this.#state === "broken") return;
    let active: Worker[] = [];
    let held = 0;
    for (const w of this.#workers) {
      if (!w.retiring && w.stoppedFor === undefined) active.push(w);
      held += w.inflight.length;
    }
    if (lazy) {
      let idle = active.filter((w) => w.inflight.length === 0).length;
      try {
        while (this.#queued > idle && active.length < processes) {
          active.push(this.#spawn());
          idle++;
        }
      } catch (err) {
        this.#break(err as Error);
        return;
      }
    }
    if (this.#queued > 0 && active.length > 0) {
      // Idle workers first: a task given to a busy worker waits behind whatever it is running.
      active.sort((a, b) => a.inflight.length - b.inflight.length);
      const share = Math.max(1, Math.ceil((this.#queued + held) / active.length));
      const per = Math.min(this.depth(), share);
      for (const w of active) {
        this.#fill(w, per);
        if (this.#queued === 0) break;
      }
      for (const w of active) this.#flush(w);
      if (maxTasksPerChild !== undefined) {
        for (const w of active) if (w.sent >= maxTasksPerChild) this.#retire(w);
      }
    }
    if (this.#queued === 0) this.#steal(active);
    if (this.#state === "closed" && this.#queued === 0 && this.#open.size === 0) {
      for (const w of this.#workers) if (!w.retiring) this.#retire(w);
    }
  }

  // With nothing queued, an idle worker takes the back half of the tasks another holds
  // unstarted. Else a task could wait behind a long one while a worker sits idle: a
  // consumer blocked on a queue and the producer that would feed it, held behind it.
  #steal(active: Worker[]): void {
    for (const idle of active) {
      if (idle.inflight.length > 0) continue;
      let victim: Worker | undefined, most = 1;
      for (const w of this.#workers) {
        if (!w.releasing && w.stoppedFor === undefined && w.inflight.length > most) [victim, most] = [w, w.inflight.length];
      }
      if (victim === undefined) return;
      victim.releasing = true;
      const ids = [...victim.inflight].slice(Math.ceil(most / 2)).map((t) => t.id);
      victim.popen.handle.send({ k: "c", ids });
    }
  }

  // The worker gave back tasks it had not started: aborted ones are forgotten, the others go first in line.
  #released(w: Worker, ids: number[]): void {
    w.releasing = false;
    const wanted = new Set(ids);
    const back = w.inflight.removeWhere((t) => wanted.has(t.id));
    w.sent -= back.length;
    for (let i = back.length - 1; i >= 0; i--) {
      if (back[i].state === DONE) continue;
      this.#requeue(back[i]);
    }
    if (w.inflight.length === 0) this.#idle(w);
    this.#pump();
  }

  #requeue(task: Task): void {
    task.state = QUEUED;
    task.worker = undefined;
    this.#queue.unshift(task);
    this.#queued++;
  }

  #idle(w: Worker): void {
    w.exclusive = false;
    if (!this.#joining) w.popen.handle.unref();
    if (w.retiring) w.popen.handle.send({ k: "x" });
  }

  #fill(w: Worker, per: number): void {
    const limit = this.options.maxTasksPerChild ?? Infinity;
    while (this.#queued > 0 && w.inflight.length < per && !w.exclusive && w.sent < limit) {
      const task = this.#queue.peek()!;
      if (task.state !== QUEUED) {
        this.#queue.shift(); // cancelled while waiting
        continue;
      }
      // A timed task's clock starts when it is sent, so it goes only to a worker with nothing else to do.
      if (task.timeout !== undefined && w.inflight.length > 0) return;
      this.#queue.shift();
      this.#queued--;
      this.#assign(w, task);
      if (task.timeout !== undefined) {
        w.exclusive = true;
        task.timer = setTimeout(() => this.#expire(task), task.timeout);
      }
    }
  }

  #assign(w: Worker, task: Task): void {
    task.state = SENT;
    task.worker = w;
    if (w.inflight.length === 0) w.popen.handle.ref();
    w.inflight.push(task);
    w.sent++;
    const fn = task.fn;
    if (!w.known.has(fn.id)) {
      w.known.add(fn.id);
      w.outFns.push([fn.id, fn.spec]);
    }
    w.out.push(task.id, fn.id, task.mode, task.v, task.how);
    w.outTasks.push(task);
    task.hooks.dispatched?.();
  }

  #flush(w: Worker): void {
    if (w.out.length === 0) return;
    const batch: TaskBatch = { k: "t", b: w.out };
    if (w.outFns.length > 0) batch.f = w.outFns;
    const tasks = w.outTasks;
    w.out = [];
    w.outTasks = [];
    w.outFns = [];
    try {
      w.popen.handle.send(batch);
    } catch {
      this.#sendOneByOne(w, batch, tasks);
    }
  }

  // Something in the batch cannot be copied: send the tasks singly and fail only
  // those that cannot go, with the reason.
  #sendOneByOne(w: Worker, batch: TaskBatch, tasks: Task[]): void {
    if (batch.f !== undefined) w.popen.handle.send({ k: "t", f: batch.f, b: [] } satisfies TaskBatch);
    const failed = new Set<Task>();
    for (let i = 0; i < tasks.length; i++) {
      try {
        w.popen.handle.send({ k: "t", b: batch.b.slice(i * 5, i * 5 + 5) } satisfies TaskBatch);
      } catch (err) {
        failed.add(tasks[i]);
        tasks[i].finish(false, new TypeError(`Cannot copy the task's arguments to the worker: ${(err as Error).message}`));
      }
    }
    const kept = [...w.inflight].filter((t) => !failed.has(t));
    w.inflight.clear();
    for (const t of kept) w.inflight.push(t);
    if (kept.length === 0) this.#idle(w);
  }

  #receive(w: Worker, message: FromWorker): void {
    if (message.k === "i") {
      const cause = unpack({ v: message.v, t: message.t });
      this.#break(new BrokenProcessPoolError(`The pool's initializer failed in ${w.name}: ${(cause as Error)?.message ?? String(cause)}`, { cause }));
      return;
    }
    if (message.k === "g") this.#released(w, message.ids);
    else this.#results(w, message);
  }

  #results(w: Worker, message: ResultBatch): void {
    const b = message.b;
    const n = b.length / 4;
    if (n > 0) {
      const perTask = message.ms / n;
      this.#avgMs = this.#avgMs === undefined ? perTask : this.#avgMs * 0.7 + perTask * 0.3;
    }
    for (let i = 0; i < b.length; i += 4) {
      const id = b[i] as number;
      // The worker answers in order. A message that trails its worker's exit (whose
      // tasks were already failed or requeued) matches nothing and is dropped.
      if (w.inflight.peek()?.id !== id) continue;
      const task = w.inflight.shift()!;
      const status = b[i + 1] as number;
      this.#completed++;
      if (task.state === DONE) continue;
      let value: unknown;
      try {
        value = fromWire(b[i + 2], b[i + 3] as number);
      } catch (err) {
        task.finish(false, err);
        continue;
      }
      task.finish(status !== STATUS_ERROR, value);
    }
    this.#pump();
    if (w.inflight.length === 0) this.#idle(w);
  }

  #retire(w: Worker): void {
    if (w.retiring) return;
    w.retiring = true;
    // The replacement starts now: a worker at its task limit never stalls the queue (gh-115634).
    this.#replenish();
    if (w.inflight.length === 0) w.popen.handle.send({ k: "x" });
    if (this.#state === "running") this.#schedulePump();
  }

  #expire(task: Task): void {
    const w = task.worker!;
    task.finish(false, new TimeoutError(`The task ran longer than its timeout of ${task.timeout} ms; its worker ${w.name} was stopped`));
    this.#stop(w, task);
  }

  #exited(w: Worker, code: number): void {
    this.#workers.delete(w);
    const running = w.inflight.shift();
    const rest = [...w.inflight];
    w.inflight.clear();
    const abrupt = w.stoppedFor === undefined && !(w.retiring && running === undefined);
    if (this.#state === "running" || this.#state === "closed") {
      if (abrupt && this.options.breakOnDeath) {
        const error = new BrokenProcessPoolError(
          `A process in the process pool was terminated abruptly while the future was running or pending ` +
            `(${w.name} exited with code ${code})`,
        );
        // This worker's tasks are no longer in the pool's sight: they fail here, the others in #break.
        for (const task of [running, ...rest]) task?.finish(false, error);
        this.#break(error);
      } else {
        running?.finish(false, new ProcessError(`Pool worker ${w.name} died (exit code ${code}) while running this task`));
        // The tasks it held but had not started go back first in line.
        for (let i = rest.length - 1; i >= 0; i--) {
          if (rest[i].state !== DONE) this.#requeue(rest[i]); // unless aborted while it waited there
        }
        try {
          this.#replenish();
        } catch (err) {
          this.#break(err as Error);
        }
        this.#schedulePump();
      }
    }
    this.#checkAllExited();
  }
}
