// Python: workers wait on an Event; the parent sets it and they all go
//   def worker(ev, q, n):
//       ev.wait(); q.put(f"worker {n} released")
// Run: deno run --allow-read --allow-run --allow-env --allow-write --allow-net examples/10_event.ts [worker|process]
import process from "node:process";
import { Event, fromModule, isMainModule, Process, Queue, Semaphore, setStartMethod, type StartMethod } from "../mod.ts";

export async function worker(ready: Semaphore, go: Event, out: Queue<string>, n: number): Promise<void> {
  await ready.release(); // "I am about to wait"
  await go.wait();
  await out.put(`worker ${n} released`);
}

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  const self = fromModule<typeof import("./10_event.ts")>(import.meta.url);
  const [ready, go, out] = [new Semaphore(0), new Event(), new Queue<string>()];
  const workers = [0, 1, 2].map((n) => new Process({ target: self.worker, args: [ready, go, out, n] }));
  for (const p of workers) p.start();
  for (let i = 0; i < workers.length; i++) await ready.acquire();
  console.log(`event set? ${await go.isSet()}`);
  await go.set();
  const lines: string[] = [];
  for (let i = 0; i < workers.length; i++) lines.push(await out.get());
  console.log(lines.sort().join("\n"));
  for (const p of workers) await p.join();
  console.log(`exitcodes: ${JSON.stringify(workers.map((p) => p.exitCode))}`);
}
