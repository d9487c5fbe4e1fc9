/**
 * No child outlives its parent: one small `sh` per parent process holds the pids
 * of its live subprocess children on its stdin, and kills them with SIGKILL when
 * that pipe ends — which happens however the parent ends, SIGKILL included. It
 * costs one process per parent instead of a watchdog thread per child, and it
 * reaches a child whose main thread is stuck in a busy loop.
 *
 * @module
 */
import type { ChildProcess } from "node:child_process";
import { builtin } from "./_builtin.ts";

// "pid" adds, "-pid" removes (the child was reaped: its pid may be reused). POSIX sh.
const SCRIPT = `pids=' '
while read -r pid; do
  case $pid in
    -*) p=\${pid#-}; case $pids in *" $p "*) pids="\${pids%% $p *} \${pids#* $p }";; esac;;
    *) pids="$pids$pid ";;
  esac
done
[ -n "\${pids# }" ] && kill -9 $pids 2>/dev/null
exit 0`;

let reaper: ChildProcess | undefined;

function write(line: string): void {
  if (reaper === undefined) {
    const { spawn } = builtin<typeof import("node:child_process")>("node:child_process");
    reaper = spawn("/bin/sh", ["-c", SCRIPT], { stdio: ["pipe", "ignore", "ignore"] });
    reaper.on("error", () => {}); // no sh: the children's own IPC watch still applies
    reaper.stdin!.on("error", () => {});
    // The reaper must never keep this program alive.
    reaper.unref();
    (reaper.stdin as unknown as { unref?: () => void }).unref?.();
  }
  reaper.stdin!.write(line);
}

/** Hands a live child's pid to the reaper. */
export function watchChild(pid: number): void {
  write(`${pid}\n`);
}

/** Takes back the pid of a child that has been reaped. */
export function forgetChild(pid: number): void {
  if (reaper !== undefined) write(`-${pid}\n`);
}
