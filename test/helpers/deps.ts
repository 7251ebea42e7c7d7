/**
 * AppDeps for tests: the real DynamoDB ledger on dynalite, the example policy, an in-memory
 * evidence store on the real chained store, and recording fakes for every other port, so a test
 * can drive a use case or a handler and then assert what a user would notice (records in the
 * ledger, messages on the queue, mails, schedules, workflow starts).
 *
 * Usage (one dynalite per test file, one table per test):
 *
 *   const dynamo = useDynalite();
 *   it('…', async () => {
 *     const deps = await testDeps(dynamo(), { now: '2026-11-20T09:00:00Z' });
 *     …
 *   });
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import type {
  AppDeps,
  Clock,
  ConnectorRegistry,
  EventQueue,
  Mailer,
  MetricsSink,
  OutgoingMail,
  QueueMessage,
  ScheduledAction,
  Scheduler,
  SecretName,
  Secrets,
  TaskCallbacks,
  WorkflowEngine,
  WorkflowName,
} from '#app/ports';
import { SECRET_NAMES } from '#app/ports';
import type { Connector } from '#connectors/connector';
import { DynamoLedger } from '#aws/ledger.dynamodb';
import { PolicyViolation } from '#core/errors';
import { ChainedEvidenceStore, ObjectExists, type ObjectBackend, type PutOptions } from '#core/evidence-store';
import type { Policy } from '#core/policy';
import { ensureTable, startDynalite, type LocalDynamo } from '#local/dynalite';
import { examplePolicy } from './policy.ts';

// ---------------------------------------------------------------------------------------------
// dynalite per test file

/**
 * Starts one dynalite for the calling test file (beforeAll) and closes it afterwards (afterAll).
 * Returns an accessor, since the server exists only once the hook has run.
 */
export function useDynalite(): () => LocalDynamo {
  let dynamo: LocalDynamo | undefined;
  beforeAll(async () => {
    dynamo = await startDynalite();
  });
  afterAll(async () => {
    await dynamo?.close();
  });
  return () => {
    if (!dynamo) throw new Error('useDynalite(): dynalite is not running (call the accessor inside a test or a hook)');
    return dynamo;
  };
}

// ---------------------------------------------------------------------------------------------
// Recording fakes

/** A clock the test sets and moves. */
export class TestClock implements Clock {
  private ms: number;
  constructor(at: Date | string | number = '2026-11-20T09:00:00.000Z') {
    this.ms = new Date(at).getTime();
    if (Number.isNaN(this.ms)) throw new TypeError(`TestClock: ${String(at)} is not a time`);
  }
  now(): Date {
    return new Date(this.ms);
  }
  set(at: Date | string | number): void {
    const ms = new Date(at).getTime();
    if (Number.isNaN(ms)) throw new TypeError(`TestClock.set: ${String(at)} is not a time`);
    this.ms = ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  /** Unix seconds (what webhook timestamps are in). */
  seconds(): number {
    return Math.floor(this.ms / 1000);
  }
}

export interface SentMessage {
  message: QueueMessage;
  groupId: string;
  deduplicationId: string;
}

/**
 * The FIFO queue as the application sees it: every `send` is recorded in order. `failNext`
 * makes the next sends throw (an SQS outage, or a crash between two writes); `delivered()`
 * applies SQS FIFO's deduplication (same deduplication id within five minutes of the clock
 * counts once) to show what a consumer would receive.
 */
export class RecordingQueue implements EventQueue {
  readonly sent: SentMessage[] = [];
  readonly attempts: SentMessage[] = [];
  private failures: Error[] = [];
  private readonly firstSeen = new Map<string, number>();
  private readonly deliveredList: SentMessage[] = [];
  static readonly DEDUP_WINDOW_MS = 5 * 60_000;

  constructor(private readonly clock: Clock) {}

  failNext(count = 1, error: Error = Object.assign(new Error('SQS SendMessage failed: service unavailable'), { name: 'ServiceUnavailable' })): void {
    for (let i = 0; i < count; i++) this.failures.push(error);
  }

  async send(message: QueueMessage, options: { groupId: string; deduplicationId: string }): Promise<void> {
    const entry: SentMessage = { message: structuredClone(message), groupId: options.groupId, deduplicationId: options.deduplicationId };
    this.attempts.push(entry);
    const failure = this.failures.shift();
    if (failure) throw failure;
    this.sent.push(entry);
    const now = this.clock.now().getTime();
    const seen = this.firstSeen.get(options.deduplicationId);
    if (seen === undefined || now - seen >= RecordingQueue.DEDUP_WINDOW_MS) {
      this.firstSeen.set(options.deduplicationId, now);
      this.deliveredList.push(entry);
    }
  }

  delivered(): SentMessage[] {
    return [...this.deliveredList];
  }

  /** Messages as SQS records (what the consumer Lambda receives), in send order. */
  asSqsRecords(entries: readonly SentMessage[] = this.delivered()) {
    return entries.map((e, i) => sqsRecord(e.message, { groupId: e.groupId, deduplicationId: e.deduplicationId, sequence: i + 1 }));
  }
}

/** An SQS FIFO record as Lambda's event source mapping delivers it. */
export function sqsRecord(
  body: unknown,
  options: { groupId: string; deduplicationId?: string; sequence?: number; messageId?: string; receiveCount?: number },
) {
  const sequence = options.sequence ?? 1;
  return {
    messageId: options.messageId ?? randomUUID(),
    receiptHandle: `rh-${randomUUID()}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    attributes: {
      ApproximateReceiveCount: String(options.receiveCount ?? 1),
      SentTimestamp: String(Date.now()),
      SequenceNumber: String(18_000_000_000_000_000_000n + BigInt(sequence)),
      MessageGroupId: options.groupId,
      SenderId: 'AIDATESTSENDER',
      MessageDeduplicationId: options.deduplicationId ?? randomUUID(),
      ApproximateFirstReceiveTimestamp: String(Date.now()),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:eu-west-2:123456789012:jml-events.fifo',
    awsRegion: 'eu-west-2',
  };
}

export class RecordingMailer implements Mailer {
  readonly sent: Array<OutgoingMail & { messageId: string }> = [];
  async send(mail: OutgoingMail): Promise<{ messageId: string }> {
    const messageId = `mail-${this.sent.length + 1}`;
    this.sent.push({ ...structuredClone(mail), messageId });
    return { messageId };
  }
}

export interface MetricPoint {
  name: string;
  value: number;
  unit: string;
  dimensions: Record<string, string>;
}

export class RecordingMetrics implements MetricsSink {
  readonly points: MetricPoint[] = [];
  flushes = 0;
  put(name: string, value: number, unit: MetricPoint['unit'], dimensions: Record<string, string> = {}): void {
    this.points.push({ name, value, unit, dimensions: { ...dimensions } });
  }
  flush(): void {
    this.flushes += 1;
  }
  /** Sum of a metric's values (optionally only points carrying these dimensions). */
  sum(name: string, dimensions: Record<string, string> = {}): number {
    return this.points
      .filter((p) => p.name === name && Object.entries(dimensions).every(([k, v]) => p.dimensions[k] === v))
      .reduce((n, p) => n + p.value, 0);
  }
}

export class RecordingScheduler implements Scheduler {
  readonly schedules = new Map<string, { at: Date; action: ScheduledAction }>();
  readonly calls: Array<{ op: 'upsert' | 'delete'; name: string }> = [];
  async upsertOnce(name: string, at: Date, action: ScheduledAction): Promise<void> {
    this.calls.push({ op: 'upsert', name });
    this.schedules.set(name, { at: new Date(at), action: structuredClone(action) });
  }
  async delete(name: string): Promise<boolean> {
    this.calls.push({ op: 'delete', name });
    return this.schedules.delete(name);
  }
}

/** Step Functions as the use cases see it: a second start with the same name is `alreadyStarted`. */
export class RecordingWorkflows implements WorkflowEngine {
  readonly started: Array<{ workflow: WorkflowName; name: string; input: unknown }> = [];
  readonly stopped: Array<{ name: string; cause: string }> = [];
  private failures: Error[] = [];

  failNextStart(error: Error = Object.assign(new Error('StartExecution: service unavailable'), { name: 'ServiceUnavailable' })): void {
    this.failures.push(error);
  }

  async start(workflow: WorkflowName, name: string, input: unknown) {
    const failure = this.failures.shift();
    if (failure) throw failure;
    const alreadyStarted = this.started.some((s) => s.name === name);
    if (!alreadyStarted) this.started.push({ workflow, name, input: structuredClone(input) });
    return { executionId: `arn:aws:states:eu-west-2:123456789012:execution:jml-${workflow}:${name}`, alreadyStarted };
  }

  async stop(name: string, cause: string): Promise<void> {
    this.stopped.push({ name, cause });
  }
}

export class RecordingCallbacks implements TaskCallbacks {
  readonly succeeded: Array<{ taskToken: string; output: unknown }> = [];
  readonly failed: Array<{ taskToken: string; error: string; cause: string }> = [];
  /** Tokens whose task is gone (timed out or finished): answered `gone`. */
  readonly gone = new Set<string>();
  async succeed(taskToken: string, output: unknown): Promise<'ok' | 'gone'> {
    if (this.gone.has(taskToken)) return 'gone';
    this.succeeded.push({ taskToken, output: structuredClone(output) });
    this.gone.add(taskToken);
    return 'ok';
  }
  async fail(taskToken: string, error: string, cause: string): Promise<'ok' | 'gone'> {
    if (this.gone.has(taskToken)) return 'gone';
    this.failed.push({ taskToken, error, cause });
    this.gone.add(taskToken);
    return 'ok';
  }
}

/** Secrets for one test: throwaway random values unless given; settable to simulate rotation. */
export class TestSecrets implements Secrets {
  private readonly values: Record<SecretName, string[]>;
  constructor(values: Partial<Record<SecretName, string[]>> = {}) {
    this.values = Object.fromEntries(
      SECRET_NAMES.map((name) => [name, values[name] ?? [randomBytes(32).toString('base64url')]]),
    ) as Record<SecretName, string[]>;
  }
  async get(name: SecretName): Promise<string[]> {
    return [...this.values[name]];
  }
  /** The current (signing) value. */
  current(name: SecretName): string {
    return this.values[name][0]!;
  }
  set(name: SecretName, values: string[]): void {
    this.values[name] = [...values];
  }
}

/** Connectors by policy target name; an unknown target is refused as the real registry does. */
export class MapConnectorRegistry implements ConnectorRegistry {
  constructor(private readonly connectors: Record<string, Connector> = {}) {}
  get(target: string): Connector {
    const c = this.connectors[target];
    if (!c) throw new PolicyViolation(`no connector for target "${target}" in this test`);
    return c;
  }
}

/** S3 / filesystem semantics in memory (create-only writes refuse an existing key). */
export class MemoryObjectBackend implements ObjectBackend {
  readonly objects = new Map<string, { body: Uint8Array; options: PutOptions }>();
  async put(key: string, body: Uint8Array, options: PutOptions): Promise<void> {
    if (options.ifAbsent && this.objects.has(key)) throw new ObjectExists(key);
    this.objects.set(key, { body: new Uint8Array(body), options: { ...options } });
  }
  async get(key: string): Promise<Uint8Array | null> {
    const o = this.objects.get(key);
    return o ? new Uint8Array(o.body) : null;
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}

// ---------------------------------------------------------------------------------------------
// Assembly

export interface TestDepsOptions {
  /** Start time of the test clock (default 2026-11-20T09:00:00Z). */
  now?: Date | string | number;
  /** Policy (default: the example policy in config/). */
  policy?: Policy;
  secrets?: Partial<Record<SecretName, string[]>>;
  connectors?: Record<string, Connector>;
  publicBaseUrl?: string;
  /** Reuse an existing table (default: a fresh table per call). */
  tableName?: string;
}

export interface TestDeps extends AppDeps {
  ledger: DynamoLedger;
  tableName: string;
  clock: TestClock;
  queue: RecordingQueue;
  mailer: RecordingMailer;
  metrics: RecordingMetrics;
  scheduler: RecordingScheduler;
  workflows: RecordingWorkflows;
  callbacks: RecordingCallbacks;
  secrets: TestSecrets;
  evidenceObjects: MemoryObjectBackend;
  /** The policy `policy()` resolves to; replace it to simulate a policy release. */
  currentPolicy: Policy;
}

/** AppDeps on a fresh ledger table of `dynamo` (see `useDynalite`). */
export async function testDeps(dynamo: LocalDynamo, options: TestDepsOptions = {}): Promise<TestDeps> {
  const clock = new TestClock(options.now);
  const tableName = options.tableName ?? `ledger-${randomUUID()}`;
  await ensureTable(dynamo.client, tableName);
  const evidenceObjects = new MemoryObjectBackend();
  const deps: TestDeps = {
    ledger: new DynamoLedger({ client: dynamo.ledgerClient, tableName, now: () => clock.now() }),
    tableName,
    evidence: new ChainedEvidenceStore(evidenceObjects),
    evidenceObjects,
    currentPolicy: options.policy ?? examplePolicy(),
    policy: async () => deps.currentPolicy,
    connectors: new MapConnectorRegistry(options.connectors),
    queue: new RecordingQueue(clock),
    workflows: new RecordingWorkflows(),
    callbacks: new RecordingCallbacks(),
    mailer: new RecordingMailer(),
    scheduler: new RecordingScheduler(),
    secrets: new TestSecrets(options.secrets),
    metrics: new RecordingMetrics(),
    clock,
    publicBaseUrl: options.publicBaseUrl ?? 'https://jml.test.example',
  };
  return deps;
}
