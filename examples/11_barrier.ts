// Python: a simulation stepped by a Barrier. Each of 3 workers owns one cell and
// moves it every step; nobody starts step k+1 before all have finished step k.
//   b = Barrier(3, timeout=60)
//   def cell(b, moves, i):
//       for step in range(3): moves.put((step, i)); b.wait()
// The state is a Queue of moves here, so that it runs under both start methods.
// Run: deno run --allow-read --allow-run --allow-env --allow-write --allow-net examples/11_barrier.ts [worker|process]
import process from "node:process";
import { Barrier, fromModule, isMainModule, Process, Queue, setStartMethod, type StartMethod } from "../mod.ts";

export async function cell(barrier: Barrier, moves: Queue<[number, number]>, i: number): Promise<void> {
  for (let s = 0; s < 3; s++) {
    await moves.put([s, i]);
    await barrier.wait();
  }
}

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  const self = fromModule<typeof import("./11_barrier.ts")>(import.meta.url);
  // Bounded, so that each put is in the queue before its wait (an unbounded queue may buffer a put).
  const moves = new Queue<[number, number]>(100);
  const barrier = new Barrier(3, { timeout: 60_000 });
  const cells = [0, 1, 2].map((i) => new Process({ target: self.cell, args: [barrier, moves, i] }));
  for (const p of cells) p.start();
  for (let s = 0; s < 3; s++) {
    const batch: [number, number][] = [];
    for (let k = 0; k < 3; k++) batch.push(await moves.get());
    // Every move of step s comes before any move of step s+1: the barrier keeps them in step.
    console.log(`step ${s}: steps seen ${JSON.stringify([...new Set(batch.map(([st]) => st))])}, cells ${JSON.stringify(batch.map(([, c]) => c).sort())}`);
  }
  for (const p of cells) await p.join();
  console.log(`broken? ${await barrier.broken()}; exitcodes: ${JSON.stringify(cells.map((p) => p.exitCode))}`);
}
