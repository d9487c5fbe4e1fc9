// The examples print what the Python programs they port print
// (research/python-multiprocessing.md §3), under both start methods.
import assert from "node:assert/strict";
import { test } from "node:test";
import { METHODS, runProgram } from "./_helpers.ts";

const EXPECTED: Record<string, string> = {
  "01_process.ts": "parent start\nchild will start\nchild test running\nchild end, exitcode=0\n",
  "02_isolation.ts": "child 0: data = [0]\nchild 1: data = [1]\nchild 2: data = [2]\nparent: data = []\n",
};

for (const method of METHODS) {
  for (const [file, expected] of Object.entries(EXPECTED)) {
    test(`[${method}] examples/${file} prints what the Python original prints`, { timeout: 60_000 }, async () => {
      const run = await runProgram(`../../examples/${file}`, [method]);
      assert.equal(run.stdout, expected, run.stderr);
      assert.equal(run.code, 0);
    });
  }
}
