// Start methods and contexts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { getAllStartMethods, getContext, Process } from "../mod.ts";
import { runProgram, tempPath } from "./_helpers.ts";

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
