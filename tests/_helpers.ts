// Shared by the test files: start methods, temp files, and running a program
// under the runtime that runs the tests.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { getRuntimeKey } from "../src/runtime/detect.ts";

export const METHODS = ["worker", "process"] as const;
export type Method = (typeof METHODS)[number];

export const runtimeKey = getRuntimeKey();

let testRoot: string | undefined;

/**
 * A fresh temporary directory. They live in one folder per test process, removed when
 * it exits; Deno's test runner has no exit event, so the folders of test processes that
 * are gone are removed by the next one.
 */
export function tempDir(): string {
  if (testRoot === undefined) {
    for (const name of readdirSync(tmpdir())) {
      const pid = Number(/^polyproc-test-(\d+)-/.exec(name)?.[1]);
      if (pid > 0 && !pidAlive(pid)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
    const root = testRoot = mkdtempSync(join(tmpdir(), `polyproc-test-${process.pid}-`));
    process.on("exit", () => rmSync(root, { recursive: true, force: true }));
  }
  return mkdtempSync(join(testRoot, "t-"));
}

/** A path in a fresh temporary directory. */
export function tempPath(name = "out.json"): string {
  return join(tempDir(), name);
}

export function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, "utf8"));
}

/** The argv that runs `file` under this runtime, the way a user would. */
export function runtimeCommand(file: string): string[] {
  switch (runtimeKey) {
    case "deno":
      return [process.execPath, "run", "--allow-read", "--allow-write", "--allow-net", "--allow-run", "--allow-env", file];
    case "bun":
      return [process.execPath, file];
    default:
      return [process.execPath, "--import", "tsx", file];
  }
}

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Runs a fixture program to its end (killing it after `timeout` ms) and captures its output. */
export function runProgram(name: string, args: string[] = [], timeout = 60_000, env: Record<string, string> = {}): Promise<RunResult> {
  const [exe, ...argv] = runtimeCommand(fixture(name));
  return runCommand(exe, [...argv, ...args], { timeout, env });
}

/** Runs a command to its end (killing it after `timeout` ms) and captures its output. */
export function runCommand(
  exe: string,
  args: string[],
  { timeout = 60_000, env = {}, cwd }: { timeout?: number; env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  const child = spawn(exe, args, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeout);
  return new Promise((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Polls `check` until it is true; fails after `timeout` ms naming `what`. */
export async function waitUntil(check: () => boolean, what: string, timeout = 20_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeout} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Whether a pid is a live process (a zombie counts as dead: the sandbox reaps late). */
export function pidAlive(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  try {
    const text = readFileSync(stat, "utf8");
    return text.slice(text.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
