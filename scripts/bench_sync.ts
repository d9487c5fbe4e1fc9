/**
 * Synchronization benchmarks (issue 5), side by side with Python's in `npm run bench`:
 * - sync_lock, "worker": uncontended `await lock.acquire(); v.value += 1; await lock.release()`
 *   on a Value's lock, in the main thread, µs per iteration (Python: `with v.get_lock(): v.value += 1`).
 * - sync_lock, "process": the same with a brokered Lock and a local counter: one acquire and one
 *   release round trip to the broker per iteration (its target is the Pipe round trip).
 * - sync_contend, "worker": 2 worker children each add 1 to one Value `n` times under its lock,
 *   started together by a Barrier; total increments per second (each child times itself).
 *
 *   node --import tsx scripts/bench_sync.ts [--rounds=3] [--warmup=1] [--n=200000] [--brokered=2000] [--contended=100000]
 *
 * Output: `##RESULT {json}` lines, printed by scripts/_bench_rounds.ts.
 */
import process from "node:process";
import { type Metric, printResults, takeRounds } from "./_bench_rounds.ts";
import { Barrier, fromModule, isMainModule, Lock, Process, SharedArray, Value } from "../mod.ts";

/** Child: waits for the other, then adds 1 to `v` `n` times under its lock; stores its ms in `times[slot]`. */
export async function contend(v: Value<"i">, barrier: Barrier, times: SharedArray<"d">, slot: number, n: number): Promise<void> {
  const lock = v.getLock();
  await barrier.wait(60_000);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await lock.acquire();
    v.value += 1;
    await lock.release();
  }
  times.set(slot, performance.now() - t0);
}

const EXT = /\.[cm]?[jt]s$/.exec(import.meta.url)?.[0] ?? ".ts";
const self = fromModule<typeof import("./bench_sync.ts")>(new URL(`./bench_sync${EXT}`, import.meta.url));

/** µs per uncontended acquire + increment + release of a shared-memory Value's lock. */
async function uncontended(n: number): Promise<number> {
  const v = new Value("i", 0, { context: "worker" });
  const lock = v.getLock();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await lock.acquire();
    v.value += 1;
    await lock.release();
  }
  const us = ((performance.now() - t0) * 1000) / n;
  if (v.value !== n) throw new Error("increments were lost");
  return us;
}

/** µs per acquire + increment + release of a brokered Lock (two round trips to the broker). */
async function brokered(n: number): Promise<number> {
  const lock = new Lock({ context: "process" });
  await lock.acquire(); // connects
  await lock.release();
  let count = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await lock.acquire();
    count += 1;
    await lock.release();
  }
  const us = ((performance.now() - t0) * 1000) / n;
  await lock.close();
  if (count !== n) throw new Error("miscounted");
  return us;
}

/** Increments per second of 2 worker children contending on one Value's lock. */
async function contended(n: number): Promise<number> {
  const v = new Value("i", 0, { context: "worker" });
  const barrier = new Barrier(2, { context: "worker" });
  const times = new SharedArray("d", 2, { context: "worker", lock: false });
  const children = [0, 1].map((slot) => new Process({ target: self.contend, args: [v, barrier, times, slot, n], context: "worker" }));
  for (const p of children) p.start();
  for (const p of children) await p.join(120_000);
  if (children.some((p) => p.exitCode !== 0) || v.value !== 2 * n) throw new Error("a contending child failed");
  return (2 * n) / Math.max(...times.toArray()) * 1000;
}

if (isMainModule(import.meta)) {
  const opts = { rounds: 3, warmup: 1, n: 200_000, brokered: 2_000, contended: 100_000 };
  for (const arg of process.argv.slice(2)) {
    const m = /^--(rounds|warmup|n|brokered|contended|reps)=(\d+)$/.exec(arg);
    if (!m) {
      console.error(`bench_sync: bad argument ${arg}`);
      process.exit(2);
    }
    if (m[1] !== "reps") opts[m[1] as keyof typeof opts] = Number(m[2]);
  }
  const metrics: Metric[] = [
    { id: "sync_lock.polyproc.worker", unit: "µs", better: "lower", run: () => uncontended(opts.n),
      label: `polyproc "worker": ${opts.n} × uncontended acquire, v.value += 1, release (Value's lock, main thread)` },
    { id: "sync_lock.polyproc.process", unit: "µs", better: "lower", run: () => brokered(opts.brokered),
      label: `polyproc "process": ${opts.brokered} × brokered Lock acquire + release (two round trips)` },
    { id: "sync_contend.polyproc.worker", unit: "increments/s", better: "higher", run: () => contended(opts.contended),
      label: `polyproc "worker": 2 children × ${opts.contended} increments of one Value under its lock` },
  ];
  for (let i = 0; i < opts.warmup; i++) {
    await uncontended(Math.ceil(opts.n / 10));
    await brokered(Math.ceil(opts.brokered / 10));
    await contended(Math.ceil(opts.contended / 10));
  }
  printResults(metrics, await takeRounds(metrics, opts.rounds));
}
