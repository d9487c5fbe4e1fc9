// The adapter layer, and the house rule that only src/runtime/ names a runtime.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { runtime } from "../src/runtime/detect.ts";
import { fixture, runCommand, runtimeKey } from "./_helpers.ts";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));
const RUNTIME_NAMES = /["']node:|\bDeno\.|\bBun\.|globalThis\.(Deno|Bun|process)\b|typeof (Deno|Bun|process)\b|\bprocess\.(versions|env|argv|execArgv|pid|exit|on)\b/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith(".ts") ? [path] : [];
  });
}

test("nothing outside src/runtime/ names Deno, Bun, process or a node: module", () => {
  const offenders = sourceFiles(SRC)
    .filter((path) => !path.startsWith(join(SRC, "runtime")))
    .flatMap((path) =>
      readFileSync(path, "utf8").split("\n").flatMap((line, i) =>
        RUNTIME_NAMES.test(line) ? [`${path.slice(SRC.length)}:${i + 1}: ${line.trim()}`] : []
      )
    );
  assert.ok(sourceFiles(SRC).length > 5, "the scan found the sources");
  assert.deepEqual(offenders, []);
});

test("the adapter reports this runtime's pid, CPUs, signals and main module", () => {
  assert.equal(runtime.pid, process.pid);
  assert.ok(runtime.cpuCount() >= 1);
  assert.equal(runtime.signalNumber("SIGTERM"), 15);
  assert.equal(runtime.signalNumber("SIGKILL"), 9);
  assert.equal(runtime.pidAlive(process.pid), true);
  assert.equal(runtime.pidAlive(2 ** 22 + 1), false);
  const main = runtime.mainModuleUrl();
  assert.ok(main === undefined || /^file:/.test(main), String(main));
});

test("on Node, a worker child loads .ts whichever way tsx was named: tsx, tsx/esm, or a path", {
  timeout: 180_000,
  skip: runtimeKey !== "node" && "Node only: the others run .ts themselves",
}, async () => {
  const root = fileURLToPath(new URL("../", import.meta.url));
  for (const form of ["tsx", "tsx/esm", join(root, "node_modules/tsx/dist/esm/index.mjs")]) {
    const run = await runCommand(process.execPath, ["--import", form, fixture("programs/loader_forms.ts")], { cwd: root });
    assert.equal(run.stdout.trim(), JSON.stringify({ worker: 0, process: 0 }), `--import ${form}: ${run.stderr.slice(-400)}`);
  }
});
