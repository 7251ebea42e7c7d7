/**
 * The whole system in one process, no AWS account: the same use cases and handlers, the same
 * ASL files and policy, with local stand-ins for the AWS parts (dynalite, aws-local-stepfunctions,
 * an in-process FIFO queue, a folder for evidence, an outbox, an adjustable clock) and for the
 * identity targets (Okta, Graph and SCIM stand-ins) — or a real Okta / Entra tenant from env.
 *
 * `npm run local` serves it over HTTP (local/server.ts); tests and `npm run demo` use it directly.
 */
import '#local/polyfills';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AppDeps, ConnectorRegistry, SecretName } from '#app/ports';
import type { Connector } from '#connectors/connector';
import { createOktaConnector } from '#connectors/okta.connector';
import { createEntraConnector } from '#connectors/entra.connector';
import { createScimConnector } from '#connectors/scim.connector';
import { createTicketing, type ItsmConfig } from '#connectors/itsm';
import { PolicyViolation } from '#core/errors';
import type { Policy } from '#core/policy';
import { loadPolicyText } from '#core/policy-yaml';
import { DynamoLedger } from '#aws/ledger.dynamodb';
import { createRequestApprovalHandler, createApprovalExpiredHandler } from '#handlers/request-approval';
import {
  createCloseHandler,
  createConvergeHandler,
  createPlanHandler,
  createReconcileHandler,
  createRecordFailureHandler,
  createScheduleRetentionHandler,
} from '#handlers/run-tasks';
import { createStartRunHandler } from '#handlers/start-run';
import { reconcileTaskHandlers } from '#handlers/reconcile-tasks';
import { onExecutionEnded } from '#app/execution-ended';
import { hrEventMessage } from '#app/ingest';
import { startRunWorkflow } from '#app/start-run';
import { withDecisionCallbacks } from '#app/standalone-approvals';
import { ensureTable, startDynalite, type LocalDynamo } from './dynalite.ts';
import { fsEvidenceStore } from './evidence-fs.ts';
import { AdjustableClock, EnvSecrets, LocalFifoQueue, LocalScheduler, MemoryMetrics, Outbox, toSqsEvent, type QueueRecord, type ScheduledEntry } from './adapters.ts';
import { LocalWorkflows } from './workflow-engine.ts';
import { startOktaStandIn, type OktaStandIn } from './standins/okta.ts';
import { startGraphStandIn, type GraphStandIn } from './standins/graph.ts';
import { startScimStandIn, type ScimStandIn } from './standins/scim.ts';
import { startItsmStandIn, type ItsmStandIn } from './standins/itsm.ts';
import { persistGraphStandIn, persistOktaStandIn, persistScimStandIn } from './standins/persistence.ts';

export const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const TABLE_NAME = 'jml';

/** Retries of the execution-ended callback (the EventBridge rule's target retries 8 times). */
const EXECUTION_ENDED_RETRIES = 8;

/** Documented development defaults (never used in AWS, where Secrets Manager holds them). */
export const DEV_SECRETS: Record<SecretName, string> = {
  hrisWebhook: 'dev-hris-webhook-secret-change-me',
  bambooHr: 'dev-bamboohr-private-key-change-me',
  oktaHook: 'dev-okta-hook-secret-change-me',
  linkSigning: 'dev-link-signing-key-change-me',
};

export interface LocalStackOptions {
  /** Where state lives (ledger, evidence, outbox, schedules). Absent: in memory / a temp dir. */
  dataDir?: string;
  /** Start empty even when `dataDir` holds state. */
  fresh?: boolean;
  idp?: 'okta' | 'entra';
  /** Policy file; default config/access-policy.yaml (okta) or access-policy.entra.yaml. */
  policyFile?: string;
  /** Base URL the approval links point at. */
  publicBaseUrl?: string;
  secrets?: Partial<Record<SecretName, string>>;
  /** Wait between Step Functions retries, ms (tests use a few ms). */
  retryIntervalMs?: number;
  /** Override the approval window (seconds) so tests can watch an approval expire. */
  approvalTimeoutSeconds?: number;
  /** Latency added to every stand-in response. */
  targetLatencyMs?: number;
  /** Extra connectors per target (a test's own stand-in), replacing the defaults. */
  connectorOverrides?: Record<string, Connector>;
  /**
   * Keep the stand-in targets' state in this folder (okta.json, graph.json, scim/<app>.json),
   * loaded on start and written after changes. Off by default (tests, benchmarks); `npm run local`
   * passes `<data dir>/targets`. `fresh` empties it.
   */
  targetStateDir?: string;
  /**
   * ITSM tickets for exceptions: a system name starts the ITSM stand-in speaking that system's
   * API (`GET /local/tickets` lists its tickets); a full config with its secret uses a real ITSM.
   */
  itsm?: ItsmConfig['system'] | { config: ItsmConfig; secret: string };
  /** Run dynalite in a process of its own (benchmarks: DynamoDB's work is not the engine's). */
  ledgerProcess?: boolean;
}

export interface LocalStack {
  deps: AppDeps;
  policy: Policy;
  clock: AdjustableClock;
  outbox: Outbox;
  metrics: MemoryMetrics;
  scheduler: LocalScheduler;
  queue: LocalFifoQueue;
  workflows: LocalWorkflows;
  dynamo: LocalDynamo;
  targets: { okta?: OktaStandIn; graph?: GraphStandIn; scim: Record<string, ScimStandIn> };
  /** The ITSM stand-in, when `itsm` named a system. */
  itsm?: ItsmStandIn;
  /** Target name → connection facts (for `GET /local/targets`; tokens are throwaway). */
  targetInfo(): Record<string, unknown>;
  evidenceRoot: string;
  /** Runs picked up again after a restart. */
  resumed: string[];
  /** Waits until the queue is drained and no execution is running. */
  settle(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const throwaway = () => randomBytes(24).toString('base64url');

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const idp = options.idp ?? 'okta';
  const dataDir = options.dataDir ? resolve(options.dataDir) : undefined;
  if (dataDir && options.fresh) rmSync(dataDir, { recursive: true, force: true });
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const targetStateDir = options.targetStateDir ? resolve(options.targetStateDir) : undefined;
  if (targetStateDir && options.fresh) rmSync(targetStateDir, { recursive: true, force: true });
  const policyFile = options.policyFile ?? join(REPO_ROOT, 'config', idp === 'entra' ? 'access-policy.entra.yaml' : 'access-policy.yaml');
  const policy = loadPolicyText(readFileSync(policyFile, 'utf8'));
  const clock = new AdjustableClock();

  const dynamo = await startDynalite({ ...(dataDir ? { path: join(dataDir, 'dynamodb') } : {}), ...(options.ledgerProcess ? { ownProcess: true } : {}) });
  await ensureTable(dynamo.client, TABLE_NAME);
  const ledger = new DynamoLedger({ client: dynamo.ledgerClient, tableName: TABLE_NAME, now: () => clock.now() });
  const evidenceRoot = dataDir ?? join(REPO_ROOT, '.jml-local', `mem-${process.pid}-${Date.now()}`);
  const evidence = fsEvidenceStore(evidenceRoot);
  const outbox = new Outbox(clock, dataDir ? join(dataDir, 'outbox.json') : undefined);
  const metrics = new MemoryMetrics(clock);

  // Identity targets: stand-ins seeded with every group, app and license the policy names.
  const controls = { latencyMs: options.targetLatencyMs ?? 0 };
  const targets: LocalStack['targets'] = { scim: {} };
  const connectors = new Map<string, Connector>();
  const groupsFor = (target: string, type: string) =>
    [...new Set([...policy.bundleEntitlements.values()].flat().filter((e) => e.target === target && e.type === type).map((e) => e.value))];
  if (policy.idp.kind === 'okta') {
    const token = throwaway();
    targets.okta = await startOktaStandIn({
      token,
      controls,
      seed: { groups: groupsFor(policy.idp.name, 'group').map((name) => ({ name })), apps: groupsFor(policy.idp.name, 'app').map((label) => ({ label })) },
    });
    if (targetStateDir) targets.okta = persistOktaStandIn(targets.okta, join(targetStateDir, 'okta.json'));
    connectors.set(policy.idp.name, createOktaConnector({ name: policy.idp.name, orgUrl: targets.okta.url, token, maxRetries: 2 }));
  } else {
    const clientId = throwaway();
    const clientSecret = throwaway();
    targets.graph = await startGraphStandIn({
      clientId,
      clientSecret,
      controls,
      seed: {
        groups: groupsFor(policy.idp.name, 'group').map((displayName) => ({ displayName })),
        skus: groupsFor(policy.idp.name, 'license').map((skuPartNumber) => ({ skuPartNumber, prepaidUnits: 10_000 })),
      },
    });
    if (targetStateDir) targets.graph = persistGraphStandIn(targets.graph, join(targetStateDir, 'graph.json'));
    connectors.set(
      policy.idp.name,
      createEntraConnector({
        name: policy.idp.name,
        tenantId: targets.graph.tenantId,
        clientId,
        clientSecret,
        authorityHost: targets.graph.url,
        graphBaseUrl: targets.graph.url,
        customHosts: ['127.0.0.1'],
        domain: policy.document.company.emailDomain,
        usageLocation: 'GB',
        maxRetries: 2,
      }),
    );
  }
  for (const t of policy.managedTargets.filter((x) => x.kind === 'scim')) {
    const token = throwaway();
    let standIn = await startScimStandIn({
      name: t.name,
      token,
      controls,
      seed: { groups: groupsFor(t.name, 'group').map((displayName) => ({ displayName })) },
    });
    if (targetStateDir) standIn = persistScimStandIn(standIn, join(targetStateDir, 'scim', `${t.name}.json`));
    targets.scim[t.name] = standIn;
    connectors.set(t.name, createScimConnector({ name: t.name, baseUrl: standIn.url, token, maxRetries: 2, retryBaseDelayMs: 20 }));
  }
  for (const [name, c] of Object.entries(options.connectorOverrides ?? {})) connectors.set(name, c);
  const registry: ConnectorRegistry = {
    get(target) {
      const c = connectors.get(target);
      if (!c) throw new PolicyViolation(`target ${target} is not managed by jml`);
      return c;
    },
  };

  const secrets = new EnvSecrets({ ...DEV_SECRETS, ...stripUndefined(options.secrets ?? {}) });

  let itsm: ItsmStandIn | undefined;
  let itsmConfig: ItsmConfig | undefined;
  let itsmSecret = '';
  if (typeof options.itsm === 'string') {
    itsmSecret = options.itsm === 'webhook' ? throwaway() : `jml@${policy.document.company.emailDomain}:${throwaway()}`;
    itsm = await startItsmStandIn({ credential: itsmSecret, webhookSecret: itsmSecret });
    itsmConfig =
      options.itsm === 'jira'
        ? { system: 'jira', baseUrl: itsm.url, serviceDeskId: '1', requestTypeId: '1' }
        : options.itsm === 'servicenow'
          ? { system: 'servicenow', instanceUrl: itsm.url }
          : { system: 'webhook', url: `${itsm.url}/hooks/jml` };
  } else if (options.itsm) {
    itsmConfig = options.itsm.config;
    itsmSecret = options.itsm.secret;
  }
  const ticketing = itsmConfig ? createTicketing(itsmConfig, { secret: async () => [itsmSecret] }) : undefined;
  // Late-bound: the queue, scheduler and workflows need deps, and deps needs them.
  let deps!: AppDeps;
  const provider = async () => deps;

  // The queue delivers to the same SQS consumer handler as in AWS, one message per batch; a
  // reported batch item failure makes the local queue redeliver (and dead-letter), as SQS does.
  const consumer = createStartRunHandler(provider);
  const consume = async (record: QueueRecord) => {
    const result = await consumer(toSqsEvent(record));
    if (result.batchItemFailures.length) throw new Error(`message ${record.messageId} failed; it will be redelivered`);
  };
  const queue = new LocalFifoQueue(consume, { retryDelayMs: 50 });
  const dispatch = async (entry: ScheduledEntry) => {
    // Every fired schedule goes where EventBridge Scheduler's target sends it in AWS.
    const { dispatchScheduled } = await import('#app/scheduled');
    await dispatchScheduled(deps, entry);
  };
  const scheduler = new LocalScheduler(clock, dispatch, dataDir ? join(dataDir, 'schedules.json') : undefined);

  const planHandler = createPlanHandler(provider);
  let closing = false;
  const workflows = new LocalWorkflows({
    dir: join(REPO_ROOT, 'statemachines'),
    retryIntervalMs: options.retryIntervalMs,
    now: () => clock.now().getTime(),
    // What the EventBridge rule on execution status changes does in AWS.
    // Retried like the rule's Lambda target (8 retries in AWS, then its dead-letter queue): a
    // ledger write that fails once must not leave the run open.
    onEnd: (name, record) => {
      if (record.status === 'SUCCEEDED' || closing) return;
      const ended = {
        runId: name,
        status: record.status === 'ABORTED' ? ('ABORTED' as const) : ('FAILED' as const),
        ...(record.error ? { error: record.error.name, cause: record.error.message } : {}),
      };
      void (async () => {
        for (let attempt = 0; ; attempt += 1) {
          try {
            await onExecutionEnded(deps, ended);
            return;
          } catch (e) {
            if (attempt >= EXECUTION_ENDED_RETRIES || closing) {
              console.error(`run ${name}: could not record the failed execution: ${(e as Error).message}`);
              return;
            }
            await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt, 30_000)));
          }
        }
      })();
    },
    handlers: {
      PlanFunctionArn: async (input) => {
        const out = (await planHandler(input)) as { approvalTimeoutSeconds: number };
        return options.approvalTimeoutSeconds ? { ...out, approvalTimeoutSeconds: options.approvalTimeoutSeconds } : out;
      },
      ConvergeFunctionArn: createConvergeHandler(provider),
      RecordFailureFunctionArn: createRecordFailureHandler(provider),
      ReconcileFunctionArn: createReconcileHandler(provider),
      ScheduleRetentionFunctionArn: createScheduleRetentionHandler(provider),
      CloseFunctionArn: createCloseHandler(provider),
      RequestApprovalFunctionArn: createRequestApprovalHandler(provider),
      ApprovalExpiredFunctionArn: createApprovalExpiredHandler(provider),
      ...reconcileTaskHandlers(provider),
    },
  });

  deps = {
    ledger,
    evidence,
    policy: async () => policy,
    connectors: registry,
    queue,
    workflows,
    // Approvals outside a workflow (exception grants, bulk-guard releases) decide through the same links.
    callbacks: withDecisionCallbacks(workflows, provider),
    mailer: outbox,
    scheduler,
    secrets,
    metrics,
    ...(ticketing ? { ticketing } : {}),
    clock,
    publicBaseUrl: options.publicBaseUrl ?? 'http://127.0.0.1:8787',
  };

  // Step Functions executions are durable in AWS; locally they live in this process. After a
  // restart, runs that were mid-flight are started again under the same name: every task
  // re-reads the targets and the ledger, so nothing already done is done twice.
  const resumed: string[] = [];
  if (dataDir && !options.fresh) {
    // Listed by status: a store its runtime did not close had its indexes mended as it started
    // (startDynalite), so a run torn out of its status partition is listed again.
    const statuses = ['RECEIVED', 'PLANNED', 'AWAITING_APPROVAL', 'EXECUTING', 'RECONCILING'] as const;
    const open = (await Promise.all(statuses.map((st) => ledger.listRunsByStatus(st)))).flat();
    for (const run of open) {
      const { lifecycle } = run;
      if (lifecycle === 'reconcile') continue;
      if (run.executionName) {
        // Started before the restart (a RECEIVED one too: a leaver disables at the IdP before
        // Plan moves the run on): started again under the same name.
        await startRunWorkflow(deps, policy, { runId: run.runId, employeeId: run.employeeId, lifecycle });
      } else if (run.status === 'RECEIVED') {
        await queue.send(hrEventMessage(run), { groupId: run.employeeId, deduplicationId: run.idempotencyKey });
      } else continue;
      resumed.push(run.runId);
    }
  }

  const settle = async (timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await queue.drained();
      const running = workflows.running();
      if (!running.length && !queue.pending()) return;
      if (Date.now() > deadline) throw new Error(`not settled after ${timeoutMs} ms: ${running.map((r) => r.name).join(', ')} still running`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([workflows.nextEnd(), new Promise((r) => (timer = setTimeout(r, 50)))]);
      clearTimeout(timer);
    }
  };

  return {
    deps,
    policy,
    clock,
    outbox,
    metrics,
    scheduler,
    queue,
    workflows,
    dynamo,
    targets,
    ...(itsm ? { itsm } : {}),
    evidenceRoot,
    resumed,
    targetInfo: () => ({
      ...(targets.okta ? { okta: { orgUrl: targets.okta.url, token: targets.okta.token } } : {}),
      ...(targets.graph ? { entra: { baseUrl: targets.graph.graphUrl, tokenUrl: targets.graph.tokenUrl, tenantId: targets.graph.tenantId } } : {}),
      scim: Object.values(targets.scim).map((s) => ({ name: s.name, baseUrl: s.url, token: s.token })),
    }),
    settle,
    async close() {
      closing = true;
      scheduler.stop();
      for (const r of workflows.running()) await workflows.stop(r.name);
      await Promise.all([
        targets.okta?.close(),
        targets.graph?.close(),
        ...Object.values(targets.scim).map((s) => s.close()),
        itsm?.close(),
      ]);
      await dynamo.close();
      if (!dataDir) rmSync(evidenceRoot, { recursive: true, force: true });
    },
  };
}

function stripUndefined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
