#!/usr/bin/env node
// Runs the benchmark programs (BENCHES below) under Node (+tsx), Deno, Bun and CPython, one run at a time,
// collects their `##RESULT {json}` lines and prints combined markdown tables: Process start+join with
// polyproc÷raw ratios, then queue throughput and pipe round trips (polyproc, raw primitive, Python mp, ratios
// and the targets of issue 3, marked ✓/✗), then the Pool (polyproc's Pool and ProcessPoolExecutor, a raw
// worker pool, piscina on node, Python's Pool, with the targets of issue 4). Without python3, the Python
// figures are "—" with a note.
//
//   npm run bench                                     every bench, every runtime
//   npm run bench -- --runtime=node,python            some runtimes (node|node-js|deno|bun|python)
//   options: --rounds=N --reps=N --warmup=N           passed to every program (defaults: the programs' own, 5/4/2)
//            --timeout=SECONDS                        per program run (default 120; its process group is killed)
//            --no-gate                                do not wait for a quiet machine before each run
//            --json=FILE                              also write every result (and load figures) as JSON
//            --only=WORD[,WORD]                       only the benches whose name contains a word ("pool", "queue")
//
// Method (research/anchors-bench.md): each program warms up and then runs interleaved rounds itself, so a
// ratio inside one runtime compares numbers taken side by side. Between programs, a quiet gate waits (up to
// GATE_MAX_S) for a 0.4 s window in which the machine is nearly idle. During each run the foreign load is
// recorded: busy cores from /proc/stat minus the CPU time of the run's own process tree (via /usr/bin/time),
// divided by wall time. A run with more than 0.5 foreign cores is repeated once (budget permitting) and the
// cleaner attempt is kept; cells whose run had > 0.25 foreign cores are flagged ⚠.
//
// The environment is cleaned as in the anchors: NODE_EXTRA_CA_CERTS (set by the sandbox; it makes every node
// start parse the CA bundle, ~+50 ms) and NODE_OPTIONS are unset, DENO_NO_UPDATE_CHECK=1. polyproc's children
// inherit the same environment as the raw baselines.
//
// "node-js" is node on plain JavaScript, as a user of the npm package runs it: mod.ts, src/ and the bench program
// are transpiled into a temp dir with the `typescript` devDependency (type stripping only; skipped with a note if
// it is missing), so that neither the program nor polyproc's children load tsx. "node" is `node --import tsx`.
//
// To add a benchmark: append to BENCHES (a program that prints ##RESULT lines with id, col, label, median_ms,
// min_ms, max_ms, n, round_medians_ms), and name its ids in ROWS / RATIOS; unknown ids still get a row.
// Rates and latencies in other units (scripts/bench_queue.ts) print id, col, label, unit, better, median, min,
// max, n, round_values, or `skipped` with a note instead of figures; they go to the table that QUEUE_ROWS
// describes: one row per runtime with polyproc's figure, the raw primitive's, Python's, the ratios and a target.
// Ids starting with "pool_" go to the Pool table instead (POOL_FAMILIES: rows by id, columns by runtime, the
// anchors piscina and Python in a column of their own, and target rows).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { buildJsTree, filesUnder } from "./_js_tree.mjs";
import { isExecutable, resolveBinary } from "./_runtimes.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const RUNTIMES = ["node", "node-js", "deno", "bun", "python"];
const GATE_MAX_S = 10;
const BUDGET_S = 270; // no repeat of a contaminated run would end past this

// ---------------------------------------------------------------------------------------------- what to run
// Each bench: a program per runtime. `args(ctx)` gives extra arguments (ctx.fixtures: a temp dir with empty.mjs
// and hello.mjs, so the programs need no write permission).
const BENCHES = [
  {
    name: "process start+join",
    runtimes: ["node", "node-js", "deno", "bun"],
    file: "scripts/bench_process.ts",
    jsExtra: ["scripts/bench_targets.ts"], // loaded by URL at run time, so transpiled for "node-js" too
    args: (ctx) => [`--fixtures=${ctx.fixtures}`],
  },
  {
    name: "queue and pipe",
    runtimes: ["node", "node-js", "deno", "bun"],
    file: "scripts/bench_queue.ts",
    jsExtra: ["scripts/bench_queue_targets.ts", "scripts/bench_queue_raw.mjs"],
    // The "process" start method's broker (queues, pipes) on Deno needs write and net (a Unix socket).
    denoFlags: ["--allow-read", "--allow-write", "--allow-net", "--allow-run", "--allow-env"],
    args: () => [],
  },
  {
    name: "pool",
    runtimes: ["node", "node-js", "deno", "bun"],
    file: "scripts/bench_pool.ts",
    jsExtra: ["scripts/bench_pool_targets.ts", "scripts/bench_pool_raw.mjs"],
    denoFlags: ["--allow-read", "--allow-write", "--allow-net", "--allow-run", "--allow-env"],
    args: () => [],
  },
  // piscina (an npm devDependency), node only, plain JS with no loader: `plainNode`.
  { name: "pool piscina", runtimes: ["node"], plainNode: true, file: "scripts/bench_pool_piscina.mjs", args: () => [] },
  // Python's Pool, in a run of its own (its own timeout and load figures).
  { name: "pool python", runtimes: ["python"], file: "scripts/bench_python.py", args: () => ["--only=pool"] },
  // mp.Queue / mp.Pipe (the anchors of "queue and pipe"), then Process start+join.
  { name: "python baseline", runtimes: ["python"], file: "scripts/bench_python.py", args: () => ["--only=queue,start"] },
  // Issue 6: run(["true"]) against the runtime's raw spawn, and Python's subprocess.run(["true"]).
  { name: "subprocess", runtimes: ["node", "node-js", "deno", "bun"], file: "scripts/bench_subprocess.ts", args: () => [] },
  { name: "subprocess python", runtimes: ["python"], file: "scripts/bench_python.py", args: () => ["--only=subprocess"] },
  // Issue 7: Manager().list().append and dict set/get round trips from one child, and Python's.
  {
    name: "manager",
    runtimes: ["node", "node-js", "deno", "bun"],
    file: "scripts/bench_manager.ts",
    denoFlags: ["--allow-read", "--allow-write", "--allow-net", "--allow-run", "--allow-env"],
    jsExtra: ["scripts/_bench_rounds.ts"],
    args: () => [],
  },
  { name: "manager python", runtimes: ["python"], file: "scripts/bench_python.py", args: () => ["--only=manager"] },
  // Issue 5: Lock acquire/release (uncontended, brokered, 2 workers contending) and Python's Value lock.
  {
    name: "sync",
    runtimes: ["node", "node-js", "deno", "bun"],
    file: "scripts/bench_sync.ts",
    denoFlags: ["--allow-read", "--allow-write", "--allow-net", "--allow-run", "--allow-env"],
    jsExtra: ["scripts/_bench_rounds.ts"],
    args: () => [],
  },
  { name: "sync python", runtimes: ["python"], file: "scripts/bench_python.py", args: () => ["--only=sync"] },
];

// Table columns: a result's `col` (JS programs use the runtime's name).
const COLUMNS = [
  { col: "python-spawn", head: "Python spawn" },
  { col: "python-forkserver", head: "Python forkserver" },
  { col: "python-fork", head: "Python fork" },
  { col: "node", head: "node (tsx)" },
  { col: "node-js", head: "node (plain JS)" },
  { col: "deno", head: "deno" },
  { col: "bun", head: "bun" },
  { col: "python", head: "Python" },
];

// Row labels and order, by result id; a section starts where `section` is set.
const ROWS = [
  { section: "Start method \"process\" (Python: multiprocessing with that start method)" },
  { id: "polyproc.process", label: "polyproc `Process(noop)` start+join, \"process\" [Py: `mp.Process(noop)`]" },
  { id: "raw.spawn", label: "raw `child_process.spawn(runtime, empty .mjs)` → exit [node: no flags; Py: `subprocess.run(python3 empty.py)` / `os.fork()`+waitpid]" },
  { id: "raw.spawn_ts", label: "raw spawn of the tiny .ts module → exit [node: `--import tsx`, as polyproc's child]" },
  { section: "Start method \"worker\"" },
  { id: "polyproc.worker", label: "polyproc `Process(noop)` start+join, \"worker\"" },
  { id: "raw.worker", label: "raw `node:worker_threads` `new Worker(empty .mjs)` → exit [node: `execArgv: []`]" },
  { id: "raw.worker_ts", label: "raw `Worker(tiny .ts module)` → exit [node: data: bootstrap doing tsx `register()`, as polyproc]" },
  { id: "info.worker_inherit", label: "(info) node: raw `Worker(empty .mjs)` with the inherited `--import tsx` → exit" },
  { id: "info.web_worker", label: "(info) web `Worker(module posting 'hi')` → first message" },
  { section: "subprocess: spawn + wait of `true`" },
  { id: "subprocess.run", label: "polyproc `await run([\"true\"])` [Py: `subprocess.run([\"true\"])`]" },
  { id: "subprocess.raw", label: "raw spawn: node `child_process.spawn`, deno `Deno.Command`, bun `Bun.spawn` → exit status" },
];

// Ratios of medians, num ÷ den, per column; `target` marks the goal (≤ target is met).
const RATIOS = [
  { num: "polyproc.process", den: "raw.spawn", label: "\"process\": polyproc ÷ raw spawn (bare) [Py: mp ÷ subprocess.run / os.fork]", target: 1.5 },
  { num: "polyproc.process", den: "raw.spawn_ts", label: "\"process\": polyproc ÷ raw spawn of the .ts module (node: with tsx)" },
  { num: "polyproc.worker", den: "raw.worker", label: "\"worker\": polyproc ÷ raw Worker (bare .mjs)", target: 1.5 },
  { num: "polyproc.worker", den: "raw.worker_ts", label: "\"worker\": polyproc ÷ raw Worker of the .ts module (node: tsx bootstrap)" },
  { num: "subprocess.run", den: "subprocess.raw", label: "subprocess: `run([\"true\"])` ÷ raw spawn", target: 1.2 },
  { num: "subprocess.run", den: "subprocess.run", denCol: "python", label: "subprocess: `run([\"true\"])` ÷ Python's `subprocess.run`", target: 1 },
];

// Queue and pipe table: per family and start method, polyproc's id, the raw primitive's id (same runtime) and
// the Python anchor's id (col "python"); `target` is checked against an absolute figure (`min`) or against
// Python's median times `factor` (higher-is-better units: ≥; lower-is-better: ≤).
const QUEUE_FAMILIES = {
  q_small: { short: "Queue small ints", title: "Queue throughput, 200,000 small ints, one producer child → the parent", unit: "items/s", better: "higher" },
  q_bytes: { short: "Queue 10 KiB items", title: "Queue throughput, 20,000 × 10 KiB Uint8Array (Py: bytes), one producer child → the parent", unit: "MiB/s", better: "higher" },
  pipe_rt: { short: "Pipe round trip", title: "Pipe round trip, parent → echo child → parent, small int, mean of 10,000 after warm-up", unit: "µs", better: "lower" },
  mgr_append: { short: "ListProxy.append", title: "Manager().list(): 10,000 × `await li.append(i)` from one child after 2,000 untimed (server under the same method)", unit: "appends/s", better: "higher", py: "Manager().list()", raw: "raw: 40-byte request and reply over the Unix socket a manager uses (`Deno.connect`, `Bun.connect`, `node:net`), child ↔ echo server" },
  sync_lock: { short: "Lock acquire+release", title: "Lock: acquire, increment, release, uncontended, in one thread (\"process\": a brokered Lock, two round trips)", unit: "µs", better: "lower", py: "`with v.get_lock(): v.value += 1`", noRaw: true },
  sync_contend: { short: "Lock, 2 contending", title: "Lock: 2 children each increment one Value under its lock", unit: "increments/s", better: "higher", py: "2 processes, Value lock", noRaw: true },
  mgr_many: { short: "ListProxy.append, 10 children", title: "Manager().list(): 10 children × 1,000 `await li.append(i)` at once, in total (no issue target: many clients)", unit: "appends/s", better: "higher", py: "Manager().list()", noRaw: true },
  mgr_dict: { short: "DictProxy set/get", title: "Manager().dict(): 5,000 × (`set`, `get`) from one child after 1,000 untimed, in round trips", unit: "round trips/s", better: "higher", py: "Manager().dict()", noRaw: true },
};
const RAW_ANCHOR = {
  worker: "raw: `node:worker_threads` Worker, `parentPort.postMessage`",
  process: "raw: `child_process.fork`, serialization \"advanced\", `process.send`",
};
const QUEUE_ROWS = [
  { family: "q_small", method: "worker", target: { min: 2_000_000, text: "≥ 2,000,000 items/s" } },
  { family: "q_small", method: "process", target: { factor: 1, text: "≥ Python" } },
  { family: "q_bytes", method: "worker", target: { factor: 1, text: "≥ Python" } },
  { family: "q_bytes", method: "process", target: { factor: 1, text: "≥ Python" } },
  { family: "pipe_rt", method: "worker", target: { factor: 1, text: "≤ Python" } },
  { family: "pipe_rt", method: "process", target: { factor: 1.5, text: "≤ 1.5× Python" } },
  { family: "sync_lock", method: "worker", target: { factor: 1, text: "≤ Python" } },
  // The brokered Lock's target is polyproc's own Pipe round trip on the same runtime (pipe_rt above).
  { family: "sync_lock", method: "process", target: { vs: "pipe_rt.polyproc.process", factor: 1.5, text: "≤ 1.5× Pipe round trip" } },
  { family: "sync_contend", method: "worker", target: { factor: 1, text: "≥ Python" } },
  { family: "mgr_append", method: "worker", target: { factor: 1, text: "≥ Python" } },
  { family: "mgr_append", method: "process", target: { factor: 1, text: "≥ Python" } },
  { family: "mgr_dict", method: "worker", target: { factor: 1, text: "≥ Python" } },
  { family: "mgr_dict", method: "process", target: { factor: 1, text: "≥ Python" } },
  // No issue sets a goal for many clients at once: shown for information.
  { family: "mgr_many", method: "worker", target: null },
  { family: "mgr_many", method: "process", target: null },
];

// Pool table (issue 4), one section per family: `rows` are result ids (JS ids: one cell per runtime; the
// anchors piscina and Python: col "piscina"/"python", shown in the anchor column). `targets` are checked per
// runtime column: `id` against `vs` times `factor` (higher is better: ≥; lower: ≤) or against `min`. Every
// "process" row is also checked as issue 4 asks: within 2× of the same runtime's "worker" figure, or better
// than Python's (`python`), and both ratios are shown.
const POOL_FAMILIES = [
  {
    family: "pool_map",
    title: "`pool.map(sq, 100,000 ints)`, trivial tasks (x*x), default chunksize",
    unit: "tasks/s",
    better: "higher",
    python: "pool_map.python",
    rows: [
      { id: "pool_map.polyproc.worker", label: "polyproc `Pool`, \"worker\"" },
      { id: "pool_map.polyproc.process", label: "polyproc `Pool`, \"process\"" },
      { id: "pool_map.python", label: "Python `Pool(2).map(sq, range(100000))`" },
    ],
    targets: [{ id: "pool_map.polyproc.worker", vs: "pool_map.python", factor: 1, text: "\"worker\" ≥ Python" }],
  },
  {
    family: "pool_submit",
    title: "100,000 trivial tasks submitted one by one, then all awaited",
    unit: "tasks/s",
    better: "higher",
    python: "pool_submit.python",
    rows: [
      { id: "pool_submit.polyproc.worker", label: "polyproc `pool.applyAsync(sq, [i])` × 100k, then every `.get()`, \"worker\"" },
      { id: "pool_submit.futures.worker", label: "polyproc `ex.submit(sq, i)` × 100k (ProcessPoolExecutor), `Promise.all`, \"worker\"" },
      { id: "pool_submit.polyproc.process", label: "polyproc `pool.applyAsync`, \"process\"" },
      { id: "pool_submit.futures.process", label: "polyproc `ex.submit`, \"process\"" },
      { id: "pool_submit.raw", label: "raw worker pool, pipelined: all posted at once, round-robin, a Promise per task" },
      { id: "pool_submit.piscina", label: "piscina `run(i)` × 100k, default options (1 task in flight per worker), `Promise.all`" },
      { id: "pool_submit.python", label: "Python `Pool(2).map(sq, range(100000), chunksize=1)`" },
      { id: "pool_submit.python_apply", label: "(info) Python `apply_async(sq, (i,))` × 20k, then every `.get()`" },
    ],
    targets: [
      { id: "pool_submit.polyproc.worker", vs: "pool_submit.piscina", factor: 4, text: "`applyAsync` \"worker\" ≥ 4× piscina" },
      { id: "pool_submit.polyproc.worker", vs: "pool_submit.python", factor: 2, text: "`applyAsync` \"worker\" ≥ 2× Python chunksize=1" },
      { id: "pool_submit.futures.worker", vs: "pool_submit.piscina", factor: 4, text: "`submit` \"worker\" ≥ 4× piscina" },
      { id: "pool_submit.futures.worker", vs: "pool_submit.python", factor: 2, text: "`submit` \"worker\" ≥ 2× Python chunksize=1" },
    ],
  },
  {
    family: "pool_rt",
    title: "one task's round trip, `await pool.apply(sq, [1])` in a loop, mean of 2,000 after 500",
    unit: "µs",
    better: "lower",
    python: "pool_rt.python",
    rows: [
      { id: "pool_rt.polyproc.worker", label: "polyproc `Pool`, \"worker\"" },
      { id: "pool_rt.polyproc.process", label: "polyproc `Pool`, \"process\"" },
      { id: "pool_rt.raw", label: "raw worker pool, `await run(sq, 1)` (postMessage round trip)" },
      { id: "pool_rt.piscina", label: "piscina `await run(1)`" },
      { id: "pool_rt.python", label: "Python `apply_async(sq, (1,)).get()`" },
    ],
    targets: [{ id: "pool_rt.polyproc.worker", vs: "pool_rt.piscina", factor: 1, text: "\"worker\" ≤ piscina" }],
  },
  {
    family: "pool_cpu",
    title: "CPU speedup, 2 workers: 40 × cpu(n) ≈ 10 ms each (n calibrated per program), parallel vs serial in the parent, ABA",
    unit: "×",
    better: "higher",
    python: "pool_cpu.python",
    rows: [
      { id: "pool_cpu.polyproc.worker", label: "polyproc `pool.map(cpu, ns)`, \"worker\"" },
      { id: "pool_cpu.polyproc.process", label: "polyproc `pool.map(cpu, ns)`, \"process\"" },
      { id: "pool_cpu.raw", label: "raw worker pool, all posted at once" },
      { id: "pool_cpu.piscina", label: "piscina `run({ n })` × 40, `Promise.all`" },
      { id: "pool_cpu.python", label: "Python `Pool(2).map(cpu, ns)` (cpu = sum(i*i for i in range(n)))" },
    ],
    targets: [{ id: "pool_cpu.polyproc.worker", min: 1.85, text: "\"worker\" ≥ 1.85×" }],
  },
];
const POOL_ANCHOR_COLS = ["piscina", "python"];

// ---------------------------------------------------------------------------------------------- arguments
function usage(msg) {
  if (msg) console.error(`bench.mjs: ${msg}`);
  console.error("usage: node scripts/bench.mjs [--runtime=node|node-js|deno|bun|python]... [--rounds=N] [--reps=N] " +
    "[--warmup=N] [--timeout=S] [--no-gate] [--json=FILE] [--only=WORD,...]");
  process.exit(2);
}

const opts = { runtimes: [], pass: [], timeoutS: 120, gate: true, json: "", only: [] };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i] ?? usage(`${a} needs a value`));
    const flag = a.replace(/=.*/, "");
    if (a === "-h" || a === "--help") usage();
    else if (flag === "--runtime") {
      for (const r of value().split(",").filter(Boolean)) {
        if (!RUNTIMES.includes(r)) usage(`unknown runtime '${r}' (expected ${RUNTIMES.join("|")})`);
        if (!opts.runtimes.includes(r)) opts.runtimes.push(r);
      }
    } else if (["--rounds", "--reps", "--warmup"].includes(flag)) {
      const v = value();
      if (!/^\d+$/.test(v)) usage(`${flag} needs a whole number`);
      opts.pass.push(`${flag}=${v}`);
    } else if (flag === "--timeout") {
      opts.timeoutS = Number(value());
      if (!(opts.timeoutS > 0)) usage("--timeout needs a positive number of seconds");
    } else if (a === "--no-gate") opts.gate = false;
    else if (flag === "--only") opts.only.push(...value().split(",").filter(Boolean));
    else if (flag === "--json") opts.json = path.resolve(process.env.INIT_CWD || process.cwd(), value());
    else usage(`unknown argument ${a}`);
  }
  if (opts.runtimes.length === 0) opts.runtimes = [...RUNTIMES];
  opts.runtimes.sort((a, b) => RUNTIMES.indexOf(a) - RUNTIMES.indexOf(b));
}


// The real interpreter, not a pyenv shim (a shim costs ~0.3 s per start, and mp's "spawn" uses sys.executable).
// null when there is no python3.
let python;
function resolvePython() {
  if (python !== undefined) return python;
  const r = spawnSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" });
  return (python = r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null);
}

// Plain-JS copy of polyproc and the bench programs, for "node-js": same layout, .ts → .js.
let jsTree = null;
async function plainJsTree(dir) {
  jsTree ??= await buildJsTree(ROOT, dir, [
    "mod.ts",
    ...filesUnder(ROOT, "src").filter((f) => f.endsWith(".ts")),
    ...BENCHES.flatMap((b) => [b.file, ...(b.jsExtra ?? [])]),
  ]);
  return jsTree;
}

const DENO_FLAGS = ["--allow-read", "--allow-run", "--allow-env"];
function commandFor(rt, file, denoFlags = DENO_FLAGS, plainNode = false) {
  if (plainNode) return [process.execPath, file];
  switch (rt) {
    case "node":
      return [process.execPath, "--import", "tsx", file];
    case "node-js":
      return [process.execPath, path.join(jsTree, file.replace(/\.ts$/, ".js"))];
    case "deno":
      return [resolveBinary(ROOT, "deno"), "run", ...denoFlags, file];
    case "bun":
      return [resolveBinary(ROOT, "bun"), file];
    case "python":
      return [resolvePython(), file];
  }
}

// ---------------------------------------------------------------------------------------------- load accounting
const HZ = 100; // USER_HZ: /proc/stat counts in 1/100 s on Linux
const TIME = isExecutable("/usr/bin/time") ? "/usr/bin/time" : null;

function cpuTimes() {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal = 0] = f;
    return { busy: (user + nice + system + irq + softirq) / HZ, steal: steal / HZ, at: performance.now() / 1000 };
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Waits up to GATE_MAX_S for a 0.4 s window with < 0.15 busy cores; returns the seconds waited (or null).
async function quietGate() {
  if (!opts.gate || !cpuTimes()) return 0;
  const t0 = performance.now();
  while (performance.now() - t0 < GATE_MAX_S * 1000) {
    const a = cpuTimes();
    await sleep(400);
    const b = cpuTimes();
    if ((b.busy - a.busy) / (b.at - a.at) < 0.15) return (performance.now() - t0) / 1000;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------- running
const active = new Set();
function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch { /* gone */ }
}
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    for (const pid of active) killGroup(pid, "SIGKILL");
    process.exit(sig === "SIGINT" ? 130 : 143);
  });
}

function childEnv() {
  const env = { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1" };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.NODE_OPTIONS;
  delete env.FORCE_COLOR;
  return env;
}

// Runs one program; resolves { code, out, err, wall, foreign, steal }.
function runOnce(argv, rusageFile) {
  return new Promise((resolve) => {
    const full = TIME ? [TIME, "-f", "%U %S", "-o", rusageFile, ...argv] : argv;
    const before = cpuTimes();
    const t0 = performance.now();
    const child = spawn(full[0], full.slice(1), { cwd: ROOT, env: childEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
    active.add(child.pid);
    let out = "", err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => {
      err += `\nbench.mjs: timed out after ${opts.timeoutS} s, killed\n`;
      killGroup(child.pid, "SIGKILL");
    }, opts.timeoutS * 1000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      killGroup(child.pid, "SIGKILL"); // stragglers (e.g. an orphaned forkserver)
      active.delete(child.pid);
      const wall = (performance.now() - t0) / 1000;
      const after = cpuTimes();
      let foreign = null, steal = null;
      if (before && after) {
        steal = (after.steal - before.steal) / wall;
        let own = null;
        try {
          const [u, s] = readFileSync(rusageFile, "utf8").trim().split("\n").at(-1).split(/\s+/).map(Number);
          if (Number.isFinite(u + s)) own = u + s;
        } catch { /* no /usr/bin/time */ }
        if (own !== null) foreign = Math.max(0, (after.busy - before.busy - own) / wall);
      }
      resolve({ code: code ?? signal, out, err, wall, foreign, steal });
    });
  });
}

function parseResults(out) {
  const results = [];
  for (const line of out.split("\n")) {
    if (!line.startsWith("##RESULT ")) continue;
    try {
      results.push(JSON.parse(line.slice(9)));
    } catch {
      console.error(`bench.mjs: unparsable line: ${line}`);
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------- main
const tmp = mkdtempSync(path.join(os.tmpdir(), "polyproc-bench-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
writeFileSync(path.join(tmp, "empty.mjs"), "");
writeFileSync(path.join(tmp, "hello.mjs"), "postMessage('hi');\n");
const ctx = { fixtures: tmp };

const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const results = []; // every result, with its run's load figures
const runs = [];
const skippedRuntimes = new Map(); // runtime -> why it did not run
let failed = 0;

console.log(`polyproc bench: ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}; ` +
  `NODE_EXTRA_CA_CERTS and NODE_OPTIONS unset for the runs${TIME ? "" : "; /usr/bin/time missing, so no foreign-load figures"}`);

for (const bench of BENCHES.filter((b) => opts.only.length === 0 || opts.only.some((w) => b.name.includes(w)))) {
  for (const rt of bench.runtimes.filter((r) => opts.runtimes.includes(r))) {
    if (rt === "python" && resolvePython() === null) {
      if (!skippedRuntimes.has(rt)) console.log(`\n### ${bench.name} / python: skipped, no python3 on this machine`);
      skippedRuntimes.set(rt, "no python3 on this machine");
      continue;
    }
    if (rt === "node-js") {
      try {
        await plainJsTree(path.join(tmp, "js"));
      } catch (err) {
        console.log(`\n### ${bench.name} / node-js: skipped, cannot transpile to plain JS (${err.message ?? err})`);
        continue;
      }
    }
    const argv = [...commandFor(rt, bench.file, bench.denoFlags, bench.plainNode), ...bench.args(ctx), ...opts.pass];
    let best = null;
    for (let attempt = 1; attempt <= 2; attempt++) {
      const waited = await quietGate();
      const r = await runOnce(argv, path.join(tmp, "rusage.txt"));
      r.gate = waited;
      const tag = `${bench.name} / ${rt}${attempt > 1 ? " (repeat)" : ""}`;
      const load = r.foreign === null ? "" : `, foreign load ${r.foreign.toFixed(2)} cores, steal ${r.steal.toFixed(2)}`;
      const gate = waited === null ? ", never quiet" : waited > 0.5 ? `, waited ${waited.toFixed(1)} s for quiet` : "";
      console.log(`\n### ${tag}: ${r.wall.toFixed(1)} s, exit ${r.code}${load}${gate}`);
      console.log(r.out.split("\n").filter((l) => l && !l.startsWith("##RESULT ")).map((l) => "    " + l).join("\n"));
      if (r.code !== 0) {
        const err = r.err.trimEnd().split("\n");
        const shown = err.slice(-30);
        if (shown.length < err.length) console.log(`  ! (last ${shown.length} of ${err.length} lines of stderr)`);
        console.log(shown.map((l) => "  ! " + l).join("\n"));
      }
      if (best === null || (r.code === 0 && (best.code !== 0 || (r.foreign ?? 0) < (best.foreign ?? 0)))) best = r;
      const clean = r.foreign === null || r.foreign <= 0.5;
      if (r.code !== 0 || clean || elapsed() + r.wall > BUDGET_S) break;
      console.log(`    (more than 0.5 cores of foreign load: running it again)`);
    }
    if (best.code !== 0) failed++;
    runs.push({ bench: bench.name, runtime: rt, wall_s: best.wall, foreign_cores: best.foreign, steal_cores: best.steal, exit: best.code });
    for (const res of parseResults(best.out)) results.push({ ...res, foreign_cores: best.foreign });
  }
}

// ---------------------------------------------------------------------------------------------- tables
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
// Results in ms (start+join) and in other units (queue and pipe) go to separate tables.
const msResults = results.filter((r) => r.unit === undefined);
const unitResults = results.filter((r) => r.unit !== undefined && !r.id.startsWith("pool_"));
const poolResults = results.filter((r) => r.unit !== undefined && r.id.startsWith("pool_"));
const byKey = new Map(msResults.map((r) => [`${r.id}|${r.col}`, r]));
const cols = COLUMNS.filter((c) => msResults.some((r) => r.col === c.col));
for (const r of msResults) if (!cols.some((c) => c.col === r.col)) cols.push({ col: r.col, head: r.col });

function cell(r) {
  if (!r) return "—";
  const warn = r.foreign_cores !== null && r.foreign_cores > 0.25 ? " ⚠" : "";
  return `${fmt(r.median_ms)} (${fmt(r.min_ms)}–${fmt(r.max_ms)})${warn}`;
}

const rows = [...ROWS];
for (const r of msResults) {
  if (!rows.some((row) => row.id === r.id)) rows.push({ id: r.id, label: r.label });
}
const lines = [];
lines.push(`| metric (ms: median (min–max)) | ${cols.map((c) => c.head).join(" | ")} |`);
lines.push(`| --- | ${cols.map(() => "---").join(" | ")} |`);
for (const row of rows) {
  if (row.section) {
    lines.push(`| **${row.section}** | ${cols.map(() => "").join(" | ")} |`);
    continue;
  }
  const cells = cols.map((c) => cell(byKey.get(`${row.id}|${c.col}`)));
  if (cells.every((c) => c === "—")) continue;
  lines.push(`| ${row.label} | ${cells.join(" | ")} |`);
}
const ns = [...new Set(msResults.map((r) => r.n))];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rl = [];
rl.push(`| ratio of medians [per-round ratios min–max] | ${cols.map((c) => c.head).join(" | ")} |`);
rl.push(`| --- | ${cols.map(() => "---").join(" | ")} |`);
const misses = [];
for (const ratio of RATIOS) {
  const cells = cols.map((c) => {
    const a = byKey.get(`${ratio.num}|${c.col}`), b = byKey.get(`${ratio.den}|${ratio.denCol ?? c.col}`);
    if (!a || !b || ratio.denCol === c.col) return "—";
    const q = a.median_ms / b.median_ms;
    // Per-round ratios pair rounds of one run only (a denCol figure comes from another run).
    const per = ratio.denCol ? [] : (a.round_medians_ms ?? []).map((x, i) => x / (b.round_medians_ms ?? [])[i]).filter(Number.isFinite);
    const range = per.length > 1 ? ` [${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)}]` : "";
    let mark = "";
    if (ratio.target !== undefined && !c.col.startsWith("python")) {
      mark = q <= ratio.target ? " ✓" : " ✗";
      if (q > ratio.target) misses.push(`${c.head}: ${ratio.label} = ${q.toFixed(2)}× (target ≤ ${ratio.target}×)`);
    }
    return `${q.toFixed(2)}×${range}${mark}`;
  });
  if (cells.every((c) => c === "—")) continue;
  rl.push(`| ${ratio.label}${ratio.target ? ` (target ≤ ${ratio.target}×)` : ""} | ${cells.join(" | ")} |`);
}

if (msResults.length) {
  console.log(`\n## Process start+join latency (ms)\n`);
  console.log(lines.join("\n"));
  console.log(`\nn = ${ns.join("/")} samples per cell (rounds × reps, after warm-up). ⚠ = the run had > 0.25 cores of foreign load.`);
  console.log(`\n## polyproc ÷ raw primitive (same runtime, same run)\n`);
  console.log(rl.join("\n"));
}

// ---------------------------------------------------------------------------------------------- queue and pipe table
const targetLines = []; // every target checked: "✓ ..." / "✗ ..."
if (unitResults.length) {
  const byId = new Map(unitResults.map((r) => [`${r.id}|${r.col}`, r]));
  const notes = []; // footnotes for skipped cells
  const noteMark = (text) => {
    let i = notes.indexOf(text);
    if (i < 0) i = notes.push(text) - 1;
    return `[${i + 1}]`;
  };
  const rate = (x, unit) => {
    if (unit === "items/s" || unit === "appends/s" || unit === "round trips/s") return x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(0)}k` : x.toFixed(0);
    return fmt(x);
  };
  const qcell = (r, unit) => {
    if (!r) return "—";
    if (r.skipped !== undefined) return `— ${noteMark(r.skipped)}`;
    const warn = r.foreign_cores !== null && r.foreign_cores > 0.25 ? " ⚠" : "";
    return `${rate(r.median, unit)} (${rate(r.min, unit)}–${rate(r.max, unit)})${warn}`;
  };
  const has = (r) => r && r.skipped === undefined;
  const ratioText = (a, b) => {
    if (!has(a) || !has(b)) return "—";
    const per = (a.round_values ?? []).map((x, i) => x / (b.round_values ?? [])[i]).filter(Number.isFinite);
    const range = per.length > 1 && b.col === a.col ? ` [${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)}]` : "";
    return `${(a.median / b.median).toFixed(2)}×${range}`;
  };
  const jsCols = COLUMNS.filter((c) => !c.col.startsWith("python") && unitResults.some((r) => r.col === c.col));
  const pythonNote = skippedRuntimes.get("python") ??
    (opts.runtimes.includes("python") ? null : "not run (--runtime)");
  const ql = [];
  ql.push("| metric / runtime | polyproc | raw primitive | polyproc ÷ raw [per round] | Python mp | polyproc ÷ Python | target |");
  ql.push("| --- | --- | --- | --- | --- | --- | --- |");
  for (const { family, method, target } of QUEUE_ROWS) {
    const fam = QUEUE_FAMILIES[family];
    const pyRes = byId.get(`${family}.python|python`);
    const pyCell = pyRes ? qcell(pyRes, fam.unit) : pythonNote ? `— ${noteMark(`Python: ${pythonNote}`)}` : "—";
    const pyHead = pyRes?.label?.match(/\((\w+)\)$/)?.[1];
    ql.push(`| **${fam.title}, "${method}"** (${fam.unit}, ${fam.better} is better${fam.noRaw ? "" : `; ${fam.raw ?? RAW_ANCHOR[method]}`}` +
      `${pyHead ? `; Py: ${fam.py ?? (family === "pipe_rt" ? "mp.Pipe" : "mp.Queue")}, ${pyHead}` : ""}) | | | | | | |`);
    for (const c of jsCols) {
      const pp = byId.get(`${family}.polyproc.${method}|${c.col}`);
      const raw = byId.get(`${family}.raw.${method}|${c.col}`);
      if (!pp && !raw) continue;
      let mark = "";
      if (target === null) {
        // shown without a mark
      } else if (has(pp)) {
        let goal = null;
        const vs = target.vs === undefined ? undefined : byId.get(`${target.vs}|${c.col}`);
        if (target.min !== undefined) goal = target.min;
        else if (target.vs !== undefined) goal = has(vs) ? vs.median * target.factor : null;
        else if (has(pyRes)) goal = pyRes.median * target.factor;
        if (goal !== null) {
          const met = fam.better === "higher" ? pp.median >= goal : pp.median <= goal;
          mark = met ? " ✓" : " ✗";
          targetLines.push(`${met ? "✓" : "✗"} ${c.head}: ${fam.short}, "${method}": ` +
            `${rate(pp.median, fam.unit)} ${fam.unit} vs target ${target.text}` +
            (target.min === undefined ? ` = ${rate(goal, fam.unit)} ${fam.unit}` : ""));
        } else {
          mark = " ?";
          targetLines.push(`? ${c.head}: ${fam.short}, "${method}": no ${target.vs ? target.vs : "Python"} figure to compare with`);
        }
      } else {
        targetLines.push(`— ${c.head}: ${fam.short}, "${method}": not measured` +
          (pp?.skipped ? ` (${pp.skipped})` : ""));
      }
      ql.push(`| ${c.head} | ${qcell(pp, fam.unit)} | ${qcell(raw, fam.unit)} | ${ratioText(pp, raw)} | ${pyCell} | ` +
        `${ratioText(pp, pyRes)} | ${target?.text ?? "none (information)"}${mark} |`);
    }
  }
  // Results with ids outside QUEUE_ROWS still get shown.
  const known = new Set(QUEUE_ROWS.flatMap(({ family, method }) =>
    [`${family}.polyproc.${method}`, `${family}.raw.${method}`, `${family}.python`]));
  const extra = unitResults.filter((r) => !known.has(r.id));
  for (const r of extra) ql.push(`| (other) ${r.label} [${r.col}] | ${qcell(r, r.unit)} ${r.unit} | | | | | |`);

  const qn = [...new Set(unitResults.filter(has).map((r) => r.n))];
  console.log(`\n## Queues and pipes: polyproc vs raw primitive vs Python multiprocessing (same run)\n`);
  console.log(ql.join("\n"));
  console.log(`\nCells: median of ${qn.join("/")} rounds (min–max over rounds); each round starts fresh children and ` +
    `excludes their start-up (throughput: first item received → last). Ratios are polyproc ÷ anchor in the row's unit ` +
    `(throughput: > 1 is faster; round trip: < 1 is faster); [per round] pairs the rounds of one program run. ` +
    `⚠ = the run had > 0.25 cores of foreign load.`);
  if (notes.length) console.log("\n" + notes.map((n, i) => `[${i + 1}] ${n}`).join("\n"));
}
// ---------------------------------------------------------------------------------------------- pool table
const poolTargetLines = []; // every Pool target checked: "✓ ..." / "✗ ..."
if (poolResults.length) {
  const byId = new Map(poolResults.map((r) => [`${r.id}|${r.col}`, r]));
  const notes = [];
  const noteMark = (text) => {
    let i = notes.indexOf(text);
    if (i < 0) i = notes.push(text) - 1;
    return `[${i + 1}]`;
  };
  const num = (x, unit) => unit === "tasks/s"
    ? (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(x >= 1e5 ? 0 : 1)}k` : x.toFixed(0))
    : unit === "×" ? x.toFixed(2) : fmt(x);
  const has = (r) => r && r.skipped === undefined;
  const cellOf = (r, unit) => {
    if (!r) return "—";
    if (r.skipped !== undefined) return `— ${noteMark(r.skipped)}`;
    const warn = r.foreign_cores !== null && r.foreign_cores > 0.25 ? " ⚠" : "";
    return `${num(r.median, unit)} (${num(r.min, unit)}–${num(r.max, unit)})${warn}`;
  };
  // The anchors (piscina, Python) ran once; a JS runtime's target compares with that one figure.
  const anchorOf = (id) => POOL_ANCHOR_COLS.map((c) => byId.get(`${id}|${c}`)).find(Boolean);
  const anchorMissing = (col) => {
    const why = col === "python" ? (skippedRuntimes.get("python") ?? (opts.runtimes.includes("python") ? null : "not run (--runtime)"))
      : (opts.runtimes.includes("node") ? null : "piscina runs with --runtime=node; not run");
    return why ? `— ${noteMark(`${col === "python" ? "Python" : "piscina"}: ${why}`)}` : "—";
  };
  const jsCols = COLUMNS.filter((c) => !c.col.startsWith("python") && poolResults.some((r) => r.col === c.col));
  const pl = [];
  pl.push(`| Pool metric (2 workers) | ${jsCols.map((c) => c.head).join(" | ")} | anchor: piscina (node) / Python mp |`);
  pl.push(`| --- | ${jsCols.map(() => "---").join(" | ")} | --- |`);
  const blank = jsCols.map(() => "").join(" | ");
  const shown = new Set();
  for (const fam of POOL_FAMILIES) {
    const better = fam.better === "higher" ? "higher is better" : "lower is better";
    pl.push(`| **${fam.title}** (${fam.unit}, ${better}) | ${blank} | |`);
    const ids = [...fam.rows.map((r) => r.id),
      ...poolResults.filter((r) => r.id.startsWith(fam.family + ".") && !fam.rows.some((x) => x.id === r.id))
        .map((r) => r.id).filter((id, i, a) => a.indexOf(id) === i)];
    for (const id of ids) {
      shown.add(id);
      const label = fam.rows.find((r) => r.id === id)?.label ?? poolResults.find((r) => r.id === id).label;
      const anchorCol = id.endsWith(".piscina") ? "piscina" : /\.python/.test(id) ? "python" : null;
      if (anchorCol) {
        const r = anchorOf(id);
        if (!r && id.endsWith("_apply")) continue;
        pl.push(`| ${label} | ${blank} | ${r ? cellOf(r, fam.unit) : anchorMissing(anchorCol)} |`);
      } else {
        const cells = jsCols.map((c) => cellOf(byId.get(`${id}|${c.col}`), fam.unit));
        if (cells.every((c) => c === "—")) continue;
        pl.push(`| ${label} | ${cells.join(" | ")} | |`);
      }
    }
    // Targets: one row each, a ratio and ✓/✗ per runtime column.
    const check = (text, fn) => {
      const cells = jsCols.map((c) => {
        const res = fn(c);
        if (res === null) return "—";
        poolTargetLines.push(`${res.mark} ${c.head}: ${text}: ${res.detail}`);
        return `${res.shown} ${res.mark}`;
      });
      if (cells.some((c) => c !== "—")) pl.push(`| *target: ${text}* | ${cells.join(" | ")} | |`);
    };
    const meets = (x, goal) => (fam.better === "higher" ? x >= goal : x <= goal);
    for (const t of fam.targets) {
      check(t.text, (c) => {
        const a = byId.get(`${t.id}|${c.col}`);
        if (!a) return null;
        if (!has(a)) return { shown: "not measured", mark: "—", detail: a.skipped };
        const u = fam.unit;
        if (t.min !== undefined) {
          return { shown: num(a.median, u) + u, mark: a.median >= t.min ? "✓" : "✗", detail: `${num(a.median, u)}${u}` };
        }
        const b = anchorOf(t.vs);
        if (!has(b)) return { shown: "no anchor", mark: "?", detail: `no figure for ${t.vs}` };
        const q = a.median / b.median;
        return {
          shown: `${q.toFixed(2)}×`,
          mark: meets(a.median, b.median * t.factor) ? "✓" : "✗",
          detail: `${num(a.median, u)} vs ${num(b.median, u)} ${u} = ${q.toFixed(2)}×`,
        };
      });
    }
    // "process": within 2× of "worker" (same runtime), or better than Python.
    for (const id of fam.rows.map((r) => r.id).filter((id) => id.endsWith(".process"))) {
      const short = id.slice(fam.family.length + 1).replace(/\.process$/, "");
      check(`${short} "process" within 2× of "worker" or better than Python`, (c) => {
        const p = byId.get(`${id}|${c.col}`), w = byId.get(`${id.replace(/\.process$/, ".worker")}|${c.col}`);
        if (!p) return null;
        if (!has(p)) return { shown: "not measured", mark: "—", detail: p.skipped };
        const py = anchorOf(fam.python);
        const parts = [], ok = [];
        if (has(w)) {
          parts.push(`${(p.median / w.median).toFixed(2)}× "worker"`);
          ok.push(meets(p.median, fam.better === "higher" ? w.median / 2 : w.median * 2));
        }
        if (has(py)) {
          parts.push(`${(p.median / py.median).toFixed(2)}× Py`);
          ok.push(meets(p.median, py.median));
        }
        const mark = ok.length === 0 ? "?" : ok.some(Boolean) ? "✓" : "✗";
        return { shown: parts.join(", ") || "no figures", mark, detail: `${num(p.median, fam.unit)}${fam.unit === "×" ? "" : " "}${fam.unit}; ${parts.join(", ")}` };
      });
    }
  }
  for (const r of poolResults.filter((r) => !shown.has(r.id))) {
    pl.push(`| (other) ${r.label} [${r.col}] | ${blank} | ${cellOf(r, r.unit)} ${r.unit} |`);
  }
  const pn = [...new Set(poolResults.filter(has).map((r) => r.n))];
  console.log(`\n## Pool: polyproc vs raw worker pool vs piscina vs Python multiprocessing (2 workers, same run)\n`);
  console.log(pl.join("\n"));
  console.log(`\nCells: median of ${pn.join("/")} rounds (min–max over rounds). Every pool is made and warmed before ` +
    `timing, and its creation is never timed. Ratios in target rows are polyproc ÷ anchor in the row's unit ` +
    `(tasks/s and ×: > 1 is faster; µs: < 1 is faster). Python uses its default start method (fork on Linux). ` +
    `⚠ = the run had > 0.25 cores of foreign load.`);
  if (notes.length) console.log("\n" + notes.map((n, i) => `[${i + 1}] ${n}`).join("\n"));
}
const versions = [...new Set(runs.map((r) => r.runtime))].join(", ");
console.log(`\nRuns: ${runs.map((r) => `${r.bench} / ${r.runtime} ${r.wall_s.toFixed(1)} s` +
  (r.foreign_cores === null ? "" : ` (foreign ${r.foreign_cores.toFixed(2)})`)).join("; ")}. Total ${elapsed().toFixed(1)} s.`);
if (misses.length) console.log(`\nAbove target:\n${misses.map((m) => "  - " + m).join("\n")}`);
if (targetLines.length) console.log(`\nQueue and pipe targets:\n${targetLines.map((m) => "  " + m).join("\n")}`);
if (poolTargetLines.length) console.log(`\nPool targets:\n${poolTargetLines.map((m) => "  " + m).join("\n")}`);
if (opts.json) {
  writeFileSync(opts.json, JSON.stringify({ date: new Date().toISOString(), runtimes: versions, runs, results }, null, 2));
  console.log(`\nWrote ${opts.json}`);
}
process.exitCode = failed ? 1 : 0;
