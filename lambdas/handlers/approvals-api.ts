/**
 * `GET | HEAD | POST /approvals/{id}` behind API Gateway (REST API, proxy integration, v1 events).
 *
 * Thin: parse the request, call the use case, return its page. GET and HEAD never change state
 * (mail scanners open every link); POST takes an `application/x-www-form-urlencoded` form with
 * `t`, `decision`, `rationale` and `csrf`. The caller's IP and user agent come from the request
 * context API Gateway fills in (not from headers a client could set).
 */
import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { decideApproval, plainResult, showApproval } from '#app/approvals';
import type { HttpResponse } from '#app/approval-views';
import { processDeps, type DepsProvider } from './deps.ts';
import { logger } from './logger.ts';

/** Largest form accepted: t (< 512), csrf, decision and a 1000-character rationale, percent-encoded, fit easily. */
export const MAX_FORM_BYTES = 16 * 1024;

export type ApprovalsApiHandler = (event: APIGatewayProxyEvent, context?: Context) => Promise<APIGatewayProxyResult>;

function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === wanted && v !== undefined) return v;
  return undefined;
}

/** `{id}` from the path parameters, or from the path itself when the route is a catch-all. */
function approvalIdOf(event: APIGatewayProxyEvent): string {
  const fromParams = event.pathParameters?.id;
  if (fromParams) return fromParams;
  const m = /\/approvals\/([^/?#]+)\/?$/.exec(event.path ?? '');
  if (!m) return '';
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return '';
  }
}

function toResult(r: HttpResponse, extraHeaders: Record<string, string> = {}): APIGatewayProxyResult {
  return { statusCode: r.statusCode, headers: { ...r.headers, ...extraHeaders }, body: r.body };
}

export function createApprovalsApiHandler(deps: DepsProvider): ApprovalsApiHandler {
  const run = async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    const app = await deps();
    const method = (event.httpMethod ?? '').toUpperCase();
    const approvalId = approvalIdOf(event);
    logger.appendKeys({ route: 'approvals', approvalId, method });
    const refuse = async (status: number, reason: string, extra: Record<string, string> = {}) =>
      toResult(plainResult(app, await app.policy(), status, reason, method === 'HEAD' ? 'HEAD' : 'GET'), extra);
    try {
      if (method === 'GET' || method === 'HEAD') {
        return toResult(await showApproval(app, { approvalId, t: event.queryStringParameters?.t ?? undefined, method }));
      }
      if (method !== 'POST') return await refuse(405, `${method || 'This method'} is not supported here.`, { Allow: 'GET, HEAD, POST' });

      const type = (header(event, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/x-www-form-urlencoded') {
        return await refuse(415, 'The decision must be sent from the confirmation page form.');
      }
      const raw = event.body ?? '';
      const body = event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
      if (Buffer.byteLength(body, 'utf8') > MAX_FORM_BYTES) return await refuse(413, 'The form is too large. Shorten the rationale and try again.');
      const form = new URLSearchParams(body);
      const field = (name: string) => form.get(name) ?? undefined;
      const identity = event.requestContext?.identity;
      return toResult(
        await decideApproval(app, {
          approvalId,
          form: { t: field('t'), decision: field('decision'), rationale: field('rationale'), csrf: field('csrf') },
          ...(identity?.sourceIp ? { sourceIp: identity.sourceIp } : {}),
          ...((identity?.userAgent ?? header(event, 'user-agent')) ? { userAgent: (identity?.userAgent ?? header(event, 'user-agent'))! } : {}),
        }),
      );
    } catch (e) {
      const err = e as Error;
      logger.error('approval request failed', { errorName: err.name, errorMessage: err.message });
      return await refuse(500, 'Something went wrong on our side; nothing was decided unless a confirmation page said so. Try the link again in a few minutes.');
    } finally {
      logger.removeKeys(['route', 'approvalId', 'method']);
    }
  };
  const wrapped = middy<APIGatewayProxyEvent, APIGatewayProxyResult>(run).use(injectLambdaContext(logger, { resetKeys: true }));
  return (event, context) => wrapped(event, context ?? ({} as Context));
}

export const handler = createApprovalsApiHandler(processDeps);
