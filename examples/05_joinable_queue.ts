// Python: JoinableQueue with task_done()/join(), served by two daemon workers.
// Run: deno run --allow-read --allow-run --allow-env examples/05_joinable_queue.ts [worker|process]
import process from "node:process";
import { fromModule, isMainModule, JoinableQueue, Process, Queue, setStartMethod, type StartMethod } from "../mod.ts";

export async function worker(jq: JoinableQueue<number>, out: Queue<number>): Promise<void> {
  for (;;) {
    const item = await jq.get();
    try {
      await out.put(item * item);
    } finally {
      await jq.taskDone();
    }
  }
}

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  const self = fromModule<typeof import("./05_joinable_queue.ts")>(import.meta.url);
  const jq = new JoinableQueue<number>();
  const out = new Queue<number>();
  for (let i = 0; i < 2; i++) new Process({ target: self.worker, args: [jq, out], daemon: true }).start();
  for (let i = 0; i < 10; i++) await jq.put(i);
  await jq.join(); // resolves when taskDone() was called 10 times
  console.log("all tasks done");
  const squares: number[] = [];
  for (let i = 0; i < 10; i++) squares.push(await out.get());
  console.log(JSON.stringify(squares.sort((a, b) => a - b)));
  try {
    await jq.taskDone();
  } catch (e) {
    console.log("extra taskDone ->", `${(e as Error).name}:`, (e as Error).message);
  }
}
