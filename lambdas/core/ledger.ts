/**
 * The run ledger: persons, runs, steps, approvals, exceptions and identity links — the state
 * store every phase reads and writes. This file is the port (types + interface); the DynamoDB
 * adapter lives in `lambdas/aws/ledger.dynamodb.ts` and runs against dynalite locally.
 *
 * Every state change is a conditional write (no transactions: each write is safe alone, and the
 * order of writes is chosen so a crash between two of them is recoverable by a retry).
 */
import type { CallReservation } from './call-budget.ts';
import type { ChangeRecord } from './change.ts';
import type { ExceptionGrant } from './desired-state.ts';
import type { HrEventType, Lifecycle, PersonStatus, Worker } from './hr-event.ts';

export const RUN_STATUSES = [
  'RECEIVED',
  'SCHEDULED',
  'HELD',
  'PLANNED',
  'AWAITING_APPROVAL',
  'EXECUTING',
  'RECONCILING',
  'COMPLETED',
  'EXCEPTION_OPEN',
  'FAILED',
  'SUPERSEDED',
  'STALE',
  'OUT_OF_SCOPE',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const TERMINAL_RUN_STATUSES: ReadonlySet<RunStatus> = new Set([
  'COMPLETED',
  'EXCEPTION_OPEN',
  'FAILED',
  'SUPERSEDED',
  'STALE',
  'OUT_OF_SCOPE',
]);

/** The canonical person: current HR record, status, version and links to target accounts. */
export interface PersonRecord {
  employeeId: string;
  worker: Worker;
  status: PersonStatus;
  /** `occurredAt` of the last applied event: an older event is stale. */
  version: string;
  /**
   * `occurredAt` of the last applied event that set the status (a hire, a leave's start or end,
   * a termination; a `change` carries the worker record, not the status). A status event older
   * than `version` but newer than this still stands: the leave ended before the change that
   * overtook it was recorded. Absent on records written before it existed: `version` then.
   */
  statusVersion?: string;
  /** Run that last changed the record. */
  lastRunId: string;
  /** Target name → account id on that target. */
  links: Record<string, string>;
  /** Bundle → when it was granted (time-bound bundles expire from here). */
  grantedAt: Record<string, string>;
  /** Bundles approved (so a reconcile can restore them without asking again). */
  approvedBundles: string[];
  /** Bundles an approver rejected (a reconcile never grants them). */
  rejectedBundles: string[];
  /** Bounded re-grants of named bundles (mover exception grants), approved by the app owner. */
  exceptionGrants?: Array<ExceptionGrant & { grantId: string }>;
  updatedAt: string;
}

export interface RunRecord {
  runId: string;
  idempotencyKey: string;
  employeeId: string;
  eventId: string;
  eventType: HrEventType | 'reconcile' | 'drift';
  lifecycle: Lifecycle | 'reconcile';
  status: RunStatus;
  /** sha256 of the raw payload as received. */
  eventHash: string;
  /** The raw payload (kept for the evidence bundle). */
  rawEvent: string;
  /** Normalised event (JSON). */
  event: unknown;
  effectiveAt: string;
  occurredAt: string;
  mappingVersion: string;
  createdAt: string;
  updatedAt: string;
  /** Set once the message is on the queue (an accepted event is never lost between the two writes). */
  enqueuedAt?: string;
  executionName?: string;
  statusReason?: string;
  supersededBy?: string;
  plan?: unknown;
  desired?: unknown;
  reconciliation?: unknown;
  /** How many times Reconcile ran (it asks for one re-run of missing steps, once). */
  reconcileAttempts?: number;
  evidence?: { prefix: string; manifestSha256: string };
  kpis?: Record<string, number>;
  /** Phase timestamps for the timeline (`planned`, `approved`, `idpDisabled`, …). */
  timeline?: TimelineEntry[];
}

/** One entry of a run's timeline. */
export interface TimelineEntry {
  phase: string;
  at: string;
  note?: string;
}

/**
 * A run update: the fields set, and `addTimeline`, entries appended to the timeline in the same
 * write. A timeline is only ever appended to (never rewritten from a read), so two steps that
 * write the same run at once both keep their entries.
 */
export type RunPatch = Partial<Omit<RunRecord, 'timeline'>> & { addTimeline?: readonly TimelineEntry[] };

/**
 * One step of a run across its attempts. Each attempt's changes are appended (a retry never
 * hides the writes of the attempt before it); `startedAt` is the first attempt's, the outcome,
 * `finishedAt` and `error` the latest one's, `writes` the sum and `attempts` the count.
 */
export interface StepRecord {
  runId: string;
  /** Ordering within the run (`001-okta`). */
  stepId: string;
  target: string;
  phase: string;
  startedAt: string;
  finishedAt: string;
  outcome: 'ok' | 'error' | 'skipped';
  changes: ChangeRecord[];
  writes: number;
  /** Attempts recorded (1 for a step that ran once). */
  attempts?: number;
  error?: { name: string; message: string };
}

/** What one attempt of a step reports; the ledger folds it into the step's record. */
export type StepAttempt = Omit<StepRecord, 'attempts'>;

export interface ApprovalRecord {
  approvalId: string;
  runId: string;
  employeeId: string;
  /** Plan approval request id (`baseline`, `bundle:x`, `data:y`). */
  requestId: string;
  approver: string;
  approverRole: 'manager' | 'appOwner' | 'fallback' | 'escalation';
  /** Step Functions task token: server-side only, never in a URL or an email. */
  taskToken?: string;
  status: 'PENDING' | 'APPROVED' | 'REJECTED' | 'EXPIRED' | 'ESCALATED';
  requestedAt: string;
  expiresAt: string;
  /** The request as shown to the approver (bundles, entitlements, risk, why). */
  request: unknown;
  decidedAt?: string;
  rationale?: string;
  sourceIp?: string;
  userAgent?: string;
  escalationOf?: string;
}

export const EXCEPTION_KINDS = [
  'step_failed',
  'conflict',
  'orphan',
  'drift',
  'leaver_enabled',
  'approval_expired',
  'out_of_band_change',
  'exception_grant',
] as const;
export type ExceptionKind = (typeof EXCEPTION_KINDS)[number];

/** The ITSM ticket raised for an exception (Jira Service Management, ServiceNow or a webhook receiver). */
export interface TicketRef {
  system: 'jira' | 'servicenow' | 'webhook';
  /** The ITSM's own id (Jira issue id, ServiceNow sys_id, the receiver's id or the exception id). */
  id: string;
  /** The human-facing key (Jira `OPS-123`, ServiceNow `INC0010001`). */
  key?: string;
  url?: string;
  openedAt: string;
  /** Set once the ticket was resolved / commented as resolved on the ITSM side. */
  closedAt?: string;
}

export interface ExceptionRecord {
  exceptionId: string;
  runId?: string;
  employeeId?: string;
  target: string;
  /** Owner of record of the target (team email). */
  owner: string;
  kind: ExceptionKind;
  reason: string;
  evidence: unknown;
  status: 'open' | 'resolved';
  openedAt: string;
  resolvedAt?: string;
  resolution?: string;
  resolvedBy?: string;
  /** The ITSM ticket, when ticketing is configured and it was raised. */
  ticket?: TicketRef;
  /** Why raising (or closing) the ticket failed; retried by the nightly reconciliation. */
  ticketError?: string;
}

export class ConditionFailed extends Error {
  override name = 'ConditionFailed';
}

export interface Ledger {
  getPerson(employeeId: string): Promise<PersonRecord | null>;
  /**
   * Writes the person if the version it replaces is still the stored one: `expected` is that
   * version's `updatedAt` (null = must not exist), or the record itself as the caller just read
   * it (its links are the ones to release: the ledger does not read it again).
   * Throws ConditionFailed when another run changed the person first.
   */
  putPerson(person: PersonRecord, expected: string | null | PersonRecord): Promise<void>;
  /** Reverse link: which person owns an account on a target. */
  findPersonByAccount(target: string, accountId: string): Promise<string | null>;
  listPersons(cursor?: string, limit?: number): Promise<{ persons: PersonRecord[]; nextCursor?: string }>;

  /** Conditional put on the run id (derived from the idempotency key). Returns false if it existed. */
  createRun(run: RunRecord): Promise<boolean>;
  getRun(runId: string): Promise<RunRecord | null>;
  /**
   * Updates fields if the run's status is one of `fromStatuses` (when given). The new record is
   * not handed back (a run carries its event, plan and timeline: tens of KB nobody reads after a
   * write); a caller that needs it reads it.
   */
  updateRun(runId: string, patch: RunPatch, fromStatuses?: readonly RunStatus[]): Promise<void>;
  listRunsByEmployee(employeeId: string): Promise<RunRecord[]>;
  listRunsByStatus(status: RunStatus): Promise<RunRecord[]>;

  /** Folds one attempt into the step's record (see StepRecord): no attempt's changes are lost. */
  recordStepAttempt(step: StepAttempt): Promise<void>;
  listSteps(runId: string): Promise<StepRecord[]>;

  putApproval(approval: ApprovalRecord): Promise<void>;
  getApproval(approvalId: string): Promise<ApprovalRecord | null>;
  /** Decides once: succeeds only while PENDING and not expired at `now`. */
  decideApproval(
    approvalId: string,
    decision: Pick<ApprovalRecord, 'status' | 'decidedAt' | 'rationale' | 'sourceIp' | 'userAgent'>,
    now: string,
  ): Promise<ApprovalRecord>;
  listApprovals(runId: string): Promise<ApprovalRecord[]>;

  /** Opens once: false (and nothing written) when an exception with this id already exists. */
  openException(e: ExceptionRecord): Promise<boolean>;
  resolveException(exceptionId: string, resolution: { resolvedAt: string; resolution: string; resolvedBy: string }): Promise<ExceptionRecord>;
  listExceptions(filter: { status?: 'open' | 'resolved'; runId?: string }): Promise<ExceptionRecord[]>;
  /** Records the exception's ITSM ticket and/or why raising or closing it failed (`ticketError: null` clears it). */
  setExceptionTicket(exceptionId: string, update: { ticket?: TicketRef; ticketError?: string | null }): Promise<void>;
  /**
   * Marks the exception's ticket as still to be raised or closed. Set before the ITSM is called
   * and cleared once it answered, so neither a failing ITSM nor a crash in between loses it.
   */
  markTicketDue(exceptionId: string): Promise<void>;
  clearTicketDue(exceptionId: string): Promise<void>;
  /** The exceptions marked due (any status), oldest mark first. */
  listTicketsDue(): Promise<ExceptionRecord[]>;

  /** Generic key-value for small state (delta links, bulk-guard windows, schedules). */
  getMeta<T>(key: string): Promise<T | null>;
  putMeta<T>(key: string, value: T, ttlEpochSeconds?: number): Promise<void>;

  /**
   * Adds `by` to a counter, unless the count would then exceed `options.max`: one conditional
   * update, so concurrent callers can never pass the bound together (the bulk-change guard's
   * window counts). Returns whether it was added and the count after the call — when refused,
   * the count that stood in the way. A counter is never reset: use one key per period, with a
   * TTL after its last read.
   */
  addToCounter(key: string, by: number, options?: { max?: number; ttlEpochSeconds?: number }): Promise<{ added: boolean; value: number }>;
  /** Several counters in one round trip, in the order asked; 0 for one never added to (or expired). */
  getCounters(keys: readonly string[]): Promise<number[]>;

  /**
   * Takes the lease `key` for `holder` until `untilMs`: one conditional write that succeeds when
   * no one holds it, when `holder` already does (a retry of the same step), or when the last
   * lease ran out before `nowMs` (its holder died). Refused: who holds it and until when.
   * `attempt` names this taking of it: a retry that takes over its holder's lease replaces it, so
   * the attempt it took over from can no longer give the lease up (see `releaseLease`).
   */
  acquireLease(key: string, holder: string, untilMs: number, nowMs: number, attempt?: string): Promise<LeaseResult>;
  /** Gives the lease up if `holder` still holds it (and, with `attempt`, by that attempt); a no-op otherwise. */
  releaseLease(key: string, holder: string, attempt?: string): Promise<void>;

  /**
   * Reserves calls from a target's shared call budget (`call-budget.ts`): one conditional update
   * of the target's schedule per case of it (`callBudgetCases`), no read first, so concurrent
   * reservations never overwrite each other. Returns the moment the reserved calls may start.
   */
  reserveCalls(key: string, reservation: CallReservation): Promise<{ startAtMs: number }>;
}

export type LeaseResult = { acquired: true } | { acquired: false; holder: string; untilMs: number };
