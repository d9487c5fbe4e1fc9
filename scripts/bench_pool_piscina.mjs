// piscina, the anchor of scripts/bench_pool.ts among node's pool libraries (research/anchors-bench.md, "B. Node
// libraries"): exactly 2 threads (minThreads = maxThreads = 2), otherwise default options
// (concurrentTasksPerWorker 1 included). Node only, plain JS:
//
//   node scripts/bench_pool_piscina.mjs [--rounds=3] [--warmup=1] [--tasks=100000] [--trips=2000]
//        [--trip-warmup=500] [--cpu-tasks=40] [--cpu-ms=10]          (--reps is accepted and ignored)
//
// This file is also piscina's task module: in a piscina worker only the default export below is used
// (`t => typeof t === "number" ? t*t : cpu(t.n)`, as in the anchors); the benchmark runs on the main thread.
// Metrics, as bench_pool.ts measures polyproc (ids pool_submit.piscina, pool_rt.piscina, pool_cpu.piscina,
// col "piscina"): `tasks` × `run(i)` issued in one loop, then `await Promise.all` (tasks/s); `await run(1)`
// sequentially, the mean of `trips` after `trip-warmup` (µs); `cpu-tasks` × run({ n }) with cpu(n) ≈ cpu-ms
// against the same calls serially on the main thread, ABA (×). The pool is made and warmed with 5,000 tasks
// before timing; `warmup` rounds with a tenth of the work, then `rounds` rounds in a rotating order.
// Prints `##RESULT {json}` lines as bench_pool.ts does.
import process from "node:process";
import { isMainThread } from "node:worker_threads";

function cpu(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += i * i;
  return s;
}

export default function task(t) {
  return typeof t === "number" ? t * t : cpu(t.n);
}

if (isMainThread) await main();

async function main() {
  const opts = { rounds: 3, warmup: 1, tasks: 100_000, trips: 2_000, "trip-warmup": 500, "cpu-tasks": 40, "cpu-ms": 10 };
  for (const arg of process.argv.slice(2)) {
    const m = /^--([\w-]+)=(\d+)$/.exec(arg);
    if (!m || !(m[1] in opts || m[1] === "reps")) {
      console.error(`bench_pool_piscina: bad argument ${arg}`);
      process.exit(2);
    }
    if (m[1] !== "reps") opts[m[1]] = Number(m[2]);
  }
  const base = (id, unit, better, label) => ({ id, runtime: "node", col: "piscina", label, unit, better });
  const METRICS = [
    base("pool_submit.piscina", "tasks/s", "higher", `piscina ${opts.tasks} × \`run(i)\`, then \`Promise.all\``),
    base("pool_rt.piscina", "µs", "lower", `piscina \`await run(1)\`, mean of ${opts.trips}`),
    base("pool_cpu.piscina", "×", "higher", `piscina ${opts["cpu-tasks"]} × run({ n }), cpu(n) ≈ ${opts["cpu-ms"]} ms, vs serial`),
  ];

  let Piscina;
  try {
    ({ Piscina } = await import("piscina"));
  } catch (err) {
    // Not installed (npm ci not run): every row says so, nothing fails.
    for (const m of METRICS) console.log("##RESULT " + JSON.stringify({ ...m, skipped: `piscina not installed (${err.code ?? err})` }));
    return;
  }
  const pool = new Piscina({ filename: import.meta.url, minThreads: 2, maxThreads: 2 });
  const now = () => performance.now();
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };

  // cpu(n) for ~cpu-ms ms on this thread, after the JIT has seen it (as bench_pool.ts).
  let n = 100_000;
  for (let i = 0; i < 20; i++) cpu(n);
  for (;;) {
    const t0 = now();
    cpu(n);
    const ms = now() - t0;
    if (ms > 20) {
      const guess = Math.round((n * opts["cpu-ms"]) / ms), times = [];
      for (let i = 0; i < 5; i++) {
        const t1 = now();
        cpu(guess);
        times.push(now() - t1);
      }
      n = Math.round((guess * opts["cpu-ms"]) / median(times));
      break;
    }
    n *= 2;
  }
  const cpuN = n, taskMs = [];

  const submit = async () => {
    const t0 = now(), ps = [];
    for (let i = 0; i < opts.tasks; i++) ps.push(pool.run(i));
    const out = await Promise.all(ps);
    const dt = (now() - t0) / 1000;
    if (out[opts.tasks - 1] !== (opts.tasks - 1) ** 2) throw new Error("piscina: wrong result");
    return opts.tasks / dt;
  };
  const roundTrip = async () => {
    for (let i = 0; i < opts["trip-warmup"]; i++) await pool.run(1);
    const t0 = now();
    for (let i = 0; i < opts.trips; i++) await pool.run(1);
    return ((now() - t0) * 1000) / opts.trips;
  };
  const speedup = async () => {
    const k = opts["cpu-tasks"];
    const serial = () => {
      const t0 = now();
      for (let i = 0; i < k; i++) cpu(cpuN);
      return now() - t0;
    };
    const a = serial();
    const t0 = now();
    await Promise.all(Array.from({ length: k }, () => pool.run({ n: cpuN })));
    const b = now() - t0;
    const a2 = serial();
    taskMs.push((a + a2) / 2 / k);
    return (a + a2) / 2 / b;
  };
  const runs = [submit, roundTrip, speedup];

  // Warm the pool: 5,000 tasks, the round trip's warm-up and a few cpu tasks (not timed).
  const full = { tasks: opts.tasks, trips: opts.trips, "cpu-tasks": opts["cpu-tasks"] };
  Object.assign(opts, { tasks: 5_000, trips: 0, "cpu-tasks": 4 });
  for (const run of runs) await run();
  Object.assign(opts, { tasks: full.tasks / 10, trips: full.trips / 10, "cpu-tasks": full["cpu-tasks"] / 10 });
  for (let i = 0; i < opts.warmup; i++) for (const run of runs) await run();
  Object.assign(opts, full);

  const values = runs.map(() => []);
  for (let r = 0; r < opts.rounds; r++) {
    for (let k = 0; k < runs.length; k++) {
      const i = (k + r) % runs.length;
      values[i].push(await runs[i]());
    }
  }
  await pool.destroy();

  const r4 = (x) => Number(x.toPrecision(4));
  const { version } = JSON.parse(
    (await import("node:fs")).readFileSync(new URL("../node_modules/piscina/package.json", import.meta.url), "utf8"),
  );
  console.log(`\npiscina ${version} on node ${process.version}: ${opts.rounds} rounds; cpu n = ${cpuN}, ` +
    `${median(taskMs).toFixed(1)} ms per task in the serial runs (median)`);
  METRICS.forEach((m, i) => {
    const vs = values[i];
    console.log("##RESULT " + JSON.stringify({
      ...m, median: r4(median(vs)), min: r4(Math.min(...vs)), max: r4(Math.max(...vs)), n: vs.length,
      round_values: vs.map(r4), ...(m.id === "pool_cpu.piscina" ? { cpu_n: cpuN } : {}),
    }));
    console.log(`  ${m.label.padEnd(60)} ${r4(median(vs))} ${m.unit}  (${r4(Math.min(...vs))}–${r4(Math.max(...vs))})`);
  });
}
