// A plain-JavaScript copy of (part of) the repository: each .ts file transpiled to .js beside
// the same layout (relative imports rewritten to .js), other files copied, and a package.json
// saying ESM. `npm run bench` runs its "node-js" column on one, `npm test` its Node leg.
import { cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";

/** The files under `dir` (relative to `root`), recursively. */
export function filesUnder(root, dir) {
  return readdirSync(path.join(root, dir), { recursive: true, encoding: "utf8" })
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(path.join(root, f)).isFile());
}

/**
 * Writes `files` (paths relative to `root`) into `out`. In the files `renameIn(rel)` picks
 * (tests, examples), ".ts" in string literals becomes ".js" as well, so that the fixture and
 * module paths they name lead to the copies.
 */
export async function buildJsTree(root, out, files, renameIn = () => false) {
  const ts = (await import("typescript")).default;
  for (const rel of new Set(files)) {
    const transpiled = rel.endsWith(".ts") && !rel.endsWith(".d.ts");
    const target = path.join(out, transpiled ? rel.replace(/\.ts$/, ".js") : rel);
    mkdirSync(path.dirname(target), { recursive: true });
    if (!transpiled) {
      cpSync(path.join(root, rel), target);
      continue;
    }
    let { outputText } = ts.transpileModule(readFileSync(path.join(root, rel), "utf8"), {
      fileName: rel,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        rewriteRelativeImportExtensions: true,
        verbatimModuleSyntax: false,
      },
    });
    if (renameIn(rel)) outputText = outputText.replace(/\.ts(["'`])/g, ".js$1");
    writeFileSync(target, outputText);
  }
  writeFileSync(path.join(out, "package.json"), JSON.stringify({ type: "module" }));
  return out;
}
