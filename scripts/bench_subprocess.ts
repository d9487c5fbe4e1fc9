/**
 * Spawn + wait of `true`: polyproc's `run(["true"])` against the runtime's own raw
 * spawn, side by side in one run (issue 6: within 1.2× of the raw spawn, and faster
 * than Python's `subprocess.run(["true"])`, which scripts/bench_python.py measures).
 *
 *   node --import tsx scripts/bench_subprocess.ts
 *   deno run --allow-read --allow-run --allow-env scripts/bench_subprocess.ts
 *   bun scripts/bench_subprocess.ts
 *
 * Options: --rounds=5 --reps=20 --warmup=10
 *
 * The raw spawn is what each runtime's users would write, stdio inherited, until the exit
 * status: node `child_process.spawn("true")` → "exit"; deno `new Deno.Command("true")
 * .spawn().status`; bun `Bun.spawn(["true"]).exited`. Each rep runs polyproc then raw
 * (the order flips every round); a result is the median of all samples, with each round's
 * median for per-round ratios. Prints `##RESULT {json}` lines as bench_process.ts does.
 *
 * @module
 */
import { spawn } from "node:child_process";
import process from "node:process";
import { run } from "../mod.ts";

type Runtime = "node" | "deno" | "bun";
const g = globalThis as {
  Deno?: { Command: new (cmd: string, o: object) => { spawn(): { status: Promise<{ code: number }> } } };
  Bun?: { spawn(cmd: string[], o: object): { exited: Promise<number> } };
};
const RUNTIME: Runtime = g.Deno !== undefined ? "deno" : g.Bun !== undefined ? "bun" : "node";
const TSX = RUNTIME === "node" && process.execArgv.some((a) => a.includes("tsx"));
const COL = RUNTIME === "node" && !TSX ? "node-js" : RUNTIME;

const opts = { rounds: 5, reps: 20, warmup: 10 };
for (const arg of process.argv.slice(2)) {
  const m = /^--(rounds|reps|warmup)=(\d+)$/.exec(arg);
  if (!m) {
    console.error(`bench_subprocess: unknown argument ${arg}`);
    process.exit(2);
  }
  opts[m[1] as keyof typeof opts] = Number(m[2]);
}

const STDIO = { stdin: "inherit", stdout: "inherit", stderr: "inherit" };
const raw: Record<Runtime, { label: string; run: () => Promise<unknown> }> = {
  node: {
    label: 'raw `child_process.spawn("true")` → exit',
    run: () => new Promise((resolve, reject) => spawn("true", { stdio: "inherit" }).on("exit", resolve).on("error", reject)),
  },
  deno: { label: 'raw `new Deno.Command("true").spawn().status`', run: () => new g.Deno!.Command("true", STDIO).spawn().status },
  bun: { label: 'raw `Bun.spawn(["true"]).exited`', run: () => g.Bun!.spawn(["true"], { stdio: ["inherit", "inherit", "inherit"] }).exited },
};
const metrics = [
  { id: "subprocess.run", label: 'polyproc `await run(["true"])`', run: () => run(["true"]) },
  { id: "subprocess.raw", ...raw[RUNTIME] },
];

async function sample(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round2 = (x: number) => Math.round(x * 100) / 100;

for (let i = 0; i < opts.warmup; i++) for (const m of metrics) await sample(m.run);
const rounds = metrics.map(() => [] as number[][]);
for (let r = 0; r < opts.rounds; r++) {
  const xs = metrics.map(() => [] as number[]);
  for (let k = 0; k < opts.reps; k++) {
    for (let j = 0; j < metrics.length; j++) {
      const i = r % 2 === 0 ? j : metrics.length - 1 - j;
      xs[i].push(await sample(metrics[i].run));
    }
  }
  xs.forEach((x, i) => rounds[i].push(x));
}

console.log(`${COL}: spawn+wait of \`true\`, ${opts.rounds} rounds × ${opts.reps} reps after ${opts.warmup} warm-up`);
const medians: number[] = [];
metrics.forEach((m, i) => {
  const all = rounds[i].flat();
  medians.push(median(all));
  console.log("##RESULT " + JSON.stringify({
    id: m.id,
    runtime: RUNTIME,
    col: COL,
    label: m.label,
    median_ms: round2(median(all)),
    min_ms: round2(Math.min(...all)),
    max_ms: round2(Math.max(...all)),
    n: all.length,
    round_medians_ms: rounds[i].map((xs) => round2(median(xs))),
  }));
  console.log(`  ${m.label.padEnd(45)} ${median(all).toFixed(2).padStart(6)} ms`);
});
console.log(`  ratio polyproc / raw: ${(medians[0] / medians[1]).toFixed(2)}x (target ≤ 1.2x)`);
