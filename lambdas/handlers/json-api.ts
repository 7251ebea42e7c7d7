/**
 * The JSON side of API Gateway (REST API, Lambda proxy integration, v1 events) shared by the
 * ingest and read routes: header lookup, the raw body as bytes, JSON results with a stable error
 * shape `{ error: '<code>', message, … }`, and the middy + Powertools Logger wrapper every entry
 * uses. An unexpected error becomes a 500 whose body says nothing about the cause (the log does,
 * by error name and message only).
 */
import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import type { AppDeps } from '#app/ports';
import type { HeaderSource } from '#core/signature';
import type { DepsProvider } from './deps.ts';
import { logger } from './logger.ts';

export type ApiHandler = (event: APIGatewayProxyEvent, context?: Context) => Promise<APIGatewayProxyResult>;

const JSON_HEADERS = {
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
} as const;

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyResult {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

/** `{ error, message }` plus any extra fields (`issues`, `reason`). */
export function jsonError(statusCode: number, error: string, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return json(statusCode, { error, message, ...extra }, headers);
}

/** Case-insensitive single header; a header repeated with different values counts as absent. */
export function header(event: APIGatewayProxyEvent, name: string): string | undefined {
  const wanted = name.toLowerCase();
  const multi = Object.entries(event.multiValueHeaders ?? {}).find(([k, v]) => k.toLowerCase() === wanted && v !== undefined)?.[1];
  if (multi && multi.length > 0) return multi.every((v) => v === multi[0]) ? multi[0] : undefined;
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === wanted && v !== undefined) return v;
  return undefined;
}

/** All request headers for the signature verifiers (repeated headers kept as lists). */
export function headerSource(event: APIGatewayProxyEvent): HeaderSource {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(event.headers ?? {})) if (v !== undefined) out[k.toLowerCase()] = [v];
  for (const [k, v] of Object.entries(event.multiValueHeaders ?? {})) if (v !== undefined && v.length) out[k.toLowerCase()] = [...v];
  return out;
}

/** The media type (lower case, no parameters) and its charset parameter, if any. */
export function contentType(event: APIGatewayProxyEvent): { type: string; charset?: string } | undefined {
  const raw = header(event, 'content-type');
  if (!raw) return undefined;
  const [type, ...params] = raw.split(';');
  const charset = params
    .map((p) => p.trim().split('='))
    .find(([k]) => k?.trim().toLowerCase() === 'charset')?.[1]
    ?.trim()
    .replace(/^"(.*)"$/, '$1')
    .toLowerCase();
  return { type: type!.trim().toLowerCase(), ...(charset ? { charset } : {}) };
}

/** True for `application/json`, with no charset or a UTF-8 one (JSON is UTF-8, RFC 8259). */
export function isJsonContentType(event: APIGatewayProxyEvent): boolean {
  const ct = contentType(event);
  return ct?.type === 'application/json' && (ct.charset === undefined || ct.charset === 'utf-8' || ct.charset === 'utf8');
}

export class BodyTooLarge extends Error {
  override name = 'BodyTooLarge';
}

/**
 * The body exactly as the client sent it (API Gateway base64-encodes binary bodies). Throws
 * BodyTooLarge past `maxBytes` without decoding more than needed to tell.
 */
export function rawBody(event: APIGatewayProxyEvent, maxBytes: number): Buffer {
  const body = event.body ?? '';
  if (event.isBase64Encoded) {
    // 4 base64 characters carry 3 bytes: anything longer than this cannot fit.
    if (body.length > Math.ceil(maxBytes / 3) * 4 + 4) throw new BodyTooLarge();
    const bytes = Buffer.from(body, 'base64');
    if (bytes.length > maxBytes) throw new BodyTooLarge();
    return bytes;
  }
  if (body.length > maxBytes || Buffer.byteLength(body, 'utf8') > maxBytes) throw new BodyTooLarge();
  return Buffer.from(body, 'utf8');
}

/**
 * How deeply a JSON text nests (objects and arrays), found in one pass without parsing, so a
 * hostile body cannot make the parser or a recursive validator use unbounded stack. Stops
 * counting once past `limit`.
 */
export function exceedsJsonDepth(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * Wraps a route function: deps, middy with the Powertools Logger context, route keys on the log,
 * and a JSON 500 for anything the route did not map itself.
 */
export function jsonApiHandler(
  route: string,
  deps: DepsProvider,
  fn: (app: AppDeps, event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>,
): ApiHandler {
  const run = async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
    logger.appendKeys({ route, method: event.httpMethod });
    try {
      return await fn(await deps(), event);
    } catch (e) {
      const err = e as Error;
      logger.error('request failed', { errorName: err?.name, errorMessage: err?.message });
      return jsonError(500, 'internal_error', 'the request could not be completed; retry later');
    } finally {
      logger.removeKeys(['route', 'method']);
    }
  };
  const wrapped = middy<APIGatewayProxyEvent, APIGatewayProxyResult>(run).use(injectLambdaContext(logger, { resetKeys: true }));
  return (event, context) => wrapped(event, context ?? ({} as Context));
}
