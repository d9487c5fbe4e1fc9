/**
 * The default start method: Python's `set_start_method` rule, that it may not
 * change once it has been used to start a child (unless forced).
 *
 * @module
 */
import { ProcessError } from "./errors.ts";

/**
 * How a child is started: a worker thread, or an OS subprocess of this runtime.
 *
 * @example
 * ```ts
 * import { setStartMethod, type StartMethod } from "polyproc";
 * const method: StartMethod = "process";
 * setStartMethod(method);
 * ```
 */
export type StartMethod = "worker" | "process";

const METHODS: readonly StartMethod[] = ["worker", "process"];

let defaultMethod: StartMethod = "worker";
let used = false;

/** Throws a RangeError unless `method` is a start method. */
export function checkStartMethod(method: unknown, what = "start method"): StartMethod {
  if (!METHODS.includes(method as StartMethod)) {
    throw new RangeError(`Unknown ${what} ${JSON.stringify(method)}: expected "worker" or "process"`);
  }
  return method as StartMethod;
}

/**
 * The start methods every runtime supports (Python's `get_all_start_methods()`).
 *
 * @example
 * ```ts
 * import { getAllStartMethods } from "polyproc";
 * console.log(getAllStartMethods()); // ["worker", "process"]
 * ```
 */
export function getAllStartMethods(): StartMethod[] {
  return [...METHODS];
}

/**
 * The default start method: "worker" unless {@linkcode setStartMethod} changed it
 * (a child inherits its parent's default).
 *
 * @example
 * ```ts
 * import { getStartMethod } from "polyproc";
 * console.log(getStartMethod()); // "worker"
 * ```
 */
export function getStartMethod(): StartMethod {
  return defaultMethod;
}

/**
 * Changes the default start method for constructors given no `context`.
 *
 * Python's `set_start_method()`; unlike Python, setting it again before any child
 * has started is allowed.
 *
 * @throws {ProcessError} once the default has started a child, unless `force` is true.
 * @throws {RangeError} for an unknown method.
 *
 * @example
 * ```ts
 * import { setStartMethod } from "polyproc";
 * setStartMethod("process"); // children of bare constructors are now OS subprocesses
 * ```
 */
export function setStartMethod(method: StartMethod, options: { force?: boolean } = {}): void {
  checkStartMethod(method);
  if (used && !options.force && method !== defaultMethod) {
    throw new ProcessError(
      `Cannot set the start method to "${method}": the default ("${defaultMethod}") has already started a child ` +
        `(pass { force: true } to change it anyway)`,
    );
  }
  defaultMethod = method;
}

/** Resolves a constructor's `context` option, marking the default as used when it is taken. */
export function useStartMethod(context: unknown): StartMethod {
  if (context === undefined) {
    used = true;
    return defaultMethod;
  }
  return checkStartMethod(context, "context");
}

/** Sets the default without the checks: a child inherits its parent's. */
export function inheritStartMethod(method: StartMethod): void {
  defaultMethod = method;
}
