/**
 * Read API behind API Gateway (REST, proxy integration; IAM-authorised in AWS, open on loopback in
 * local mode):
 *   GET /runs/{runId}                 → the run: status, plan, steps, approvals, exceptions, evidence
 *   GET /runs?employeeId=…            → { runs: [...] } (summaries, oldest first)
 *   GET /exceptions[?status=open|resolved] → { exceptions: [...] }
 *
 * Never returned: Step Functions task tokens (they would let a reader decide an approval) and
 * the raw HR payload (its hash is here; the payload itself is in the evidence bundle).
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { AppDeps } from '#app/ports';
import type { ApprovalRecord, RunRecord } from '#core/ledger';
import { processDeps, type DepsProvider } from './deps.ts';
import { json, jsonApiHandler, jsonError, type ApiHandler } from './json-api.ts';

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const EMPLOYEE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A run as listed: what it is and where it stands. */
export function runSummary(run: RunRecord) {
  return {
    runId: run.runId,
    employeeId: run.employeeId,
    eventId: run.eventId,
    eventType: run.eventType,
    lifecycle: run.lifecycle,
    status: run.status,
    ...(run.statusReason ? { statusReason: run.statusReason } : {}),
    ...(run.supersededBy ? { supersededBy: run.supersededBy } : {}),
    effectiveAt: run.effectiveAt,
    occurredAt: run.occurredAt,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
  };
}

/** An approval without its task token. */
export function publicApproval(a: ApprovalRecord): Omit<ApprovalRecord, 'taskToken'> {
  const { taskToken: _secret, ...rest } = a;
  return rest;
}

async function runDetail(app: AppDeps, runId: string): Promise<APIGatewayProxyResult> {
  if (!RUN_ID.test(runId)) return jsonError(404, 'not_found', `run ${JSON.stringify(runId.slice(0, 140))} not found`);
  const run = await app.ledger.getRun(runId);
  if (!run) return jsonError(404, 'not_found', `run ${runId} not found`);
  const [steps, approvals, exceptions] = await Promise.all([
    app.ledger.listSteps(runId),
    app.ledger.listApprovals(runId),
    app.ledger.listExceptions({ runId }),
  ]);
  return json(200, {
    ...runSummary(run),
    idempotencyKey: run.idempotencyKey,
    eventHash: run.eventHash,
    mappingVersion: run.mappingVersion,
    ...(run.enqueuedAt ? { enqueuedAt: run.enqueuedAt } : {}),
    ...(run.executionName ? { executionName: run.executionName } : {}),
    timeline: run.timeline ?? [],
    plan: run.plan ?? null,
    steps,
    approvals: approvals.map(publicApproval),
    exceptions,
    reconciliation: run.reconciliation ?? null,
    kpis: run.kpis ?? null,
    evidence: run.evidence ?? null,
  });
}

function query(event: APIGatewayProxyEvent, name: string): string | undefined {
  return event.queryStringParameters?.[name] ?? undefined;
}

async function route(app: AppDeps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const method = (event.httpMethod ?? '').toUpperCase();
  if (method !== 'GET') return jsonError(405, 'method_not_allowed', 'the read API only answers GET', {}, { Allow: 'GET' });
  const path = (event.path ?? '').replace(/\/+$/, '');

  const runId = event.pathParameters?.runId ?? runIdFromPath(path);
  if (runId !== undefined) return runDetail(app, runId);

  if (event.resource === '/runs' || path.endsWith('/runs')) {
    const employeeId = query(event, 'employeeId');
    if (!employeeId) return jsonError(400, 'missing_parameter', 'employeeId query parameter is required');
    if (!EMPLOYEE_ID.test(employeeId)) return jsonError(400, 'invalid_parameter', 'employeeId: letters, digits, dot, dash and underscore only');
    const runs = await app.ledger.listRunsByEmployee(employeeId);
    return json(200, { runs: runs.map(runSummary) });
  }

  if (event.resource === '/exceptions' || path.endsWith('/exceptions')) {
    const status = query(event, 'status');
    if (status !== undefined && status !== 'open' && status !== 'resolved') {
      return jsonError(400, 'invalid_parameter', 'status: must be one of open, resolved');
    }
    const exceptions = await app.ledger.listExceptions(status ? { status } : {});
    return json(200, { exceptions });
  }
  return jsonError(404, 'not_found', 'no such route');
}

function runIdFromPath(path: string): string | undefined {
  const m = /\/runs\/([^/]+)$/.exec(path);
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return '';
  }
}

export function createReadApiHandler(deps: DepsProvider): ApiHandler {
  return jsonApiHandler('read-api', deps, route);
}

export const handler = createReadApiHandler(processDeps);
