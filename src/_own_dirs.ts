/**
 * Private folders named after the process that owns them (`<prefix><pid>-XXXXXX`, for
 * the sockets of a broker or a manager): the owner removes its own at exit, and a
 * process killed by a signal cannot, nor can a test runner that ends without exit
 * handlers; so whoever makes one first removes those whose owner is gone.
 *
 * @module
 */
import { runtime } from "./runtime/detect.ts";

/** A new private folder `<prefix><pid>-XXXXXX`, after removing the ones of owners that are gone. */
export function makeOwnDir(prefix: string): string {
  for (const dir of runtime.net.tempDirs(prefix)) {
    const pid = Number(/-(\d+)-[^-]*$/.exec(dir)?.[1]);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== runtime.pid && !runtime.pidAlive(pid)) {
      runtime.net.removeDir(dir);
    }
  }
  return runtime.net.makePrivateDir(`${prefix}${runtime.pid}-`);
}
