/**
 * Managers (Python's `multiprocessing.managers`): objects held by a server, used
 * from any process through proxies, also across machines over TCP with an authkey.
 *
 * @module
 */
import { asyncDispose } from "./_dispose.ts";
import {
  AcquirerProxy,
  ArrayProxy,
  BarrierProxy,
  BaseProxy,
  ConditionProxy,
  closeLink,
  DictProxy,
  EventProxy,
  linkFor,
  type Link,
  ListProxy,
  NamespaceProxy,
  QueueProxy,
  replyValue,
  ValueProxy,
  withArgs,
} from "./_manager_proxy.ts";
import { makeOwnDir } from "./_own_dirs.ts";
import { ManagerServer, type RegistryEntry, type ServerInit, type ServerReport } from "./_manager_server.ts";
import { checkStartMethod, type StartMethod } from "./_start_method.ts";
import { ProcessError } from "./errors.ts";
import { Process, siblingModule } from "./process.ts";
import { Queue } from "./queues.ts";
import { runtime } from "./runtime/detect.ts";
import type { NetAddress } from "./runtime/types.ts";
import { fromModule, type TargetLike, toSpec } from "./target.ts";

export {
  AcquirerProxy,
  ArrayProxy,
  type AutoProxy,
  BarrierProxy,
  BaseProxy,
  ConditionProxy,
  DictProxy,
  EventProxy,
  IteratorProxy,
  ListProxy,
  NamespaceProxy,
  type ProxyAcquireOptions,
  type ProxyWaitOptions,
  QueueProxy,
  ValueProxy,
} from "./_manager_proxy.ts";
export type { ManagerServer } from "./_manager_server.ts";

/** Where a manager's server listens: TCP (port 0: any free port), or a unix socket's path. */
export type ManagerAddress = { host: string; port: number } | { path: string };

/** Options of {@linkcode BaseManager} and {@linkcode Manager}. */
export interface ManagerOptions {
  /** Where the server listens (or is found, for `connect()`); default a unix socket in a private folder. */
  address?: ManagerAddress;
  /** The shared secret of the HMAC handshake (a string is UTF-8 encoded); default 32 random bytes. */
  authkey?: Uint8Array | string;
  /** How `start()` runs the server: an OS subprocess (default, as in Python) or a worker thread. */
  context?: StartMethod;
}

/** Options of {@linkcode BaseManager.register}. */
export interface RegisterOptions {
  /** The methods proxies may call (default: the object's methods whose names do not start with "_"). */
  exposed?: string[];
  /** Adds a `manager[typeid](...args)` method (default true). */
  createMethod?: boolean;
}

const server = fromModule<typeof import("./_manager_server.ts")>(siblingModule("_manager_server"));
const registries = new WeakMap<object, Map<string, RegistryEntry>>();
let counter = 0;
/** The private folders of this isolate's servers' sockets, removed at exit if still there. */
const socketDirs = new Set<string>();

function toNetAddress(address: ManagerAddress): NetAddress {
  if (typeof address !== "object" || address === null) throw new TypeError("address must be { host, port } or { path }");
  if ("path" in address) {
    if (typeof address.path !== "string" || address.path === "") throw new TypeError("address.path must be a non-empty string");
    return address.path;
  }
  const { host, port } = address;
  if (typeof host !== "string") throw new TypeError("address.host must be a string");
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`address.port must be an integer 0-65535, got ${port}`);
  return { host, port };
}

function toKey(authkey: Uint8Array | string | undefined): Uint8Array {
  if (authkey === undefined) return runtime.net.randomBytes(32);
  if (typeof authkey === "string") return new TextEncoder().encode(authkey);
  if (authkey instanceof Uint8Array) return authkey.slice();
  throw new TypeError("authkey must be a Uint8Array or a string");
}

/**
 * A server of shared objects and the way to reach it (Python's `BaseManager`).
 *
 * Subclass it and {@linkcode BaseManager.register} your types, then either
 * `start()` a server as a child, run one in this process (`getServer()` then
 * `serveForever()`, or `serve()`), or `connect()` to one that runs elsewhere.
 * Factories are {@linkcode fromModule} references (or self-contained functions),
 * since the server is another process. A registered method is added to the
 * manager under its typeid; declare it for TypeScript
 * (`declare getQueue: () => Promise<QueueProxy<string>>`).
 *
 * The handshake is Python's HMAC challenge, both ways, with SHA-256; a wrong key is
 * an {@linkcode AuthenticationError}, and the server drops the connection before
 * it reads any request. Values travel in the runtime's own serialization format,
 * so a remote client must run on the same runtime as its server.
 *
 * @example A queue served by one process, used by others
 * ```ts
 * import { BaseManager, fromModule, type QueueProxy } from "polyproc";
 * // shared.ts: export function getQueue() { return queue; } (one queue, made at module top level)
 * const shared = fromModule<{ getQueue(): object }>(new URL("./shared.ts", import.meta.url));
 * class QueueManager extends BaseManager {
 *   declare getQueue: () => Promise<QueueProxy<string>>;
 * }
 * QueueManager.register("getQueue", shared.getQueue);
 * const m = new QueueManager({ address: { host: "127.0.0.1", port: 0 }, authkey: "secret" });
 * await m.start();
 * const client = new QueueManager({ address: m.address, authkey: "secret" });
 * await client.connect();
 * await m.shutdown();
 * ```
 */
export class BaseManager {
  #address: NetAddress | undefined;
  #authkey: Uint8Array;
  #context: StartMethod;
  #state: "initial" | "started" | "connected" | "serving" | "shut down" = "initial";
  #process: Process | undefined;
  #server: ManagerServer | undefined;
  #dir: string | undefined;

  /**
   * Registers a type (Python's `register`): `factory` makes the object on the
   * server, and `manager[typeid](...args)` (or `create(typeid, ...args)`) returns a
   * proxy to it. A client that only `connect()`s may leave out the factory.
   *
   * @throws {TypeError} if `typeid` is not a non-empty string, or `factory` cannot be sent to a child.
   */
  static register(typeid: string, factory?: TargetLike<never[], unknown>, options: RegisterOptions = {}): void {
    if (typeof typeid !== "string" || typeid === "") throw new TypeError("typeid must be a non-empty string");
    const { exposed, createMethod = true } = options;
    if (exposed !== undefined && (!Array.isArray(exposed) || !exposed.every((m) => typeof m === "string"))) {
      throw new TypeError("exposed must be an array of method names");
    }
    const spec = factory === undefined ? undefined : toSpec(factory, `the factory of "${typeid}"`);
    registryOf(this).set(typeid, { typeid, factory: spec, exposed });
    if (createMethod && !(typeid in BaseManager.prototype)) {
      Object.defineProperty(this.prototype, typeid, {
        value: function (this: BaseManager, ...args: unknown[]) {
          return this.create(typeid, ...args);
        },
        configurable: true,
        writable: true,
      });
    }
  }

  /** @throws {TypeError} or {RangeError} for a bad option. */
  constructor(options: ManagerOptions = {}) {
    if (typeof options !== "object" || options === null) throw new TypeError("options must be an object");
    this.#address = options.address === undefined ? undefined : toNetAddress(options.address);
    this.#authkey = toKey(options.authkey);
    this.#context = options.context === undefined ? "process" : checkStartMethod(options.context, "context");
  }

  /** Where the server listens: the real port once started on port 0. Undefined before start() for a default address. */
  get address(): ManagerAddress {
    const a = this.#address;
    if (a === undefined) throw new ProcessError("Cannot read the address of a manager: it has no server yet");
    return typeof a === "string" ? { path: a } : { ...a };
  }

  /** The OS pid of the server child `start()` made (the hosting process's, under "worker"); else undefined. */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /**
   * Starts the server as a child (a subprocess by default) and waits until it listens.
   *
   * @throws {ProcessError} if already started, or the server could not listen (the message says why).
   */
  async start(): Promise<void> {
    this.#check("start", "initial");
    let init: ServerInit;
    try {
      // The server listens on a socket: say what the runtime forbids here, before any child starts.
      runtime.net.checkCanServe();
      init = this.#init();
    } catch (err) {
      throw new ProcessError(`Cannot start the manager's server: ${(err as Error).message}`, { cause: err });
    }
    const ready = new Queue<ServerReport>(0, { context: this.#context });
    const p = new Process({
      target: server.serveManager,
      args: [init, ready],
      name: `${this.constructor.name}-${++counter}`,
      // Ends with this program, and does not keep it alive (Python's finalizer shuts the server down).
      daemon: true,
      context: this.#context,
    });
    try {
      p.start();
    } catch (err) {
      // Nothing started (Deno without --allow-run, say): the manager stays unstarted, as Python's does.
      ready.close();
      throw err;
    }
    this.#state = "started";
    this.#process = p;
    // Wait for the report or the child's end; join() in short steps, since a join that
    // stays pending would keep this program alive as long as the server lives.
    const gaveUp = new AbortController();
    let report: ServerReport | undefined;
    // A get that fails (the queue's broker is gone) is a report too: else this loop
    // would spin on a settled promise without ever yielding to the event loop.
    const got = ready.get({ signal: gaveUp.signal }).then(
      (r) => (report = r),
      (err) => (report ??= { error: `its report could not arrive: ${(err as Error).message}` }),
    );
    while (report === undefined) {
      await Promise.race([got, p.join(200)]);
      if (report === undefined && p.exitCode !== null) {
        report = { error: `the server process exited with code ${p.exitCode}` };
        gaveUp.abort();
      }
    }
    ready.close();
    if ("error" in report) {
      p.terminate();
      this.#cleanup();
      this.#state = "shut down";
      throw new ProcessError(`Cannot start the manager's server: ${report.error}`);
    }
    this.#address = report.address;
  }

  /**
   * Makes the server in this process and starts listening (Python's `get_server()`);
   * `await server.serveForever()` then serves until a client shuts it down.
   */
  async getServer(): Promise<ManagerServer> {
    this.#check("serve", "initial");
    const init = this.#init();
    this.#server = await ManagerServer.listen(init);
    this.#state = "serving";
    this.#address = this.#server.address;
    return this.#server;
  }

  /** Serves in this process until the server is shut down: `getServer()` then `serveForever()`. */
  async serve(): Promise<void> {
    await (await this.getServer()).serveForever();
  }

  /**
   * Connects to a server that runs elsewhere, at `address` with `authkey` (Python's `connect()`).
   *
   * @throws {AuthenticationError} if the keys differ.
   * @throws {ProcessError} with the socket error's `code` ("ECONNREFUSED", "ENOENT") if nobody listens.
   */
  async connect(): Promise<void> {
    this.#check("connect", "initial");
    if (this.#address === undefined) throw new ProcessError("Cannot connect: the manager has no address");
    const link = linkFor(this.#address, this.#authkey);
    await link.ready();
    this.#state = "connected";
  }

  /**
   * Makes a `typeid` object on the server with `args` and returns a proxy to it.
   *
   * @throws {ProcessError} before start()/connect() or after shutdown().
   */
  async create(typeid: string, ...args: unknown[]): Promise<BaseProxy> {
    if (this.#state === "initial" || this.#state === "shut down") {
      throw new ProcessError(`Cannot create a ${typeid}: the manager is ${this.#state === "initial" ? "not started" : "shut down"}`);
    }
    const link = this.#link();
    const reply = await link.request(...withArgs({ op: "create", t: typeid }, args, typeid, link.portable ?? await link.ready()));
    return replyValue(reply, this.#address!, this.#authkey, link) as BaseProxy;
  }

  /** How many objects the server holds (Python's `_number_of_objects()`): for tests of lifetimes. */
  async numberOfObjects(): Promise<number> {
    return (await this.#link().request({ op: "count" })).header.v as number;
  }

  /**
   * Stops the server (and its child) if this manager started it or serves it;
   * closes the connection of a `connect()`ed one. Proxies fail afterwards.
   */
  async shutdown(): Promise<void> {
    const state = this.#state;
    if (state === "initial" || state === "shut down") return;
    this.#state = "shut down";
    if (state === "serving") return this.#server!.shutdown();
    if (state === "started") {
      const p = this.#process!;
      await this.#link().request({ op: "shutdown" }).catch(() => {});
      await p.join(1_000);
      if (p.isAlive()) p.terminate();
      await p.join();
    }
    await closeLink(this.#address!);
    this.#cleanup();
  }

  /** Closes a `connect()`ed manager's connection (the server keeps running); shuts down any other. */
  close(): Promise<void> {
    if (this.#state !== "connected") return this.shutdown();
    this.#state = "shut down";
    return closeLink(this.#address!);
  }

  /** Same as {@linkcode BaseManager.shutdown}: Python's context manager exit. */
  [asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  #link(): Link {
    return linkFor(this.#address!, this.#authkey);
  }

  #check(action: string, state: string): void {
    if (this.#state !== state) throw new ProcessError(`Cannot ${action} the manager: it is ${this.#state}`);
  }

  #init(): ServerInit {
    if (this.#address === undefined) {
      this.#dir = makeOwnDir("polyproc-manager-");
      this.#address = `${this.#dir}/manager.sock`;
      if (socketDirs.size === 0) runtime.onExit(() => socketDirs.forEach((dir) => runtime.net.removeDir(dir)));
      socketDirs.add(this.#dir);
    }
    const registry = [...registryOf(this.constructor as typeof BaseManager).values()];
    return { address: this.#address, authkey: this.#authkey, registry };
  }

  #cleanup(): void {
    if (this.#dir !== undefined) runtime.net.removeDir(this.#dir);
    socketDirs.delete(this.#dir!);
    this.#dir = undefined;
  }
}

// Each class has its own registry, which starts as a copy of its parent's (Python's rule).
function registryOf(cls: typeof BaseManager): Map<string, RegistryEntry> {
  let registry = registries.get(cls);
  if (registry === undefined) {
    const parent = Object.getPrototypeOf(cls);
    registry = new Map(parent === BaseManager || typeof parent !== "function" ? [] : registryOf(parent));
    registries.set(cls, registry);
  }
  return registry;
}

/**
 * Python's `multiprocessing.Manager()` (a SyncManager): a server child holding
 * lists, dicts, namespaces, values and queues that every process can use through
 * proxies. Factories are async; every proxy method is async.
 *
 * Differences from Python: `await manager.start()` is explicit; the server is a
 * subprocess by default or a worker thread with `{ context: "worker" }`; proxies
 * are not thenable, and their values are copies (as in Python: changing a plain
 * object fetched from a list does not change the list).
 *
 * @example Ten children append to one list (Python's classic Manager program)
 * ```ts
 * import { Manager, Process, type ListProxy } from "polyproc";
 * await using manager = new Manager();
 * await manager.start();
 * const shared = await manager.list<number>();
 * const worker = async (shared: ListProxy<number>, i: number) => await shared.append(i);
 * const ps = Array.from({ length: 10 }, (_, i) => new Process({ target: worker, args: [shared, i] }));
 * for (const p of ps) p.start();
 * for (const p of ps) await p.join();
 * console.log(await shared.length()); // 10
 * ```
 */
export class Manager extends BaseManager {
  /** A shared list, initially a copy of `init`. */
  list<T = unknown>(init: Iterable<T> = []): Promise<ListProxy<T>> {
    return this.create("list", [...init]) as Promise<ListProxy<T>>;
  }
  /** A shared dict (a Map on the server), initially the entries of `init` (a plain object or a Map). */
  dict<K = string, V = unknown>(init?: Map<K, V> | Record<string, V>): Promise<DictProxy<K, V>> {
    return this.create("dict", ...(init === undefined ? [] : [init])) as Promise<DictProxy<K, V>>;
  }
  /** A namespace of named attributes, initially those of `init`. */
  Namespace(init: Record<string, unknown> = {}): Promise<NamespaceProxy> {
    return this.create("Namespace", init) as Promise<NamespaceProxy>;
  }
  /** A shared value of any kind; `typecode` is kept but not enforced (as in Python). */
  Value<T = unknown>(typecode: string, value: T): Promise<ValueProxy<T>> {
    return this.create("Value", typecode, value) as Promise<ValueProxy<T>>;
  }
  /** A fixed-length shared array: `init` is a length (zeros) or the items. */
  Array<T = number>(typecode: string, init: number | Iterable<T>): Promise<ArrayProxy<T>> {
    return this.create("Array", typecode, typeof init === "number" ? init : [...init]) as Promise<ArrayProxy<T>>;
  }
  /** A queue on the server (`maxsize` 0: unbounded). */
  Queue<T = unknown>(maxsize = 0): Promise<QueueProxy<T>> {
    return this.create("Queue", maxsize) as Promise<QueueProxy<T>>;
  }
  /** A queue with `taskDone()` and `join()`. */
  JoinableQueue<T = unknown>(maxsize = 0): Promise<QueueProxy<T>> {
    return this.create("JoinableQueue", maxsize) as Promise<QueueProxy<T>>;
  }
  /** A lock on the server; not owner-checked (any connection may release it), as Python's. */
  Lock(): Promise<AcquirerProxy> {
    return this.create("Lock") as Promise<AcquirerProxy>;
  }
  /** A reentrant lock on the server, held by one connection (one process or worker) at a time. */
  RLock(): Promise<AcquirerProxy> {
    return this.create("RLock") as Promise<AcquirerProxy>;
  }
  Semaphore(value = 1): Promise<AcquirerProxy> {
    return this.create("Semaphore", value) as Promise<AcquirerProxy>;
  }
  BoundedSemaphore(value = 1): Promise<AcquirerProxy> {
    return this.create("BoundedSemaphore", value) as Promise<AcquirerProxy>;
  }
  Event(): Promise<EventProxy> {
    return this.create("Event") as Promise<EventProxy>;
  }
  /**
   * A condition (Python's `Condition(lock=None)`) on `lock`, a Lock or RLock proxy of
   * this manager (the condition's acquire/release are that lock's), else on its own RLock.
   *
   * @throws {TypeError} (rejecting) if `lock` is not a Lock or RLock of this manager.
   */
  Condition(lock?: AcquirerProxy): Promise<ConditionProxy> {
    return this.create("Condition", ...(lock === undefined ? [] : [lock])) as Promise<ConditionProxy>;
  }
  /**
   * A barrier for `parties` waits; `timeout` (ms) is the default of `wait()`. `action`
   * (a `fromModule()` reference or a self-contained function) runs in the server once
   * per pass, before any party is released; if it throws, the barrier breaks.
   *
   * @throws {TypeError} if `action` cannot be sent to the server.
   */
  Barrier(parties: number, options: { timeout?: number; action?: TargetLike<[], unknown> } = {}): Promise<BarrierProxy> {
    const { timeout, action } = options;
    // null, not undefined, keeps the arguments in the message header when there is no action.
    const args: unknown[] = action === undefined ? [timeout ?? null] : [timeout ?? null, toSpec(action, "the Barrier action")];
    return this.create("Barrier", parties, ...args) as Promise<BarrierProxy>;
  }
}
