/**
 * What the small bench programs share: the runtime and column names, rounds taken in
 * turn (each round starts with a different metric, so no metric always runs first),
 * and the `##RESULT {json}` lines scripts/bench.mjs reads (id, runtime, col, label,
 * unit, better, median, min, max, n, round_values), each followed by a line for people.
 *
 * @module
 */
import process from "node:process";

const g = globalThis as { Deno?: unknown; Bun?: unknown };
/** The runtime this program runs on. */
export const runtime: string = g.Deno !== undefined ? "deno" : g.Bun !== undefined ? "bun" : "node";
/** The table column: "node-js" for Node without tsx (the transpiled tree). */
export const col: string = runtime === "node" && !process.execArgv.some((a) => a.includes("tsx")) ? "node-js" : runtime;

/** One figure a bench program measures. */
export interface Metric {
  id: string;
  label: string;
  unit: string;
  better: "higher" | "lower";
  /** One sample. */
  run(): Promise<number>;
}

/** `rounds` samples of every metric, taken in turn. */
export async function takeRounds(metrics: readonly Metric[], rounds: number): Promise<Map<string, number[]>> {
  const values = new Map(metrics.map((m) => [m.id, [] as number[]]));
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < metrics.length; k++) {
      const m = metrics[(k + round) % metrics.length];
      values.get(m.id)!.push(await m.run());
    }
  }
  return values;
}

/** Prints each metric's `##RESULT` line and its line for people. */
export function printResults(metrics: readonly Metric[], values: Map<string, number[]>): void {
  const r4 = (x: number) => Number(x.toPrecision(4));
  for (const m of metrics) {
    const vs = values.get(m.id)!;
    const sorted = [...vs].sort((a, b) => a - b);
    const [median, min, max] = [sorted[Math.floor(sorted.length / 2)], sorted[0], sorted[sorted.length - 1]];
    console.log("##RESULT " + JSON.stringify({
      id: m.id,
      runtime,
      col,
      label: m.label,
      unit: m.unit,
      better: m.better,
      median: r4(median),
      min: r4(min),
      max: r4(max),
      n: vs.length,
      round_values: vs.map(r4),
    }));
    console.log(`  ${m.label}: ${r4(median)} ${m.unit} (${r4(min)}–${r4(max)})`);
  }
}
