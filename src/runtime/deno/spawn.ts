/**
 * `spawnCommand` over `Deno.Command`. Deno's `node:child_process` reports a child
 * that caught SIGTERM and exited 0 as `(null, "SIGTERM")` (it records the signal it
 * sent, not what happened), needs --allow-env even with an explicit env, and rewrites
 * spawns of Deno's own executable; `Deno.Command` reports the real status.
 *
 * @module
 */
import { failedCommand, pumpToStdout, signalName } from "../_spawn.ts";
import type { CommandHandle, CommandOptions, StdioMode } from "../types.ts";

type DenoStdio = "piped" | "inherit" | "null";
interface DenoChild {
  readonly pid: number;
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<{ code: number; signal: string | null }>;
  kill(signal: string): void;
}
interface DenoCommandClass {
  new (file: string, options: {
    args: string[];
    cwd?: string;
    env?: Record<string, string>;
    clearEnv?: boolean;
    stdin: DenoStdio;
    stdout: DenoStdio;
    stderr: DenoStdio;
  }): { spawn(): DenoChild };
}
const Command = (): DenoCommandClass => (globalThis as unknown as { Deno: { Command: DenoCommandClass } }).Deno.Command;

const denoStdio = (mode: StdioMode): DenoStdio => (mode === "pipe" ? "piped" : mode === "ignore" ? "null" : "inherit");

export function denoSpawnCommand(file: string, args: string[], options: CommandOptions): CommandHandle {
  const merged = options.stderr === "stdout";
  let child: DenoChild;
  try {
    child = new (Command())(file, {
      args,
      cwd: options.cwd,
      env: options.env,
      clearEnv: options.env !== undefined, // Python's and Node's env replaces the environment
      stdin: denoStdio(options.stdin),
      stdout: denoStdio(options.stdout),
      stderr: merged ? "piped" : denoStdio(options.stderr as StdioMode),
    }).spawn();
  } catch (err) {
    return failedCommand(err); // NotFound (code "ENOENT"), NotCapable, ... are thrown here
  }
  if (merged) pumpToStdout(child.stderr);
  let reaped = false;
  // A signal death comes as { code: 128 + n, signal }; the code is the shell's convention, not an exit.
  const status = child.status.then(({ code, signal }) => {
    reaped = true;
    return signal !== null ? { code: null, signal } : { code, signal: null };
  });
  return {
    pid: child.pid,
    // Deno throws on reading a stream that is not piped.
    stdin: options.stdin === "pipe" ? child.stdin : null,
    stdout: options.stdout === "pipe" ? child.stdout : null,
    stderr: options.stderr === "pipe" ? child.stderr : null,
    status,
    kill(signal) {
      const name = signalName(signal);
      if (reaped || name === undefined) return;
      try {
        child.kill(name);
      } catch {
        // it ended between the status and now
      }
    },
  };
}
