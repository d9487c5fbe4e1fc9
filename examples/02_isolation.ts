// Python: each child appends to its own copy of a module-global list; the
// parent's list stays empty, because every child imports the module afresh.
// Run: deno run --allow-read --allow-run --allow-env examples/02_isolation.ts [worker|process]
import process from "node:process";
import { fromModule, isMainModule, Process, setStartMethod, type StartMethod } from "../mod.ts";

const data: number[] = [];

export function worker(i: number): void {
  data.push(i);
  console.log(`child ${i}: data = ${JSON.stringify(data)}`);
}

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  const self = fromModule<typeof import("./02_isolation.ts")>(import.meta.url);
  for (let i = 0; i < 3; i++) {
    const p = new Process({ target: self.worker, args: [i] });
    p.start();
    await p.join(); // join at once, so the output order is fixed
  }
  console.log(`parent: data = ${JSON.stringify(data)}`);
}
