/**
 * Queue throughput and pipe round-trip latency: polyproc's `Queue` and `pipe()` under
 * "worker" and "process", side by side with the raw primitive each start method maps to,
 * on the runtime this runs on. Runs under all three:
 *
 *   node --import tsx scripts/bench_queue.ts
 *   deno run --allow-read --allow-run --allow-env scripts/bench_queue.ts
 *   bun scripts/bench_queue.ts
 *   node bench_queue.js        (transpiled to plain JS with polyproc's sources: see scripts/bench.mjs)
 *
 * Options: --rounds=3 --warmup=1 --small=200000 --big=20000 --size=10240 --trips=10000
 *          --trip-warmup=1000 --sample-timeout=30 (s) --only=id,id
 *          (--reps is accepted and ignored: one sample per round)
 *
 * Metrics (the Python anchors are in scripts/bench_python.py, same method):
 * - q_small: one producer child puts `small` ints (0, 1, ...) with `await q.put(i)`; the parent
 *   takes them with `await q.get()`. items/s = (small - 1) / (time from the first item received
 *   to the last), so the child's start-up is excluded.
 * - q_bytes: the same with `big` puts of one `size`-byte Uint8Array (each put copies it); MiB/s.
 * - pipe_rt: the parent sends a small int and awaits the echo child's reply; after `trip-warmup`
 *   round trips, the mean of `trips` round trips, µs.
 * Each for polyproc (Queue / pipe with { context }) and for the raw primitive:
 * - "worker": a node:worker_threads Worker (what polyproc's worker children are on every runtime)
 *   running scripts/bench_queue_raw.mjs, posting to main with parentPort.postMessage (structured
 *   clone; not transferred). Ping-pong: an echo worker, the next post sent from the message handler.
 * - "process": node:child_process.fork of the same .mjs with serialization "advanced" (structured
 *   clone over the IPC channel), posting with process.send.
 * Every sample starts a fresh child (polyproc's and the raw one alike, so both run cold code) and
 * waits for its exit before the next sample. After `warmup` rounds with a tenth of the work (they
 * warm the parent), `rounds` rounds; in each, every metric runs once and the order rotates from
 * round to round. A cell is the median of the rounds.
 *
 * If the "process" start method's queues or pipes are not available (StartMethodError), those
 * metrics print a note and emit a result with `skipped` instead of figures; so does a metric that
 * fails or takes longer than --sample-timeout (then the exit code is 1). Progress goes to stderr.
 *
 * Output: one `##RESULT {json}` line per metric: id, col, label, unit, better ("higher"/"lower"),
 * median, min, max, n, round_values (one per round); then a human summary.
 *
 * @module
 */
import { type ChildProcess, fork } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Worker as NodeWorker } from "node:worker_threads";
import { fromModule, pipe, Process, Queue, StartMethodError } from "../mod.ts";

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
  small: 200_000,
  big: 20_000,
  size: 10_240,
  trips: 10_000,
  "trip-warmup": 1_000,
  "sample-timeout": 30,
  only: [] as string[],
};
for (const arg of process.argv.slice(2)) {
  const m = /^--(rounds|warmup|reps|small|big|size|trips|trip-warmup|sample-timeout|only)=(.*)$/.exec(arg);
  if (!m || (m[1] !== "only" && !/^\d+$/.test(m[2]))) {
    console.error(`bench_queue: bad argument ${arg}`);
    process.exit(2);
  }
  if (m[1] === "only") opts.only = m[2].split(",").filter(Boolean);
  else if (m[1] !== "reps") opts[m[1] as "rounds"] = Number(m[2]);
}

// This file's own extension (.ts, or .js when transpiled), as polyproc finds its bootstrap.
const EXT = /\.[cm]?[jt]s$/.exec(import.meta.url)?.[0] ?? ".ts";
const targets = fromModule<typeof import("./bench_queue_targets.ts")>(
  new URL(`./bench_queue_targets${EXT}`, import.meta.url),
);
const RAW_URL = new URL("./bench_queue_raw.mjs", import.meta.url);
const RAW_PATH = fileURLToPath(RAW_URL);
// The raw children run plain JS: on node, no inherited `--import tsx` (as polyproc's own workers).
const RAW_WORKER_OPTIONS = RUNTIME === "node" ? { execArgv: [] as string[] } : {};

const MIB = 1024 * 1024;
const now = () => performance.now();

class Skip extends Error {}

function checkExit(p: Process, what: string): void {
  if (p.exitCode !== 0) throw new Error(`${what}: polyproc child exited with ${p.exitCode}`);
}

// ---------------------------------------------------------------------------------------------- polyproc
function makeQueue<T>(method: Method): Queue<T> {
  try {
    return new Queue<T>(0, { context: method });
  } catch (err) {
    if (err instanceof StartMethodError) throw new Skip(`polyproc Queue, "${method}": ${err.message}`);
    throw err;
  }
}

async function polyprocQueue(method: Method, kind: "ints" | "bytes"): Promise<number> {
  const n = kind === "ints" ? opts.small : opts.big;
  const q = makeQueue<number | Uint8Array>(method);
  const p = kind === "ints"
    ? new Process({ target: targets.produceInts, args: [q, n], context: method })
    : new Process({ target: targets.produceBytes, args: [q, n, opts.size], context: method });
  p.start();
  await q.get();
  const t0 = now();
  let last: unknown;
  for (let i = 1; i < n; i++) last = await q.get();
  const dt = (now() - t0) / 1000;
  await p.join();
  checkExit(p, `Queue ${kind} ${method}`);
  q.close();
  if (kind === "ints" ? last !== n - 1 : (last as Uint8Array).length !== opts.size) {
    throw new Error(`Queue ${kind} ${method}: wrong last item`);
  }
  return kind === "ints" ? (n - 1) / dt : ((n - 1) * opts.size) / MIB / dt;
}

async function polyprocPipe(method: Method): Promise<number> {
  let a, b;
  try {
    [a, b] = pipe<number | null>({ context: method });
  } catch (err) {
    if (err instanceof StartMethodError) throw new Skip(`polyproc pipe, "${method}": ${err.message}`);
    throw err;
  }
  const p = new Process({ target: targets.echo, args: [b], context: method });
  p.start();
  b.close(); // the child holds its own copy
  const warm = opts["trip-warmup"];
  for (let i = 0; i < warm; i++) {
    a.send(i);
    if ((await a.recv()) !== i) throw new Error(`pipe ${method}: wrong echo`);
  }
  const t0 = now();
  for (let i = 0; i < opts.trips; i++) {
    a.send(i);
    await a.recv();
  }
  const us = ((now() - t0) * 1000) / opts.trips;
  a.send(null);
  await p.join();
  checkExit(p, `pipe ${method}`);
  a.close();
  return us;
}

// ---------------------------------------------------------------------------------------------- raw
interface Job {
  mode: "ints" | "bytes" | "echo";
  n: number;
  size?: number;
}

// A child running bench_queue_raw.mjs: a worker_threads Worker ("worker") or a fork ("process").
interface RawChild {
  post(m: unknown): void;
  onMessage(f: (m: unknown) => void): void;
  /** Ends the conversation (fork: disconnects; a worker ends by itself). */
  done(): void;
  exited: Promise<void>;
}

function rawChild(method: Method, job: Job): RawChild {
  if (method === "worker") {
    const w = new NodeWorker(RAW_URL, { ...RAW_WORKER_OPTIONS, workerData: job });
    return {
      post: (m) => w.postMessage(m),
      onMessage: (f) => w.on("message", f),
      done: () => {},
      exited: new Promise((resolve, reject) => {
        w.on("error", reject);
        w.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`raw worker exited with ${code}`))));
      }),
    };
  }
  const c: ChildProcess = fork(RAW_PATH, [JSON.stringify(job)], {
    serialization: "advanced",
    execArgv: [],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return {
    post: (m) => c.send(m as never),
    onMessage: (f) => c.on("message", f),
    done: () => c.connected && c.disconnect(),
    exited: new Promise((resolve, reject) => {
      c.on("error", reject);
      c.on(
        "exit",
        (code, signal) => code === 0 ? resolve() : reject(new Error(`raw fork child ended with ${code ?? signal}`)),
      );
    }),
  };
}

async function rawQueue(method: Method, kind: "ints" | "bytes"): Promise<number> {
  const n = kind === "ints" ? opts.small : opts.big;
  const child = rawChild(method, { mode: kind, n, size: opts.size });
  let count = 0, t0 = 0, dt = 0, last: unknown;
  const all = new Promise<void>((resolve) => {
    child.onMessage((m) => {
      if (count++ === 0) t0 = now();
      if (count === n) {
        dt = (now() - t0) / 1000;
        last = m;
        child.done();
        resolve();
      }
    });
  });
  await Promise.race([all, child.exited]);
  await child.exited;
  if (count !== n) throw new Error(`raw ${method} ${kind}: got ${count} of ${n} messages`);
  if (kind === "ints" ? last !== n - 1 : (last as Uint8Array).length !== opts.size) {
    throw new Error(`raw ${method} ${kind}: wrong last item`);
  }
  return kind === "ints" ? (n - 1) / dt : ((n - 1) * opts.size) / MIB / dt;
}

// Callback-driven ping-pong: the next message goes out from the handler of the reply.
async function rawPipe(method: Method): Promise<number> {
  const child = rawChild(method, { mode: "echo", n: 0 });
  const warm = opts["trip-warmup"], total = warm + opts.trips;
  let count = 0, t0 = 0, us = 0;
  const finished = new Promise<void>((resolve, reject) => {
    child.onMessage((m) => {
      if (m !== count) reject(new Error(`raw ${method} echo: wrong reply`));
      count++;
      if (count === warm) t0 = now();
      if (count === total) {
        us = ((now() - t0) * 1000) / opts.trips;
        child.post(null);
        resolve();
      } else child.post(count);
    });
  });
  child.post(0);
  await finished;
  await child.exited;
  return us;
}

// ---------------------------------------------------------------------------------------------- metrics
type Family = "q_small" | "q_bytes" | "pipe_rt";
const FAMILY: Record<Family, { unit: string; better: "higher" | "lower"; what: string }> = {
  q_small: { unit: "items/s", better: "higher", what: `Queue ${opts.small} small ints, child → parent` },
  q_bytes: { unit: "MiB/s", better: "higher", what: `Queue ${opts.big} × ${opts.size} B Uint8Array, child → parent` },
  pipe_rt: { unit: "µs", better: "lower", what: `pipe round trip with an echo child, mean of ${opts.trips}` },
};

interface Metric {
  id: string;
  family: Family;
  label: string;
  run: () => Promise<number>;
}

const RAW_NAME: Record<Method, string> = {
  worker: "worker_threads postMessage",
  process: 'child_process.fork IPC (serialization "advanced")',
};
const allMetrics: Metric[] = [];
for (const method of ["worker", "process"] as const) {
  allMetrics.push(
    {
      id: `q_small.polyproc.${method}`,
      family: "q_small",
      label: `polyproc ${FAMILY.q_small.what}, "${method}"`,
      run: () => polyprocQueue(method, "ints"),
    },
    {
      id: `q_small.raw.${method}`,
      family: "q_small",
      label: `raw ${RAW_NAME[method]}, ${opts.small} ints child → parent`,
      run: () => rawQueue(method, "ints"),
    },
    {
      id: `q_bytes.polyproc.${method}`,
      family: "q_bytes",
      label: `polyproc ${FAMILY.q_bytes.what}, "${method}"`,
      run: () => polyprocQueue(method, "bytes"),
    },
    {
      id: `q_bytes.raw.${method}`,
      family: "q_bytes",
      label: `raw ${RAW_NAME[method]}, ${opts.big} × ${opts.size} B child → parent`,
      run: () => rawQueue(method, "bytes"),
    },
    {
      id: `pipe_rt.polyproc.${method}`,
      family: "pipe_rt",
      label: `polyproc ${FAMILY.pipe_rt.what}, "${method}"`,
      run: () => polyprocPipe(method),
    },
    {
      id: `pipe_rt.raw.${method}`,
      family: "pipe_rt",
      label: `raw ${RAW_NAME[method]} ping-pong, mean of ${opts.trips}`,
      run: () => rawPipe(method),
    },
  );
}
const selected = opts.only.length ? allMetrics.filter((m) => opts.only.includes(m.id)) : allMetrics;

// ---------------------------------------------------------------------------------------------- harness
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const values = new Map<string, number[]>(selected.map((m) => [m.id, []]));
const skipped = new Map<string, string>();
const wallStart = now();

// Progress goes to stderr, which scripts/bench.mjs shows only when a run fails (or times out).
// A metric that is not available (Skip) or fails is left out from then on, with a note; the others go on.
let failures = 0;
// A rejection nobody handles (inside polyproc, say) would end the program: note it against the metric
// that was running, keep its figures, and end with exit code 1.
let current = "(none)";
process.on("unhandledRejection", (reason: unknown) => {
  failures++;
  console.log(`  note: unhandled rejection while ${current} ran: ${String(reason).split("\n")[0]}`);
  console.error(reason);
});
async function sample(m: Metric): Promise<number | undefined> {
  if (skipped.has(m.id)) return undefined;
  current = m.id;
  const t0 = now();
  process.stderr.write(`bench_queue: ${m.id} ...`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no result within ${opts["sample-timeout"]} s`)),
        opts["sample-timeout"] * 1000,
      );
    });
    const v = await Promise.race([m.run(), timeout]);
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
  } finally {
    clearTimeout(timer);
  }
}

// Warm-up (the parent's JIT; every sample's child is fresh anyway) with a tenth of the work.
const full = { small: opts.small, big: opts.big, trips: opts.trips };
for (let i = 0; i < opts.warmup; i++) {
  Object.assign(opts, { small: full.small / 10, big: full.big / 10, trips: full.trips / 10 });
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

// ---------------------------------------------------------------------------------------------- report
const r3 = (x: number) => Number(x.toPrecision(4));
const fmt = (x: number) =>
  x >= 1e6
    ? `${(x / 1e6).toFixed(2)}M`
    : x >= 1e4
    ? `${(x / 1e3).toFixed(0)}k`
    : x >= 100
    ? x.toFixed(0)
    : x.toFixed(1);
for (const m of selected) {
  const fam = FAMILY[m.family];
  const base = { id: m.id, runtime: RUNTIME, col: COL, label: m.label, unit: fam.unit, better: fam.better };
  const vs = values.get(m.id)!;
  if (skipped.has(m.id) || vs.length === 0) {
    console.log("##RESULT " + JSON.stringify({ ...base, skipped: skipped.get(m.id) ?? "no samples" }));
    continue;
  }
  console.log(
    "##RESULT " + JSON.stringify({
      ...base,
      median: r3(median(vs)),
      min: r3(Math.min(...vs)),
      max: r3(Math.max(...vs)),
      n: vs.length,
      round_values: vs.map(r3),
    }),
  );
}

const version = RUNTIME === "deno"
  ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`
  : RUNTIME === "bun"
  ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `node ${process.version}${TSX ? " (tsx)" : " (plain JS)"}`;
console.log(
  `\n${version}: ${opts.rounds} rounds after ${opts.warmup} warm-up, ${((now() - wallStart) / 1000).toFixed(1)} s`,
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
// Nothing should keep this program alive now; if something does (a child, a broker), say so and end.
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
