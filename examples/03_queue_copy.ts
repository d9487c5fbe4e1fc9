// Python: a Queue handed to the child at creation; items arrive as copies.
// Run: deno run --allow-read --allow-run --allow-env examples/03_queue_copy.ts [worker|process]
import process from "node:process";
import { fromModule, isMainModule, Process, Queue, setStartMethod, type StartMethod } from "../mod.ts";

type Item = { id: number; tags: string[]; seenByChild?: boolean };

export async function consumer(q: Queue<Item>, out: Queue<Item>): Promise<void> {
  const item = await q.get(); // a copy
  item.seenByChild = true;
  item.tags.push("child");
  await out.put(item);
}

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  const self = fromModule<typeof import("./03_queue_copy.ts")>(import.meta.url);
  const q = new Queue<Item>();
  const out = new Queue<Item>(); // queues handed to the child at creation
  const item: Item = { id: 1, tags: ["parent"] };
  const p = new Process({ target: self.consumer, args: [q, out] });
  p.start();
  await q.put(item);
  const back = await out.get();
  await p.join();
  console.log("parent original:", JSON.stringify(item));
  console.log("returned by child:", JSON.stringify(back));
  console.log("same object?", back === item);
}
