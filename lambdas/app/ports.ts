/**
 * Ports of the application layer: the I/O a use case needs, as small interfaces. One adapter
 * per system lives in `lambdas/aws/` (SQS, Step Functions, SES, Scheduler, Secrets Manager,
 * CloudWatch EMF) and one in `local/` (in-process queue, aws-local-stepfunctions, outbox,
 * adjustable clock). Use cases never import an SDK.
 */
import type { Connector } from '#connectors/connector';
import type { Ticketing } from '#connectors/itsm';
import type { EvidenceStore } from '#core/evidence-store';
import type { Lifecycle } from '#core/hr-event';
import type { Ledger } from '#core/ledger';
import type { Policy } from '#core/policy';

/** What goes on the FIFO queue. Group = employeeId, deduplication id = idempotency key / event id. */
export type QueueMessage =
  /** `lifecycle` lets the consumer start the bulk guard's reads with its first ones (absent in older messages). */
  | { kind: 'hr-event'; runId: string; employeeId: string; lifecycle?: Lifecycle }
  | { kind: 'drift'; eventId: string; employeeId?: string; target: string; accountId?: string; eventType: string; actor?: string; published: string }
  | { kind: 'scheduled-run'; runId: string; employeeId: string };

export interface EventQueue {
  send(message: QueueMessage, options: { groupId: string; deduplicationId: string }): Promise<void>;
}

export const WORKFLOWS = ['joiner', 'mover', 'leaver', 'leave', 'reconcile'] as const;
export type WorkflowName = (typeof WORKFLOWS)[number];

export interface WorkflowEngine {
  /**
   * Starts the named workflow with execution name `name`. A second start with the same name is
   * refused by Step Functions; the adapter reports it as `alreadyStarted` instead of throwing.
   */
  start(workflow: WorkflowName, name: string, input: unknown): Promise<{ executionId: string; alreadyStarted: boolean }>;
  /** Stops a running execution (a superseded run); a finished or unknown one is left alone. */
  stop(name: string, cause: string): Promise<void>;
}

/** Step Functions task-token callbacks. `gone`: the task timed out, finished or never existed. */
export interface TaskCallbacks {
  succeed(taskToken: string, output: unknown): Promise<'ok' | 'gone'>;
  fail(taskToken: string, error: string, cause: string): Promise<'ok' | 'gone'>;
}

export interface OutgoingMail {
  to: string[];
  subject: string;
  text: string;
  html: string;
  /** Links in the mail (listed by the local outbox; never contain a task token). */
  links: string[];
  runId?: string;
  approvalId?: string;
}

export interface Mailer {
  send(mail: OutgoingMail): Promise<{ messageId: string }>;
}

/** One-time schedules (effective dates, approval reminders, time-bound expiry, retention deletes). */
export interface ScheduledAction {
  kind: 'start-run' | 'expire-bundle' | 'retention-delete' | 'approval-reminder' | 'reconcile';
  payload: Record<string, unknown>;
}

export interface Scheduler {
  /** Creates or moves the schedule `name` (deterministic names make this idempotent). */
  upsertOnce(name: string, at: Date, action: ScheduledAction): Promise<void>;
  /** Deletes a pending schedule; false if there was none. */
  delete(name: string): Promise<boolean>;
}

export const SECRET_NAMES = ['hrisWebhook', 'bambooHr', 'oktaHook', 'linkSigning'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];

export interface Secrets {
  /** Current value(s); several during a rotation (verify against each, sign with the first). */
  get(name: SecretName): Promise<string[]>;
}

export interface MetricsSink {
  /** One metric data point (EMF in AWS). */
  put(name: string, value: number, unit: 'Count' | 'Seconds' | 'Milliseconds' | 'Percent', dimensions?: Record<string, string>): void;
  flush(): Promise<void> | void;
}

export interface ConnectorRegistry {
  /** The connector for a policy target; throws PolicyViolation for a target jml does not manage. */
  get(target: string): Connector;
}

export interface Clock {
  now(): Date;
}

/** Everything a use case may need; handlers build one per process (AWS) or per runtime (local). */
export interface AppDeps {
  ledger: Ledger;
  evidence: EvidenceStore;
  policy(): Promise<Policy>;
  connectors: ConnectorRegistry;
  queue: EventQueue;
  workflows: WorkflowEngine;
  callbacks: TaskCallbacks;
  mailer: Mailer;
  scheduler: Scheduler;
  secrets: Secrets;
  metrics: MetricsSink;
  /** ITSM tickets for exceptions (Jira Service Management, ServiceNow, a signed webhook); absent: none configured. */
  ticketing?: Ticketing;
  clock: Clock;
  /** Public base URL of the API (approval links). */
  publicBaseUrl: string;
}
