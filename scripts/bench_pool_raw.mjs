// The raw pool baseline for scripts/bench_pool.ts, in plain JavaScript so that it runs on every runtime
// without a loader (node, deno, bun; on node with `execArgv: []`, as polyproc's own workers).
//
// Imported by the parent, it exports RawPool: `size` node:worker_threads Workers (what polyproc's "worker"
// children are on every runtime) running this same file. Every task is posted at once (pipelined),
// round-robin over the workers; one Promise per task, settled through a Map keyed by task id. This is the
// "raw pool pipelined" of research/anchors-bench.md, the floor a pool can reach with one message per task.
//
// Started as a worker (workerData.rawPool), it answers every [id, fn, arg] with [id, fn(arg)], fn 0 = sq,
// 1 = cpu: the same two functions as scripts/bench_pool_targets.ts, copied so that no .ts is loaded.
import { parentPort, Worker, workerData } from "node:worker_threads";

export function sq(x) {
  return x * x;
}

export function cpu(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += i * i;
  return s;
}

const FNS = [sq, cpu];

if (parentPort && workerData?.rawPool) {
  const port = parentPort;
  const onMessage = (m) => {
    if (m === null) port.off("message", onMessage); // nothing else keeps the worker alive: it exits
    else port.postMessage([m[0], FNS[m[1]](m[2])]);
  };
  port.on("message", onMessage);
}

export class RawPool {
  #workers = [];
  #pending = new Map(); // id -> resolve
  #next = 0;
  #exits = [];

  constructor(size) {
    const g = globalThis;
    // On node, no inherited `--import tsx`: the workers run plain JS, as polyproc's do.
    const options = g.Deno === undefined && g.Bun === undefined ? { execArgv: [] } : {};
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL(import.meta.url), { ...options, workerData: { rawPool: true } });
      w.on("message", (m) => {
        const resolve = this.#pending.get(m[0]);
        this.#pending.delete(m[0]);
        resolve(m[1]);
      });
      this.#exits.push(new Promise((resolve, reject) => {
        w.on("error", reject);
        w.on("exit", resolve);
      }));
      this.#workers.push(w);
    }
  }

  /** Runs FNS[fn](arg) on the next worker in turn; resolves with its result. */
  run(fn, arg) {
    const id = this.#next++;
    const w = this.#workers[id % this.#workers.length];
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      w.postMessage([id, fn, arg]);
    });
  }

  /** Ends the workers once they have answered everything; resolves when they have exited. */
  async close() {
    for (const w of this.#workers) w.postMessage(null);
    await Promise.all(this.#exits);
  }
}
