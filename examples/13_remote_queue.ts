// Python: a queue served by one process (BaseManager with an address and an authkey),
// used by two others through connect(): one puts, the other gets. A wrong key is refused.
// Run: deno run --allow-read --allow-write --allow-net --allow-run --allow-env examples/13_remote_queue.ts [worker|process]
import process from "node:process";
import {
  AuthenticationError,
  type AutoProxy,
  BaseManager,
  fromModule,
  isMainModule,
  type ManagerAddress,
  Process,
  Queue,
  setStartMethod,
  type StartMethod,
} from "../mod.ts";

const self = fromModule<typeof import("./13_remote_queue.ts")>(import.meta.url);
const AUTHKEY = "abracadabra";

// Made on first use, so only the server process has one (every importer runs this module).
let queue: Queue<string> | undefined;
export function getQueue(): Queue<string> {
  return queue ??= new Queue<string>(0, { context: "worker" });
}

export class QueueManager extends BaseManager {
  declare getQueue: () => Promise<AutoProxy<Queue<string>>>;
}
QueueManager.register("getQueue", self.getQueue);

export async function producer(address: ManagerAddress): Promise<void> {
  const m = new QueueManager({ address, authkey: AUTHKEY });
  await m.connect();
  const q = await m.getQueue();
  await q.put("hello");
  console.log("producer put: hello");
  await m.close();
}

export async function consumer(address: ManagerAddress): Promise<void> {
  const m = new QueueManager({ address, authkey: AUTHKEY });
  await m.connect();
  const q = await m.getQueue();
  console.log(`consumer got: ${await q.get()}`);
  await m.close();
}

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  // The serving process: Python's `m.get_server().serve_forever()` in a process of its own.
  const server = new QueueManager({ address: { host: "127.0.0.1", port: 0 }, authkey: AUTHKEY, context: "process" });
  await server.start();
  for (const target of [self.producer, self.consumer]) {
    const p = new Process({ target, args: [server.address] });
    p.start();
    await p.join();
  }
  const intruder = new QueueManager({ address: server.address, authkey: "guess" });
  await intruder.connect().catch((e) => console.log(`wrong key: ${e instanceof AuthenticationError ? "AuthenticationError" : e}`));
  await server.shutdown();
}
