/**
 * Starting programs for `Popen`: Node's `child_process` (used on Node), and what the
 * three runtimes' implementations share. Deno and Bun use their own primitive
 * (`deno/spawn.ts`, `bun/spawn.ts`): Deno's `node:child_process` reports a child
 * that caught SIGTERM and exited 0 as killed by SIGTERM, and both native APIs start
 * a program in about two thirds of the time.
 *
 * @module
 */
import type { Readable, Writable } from "node:stream";
import { builtin } from "./_builtin.ts";
import type { CommandHandle, CommandOptions, ExitStatus } from "./types.ts";

/** The signal name of `signal` ("SIGTERM" for 15), or undefined for an unknown number. */
export function signalName(signal: string | number): string | undefined {
  if (typeof signal === "string") return signal;
  const { constants } = builtin<typeof import("node:os")>("node:os");
  return Object.entries(constants.signals).find(([, n]) => n === signal)?.[0];
}

/** A handle for a program that could not be started: `status` rejects with `error`. */
export function failedCommand(error: unknown): CommandHandle {
  const status = Promise.reject(error);
  status.catch(() => {}); // Popen reports it from wait(); never an unhandled rejection
  return { pid: undefined, stdin: null, stdout: null, stderr: null, status, kill() {} };
}

/** A web stream over a Node readable, with back-pressure: the source pauses while the queue is full. */
export function readableToWeb(source: Readable): ReadableStream<Uint8Array> {
  let ended = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      source.on("data", (chunk: Uint8Array) => {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) source.pause();
      });
      source.once("end", () => {
        if (!ended) controller.close();
        ended = true;
      });
      source.once("error", (err) => {
        if (!ended) controller.error(err);
        ended = true;
      });
    },
    pull() {
      source.resume();
    },
    cancel() {
      ended = true;
      source.destroy();
    },
  }, { highWaterMark: 1 << 16, size: (chunk) => chunk.byteLength });
}

/** A web stream over a Node writable; a write resolves once its bytes are handed to the OS. */
export function writableToWeb(sink: Writable): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write: (chunk) => new Promise((resolve, reject) => sink.write(chunk, (err) => (err ? reject(err) : resolve()))),
    close: () => new Promise((resolve) => sink.end(() => resolve())),
    abort: () => void sink.destroy(),
  });
}

/** Copies a stream into this process's stdout (Deno and Bun cannot point a child's stderr at fd 1 for us). */
export function pumpToStdout(stream: ReadableStream<Uint8Array>): void {
  const out = (globalThis as unknown as { process: typeof import("node:process") }).process.stdout;
  void stream.pipeTo(new WritableStream({ write: (chunk) => void out.write(chunk) })).catch(() => {});
}

/** `spawnCommand` over `node:child_process`. */
export function nodeSpawnCommand(file: string, args: string[], options: CommandOptions): CommandHandle {
  const { spawn } = builtin<typeof import("node:child_process")>("node:child_process");
  let child;
  try {
    child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      // stderr "stdout": fd 1 of this process, the child's stdout too.
      stdio: [options.stdin, options.stdout, options.stderr === "stdout" ? 1 : options.stderr],
    });
  } catch (err) {
    return failedCommand(err);
  }
  let reaped = false;
  const status = new Promise<ExitStatus>((resolve, reject) => {
    // "error" before a pid means it never started; later ones (a failed kill) say nothing new.
    child.once("error", (err) => {
      if (child.pid === undefined) reject(err);
    });
    // "exit", not "close": a grandchild may hold the pipes open long after the child is gone.
    child.once("exit", (code, signal) => {
      reaped = true;
      resolve({ code, signal });
    });
  });
  status.catch(() => {});
  // EPIPE from a child that stopped reading is the write's own rejection, not a crash.
  child.stdin?.on("error", () => {});
  return {
    pid: child.pid,
    stdin: child.stdin ? writableToWeb(child.stdin) : null,
    stdout: child.stdout ? readableToWeb(child.stdout) : null,
    stderr: child.stderr ? readableToWeb(child.stderr) : null,
    status,
    kill(signal) {
      if (!reaped) child.kill(signal as Parameters<typeof child.kill>[0]);
    },
  };
}
