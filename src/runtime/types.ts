/**
 * The adapter contract: everything polyproc needs from a runtime, and the only
 * vocabulary the core uses to talk about workers, subprocesses and the host.
 *
 * @module
 */

/** A message channel to a child, or from a child to its parent. */
export interface Channel {
  /** Sends a structured-clonable message. Throws synchronously if it cannot be copied. */
  send(message: unknown): void;
  /** Sets the one message handler. */
  onMessage(handler: (message: unknown) => void): void;
  /** Lets the event loop end while this channel is idle (or not). */
  ref(): void;
  unref(): void;
}

/** How a child ended: an exit code, or the signal that killed it. */
export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

/** A running child: a worker thread or an OS subprocess. */
export interface ChildHandle extends Channel {
  /** The OS pid: the subprocess's own, or the hosting process's for a worker. */
  readonly pid: number;
  /** A per-program unique positive integer (the pid for a subprocess). */
  readonly ident: number;
  /** Called once, when the child has ended and been reaped. */
  onExit(handler: (status: ExitStatus) => void): void;
  /** SIGTERM for a subprocess; stops the thread for a worker. */
  terminate(): void;
  /** SIGKILL for a subprocess; stops the thread for a worker. */
  kill(): void;
}

/** What a child is started with: the payload of the first message. */
export interface SpawnOptions {
  /** Data delivered to the child before anything else (structured clone). */
  init: unknown;
}

/** The start-up facts a child reads about itself. */
export interface ChildInit {
  /** The channel to the parent. */
  channel: Channel;
  /** The first message, as given to {@linkcode SpawnOptions.init}. */
  init: unknown;
  /** This child's ident, as the parent's {@linkcode ChildHandle.ident} reports it. */
  ident: number;
}

/** One runtime's implementation of everything polyproc needs. */
export interface RuntimeAdapter {
  readonly key: "node" | "deno" | "bun";
  /** This OS process's pid. */
  readonly pid: number;
  /** Number of logical CPUs. */
  cpuCount(): number;
  /** The URL of the program's main module, if there is one. */
  mainModuleUrl(): string | undefined;
  /** Whether `importMeta` belongs to the program's main module. */
  isMainModule(importMeta: ImportMeta): boolean;
  /** Starts a worker thread running the module at `entry` (a file URL). */
  spawnWorker(entry: URL, options: SpawnOptions): ChildHandle;
  /** Starts an OS subprocess of this runtime running `entry`, over a private IPC channel. */
  spawnProcess(entry: URL, options: SpawnOptions): ChildHandle;
  /**
   * Inside a child: the channel to the parent and the init payload.
   * Resolves to undefined in a program that polyproc did not start.
   */
  childInit(): Promise<ChildInit | undefined>;
  /**
   * Inside a subprocess child: calls `handler` when the parent (`parentPid`) is
   * gone. (A child busy in a loop cannot run it; the parent's reaper kills that one.)
   */
  watchParent(parentPid: number, handler: () => void): void;
  /** Ends this process (or this worker thread) with `code`, flushing stdio. */
  exit(code: number): never;
  /** Routes errors nobody caught (throws and rejections) to `handler` instead of crashing. */
  onUncaughtError(handler: (error: unknown) => void): void;
  /** Runs `handler` synchronously when this process or worker is about to exit. */
  onExit(handler: () => void): void;
  /** Writes text to standard error. */
  writeStderr(text: string): void;
  /** Whether the OS process `pid` still exists. */
  pidAlive(pid: number): boolean;
  /** Maps a signal name to its number ("SIGTERM" → 15). */
  signalNumber(name: string): number;
  /**
   * Encodes a structured-clonable value as bytes (the runtime's own format: V8's on
   * Node and Deno, JSC's on Bun — only ever read by the same runtime).
   */
  serialize(value: unknown): Uint8Array;
  /** Decodes what {@linkcode RuntimeAdapter.serialize} wrote. */
  deserialize(bytes: Uint8Array): unknown;
  /** Names the format of {@linkcode RuntimeAdapter.serialize}: peers that say the same read each other's bytes. */
  readonly serialFormat: string;
  /**
   * Runs `callback` on a coming turn of the event loop, after it polled for I/O without
   * sleeping; undefined where no way of doing that pays (then nobody stays awake).
   */
  readonly pollSoon: ((callback: () => void) => void) | undefined;
  /** Unix sockets, private folders and HMAC: what the broker needs. */
  readonly net: NetAdapter;
  /**
   * Starts `file` (a path, or a name looked up in PATH) with `args`, no shell: what
   * `Popen` runs on. Never throws for a program that cannot start: `status` rejects.
   */
  spawnCommand(file: string, args: string[], options: CommandOptions): CommandHandle;
}

/** A connected stream socket (a unix socket). */
export interface NetSocket {
  /**
   * Queues `data` for writing. `done` runs once the bytes are handed to the OS, or
   * with the error that stopped them. Returns false when the socket's own buffer is
   * full (wait for {@linkcode NetSocket.onDrain}).
   */
  write(data: Uint8Array, done?: (error?: Error) => void): boolean;
  /** Sets the one handler for incoming bytes. */
  onData(handler: (chunk: Uint8Array) => void): void;
  /** Sets the one handler called, once, when the socket is closed by either side or fails. */
  onClose(handler: () => void): void;
  /** Sets the one handler called when a full write buffer has emptied. */
  onDrain(handler: () => void): void;
  /** Closes the socket at once, dropping what is unsent. */
  destroy(): void;
  /** Lets the event loop end while this socket is open (or not). */
  ref(): void;
  unref(): void;
}

/** Where a server listens: a unix socket's path, or a TCP host and port (port 0: any free port). */
export type NetAddress = string | { host: string; port: number };

/** A listening unix-socket (or TCP) server. */
export interface NetServer {
  /** Stops accepting connections and removes the socket file; resolves once the address refuses connections. */
  close(): Promise<void>;
  /** The bound address: the path, or the host and the real port (port 0 asked for any). */
  readonly address: NetAddress;
}

/** Unix sockets, private folders and HMAC: what the broker needs from a runtime. */
export interface NetAdapter {
  /** Throws a clear error when this runtime may not run a unix-socket server here. */
  checkCanServe(): void;
  /** Makes a new folder that only this user can enter (0700), in the temporary folder. */
  makePrivateDir(prefix: string): string;
  /** Removes a folder and its contents; no error if it is gone. */
  removeDir(path: string): void;
  /** The folders in the temporary folder whose names start with `prefix` (full paths). */
  tempDirs(prefix: string): string[];
  /** Listens on the unix socket `path` (or a TCP address); `onConnection` gets each accepted socket. */
  listen(path: NetAddress, onConnection: (socket: NetSocket) => void): Promise<NetServer>;
  /** Connects to the unix socket `path` (or a TCP address); rejects with an error whose `code` says why ("ENOENT"). */
  connect(path: NetAddress): Promise<NetSocket>;
  /**
   * Whether a BroadcastChannel between this process's threads answers faster than a
   * unix socket (then a manager's clients in the server's process use one).
   */
  readonly threadChannels: boolean;
  /** `size` cryptographically random bytes. */
  randomBytes(size: number): Uint8Array;
  /** HMAC-SHA256 of `data` under `key` (32 bytes). */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** Compares two byte strings in time that does not depend on where they differ. */
  timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean;
}

/** How a command's standard stream is connected: a new pipe, this process's own, or /dev/null. */
export type StdioMode = "pipe" | "inherit" | "ignore";

/** What {@linkcode RuntimeAdapter.spawnCommand} starts a program with. */
export interface CommandOptions {
  stdin: StdioMode;
  stdout: StdioMode;
  /** "stdout": to this process's stdout (only asked for when `stdout` is "inherit"). */
  stderr: StdioMode | "stdout";
  /** The working directory; this process's when undefined. */
  cwd?: string;
  /** The whole environment; this process's when undefined. */
  env?: Record<string, string>;
}

/** A started program (not a polyproc child: no channel). */
export interface CommandHandle {
  /** The OS pid, or undefined when the program could not be started. */
  readonly pid: number | undefined;
  /** The piped streams; null where the stream is not "pipe". */
  readonly stdin: WritableStream<Uint8Array> | null;
  readonly stdout: ReadableStream<Uint8Array> | null;
  readonly stderr: ReadableStream<Uint8Array> | null;
  /**
   * Resolves once the program has ended and been reaped (`code`, or the `signal` that
   * killed it); rejects when it could not be started, with the runtime's error (`code`
   * "ENOENT", "EACCES", ...).
   */
  readonly status: Promise<ExitStatus>;
  /** Sends a signal, by name or number; no-op once the program has been reaped. */
  kill(signal: string | number): void;
}
