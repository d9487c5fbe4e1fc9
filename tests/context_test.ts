// Start methods and contexts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { getAllStartMethods, getContext, Process } from "../mod.ts";
import process from "node:process";
import { fixture, runProgram, runtimeKey, tempPath } from "./_helpers.ts";

test("getContext() binds Process to a start method; an unknown method is a RangeError", () => {
  assert.deepEqual(getAllStartMethods(), ["worker", "process"]);
  assert.equal(getContext("process").startMethod, "process");
  assert.equal(getContext("worker"), getContext("worker"));
  assert.ok(new (getContext("process").Process)({ target: () => {} }) instanceof Process);
  assert.throws(() => getContext("fork" as never), (e: Error) => e instanceof RangeError && /"fork"/.test(e.message));
});

test("setStartMethod() changes the default until it has started a child, then needs force", { timeout: 60_000 }, async () => {
  const run = await runProgram("programs/start_method.ts", [tempPath()]);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), {
    initial: "worker",
    childPidDiffers: true,
    afterUse: "ProcessError",
    forced: "worker",
    bogus: "RangeError",
  });
});

test("on Deno, start() without the permissions a start method needs names the missing flags", {
  timeout: 60_000,
  skip: runtimeKey !== "deno" && "permissions exist only on Deno",
}, async () => {
  const { spawn } = await import("node:child_process");
  const program = fixture("programs/permissions.ts");
  const run = (flags: string[]) =>
    new Promise<string>((resolve) => {
      // Through sh, with the path in the environment: Deno's child_process rewrites any
      // argument that names its own executable, adding -A when no permission flag follows.
      const argv = ["-c", 'exec "$DENO_EXE" run "$@"', "sh", ...flags, program];
      const env = { ...process.env, DENO_EXE: process.execPath };
      const child = spawn("/bin/sh", argv, { stdio: ["ignore", "pipe", "inherit"], env });
      let out = "";
      child.stdout!.on("data", (d) => (out += d));
      child.on("close", () => resolve(out));
    });
  assert.equal(
    await run([]),
    'worker: StartMethodError: The "worker" start method on Deno needs --allow-read (run Deno with --allow-read)\n' +
      'process: StartMethodError: The "process" start method on Deno needs --allow-read --allow-run --allow-env ' +
      "(run Deno with --allow-read --allow-run --allow-env)\n",
  );
  assert.equal(
    await run(["--allow-read"]),
    "worker: exitCode=0\n" +
      'process: StartMethodError: The "process" start method on Deno needs --allow-run --allow-env ' +
      "(run Deno with --allow-read --allow-run --allow-env)\n",
  );
});
