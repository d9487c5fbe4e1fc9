/**
 * polyproc: Python's `multiprocessing` for TypeScript, on Deno, Bun and Node.js.
 *
 * Children are worker threads (start method "worker", the default) or OS
 * subprocesses of the same runtime ("process"), with one API for both.
 *
 * @example Start a child and wait for it
 * ```ts
 * import { Process } from "polyproc";
 * const p = new Process({ target: (n: number) => console.log(n * 2), args: [21] });
 * p.start();
 * await p.join();
 * ```
 *
 * @module
 */
export {
  activeChildren,
  cpuCount,
  currentProcess,
  exit,
  type ParentProcessInfo,
  parentProcess,
  Process,
  type ProcessInfo,
  type ProcessOptions,
} from "./src/process.ts";
export {
  type Context,
  getAllStartMethods,
  getContext,
  getStartMethod,
  setStartMethod,
  type StartMethod,
} from "./src/context.ts";
export { fromModule, isMainModule, type ModuleTargets, type Target, type TargetLike } from "./src/target.ts";
export { registerClass } from "./src/serialization.ts";
export {
  JoinableQueue,
  Queue,
  type QueueOptions,
  type QueueWaitOptions,
  SimpleQueue,
} from "./src/queues.ts";
export { Connection, pipe, type PipeOptions } from "./src/connection.ts";
export {
  type AcquireOptions,
  Barrier,
  type BarrierOptions,
  BoundedSemaphore,
  Condition,
  Event,
  type Held,
  Lock,
  RLock,
  Semaphore,
  SemLock,
  type SyncOptions,
  type WaitOptions,
} from "./src/synchronize.ts";
export {
  type ElementOf,
  RawArray,
  RawValue,
  SharedArray,
  type SharedCtypesOptions,
  type Typecode,
  Value,
} from "./src/sharedctypes.ts";
export {
  type ApplyOptions,
  AsyncResult,
  type MapOptions,
  Pool,
  type PoolOptions,
  type PoolStats,
  type TaskOptions,
} from "./src/pool.ts";
export {
  ALL_COMPLETED,
  asCompleted,
  type Completed,
  type ExecutorMapOptions,
  type ExecutorOptions,
  FIRST_COMPLETED,
  FIRST_EXCEPTION,
  Future,
  ProcessPoolExecutor,
  wait,
} from "./src/futures.ts";
/**
 * Managers: Python's `Manager()` and `BaseManager`. A server (a child, or a
 * remote process reached over TCP with an authkey) holds lists, dicts,
 * namespaces, values, queues and registered types; proxies call them from any
 * process, every method async.
 *
 * @example
 * ```ts
 * import { Manager } from "polyproc";
 * await using manager = new Manager();
 * await manager.start();
 * const li = await manager.list([1, 2]);
 * await li.append(3);
 * console.log(await li.toArray()); // [1, 2, 3]
 * ```
 */
export {
  AcquirerProxy,
  ArrayProxy,
  type AutoProxy,
  BarrierProxy,
  BaseManager,
  BaseProxy,
  ConditionProxy,
  DictProxy,
  EventProxy,
  IteratorProxy,
  ListProxy,
  Manager,
  type ManagerAddress,
  type ManagerOptions,
  type ManagerServer,
  NamespaceProxy,
  type ProxyAcquireOptions,
  type ProxyWaitOptions,
  QueueProxy,
  type RegisterOptions,
  ValueProxy,
} from "./src/managers.ts";
/**
 * Running other programs: Python's `subprocess` (`Popen`, `run`, `check_output`),
 * with the same exit codes and signals on Deno, Bun and Node; no shell unless
 * `shell: true`.
 *
 * @example
 * ```ts
 * import { Popen, run } from "polyproc";
 * const p = new Popen(["ls"]);                 // runs while this program carries on
 * console.log(await p.wait());                 // 0
 * const { stdout } = await run(["echo", "hi"], { captureOutput: true, text: true, check: true });
 * ```
 */
export {
  checkOutput,
  type Communicated,
  CompletedProcess,
  type Output,
  Popen,
  type PopenOptions,
  run,
  type RunOptions,
  type StdioOption,
} from "./src/subprocess.ts";
export {
  AuthenticationError,
  BrokenBarrierError,
  BrokenProcessPoolError,
  CalledProcessError,
  CancelledError,
  EOFError,
  ProcessError,
  QueueEmptyError,
  QueueFullError,
  RemoteError,
  StartMethodError,
  SubprocessError,
  TimeoutError,
  TimeoutExpiredError,
} from "./src/errors.ts";
