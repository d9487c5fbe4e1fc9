/**
 * The contract a queue's storage meets: shared memory under "worker", the
 * broker under "process". Items arrive prepared (see _codec.ts); a refusal is thrown
 * as a {@linkcode FifoRefused} value, which the public classes turn into errors.
 *
 * @module
 */
import type { Prepared } from "./_codec.ts";

/** Why a non-blocking or timed operation could not proceed. */
export type FifoRefusal = "empty" | "full" | "shutdown";

/** tryGet() found nothing; the FIFO is open. */
export const EMPTY: unique symbol = Symbol("empty");
/** tryGet() found nothing; the FIFO is shut down. */
export const SHUT: unique symbol = Symbol("shutdown");

/** Thrown (as a value) when a FIFO operation cannot proceed; callers map it to their error. */
export class FifoRefused {
  constructor(readonly reason: FifoRefusal) {}
}

/** The already-settled promise of a put that needed no wait (compare with `===`). */
export const RESOLVED: Promise<void> = Promise.resolve();

/** A many-producer, many-consumer FIFO of items, shared by every handle. */
export interface Fifo {
  /** 0 = unbounded. */
  readonly maxsize: number;
  /** Appends; with a maxsize, waits for room (until `deadline`, a Date.now() value). */
  put(items: Prepared[], block: boolean, deadline?: number, signal?: AbortSignal): Promise<void>;
  /** Takes the first item if there is one now; EMPTY or SHUT if not (shared memory only). */
  tryGet?(): unknown;
  /** Takes and decodes the first item, waiting for one (until `deadline`). */
  get(block: boolean, deadline?: number, signal?: AbortSignal): Promise<unknown>;
  /** Whether a record is there, or arrives before `deadline`. */
  poll(deadline?: number, signal?: AbortSignal): Promise<boolean>;
  /** Approximate number of records. */
  qsize(): number | Promise<number>;
  /** One record was processed; false if called more often than records were put. */
  taskDone(): boolean | Promise<boolean>;
  /** Resolves when every record put has been processed. */
  join(signal?: AbortSignal): Promise<void>;
  /** Ends the FIFO for every holder; `immediate` drops what is left. */
  shutdown(immediate: boolean): void | Promise<void>;
  /** Sends puts that were buffered for batching now. */
  flush?(): void;
  /**
   * Counts a pipe end sending into this FIFO: "own" (made here), "lend" (a copy on
   * its way to a child), "adopt" (this isolate took over a lent copy).
   */
  addWriter(kind: "own" | "lend" | "adopt"): void;
  /** One sending pipe end closed; after the last, the FIFO ends (readers see end of file). */
  removeWriter(): void;
}
