/**
 * The "process" start method's locks, semaphores, events, conditions and
 * barriers: handles, in this isolate, to objects the program's broker holds (see
 * src/_broker_sync.ts for their state, and src/_broker.ts for the connection).
 *
 * @module
 */
import { type BrokerClient, brokerPath, connectBroker, newQueueId } from "./_broker.ts";
import type { SemKind } from "./_sync_shm.ts";
import { BrokenBarrierError, ProcessError } from "./errors.ts";
import type {
  BarrierBackend,
  BrokeredSyncFactory,
  ConditionBackend,
  EventBackend,
  SemBackend,
} from "./synchronize.ts";

/** What crosses to a child: enough to open the object, and to make it if the maker's open comes later. */
interface RemoteState {
  path: string;
  id: number;
  open: Record<string, unknown>;
  lock?: RemoteState;
}

type Reply = Record<string, unknown>;

/** Milliseconds left until a performance.now() deadline, or null for none. */
function timeoutOf(deadline: number | undefined): number | null {
  return deadline === undefined ? null : Math.max(0, deadline - performance.now());
}

/** One object of the broker at `path`, as seen from this isolate. */
class Remote {
  #client: Promise<BrokerClient> | undefined;

  constructor(readonly state: RemoteState, readonly borrowed: boolean, readonly what: string) {}

  static create(open: Record<string, unknown>, what: string, lock?: Remote): Remote {
    const remote = new Remote({ path: brokerPath(), id: newQueueId(), open, lock: lock?.state }, false, what);
    // The maker holds a reference from the start, so that a child that uses the object
    // and ends cannot free it.
    remote.connected().catch(() => {});
    return remote;
  }

  connected(): Promise<BrokerClient> {
    return this.#client ??= connectBroker(this.state.path).then(async (client) => {
      // The lock first: a condition's open names it.
      if (this.state.lock) await new Remote(this.state.lock, true, "lock").connected();
      const { reply } = client.request({ op: "sopen", q: this.state.id, ...this.state.open, ...(this.borrowed ? { c: 0 } : {}) });
      this.#check(await reply);
      return client;
    });
  }

  /**
   * Sends a request and returns the reply, errors turned into exceptions. An abort
   * withdraws a waiting request; if the broker served it first, `undo` (given the
   * reply) gives back what was got, and the call still rejects with the reason.
   */
  async call(header: Reply, signal?: AbortSignal, undo?: (reply: Reply) => Promise<void>): Promise<Reply> {
    signal?.throwIfAborted();
    const client = await this.connected();
    const { r, reply } = client.request({ ...header, q: this.state.id });
    if (signal === undefined) return this.#check(await reply);
    const onAbort = () => client.cancel(r);
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort(); // while this isolate connected
    let answer: Reply;
    try {
      answer = await reply;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    if (answer.e === "cancelled") throw signal.reason;
    this.#check(answer);
    if (signal.aborted) {
      await undo?.(answer);
      throw signal.reason;
    }
    return answer;
  }

  #check(reply: Reply): Reply {
    const message = typeof reply.m === "string" ? reply.m : `${this.what} failed`;
    switch (reply.e) {
      case undefined:
        return reply;
      case "range":
        throw new RangeError(message);
      case "broken":
        throw new BrokenBarrierError(`Barrier wait failed: ${message}`);
      case "closed":
        throw new ProcessError(`${this.what} is closed`);
      default:
        throw new ProcessError(message);
    }
  }

  async close(): Promise<void> {
    await this.call({ op: "sclose" });
  }
}

class RemoteSem implements SemBackend {
  constructor(readonly remote: Remote, readonly kind: SemKind) {}

  async acquire(block: boolean, deadline?: number, signal?: AbortSignal): Promise<boolean> {
    const undo = async (reply: Reply) => {
      if (reply.v === true) await this.release();
    };
    return (await this.remote.call({ op: "sacq", b: block, t: timeoutOf(deadline) }, signal, undo)).v === true;
  }

  async release(): Promise<void> {
    await this.remote.call({ op: "srel" });
  }

  async locked(): Promise<boolean> {
    return (await this.remote.call({ op: "slocked" })).v === true;
  }

  async value(): Promise<number> {
    return (await this.remote.call({ op: "svalue" })).v as number;
  }

  close(): Promise<void> {
    return this.remote.close();
  }
}

class RemoteEvent implements EventBackend {
  constructor(readonly remote: Remote) {}

  async isSet(): Promise<boolean> {
    return (await this.remote.call({ op: "eis" })).v === true;
  }

  async set(): Promise<void> {
    await this.remote.call({ op: "eset" });
  }

  async clear(): Promise<void> {
    await this.remote.call({ op: "eclear" });
  }

  async wait(deadline?: number, signal?: AbortSignal): Promise<boolean> {
    return (await this.remote.call({ op: "ewait", t: timeoutOf(deadline) }, signal)).v === true;
  }

  close(): Promise<void> {
    return this.remote.close();
  }
}

class RemoteCondition implements ConditionBackend {
  constructor(readonly remote: Remote) {}

  async wait(deadline?: number, signal?: AbortSignal): Promise<boolean> {
    // The broker re-acquires the lock before it answers, even a cancelled wait.
    return (await this.remote.call({ op: "cwait", t: timeoutOf(deadline) }, signal)).v === true;
  }

  async notify(n: number): Promise<void> {
    await this.remote.call({ op: "cnotify", n: n === Infinity ? -1 : Math.floor(n) });
  }

  close(): Promise<void> {
    return this.remote.close();
  }
}

class RemoteBarrier implements BarrierBackend {
  constructor(readonly remote: Remote, readonly parties: number) {}

  async wait(action: (() => Promise<void>) | undefined, deadline?: number, signal?: AbortSignal): Promise<number> {
    const reply = await this.remote.call({ op: "bwait", t: timeoutOf(deadline), a: action ? 1 : 0 }, signal);
    if (reply.a === 1) {
      // This party completed the pass: it runs the action, then the broker releases everyone.
      let ok = false;
      try {
        await action!();
        ok = true;
      } finally {
        await this.remote.call({ op: "bdone", ok });
      }
    }
    return reply.v as number;
  }

  async abort(): Promise<void> {
    await this.remote.call({ op: "babort" });
  }

  async reset(): Promise<void> {
    await this.remote.call({ op: "breset" });
  }

  async nWaiting(): Promise<number> {
    return ((await this.remote.call({ op: "bstate" })).v as [number, boolean])[0];
  }

  async broken(): Promise<boolean> {
    return ((await this.remote.call({ op: "bstate" })).v as [number, boolean])[1];
  }

  close(): Promise<void> {
    return this.remote.close();
  }
}

type RemoteBackend = RemoteSem | RemoteEvent | RemoteCondition | RemoteBarrier;

/** The "process" start method's backends for src/synchronize.ts. */
export const brokeredSync: BrokeredSyncFactory = {
  sem: (kind, value) => new RemoteSem(Remote.create({ k: kind, v: value }, kind), kind),
  event: () => new RemoteEvent(Remote.create({ k: "Event" }, "Event")),
  condition: (lock) => {
    const lockRemote = (lock as RemoteSem).remote;
    return new RemoteCondition(Remote.create({ k: "Condition", l: lockRemote.state.id }, "Condition", lockRemote));
  },
  barrier: (parties) => new RemoteBarrier(Remote.create({ k: "Barrier", v: parties }, "Barrier"), parties),
  reduce: (backend) => (backend as RemoteBackend).remote.state,
  rebuild: (state) => {
    const s = state as RemoteState;
    const kind = s.open.k as string;
    const remote = new Remote(s, true, kind);
    switch (kind) {
      case "Event":
        return new RemoteEvent(remote);
      case "Condition":
        return new RemoteCondition(remote);
      case "Barrier":
        return new RemoteBarrier(remote, s.open.v as number);
      default:
        return new RemoteSem(remote, kind as SemKind);
    }
  },
};
