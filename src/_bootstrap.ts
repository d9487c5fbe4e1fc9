/**
 * The entry module of every child, worker or subprocess: learn who we are, run
 * the target, report an uncaught error the way Python does, and exit with the
 * code the parent will read.
 *
 * @module
 */
import { flushBrokersNow, inheritBroker, settleBrokers } from "./_broker.ts";
import { setChildIdentity } from "./_child_state.ts";
import type { StartMessage } from "./_protocol.ts";
import { inheritStartMethod } from "./_start_method.ts";
import { flushAll } from "./_shm_fifo.ts";
import { flushBrokered } from "./_broker_fifo.ts";
import { Process } from "./process.ts";
import { runtime } from "./runtime/detect.ts";
import { unpack } from "./serialization.ts";
import { loadTarget } from "./target.ts";
// Loaded for their handles: a queue, pipe end, lock, ... among the arguments is rebuilt by them.
import "./queues.ts";
import { releaseAll } from "./_manager_proxy.ts";
import "./synchronize.ts";
import "./sharedctypes.ts";
import { closeAllConnections } from "./connection.ts";

function describe(err: unknown): string {
  if (!(err instanceof Error)) return `Uncaught ${String(err)}`;
  let text = err.stack ?? `${err.name}: ${err.message}`;
  if (err.cause !== undefined) text += `\nCaused by: ${describe(err.cause)}`;
  return text;
}

const started = await runtime.childInit();
if (started === undefined) {
  runtime.writeStderr("polyproc: this module is the entry point of polyproc's children; it is not run by hand\n");
  runtime.exit(2);
}
const start = started.init as StartMessage;
const self = { name: start.name, pid: runtime.pid, ident: started.ident, daemon: start.daemon };
const report = (err: unknown) => runtime.writeStderr(`Process ${self.name}:\n${describe(err)}\n`);

const identity = {
  self,
  parent: start.parent,
  startMethod: start.startMethod,
  channel: started.channel,
  importing: true,
};
setChildIdentity(identity);
inheritStartMethod(start.defaultStartMethod);
inheritBroker(start.broker);
if (start.startMethod === "process") runtime.watchParent(start.parent.pid, () => runtime.exit(1));
// However the child ends (exit(), an uncaught error), what it put is delivered and its
// pipe ends are closed, as the OS closes a dying process's files.
runtime.onExit(() => {
  flushAll();
  closeAllConnections();
  flushBrokersNow();
});
runtime.onUncaughtError((err) => {
  report(err);
  runtime.exit(1);
});

let code = 0;
try {
  const fn = await loadTarget(start.target);
  identity.importing = false;
  await fn(...(unpack(start.args) as unknown[]));
} catch (err) {
  report(err);
  code = 1;
}
await Process.finishChildren();
flushAll(); // what the target put must reach the queue before the child ends
await flushBrokered();
await settleBrokers(); // the broker has every ack: nothing this child got is delivered again
await releaseAll(); // managers have dropped what this child held: its parent sees it freed
closeAllConnections();
runtime.exit(code);
