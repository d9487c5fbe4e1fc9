/**
 * Manager benchmarks (issue 7), side by side with Python's in `npm run bench`:
 * - mgr_append: one child makes `appends` calls of `await li.append(i)` on a `Manager().list()`
 *   and times them itself (Python: `shared.append(i)` in a Process; research/anchors-bench.md §6).
 * - mgr_dict: one child makes `pairs` × (`await d.set(k, i)`, `await d.get(k)`) on a
 *   `Manager().dict()`; the unit is round trips per second (two per pair).
 * - mgr_many: ten children at once, each `appends / 10` appends to one list (after a tenth
 *   of WARM untimed, then a barrier); the unit is appends per second in total, from the
 *   first child's start to the last one's end. No issue sets a target for it: it shows
 *   how the server copes with many clients, where Python has a thread per client.
 * - mgr_append.raw: the floor under a call, `appends` round trips of 40 bytes between one
 *   child and an echo server in the parent, over the Unix socket the manager uses
 *   (polyproc's `runtime.net`: `Deno.connect`, `Bun.connect`, `node:net`), no framing.
 * The server runs under the same start method as the child. Each round starts a fresh
 * manager and child; only the child's loop is timed, after `warm` untimed calls of the
 * same kind: the rate is the steady one, once the JIT has compiled the call path (a cold
 * Node child spends its first few thousand calls at half speed). Python's anchor warms
 * up the same way (scripts/bench_python.py), though an interpreter gains nothing by it.
 *
 *   node --import tsx scripts/bench_manager.ts [--rounds=3] [--warmup=1] [--appends=10000] [--pairs=5000]
 *
 * Output: `##RESULT {json}` lines, printed by scripts/_bench_rounds.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type Metric, printResults, takeRounds } from "./_bench_rounds.ts";
import { type BarrierProxy, type DictProxy, fromModule, isMainModule, type ListProxy, Manager, Process, Queue, type ValueProxy } from "../mod.ts";
import { runtime } from "../src/runtime/detect.ts";

type Method = "worker" | "process";

/** Untimed calls before the timed ones, so that the rate is the steady one. */
export const WARM = 2_000;

/** Child: appends `n` ints (after WARM untimed) and stores the elapsed milliseconds in `out`. */
export async function appendLoop(li: ListProxy<number>, n: number, out: ValueProxy<number>): Promise<void> {
  for (let i = 0; i < WARM; i++) await li.append(-1);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await li.append(i);
  await out.set(performance.now() - t0);
}

/** Child: `n` set/get pairs on one key (after WARM / 2 untimed); stores the elapsed milliseconds in `out`. */
export async function dictLoop(d: DictProxy<string, number>, n: number, out: ValueProxy<number>): Promise<void> {
  for (let i = 0; i < WARM / 2; i++) {
    await d.set("k", i);
    await d.get("k");
  }
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    await d.set("k", i);
    await d.get("k");
  }
  await out.set(performance.now() - t0);
}

/** Child of mgr_many: `n` appends once every child is ready; its start and end (epoch ms) go to `times`. */
export async function manyLoop(li: ListProxy<number>, n: number, ready: BarrierProxy, times: ListProxy<number>): Promise<void> {
  for (let i = 0; i < WARM / 10; i++) await li.append(-1);
  await ready.wait();
  const t0 = performance.timeOrigin + performance.now();
  for (let i = 0; i < n; i++) await li.append(i);
  await times.extend([t0, performance.timeOrigin + performance.now()]);
}

/** The size of a raw request and of its reply: about what `li.append(i)` sends. */
const RAW_BYTES = 40;

/** Child of mgr_append.raw: WARM + `n` round trips with the echo server at `path`; puts the timed `n`'s milliseconds on `out`. */
export async function rawLoop(path: string, n: number, out: Queue<number>): Promise<void> {
  const socket = await runtime.net.connect(path);
  const request = new Uint8Array(RAW_BYTES);
  let [left, got, t0] = [WARM + n, 0, 0];
  await new Promise<void>((resolve) => {
    socket.onData((chunk) => {
      got += chunk.length;
      if (got < RAW_BYTES) return;
      got -= RAW_BYTES;
      if (--left === n) t0 = performance.now();
      if (left === 0) return resolve();
      socket.write(request);
    });
    socket.write(request);
  });
  await out.put(performance.now() - t0);
  socket.destroy();
}

/** Children of mgr_many. */
const MANY = 10;

const EXT = /\.[cm]?[jt]s$/.exec(import.meta.url)?.[0] ?? ".ts";
const self = fromModule<typeof import("./bench_manager.ts")>(new URL(`./bench_manager${EXT}`, import.meta.url));

async function measure(method: Method, kind: "append" | "dict" | "many" | "raw", n: number): Promise<number> {
  if (kind === "raw") return await measureRaw(method, n);
  const manager = new Manager({ context: method });
  await manager.start();
  try {
    if (kind === "many") return await measureMany(manager, method, n);
    const out = await manager.Value("d", 0);
    const obj = kind === "append" ? await manager.list<number>() : await manager.dict<string, number>();
    const p = kind === "append"
      ? new Process({ target: self.appendLoop, args: [obj as ListProxy<number>, n, out], context: method })
      : new Process({ target: self.dictLoop, args: [obj as DictProxy<string, number>, n, out], context: method });
    p.start();
    await p.join(120_000);
    if (p.exitCode !== 0) throw new Error(`the ${kind} child ended with ${p.exitCode}`);
    const ms = await out.get();
    if (kind === "append" && (await (obj as ListProxy).length()) !== WARM + n) throw new Error("appends were lost");
    return ((kind === "append" ? n : 2 * n) / ms) * 1000;
  } finally {
    await manager.shutdown();
  }
}

/** mgr_append.raw: round trips/s between a child and an echo server in this program. */
async function measureRaw(method: Method, n: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "polyproc-bench-"));
  const server = await runtime.net.listen(join(dir, "echo.sock"), (socket) => {
    socket.onData((chunk) => socket.write(chunk));
    socket.onClose(() => {});
  });
  const out = new Queue<number>(0, { context: method });
  try {
    const p = new Process({ target: self.rawLoop, args: [join(dir, "echo.sock"), n, out], context: method });
    p.start();
    const ms = await out.get({ timeout: 120_000 });
    await p.join(120_000);
    if (p.exitCode !== 0) throw new Error(`the raw child ended with ${p.exitCode}`);
    return (n / ms) * 1000;
  } finally {
    out.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** mgr_many: MANY children append n / MANY each at once; appends/s in total. */
async function measureMany(manager: Manager, method: Method, n: number): Promise<number> {
  const each = Math.ceil(n / MANY);
  const li = await manager.list<number>();
  const times = await manager.list<number>();
  const ready = await manager.Barrier(MANY);
  const ps = Array.from({ length: MANY }, () => new Process({ target: self.manyLoop, args: [li, each, ready, times], context: method }));
  for (const p of ps) p.start();
  for (const p of ps) {
    await p.join(120_000);
    if (p.exitCode !== 0) throw new Error(`a many child ended with ${p.exitCode}`);
  }
  const t = await times.toArray();
  const starts = t.filter((_, i) => i % 2 === 0);
  const ends = t.filter((_, i) => i % 2 === 1);
  if ((await li.length()) !== MANY * (WARM / 10 + each)) throw new Error("appends were lost");
  return (MANY * each) / (Math.max(...ends) - Math.min(...starts)) * 1000;
}

if (isMainModule(import.meta)) {
  const opts = { rounds: 3, warmup: 1, appends: 10_000, pairs: 5_000 };
  for (const arg of process.argv.slice(2)) {
    const m = /^--(rounds|warmup|appends|pairs|reps)=(\d+)$/.exec(arg);
    if (!m) {
      console.error(`bench_manager: bad argument ${arg}`);
      process.exit(2);
    }
    if (m[1] !== "reps") opts[m[1] as keyof typeof opts] = Number(m[2]);
  }
  const metrics = (["worker", "process"] as const).flatMap((method) => [
    { id: `mgr_append.polyproc.${method}`, method, kind: "append" as const, n: opts.appends, label: `polyproc Manager().list(): ${opts.appends} × await append(i) from one child, "${method}"` },
    { id: `mgr_dict.polyproc.${method}`, method, kind: "dict" as const, n: opts.pairs, label: `polyproc Manager().dict(): ${opts.pairs} × (set, get) from one child, "${method}"` },
    { id: `mgr_append.raw.${method}`, method, kind: "raw" as const, n: opts.appends, label: `raw: ${opts.appends} × ${RAW_BYTES}-byte request and reply, one child ↔ an echo server over a Unix socket, "${method}"` },
    { id: `mgr_many.polyproc.${method}`, method, kind: "many" as const, n: opts.appends, label: `polyproc Manager().list(): ${MANY} children × ${opts.appends / MANY} appends at once, "${method}"` },
  ]);
  for (let i = 0; i < opts.warmup; i++) for (const m of metrics) await measure(m.method, m.kind, Math.ceil(m.n / 10));
  const rated: Metric[] = metrics.map((m) => ({
    ...m,
    unit: m.kind === "dict" || m.kind === "raw" ? "round trips/s" : "appends/s",
    better: "higher",
    run: () => measure(m.method, m.kind, m.n),
  }));
  printResults(rated, await takeRounds(rated, opts.rounds));
}
