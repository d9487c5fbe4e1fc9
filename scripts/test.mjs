#!/usr/bin/env node
// Runs the test suite (tests/*_test.ts: node:test + node:assert/strict) under Node, Deno and Bun.
//
// Node runs a plain-JavaScript copy of the repository (scripts/_js_tree.mjs), the code an npm user
// gets: under tsx, every child a test starts spent ~250 ms of CPU loading tsx, most of Node's leg
// (155 s alone against 80 s). `--runtime=node-tsx` runs the .ts files under tsx as before; tests that
// start programs still run them under tsx (tests/_helpers.ts runtimeCommand), and one checks that
// worker children load .ts whichever way tsx was named.
//
//   node scripts/test.mjs                          all of tests/*_test.ts, all three runtimes, concurrently
//   node scripts/test.mjs --runtime=deno           one runtime (repeatable, or comma-separated: --runtime=node,bun)
//   node scripts/test.mjs tests/queue_test.ts      a subset: files, or directories (their *_test.ts files)
//   options: --serial (one runtime at a time), --verbose (full output of passing runtimes too),
//            --timeout=SECONDS (per runtime, default 420: a hung runtime fails instead of stalling CI)
//
// Every runtime gets the same explicit, sorted file list (Node 20 does not discover .ts files, `bun test DIR`
// treats DIR as a substring filter and skips dot-directories, and Deno/Bun would also pick up *.test.ts etc.).
// A runtime's output is buffered and printed as one block when it ends: in full if it failed (plus a list of
// the failing tests), else only its summary lines. The last line is `N passed, M failed`, summed over the
// runtimes. A runtime that breaks without reporting a failing test (non-zero exit, no parsable summary,
// zero tests run, timeout) counts as 1 failed. Exit code 0 only if every runtime passed.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { buildJsTree, filesUnder } from "./_js_tree.mjs";
import { resolveBinary } from "./_runtimes.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const RUNTIMES = ["node", "deno", "bun"];
/** Runtimes run only when asked for. */
const EXTRA_RUNTIMES = ["node-tsx"];
// -A because the tests read /proc/<pid>/stat, which Deno allows only with all permissions.
// The library's own minimal flags are exercised by the program tests (tests/_helpers.ts
// runtimeCommand) and by `npm run demo`.
const DENO_FLAGS = ["-A"];

// ---------------------------------------------------------------------------------------------- arguments
function usage(msg) {
  if (msg) console.error(`test.mjs: ${msg}`);
  console.error("usage: node scripts/test.mjs [--runtime=node|deno|bun|node-tsx]... [--serial] [--verbose] [--timeout=S] [file|dir]...");
  process.exit(2);
}

const opts = { runtimes: [], serial: false, verbose: false, timeoutS: 420, paths: [] };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i] ?? usage(`${a} needs a value`));
    if (a === "-h" || a === "--help") usage();
    else if (a === "--runtime" || a.startsWith("--runtime=")) {
      for (const r of value().split(",").filter(Boolean)) {
        if (![...RUNTIMES, ...EXTRA_RUNTIMES].includes(r)) usage(`unknown runtime '${r}' (expected ${[...RUNTIMES, ...EXTRA_RUNTIMES].join("|")})`);
        if (!opts.runtimes.includes(r)) opts.runtimes.push(r);
      }
    } else if (a === "--serial") opts.serial = true;
    else if (a === "--verbose" || a === "-v") opts.verbose = true;
    else if (a === "--timeout" || a.startsWith("--timeout=")) {
      opts.timeoutS = Number(value());
      if (!(opts.timeoutS > 0)) usage("--timeout needs a positive number of seconds");
    } else if (a === "--") opts.paths.push(...argv.splice(i + 1));
    else if (a.startsWith("-")) usage(`unknown option ${a}`);
    else opts.paths.push(a);
  }
  if (opts.runtimes.length === 0) opts.runtimes = [...RUNTIMES];
  // Keep the canonical order whatever order the flags came in.
  const order = [...RUNTIMES, ...EXTRA_RUNTIMES];
  opts.runtimes.sort((a, b) => order.indexOf(a) - order.indexOf(b));
}

// ---------------------------------------------------------------------------------------------- test files
const isTestFile = (name) => name.endsWith("_test.ts");

function testFilesIn(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && isTestFile(e.name))
    .map((e) => path.join(dir, e.name));
}

function collectFiles() {
  // npm runs scripts in the package root; INIT_CWD is where the user typed the command.
  const base = process.env.INIT_CWD && existsSync(process.env.INIT_CWD) ? process.env.INIT_CWD : process.cwd();
  const inputs = opts.paths.length ? opts.paths.map((p) => path.resolve(base, p)) : [path.join(ROOT, "tests")];
  const files = new Set();
  for (const p of inputs) {
    if (!existsSync(p)) usage(`no such file or directory: ${p}`);
    if (statSync(p).isDirectory()) testFilesIn(p).forEach((f) => files.add(f));
    else files.add(p);
  }
  return [...files].map((f) => path.relative(ROOT, f) || f).sort();
}


// ---------------------------------------------------------------------------------------------- commands
/** The plain-JS copy Node's leg runs in (made once, removed at exit), with the project's node_modules. */
async function jsTree() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "polyproc-test-js-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const files = ["mod.ts", ...["src", "tests", "examples"].flatMap((d) => filesUnder(ROOT, d))];
  await buildJsTree(ROOT, dir, files, (rel) => !rel.startsWith("src"));
  symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

/** The command line of `rt` over `files`, and the folder it runs in. */
async function commandFor(rt, files) {
  switch (rt) {
    case "node": {
      const dir = await jsTree();
      const argv = [process.execPath, "--test", "--test-concurrency=3", "--test-reporter=tap", ...files.map((f) => f.replace(/\.ts$/, ".js"))];
      return { argv, cwd: dir };
    }
    case "node-tsx":
      return { argv: [process.execPath, "--import", "tsx", "--test", "--test-concurrency=3", "--test-reporter=tap", ...files], cwd: ROOT };
    case "deno":
      return { argv: [resolveBinary(ROOT, "deno"), "test", ...DENO_FLAGS, "--parallel", ...files], cwd: ROOT };
    case "bun":
      // Bun reads a bare argument as a substring filter; "./x" or "/x" is a path.
      return { argv: [resolveBinary(ROOT, "bun"), "test", ...files.map((f) => (path.isAbsolute(f) ? f : `./${f}`))], cwd: ROOT };
  }
}

// ---------------------------------------------------------------------------------------------- parsing
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;?]*[ -\/]*[@-~]/g, "");
const lastMatch = (re, text) => [...text.matchAll(re)].at(-1);
const num = (m) => (m ? Number(m[1]) : 0);

// Each parser returns { passed, failed, skipped, summary: [lines] } or null when no summary is found.
const parsers = {
  node(out) {
    // TAP closing block: "# tests N" "# suites" "# pass" "# fail" "# cancelled" "# skipped" "# todo" "# duration_ms".
    // Test output reaches the TAP stream as "# ..." comments, so only read the block after the last "# tests N".
    const lines = out.split("\n");
    let i = lines.length - 1;
    while (i >= 0 && !/^# tests \d+\s*$/.test(lines[i])) i--;
    if (i < 0) return null;
    const block = lines.slice(i, i + 8).filter((l) => /^# \w+ [\d.]+\s*$/.test(l));
    const get = (k) => block.map((l) => l.match(new RegExp(`^# ${k} (\\d+)`))).find(Boolean);
    const pass = get("pass"), fail = get("fail");
    if (!pass || !fail) return null;
    // Node 20 counts a timed-out test as "cancelled", not "fail".
    return { passed: num(pass), failed: num(fail) + num(get("cancelled")), skipped: num(get("skipped")) + num(get("todo")), summary: block };
  },
  deno(out) {
    // "ok | 4 passed | 0 failed (93ms)", "FAILED | 2 passed (12 steps) | 1 failed (1 step) | 0 ignored (4 steps) (142ms)"
    const m = lastMatch(/^(ok|FAILED) \| (\d+) passed(?: \([^)]*\))? \| (\d+) failed\b.*$/gm, out);
    if (!m) return null;
    return { passed: Number(m[2]), failed: Number(m[3]), skipped: num(m[0].match(/\| (\d+) ignored/)), summary: [m[0]] };
  },
  bun(out) {
    // " 10 pass" " 4 skip" " 1 todo" " 1 fail" [" 2 errors"] ... "Ran 16 tests across 1 file. [137.00ms]"
    const lines = out.split("\n");
    let i = lines.length - 1;
    while (i >= 0 && !/^Ran \d+ tests? across \d+ files?/.test(lines[i])) i--;
    if (i < 0) return null;
    let j = i;
    while (j > 0 && /^\s*\d+ [a-z()]/.test(lines[j - 1]) && i - j < 15) j--;
    const block = lines.slice(j, i + 1);
    const get = (k) => block.map((l) => l.match(new RegExp(`^\\s*(\\d+) ${k}\\s*$`))).find(Boolean);
    const pass = get("pass"), fail = get("fail");
    if (!pass || !fail) return null;
    // An "N error(s)" line (error outside a test) is already counted in "fail" and makes bun exit 1.
    return { passed: num(pass), failed: num(fail), skipped: num(get("skip")) + num(get("todo")), summary: block };
  },
};

// Lines naming the failing tests, for a quick look under the full output.
const failureLines = {
  node(out) {
    // "not ok 6 - name" (indented for subtests), then a YAML block that may hold "location: '/abs/file.ts:1:119'".
    const lines = out.split("\n");
    const found = [];
    lines.forEach((l, i) => {
      if (!/^\s*not ok \d+ /.test(l)) return;
      let where = "";
      for (let k = i + 1; k < lines.length && k < i + 60 && !/^\s*\.\.\.\s*$/.test(lines[k]); k++) {
        const m = lines[k].match(/^\s*location: '(.*?)(?::\d+:\d+)?'\s*$/);
        if (m) where = ` (${path.relative(ROOT, m[1]) || m[1]})`;
      }
      found.push(l.trim() + where);
    });
    return found;
  },
  deno(out) {
    const i = out.lastIndexOf("\n FAILURES \n");
    if (i < 0) return out.split("\n").filter((l) => /\.\.\. FAILED/.test(l));
    return out.slice(i).split("\n").slice(2).filter((l) => l.includes(" => ") || l.includes("(uncaught error)"));
  },
  bun(out) {
    // Results come under a "path/to/file_test.ts:" header; a recap ("N tests failed:") repeats them at the end.
    const found = [];
    let file = "";
    for (const l of out.split("\n")) {
      if (/^\d+ tests? failed:$/.test(l)) break;
      const h = l.match(/^(\S.*\.[cm]?[jt]sx?):$/);
      if (h) file = h[1];
      else if (/^\(fail\) /.test(l) || /^# Unhandled error/.test(l)) found.push(`${file ? file + ": " : ""}${l.trim()}`);
    }
    return [...new Set(found)];
  },
};

// ---------------------------------------------------------------------------------------------- running
const active = new Set(); // process group ids still to clean up

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    for (const pid of active) killGroup(pid, "SIGKILL");
    console.error(`\ntest.mjs: ${sig}, killed the test runs`);
    process.exit(sig === "SIGINT" ? 130 : 143);
  });
}
process.on("exit", () => {
  for (const pid of active) killGroup(pid, "SIGKILL");
});

function childEnv() {
  const env = { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1" };
  delete env.FORCE_COLOR; // it beats NO_COLOR in Node
  return env;
}

function run(rt, argv, cwd) {
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks = [];
    const notes = [];
    let timedOut = false;
    let child;
    try {
      // detached: its own process group, so a timeout kills the runtime and everything it started.
      child = spawn(argv[0], argv.slice(1), { cwd, env: childEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
    } catch (e) {
      resolve({ rt, argv, code: null, signal: null, out: String(e?.stack ?? e), notes: ["could not start"], seconds: 0 });
      return;
    }
    const onData = (d) => chunks.push(d);
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);

    let exitInfo = null, closed = false, finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (child.pid) active.delete(child.pid);
      resolve({
        rt, argv, code: exitInfo?.code ?? null, signal: exitInfo?.signal ?? null, timedOut, notes,
        out: stripAnsi(Buffer.concat(chunks).toString("utf8")).replace(/\r\n/g, "\n"),
        seconds: (Date.now() - started) / 1000,
      });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      notes.push(`timed out after ${opts.timeoutS}s: killed its process group`);
      killGroup(child.pid, "SIGTERM");
      setTimeout(() => killGroup(child.pid, "SIGKILL"), 5000).unref();
    }, opts.timeoutS * 1000);

    if (child.pid) active.add(child.pid);
    child.on("error", (e) => {
      notes.push(`could not start ${argv[0]}: ${e.message}`);
      exitInfo ??= { code: null, signal: null };
      finish();
    });
    // Once the runtime has exited, anything left in its process group (a leaked child, or one still holding
    // our pipes open) gets 2 s to go away on its own (tsx's esbuild service needs a few ms), then is killed.
    let reaping = false;
    const reap = () => {
      if (reaping) return;
      reaping = true;
      const deadline = Date.now() + 2000;
      const poll = () => {
        if (!groupAlive(child.pid)) return closed ? finish() : void setTimeout(finish, 1000);
        if (Date.now() < deadline) return void setTimeout(poll, 100);
        notes.push("processes were left running after the runtime exited: killed them");
        killGroup(child.pid, "SIGKILL");
        setTimeout(finish, closed ? 0 : 1000); // the pipes should close now; do not wait on them forever
      };
      poll();
    };
    child.on("exit", (code, signal) => {
      exitInfo = { code, signal };
      reap();
    });
    child.on("close", () => {
      closed = true;
      if (exitInfo && !groupAlive(child.pid)) finish();
    });
  });
}

// ---------------------------------------------------------------------------------------------- report
/** Whose output format a runtime's run has ("node-tsx" is Node's). */
const kind = (rt) => (rt === "node-tsx" ? "node" : rt);

function judge(r) {
  const parsed = parsers[kind(r.rt)](r.out);
  const problems = [...r.notes];
  let passed = 0, failed = 0, skipped = 0;
  if (parsed) ({ passed, failed, skipped } = parsed);
  else problems.push("no test summary found in its output");
  // A non-zero exit is expected when tests failed; otherwise it is a problem of its own.
  if (r.code !== 0 && !(parsed && failed > 0 && r.code === 1)) problems.push(r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`);
  if (parsed && passed + failed === 0) problems.push("it ran zero tests");
  // Leftover processes are worth a look, but are not a failure on their own.
  const fatal = problems.filter((p) => !p.startsWith("processes were left"));
  const ok = fatal.length === 0 && failed === 0;
  if (!ok && failed === 0) failed = 1; // a broken run counts as one failure
  const skip = skipped ? `, ${skipped} skipped` : "";
  const line = `${r.rt}: ${passed} passed, ${failed} failed${skip} (${r.seconds.toFixed(1)}s)` + (problems.length ? ` [${problems.join("; ")}]` : "");
  return { ...r, ok, passed, failed, line, summary: parsed?.summary ?? [] };
}

const shellQuote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

function printBlock(j) {
  const out = [];
  if (!j.ok || opts.verbose) {
    out.push(`==== ${j.rt}: ${j.ok ? "passed" : "FAILED"}, full output ====`);
    out.push(`$ ${j.argv.map(shellQuote).join(" ")}`);
    out.push(j.out.replace(/\n+$/, ""));
    if (!j.ok) {
      const fails = failureLines[kind(j.rt)](j.out);
      out.push(`==== ${j.rt}: failing tests (${fails.length}) ====`);
      out.push(...(fails.length ? fails.map((l) => `  ${l.trim()}`) : ["  (none named: see the output above)"]));
    }
  } else {
    out.push(`==== ${j.rt}: passed ====`);
    out.push(...j.summary.map((l) => `  ${l.trim()}`));
  }
  out.push(j.line, "");
  process.stdout.write(out.join("\n") + "\n");
}

// ---------------------------------------------------------------------------------------------- main
const files = collectFiles();
if (files.length === 0) {
  console.log(`no *_test.ts files found in ${opts.paths.length ? opts.paths.join(" ") : "tests/"}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}

console.log(`test files (${files.length}): ${files.join(" ")}`);
const jobs = await Promise.all(opts.runtimes.map(async (rt) => ({ rt, ...(await commandFor(rt, files)) })));
for (const { rt, argv, cwd } of jobs) console.log(`${rt}: $ ${cwd === ROOT ? "" : `(in ${cwd}) `}${argv.map(shellQuote).join(" ")}`);
console.log(`running ${opts.serial ? "one at a time" : "concurrently"}, timeout ${opts.timeoutS}s per runtime\n`);

const results = [];
const runJob = async ({ rt, argv, cwd }) => {
  const j = judge(await run(rt, argv, cwd));
  printBlock(j);
  results.push(j);
};
if (opts.serial) for (const job of jobs) await runJob(job);
else await Promise.all(jobs.map(runJob));

results.sort((a, b) => opts.runtimes.indexOf(a.rt) - opts.runtimes.indexOf(b.rt));
console.log("==== summary ====");
for (const j of results) console.log(j.line);
const passed = results.reduce((n, j) => n + j.passed, 0);
const failed = results.reduce((n, j) => n + j.failed, 0);
const ok = results.every((j) => j.ok);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = ok ? 0 : 1;
