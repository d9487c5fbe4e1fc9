// The raw baselines' child for scripts/bench_queue.ts, in plain JavaScript so that it runs on every runtime
// without a loader. It is either a node:worker_threads worker (talking through parentPort.postMessage) or a
// node:child_process.fork child (talking through process.send, serialization "advanced"). Its job comes in
// workerData (worker) or argv[2] (fork), as JSON: { mode: "ints" | "bytes" | "echo", n, size }.
//   ints:  posts 0..n-1, then exits (fork: once the parent disconnects)
//   bytes: posts n copies of one size-byte Uint8Array (each post clones it)
//   echo:  posts back every message until a null one
import process from "node:process";
import { parentPort, workerData } from "node:worker_threads";

const port = parentPort;
const job = port ? workerData : JSON.parse(process.argv[2]);
const post = port ? (m) => port.postMessage(m) : (m) => process.send(m);

if (job.mode === "ints") {
  for (let i = 0; i < job.n; i++) post(i);
} else if (job.mode === "bytes") {
  const item = new Uint8Array(job.size).fill(120);
  for (let i = 0; i < job.n; i++) post(item);
} else if (job.mode === "echo") {
  const onMessage = (m) => {
    if (m !== null) post(m);
    else if (port) port.off("message", onMessage); // nothing keeps the worker alive: it exits
    else process.disconnect();
  };
  if (port) port.on("message", onMessage);
  else process.on("message", onMessage);
} else {
  throw new Error(`bench_queue_raw: unknown mode ${job.mode}`);
}
