/**
 * Every Lambda function of the stack, as data: its entry (`lambdas/aws/entries/<name>.ts`), the
 * ports its entry wires (the stack binds exactly those resources to it: env var + IAM grant),
 * the secrets it may read and its timeout.
 *
 * The ports listed here and the `wire…` functions the entry file passes to `installAwsDeps` are
 * the same list; `test/cdk/functions.test.ts` checks that they agree.
 */
import type { SecretName } from '#app/ports';
import type { PortName } from '#aws/bootstrap';

export interface FunctionSpec {
  description: string;
  ports: PortName[];
  /** Secrets of the Secrets port this function reads (requires the `secrets` port). */
  secrets?: SecretName[];
  /** The ledger table: every function reads it; only the read API does nothing else. */
  ledger: 'read' | 'readWrite';
  /**
   * Step Functions rights with the `workflows` port: start/stop runs, or only answer task tokens
   * (the approvals API), or start only (the nightly reconcile from the scheduled-action function).
   */
  workflows?: 'startStop' | 'taskResponse' | 'start';
  /**
   * With the `connectors` port: `describe` for a function that only reads what each target is
   * (kind, capabilities) and never calls one — it gets no target URL and no credentials.
   */
  connectors?: 'describe';
  timeoutSeconds: number;
  memoryMb?: number;
}

export const FUNCTIONS = {
  'hris-webhook': {
    description: 'POST /hris/events: verify the signature, record the run, enqueue',
    ports: ['secrets', 'queue'],
    secrets: ['hrisWebhook'],
    ledger: 'readWrite',
    timeoutSeconds: 10,
  },
  'bamboohr-webhook': {
    description: 'POST /hris/bamboohr: verify the BambooHR signature, record the runs, enqueue',
    ports: ['secrets', 'queue'],
    secrets: ['bambooHr'],
    ledger: 'readWrite',
    timeoutSeconds: 10,
  },
  'okta-event-hook': {
    description: 'GET|POST /okta/events: verification challenge and drift signals',
    ports: ['secrets', 'queue'],
    secrets: ['oktaHook'],
    ledger: 'readWrite',
    timeoutSeconds: 3,
  },
  'start-run': {
    description: 'Events FIFO queue consumer: starts, schedules or supersedes runs; drift exceptions and reconcile of the person',
    ports: ['secrets', 'workflows', 'mailer', 'scheduler', 'evidence', 'connectors', 'ticketing'],
    secrets: ['linkSigning'],
    ledger: 'readWrite',
    workflows: 'startStop',
    timeoutSeconds: 120,
    memoryMb: 1024,
  },
  'read-api': {
    description: 'GET /runs/{runId}, GET /runs, GET /exceptions (IAM-authorised)',
    ports: [],
    ledger: 'read',
    timeoutSeconds: 10,
  },
  'approvals-api': {
    description: 'GET|HEAD|POST /approvals/{id}: confirmation page and the decision (task token, or exception grant / bulk release)',
    ports: ['secrets', 'queue', 'workflows', 'mailer', 'scheduler', 'evidence', 'connectors', 'ticketing'],
    secrets: ['linkSigning'],
    ledger: 'readWrite',
    workflows: 'taskResponse',
    // A grant decision converges the person's targets before the page answers (API Gateway waits up to 29 s).
    timeoutSeconds: 28,
    memoryMb: 1024,
  },
  'request-approval': {
    description: 'Task (waitForTaskToken): records the approval, mails the approver, schedules the reminder; answers at once for an approval already decided',
    ports: ['secrets', 'workflows', 'mailer', 'scheduler'],
    secrets: ['linkSigning'],
    ledger: 'readWrite',
    // A resumed run asks again for an approval already decided: the decision goes to the new task token.
    workflows: 'taskResponse',
    timeoutSeconds: 50,
  },
  'approval-expired': {
    description: 'Task: records the approval_expired exception and tells its owner',
    ports: ['mailer', 'ticketing'],
    ledger: 'readWrite',
    timeoutSeconds: 50,
  },
  plan: {
    description: "Task: desired state vs every target's actual state",
    ports: ['connectors'],
    ledger: 'readWrite',
    timeoutSeconds: 100,
    memoryMb: 1024,
  },
  converge: {
    description: 'Task: converges one target for one person',
    ports: ['connectors', 'mailer'],
    ledger: 'readWrite',
    timeoutSeconds: 100,
    memoryMb: 1024,
  },
  'record-failure': {
    description: 'Task: opens the exception for a step that still failed after retries',
    ports: ['connectors', 'mailer', 'ticketing'],
    ledger: 'readWrite',
    timeoutSeconds: 50,
  },
  reconcile: {
    description: 'Task: re-reads every target and compares with the desired state',
    ports: ['connectors', 'mailer', 'ticketing'],
    ledger: 'readWrite',
    timeoutSeconds: 280,
    memoryMb: 1024,
  },
  'schedule-retention': {
    description: 'Task: one-time hard-delete schedules per target after the retention window',
    ports: ['scheduler'],
    ledger: 'readWrite',
    timeoutSeconds: 50,
  },
  close: {
    description: 'Task: evidence bundle in the Object Lock bucket, KPIs, final status, expiry schedules',
    ports: ['scheduler', 'evidence', 'connectors'],
    ledger: 'readWrite',
    timeoutSeconds: 280,
    memoryMb: 1024,
  },
  'scheduled-action': {
    description: 'EventBridge Scheduler target: retention deletes, expiries, reminders, reconciliations',
    ports: ['secrets', 'queue', 'workflows', 'mailer', 'scheduler', 'evidence', 'connectors', 'ticketing'],
    secrets: ['linkSigning'],
    ledger: 'readWrite',
    workflows: 'start',
    timeoutSeconds: 300,
    memoryMb: 1024,
  },
  'reconcile-start': {
    description: 'Task: opens the nightly reconciliation and lists the targets to page through',
    ports: ['connectors'],
    connectors: 'describe',
    ledger: 'readWrite',
    timeoutSeconds: 50,
  },
  'reconcile-page': {
    description: "Task: one page of one target's accounts against the ledger",
    ports: ['mailer', 'connectors', 'ticketing'],
    ledger: 'readWrite',
    timeoutSeconds: 580,
    memoryMb: 1024,
  },
  'reconcile-persons-page': {
    description: "Task: one page of the ledger's persons against the targets; the entitlement gap step (who should hold a group but does not)",
    ports: ['mailer', 'connectors', 'ticketing'],
    ledger: 'readWrite',
    timeoutSeconds: 580,
    memoryMb: 1024,
  },
  'reconcile-finish': {
    description: 'Task: reconciliation report as evidence, drift KPI (also the failure path)',
    ports: ['mailer', 'evidence', 'connectors', 'ticketing'],
    connectors: 'describe',
    ledger: 'readWrite',
    timeoutSeconds: 580,
  },
  'exception-grants': {
    description: 'POST /exception-grants, GET /exception-grants/{grantId}, POST /exceptions/{exceptionId}/resolve (IAM-authorised)',
    ports: ['secrets', 'mailer', 'scheduler', 'ticketing'],
    secrets: ['linkSigning'],
    ledger: 'readWrite',
    timeoutSeconds: 10,
  },
  'execution-ended': {
    description: 'Step Functions execution status change (failed, timed out, aborted): fails and closes the run',
    ports: ['mailer', 'scheduler', 'evidence', 'connectors', 'ticketing'],
    ledger: 'readWrite',
    timeoutSeconds: 280,
  },
} as const satisfies Record<string, FunctionSpec>;

export type FunctionName = keyof typeof FUNCTIONS;
export const FUNCTION_NAMES = Object.keys(FUNCTIONS) as FunctionName[];

/** `definitionSubstitutions` key → function, for the state machines' `${…FunctionArn}` placeholders. */
export const TASK_FUNCTIONS = {
  PlanFunctionArn: 'plan',
  ConvergeFunctionArn: 'converge',
  RecordFailureFunctionArn: 'record-failure',
  ReconcileFunctionArn: 'reconcile',
  ScheduleRetentionFunctionArn: 'schedule-retention',
  CloseFunctionArn: 'close',
  RequestApprovalFunctionArn: 'request-approval',
  ApprovalExpiredFunctionArn: 'approval-expired',
  StartReconciliationFunctionArn: 'reconcile-start',
  ReconcilePageFunctionArn: 'reconcile-page',
  ReconcilePersonsPageFunctionArn: 'reconcile-persons-page',
  FinishReconciliationFunctionArn: 'reconcile-finish',
} as const satisfies Record<string, FunctionName>;
