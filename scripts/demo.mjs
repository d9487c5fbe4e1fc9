#!/usr/bin/env node
// Runs every examples/*.ts (sorted) under Deno, Bun and Node, one run at a time, with its output.
//
//   node scripts/demo.mjs                              every example, every runtime
//   node scripts/demo.mjs --runtime=bun                one runtime (repeatable, or comma-separated)
//   node scripts/demo.mjs examples/01_process.ts       some examples
//   options: --timeout=SECONDS (per run, default 120; the run's process group is killed)
//
// Exit code 1 if any run exits non-zero (or times out), or if there are no examples.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { resolveBinary } from "./_runtimes.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const RUNTIMES = ["deno", "bun", "node"];

function usage(msg) {
  if (msg) console.error(`demo.mjs: ${msg}`);
  console.error("usage: node scripts/demo.mjs [--runtime=deno|bun|node]... [--timeout=S] [examples/file.ts]...");
  process.exit(2);
}

const opts = { runtimes: [], timeoutS: 120, paths: [] };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => (a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i] ?? usage(`${a} needs a value`));
    if (a === "-h" || a === "--help") usage();
    else if (a === "--runtime" || a.startsWith("--runtime=")) {
      for (const r of value().split(",").filter(Boolean)) {
        if (!RUNTIMES.includes(r)) usage(`unknown runtime '${r}' (expected ${RUNTIMES.join("|")})`);
        if (!opts.runtimes.includes(r)) opts.runtimes.push(r);
      }
    } else if (a === "--timeout" || a.startsWith("--timeout=")) {
      opts.timeoutS = Number(value());
      if (!(opts.timeoutS > 0)) usage("--timeout needs a positive number of seconds");
    } else if (a.startsWith("-")) usage(`unknown option ${a}`);
    else opts.paths.push(a);
  }
  if (opts.runtimes.length === 0) opts.runtimes = [...RUNTIMES];
  opts.runtimes.sort((a, b) => RUNTIMES.indexOf(a) - RUNTIMES.indexOf(b));
}


// The permissions an example asks for in its "// Run: deno run --allow-… file" line (a manager
// or a broker needs write and net; most need less), so each runs with no more than it says.
function denoFlags(file) {
  const line = readFileSync(path.resolve(ROOT, file), "utf8").match(/^\/\/ Run: deno run ((?:--allow-[\w-]+ )+)/m);
  return line ? line[1].trim().split(" ") : ["--allow-read", "--allow-run", "--allow-env"];
}

function commandFor(rt, file) {
  switch (rt) {
    case "deno":
      return [resolveBinary(ROOT, "deno"), "run", ...denoFlags(file), file];
    case "bun":
      return [resolveBinary(ROOT, "bun"), file];
    case "node":
      return [process.execPath, "--import", "tsx", file];
  }
}

// ---------------------------------------------------------------------------------------------- examples
function collectExamples() {
  const base = process.env.INIT_CWD && existsSync(process.env.INIT_CWD) ? process.env.INIT_CWD : process.cwd();
  if (opts.paths.length) {
    return opts.paths.map((p) => {
      const abs = path.resolve(base, p);
      if (!existsSync(abs) || !statSync(abs).isFile()) usage(`no such file: ${p}`);
      return path.relative(ROOT, abs) || abs;
    });
  }
  const dir = path.join(ROOT, "examples");
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => path.join("examples", e.name))
    .sort();
}

// ---------------------------------------------------------------------------------------------- running
let current = null; // process group of the run in progress

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (current) killGroup(current, "SIGKILL");
    console.error(`\ndemo.mjs: ${sig}, stopped`);
    process.exit(sig === "SIGINT" ? 130 : 143);
  });
}
process.on("exit", () => {
  if (current) killGroup(current, "SIGKILL");
});

function run(argv) {
  return new Promise((resolve) => {
    const started = Date.now();
    let timedOut = false;
    const env = { ...process.env, DENO_NO_UPDATE_CHECK: "1" };
    // Own process group (detached), so a timeout also stops what the example started. The output goes
    // straight to ours, so it appears as it is written.
    const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, env, stdio: ["ignore", "inherit", "inherit"], detached: true });
    current = child.pid ?? null;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, "SIGTERM");
      setTimeout(() => killGroup(child.pid, "SIGKILL"), 3000).unref();
    }, opts.timeoutS * 1000);
    const done = (code, signal, error) => {
      clearTimeout(timer);
      // Anything the example left running in its group goes too.
      if (child.pid) killGroup(child.pid, "SIGKILL");
      current = null;
      resolve({ code, signal, error, timedOut, seconds: (Date.now() - started) / 1000 });
    };
    child.on("error", (e) => done(null, null, e));
    child.on("exit", (code, signal) => done(code, signal, null));
  });
}

// ---------------------------------------------------------------------------------------------- main
const examples = collectExamples();
if (examples.length === 0) {
  console.log("no examples: examples/*.ts is empty, nothing to run");
  process.exit(1);
}

const failures = [];
let runs = 0;
for (const file of examples) {
  for (const rt of opts.runtimes) {
    const argv = commandFor(rt, file);
    console.log(`== ${rt} ${file} ==`);
    const r = await run(argv);
    runs++;
    let status;
    if (r.error) status = `could not start ${argv[0]}: ${r.error.message}`;
    else if (r.timedOut) status = `timed out after ${opts.timeoutS}s, killed`;
    else if (r.signal) status = `killed by ${r.signal}`;
    else status = `exit code ${r.code}`;
    const ok = !r.error && !r.timedOut && r.code === 0;
    console.log(`-- ${rt} ${file}: ${status} (${r.seconds.toFixed(1)}s)${ok ? "" : "  FAILED"}\n`);
    if (!ok) failures.push(`${rt} ${file}: ${status}`);
  }
}

console.log(`${runs - failures.length} of ${runs} runs passed`);
for (const f of failures) console.log(`  FAILED ${f}`);
process.exitCode = failures.length ? 1 : 0;
