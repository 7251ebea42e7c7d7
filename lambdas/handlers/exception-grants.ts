/**
 * The operator's write API for exceptions behind API Gateway (REST, proxy integration;
 * IAM-authorised in AWS, loopback only in local mode): exception grants, and resolving an
 * exception (which closes its ITSM ticket when it has one).
 *
 *   POST /exceptions/{exceptionId}/resolve  { resolution, resolvedBy }
 *        → 200 the resolved exception (with its ticket) · 404 unknown · 409 already resolved
 *
 *   POST /exception-grants            { employeeId, bundle, reason, days | until, requestedBy }
 *        → 202 { grantId, status, …, approver }   (201-style creation, decided later by link)
 *        → 200 with `duplicate: true` for the same request made earlier today
 *        → 400 field-level issues · 404 unknown person or bundle · 409 not allowed (why)
 *        → 413 / 415 for an oversized or non-JSON body
 *   GET  /exception-grants/{grantId}  → 200 the grant record (status, approval, evidence) · 404
 *
 * The caller's IAM principal (API Gateway's `requestContext.identity.userArn`) is recorded on the
 * grant next to the operator it names in `requestedBy`.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import * as z from 'zod';
import { getExceptionGrant, GrantNotFound, GrantRefused, requestExceptionGrant, type ExceptionGrantRecord } from '#app/exception-grants';
import { resolveException } from '#app/exceptions';
import type { AppDeps } from '#app/ports';
import { ValidationError } from '#core/errors';
import { ConditionFailed } from '#core/ledger';
import { formatIssues } from '#core/validation';
import { processDeps, type DepsProvider } from './deps.ts';
import { BodyTooLarge, exceedsJsonDepth, isJsonContentType, json, jsonApiHandler, jsonError, rawBody, type ApiHandler } from './json-api.ts';

/** A grant request is a few hundred bytes; anything near this is not one. */
export const MAX_GRANT_BODY_BYTES = 8 * 1024;
const MAX_JSON_DEPTH = 4;

function grantIdFrom(event: APIGatewayProxyEvent): string | undefined {
  const fromParams = event.pathParameters?.grantId ?? event.pathParameters?.id;
  if (fromParams) return fromParams;
  const m = /\/exception-grants\/([^/?#]+)\/?$/.exec(event.path ?? '');
  if (!m) return undefined;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return '';
  }
}

function view(grant: ExceptionGrantRecord) {
  return {
    grantId: grant.grantId,
    employeeId: grant.employeeId,
    bundle: grant.bundle,
    reason: grant.reason,
    requestedBy: grant.requestedBy,
    requestedAt: grant.requestedAt,
    expiresAt: grant.expiresAt,
    status: grant.status,
    approver: grant.approver,
    approvalId: grant.approvalId,
    ...(grant.decidedAt ? { decidedAt: grant.decidedAt } : {}),
    ...(grant.rationale ? { rationale: grant.rationale } : {}),
    ...(grant.appliedAt ? { appliedAt: grant.appliedAt } : {}),
    ...(grant.removedAt ? { removedAt: grant.removedAt } : {}),
    evidence: grant.evidence ?? [],
  };
}

/** The JSON body of an operator request, or the 4xx that says why there is none. */
function readJson(event: APIGatewayProxyEvent): { body: unknown } | { error: APIGatewayProxyResult } {
  if (!isJsonContentType(event)) return { error: jsonError(415, 'unsupported_media_type', 'Content-Type must be application/json (UTF-8)') };
  let text: string;
  try {
    text = rawBody(event, MAX_GRANT_BODY_BYTES).toString('utf8');
  } catch (e) {
    if (e instanceof BodyTooLarge) return { error: jsonError(413, 'payload_too_large', `body must be at most ${MAX_GRANT_BODY_BYTES} bytes`) };
    throw e;
  }
  if (exceedsJsonDepth(text, MAX_JSON_DEPTH)) return { error: jsonError(400, 'invalid_json', `body nests deeper than ${MAX_JSON_DEPTH} levels`) };
  try {
    return { body: JSON.parse(text) };
  } catch {
    return { error: jsonError(400, 'invalid_json', 'body is not valid JSON') };
  }
}

const ResolveRequest = z
  .object({
    resolution: z.string().trim().min(1, 'say how the exception was resolved').max(2000),
    resolvedBy: z.string().trim().min(1, 'name who resolved it').max(200),
  })
  .strict();

const RESOLVE_PATH = /\/exceptions\/([^/?#]+)\/resolve\/?$/;

async function resolve(app: AppDeps, event: APIGatewayProxyEvent, exceptionId: string): Promise<APIGatewayProxyResult> {
  const read = readJson(event);
  if ('error' in read) return read.error;
  const parsed = ResolveRequest.safeParse(read.body);
  if (!parsed.success) return jsonError(400, 'invalid_request', 'the request is not valid; each issue names its field', { issues: formatIssues(parsed.error) });
  const caller = event.requestContext?.identity?.userArn ?? undefined;
  try {
    const resolved = await resolveException(app, {
      exceptionId,
      resolution: parsed.data.resolution,
      resolvedBy: caller ? `${parsed.data.resolvedBy} (${caller})` : parsed.data.resolvedBy,
    });
    const { evidence: _evidence, ...view } = resolved;
    return json(200, view);
  } catch (e) {
    if (e instanceof ConditionFailed) {
      return /not found/.test(e.message) ? jsonError(404, 'not_found', e.message) : jsonError(409, 'already_resolved', e.message);
    }
    throw e;
  }
}

async function create(app: AppDeps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const read = readJson(event);
  if ('error' in read) return read.error;
  const body = read.body;
  try {
    const caller = event.requestContext?.identity?.userArn ?? undefined;
    const { grant, duplicate } = await requestExceptionGrant(app, body, caller ? { caller } : {});
    return json(duplicate ? 200 : 202, { ...view(grant), duplicate });
  } catch (e) {
    if (e instanceof ValidationError) return jsonError(400, 'invalid_request', 'the request is not valid; each issue names its field', { issues: e.issues });
    if (e instanceof GrantNotFound) return jsonError(404, 'not_found', e.message);
    if (e instanceof GrantRefused) return jsonError(409, 'refused', e.message);
    throw e;
  }
}

export function createExceptionGrantsHandler(deps: DepsProvider): ApiHandler {
  return jsonApiHandler('exception-grants', deps, async (app, event) => {
    const method = (event.httpMethod ?? '').toUpperCase();
    const fromPath = RESOLVE_PATH.exec(event.path ?? '')?.[1];
    if (event.pathParameters?.exceptionId !== undefined || fromPath !== undefined) {
      if (method !== 'POST') return jsonError(405, 'method_not_allowed', 'use POST to resolve an exception', {}, { Allow: 'POST' });
      // API Gateway hands path parameters over decoded; a bare path is decoded here.
      let id = event.pathParameters?.exceptionId;
      try {
        id ??= decodeURIComponent(fromPath!);
      } catch {
        return jsonError(404, 'not_found', 'exception not found');
      }
      return resolve(app, event, id);
    }
    const grantId = grantIdFrom(event);
    if (grantId === undefined) {
      if (method !== 'POST') return jsonError(405, 'method_not_allowed', 'use POST to request an exception grant', {}, { Allow: 'POST' });
      return create(app, event);
    }
    if (method !== 'GET') return jsonError(405, 'method_not_allowed', 'use GET to read an exception grant', {}, { Allow: 'GET' });
    const grant = await getExceptionGrant(app, grantId);
    if (!grant) return jsonError(404, 'not_found', `exception grant ${JSON.stringify(grantId.slice(0, 64))} not found`);
    return json(200, view(grant));
  });
}

export const handler = createExceptionGrantsHandler(processDeps);
