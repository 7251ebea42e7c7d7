/**
 * `jml reconcile [--now]` and `jml kpis` against a deployed stack (`--stack` / `JML_STACK`).
 *
 * reconcile: does what the nightly EventBridge Scheduler schedule does — invokes the
 * scheduled-action function (stack output `ScheduledActionFunctionArn`) with the schedule's own
 * input, `{ kind: 'reconcile', payload: { scope: 'nightly' }, schedule: 'jml-nightly-reconcile', at }`
 * (lib/scheduler.ts). The function's dispatch starts the `reconcile` state machine with the
 * execution name `nightly-<UTC day>`, once per day, and answers with that id — so a second
 * `jml reconcile` the same day reports that day's reconciliation, as the schedule would. The
 * invocation is synchronous (RequestResponse): the id comes back, and an error of the function
 * is reported, not retried. `--now` then follows the execution (DescribeExecution on
 * `ReconcileStateMachineArn` + the id; the state it is in from GetExecutionHistory when allowed)
 * with a progress line on stderr, and prints the report from the run record the reconciliation
 * wrote (`GET /runs/{id}`, signed): status, findings, KPIs, where the report bundle is.
 *
 * kpis: GetMetricData over one period spanning `--since` (default 7d), namespace `jml`, every
 * series with the `service` dimension the EMF adapter adds (see kpis.ts), printed like the local
 * command.
 *
 * Errors name the action and resource IAM refused (lambda:InvokeFunction, states:DescribeExecution,
 * cloudwatch:GetMetricData), the output missing, the function's error, an execution that failed.
 */
import { z } from 'zod';
import { UsageError } from './io.ts';
import { causeOf, firstLine, StackError, type Endpoint, type StackInfo } from './remote.ts';
import { kpiQueries, printKpis, summariseCloudWatch, type KpiResult, type KpiSummary } from './kpis.ts';

/** How often `--now` asks Step Functions (tests shorten it). */
export const polling = { intervalMs: 5_000 };

const OPERATING = 'docs/deploy.md, "Operating a deployed stack"';

function needOutput(stack: StackInfo, key: string, why: string): string {
  const v = stack.outputs[key];
  if (v) return v;
  throw new StackError(`stack ${stack.name} (${stack.region}, ${stack.status}) has no ${key} output — ${why}. Outputs: ${Object.keys(stack.outputs).join(', ') || 'none'}`);
}

/** An AWS SDK error as a message naming the action, the resource and who was refused. */
function awsFailure(stack: StackInfo, e: unknown, action: string, resource: string, grant: string): StackError {
  const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const message = firstLine(err.message ?? '');
  if (/^AccessDenied/.test(err.name ?? '') || err.$metadata?.httpStatusCode === 403 || /not authorized to perform/.test(message)) {
    const arn = /User: (\S+) is not authorized/.exec(message)?.[1];
    const who = arn ? `${arn} (${stack.identity})` : stack.identity;
    if (/security token|signature|expired/i.test(`${err.name} ${message}`)) {
      return new StackError(`${stack.name}: ${action} refused for ${who}: ${message} — the credentials were refused: refresh them (aws sso login) or check the clock`);
    }
    return new StackError(`${stack.name}: ${action} on ${resource} refused for ${who}: ${message} — grant ${action} on ${grant} (${OPERATING})`);
  }
  if (/ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|socket|network/i.test(`${err.name} ${message} ${causeOf(e)}`)) {
    return new StackError(`${stack.name}: cannot reach AWS in ${stack.region} for ${action}: ${message || causeOf(e)}`);
  }
  return new StackError(`${stack.name}: ${action} on ${resource} failed: ${err.name ?? 'Error'}: ${message}`);
}

// ---- reconcile ----------------------------------------------------------------------------------

const Outcome = z.object({
  kind: z.literal('reconcile'),
  runId: z.string().min(1).max(80),
  outcome: z.string().min(1).max(64),
});

const RunReport = z.object({
  runId: z.string(),
  status: z.string(),
  evidence: z.object({ prefix: z.string() }).loose().nullable().optional(),
  kpis: z.record(z.string(), z.unknown()).nullable().optional(),
});

export interface ReconcileOptions {
  now: boolean;
  json: boolean;
  timeoutMs: number;
}

/** The execution states a reconciliation can be in once it has ended. */
const ENDED = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED']);

export async function reconcileOnStack(where: Endpoint, o: ReconcileOptions): Promise<number> {
  const stack = where.stack!;
  const functionArn = needOutput(stack, 'ScheduledActionFunctionArn', 'the stack predates `jml reconcile --stack`: deploy this version (cdk deploy) to add it');
  const machineArn = needOutput(
    stack,
    'ReconcileStateMachineArn',
    'no reconcile workflow is deployed (statemachines/reconcile.asl.json), so there is no reconciliation to start and the nightly schedule is disabled',
  );
  const [{ LambdaClient, InvokeCommand }, { NIGHTLY_RECONCILE_SCHEDULE }, { executionArn }] = await Promise.all([
    import('@aws-sdk/client-lambda'),
    import('#aws/schedules'),
    import('#aws/workflows.sfn'),
  ]);
  // The nightly schedule's input (lib/scheduler.ts), with the time it fires at.
  const event = { kind: 'reconcile', payload: { scope: 'nightly' }, schedule: NIGHTLY_RECONCILE_SCHEDULE, at: new Date().toISOString() };
  const lambda = new LambdaClient({ region: stack.region, credentials: stack.credentials });
  let res;
  try {
    res = await lambda.send(new InvokeCommand({ FunctionName: functionArn, InvocationType: 'RequestResponse', Payload: new TextEncoder().encode(JSON.stringify(event)) }));
  } catch (e) {
    throw awsFailure(stack, e, 'lambda:InvokeFunction', functionArn, `the scheduled-action function (output ScheduledActionFunctionArn: ${functionArn})`);
  }
  const text = res.Payload ? Buffer.from(res.Payload).toString('utf8') : '';
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (res.FunctionError) {
    const f = (body ?? {}) as { errorType?: string; errorMessage?: string };
    throw new StackError(
      `${stack.name}: the scheduled-action function did not start the reconciliation: ${f.errorType ?? res.FunctionError}: ${firstLine(f.errorMessage ?? text)} (its logs: /aws/lambda/${functionArn.split(':').pop()})`,
    );
  }
  const parsed = Outcome.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new StackError(`${stack.name}: the scheduled-action function answered something else than a started reconciliation: ${issue.path.join('.') || 'answer'}: ${issue.message} (got ${text.slice(0, 200) || 'nothing'})`);
  }
  const { runId, outcome } = parsed.data;
  const execution = executionArn(machineArn, runId);
  const again = outcome !== 'started';
  if (!o.now) {
    if (o.json) console.log(JSON.stringify({ reconciliationId: runId, status: 'STARTED', outcome, executionArn: execution }, null, 2));
    else if (again) console.log(`reconciliation ${runId} was already started today (once per UTC day, like the nightly schedule); \`jml reconcile --now\` waits for it`);
    else console.log(`reconciliation ${runId} started; see \`jml exceptions\` when it ends (or wait for it: \`jml reconcile --now\`)`);
    return 0;
  }
  if (!o.json) console.log(`reconciling every target and every person… (${again ? 'already started today: following ' : ''}execution ${runId} of ${stack.name})`);
  const ended = await followExecution(stack, execution, runId, o.timeoutMs);

  const run = await where.request('GET', `/runs/${encodeURIComponent(runId)}`);
  const record = run.status === 200 ? RunReport.safeParse(run.json) : undefined;
  const report = record?.success ? record.data : undefined;
  const bucket = stack.outputs.EvidenceBucketName ?? '<evidence bucket>';
  const failed = ended.status !== 'SUCCEEDED' || report?.status === 'FAILED';
  if (o.json) {
    console.log(
      JSON.stringify(
        {
          reconciliationId: runId,
          status: report?.status ?? ended.status,
          execution: ended.status,
          ...(ended.error ? { error: ended.error, cause: ended.cause } : {}),
          evidence: report?.evidence ?? null,
          kpis: report?.kpis ?? null,
        },
        null,
        2,
      ),
    );
    return failed ? 1 : 0;
  }
  if (ended.status !== 'SUCCEEDED') {
    console.log(`✘ execution ${runId} ${ended.status}${ended.error ? `: ${ended.error}` : ''}${ended.cause ? ` — ${describeCause(ended.cause)}` : ''}`);
  }
  if (!report) {
    const why = run.status === 200 ? 'its run record does not have the expected shape' : `GET /runs/${runId}: HTTP ${run.status} — ${run.json?.message ?? run.text.slice(0, 200)}`;
    console.log(`reconciliation ${runId}: no report (${why})`);
    return 1;
  }
  printReconciliation(runId, report.status, report.kpis ?? null, report.evidence ? `s3://${bucket}/${report.evidence.prefix}` : null);
  return failed ? 1 : 0;
}

/** The report `jml reconcile --now` prints, the same for the local runtime and a stack. */
export function printReconciliation(id: string, status: string, kpis: Record<string, unknown> | null, report: string | null): void {
  console.log(`reconciliation ${id}: ${status}`);
  for (const [k, v] of Object.entries(kpis ?? {})) console.log(`  ${k.padEnd(28)} ${v}`);
  if (report) console.log(`  report: ${report}`);
}

/** A Task failure's cause is often the Lambda error as JSON: its type and message. */
function describeCause(cause: string): string {
  try {
    const c = JSON.parse(cause) as { errorType?: string; errorMessage?: string };
    if (c.errorType || c.errorMessage) return `${c.errorType ?? 'Error'}: ${firstLine(c.errorMessage ?? '')}`;
  } catch {
    // not JSON: as it is
  }
  return firstLine(cause);
}

interface Ended {
  status: string;
  error?: string;
  cause?: string;
}

async function followExecution(stack: StackInfo, arn: string, runId: string, timeoutMs: number): Promise<Ended> {
  const { SFNClient, DescribeExecutionCommand, GetExecutionHistoryCommand } = await import('@aws-sdk/client-sfn');
  const sfn = new SFNClient({ region: stack.region, credentials: stack.credentials });
  const began = Date.now();
  const tty = !!process.stderr.isTTY;
  let history = true;
  let shown = '';
  let shownAt = 0;
  const clear = () => tty && shown && process.stderr.write('\r\x1b[K');
  try {
    for (;;) {
      let d;
      try {
        d = await sfn.send(new DescribeExecutionCommand({ executionArn: arn }));
      } catch (e) {
        throw awsFailure(stack, e, 'states:DescribeExecution', arn, `the reconcile executions (${arn.replace(/:[^:]+$/, ':*')})`);
      }
      const status = d.status ?? 'UNKNOWN';
      if (ENDED.has(status)) {
        clear();
        return { status, ...(d.error ? { error: d.error } : {}), ...(d.cause ? { cause: d.cause } : {}) };
      }
      let state = '';
      if (history) {
        try {
          const h = await sfn.send(new GetExecutionHistoryCommand({ executionArn: arn, reverseOrder: true, maxResults: 25, includeExecutionData: false }));
          const entered = (h.events ?? []).find((ev) => ev.type?.endsWith('StateEntered') && ev.stateEnteredEventDetails?.name);
          state = entered?.stateEnteredEventDetails?.name ?? '';
        } catch {
          history = false; // optional: without states:GetExecutionHistory the line shows the status only
        }
      }
      const started = d.startDate ? new Date(d.startDate).getTime() : began;
      const line = `  ${runId}: ${status}${state ? ` — ${state}` : ''}`;
      const elapsed = `${formatDuration(Date.now() - started)} elapsed`;
      if (tty) process.stderr.write(`\r\x1b[K${line}, ${elapsed}`);
      else if (line !== shown || Date.now() - shownAt >= 60_000) {
        console.error(`${line}, ${elapsed}`);
        shownAt = Date.now();
      }
      shown = line;
      if (Date.now() - began >= timeoutMs) {
        clear();
        throw new StackError(
          `reconciliation ${runId} is still ${status} after ${formatDuration(timeoutMs)}; it goes on in Step Functions — follow it with \`jml run ${runId} --stack ${stack.name}\`, or wait again with \`jml reconcile --now --stack ${stack.name}\` (same execution)`,
        );
      }
      await new Promise((r) => setTimeout(r, polling.intervalMs));
    }
  } finally {
    sfn.destroy();
  }
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** `90m`, `2h`, `7d` → milliseconds (whole minutes: CloudWatch periods are multiples of 60 s). */
export function parseWindow(value: string, flag: string, bounds: { minMs: number; maxMs: number }): number {
  const m = /^(\d+)(m|h|d)$/.exec(value.trim());
  if (!m) throw new UsageError(`${flag} takes a duration like 30m, 12h or 7d (got "${value}")`);
  const ms = Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
  if (ms < bounds.minMs || ms > bounds.maxMs) {
    throw new UsageError(`${flag} ${value} is out of range: from ${formatDuration(bounds.minMs)} to ${Math.round(bounds.maxMs / 86_400_000)}d`);
  }
  return ms;
}

// ---- kpis ---------------------------------------------------------------------------------------

const MetricDataAnswer = z.object({
  MetricDataResults: z
    .array(
      z.object({
        Id: z.string(),
        Label: z.string().optional(),
        Timestamps: z.array(z.date()).optional(),
        Values: z.array(z.number()).optional(),
        StatusCode: z.string().optional(),
        Messages: z.array(z.object({ Code: z.string().optional(), Value: z.string().optional() })).optional(),
      }),
    )
    .optional(),
  NextToken: z.string().optional(),
  Messages: z.array(z.object({ Code: z.string().optional(), Value: z.string().optional() })).optional(),
});

export interface StackKpis extends KpiSummary {
  window: { since: string; until: string };
}

/** CloudWatch keeps metrics for 15 months (hourly after 63 days). */
export const KPI_WINDOW = { minMs: 5 * 60_000, maxMs: 455 * 86_400_000 };

export async function kpisOnStack(where: Endpoint, o: { sinceMs: number; sinceLabel: string; json: boolean }): Promise<number> {
  const stack = where.stack!;
  const [{ CloudWatchClient, GetMetricDataCommand }, { METRICS_NAMESPACE, METRICS_SERVICE }] = await Promise.all([
    import('@aws-sdk/client-cloudwatch'),
    import('#aws/metrics.emf'),
  ]);
  const periodSeconds = o.sinceMs / 1000;
  // One period spanning the window, ending on a 5-minute boundary (an hour for long windows)
  // so CloudWatch does not split it when it rounds the start time.
  const align = o.sinceMs > 15 * 86_400_000 ? 3_600_000 : 300_000;
  const until = new Date(Math.ceil(Date.now() / align) * align);
  const since = new Date(until.getTime() - o.sinceMs);
  const queries = kpiQueries(METRICS_NAMESPACE, METRICS_SERVICE, periodSeconds);
  const cw = new CloudWatchClient({ region: stack.region, credentials: stack.credentials });
  const results: KpiResult[] = [];
  try {
    let NextToken: string | undefined;
    do {
      let raw;
      try {
        raw = await cw.send(
          new GetMetricDataCommand({
            StartTime: since,
            EndTime: until,
            MetricDataQueries: queries.map(({ role: _role, ...q }) => q),
            ScanBy: 'TimestampAscending',
            ...(NextToken ? { NextToken } : {}),
          }),
        );
      } catch (e) {
        throw awsFailure(stack, e, 'cloudwatch:GetMetricData', `namespace ${METRICS_NAMESPACE}`, '"*" (GetMetricData has no resource-level permissions)');
      }
      const answer = MetricDataAnswer.safeParse(raw);
      if (!answer.success) {
        const issue = answer.error.issues[0]!;
        throw new StackError(`${stack.name}: CloudWatch GetMetricData answered in an unexpected shape: ${issue.path.join('.')}: ${issue.message}`);
      }
      for (const r of answer.data.MetricDataResults ?? []) {
        if (r.StatusCode === 'Forbidden' || r.StatusCode === 'InternalError') {
          const q = queries.find((x) => x.Id === r.Id);
          throw new StackError(`${stack.name}: CloudWatch could not answer ${q?.Label ?? r.Id} (${r.StatusCode}${r.Messages?.length ? `: ${r.Messages.map((m) => m.Value ?? m.Code).join('; ')}` : ''})`);
        }
        results.push({ Id: r.Id, Timestamps: r.Timestamps ?? [], Values: r.Values ?? [] });
      }
      NextToken = answer.data.NextToken;
    } while (NextToken);
  } finally {
    cw.destroy();
  }
  const k: StackKpis = { ...summariseCloudWatch(queries, results), window: { since: since.toISOString(), until: until.toISOString() } };
  if (o.json) {
    console.log(JSON.stringify(k, null, 2));
    return 0;
  }
  console.log(`KPIs of stack ${stack.name} (${stack.region}), CloudWatch namespace ${METRICS_NAMESPACE}, last ${o.sinceLabel}: ${k.window.since} → ${k.window.until}`);
  printKpis(k);
  return 0;
}
