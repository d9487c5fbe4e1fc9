/**
 * Keeps this isolate's event loop polling, without sleeping, for a moment after a
 * message went out.
 *
 * A manager call is a small request and a quick reply. When the caller's CPU goes idle
 * while it waits, waking it again costs more than the call itself, and on a virtual
 * machine much more: a 40-byte ping-pong between two Node processes on this project's
 * 2-core VM does 15k round trips/s asleep and 67k awake (Python's blocking sockets, whose
 * waker hands its CPU to the woken side, do 31k). So the side that expects an answer —
 * the client after a request, the server after its replies, when the next request tends
 * to follow — polls for up to {@linkcode WINDOW_MS}, then sleeps as before. The cost is
 * at most that much CPU time after the last message.
 *
 * @module
 */
import { runtime } from "./runtime/detect.ts";

/** How long the loop stays awake after a message, in milliseconds. */
export const WINDOW_MS = 0.2;

let until = 0;
let polling = false;

/** Polls for the next {@linkcode WINDOW_MS} (from now) before the loop may sleep again. */
export function stayAwake(): void {
  const pollSoon = runtime.pollSoon;
  if (pollSoon === undefined) return;
  until = performance.now() + WINDOW_MS;
  if (polling) return;
  polling = true;
  pollSoon(poll);
}

function poll(): void {
  if (performance.now() < until) runtime.pollSoon!(poll);
  else polling = false;
}
