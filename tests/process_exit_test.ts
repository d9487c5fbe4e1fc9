// Whole programs: what happens to children when the main program ends, crashes
// or is killed. Each runs a fixture program under the runtime running the tests.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { fixture, METHODS, pidAlive, runProgram, runtimeCommand, waitUntil } from "./_helpers.ts";

const T = { timeout: 90_000 };

test("no child outlives a parent killed with SIGKILL, busy or idle", T, async () => {
  const [exe, ...args] = runtimeCommand(fixture("programs/orphans.ts"));
  const parent = spawn(exe, args, { stdio: ["ignore", "pipe", "inherit"] });
  let pids: { busy: number; idle: number } | undefined;
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the program printed no pids within 60 s")), 60_000);
      createInterface({ input: parent.stdout! }).once("line", (l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
    pids = JSON.parse(line) as { busy: number; idle: number };
    assert.ok(pidAlive(pids.busy) && pidAlive(pids.idle), "both children run before the kill");
    parent.kill("SIGKILL");
    await waitUntil(() => !pidAlive(pids!.busy) && !pidAlive(pids!.idle), "both orphans have exited", 20_000);
  } finally {
    parent.kill("SIGKILL");
    for (const pid of Object.values(pids ?? {})) {
      try {
        process.kill(pid, "SIGKILL");
      } catch { /* already gone */ }
    }
  }
});

for (const method of METHODS) {
  test(`[${method}] the main program waits for a non-daemon child before it exits`, T, async () => {
    const run = await runProgram("programs/atexit.ts", [method, "nondaemon"]);
    assert.equal(run.stdout, "main end\nchild done\n", run.stderr);
    assert.equal(run.code, 0);
  });

  test(`[${method}] the main program stops a daemon child when it exits`, T, async () => {
    const run = await runProgram("programs/atexit.ts", [method, "daemon"], 60_000);
    assert.equal(run.code, 0, `the program ended by itself (stderr: ${run.stderr})`);
    const lines = run.stdout.trim().split("\n");
    assert.equal(lines[1], "main end");
    const { pid } = JSON.parse(lines[0]) as { pid: number };
    if (method === "process") await waitUntil(() => !pidAlive(pid), "the daemon child has exited", 20_000);
  });

  test(`[${method}] a child's uncaught error goes to stderr with its stack, and exitCode is 1`, T, async () => {
    const run = await runProgram("programs/uncaught.ts", [method]);
    assert.equal(run.stdout, "exitCode=1\n");
    assert.match(run.stderr, /^Process Process-1:\nTypeError: kaboom from the child\n\s+at /m);
    assert.match(run.stderr, /targets\.[jt]s/, "the stack names the target's module");
    assert.equal(run.code, 0);
  });
}
