// Python: one producer, three consumers, one null sentinel per consumer.
// Run: deno run --allow-read --allow-run --allow-env examples/04_producer_consumer.ts [worker|process]
import process from "node:process";
import { fromModule, isMainModule, Process, Queue, setStartMethod, type StartMethod } from "../mod.ts";

const N_CONSUMERS = 3;
type Result = number | ["done", number];

export async function producer(q: Queue<number | null>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await q.put(i);
}

export async function consumer(q: Queue<number | null>, results: Queue<Result>, cid: number): Promise<void> {
  for (;;) {
    const item = await q.get();
    if (item === null) break; // sentinel: one per consumer
    await results.put(item * 10);
  }
  await results.put(["done", cid]);
}

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  const self = fromModule<typeof import("./04_producer_consumer.ts")>(import.meta.url);
  const q = new Queue<number | null>();
  const results = new Queue<Result>();
  const prod = new Process({ target: self.producer, args: [q, 20] });
  const cons = Array.from({ length: N_CONSUMERS }, (_, c) => new Process({ target: self.consumer, args: [q, results, c] }));
  prod.start();
  for (const c of cons) c.start();
  await prod.join();
  for (const _ of cons) await q.put(null);
  const values: number[] = [];
  const done: number[] = [];
  while (done.length < N_CONSUMERS) {
    const r = await results.get();
    if (Array.isArray(r)) done.push(r[1]);
    else values.push(r);
  }
  for (const c of cons) await c.join();
  console.log("values:", JSON.stringify(values.sort((a, b) => a - b)));
  console.log("consumers finished:", JSON.stringify(done.sort()));
  console.log("exitcodes:", JSON.stringify(cons.map((c) => c.exitCode)));
}
