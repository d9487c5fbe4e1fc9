// Python: Pool.map / apply_async / imap / starmap, then ProcessPoolExecutor.map and as_completed.
// Run: deno run --allow-read --allow-run --allow-env examples/07_pools.ts [worker|process]
import process from "node:process";
import { asCompleted, fromModule, isMainModule, Pool, ProcessPoolExecutor, setStartMethod, type StartMethod } from "../mod.ts";

export function square(x: number): number {
  return x * x;
}

const list = (items: unknown[]) => `[${items.join(", ")}]`;

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  const { square } = fromModule<typeof import("./07_pools.ts")>(import.meta.url);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);

  const pool = new Pool({ processes: 4 });
  try {
    console.log("Pool.map:", list(await pool.map(square, range(10))));
    console.log("Pool.apply_async:", await pool.applyAsync(square, [12]).get(10_000));
    const imapped = [];
    for await (const y of pool.imap(square, range(5))) imapped.push(y);
    console.log("Pool.imap:", list(imapped));
    // A shipped function stands in for Python's builtin pow.
    console.log("Pool.starmap:", list(await pool.starmap((b: number, e: number) => b ** e, [[2, 5], [3, 3]])));
  } finally {
    pool.terminate(); // Python's `with Pool()` terminates on exit
    await pool.join();
  }

  const ex = new ProcessPoolExecutor({ maxWorkers: 4 });
  try {
    const mapped = [];
    for await (const y of ex.map(square, range(10))) mapped.push(y);
    console.log("Executor.map:", list(mapped));
    const futures = new Map(range(5).map((n) => [ex.submit(square, n), n]));
    const pairs: [number, number][] = [];
    for await (const f of asCompleted(futures.keys())) pairs.push([futures.get(f)!, await f.result()]);
    pairs.sort((a, b) => a[0] - b[0]);
    console.log("as_completed (sorted):", list(pairs.map(([n, y]) => `(${n}, ${y})`)));
  } finally {
    await ex.shutdown(); // Python's `with ProcessPoolExecutor()` waits
  }
}
