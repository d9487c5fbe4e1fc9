// Python: Manager().list() shared by 10 processes; each appends its number.
// Run: deno run --allow-read --allow-write --allow-net --allow-run --allow-env examples/12_manager_list.ts [worker|process]
import process from "node:process";
import { fromModule, isMainModule, type ListProxy, Manager, Process, setStartMethod, type StartMethod } from "../mod.ts";

export async function worker(shared: ListProxy<number>, i: number): Promise<void> {
  await shared.append(i);
}

if (isMainModule(import.meta)) {
  const method = (process.argv[2] ?? "worker") as StartMethod;
  setStartMethod(method);
  const self = fromModule<typeof import("./12_manager_list.ts")>(import.meta.url);
  // The server is a child too: a subprocess by default, as in Python; here the same method as the workers.
  await using manager = new Manager({ context: method });
  await manager.start();
  const shared = await manager.list<number>();
  const ps = Array.from({ length: 10 }, (_, i) => new Process({ target: self.worker, args: [shared, i] }));
  for (const p of ps) p.start();
  for (const p of ps) await p.join();
  console.log(await shared.length());
  console.log(`[${(await shared.toArray()).sort((a, b) => a - b).join(", ")}]`);
}
