/**
 * Approvals under test: the real DynamoDB ledger on dynalite, the real policy and planner, the
 * real API handler; fakes only for ports without a local stand-in here (mail → an outbox array,
 * task callbacks → a recorder that answers like Step Functions: `ok` once per waiting token,
 * `gone` afterwards or once the task has timed out).
 */
import { randomBytes } from 'node:crypto';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { AppDeps, MetricsSink, OutgoingMail, TaskCallbacks } from '#app/ports';
import { DynamoLedger } from '#aws/ledger.dynamodb';
import { desiredState } from '#core/desired-state';
import type { Worker } from '#core/hr-event';
import type { PersonRecord, RunRecord } from '#core/ledger';
import { plan } from '#core/plan';
import type { Policy } from '#core/policy';
import { createApprovalsApiHandler, type ApprovalsApiHandler } from '#handlers/approvals-api';
import { ensureTable, startDynalite, type LocalDynamo } from '#local/dynalite';
import { examplePolicy, worker } from './policy.ts';
import { LocalScheduler } from '#local/adapters';
import { toApiGatewayEvent } from '#local/api-gateway';

export class TestClock {
  constructor(private at: Date = new Date('2026-11-30T09:00:00.000Z')) {}
  now(): Date {
    return new Date(this.at);
  }
  set(at: Date | string): void {
    this.at = new Date(at);
  }
  advance(ms: number): void {
    this.at = new Date(this.at.getTime() + ms);
  }
}

export interface CallbackCall {
  kind: 'succeed' | 'fail';
  taskToken: string;
  output?: unknown;
  error?: string;
  cause?: string;
  answer: 'ok' | 'gone';
}

/** Step Functions task callbacks as a recorder: each waiting token takes one answer. */
export class CallbackRecorder implements TaskCallbacks {
  readonly calls: CallbackCall[] = [];
  private readonly closed = new Set<string>();

  /** The task behind `token` timed out or its execution stopped (TaskTimedOut / TaskDoesNotExist). */
  timeOut(token: string): void {
    this.closed.add(token);
  }

  async succeed(taskToken: string, output: unknown): Promise<'ok' | 'gone'> {
    return this.answer({ kind: 'succeed', taskToken, output });
  }

  async fail(taskToken: string, error: string, cause: string): Promise<'ok' | 'gone'> {
    return this.answer({ kind: 'fail', taskToken, error, cause });
  }

  private answer(call: Omit<CallbackCall, 'answer'>): 'ok' | 'gone' {
    const answer = this.closed.has(call.taskToken) ? 'gone' : 'ok';
    this.closed.add(call.taskToken);
    this.calls.push({ ...call, answer });
    return answer;
  }
}

export class OutboxMailer {
  readonly sent: OutgoingMail[] = [];
  async send(mail: OutgoingMail): Promise<{ messageId: string }> {
    this.sent.push(structuredClone(mail));
    return { messageId: `msg-${this.sent.length}` };
  }
  to(address: string): OutgoingMail[] {
    return this.sent.filter((m) => m.to.includes(address));
  }
}

class Metrics implements MetricsSink {
  readonly points: Array<{ name: string; value: number; dimensions?: Record<string, string> }> = [];
  put(name: string, value: number, _unit: string, dimensions?: Record<string, string>): void {
    this.points.push({ name, value, ...(dimensions ? { dimensions } : {}) });
  }
  flush(): void {}
}

const unused = (port: string) =>
  new Proxy(
    {},
    {
      get: (_t, prop) => {
        if (prop === 'then') return undefined;
        throw new Error(`${port}.${String(prop)} is not used by approvals`);
      },
    },
  );

export interface Harness {
  deps: AppDeps;
  ledger: DynamoLedger;
  clock: TestClock;
  outbox: OutboxMailer;
  callbacks: CallbackRecorder;
  metrics: Metrics;
  policy: Policy;
  /** The current link-signing keys (first signs); tests may rotate them. */
  linkKeys: string[];
  api: ApprovalsApiHandler;
  /** One-time schedules the approvals asked for (reminders). */
  scheduler: LocalScheduler;
  close(): Promise<void>;
}

export async function startHarness(options: { publicBaseUrl?: string; policy?: Policy } = {}): Promise<Harness> {
  const dynamo: LocalDynamo = await startDynalite();
  const tableName = `approvals-${randomBytes(4).toString('hex')}`;
  await ensureTable(dynamo.client, tableName);
  const clock = new TestClock();
  const ledger = new DynamoLedger({ client: dynamo.ledgerClient, tableName, now: () => clock.now() });
  const outbox = new OutboxMailer();
  const callbacks = new CallbackRecorder();
  const metrics = new Metrics();
  const policy = options.policy ?? examplePolicy();
  const linkKeys = [randomBytes(32).toString('base64url')];
  const scheduler = new LocalScheduler(clock, async () => undefined);
  const deps: AppDeps = {
    ledger,
    policy: async () => policy,
    connectors: unused('connectors') as AppDeps['connectors'],
    queue: unused('queue') as AppDeps['queue'],
    workflows: unused('workflows') as AppDeps['workflows'],
    scheduler,
    evidence: unused('evidence') as AppDeps['evidence'],
    callbacks,
    mailer: outbox,
    secrets: { get: async (name) => (name === 'linkSigning' ? [...linkKeys] : []) },
    metrics,
    clock,
    publicBaseUrl: options.publicBaseUrl ?? 'https://jml.acme.example/prod',
  };
  const api = createApprovalsApiHandler(async () => deps);
  return { deps, ledger, clock, outbox, callbacks, metrics, policy, linkKeys, api, scheduler, close: () => dynamo.close() };
}

// ---------------------------------------------------------------------------------------------
// The org: Ada (E1001) reports to Grace (E0100), who reports to Charles (E0001).

export const MANAGER = 'grace.hopper@acme.example';
export const SKIP_LEVEL = 'charles.babbage@acme.example';
export const FALLBACK = 'it-access@acme.example';

export function personRecord(w: Worker, over: Partial<PersonRecord> = {}): PersonRecord {
  return {
    employeeId: w.employeeId,
    worker: w,
    status: 'active',
    version: '2026-11-01T00:00:00.000Z',
    lastRunId: 'seed',
    links: {},
    grantedAt: {},
    approvedBundles: [],
    rejectedBundles: [],
    updatedAt: '2026-11-01T00:00:00.000Z',
    ...over,
  };
}

export async function seedOrg(h: Harness): Promise<void> {
  const people = [
    worker({ employeeId: 'E0001', givenName: 'Charles', familyName: 'Babbage', email: SKIP_LEVEL, jobCode: 'EXEC-1', managerId: undefined }),
    worker({ employeeId: 'E0100', givenName: 'Grace', familyName: 'Hopper', email: MANAGER, jobCode: 'ENG-MGR', managerId: 'E0001' }),
  ];
  for (const w of people) await h.ledger.putPerson(personRecord(w), null);
}

let runCounter = 0;

/**
 * A joiner (or leaver) run for a new person, planned by the real planner against empty targets, as the
 * Plan task leaves it (AWAITING_APPROVAL, plan on the record). Returns the run and its plan's
 * approval request ids.
 */
export async function seedJoinerRun(
  h: Harness,
  over: Partial<Worker> = {},
  person: Partial<PersonRecord> = {},
  lifecycle: 'joiner' | 'leaver' = 'joiner',
): Promise<{ run: RunRecord; requests: string[]; worker: Worker }> {
  const n = ++runCounter;
  const w = worker({ employeeId: `E2${String(n).padStart(3, '0')}`, email: `joiner${n}@acme.example`, ...over });
  if (!(await h.ledger.getPerson(w.employeeId))) await h.ledger.putPerson(personRecord(w, person), null);
  const desired = desiredState({ worker: w, status: lifecycle === 'leaver' ? 'terminated' : 'active' }, h.policy);
  // A leaver had an IdP account (data handling exists only then); a joiner has nothing yet.
  const actual = lifecycle === 'leaver' ? { [h.policy.idp.name]: { id: `00u${n}`, correlationKey: w.employeeId, status: 'enabled' as const, entitlements: [] } } : {};
  const p = plan(desired, actual, h.policy, { lifecycle });
  const at = h.clock.now().toISOString();
  const run: RunRecord = {
    runId: `run-${n}-${randomBytes(3).toString('hex')}`,
    idempotencyKey: randomBytes(16).toString('hex'),
    employeeId: w.employeeId,
    eventId: `evt-${n}`,
    eventType: lifecycle === 'leaver' ? 'termination' : 'hire',
    lifecycle,
    status: 'AWAITING_APPROVAL',
    eventHash: randomBytes(32).toString('hex'),
    rawEvent: '{}',
    event: {},
    effectiveAt: '2026-12-01T00:00:00+00:00',
    occurredAt: at,
    mappingVersion: h.policy.mappingVersion,
    createdAt: at,
    updatedAt: at,
    plan: p,
  };
  await h.ledger.createRun(run);
  return { run, requests: p.approvals.map((a) => a.id), worker: w };
}

/** A throwaway Step Functions task token (opaque, long, secret-ish). */
export const taskToken = () => `AQB${randomBytes(96).toString('base64')}`;

// ---------------------------------------------------------------------------------------------
// HTTP, API Gateway style.

export interface ApiRequest {
  method: string;
  url: string;
  body?: string;
  headers?: Record<string, string>;
  sourceIp?: string;
  userAgent?: string;
  isBase64Encoded?: boolean;
}

/** An API Gateway REST (v1) proxy event for `/approvals/{id}`, built as the local runtime builds it. */
export function apiEvent(req: ApiRequest): APIGatewayProxyEvent {
  const url = new URL(req.url, 'https://jml.acme.example');
  const path = url.pathname.replace(/^\/prod/, '');
  const m = /^\/approvals\/([^/]+)$/.exec(path);
  const headers = { ...(req.headers ?? {}), ...(req.userAgent ? { 'User-Agent': req.userAgent } : {}) };
  const event = toApiGatewayEvent({
    method: req.method,
    url: `${path}${url.search}`,
    headers,
    resource: '/approvals/{id}',
    sourceIp: req.sourceIp ?? '198.51.100.7',
    ...(m ? { pathParameters: { id: decodeURIComponent(m[1]!) } } : {}),
  });
  event.requestContext.identity.userAgent = req.userAgent ?? 'vitest';
  // The body as the test gives it (some tests send it base64-encoded on purpose).
  return { ...event, body: req.body ?? null, isBase64Encoded: req.isBase64Encoded ?? false };
}

export async function call(h: Pick<Harness, 'api'>, req: ApiRequest): Promise<APIGatewayProxyResult> {
  return h.api(apiEvent(req));
}

/** The hidden fields of a rendered confirmation page. */
export function formFields(page: string): { t: string; csrf: string; action: string } {
  const t = /name="t" value="([^"]+)"/.exec(page)?.[1];
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1];
  const action = /<form[^>]* action="([^"]+)"/.exec(page)?.[1];
  if (!t || !csrf || !action) throw new Error('no confirmation form on the page');
  return { t, csrf, action: action.replace(/&amp;/g, '&') };
}

export function form(fields: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) p.set(k, v);
  return p.toString();
}

export const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };
