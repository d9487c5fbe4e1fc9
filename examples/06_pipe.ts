// Python: Pipe() between a parent and a child that replies, then closes its end.
// Run: deno run --allow-read --allow-run --allow-env examples/06_pipe.ts [worker|process]
import process from "node:process";
import { type Connection, EOFError, fromModule, isMainModule, pipe, Process, setStartMethod, type StartMethod } from "../mod.ts";

export async function child(conn: Connection): Promise<void> {
  const msg = await conn.recv();
  conn.send(`child got ${JSON.stringify(msg)}`);
  conn.send([1, 2, { k: "v" }]);
  conn.close();
}

if (isMainModule(import.meta)) {
  setStartMethod((process.argv[2] ?? "worker") as StartMethod);
  const self = fromModule<typeof import("./06_pipe.ts")>(import.meta.url);
  const [parentConn, childConn] = pipe(); // duplex by default
  const p = new Process({ target: self.child, args: [childConn] });
  p.start();
  childConn.close(); // the child holds its own copy
  parentConn.send("hello");
  console.log(await parentConn.recv());
  console.log(JSON.stringify(await parentConn.recv()));
  await p.join();
  try {
    await parentConn.recv();
  } catch (e) {
    if (e instanceof EOFError) console.log("EOFError after child closed its end");
  }
}
