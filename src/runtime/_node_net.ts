/**
 * The broker's needs from a runtime (unix sockets, a private folder, HMAC), met by
 * `node:net`, `node:fs` and `node:crypto`, which all three runtimes implement well
 * enough (research/runtime-matrix.md §6). Loaded lazily: most children never use it.
 *
 * @module
 */
import type { Socket } from "node:net";
import { builtin } from "./_builtin.ts";
import { SocketSlots } from "./_socket_slots.ts";
import type { NetAdapter, NetAddress, NetServer, NetSocket } from "./types.ts";

type Net = typeof import("node:net");
type Fs = typeof import("node:fs");
type Crypto = typeof import("node:crypto");

const net = () => builtin<Net>("node:net");
const fs = () => builtin<Fs>("node:fs");
const crypto = () => builtin<Crypto>("node:crypto");

// sun_path holds 108 bytes on Linux and 104 on macOS; leave room for the file name.
const MAX_DIR_LENGTH = 80;

const join = (...parts: string[]) => builtin<typeof import("node:path")>("node:path").join(...parts);

/** Where private folders go: the temporary folder, unless its path leaves no room for a socket's name. */
function tempBase(prefix: string): string {
  const base = builtin<typeof import("node:os")>("node:os").tmpdir();
  return base.length > MAX_DIR_LENGTH - prefix.length - 6 ? "/tmp" : base;
}

class NodeSocket extends SocketSlots implements NetSocket {
  #socket: Socket;

  constructor(socket: Socket) {
    super();
    this.#socket = socket;
    // A plain Uint8Array view, whatever class the runtime uses (Node's Buffer).
    socket.on("data", (data: Uint8Array) => this.received(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
    socket.on("drain", () => this.drained());
    // "close" follows every "error", so errors need no handling of their own.
    socket.on("error", () => {});
    socket.once("close", () => this.closed());
  }
  write(data: Uint8Array, done?: (error?: Error) => void): boolean {
    if (this.#socket.destroyed) {
      if (done) queueMicrotask(() => done(new Error("socket is closed")));
      return false;
    }
    return this.#socket.write(data, done as (error?: Error | null) => void);
  }
  destroy(): void {
    this.#socket.destroy();
  }
  ref(): void {
    this.#socket.ref();
  }
  unref(): void {
    this.#socket.unref();
  }
}

/** The NetAdapter on `node:` modules; `checkCanServe` says what the runtime forbids. */
export function nodeNet(checkCanServe: () => void): NetAdapter {
  return {
    checkCanServe,
    // Node: 45k round trips/s between threads by BroadcastChannel, 19k by node:net.
    threadChannels: true,

    makePrivateDir(prefix: string): string {
      const dir = fs().mkdtempSync(join(tempBase(prefix), prefix));
      fs().chmodSync(dir, 0o700); // mkdtemp's mode differs between runtimes; be explicit
      return dir;
    },

    tempDirs(prefix: string): string[] {
      const base = tempBase(prefix);
      try {
        return fs().readdirSync(base).filter((name) => name.startsWith(prefix)).map((name) => join(base, name));
      } catch {
        return [];
      }
    },

    removeDir(path: string): void {
      try {
        fs().rmSync(path, { recursive: true, force: true });
      } catch {
        // already gone, or not ours to remove: nothing to do at exit
      }
    },

    listen(path: NetAddress, onConnection: (socket: NetSocket) => void): Promise<NetServer> {
      // Deno reports a missing permission asynchronously and fatally (pitfall 21).
      checkCanServe();
      return new Promise((resolve, reject) => {
        const server = net().createServer((socket) => onConnection(new NodeSocket(socket)));
        server.once("error", reject);
        const bound = () => {
          server.off("error", reject);
          server.on("error", () => {});
          const where = server.address();
          const address = typeof path === "string" || where === null || typeof where === "string"
            ? path
            : { host: path.host, port: where.port };
          // Node closes the listening socket at once (the callback waits for open connections).
          resolve({ close: () => (server.close(), Promise.resolve()), address });
        };
        if (typeof path === "string") server.listen(path, bound);
        else server.listen(path.port, path.host, bound);
      });
    },

    connect(path: NetAddress): Promise<NetSocket> {
      return new Promise((resolve, reject) => {
        const socket = typeof path === "string" ? net().createConnection(path) : net().createConnection(path.port, path.host);
        socket.once("error", reject);
        socket.once("connect", () => {
          socket.off("error", reject);
          resolve(new NodeSocket(socket));
        });
      });
    },

    randomBytes(size: number): Uint8Array {
      return crypto().randomBytes(size);
    },

    hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
      return crypto().createHmac("sha256", key).update(data).digest();
    },

    timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
      return a.length === b.length && crypto().timingSafeEqual(a, b);
    },
  };
}
