/**
 * Start methods and contexts (Python's `get_context()`): a context is the library's
 * constructors, bound to one start method.
 *
 * @module
 */
import { checkStartMethod, getAllStartMethods, getStartMethod, setStartMethod, type StartMethod } from "./_start_method.ts";
import { ProcessPoolExecutor, type ExecutorOptions } from "./futures.ts";
import { Manager, type ManagerOptions } from "./managers.ts";
import { Pool, type PoolOptions } from "./pool.ts";
import { Process, type ProcessOptions } from "./process.ts";
import {
  Barrier,
  type BarrierOptions,
  BoundedSemaphore,
  Condition,
  Event,
  Lock,
  RLock,
  Semaphore,
  type SyncOptions,
} from "./synchronize.ts";
import {
  type ElementOf,
  RawArray,
  RawValue,
  SharedArray,
  type SharedCtypesOptions,
  type Typecode,
  Value,
} from "./sharedctypes.ts";

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
  /** {@linkcode Lock}, shared with children of this context's method. */
  readonly Lock: new (options?: SyncOptions) => Lock;
  /** {@linkcode RLock}, shared with children of this context's method. */
  readonly RLock: new (options?: SyncOptions) => RLock;
  /** {@linkcode Semaphore}, shared with children of this context's method. */
  readonly Semaphore: new (value?: number, options?: SyncOptions) => Semaphore;
  /** {@linkcode BoundedSemaphore}, shared with children of this context's method. */
  readonly BoundedSemaphore: new (value?: number, options?: SyncOptions) => BoundedSemaphore;
  /** {@linkcode Event}, shared with children of this context's method. */
  readonly Event: new (options?: SyncOptions) => Event;
  /** {@linkcode Condition}, shared with children of this context's method (a given lock decides). */
  readonly Condition: new (lock?: Lock | RLock, options?: SyncOptions) => Condition;
  /** {@linkcode Barrier}, shared with children of this context's method. */
  readonly Barrier: new (parties: number, options?: BarrierOptions) => Barrier;
  /** {@linkcode Value} for children of this context's method ("worker" only). */
  readonly Value: new <C extends Typecode>(typecode: C, value?: ElementOf<C>, options?: SharedCtypesOptions) => Value<C>;
  /** {@linkcode SharedArray} for children of this context's method ("worker" only). */
  readonly SharedArray: new <C extends Typecode>(
    typecode: C,
    sizeOrInit: number | Iterable<ElementOf<C>>,
    options?: SharedCtypesOptions,
  ) => SharedArray<C>;
  /** {@linkcode RawValue} for children of this context's method ("worker" only). */
  readonly RawValue: new <C extends Typecode>(typecode: C, value?: ElementOf<C>, options?: SyncOptions) => RawValue<C>;
  /** {@linkcode RawArray} for children of this context's method ("worker" only). */
  readonly RawArray: new <C extends Typecode>(
    typecode: C,
    sizeOrInit: number | Iterable<ElementOf<C>>,
    options?: SyncOptions,
  ) => RawArray<C>;
  /** {@linkcode Manager} whose server is started with this context's method (Python's `ctx.Manager()`). */
  readonly Manager: new (options?: ManagerOptions) => Manager;
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
  // Synchronization objects take the context as an option; an explicit one wins.
  const bind = <O extends SyncOptions | undefined>(options: O): SyncOptions => ({ ...options, context: options?.context ?? method });
  return Object.freeze({
    startMethod: method,
    Process: BoundProcess,
    Pool: BoundPool,
    ProcessPoolExecutor: BoundExecutor,
    Lock: class extends Lock {
      constructor(options?: SyncOptions) {
        super(bind(options));
      }
    },
    RLock: class extends RLock {
      constructor(options?: SyncOptions) {
        super(bind(options));
      }
    },
    Semaphore: class extends Semaphore {
      constructor(value?: number, options?: SyncOptions) {
        super(value, bind(options));
      }
    },
    BoundedSemaphore: class extends BoundedSemaphore {
      constructor(value?: number, options?: SyncOptions) {
        super(value, bind(options));
      }
    },
    Event: class extends Event {
      constructor(options?: SyncOptions) {
        super(bind(options));
      }
    },
    Condition: class extends Condition {
      constructor(lock?: Lock | RLock, options?: SyncOptions) {
        super(lock, lock === undefined ? bind(options) : options);
      }
    },
    Barrier: class extends Barrier {
      constructor(parties: number, options?: BarrierOptions) {
        super(parties, bind(options));
      }
    },
    Value: class<C extends Typecode> extends Value<C> {
      constructor(typecode: C, value?: ElementOf<C>, options?: SharedCtypesOptions) {
        super(typecode, value, bind(options));
      }
    },
    SharedArray: class<C extends Typecode> extends SharedArray<C> {
      constructor(typecode: C, sizeOrInit: number | Iterable<ElementOf<C>>, options?: SharedCtypesOptions) {
        super(typecode, sizeOrInit, bind(options));
      }
    },
    RawValue: class<C extends Typecode> extends RawValue<C> {
      constructor(typecode: C, value?: ElementOf<C>, options?: SyncOptions) {
        super(typecode, value, bind(options));
      }
    },
    RawArray: class<C extends Typecode> extends RawArray<C> {
      constructor(typecode: C, sizeOrInit: number | Iterable<ElementOf<C>>, options?: SyncOptions) {
        super(typecode, sizeOrInit, bind(options));
      }
    },
    Manager: class extends Manager {
      constructor(options?: ManagerOptions) {
        super({ ...options, context: options?.context ?? method });
      }
    },
  });
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
