/**
 * The "worker" start method: the child is a worker thread. A thread cannot
 * receive signals, so the exit code records which of terminate() or kill()
 * stopped it (-15 or -9), as Python reports for a signalled process.
 *
 * @module
 */
import { Popen } from "./_popen.ts";
import { runtime } from "./runtime/detect.ts";
import type { ExitStatus } from "./runtime/types.ts";

export class WorkerPopen extends Popen {
  #stoppedBy: number | undefined;

  constructor(entry: URL, init: unknown) {
    super(runtime.spawnWorker(entry, { init }));
  }
  protected exitCodeOf(status: ExitStatus): number {
    return this.#stoppedBy ?? status.code ?? 1;
  }
  terminate(): void {
    this.#stop(runtime.signalNumber("SIGTERM"), () => this.handle.terminate());
  }
  kill(): void {
    this.#stop(runtime.signalNumber("SIGKILL"), () => this.handle.kill());
  }
  #stop(signal: number, stop: () => void): void {
    if (this.exitCode !== null || this.#stoppedBy !== undefined) return;
    this.#stoppedBy = -signal;
    stop();
  }
}
