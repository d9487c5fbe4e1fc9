/**
 * How a child finds the function it runs: a module export named by URL (the
 * faithful port of pickling by reference), or a self-contained function shipped
 * as source text.
 *
 * @module
 */
import { isChild } from "./_child_state.ts";
import { runtime } from "./runtime/detect.ts";

declare const signature: unique symbol;

/**
 * A reference to an exported function that a child can import: `A` are its
 * arguments, `R` its (awaited) result. Made by {@linkcode fromModule}.
 *
 * @example
 * ```ts
 * import { fromModule, type Target } from "polyproc";
 * const square: Target<[number], number> = fromModule<typeof import("./tasks.ts")>(
 *   new URL("./tasks.ts", import.meta.url),
 * ).square;
 * ```
 */
export interface Target<A extends unknown[] = unknown[], R = unknown> {
  /** The module's URL. */
  readonly module: string;
  /** The export's name. */
  readonly name: string;
  /** Carries the function's type; never set at run time. */
  readonly [signature]?: (...args: A) => R;
}

/**
 * Anything that names the code a child runs: a {@linkcode Target} or a self-contained function.
 *
 * @example
 * ```ts
 * import type { TargetLike } from "polyproc";
 * const shipped: TargetLike<[number], number> = (x: number) => x * x;
 * ```
 */
export type TargetLike<A extends unknown[] = unknown[], R = unknown> =
  | Target<A, R>
  | ((...args: A) => R | PromiseLike<R>);

/**
 * The exports of module `M`: each function as a typed {@linkcode Target}, anything
 * else as `undefined` (it cannot be run). A plain mapped type, so that a module
 * may name its own exports without an infinitely deep type.
 *
 * @example
 * ```ts
 * import { fromModule, type ModuleTargets } from "polyproc";
 * const tasks: ModuleTargets<typeof import("./tasks.ts")> = fromModule(new URL("./tasks.ts", import.meta.url));
 * ```
 */
export type ModuleTargets<M> = {
  readonly [K in keyof M]: M[K] extends (...args: infer A) => infer R ? Target<A, Awaited<R>> : undefined;
};

/** How a target travels to a child. */
export type TargetSpec =
  | { kind: "module"; module: string; name: string }
  | { kind: "source"; source: string; name: string };

/**
 * Names the exports of a module so that children can import and run them.
 *
 * Python pickles a function as "module + name" and the child imports it; this is
 * the same. Module globals, imports and closures work, and each child has its own
 * copy of the module's state. A module may name itself with `import.meta.url`;
 * guard its main program with {@linkcode isMainModule}.
 *
 * @param url The module's URL (absolute; `new URL("./tasks.ts", import.meta.url)`).
 * @returns An object whose every property is a typed reference to that export.
 * @throws {TypeError} if `url` is not an absolute URL.
 *
 * @example Running an export of another module
 * ```ts
 * import { fromModule, Process } from "polyproc";
 * const tasks = fromModule<typeof import("./tasks.ts")>(new URL("./tasks.ts", import.meta.url));
 * const p = new Process({ target: tasks.greet, args: ["world"] });
 * p.start();
 * await p.join();
 * ```
 */
export function fromModule<M>(url: string | URL): ModuleTargets<M> {
  let href: string;
  try {
    href = new URL(url).href;
  } catch {
    throw new TypeError(`fromModule() needs an absolute module URL, got ${JSON.stringify(String(url))}`);
  }
  const cache = new Map<string, Target>();
  return new Proxy({}, {
    get(_, name) {
      // Not a thenable, and not a target for symbol lookups such as inspection.
      if (typeof name !== "string" || name === "then") return undefined;
      let target = cache.get(name);
      if (target === undefined) {
        target = Object.freeze({ module: href, name });
        cache.set(name, target);
      }
      return target;
    },
  }) as ModuleTargets<M>;
}

/**
 * Whether `importMeta` is the program's main module: Python's
 * `if __name__ == "__main__"`. False in every module a child imports, so a module
 * that names its own exports as targets does not rerun its main program in them.
 *
 * @example Guarding a main program
 * ```ts
 * import { isMainModule } from "polyproc";
 * if (isMainModule(import.meta)) console.log("main program");
 * ```
 */
export function isMainModule(importMeta: ImportMeta): boolean {
  return !isChild() && runtime.isMainModule(importMeta);
}

function isTarget(value: unknown): value is Target {
  return typeof value === "object" && value !== null &&
    typeof (value as Target).module === "string" && typeof (value as Target).name === "string";
}

// esbuild (tsx) wraps inner named functions in __name(); the child has no such helper.
const SHIMS = ["__name"];
const shimValues = [<T>(fn: T) => fn];

function compile(source: string): unknown {
  return new Function(...SHIMS, `"use strict";\nreturn (${source}\n);`)(...shimValues);
}

const checked = new Set<string>();

/**
 * Turns a target into what travels to the child.
 *
 * @param what Names the target in error messages.
 * @throws {TypeError} if the target is neither a reference nor a function that can be shipped.
 */
export function toSpec(target: unknown, what = "target"): TargetSpec {
  if (isTarget(target)) return { kind: "module", module: target.module, name: target.name };
  if (typeof target !== "function") {
    throw new TypeError(`${what} must be a function or a fromModule() reference, got ${typeof target}`);
  }
  const source = Function.prototype.toString.call(target);
  const label = target.name || "anonymous function";
  if (/\[native code\]\s*\}$/.test(source)) {
    throw new TypeError(
      `Cannot ship ${what} "${label}": native and bound functions have no source to send; ` +
        `export a function and use fromModule()`,
    );
  }
  if (/^class\b/.test(source)) throw new TypeError(`Cannot ship ${what} "${label}": it is a class, not a function`);
  if (!checked.has(source)) {
    try {
      compile(source);
    } catch {
      throw new TypeError(
        `Cannot ship ${what} "${label}": only self-contained function expressions and arrow functions ` +
          `can be shipped (not class or object methods); export it and use fromModule()`,
      );
    }
    checked.add(source);
  }
  return { kind: "source", source, name: target.name };
}

/** Inside a child: the function a spec names. */
export async function loadTarget(spec: TargetSpec): Promise<(...args: unknown[]) => unknown> {
  if (spec.kind === "source") return explainMissingGlobals(compile(spec.source) as (...a: unknown[]) => unknown);
  const module = await import(spec.module);
  const fn = module[spec.name];
  if (typeof fn !== "function") {
    throw new TypeError(`Module ${spec.module} has no exported function "${spec.name}"`);
  }
  return fn;
}

const MISSING = [/^(\S+) is not defined$/, /^Can't find variable: (\S+)$/];

// A shipped function travels without its closure, so a captured variable is a
// ReferenceError in the child; say why, and what to do instead.
function explainMissingGlobals(fn: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  const explain = (err: unknown): never => {
    if (err instanceof ReferenceError) {
      const name = MISSING.map((re) => re.exec(err.message)?.[1]).find((n) => n !== undefined);
      if (name !== undefined) {
        err.message = `${name} is not defined in the child: a shipped function is sent as source text, ` +
          `without the variables it closes over. Export the function and pass fromModule(url).${fn.name || "name"}`;
      }
    }
    throw err;
  };
  return (...args) => {
    try {
      const result = fn(...args);
      return result instanceof Promise ? result.catch(explain) : result;
    } catch (err) {
      return explain(err);
    }
  };
}
