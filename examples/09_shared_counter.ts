// Python: 4 processes each add 1,000 to a shared counter under a Lock
//   def add(v, lock):
//       for _ in range(1000):
//           with lock: v.value += 1
// Under "worker" the counter is a Value in shared memory; processes share no memory,
// so under "process" it is a Manager's Value (Python's Manager().Value).
// Run: deno run --allow-read --allow-run --allow-env --allow-write --allow-net examples/09_shared_counter.ts [worker|process]
import process from "node:process";
import {
  fromModule,
  isMainModule,
  Lock,
  Manager,
  Process,
  setStartMethod,
  type StartMethod,
  Value,
  type ValueProxy,
} from "../mod.ts";

export async function add(counter: Value<"i"> | ValueProxy<number>, lock: Lock): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    // `value += 1` reads, then writes: without the lock, two children can both read 7 and both write 8.
    await lock.withLock(async () => {
      if (counter instanceof Value) counter.value += 1;
      else await counter.set((await counter.get()) + 1);
    });
  }
}

if (isMainModule(import.meta)) {
  const method = (process.argv[2] ?? "worker") as StartMethod;
  setStartMethod(method);
  const self = fromModule<typeof import("./09_shared_counter.ts")>(import.meta.url);
  const manager = method === "process" ? new Manager() : undefined;
  await manager?.start();
  const counter = manager ? await manager.Value<number>("i", 0) : new Value("i", 0);
  const lock = new Lock();
  const children = Array.from({ length: 4 }, () => new Process({ target: self.add, args: [counter, lock] }));
  for (const p of children) p.start();
  for (const p of children) await p.join();
  console.log(`counter = ${counter instanceof Value ? counter.value : await counter.get()}`);
  console.log(`exitcodes: ${JSON.stringify(children.map((p) => p.exitCode))}`);
  await manager?.shutdown();
}
