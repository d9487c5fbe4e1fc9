/**
 * The key of `await using` disposal, where the runtime has it, and the
 * registered-symbol fallback that TypeScript's downlevel helpers look up where it does not.
 *
 * @module
 */
export const asyncDispose: typeof Symbol.asyncDispose =
  ((Symbol as { asyncDispose?: symbol }).asyncDispose ?? Symbol.for("Symbol.asyncDispose")) as typeof Symbol.asyncDispose;
