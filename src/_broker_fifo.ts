/**
 * The "process" start method's queue storage: a queue held by the broker, which
 * every isolate of the program reaches directly (see _broker.ts).
 *
 * @module
 */
import { BrokerError, type BrokerClient, connectBroker, newQueueId } from "./_broker.ts";
import { fromRecord, type Prepared, toRecord } from "./_codec.ts";
import { type Fifo, FifoRefused } from "./_fifo.ts";

/** What crosses to a child for a brokered queue. */
export interface BrokeredState {
  method: "process";
  path: string;
  id: number;
  maxsize: number;
}

const NOTHING: unique symbol = Symbol("nothing");

// Queues this isolate has put to without waiting for the broker's receipt.
const unconfirmed = new Set<BrokeredFifo>();

/**
 * Waits until every put this isolate made has reached the broker: a child does
 * this before it ends, so that nothing it put is lost (Python's feeder thread is
 * joined at exit for the same reason).
 */
export async function flushBrokered(): Promise<void> {
  const fifos = [...unconfirmed];
  unconfirmed.clear();
  await Promise.all(fifos.map((fifo) => fifo.confirm()));
}

function refusal(err: unknown): never {
  if (err instanceof BrokerError && (err.kind === "full" || err.kind === "empty" || err.kind === "shutdown")) {
    throw new FifoRefused(err.kind);
  }
  throw err;
}

function timeoutOf(deadline: number | undefined): number | undefined {
  return deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
}

/** A handle, in this isolate, to one queue of the broker at `path`. */
export class BrokeredFifo implements Fifo {
  #client: Promise<BrokerClient> | undefined;
  // poll() has to take an item to see it; the next get() returns it.
  #peeked: unknown = NOTHING;
  // Shut down through this handle: a buffered put would only learn it from the broker later.
  #shut = false;
  // Settles after every put made through this handle so far has been handed to the client.
  #sent: Promise<void> = Promise.resolve();

  constructor(readonly path: string, readonly id: number, readonly maxsize: number, readonly creator = false) {}

  /** A new queue of the broker at `path`. */
  static create(path: string, maxsize: number): BrokeredFifo {
    const fifo = new BrokeredFifo(path, newQueueId(), maxsize, true);
    // The broker frees a queue when no connection holds it: the maker holds it from
    // the start, so that a child that uses it and dies cannot take it away.
    fifo.#connected().catch(() => {});
    return fifo;
  }

  state(): BrokeredState {
    this.#connected().catch(() => {});
    return { method: "process", path: this.path, id: this.id, maxsize: this.maxsize };
  }

  // The queue is made on the broker by the first isolate that uses it; open() is idempotent.
  #connected(): Promise<BrokerClient> {
    return this.#client ??= connectBroker(this.path).then(async (client) => {
      await client.open(this.id, { maxsize: this.maxsize, borrowed: !this.creator });
      return client;
    });
  }

  put(items: Prepared[], block: boolean, deadline?: number, signal?: AbortSignal): Promise<void> {
    if (this.#shut) return Promise.reject(new FifoRefused("shutdown"));
    // Known at once, so that a child that puts and returns waits for this put.
    unconfirmed.add(this);
    const done = this.#put(items, block, deadline, signal);
    this.#sent = this.#sent.then(() => done).catch(() => {});
    return done;
  }

  async #put(items: Prepared[], block: boolean, deadline?: number, signal?: AbortSignal): Promise<void> {
    const client = await this.#connected();
    const buffered = this.maxsize === 0;
    for (const item of items) {
      await client.put(this.id, toRecord(item), { block, timeoutMs: timeoutOf(deadline), signal, buffered })
        .catch(refusal);
    }
  }

  async get(block: boolean, deadline?: number, signal?: AbortSignal): Promise<unknown> {
    if (this.#peeked !== NOTHING) {
      const item = this.#peeked;
      this.#peeked = NOTHING;
      return item;
    }
    const client = await this.#connected();
    const record = await client.get(this.id, { block, timeoutMs: timeoutOf(deadline), signal }).catch(refusal);
    return fromRecord(record);
  }

  async poll(deadline?: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#peeked !== NOTHING) return true;
    try {
      this.#peeked = await this.get(deadline === undefined || deadline > Date.now(), deadline, signal);
      return true;
    } catch (err) {
      if (err instanceof FifoRefused) return false;
      throw err;
    }
  }

  async qsize(): Promise<number> {
    return await (await this.#connected()).qsize(this.id) + (this.#peeked === NOTHING ? 0 : 1);
  }

  async taskDone(): Promise<boolean> {
    try {
      await (await this.#connected()).taskDone(this.id);
      return true;
    } catch (err) {
      if (err instanceof BrokerError && err.kind === "range") return false;
      throw err;
    }
  }

  async join(signal?: AbortSignal): Promise<void> {
    await (await this.#connected()).join(this.id, { signal });
  }

  async shutdown(immediate: boolean): Promise<void> {
    this.#shut = true;
    const client = await this.#connected();
    await client.flush(this.id).catch(() => {});
    await client.shutdown(this.id, { immediate });
  }

  flush(): void {
    void this.confirm();
  }

  /** Resolves when the broker has every put made here so far. */
  async confirm(): Promise<void> {
    await this.#sent;
    if (this.#client === undefined) return;
    await (await this.#client).flush(this.id).catch(() => {});
  }

  addWriter(kind: "own" | "lend" | "adopt"): void {
    void this.#connected().then((client) => client.writers(this.id, kind)).catch(() => {});
  }

  removeWriter(): void {
    // After what this end sent (one connection serves requests in order), and
    // counted as a put, so that a child ending right after waits for it.
    unconfirmed.add(this);
    const drop = this.#sent.then(() => this.#connected()).then((client) => client.writers(this.id, "drop"));
    this.#sent = drop.catch(() => {});
  }
}
