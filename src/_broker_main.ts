/**
 * The entry module of the broker's worker thread. It runs on its own event loop, so
 * a busy main thread in the owning process never stalls the program's queues, and
 * it ends with its owner (the owner unrefs it: it never keeps a program alive).
 *
 * @module
 */
import { BrokerServer } from "./_broker_server.ts";
import type { BrokerInit, BrokerReport } from "./_broker.ts";
import { runtime } from "./runtime/detect.ts";

const started = await runtime.childInit();
if (started === undefined) {
  runtime.writeStderr("polyproc: this module is the entry point of polyproc's broker; it is not run by hand\n");
  runtime.exit(2);
}
const { path, authkey } = started.init as BrokerInit;
const report = (message: BrokerReport) => started.channel.send(message);
// A bug in serving one connection must not take every queue of the program down.
runtime.onUncaughtError((err) => runtime.writeStderr(`polyproc broker: ${(err as Error)?.stack ?? err}\n`));
try {
  const server = new BrokerServer(authkey);
  await runtime.net.listen(path, (socket) => server.accept(socket));
  report({ type: "listening" });
} catch (err) {
  report({ type: "failed", message: `${(err as Error)?.message ?? err}` });
}
