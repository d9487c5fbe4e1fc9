/**
 * Picks the adapter for the runtime this code runs on. The only place that asks.
 *
 * @module
 */
import { adapter as bun } from "./bun/adapter.ts";
import { adapter as deno } from "./deno/adapter.ts";
import { adapter as node } from "./node/adapter.ts";
import type { RuntimeAdapter } from "./types.ts";

/** Which runtime this is. */
export function getRuntimeKey(): RuntimeAdapter["key"] {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (g.Deno !== undefined) return "deno";
  if (g.Bun !== undefined) return "bun";
  return "node";
}

/** The adapter for this runtime. */
export const runtime: RuntimeAdapter = { deno, bun, node }[getRuntimeKey()];
