/**
 * Where a queue's storage lives for each start method, and how a handle to it
 * crosses to a child.
 *
 * @module
 */
import { brokerPath } from "./_broker.ts";
import { BrokeredFifo, type BrokeredState } from "./_broker_fifo.ts";
import type { Fifo } from "./_fifo.ts";
import { SharedFifo } from "./_shm_fifo.ts";
import type { StartMethod } from "./_start_method.ts";
import { StartMethodError } from "./errors.ts";
import type { Transport } from "./serialization.ts";

interface SharedState {
  method: "worker";
  buffer: SharedArrayBuffer;
}

/**
 * New storage for a queue of the given start method: shared memory under
 * "worker", a queue of the program's broker (started on first use) under "process".
 */
export function openFifo(method: StartMethod, maxsize: number): Fifo {
  if (method === "worker") return new SharedFifo({ maxsize });
  return BrokeredFifo.create(brokerPath(), maxsize);
}

/** What crosses to a child for `fifo`. */
export function reduceFifo(fifo: Fifo, _method: StartMethod, transport: Transport, what: string): unknown {
  if (fifo instanceof BrokeredFifo) return fifo.state();
  if (transport !== "worker") {
    throw new StartMethodError(
      `a ${what} made for the "worker" start method lives in this process's shared memory and can only be ` +
        `passed to "worker" children; make it with { context: "process" } to share it with subprocesses`,
    );
  }
  return { method: "worker", buffer: (fifo as SharedFifo).buffer } satisfies SharedState;
}

/** The storage a reduced handle names, in this isolate. */
export function rebuildFifo(state: unknown): { method: StartMethod; fifo: Fifo } {
  const s = state as SharedState | BrokeredState;
  if (s.method === "process") return { method: "process", fifo: new BrokeredFifo(s.path, s.id, s.maxsize) };
  return { method: "worker", fifo: new SharedFifo(s.buffer) };
}
