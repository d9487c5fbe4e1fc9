/**
 * Where a queue's storage lives for each start method, and how a handle to it
 * crosses to a child.
 *
 * @module
 */
import type { Fifo } from "./_fifo.ts";
import { SharedFifo } from "./_shm_fifo.ts";
import type { StartMethod } from "./_start_method.ts";
import { StartMethodError } from "./errors.ts";
import type { Transport } from "./serialization.ts";

interface SharedState {
  method: "worker";
  buffer: SharedArrayBuffer;
}

/** New storage for a queue of the given start method. */
export function openFifo(method: StartMethod, maxsize: number): Fifo {
  if (method === "worker") return new SharedFifo({ maxsize });
  throw new StartMethodError('Queues for the "process" start method are not available yet');
}

/** What crosses to a child for `fifo`. */
export function reduceFifo(fifo: Fifo, method: StartMethod, transport: Transport, what: string): unknown {
  if (fifo instanceof SharedFifo) {
    if (transport !== "worker") {
      throw new StartMethodError(
        `a ${what} made for the "worker" start method lives in this process's shared memory and can only be ` +
          `passed to "worker" children; make it with { context: "process" } to share it with subprocesses`,
      );
    }
    return { method: "worker", buffer: fifo.buffer } satisfies SharedState;
  }
  throw new StartMethodError(`Cannot pass this ${what}`);
}

/** The storage a reduced handle names, in this isolate. */
export function rebuildFifo(state: unknown): { method: StartMethod; fifo: Fifo } {
  const shared = state as SharedState;
  return { method: shared.method, fifo: new SharedFifo(shared.buffer) };
}
