/**
 * Exception grants behind API Gateway (REST, proxy integration; IAM-authorised in AWS, loopback
 * only in local mode):
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
import { getExceptionGrant, GrantNotFound, GrantRefused, requestExceptionGrant, type ExceptionGrantRecord } from '#app/exception-grants';
import type { AppDeps } from '#app/ports';
import { ValidationError } from '#core/errors';
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

async function create(app: AppDeps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  if (!isJsonContentType(event)) return jsonError(415, 'unsupported_media_type', 'Content-Type must be application/json (UTF-8)');
  let text: string;
  try {
    text = rawBody(event, MAX_GRANT_BODY_BYTES).toString('utf8');
  } catch (e) {
    if (e instanceof BodyTooLarge) return jsonError(413, 'payload_too_large', `body must be at most ${MAX_GRANT_BODY_BYTES} bytes`);
    throw e;
  }
  if (exceedsJsonDepth(text, MAX_JSON_DEPTH)) return jsonError(400, 'invalid_json', `body nests deeper than ${MAX_JSON_DEPTH} levels`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return jsonError(400, 'invalid_json', 'body is not valid JSON');
  }
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
