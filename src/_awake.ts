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
 * to follow — polls for up to {@linkcode WINDOW_MS}, then sleeps as before.
 *
 * Polling only pays while answers come within the window. When they do not (more busy
 * processes than CPUs: ten children appending to one manager on two cores), a poller
 * takes CPU time from the processes it waits for (a third fewer appends in total, on
 * Node, when every side polls). So each side keeps a {@linkcode Waker}, which backs off
 * when its polls do not pay.
 *
 * @module
 */
import { runtime } from "./runtime/detect.ts";

/** How long the loop stays awake after a message, in milliseconds. */
const WINDOW_MS = 0.2;

let until = 0;
let polling = false;

/** Polls for the next {@linkcode WINDOW_MS} (from now) before the loop may sleep again. */
function stayAwake(): void {
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

/**
 * Stays awake after a message while that pays: a wait it polled through that outlasted
 * the window makes it skip polling for the next 1, 2, 4 … 64 messages; an answer within
 * the window starts over.
 */
export class Waker {
  #sentAt = 0;
  #polling = false;
  #skip = 0;
  #backoff = 1;

  /** A message went out and an answer is expected. */
  sent(): void {
    this.#sentAt = performance.now();
    if (this.#skip > 0) {
      this.#skip--;
      return;
    }
    this.#polling = true;
    stayAwake();
  }

  /** The answer (or the next request) came. */
  answered(): void {
    if (!this.#polling) return;
    this.#polling = false;
    if (performance.now() - this.#sentAt <= WINDOW_MS) {
      this.#backoff = 1;
    } else {
      this.#skip = this.#backoff;
      this.#backoff = Math.min(2 * this.#backoff, MAX_SKIP);
    }
  }
}

/** The most messages a {@linkcode Waker} lets go by without polling, after waits outlasted the window. */
const MAX_SKIP = 64;
