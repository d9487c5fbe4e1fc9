/**
 * Start methods and contexts (Python's `get_context()`): a context is the library's
 * constructors, bound to one start method.
 *
 * @module
 */
import { checkStartMethod, getAllStartMethods, getStartMethod, setStartMethod, type StartMethod } from "./_start_method.ts";
import { ProcessPoolExecutor, type ExecutorOptions } from "./futures.ts";
import { Pool, type PoolOptions } from "./pool.ts";
import { Process, type ProcessOptions } from "./process.ts";

export { getAllStartMethods, getStartMethod, setStartMethod, type StartMethod };

/**
 * The library's constructors, bound to one start method.
 *
 * @example
 * ```ts
 * import { getContext, type Context } from "polyproc";
 * const ctx: Context = getContext("process");
 * new ctx.Process({ target: () => {} }).start();
 * ```
 */
export interface Context {
  /** The start method every constructor of this context uses. */
  readonly startMethod: StartMethod;
  /** {@linkcode Process}, started with this context's method. */
  readonly Process: new <A extends unknown[] = unknown[]>(options: ProcessOptions<A>) => Process<A>;
  /** {@linkcode Pool}, whose workers start with this context's method. */
  readonly Pool: new (options?: PoolOptions) => Pool;
  /** {@linkcode ProcessPoolExecutor}, whose workers start with this context's method. */
  readonly ProcessPoolExecutor: new (options?: ExecutorOptions) => ProcessPoolExecutor;
}

const contexts = new Map<StartMethod, Context>();

function makeContext(method: StartMethod): Context {
  class BoundProcess<A extends unknown[] = unknown[]> extends Process<A> {
    constructor(options: ProcessOptions<A>) {
      super({ ...options, context: options?.context ?? method });
    }
  }
  class BoundPool extends Pool {
    constructor(options: PoolOptions = {}) {
      super({ ...options, context: options?.context ?? method });
    }
  }
  class BoundExecutor extends ProcessPoolExecutor {
    constructor(options: ExecutorOptions = {}) {
      super({ ...options, context: options?.context ?? method });
    }
  }
  return Object.freeze({ startMethod: method, Process: BoundProcess, Pool: BoundPool, ProcessPoolExecutor: BoundExecutor });
}

/**
 * The constructors bound to a start method (Python's `get_context(method)`).
 * Without an argument, the default method's context.
 *
 * @throws {RangeError} for an unknown method.
 *
 * @example Starting a child as an OS subprocess
 * ```ts
 * import { getContext } from "polyproc";
 * const ctx = getContext("process");
 * const p = new ctx.Process({ target: () => console.log("in a subprocess") });
 * p.start();
 * await p.join();
 * ```
 */
export function getContext(method: StartMethod = getStartMethod()): Context {
  const checked = checkStartMethod(method);
  let context = contexts.get(checked);
  if (context === undefined) contexts.set(checked, context = makeContext(checked));
  return context;
}
