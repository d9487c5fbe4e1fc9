/**
 * The messages a parent and a child exchange: the only vocabulary they share.
 *
 * @module
 */
import type { BrokerInheritance } from "./_broker.ts";
import type { ProcessInfo } from "./_child_state.ts";
import type { StartMethod } from "./_start_method.ts";
import type { Packed } from "./serialization.ts";
import type { TargetSpec } from "./target.ts";

/** The first message to a child: who it is and what to run. */
export interface StartMessage {
  type: "start";
  target: TargetSpec;
  args: Packed;
  name: string;
  daemon: boolean;
  parent: ProcessInfo;
  /** The child's start method (how it was started) and its default for its own children. */
  startMethod: StartMethod;
  defaultStartMethod: StartMethod;
  /** The program's broker key, and the broker's socket if one runs (never in env or argv). */
  broker?: BrokerInheritance;
}
