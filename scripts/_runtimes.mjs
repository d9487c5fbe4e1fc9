// Finds the Deno and Bun binaries that `npm ci` brings, for the scripts that run all
// three runtimes (test, demo, bench): the platform package's native binary, else the npm
// package's, else the node_modules/.bin shim (a node wrapper, slower), else PATH.
import { accessSync, closeSync, constants, openSync, readdirSync, readSync, statSync } from "node:fs";
import path from "node:path";
import process from "node:process";

function looksNative(file) {
  // A real binary rather than an npm placeholder/shim: ELF or Mach-O magic.
  try {
    const fd = openSync(file, "r");
    const b = Buffer.alloc(4);
    readSync(fd, b, 0, 4, 0);
    closeSync(fd);
    const hex = b.toString("hex");
    return hex === "7f454c46" || ["cffaedfe", "cefaedfe", "feedfacf", "feedface", "cafebabe"].includes(hex);
  } catch {
    return false;
  }
}

export function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function platformDirs(scopeDir, prefix) {
  // e.g. node_modules/@deno/linux-x64-glibc, node_modules/@oven/bun-linux-x64 (exact platform match first).
  try {
    return readdirSync(scopeDir)
      .filter((d) => d.startsWith(prefix))
      .sort((a, b) => a.length - b.length || a.localeCompare(b))
      .map((d) => path.join(scopeDir, d));
  } catch {
    return [];
  }
}

/** The deno or bun binary that `npm ci` installed under `root`, else the .bin shim, else PATH's. */
export function resolveBinary(root, name) {
  const nm = path.join(root, "node_modules");
  const plat = process.platform;
  const native = [];
  if (name === "deno") {
    const arch = process.arch; // @deno/linux-x64-glibc, @deno/linux-arm64-glibc, @deno/darwin-arm64 ...
    native.push(...platformDirs(path.join(nm, "@deno"), `${plat}-${arch}`).map((d) => path.join(d, "deno")));
    native.push(path.join(nm, "deno", "deno"));
  } else {
    const arch = process.arch === "arm64" ? "aarch64" : process.arch; // @oven/bun-linux-x64, @oven/bun-linux-aarch64 ...
    native.push(...platformDirs(path.join(nm, "@oven"), `bun-${plat}-${arch}`).map((d) => path.join(d, "bin", "bun")));
    native.push(path.join(nm, "bun", "bin", "bun.exe")); // replaced by the real binary by bun's postinstall
  }
  for (const f of native) if (isExecutable(f) && looksNative(f)) return f;
  const shim = path.join(nm, ".bin", name);
  if (isExecutable(shim)) return shim;
  return name; // from PATH
}
