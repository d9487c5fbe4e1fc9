/**
 * Sockets on `Deno.listen` / `Deno.connect`. Deno's `node:net` is a layer of streams
 * over these; going direct makes a small request and its reply (a manager call, a
 * brokered lock) faster: a 40-byte ping-pong between two processes does 31k round
 * trips/s against 17k on an idle machine here (47k against 19-29k on a busy one).
 *
 * @module
 */
import { builtin } from "../_builtin.ts";
import { SocketSlots } from "../_socket_slots.ts";
import type { NetAdapter, NetAddress, NetServer, NetSocket } from "../types.ts";

interface DenoConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  ref(): void;
  unref(): void;
  setNoDelay?(noDelay?: boolean): void;
}
interface DenoListener {
  readonly addr: { port?: number };
  accept(): Promise<DenoConn>;
  close(): void;
}
interface DenoNet {
  refTimer(id: number): void;
  unrefTimer(id: number): void;
  listen(options: { transport: "unix"; path: string } | { hostname: string; port: number }): DenoListener;
  connect(options: { transport: "unix"; path: string } | { hostname: string; port: number }): Promise<DenoConn>;
}
const deno = (): DenoNet => (globalThis as unknown as { Deno: DenoNet }).Deno;

const where = (address: NetAddress) =>
  typeof address === "string" ? { transport: "unix" as const, path: address } : { hostname: address.host, port: address.port };

/** What one read may take; a read's bytes are copied out, so the buffer is reused. */
const READ_SIZE = 64 * 1024;
/** Queued bytes above which write() says "wait for drain". */
const HIGH_WATER = 64 * 1024;

interface Pending {
  bytes: Uint8Array;
  done?: (error?: Error) => void;
}

class DenoSocket extends SocketSlots implements NetSocket {
  #conn: DenoConn;
  #queue: Pending[] = [];
  #queued = 0;
  #writing = false;
  #full = false;
  #keepAlive: number | undefined;
  /** Whether the conn's reads keep the program alive (in a worker); else the timer does. */
  #holds: boolean;

  constructor(conn: DenoConn, tcp: boolean) {
    super();
    this.#conn = conn;
    // Deno 2.9: in a worker, a conn whose reads were unref()'d outlives the worker's
    // termination (then a killed child's connection never ends, and the server keeps
    // its calls). So in a worker reads stay ref'd: a polyproc worker child ends by
    // exit() whatever it holds open. Elsewhere reads never hold the program; a timer
    // does, while the socket is ref'd (unref() then ref() on a conn has the same bug).
    this.#holds = !builtin<typeof import("node:worker_threads")>("node:worker_threads").isMainThread;
    if (!this.#holds) {
      conn.unref();
      this.ref();
    }
    // A request is one small write that waits for its reply: Nagle would hold it back.
    if (tcp) conn.setNoDelay?.(true);
    void this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(READ_SIZE);
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null || this.ended) break;
        this.received(buffer.slice(0, n));
      }
    } catch {
      // reset, or closed by destroy(): the end either way
    }
    this.#end(new Error("socket is closed"));
  }

  write(data: Uint8Array, done?: (error?: Error) => void): boolean {
    if (this.ended) {
      if (done) queueMicrotask(() => done(new Error("socket is closed")));
      return false;
    }
    this.#queue.push({ bytes: data, done });
    this.#queued += data.length;
    if (!this.#writing) void this.#flush();
    if (this.#queued < HIGH_WATER) return true;
    this.#full = true;
    return false;
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.ended) {
        const head = this.#queue[0];
        // Deno writes what it can and says how much: the rest goes in the next write.
        const n = await this.#conn.write(head.bytes);
        this.#queued -= n;
        head.bytes = head.bytes.subarray(n);
        if (head.bytes.length > 0) continue;
        this.#queue.shift();
        head.done?.();
      }
    } catch (err) {
      this.#end(err as Error);
    }
    this.#writing = false;
    if (this.#full && !this.ended) {
      this.#full = false;
      this.drained();
    }
  }

  /** Closes once: queued writes fail with `error`; the close handler runs in a microtask. */
  #end(error: Error): void {
    if (this.ended) return;
    this.closed();
    clearInterval(this.#keepAlive);
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    for (const { done } of this.#queue.splice(0)) done?.(error);
    this.#queued = 0;
  }

  destroy(): void {
    this.#end(new Error("socket is closed"));
  }
  // Deno.refTimer/unrefTimer flip a timer that stays: making and clearing one per call cost a third of a call.
  ref(): void {
    if (this.ended || this.#holds) return;
    this.#keepAlive ??= setInterval(() => {}, 2 ** 30) as unknown as number;
    deno().refTimer(this.#keepAlive);
  }
  unref(): void {
    if (this.#keepAlive !== undefined) deno().unrefTimer(this.#keepAlive);
  }
}

/** listen and connect for Deno's adapter; errors carry Deno's `code` ("EADDRINUSE", "ENOENT", "ECONNREFUSED"). */
export const denoSockets: Pick<NetAdapter, "listen" | "connect"> = {
  listen(address: NetAddress, onConnection: (socket: NetSocket) => void): Promise<NetServer> {
    let listener: DenoListener;
    try {
      listener = deno().listen(where(address));
    } catch (err) {
      return Promise.reject(err);
    }
    const tcp = typeof address !== "string";
    let closed = false;
    const accepting = (async () => {
      while (!closed) {
        let conn: DenoConn;
        try {
          conn = await listener.accept();
        } catch {
          // Closed; or out of file descriptors for a moment: keep serving those we have.
          if (closed) return;
          await new Promise((resolve) => setTimeout(resolve, 10));
          continue;
        }
        onConnection(new DenoSocket(conn, tcp));
      }
    })();
    return Promise.resolve({
      // The socket is closed (and a unix socket's file removed) when the pending
      // accept lets go of it, a turn after close(): until then a connect is reset.
      close() {
        if (!closed) {
          closed = true;
          listener.close();
        }
        return accepting;
      },
      address: tcp ? { host: address.host, port: listener.addr.port! } : address,
    });
  },

  async connect(address: NetAddress): Promise<NetSocket> {
    return new DenoSocket(await deno().connect(where(address)), typeof address !== "string");
  },
};
