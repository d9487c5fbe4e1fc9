/**
 * Process start+join latency: polyproc's `Process` (no-op target) under "worker" and
 * "process", side by side with the raw primitive each maps to, on the runtime this
 * runs on. Runs under all three:
 *
 *   node --import tsx scripts/bench_process.ts
 *   deno run --allow-read --allow-run --allow-env scripts/bench_process.ts
 *   bun scripts/bench_process.ts
 *   node bench_process.js       (transpiled to plain JS with polyproc's sources: see scripts/bench.mjs;
 *                               then no tsx anywhere, and the .ts-module rows are left out)
 *
 * Options: --rounds=5 --reps=4 --warmup=2 --gap=10 (ms between samples) --only=id,id
 *          --fixtures=DIR (where to write the two tiny .mjs baselines; default: a new temp
 *          dir, which on Deno needs --allow-write; scripts/bench.mjs passes one in)
 *
 * Method (as in research/anchors-bench.md): after a warm-up, `rounds` rounds; each round
 * runs every metric `reps` times in a row, and the order of the metrics rotates from
 * round to round, so slow drift of the machine lands on every metric alike. A sample is
 * the wall time from just before the child is created to the parent's exit event.
 *
 * Output: one `##RESULT {json}` line per metric (median, min-max over all samples,
 * and each round's median), then a human table with polyproc/raw ratios. The raw
 * baselines start children the way a user of the runtime would:
 * - worker: `new Worker(file)` from node:worker_threads (what polyproc uses on every
 *   runtime), until its "exit" event. "bare" is an empty plain .mjs file; ".ts" is
 *   scripts/bench_targets.ts (on node: through a data: bootstrap that registers tsx
 *   first, as polyproc's own worker bootstrap does).
 * - process: node:child_process.spawn(process.execPath, [flags, file]) until "exit".
 *   "bare" is an empty .mjs file (node: no flags; deno: `run --quiet` and polyproc's
 *   permission flags); ".ts" is bench_targets.ts (on node with the parent's own flags,
 *   i.e. `--import tsx`, as polyproc's child gets them).
 * - info only (deno, bun): the web `Worker` (type "module") until its first message;
 *   (node under tsx): a Worker(empty .mjs) that inherits the parent's `--import tsx`, which
 *   is what `new Worker(file)` does by default in a tsx program.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker as NodeWorker } from "node:worker_threads";
import { fromModule, Process } from "../mod.ts";

type Runtime = "node" | "deno" | "bun";
const g = globalThis as { Deno?: unknown; Bun?: unknown };
const RUNTIME: Runtime = g.Deno !== undefined ? "deno" : g.Bun !== undefined ? "bun" : "node";
// Node running TypeScript through tsx (`node --import tsx`), or plain JavaScript.
const TSX = RUNTIME === "node" && process.execArgv.some((a) => a.includes("tsx"));
const COL = RUNTIME === "node" && !TSX ? "node-js" : RUNTIME;

// ---------------------------------------------------------------------------------------------- options
const opts = { rounds: 5, reps: 4, warmup: 2, gap: 10, only: [] as string[], fixtures: "" };
for (const arg of process.argv.slice(2)) {
  const m = /^--(rounds|reps|warmup|gap|only|fixtures)=(.*)$/.exec(arg);
  if (!m) {
    console.error(`bench_process: unknown argument ${arg}`);
    process.exit(2);
  }
  if (m[1] === "only") opts.only = m[2].split(",").filter(Boolean);
  else if (m[1] === "fixtures") opts.fixtures = m[2];
  else opts[m[1] as "rounds" | "reps" | "warmup" | "gap"] = Number(m[2]);
}

// ---------------------------------------------------------------------------------------------- fixtures
// This file's own extension (.ts, or .js when transpiled), as polyproc finds its bootstrap.
const EXT = /\.[cm]?[jt]s$/.exec(import.meta.url)?.[0] ?? ".ts";
const TARGETS_URL = new URL(`./bench_targets${EXT}`, import.meta.url);
const TARGETS_PATH = fileURLToPath(TARGETS_URL);
const targets = fromModule<typeof import("./bench_targets.ts")>(TARGETS_URL);

// Bare baselines: an empty plain-JS module, so the raw number is the primitive alone.
function fixtureDir(): string {
  if (opts.fixtures) return opts.fixtures;
  let dir: string;
  try {
    dir = mkdtempSync(join(tmpdir(), "polyproc-bench-"));
  } catch (err) {
    console.error(`bench_process: cannot create a temp dir for the baselines (${err}); pass --fixtures=DIR ` +
      `with empty.mjs and hello.mjs in it, or on Deno add --allow-write`);
    process.exit(2);
  }
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const tmp = fixtureDir();
const EMPTY_MJS = join(tmp, "empty.mjs");
const HELLO_MJS = join(tmp, "hello.mjs");
if (!opts.fixtures) {
  writeFileSync(EMPTY_MJS, "");
  writeFileSync(HELLO_MJS, "postMessage('hi');\n");
}

// The argv that runs a script as a child of this runtime: bare (no loader), and as polyproc's
// adapters pass it (on node: the parent's own flags, i.e. `--import tsx`).
function runtimeArgs(bare: boolean): string[] {
  if (RUNTIME === "deno") return ["run", "--quiet", "--allow-read", "--allow-run", "--allow-env"];
  if (RUNTIME === "bun" || bare) return [];
  return process.execArgv.filter((a) => !/^--(inspect|debug|test)/.test(a));
}

// On node under tsx, a worker loads .ts only after registering tsx in the thread.
function tsWorkerUrl(): URL {
  if (!TSX) return TARGETS_URL;
  const api = (import.meta as ImportMeta & { resolve(s: string): string }).resolve("tsx/esm/api");
  const source = `const { register } = await import(${JSON.stringify(api)});\nregister();\n` +
    `await import(${JSON.stringify(TARGETS_URL.href)});\n`;
  return new URL("data:text/javascript," + encodeURIComponent(source));
}

// ---------------------------------------------------------------------------------------------- primitives
function polyproc(context: "worker" | "process"): () => Promise<void> {
  return async () => {
    const p = new Process({ target: targets.noop, context });
    p.start();
    await p.join();
    if (p.exitCode !== 0) throw new Error(`polyproc ${context} child exited with ${p.exitCode}`);
  };
}

// execArgv: [] on node keeps a tsx parent's `--import tsx` out of the worker (by default a
// worker inherits it and runs it: about +110 ms here); polyproc's workers pass [] as well.
function rawWorker(url: URL, inheritExecArgv = false): () => Promise<void> {
  const options = RUNTIME === "node" && !inheritExecArgv ? { execArgv: [] } : {};
  return () =>
    new Promise((resolve, reject) => {
      const w = new NodeWorker(url, options);
      w.on("error", reject);
      w.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`raw worker exited with ${code}`))));
    });
}

function rawSpawn(args: string[]): () => Promise<void> {
  return () =>
    new Promise((resolve, reject) => {
      const c = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"] });
      c.on("error", reject);
      c.on("exit", (code, signal) =>
        code === 0 ? resolve() : reject(new Error(`raw spawn ${args.join(" ")} ended with ${code ?? signal}`))
      );
    });
}

interface WebWorker {
  onmessage: ((e: unknown) => void) | null;
  onerror: ((e: unknown) => void) | null;
  terminate(): void;
}
function webWorkerFirstMessage(url: URL): () => Promise<void> {
  const Ctor = (globalThis as unknown as { Worker: new (u: URL, o: { type: "module" }) => WebWorker }).Worker;
  return () =>
    new Promise((resolve, reject) => {
      const w = new Ctor(url, { type: "module" });
      w.onmessage = () => {
        w.terminate();
        resolve();
      };
      w.onerror = (e) => {
        w.terminate();
        reject(e);
      };
    });
}

// ---------------------------------------------------------------------------------------------- metrics
interface Metric {
  id: string;
  label: string;
  run: () => Promise<void>;
}

const node = RUNTIME === "node";
const tsRows = !node || TSX; // plain-JS node has no .ts module to start
const allMetrics: (Metric | false)[] = [
  { id: "polyproc.worker", label: `polyproc Process(noop) start+join, "worker"`, run: polyproc("worker") },
  {
    id: "raw.worker",
    label: node
      ? "raw worker_threads Worker(empty .mjs, execArgv: []) → exit"
      : "raw worker_threads Worker(empty .mjs) → exit",
    run: rawWorker(pathToFileURL(EMPTY_MJS)),
  },
  tsRows && {
    id: "raw.worker_ts",
    label: node
      ? "raw worker_threads Worker(.ts via tsx register() bootstrap) → exit"
      : "raw worker_threads Worker(bench_targets.ts) → exit",
    run: rawWorker(tsWorkerUrl()),
  },
  { id: "polyproc.process", label: `polyproc Process(noop) start+join, "process"`, run: polyproc("process") },
  {
    id: "raw.spawn",
    label: node ? "raw child_process.spawn(node empty.mjs) → exit" : "raw child_process.spawn(runtime, empty .mjs) → exit",
    run: rawSpawn([...runtimeArgs(true), EMPTY_MJS]),
  },
  tsRows && {
    id: "raw.spawn_ts",
    label: node
      ? "raw child_process.spawn(node --import tsx bench_targets.ts) → exit"
      : "raw child_process.spawn(runtime, bench_targets.ts) → exit",
    run: rawSpawn([...runtimeArgs(false), TARGETS_PATH]),
  },
];
const metrics = allMetrics.filter((m): m is Metric => m !== false);
if (TSX) {
  metrics.push({
    id: "info.worker_inherit",
    label: "(info) raw worker_threads Worker(empty .mjs), inherited --import tsx → exit",
    run: rawWorker(pathToFileURL(EMPTY_MJS), true),
  });
} else if (!node) {
  metrics.push({
    id: "info.web_worker",
    label: "(info) web Worker(module posting 'hi') → first message",
    run: webWorkerFirstMessage(pathToFileURL(HELLO_MJS)),
  });
}
const selected = opts.only.length ? metrics.filter((m) => opts.only.includes(m.id)) : metrics;

// ---------------------------------------------------------------------------------------------- harness
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function sample(m: Metric): Promise<number> {
  const t0 = performance.now();
  await m.run();
  return performance.now() - t0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const samples = new Map<string, number[][]>(selected.map((m) => [m.id, []]));
const wallStart = performance.now();

for (let i = 0; i < opts.warmup; i++) {
  for (const m of selected) {
    await sample(m);
    await sleep(opts.gap);
  }
}
for (let round = 0; round < opts.rounds; round++) {
  const order = selected.map((_, i) => selected[(i + round) % selected.length]);
  for (const m of order) {
    const xs: number[] = [];
    for (let r = 0; r < opts.reps; r++) {
      xs.push(await sample(m));
      await sleep(opts.gap);
    }
    samples.get(m.id)!.push(xs);
  }
}

// ---------------------------------------------------------------------------------------------- report
const round2 = (x: number) => Math.round(x * 100) / 100;
const stats = new Map<string, { median: number; min: number; max: number }>();
for (const m of selected) {
  const rounds = samples.get(m.id)!;
  const all = rounds.flat();
  const s = { median: median(all), min: Math.min(...all), max: Math.max(...all) };
  stats.set(m.id, s);
  console.log("##RESULT " + JSON.stringify({
    id: m.id,
    runtime: RUNTIME,
    col: COL,
    label: m.label,
    median_ms: round2(s.median),
    min_ms: round2(s.min),
    max_ms: round2(s.max),
    n: all.length,
    round_medians_ms: rounds.map((xs) => round2(median(xs))),
  }));
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const version = RUNTIME === "deno"
  ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`
  : RUNTIME === "bun"
  ? `bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `node ${process.version}${TSX ? " (tsx)" : " (plain JS)"}`;
console.log(
  `\n${version}: ${opts.rounds} rounds x ${opts.reps} reps after ${opts.warmup} warm-up, ` +
    `${((performance.now() - wallStart) / 1000).toFixed(1)} s`,
);
const width = Math.max(...selected.map((m) => m.label.length));
for (const m of selected) {
  const s = stats.get(m.id)!;
  console.log(`  ${m.label.padEnd(width)}  ${fmt(s.median).padStart(6)} ms  (${fmt(s.min)}–${fmt(s.max)})`);
}
for (const [pp, raws] of [["polyproc.worker", ["raw.worker", "raw.worker_ts"]], ["polyproc.process", ["raw.spawn", "raw.spawn_ts"]]] as const) {
  const a = stats.get(pp);
  if (!a) continue;
  for (const raw of raws) {
    const b = stats.get(raw);
    if (b) console.log(`  ratio ${pp} / ${raw}: ${(a.median / b.median).toFixed(2)}x`);
  }
}
