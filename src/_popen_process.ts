/**
 * The "process" start method: the child is an OS subprocess of this runtime,
 * with a private IPC channel. A signal death becomes a negative exit code.
 *
 * @module
 */
import { Popen } from "./_popen.ts";
import { runtime } from "./runtime/detect.ts";
import type { ExitStatus } from "./runtime/types.ts";

export class ProcessPopen extends Popen {
  constructor(entry: URL, init: unknown) {
    super(runtime.spawnProcess(entry, { init }));
  }
  protected exitCodeOf(status: ExitStatus): number {
    if (status.signal !== null) return -runtime.signalNumber(status.signal);
    return status.code ?? 1;
  }
  terminate(): void {
    if (this.exitCode === null) this.handle.terminate();
  }
  kill(): void {
    if (this.exitCode === null) this.handle.kill();
  }
}
