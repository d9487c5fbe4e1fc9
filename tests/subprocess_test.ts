// subprocess: Popen, run, checkOutput and their errors, the same on every runtime
// (research/python-multiprocessing.md §1.10 and §3.5/3.6). Programs used: POSIX sh,
// echo, cat, head, sleep, ls, pwd, env.
import assert from "node:assert/strict";
import { writeFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import {
  CalledProcessError,
  checkOutput,
  CompletedProcess,
  Popen,
  ProcessError,
  run,
  SubprocessError,
  TimeoutExpiredError,
} from "../mod.ts";
import { pidAlive, tempDir, waitUntil } from "./_helpers.ts";

const T = { timeout: 30_000 };
const MiB = 1024 * 1024;
const text = (bytes: Uint8Array | string | null) => (typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes!));

/** Rejects if `promise` has not settled after `ms`, naming `what` (so a bug fails instead of hanging). */
function within<V>(promise: Promise<V>, what: string, ms = 20_000): Promise<V> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Reads `stream` until its text contains `marker` (a program saying it is ready). */
async function readUntil(stream: ReadableStream<Uint8Array>, marker: string): Promise<string> {
  const reader = stream.getReader();
  let seen = "";
  try {
    while (!seen.includes(marker)) {
      const { done, value } = await within(reader.read(), `output "${marker}"`);
      if (done) throw new Error(`stream ended before "${marker}": ${seen}`);
      seen += new TextDecoder().decode(value);
    }
  } finally {
    reader.releaseLock();
  }
  return seen;
}

function lsDemo(): string {
  const dir = tempDir();
  writeFileSync(join(dir, "a.txt"), "a");
  writeFileSync(join(dir, "b.txt"), "b");
  return dir;
}

// ---------------------------------------------------------------------------------------------- Popen

test("Popen(['ls']) returns at once with a pid and returncode null; wait() gives 0 (the seed program)", T, async () => {
  const p = new Popen(["ls"], { cwd: lsDemo(), stdout: "ignore" });
  assert.ok(Number.isInteger(p.pid) && p.pid! > 0);
  assert.notEqual(p.pid, process.pid);
  assert.equal(p.returncode, null);
  assert.equal(await within(p.wait(), "wait()"), 0);
  assert.equal(p.returncode, 0);
  assert.equal(p.poll(), 0);
  assert.equal(await p.wait(), 0, "a second wait() returns the same code");
});

test("Popen with stdout 'pipe' and text: communicate() gives the listing, and null for stderr (seed 3.6)", T, async () => {
  const p = new Popen(["ls"], { cwd: lsDemo(), stdout: "pipe", text: true });
  assert.equal(p.returncode, null);
  const { stdout, stderr } = await within(p.communicate(), "communicate()");
  assert.deepEqual(stdout!.split(/\s+/).filter(Boolean), ["a.txt", "b.txt"]);
  assert.equal(stderr, null);
  assert.equal(p.returncode, 0);
  assert.equal(p.stdin, null);
  assert.equal(p.stderr, null);
});

test("Popen streams: bytes written to cat's stdin come back on its stdout", T, async () => {
  const p = new Popen(["cat"], { stdin: "pipe", stdout: "pipe" });
  assert.ok(p.stdin instanceof WritableStream);
  assert.ok(p.stdout instanceof ReadableStream);
  const writer = p.stdin.getWriter();
  await writer.write(new TextEncoder().encode("hello\n"));
  assert.equal(await readUntil(p.stdout!, "hello\n"), "hello\n");
  await writer.write(new TextEncoder().encode("again\n"));
  await writer.close();
  const { stdout } = await within(p.communicate(), "communicate()");
  assert.ok(stdout instanceof Uint8Array, "bytes by default");
  assert.equal(text(stdout), "again\n");
  assert.equal(p.returncode, 0);
});

test("communicate() moves 10 MiB through cat in both directions without deadlock", T, async () => {
  const input = new Uint8Array(10 * MiB);
  for (let i = 0; i < input.length; i += 4096) input[i] = (i / 4096) % 251;
  const p = new Popen(["cat"], { stdin: "pipe", stdout: "pipe" });
  const { stdout } = await within(p.communicate(input), "communicate(10 MiB)");
  assert.equal(stdout!.length, input.length);
  assert.deepEqual(stdout, input);
  assert.equal(p.returncode, 0);
});

test("communicate() reads stdout and stderr together: 10 MiB to each, stderr first, does not deadlock", T, async () => {
  const p = new Popen(["sh", "-c", "head -c 10485760 /dev/zero >&2; head -c 10485760 /dev/zero"], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const { stdout, stderr } = await within(p.communicate(), "communicate()");
  assert.equal(stdout!.length, 10 * MiB);
  assert.equal(stderr!.length, 10 * MiB);
  assert.equal(p.returncode, 0);
});

test("a program that exits without reading all its input is not an error (Python ignores the broken pipe)", T, async () => {
  const input = new Uint8Array(8 * MiB);
  const done = await within(run(["sh", "-c", "head -c 10 >/dev/null; echo read 10"], { input, captureOutput: true, text: true }), "run");
  assert.equal(done.stdout, "read 10\n");
  assert.equal(done.returncode, 0);
  assert.equal((await within(run(["true"], { input }), "run")).returncode, 0);
});

test("stderr 'stdout' merges both into stdout; stderr is null", T, async () => {
  const done = await within(run(["sh", "-c", "echo out; echo err >&2"], { stdout: "pipe", stderr: "stdout", text: true }), "run");
  assert.deepEqual(done.stdout!.split("\n").filter(Boolean).sort(), ["err", "out"]);
  assert.equal(done.stderr, null);
});

test("streams that are not piped are null, and 'ignore' discards", T, async () => {
  const p = new Popen(["echo", "nowhere"], { stdout: "ignore" });
  assert.equal(p.stdout, null);
  const { stdout, stderr } = await within(p.communicate(), "communicate()");
  assert.equal(stdout, null);
  assert.equal(stderr, null);
  assert.equal(p.returncode, 0);
});

// ---------------------------------------------------------------------------------------------- run / checkOutput

test("run() echo round trip: CompletedProcess with args, returncode, stdout and stderr", T, async () => {
  const done = await within(run(["echo", "hello world"], { captureOutput: true, text: true }), "run");
  assert.ok(done instanceof CompletedProcess);
  assert.deepEqual(done.args, ["echo", "hello world"]);
  assert.equal(done.returncode, 0);
  assert.equal(done.stdout, "hello world\n");
  assert.equal(done.stderr, "");
  done.checkReturncode();
});

test("run() without capture leaves output alone: stdout and stderr are null", T, async () => {
  const done = await within(run(["true"]), "run");
  assert.equal(done.returncode, 0);
  assert.equal(done.stdout, null);
  assert.equal(done.stderr, null);
});

test("run({ input }) feeds stdin; bytes in, bytes out by default", T, async () => {
  const done = await within(run(["cat"], { input: "typed\n", captureOutput: true }), "run");
  assert.ok(done.stdout instanceof Uint8Array);
  assert.equal(text(done.stdout), "typed\n");
});

test("run() returns a non-zero code; check: true rejects with CalledProcessError holding the output", T, async () => {
  const cmd = ["sh", "-c", "echo out; echo err >&2; exit 3"];
  const done = await within(run(cmd, { captureOutput: true, text: true }), "run");
  assert.equal(done.returncode, 3);
  assert.throws(() => done.checkReturncode(), CalledProcessError);
  await assert.rejects(run(cmd, { captureOutput: true, text: true, check: true }), (e: CalledProcessError) => {
    assert.ok(e instanceof CalledProcessError && e instanceof SubprocessError && e instanceof ProcessError);
    assert.equal(e.returncode, 3);
    assert.deepEqual(e.cmd, cmd);
    assert.equal(e.stdout, "out\n");
    assert.equal(e.output, "out\n");
    assert.equal(e.stderr, "err\n");
    assert.match(e.message, /returned non-zero exit status 3/);
    return true;
  });
});

test("checkOutput() returns stdout; a failure is a CalledProcessError with what was printed", T, async () => {
  assert.equal(await within(checkOutput(["echo", "hi"], { text: true }), "checkOutput"), "hi\n");
  assert.equal(text(await within(checkOutput(["echo", "hi"]), "checkOutput")), "hi\n");
  await assert.rejects(checkOutput(["sh", "-c", "echo partial; exit 2"], { text: true }), (e: CalledProcessError) => {
    assert.equal(e.returncode, 2);
    assert.equal(e.output, "partial\n");
    assert.equal(e.stderr, null);
    return true;
  });
});

test("run() refuses input with stdin, and captureOutput with stdout (Python's ValueErrors)", T, async () => {
  await assert.rejects(run(["cat"], { input: "x", stdin: "pipe" }), /stdin and input may not both be used/);
  await assert.rejects(run(["cat"], { captureOutput: true, stdout: "pipe" }), TypeError);
  await assert.rejects(new Popen(["true"]).communicate("x"), ProcessError);
});

test("env replaces the environment; cwd sets the working directory (string or file URL)", T, async () => {
  const done = await within(run(["/usr/bin/env"], { env: { POLYPROC_ONLY: "yes" }, captureOutput: true, text: true }), "run");
  assert.equal(done.stdout, "POLYPROC_ONLY=yes\n");
  const inherited = await within(run(["sh", "-c", 'echo "$HOME"'], { captureOutput: true, text: true }), "run");
  assert.equal(inherited.stdout, `${process.env.HOME}\n`);
  const dir = realpathSync(tempDir());
  for (const cwd of [dir, pathToFileURL(dir + "/")]) {
    const pwd = await within(run(["pwd"], { cwd, captureOutput: true, text: true }), "run");
    assert.equal(pwd.stdout, `${dir}\n`);
  }
});

// ---------------------------------------------------------------------------------------------- bad input

test("a missing program rejects wait(), communicate() and run() with code ENOENT, naming the program", T, async () => {
  const name = "polyproc-no-such-program";
  const check = (e: SubprocessError) => {
    assert.ok(e instanceof SubprocessError);
    assert.equal(e.code, "ENOENT");
    assert.match(e.message, new RegExp(`"${name}"`));
    return true;
  };
  await assert.rejects(within(run([name, "x"], { captureOutput: true }), "run"), check);
  const p = new Popen([name]);
  assert.equal(p.pid, undefined);
  await assert.rejects(within(p.wait(), "wait()"), check);
  await assert.rejects(within(p.communicate(), "communicate()"), check);
  assert.throws(() => p.poll(), check);
  assert.equal(p.returncode, null);
  await assert.rejects(run(["true"], { cwd: "/polyproc/no/such/dir" }), (e: SubprocessError) => {
    assert.equal(e.code, "ENOENT");
    assert.match(e.message, /no\/such\/dir/);
    return true;
  });
});

test("bad args: an empty list is a RangeError, a non-string argument a TypeError naming the program", T, () => {
  assert.throws(() => new Popen([]), RangeError);
  assert.throws(() => new Popen(["echo", 42 as unknown as string]), (e: Error) => e instanceof TypeError && /"echo"/.test(e.message));
  assert.throws(() => new Popen([null as unknown as string]), TypeError);
  assert.throws(() => new Popen(42 as unknown as string[]), TypeError);
  assert.throws(() => new Popen(["echo", "a\0b"]), RangeError);
  assert.throws(() => new Popen(["echo"], { stdout: "PIPE" as "pipe" }), RangeError);
  assert.throws(() => new Popen(["echo"], { stdin: "stdout" as "pipe" }), RangeError);
  assert.throws(() => new Popen(["echo"], { env: { N: 1 as unknown as string } }), TypeError);
});

test("no shell unless shell: true: metacharacters reach the program as written", T, async () => {
  const literal = await within(run(["echo", "$HOME; echo injected"], { captureOutput: true, text: true }), "run");
  assert.equal(literal.stdout, "$HOME; echo injected\n");
  // A string without shell is one program name, spaces and all.
  await assert.rejects(run("echo hi"), (e: SubprocessError) => e.code === "ENOENT" && /"echo hi"/.test(e.message));
  const shell = await within(run("echo $((1 + 2)) | cat", { shell: true, captureOutput: true, text: true }), "run");
  assert.equal(shell.stdout, "3\n");
});

// ---------------------------------------------------------------------------------------------- timeouts

test("wait(timeout) rejects with TimeoutExpiredError and leaves the program running", T, async () => {
  const p = new Popen(["sleep", "30"]);
  try {
    await assert.rejects(p.wait(100), (e: TimeoutExpiredError) => {
      assert.ok(e instanceof TimeoutExpiredError && e instanceof SubprocessError);
      assert.equal(e.timeout, 100);
      assert.deepEqual(e.cmd, ["sleep", "30"]);
      assert.match(e.message, /timed out after 100 ms/);
      return true;
    });
    assert.equal(p.poll(), null);
    assert.ok(pidAlive(p.pid!));
  } finally {
    p.kill();
  }
  assert.equal(await within(p.wait(), "wait() after kill()"), -9);
});

test("communicate(input, timeout) leaves the program running; kill() then communicate() collects the rest", T, async () => {
  const p = new Popen(["sh", "-c", "echo partial; exec sleep 30"], { stdout: "pipe", text: true });
  await assert.rejects(p.communicate(undefined, 200), (e: TimeoutExpiredError) => {
    assert.ok(e instanceof TimeoutExpiredError);
    assert.ok(e.stdout === "" || e.stdout === "partial\n", `output so far: ${JSON.stringify(e.stdout)}`);
    return true;
  });
  assert.equal(p.poll(), null);
  p.kill();
  const { stdout } = await within(p.communicate(), "communicate() after kill()");
  assert.equal(stdout, "partial\n");
  assert.equal(p.returncode, -9);
});

test("run({ timeout }) kills and reaps the program, then rejects with what it had printed", T, async () => {
  await assert.rejects(
    within(run(["sh", "-c", "echo $$; exec sleep 30"], { timeout: 300, captureOutput: true, text: true }), "run"),
    (e: TimeoutExpiredError) => {
      assert.ok(e instanceof TimeoutExpiredError);
      assert.equal(e.timeout, 300);
      const pid = Number(e.stdout);
      assert.ok(pid > 0, `the program printed its pid: ${JSON.stringify(e.stdout)}`);
      assert.equal(pidAlive(pid), false, "killed and reaped");
      return true;
    },
  );
});

test("run({ signal }) kills the program on abort and rejects with the reason", T, async () => {
  const controller = new AbortController();
  const running = run(["sleep", "30"], { signal: controller.signal });
  controller.abort(new Error("stop it"));
  await assert.rejects(within(running, "run"), /stop it/);
  await assert.rejects(run(["true"], { signal: AbortSignal.abort(new Error("already")) }), /already/);
});

// ---------------------------------------------------------------------------------------------- signals

test("terminate() gives -15, kill() -9, sendSignal('SIGINT') -2 and sendSignal(15) -15", T, async () => {
  for (const [stop, code] of [[(p: Popen) => p.terminate(), -15], [(p: Popen) => p.kill(), -9],
    [(p: Popen) => p.sendSignal("SIGINT"), -2], [(p: Popen) => p.sendSignal(15), -15]] as const) {
    const p = new Popen(["sleep", "30"]);
    stop(p);
    assert.equal(await within(p.wait(), "wait()"), code);
    assert.equal(p.returncode, code);
    stop(p); // a no-op once reaped, as in Python
  }
});

test("a program that catches SIGTERM and exits 0 has returncode 0 (Deno's node:child_process says SIGTERM)", T, async () => {
  const p = new Popen(["sh", "-c", 'trap "exit 0" TERM; echo ready; while :; do sleep 0.05; done'], { stdout: "pipe" });
  try {
    await readUntil(p.stdout!, "ready");
    p.terminate();
    assert.equal(await within(p.wait(), "wait()"), 0);
  } finally {
    p.kill();
  }
});

test("a program killed by a signal it sends itself reports it; check names the signal", T, async () => {
  await assert.rejects(run(["sh", "-c", "kill -TERM $$"], { check: true }), (e: CalledProcessError) => {
    assert.equal(e.returncode, -15);
    assert.match(e.message, /died with signal 15 \(SIGTERM\)/);
    return true;
  });
});

test("sendSignal() with an unknown signal is a RangeError", T, async () => {
  const p = new Popen(["true"]);
  assert.throws(() => p.sendSignal("SIGNOPE"), RangeError);
  assert.throws(() => p.sendSignal(-1), RangeError);
  assert.equal(await within(p.wait(), "wait()"), 0);
});

test("await using kills a program still running and reaps it", T, async () => {
  let escaped: Popen | undefined;
  await within((async () => {
    await using p = new Popen(["sleep", "30"], { stdout: "pipe" });
    escaped = p;
    assert.ok(pidAlive(p.pid!));
  })(), "await using disposal");
  assert.equal(escaped!.returncode, -9);
  await waitUntil(() => !pidAlive(escaped!.pid!), "the killed program is gone");
});
