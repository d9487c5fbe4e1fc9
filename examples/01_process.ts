// Python: Process(target=run_proc, args=("test", 0.1)); p.start(); p.join()
// Run: deno run --allow-read --allow-run --allow-env examples/01_process.ts [worker|process]
//      bun examples/01_process.ts    node --import tsx examples/01_process.ts
import process from "node:process";
import { fromModule, isMainModule, Process, setStartMethod, type StartMethod } from "../mod.ts";

export async function runProc(name: string, delay: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, delay));
  console.log(`child ${name} running`);
}

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  const self = fromModule<typeof import("./01_process.ts")>(import.meta.url);
  console.log("parent start");
  const p = new Process({ target: self.runProc, args: ["test", 100] });
  console.log("child will start");
  p.start();
  await p.join();
  console.log(`child end, exitcode=${p.exitCode}`);
}
