/**
 * `spawnCommand` over `Bun.spawn`, which starts a program in about two thirds of the
 * time Bun's `node:child_process` takes. Its stdin is a FileSink, wrapped here as a
 * web WritableStream.
 *
 * @module
 */
import { failedCommand } from "../_spawn.ts";
import type { CommandHandle, CommandOptions } from "../types.ts";

interface FileSink {
  write(chunk: Uint8Array): number | Promise<number>;
  flush(): number | Promise<number>;
  end(): number | Promise<number>;
}
interface BunChild {
  readonly pid: number;
  readonly stdin: FileSink | undefined;
  readonly stdout: ReadableStream<Uint8Array> | undefined;
  readonly stderr: ReadableStream<Uint8Array> | undefined;
  readonly exited: Promise<number>;
  readonly signalCode: string | null;
  kill(signal?: string | number): void;
}
type BunStdio = "pipe" | "inherit" | "ignore" | number;
interface BunGlobal {
  spawn(cmd: string[], options: {
    cwd?: string;
    env?: Record<string, string>;
    stdio: [BunStdio, BunStdio, BunStdio];
  }): BunChild;
}
const bun = (): BunGlobal => (globalThis as unknown as { Bun: BunGlobal }).Bun;

function sinkToWeb(sink: FileSink): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      // A write the pipe cannot take at once returns a Promise, which rejects (EPIPE) if
      // the program exits first: awaited here, so it is this write's error, not an uncaught one.
      await sink.write(chunk);
      await sink.flush();
    },
    async close() {
      await sink.end();
    },
    async abort() {
      await sink.end();
    },
  });
}

export function bunSpawnCommand(file: string, args: string[], options: CommandOptions): CommandHandle {
  let child: BunChild;
  try {
    child = bun().spawn([file, ...args], {
      cwd: options.cwd,
      env: options.env,
      // stderr "stdout": fd 1 of this process, the child's stdout too.
      stdio: [options.stdin, options.stdout, options.stderr === "stdout" ? 1 : options.stderr],
    });
  } catch (err) {
    return failedCommand(err); // "Executable not found in $PATH" (code "ENOENT") is thrown here
  }
  let reaped = false;
  // A signal death resolves `exited` to 128 + n; signalCode says which signal.
  const status = child.exited.then((code) => {
    reaped = true;
    return child.signalCode !== null ? { code: null, signal: child.signalCode } : { code, signal: null };
  });
  return {
    pid: child.pid,
    stdin: options.stdin === "pipe" && child.stdin ? sinkToWeb(child.stdin) : null,
    stdout: options.stdout === "pipe" ? child.stdout ?? null : null,
    stderr: options.stderr === "pipe" ? child.stderr ?? null : null,
    status,
    kill(signal) {
      if (!reaped) child.kill(signal);
    },
  };
}
