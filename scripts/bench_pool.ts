/**
 * Pool benchmarks (issue 4): polyproc's `Pool` and `ProcessPoolExecutor` with 2 workers under
 * "worker" and "process", side by side with a raw worker pool, on the runtime this runs on:
 *
 *   node --import tsx scripts/bench_pool.ts
 *   deno run --allow-read --allow-write --allow-net --allow-run --allow-env scripts/bench_pool.ts
 *   bun scripts/bench_pool.ts
 *   node bench_pool.js        (transpiled to plain JS with polyproc's sources: see scripts/bench.mjs)
 *
 * Options: --rounds=3 --warmup=1 --tasks=100000 --trips=2000 --trip-warmup=500 --cpu-tasks=40
 *          --cpu-ms=10 --sample-timeout=60 (s) --only=id,id   (--reps is accepted and ignored)
 *
 * Metrics (the anchors: scripts/bench_pool_piscina.mjs for piscina, scripts/bench_python.py for
 * Python's Pool; same method):
 * - pool_map: `await pool.map(sq, xs)`, xs = 0..tasks-1, default chunksize; tasks/s.
 * - pool_submit: `tasks` tasks submitted one by one, then all awaited; tasks/s.
 *   polyproc: `pool.applyAsync(sq, [i])` then every `.get()`; futures: `ex.submit(sq, i)` then
 *   `Promise.all(futures)`; raw: every task posted at once, round-robin (scripts/bench_pool_raw.mjs).
 * - pool_rt: one task's round trip, `await pool.apply(sq, [1])` in a loop; after `trip-warmup`
 *   calls, the mean of `trips`, µs. raw: `await raw.run(sq, 1)`.
 * - pool_cpu: speedup of `cpu-tasks` calls of cpu(n), n calibrated in the parent for ~`cpu-ms` ms,
 *   run by `pool.map` (raw: all posted at once) against the same calls serially in the parent;
 *   ABA, as in research/anchors-bench.md (this VM's CPU speed drifts): mean(serial before,
 *   serial after) / parallel.
 * Pools are created and warmed (5,000 tasks, every kind of call) before anything is timed, and
 * live until the end: their creation is never timed. Then `warmup` rounds with a tenth of the
 * work, then `rounds` rounds in which every metric runs once, the order rotating each round.
 * A cell is the median of the rounds.
 *
 * A metric whose pool cannot be made (StartMethodError) prints a note and
 * emits a result with `skipped`; so does one that fails or takes longer than --sample-timeout
 * (then the exit code is 1). Progress goes to stderr.
 *
 * Output: one `##RESULT {json}` line per metric, as scripts/bench_queue.ts: id, col, label, unit,
 * better ("higher"/"lower"), median, min, max, n, round_values; then a human summary.
 *
 * @module
 */
import process from "node:process";
import { type AsyncResult, fromModule, Pool, ProcessPoolExecutor, StartMethodError } from "../mod.ts";
import { cpu } from "./bench_pool_targets.ts";
import { RawPool } from "./bench_pool_raw.mjs";

type Runtime = "node" | "deno" | "bun";
type Method = "worker" | "process";
const g = globalThis as { Deno?: unknown; Bun?: unknown };
const RUNTIME: Runtime = g.Deno !== undefined ? "deno" : g.Bun !== undefined ? "bun" : "node";
const TSX = RUNTIME === "node" && process.execArgv.some((a) => a.includes("tsx"));
const COL = RUNTIME === "node" && !TSX ? "node-js" : RUNTIME;

// ---------------------------------------------------------------------------------------------- options
const opts = {
  rounds: 3,
  warmup: 1,
  tasks: 100_000,
  trips: 2_000,
  "trip-warmup": 500,
  "cpu-tasks": 40,
  "cpu-ms": 10,
  "sample-timeout": 60,
  only: [] as string[],
};
for (const arg of process.argv.slice(2)) {
  const m = /^--(rounds|warmup|reps|tasks|trips|trip-warmup|cpu-tasks|cpu-ms|sample-timeout|only)=(.*)$/.exec(arg);
  if (!m || (m[1] !== "only" && !/^\d+$/.test(m[2]))) {
    console.error(`bench_pool: bad argument ${arg}`);
    process.exit(2);
  }
  if (m[1] === "only") opts.only = m[2].split(",").filter(Boolean);
  else if (m[1] !== "reps") opts[m[1] as "rounds"] = Number(m[2]);
}

// This file's own extension (.ts, or .js when transpiled), as polyproc finds its bootstrap.
const EXT = /\.[cm]?[jt]s$/.exec(import.meta.url)?.[0] ?? ".ts";
const targets = fromModule<typeof import("./bench_pool_targets.ts")>(
  new URL(`./bench_pool_targets${EXT}`, import.meta.url),
);

const now = () => performance.now();
class Skip extends Error {}

// One Pool and one executor per start method, made on first use and kept to the end (their
// creation and warm-up are not timed). A failure to make one is remembered and skips its metrics.
const pools = new Map<Method, Pool | Error>();
const executors = new Map<Method, ProcessPoolExecutor | Error>();
let raw: RawPool | undefined;
let cpuN = 0; // cpu(cpuN) takes ~opts["cpu-ms"] ms in the parent
const taskMs: number[] = []; // the serial runs' ms per cpu task, as measured

function made<T>(cache: Map<Method, T | Error>, method: Method, what: string, make: () => T): T {
  if (!cache.has(method)) {
    try {
      cache.set(method, make());
    } catch (err) {
      cache.set(method, err instanceof Error ? err : new Error(String(err)));
    }
  }
  const v = cache.get(method)!;
  if (v instanceof Error) {
    if (v instanceof StartMethodError) throw new Skip(`${what}, "${method}": ${v.message}`);
    throw v;
  }
  return v;
}

function pool(method: Method): Pool {
  return made(pools, method, "polyproc Pool", () => new Pool({ processes: 2, context: method }));
}

function executor(method: Method): ProcessPoolExecutor {
  return made(
    executors,
    method,
    "polyproc ProcessPoolExecutor",
    () => new ProcessPoolExecutor({ maxWorkers: 2, context: method }),
  );
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`${what}: wrong result`);
}

// ---------------------------------------------------------------------------------------------- the work
async function poolMap(method: Method): Promise<number> {
  const p = pool(method), xs = range(opts.tasks);
  const t0 = now();
  const out = await p.map(targets.sq, xs);
  const dt = (now() - t0) / 1000;
  check(out.length === xs.length && out[xs.length - 1] === (xs.length - 1) ** 2, `pool.map ${method}`);
  return opts.tasks / dt;
}

async function poolApplyAsync(method: Method): Promise<number> {
  const p = pool(method), n = opts.tasks;
  const t0 = now();
  const rs: AsyncResult<number>[] = [];
  for (let i = 0; i < n; i++) rs.push(p.applyAsync(targets.sq, [i]));
  let sum = 0;
  for (const r of rs) sum += await r.get();
  const dt = (now() - t0) / 1000;
  check(sum === ((n - 1) * n * (2 * n - 1)) / 6, `applyAsync ${method}`);
  return n / dt;
}

async function executorSubmit(method: Method): Promise<number> {
  const ex = executor(method), n = opts.tasks;
  const t0 = now();
  const fs: PromiseLike<number>[] = [];
  for (let i = 0; i < n; i++) fs.push(ex.submit(targets.sq, i));
  const out = await Promise.all(fs); // futures are thenable
  const dt = (now() - t0) / 1000;
  check(out[n - 1] === (n - 1) ** 2, `submit ${method}`);
  return n / dt;
}

async function rawSubmit(): Promise<number> {
  raw ??= new RawPool(2);
  const n = opts.tasks;
  const t0 = now();
  const ps: Promise<number>[] = [];
  for (let i = 0; i < n; i++) ps.push(raw.run(0, i));
  const out = await Promise.all(ps);
  const dt = (now() - t0) / 1000;
  check(out[n - 1] === (n - 1) ** 2, "raw pool");
  return n / dt;
}

// Mean µs of `trips` sequential calls after `trip-warmup` untimed ones.
async function roundTrip(call: () => Promise<number>): Promise<number> {
  for (let i = 0; i < opts["trip-warmup"]; i++) check((await call()) === 1, "round trip");
  const t0 = now();
  for (let i = 0; i < opts.trips; i++) await call();
  return ((now() - t0) * 1000) / opts.trips;
}

// ABA: serial in the parent, then in parallel, then serial again.
async function speedup(parallel: (ns: number[]) => Promise<number[]>): Promise<number> {
  const ns = new Array<number>(opts["cpu-tasks"]).fill(cpuN);
  const serial = () => {
    const t0 = now();
    for (const n of ns) cpu(n);
    return now() - t0;
  };
  const a = serial();
  const t0 = now();
  const out = await parallel(ns);
  const b = now() - t0;
  const a2 = serial();
  taskMs.push((a + a2) / 2 / ns.length);
  check(out.length === ns.length && out[0] === cpu(cpuN), "cpu tasks");
  return (a + a2) / 2 / b;
}

// cpu(n) for ~cpu-ms ms in this runtime, after the JIT has seen it.
function calibrate(): number {
  let n = 100_000;
  for (let i = 0; i < 20; i++) cpu(n);
  for (;;) {
    const t0 = now();
    cpu(n);
    const ms = now() - t0;
    if (ms > 20) {
      const times = [];
      const guess = Math.round((n * opts["cpu-ms"]) / ms);
      for (let i = 0; i < 5; i++) {
        const t1 = now();
        cpu(guess);
        times.push(now() - t1);
      }
      return Math.round((guess * opts["cpu-ms"]) / median(times));
    }
    n *= 2;
  }
}

// Warms one pool: every kind of call it will be timed on, 5,000 tasks and more (not timed).
async function warm(what: "pool" | "executor" | "raw", method: Method): Promise<void> {
  const saved = { ...opts };
  Object.assign(opts, { tasks: 5_000, trips: 0, "trip-warmup": 500, "cpu-tasks": 4 });
  try {
    if (what === "pool") {
      await poolMap(method);
      await poolApplyAsync(method);
      await roundTrip(() => pool(method).apply(targets.sq, [1]));
      await pool(method).map(targets.cpu, [cpuN, cpuN, cpuN, cpuN]);
    } else if (what === "executor") {
      await executorSubmit(method);
    } else {
      await rawSubmit();
      await roundTrip(() => raw!.run(0, 1));
      await Promise.all([0, 1, 2, 3].map(() => raw!.run(1, cpuN)));
    }
  } finally {
    Object.assign(opts, saved);
  }
}

// ---------------------------------------------------------------------------------------------- metrics
type Family = "pool_map" | "pool_submit" | "pool_rt" | "pool_cpu";
const FAMILY: Record<Family, { unit: string; better: "higher" | "lower" }> = {
  pool_map: { unit: "tasks/s", better: "higher" },
  pool_submit: { unit: "tasks/s", better: "higher" },
  pool_rt: { unit: "µs", better: "lower" },
  pool_cpu: { unit: "×", better: "higher" },
};

interface Metric {
  id: string;
  family: Family;
  label: string;
  warm: () => Promise<void>;
  run: () => Promise<number>;
}

const allMetrics: Metric[] = [];
const warmRaw = () => warm("raw", "worker");
for (const method of ["worker", "process"] as const) {
  const warmPool = () => warm("pool", method);
  allMetrics.push(
    {
      id: `pool_map.polyproc.${method}`,
      family: "pool_map",
      label: `polyproc \`pool.map(sq, ${opts.tasks} ints)\`, default chunksize, "${method}"`,
      warm: warmPool,
      run: () => poolMap(method),
    },
    {
      id: `pool_submit.polyproc.${method}`,
      family: "pool_submit",
      label: `polyproc ${opts.tasks} × \`pool.applyAsync(sq, [i])\`, then every \`.get()\`, "${method}"`,
      warm: warmPool,
      run: () => poolApplyAsync(method),
    },
    {
      id: `pool_submit.futures.${method}`,
      family: "pool_submit",
      label: `polyproc ${opts.tasks} × \`ex.submit(sq, i)\` (ProcessPoolExecutor), then \`Promise.all\`, "${method}"`,
      warm: () => warm("executor", method),
      run: () => executorSubmit(method),
    },
    {
      id: `pool_rt.polyproc.${method}`,
      family: "pool_rt",
      label: `polyproc \`await pool.apply(sq, [1])\`, mean of ${opts.trips}, "${method}"`,
      warm: warmPool,
      run: () => roundTrip(() => pool(method).apply(targets.sq, [1])),
    },
    {
      id: `pool_cpu.polyproc.${method}`,
      family: "pool_cpu",
      label: `polyproc \`pool.map(cpu, ${opts["cpu-tasks"]} × ~${opts["cpu-ms"]} ms)\` vs serial, "${method}"`,
      warm: warmPool,
      run: () => speedup((ns) => pool(method).map(targets.cpu, ns)),
    },
  );
}
allMetrics.push(
  {
    id: "pool_submit.raw",
    family: "pool_submit",
    label: `raw worker pool, ${opts.tasks} tasks all posted at once, round-robin`,
    warm: warmRaw,
    run: rawSubmit,
  },
  {
    id: "pool_rt.raw",
    family: "pool_rt",
    label: `raw worker pool, \`await run(sq, 1)\` (postMessage round trip), mean of ${opts.trips}`,
    warm: warmRaw,
    run: () => roundTrip(() => raw!.run(0, 1)),
  },
  {
    id: "pool_cpu.raw",
    family: "pool_cpu",
    label: `raw worker pool, ${opts["cpu-tasks"]} × cpu(~${opts["cpu-ms"]} ms) posted at once vs serial`,
    warm: warmRaw,
    run: () => speedup((ns) => Promise.all(ns.map((n) => raw!.run(1, n)))),
  },
);
const selected = opts.only.length ? allMetrics.filter((m) => opts.only.includes(m.id)) : allMetrics;

// ---------------------------------------------------------------------------------------------- harness
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const values = new Map<string, number[]>(selected.map((m) => [m.id, []]));
const skipped = new Map<string, string>();
const warmed = new Set<() => Promise<void>>();
const wallStart = now();

// A metric that is not available (Skip) or fails is left out from then on, with a note; the others go on.
let failures = 0;
let current = "(none)";
process.on("unhandledRejection", (reason: unknown) => {
  failures++;
  console.log(`  note: unhandled rejection while ${current} ran: ${String(reason).split("\n")[0]}`);
  console.error(reason);
});

async function withTimeout<T>(p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no result within ${opts["sample-timeout"]} s`)),
      opts["sample-timeout"] * 1000,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function sample(m: Metric): Promise<number | undefined> {
  if (skipped.has(m.id)) return undefined;
  current = m.id;
  const t0 = now();
  process.stderr.write(`bench_pool: ${m.id} ...`);
  try {
    // The first use of a pool warms it (its creation and first tasks are not a sample).
    if (!warmed.has(m.warm)) {
      warmed.add(m.warm);
      await withTimeout(m.warm());
    }
    const v = await withTimeout(m.run());
    process.stderr.write(` ${v.toPrecision(4)} ${FAMILY[m.family].unit} (${((now() - t0) / 1000).toFixed(1)} s)\n`);
    return v;
  } catch (err) {
    const skip = err instanceof Skip;
    process.stderr.write(` ${skip ? "skipped" : "failed"}\n`);
    if (!skip) {
      failures++;
      console.error(err);
    }
    const note = skip ? (err as Error).message : `failed: ${String(err).split("\n")[0]}`;
    skipped.set(m.id, note);
    console.log(`  note: ${m.id} not measured: ${note}`);
    return undefined;
  }
}

cpuN = calibrate();
// Warm-up rounds with a tenth of the work (they also warm every pool first), then the timed rounds.
const full = { tasks: opts.tasks, trips: opts.trips, "cpu-tasks": opts["cpu-tasks"] };
for (let i = 0; i < opts.warmup; i++) {
  Object.assign(opts, { tasks: full.tasks / 10, trips: full.trips / 10, "cpu-tasks": full["cpu-tasks"] / 10 });
  for (const m of selected) await sample(m);
  Object.assign(opts, full);
}
for (let round = 0; round < opts.rounds; round++) {
  const order = selected.map((_, i) => selected[(i + round) % selected.length]);
  for (const m of order) {
    const v = await sample(m);
    if (v !== undefined) values.get(m.id)!.push(v);
  }
}

// Every pool ends here (not timed); a pool that will not end is a failure, not a hang.
try {
  await withTimeout(Promise.all([
    ...[...pools.values()].map(async (p) => {
      if (p instanceof Error) return;
      p.terminate();
      await p.join();
    }),
    ...[...executors.values()].map((ex) => ex instanceof Error ? undefined : ex.shutdown()),
    raw?.close(),
  ]));
} catch (err) {
  failures++;
  console.log(`  note: shutting the pools down failed: ${String(err).split("\n")[0]}`);
}

// ---------------------------------------------------------------------------------------------- report
const r4 = (x: number) => Number(x.toPrecision(4));
const fmt = (x: number) =>
  x >= 1e6
    ? `${(x / 1e6).toFixed(2)}M`
    : x >= 1e4
    ? `${(x / 1e3).toFixed(0)}k`
    : x >= 100
    ? x.toFixed(0)
    : x.toFixed(2);
for (const m of selected) {
  const fam = FAMILY[m.family];
  const base = { id: m.id, runtime: RUNTIME, col: COL, label: m.label, unit: fam.unit, better: fam.better };
  const extra = m.family === "pool_cpu" ? { cpu_n: cpuN } : {};
  const vs = values.get(m.id)!;
  if (skipped.has(m.id) || vs.length === 0) {
    console.log("##RESULT " + JSON.stringify({ ...base, skipped: skipped.get(m.id) ?? "no samples" }));
    continue;
  }
  console.log(
    "##RESULT " + JSON.stringify({
      ...base,
      ...extra,
      median: r4(median(vs)),
      min: r4(Math.min(...vs)),
      max: r4(Math.max(...vs)),
      n: vs.length,
      round_values: vs.map(r4),
    }),
  );
}

const version = RUNTIME === "deno"
  ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`
  : RUNTIME === "bun"
  ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `node ${process.version}${TSX ? " (tsx)" : " (plain JS)"}`;
console.log(
  `\n${version}: ${opts.rounds} rounds after ${opts.warmup} warm-up, ${((now() - wallStart) / 1000).toFixed(1)} s; ` +
    `cpu task n = ${cpuN}` +
    (taskMs.length ? `, ${median(taskMs).toFixed(1)} ms per task in the serial runs (median)` : ""),
);
const width = Math.max(...selected.map((m) => m.label.length));
for (const m of selected) {
  const vs = values.get(m.id)!;
  const unit = FAMILY[m.family].unit;
  const text = vs.length
    ? `${fmt(median(vs)).padStart(7)} ${unit}  (${fmt(Math.min(...vs))}–${fmt(Math.max(...vs))})`
    : `      — (${skipped.get(m.id) ?? "no samples"})`;
  console.log(`  ${m.label.padEnd(width)}  ${text}`);
}
// Nothing should keep this program alive now; if something does (a worker, a child), say so and end.
if (failures) process.exit(1);
const watchdog = setTimeout(() => {
  console.log(
    "  note: the program did not exit by itself within 3 s of finishing (something keeps the event loop alive)",
  );
  process.exit(1);
}, 3_000);
(watchdog as unknown as { unref?: () => void }).unref?.();
if (RUNTIME === "deno") {
  (globalThis as unknown as { Deno: { unrefTimer(id: unknown): void } }).Deno.unrefTimer(watchdog);
}
