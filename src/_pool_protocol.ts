/**
 * The messages between a pool's scheduler and its workers. Tasks and results
 * travel in batches as flat arrays, so that one message carries many of them.
 *
 * @module
 */

/** How a task's packed payload is run: `fn(...args)`, `fn(x)` per item, or `fn(...args)` per item. */
export const MODE_APPLY = 0;
export const MODE_MAP = 1;
export const MODE_STARMAP = 2;

/** A result's status. */
export const STATUS_OK = 0;
export const STATUS_ERROR = 1;
/** The task was cancelled before it ran; it did not run. */
export const STATUS_CANCELLED = 2;

/**
 * Parent → worker: tasks, five entries each (id, function id, mode, packed args,
 * tagged), and the functions this worker sees for the first time.
 */
export interface TaskBatch {
  k: "t";
  f?: [number, unknown][];
  b: unknown[];
}

/** Parent → worker: skip these tasks if they have not started. */
export interface CancelMessage {
  k: "c";
  ids: number[];
}

/** Parent → worker: finish what you have, then end. */
export interface RetireMessage {
  k: "x";
}

export type ToWorker = TaskBatch | CancelMessage | RetireMessage;

/** Worker → parent: results, four entries each (id, status, packed value, tagged), and the time spent running them. */
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

export type FromWorker = ResultBatch | InitErrorMessage;
