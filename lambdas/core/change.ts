/**
 * What a connector reports back: change records for the execution log and the target's own
 * audit entries for the evidence bundle. Defined in core so the ledger and the evidence builder
 * can use them without depending on the connectors.
 */
import type { EntitlementRef } from './access.ts';
import type { TargetOp } from './target-plan.ts';

/** One write (or the decision not to write) on a target, as recorded in the execution log. */
export interface ChangeRecord {
  target: string;
  op: TargetOp;
  accountId: string;
  /** False when the target was already in the wanted state. */
  changed: boolean;
  entitlement?: EntitlementRef;
  /** The target's request id(s) for the call(s) made. */
  requestIds: string[];
  detail?: string;
}

/** One entry of the target's own audit trail (Okta System Log, Entra directory audit, …). */
export interface AuditEntry {
  id: string;
  time: string;
  eventType: string;
  outcome: string;
  actor?: string;
  targetIds: string[];
  summary: string;
}

