// The examples print what the Python programs they port print
// (research/python-multiprocessing.md §3), under both start methods.
import assert from "node:assert/strict";
import { test } from "node:test";
import { METHODS, runProgram } from "./_helpers.ts";

const EXPECTED: Record<string, string> = {
  "01_process.ts": "parent start\nchild will start\nchild test running\nchild end, exitcode=0\n",
  "02_isolation.ts": "child 0: data = [0]\nchild 1: data = [1]\nchild 2: data = [2]\nparent: data = []\n",
  "03_queue_copy.ts": 'parent original: {"id":1,"tags":["parent"]}\n' +
    'returned by child: {"id":1,"tags":["parent","child"],"seenByChild":true}\nsame object? false\n',
  "04_producer_consumer.ts": "values: [0,10,20,30,40,50,60,70,80,90,100,110,120,130,140,150,160,170,180,190]\n" +
    "consumers finished: [0,1,2]\nexitcodes: [0,0,0]\n",
  "05_joinable_queue.ts": "all tasks done\n[0,1,4,9,16,25,36,49,64,81]\n" +
    "extra taskDone -> RangeError: taskDone() called too many times\n",
  "06_pipe.ts": 'child got "hello"\n[1,2,{"k":"v"}]\nEOFError after child closed its end\n',
  "07_pools.ts": "Pool.map: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\nPool.apply_async: 144\nPool.imap: [0, 1, 4, 9, 16]\n" +
    "Pool.starmap: [32, 27]\nExecutor.map: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n" +
    "as_completed (sorted): [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]\n",
  "12_manager_list.ts": "10\n[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
  "13_remote_queue.ts": "producer put: hello\nconsumer got: hello\nwrong key: AuthenticationError\n",
  "09_shared_counter.ts": "counter = 4000\nexitcodes: [0,0,0,0]\n",
  "10_event.ts": "event set? false\nworker 0 released\nworker 1 released\nworker 2 released\nexitcodes: [0,0,0]\n",
  "11_barrier.ts": "step 0: steps seen [0], cells [0,1,2]\nstep 1: steps seen [1], cells [0,1,2]\n" +
    "step 2: steps seen [2], cells [0,1,2]\nbroken? false; exitcodes: [0,0,0]\n",
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

// ls runs while the parent prints, so only the order within each writer is fixed.
test("examples/08_subprocess.ts prints what the Python originals print (Popen ls, then communicate)", { timeout: 60_000 }, async () => {
  const run = await runProgram("../../examples/08_subprocess.ts");
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.split("\n").filter(Boolean);
  const parent = [
    "parent: Popen() returned immediately; ls runs asynchronously",
    "parent: returncode before wait = null",
    "parent: ls exited with 0",
    "parent: returncode before communicate = null",
    'captured: ["a.txt","b.txt"]',
    "err: null returncode: 0",
  ];
  assert.deepEqual(lines.filter((l) => !l.endsWith(".txt")), parent);
  assert.deepEqual(lines.filter((l) => l.endsWith(".txt")), ["a.txt", "b.txt"]);
  assert.ok(lines.indexOf("b.txt") < lines.indexOf("parent: ls exited with 0"), run.stdout);
});
