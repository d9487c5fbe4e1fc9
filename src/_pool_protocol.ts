/**
 * The messages between a pool's scheduler and its workers. Tasks and results
 * travel in batches as flat arrays, so that one message carries many of them.
 *
 * @module
 */
import { packFast, type Transport, unpack } from "./serialization.ts";

/** How a task's packed payload is run: `fn(...args)`, `fn(x)` per item, or `fn(...args)` per item. */
export const MODE_APPLY = 0;
export const MODE_MAP = 1;
export const MODE_STARMAP = 2;

/** A result's status. */
export const STATUS_OK = 0;
export const STATUS_ERROR = 1;

/**
 * How a task's arguments or a result travel: as the transport copies them, packed
 * (Errors, registered classes, handles: see serialization.ts), or a long list of
 * numbers as a Float64Array, which every transport copies many times faster than
 * an array (Bun's IPC above all).
 */
export const WIRE_PLAIN = 0;
export const WIRE_PACKED = 1;
export const WIRE_NUMBERS = 2;

const NUMBERS_FROM = 32;

/** A value ready for the wire, and how to read it back. */
export function toWire(value: unknown, what: string, transport: Transport): [unknown, number] {
  if (Array.isArray(value) && value.length >= NUMBERS_FROM && value.every((x) => typeof x === "number")) {
    return [Float64Array.from(value), WIRE_NUMBERS];
  }
  const packed = packFast(value, what, transport);
  return [packed.v, packed.t ? WIRE_PACKED : WIRE_PLAIN];
}

/** Reads back what {@linkcode toWire} made. */
export function fromWire(v: unknown, how: number): unknown {
  if (how === WIRE_PLAIN) return v;
  if (how === WIRE_NUMBERS) return Array.from(v as Float64Array);
  return unpack({ v, t: true });
}

/**
 * Parent → worker: tasks, five entries each (id, function id, mode, wire value,
 * wire kind), and the functions this worker sees for the first time.
 */
export interface TaskBatch {
  k: "t";
  f?: [number, unknown][];
  b: unknown[];
}

/**
 * Parent → worker: give back these tasks if they have not started (they were
 * aborted, or an idle worker is to run them). The worker answers with a
 * {@linkcode ReleasedMessage}, after the results it held.
 */
export interface ReleaseMessage {
  k: "c";
  ids: number[];
}

/** Parent → worker: finish what you have, then end. */
export interface RetireMessage {
  k: "x";
}

export type ToWorker = TaskBatch | ReleaseMessage | RetireMessage;

/** Worker → parent: results, four entries each (id, status, wire value, wire kind), and the time spent running them. */
export interface ResultBatch {
  k: "r";
  b: unknown[];
  ms: number;
}

/** Worker → parent: the initializer threw (packed error); the worker ends. */
export interface InitErrorMessage {
  k: "i";
  v: unknown;
  t: boolean;
}

/** Worker → parent: the tasks of a {@linkcode ReleaseMessage} it removed unstarted; the others ran or are running. */
export interface ReleasedMessage {
  k: "g";
  ids: number[];
}

export type FromWorker = ResultBatch | InitErrorMessage | ReleasedMessage;
