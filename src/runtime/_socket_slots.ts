/**
 * What every NetSocket keeps for its user: the handlers, and the data that came before
 * a handler was set (data can come with the connection, in the task of the connect,
 * before the code that awaited it has run).
 *
 * @module
 */

/**
 * Calls a handler; what it throws is thrown again in a microtask, so that it is the
 * program's uncaught error, not the socket's (a runtime may route a socket callback's
 * exception to the socket's error handler, or end the read loop with it).
 */
export function call<T>(handler: (value: T) => void, value: T): void {
  try {
    handler(value);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

/** The handler side of a NetSocket; the runtime's socket class extends it. */
export class SocketSlots {
  #onData: ((chunk: Uint8Array) => void) | undefined;
  #early: Uint8Array[] = [];
  #onClose: (() => void) | undefined;
  #onDrain: () => void = () => {};
  #ended = false;

  onData(handler: (chunk: Uint8Array) => void): void {
    this.#onData = handler;
    for (const chunk of this.#early.splice(0)) call(handler, chunk);
  }
  onClose(handler: () => void): void {
    this.#onClose = handler;
    if (this.#ended) queueMicrotask(handler);
  }
  onDrain(handler: () => void): void {
    this.#onDrain = handler;
  }

  /** Whether the socket has closed. */
  protected get ended(): boolean {
    return this.#ended;
  }

  /** Bytes arrived: to the data handler, or kept for it. */
  protected received(chunk: Uint8Array): void {
    if (this.#onData) call(this.#onData, chunk);
    else this.#early.push(chunk);
  }

  /** A full write buffer has emptied. */
  protected drained(): void {
    call(this.#onDrain, undefined);
  }

  /** The socket closed: the close handler runs once, in a microtask. */
  protected closed(): void {
    if (this.#ended) return;
    this.#ended = true;
    const handler = this.#onClose;
    if (handler) queueMicrotask(handler);
  }
}
