/**
 * Builds the npm package into `npm/`, reproducing what dnt would emit (dnt lives
 * on JSR, which this environment cannot reach): ESM JavaScript with `.d.ts`
 * files alongside in `npm/esm/`, a package.json with `exports`, README and
 * LICENSE. Then it packs the package, installs the tarball into a scratch project
 * and runs a smoke program under plain Node and under Bun.
 *
 * Run with `npm run build` (= `node --import tsx scripts/build_npm.ts`).
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = join(root, "npm");
const started = performance.now();

function fail(message: string): never {
  console.error(`build_npm: ${message}`);
  process.exit(1);
}

// --- 1. Compile -----------------------------------------------------------------

rmSync(out, { recursive: true, force: true });
mkdirSync(out);

// Every file of src/ is a root, not just mod.ts: src/_bootstrap.ts is imported by
// nobody (process.ts finds it by URL at run time), so it would not be emitted otherwise.
const srcFiles = readdirSync(join(root, "src"), { recursive: true, encoding: "utf8" })
  .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
  .map((f) => join(root, "src", f));
const rootNames = [join(root, "mod.ts"), ...srcFiles];
if (!rootNames.includes(join(root, "src", "_bootstrap.ts"))) fail("src/_bootstrap.ts is missing");

const options: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  // ES2024 for growable SharedArrayBuffers (the shared-memory queues); no DOM: ES + Node's types only.
  lib: ["lib.es2024.d.ts"],
  // NodeNext + the root package.json's "type": "module" gives ESM with Node's resolution.
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  // The source imports "./x.ts" (for Deno and Bun); the output must import "./x.js".
  allowImportingTsExtensions: true,
  rewriteRelativeImportExtensions: true,
  types: ["node"],
  typeRoots: [join(root, "node_modules", "@types")],
  strict: true,
  isolatedModules: true,
  verbatimModuleSyntax: true, // keep imports exactly as written, as Deno and Bun run them
  skipLibCheck: true,
  declaration: true,
  rootDir: root,
  outDir: join(out, "esm"),
  newLine: ts.NewLineKind.LineFeed,
};

const program = ts.createProgram({ rootNames, options });
// Type-check before emitting anything: a build of code that does not check is not shipped.
const diagnostics = ts.getPreEmitDiagnostics(program);
if (diagnostics.length > 0) {
  console.error(ts.formatDiagnosticsWithColorAndContext(diagnostics, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => root,
    getNewLine: () => "\n",
  }));
  fail(`type check failed with ${diagnostics.length} error(s)`);
}
// rewriteRelativeImportExtensions fixes the .js files but leaves "./x.ts" in the .d.ts
// files, which only TypeScript >= 5 accepts; dnt writes "./x.js" there too. tsc puts
// each import/export statement of a .d.ts on one line, hence a line-anchored rewrite.
const TS_SPECIFIER = /^((?:import|export)\b.* from ")(\.\.?\/[^"]*)\.ts(";)$/gm;
const emitted = program.emit(undefined, (file, text, bom) => {
  ts.sys.writeFile(file, file.endsWith(".d.ts") ? text.replace(TS_SPECIFIER, "$1$2.js$3") : text, bom);
});
if (emitted.emitSkipped || emitted.diagnostics.length > 0) fail("TypeScript emit failed");

// Guard the run-time contract of src/process.ts: `_bootstrap.js` and `_pool_worker.js` next to `process.js`,
// and no `.ts` specifier left behind in the output.
for (const file of ["esm/mod.js", "esm/mod.d.ts", "esm/src/process.js", "esm/src/_bootstrap.js", "esm/src/_pool_worker.js"]) {
  if (!existsSync(join(out, file))) fail(`expected npm/${file} in the output`);
}
for (const file of readdirSync(join(out, "esm"), { recursive: true, encoding: "utf8" })) {
  if (!file.endsWith(".js") && !file.endsWith(".d.ts")) continue; // skip directories
  const tsImport = /^(?:import|export)\b.* from "\.[^"]*\.ts";$/m.exec(readFileSync(join(out, "esm", file), "utf8"));
  if (tsImport) fail(`npm/esm/${file} still imports a .ts file: ${tsImport[0]}`);
}

// --- 2. package.json, README, LICENSE --------------------------------------------

const denoJsonPath = join(root, "deno.json");
if (!existsSync(denoJsonPath)) fail("deno.json is missing: it holds the version");
const { version } = JSON.parse(readFileSync(denoJsonPath, "utf8")) as { version?: string };
if (!version) fail("deno.json has no version");

const docs = ["README.md", "LICENSE"].filter((name) => {
  if (existsSync(join(root, name))) return true;
  console.warn(`build_npm: warning: no ${name} at the repo root; the package ships without it`);
  return false;
});
for (const name of docs) copyFileSync(join(root, name), join(out, name));

const packageJson = {
  name: "polyproc",
  version,
  description: "Python's multiprocessing for TypeScript: processes, on Deno, Bun and Node.js",
  license: "MIT",
  type: "module",
  main: "./esm/mod.js",
  types: "./esm/mod.d.ts",
  exports: {
    ".": { types: "./esm/mod.d.ts", import: "./esm/mod.js" },
    // The children's entry module, exported so that tools resolving the package see it.
    "./bootstrap": { types: "./esm/src/_bootstrap.d.ts", import: "./esm/src/_bootstrap.js" },
  },
  engines: { node: ">=20" },
  files: ["esm/", ...docs],
};
writeFileSync(join(out, "package.json"), JSON.stringify(packageJson, null, 2) + "\n");
const buildSeconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`build_npm: compiled ${rootNames.length} modules into npm/esm (polyproc@${version}) in ${buildSeconds}s`);

// --- 3. Smoke test the packed tarball ----------------------------------------------

// Test what npm would publish, installed as a user would, not the npm/ folder itself.
const scratch = mkdtempSync(join(tmpdir(), "polyproc-build-"));
const npm = (args: string[], cwd: string) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: "pipe" });
const [packed] = JSON.parse(npm(["pack", "--json", "--pack-destination", scratch], out)) as { filename: string }[];
const tarball = join(scratch, packed.filename);
const project = join(scratch, "project");
mkdirSync(project);
writeFileSync(join(project, "package.json"), JSON.stringify({ name: "smoke", private: true, type: "module" }));
npm(["install", tarball, "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], project);

// Each child writes its arguments to a file, which the parent reads back: a result,
// not just an exit code. Shipped functions are self-contained, hence the import inside.
const smoke = `import { Process, Queue, checkOutput, getContext, currentProcess } from "polyproc";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
const check = (ok, what) => { if (!ok) throw new Error("smoke: " + what); };
check(currentProcess().name === "MainProcess", "currentProcess().name is " + currentProcess().name);
for (const method of ["worker", "process"]) {
  const ctx = getContext(method);
  const file = join(dir, method + ".json");
  const args = [file, method, { n: 42, list: [1, "two"] }];
  const ok = new ctx.Process({
    target: async (path, ...rest) => (await import("node:fs")).writeFileSync(path, JSON.stringify(rest)),
    args,
  });
  ok.start();
  await ok.join();
  check(ok.exitCode === 0, method + ": exitCode " + ok.exitCode + ", expected 0");
  const got = readFileSync(file, "utf8");
  check(got === JSON.stringify(args.slice(1)), method + ": child wrote " + got);

  const bad = new ctx.Process({ target: () => { throw new Error("expected failure"); } });
  bad.start();
  await bad.join();
  check(bad.exitCode === 1, method + ": throwing target gave exitCode " + bad.exitCode + ", expected 1");

  // A queue handed to the child (shared memory, or the broker under "process").
  const q = new Queue(0, { context: method });
  const producer = new ctx.Process({ target: async (q) => { for (let i = 0n; i < 3n; i++) await q.put(i * 10n); }, args: [q] });
  producer.start();
  const items = [await q.get({ timeout: 30000 }), await q.get({ timeout: 30000 }), await q.get({ timeout: 30000 })];
  await producer.join();
  check(JSON.stringify(items.map(String)) === '["0","10","20"]', method + ": queue gave " + items.map(String));

  // A pool's workers load the pool-worker module by URL, next to the bootstrap.
  const pool = new ctx.Pool({ processes: 2 });
  const squares = await pool.map((x) => x * x, [1, 2, 3]);
  pool.close();
  await pool.join();
  check(JSON.stringify(squares) === "[1,4,9]", method + ": pool.map gave " + JSON.stringify(squares));
  const ex = new ctx.ProcessPoolExecutor({ maxWorkers: 1 });
  const sum = await ex.submit((a, b) => a + b, 2, 3);
  await ex.shutdown();
  check(sum === 5, method + ": executor gave " + sum);

  // A lock (shared memory, or the broker) held by a child while it writes; a manager's server
  // child (loaded by URL from the package) holding a list that a child appends to.
  const lock = new ctx.Lock();
  const m = new ctx.Manager();
  await m.start();
  const li = await m.list([1]);
  const user = new ctx.Process({ target: async (lock, li) => { await lock.withLock(() => li.append(2)); }, args: [lock, li] });
  user.start();
  await user.join();
  check(user.exitCode === 0, method + ": lock and manager child exitCode " + user.exitCode);
  check(JSON.stringify(await li.toArray()) === "[1,2]", method + ": manager list gave " + JSON.stringify(await li.toArray()));
  check(!(await lock.locked()), method + ": the lock is still held");
  await m.shutdown();
}
// subprocess: this runtime's own executable, started with the adapter's primitive.
const out = await checkOutput([process.execPath, "-e", "console.log(6 * 7)"], { text: true });
check(out.trim() === "42", "checkOutput gave " + JSON.stringify(out));
console.log("ok");
`;
writeFileSync(join(project, "smoke.mjs"), smoke);

const runtimes: [string, string][] = [
  ["node", process.execPath], // the running node, started with no loader (no tsx)
  ["bun", join(root, "node_modules", ".bin", "bun")],
];
let failed = false;
for (const [label, exe] of runtimes) {
  const t0 = performance.now();
  try {
    // Piped, so that the throwing child's expected stack trace stays out of the log.
    execFileSync(exe, ["smoke.mjs", scratch], { cwd: project, encoding: "utf8", stdio: "pipe", timeout: 60_000 });
    console.log(`build_npm: smoke ${label}: ok (Process, Queue, Pool and executor, Lock, Manager, worker + process; checkOutput) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  } catch (err) {
    failed = true;
    const e = err as { stdout?: string; stderr?: string; message: string };
    console.error(`build_npm: smoke ${label}: FAILED\n${e.stdout ?? ""}${e.stderr ?? e.message}`);
  }
}
if (failed) fail(`smoke test failed; the scratch project is kept at ${project}`);
rmSync(scratch, { recursive: true, force: true });
console.log(`build_npm: done in ${((performance.now() - started) / 1000).toFixed(1)}s`);
