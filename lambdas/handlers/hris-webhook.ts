/**
 * `POST /hris/events` (the canonical HRIS contract, DESIGN.md) and `POST /hris/bamboohr`
 * (BambooHR's Field-Based webhook) behind API Gateway (REST API, proxy integration, v1 events).
 *
 * Checks run cheapest-first and in an order that never trusts an unauthenticated body:
 *   415 Content-Type is not application/json (UTF-8)
 *   413 body over 256 KiB
 *   401 signature or timestamp refused (checked on the raw bytes, before any JSON parsing)
 *   400 not JSON, nested too deeply, or an invalid event (`{ error: 'invalid_event', issues }`,
 *       each issue naming its field)
 *   202 `{ runId, idempotencyKey, duplicate }` (BambooHR: `{ runs: [...], ignored: [...] }`)
 * Nothing is recorded or enqueued for a rejected request. A 5xx means the sender should retry
 * with the same body: a retry of an accepted event answers `duplicate: true`, and finishes the
 * enqueue if the first attempt stopped between recording and enqueueing.
 *
 * Secrets come from `secrets.get(…)` on every request (the Secrets port caches them; several
 * values during a rotation, and a request verifies against any of them).
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { acceptHrEvent, type BambooHrInput } from '#app/ingest';
import type { AppDeps } from '#app/ports';
import { BAMBOOHR_SCHEME, verifyBambooHr } from '#core/bamboohr';
import { ValidationError } from '#core/errors';
import { MAX_EVENT_BYTES } from '#core/hr-event';
import { CANONICAL_SCHEME, DEFAULT_TOLERANCE_SECONDS, describeSignatureFailure, verifyCanonical, type SignatureScheme, type VerifyResult } from '#core/signature';
import { processDeps, type DepsProvider } from './deps.ts';
import {
  BodyTooLarge,
  exceedsJsonDepth,
  headerSource,
  isJsonContentType,
  json,
  jsonApiHandler,
  jsonError,
  rawBody,
  type ApiHandler,
} from './json-api.ts';
import { logger } from './logger.ts';

/** Deepest nesting accepted. Canonical events nest 2 levels, BambooHR deliveries 5. */
export const MAX_JSON_DEPTH = 16;

export interface BambooHrWebhookOptions {
  /** This BambooHR account's field map and employment statuses. */
  mapping?: BambooHrInput['mapping'];
}

interface Route {
  name: string;
  scheme: SignatureScheme;
  verify(app: AppDeps, body: Buffer, event: APIGatewayProxyEvent): Promise<VerifyResult>;
  accept(app: AppDeps, body: Buffer, payload: unknown): Promise<APIGatewayProxyResult>;
}

const nowSeconds = (app: AppDeps) => Math.floor(app.clock.now().getTime() / 1000);

async function ingest(route: Route, app: AppDeps, event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  if ((event.httpMethod ?? '').toUpperCase() !== 'POST') {
    return jsonError(405, 'method_not_allowed', 'use POST', {}, { Allow: 'POST' });
  }
  if (!isJsonContentType(event)) {
    return jsonError(415, 'unsupported_media_type', 'Content-Type must be application/json (UTF-8)');
  }
  let body: Buffer;
  try {
    body = rawBody(event, MAX_EVENT_BYTES);
  } catch (e) {
    if (e instanceof BodyTooLarge) return jsonError(413, 'payload_too_large', `body must be at most ${MAX_EVENT_BYTES} bytes`);
    throw e;
  }

  const verified = await route.verify(app, body, event);
  if (!verified.ok) {
    logger.warn('webhook signature refused', { reason: verified.reason });
    return jsonError(401, 'invalid_signature', describeSignatureFailure(verified.reason, route.scheme, DEFAULT_TOLERANCE_SECONDS), {
      reason: verified.reason,
    });
  }

  let payload: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
    if (exceedsJsonDepth(text, MAX_JSON_DEPTH)) {
      return jsonError(400, 'invalid_json', `body nests objects or arrays deeper than ${MAX_JSON_DEPTH} levels`);
    }
    payload = JSON.parse(text);
  } catch {
    return jsonError(400, 'invalid_json', 'body is not valid JSON');
  }

  try {
    return await route.accept(app, body, payload);
  } catch (e) {
    if (e instanceof ValidationError) {
      logger.info('webhook event refused', { issues: e.issues.length });
      return jsonError(400, 'invalid_event', 'the event is not valid; each issue names its field', { issues: e.issues });
    }
    throw e;
  }
}

/** `POST /hris/events`: the canonical contract, signed with `hrisWebhook`. */
export function createHrisWebhookHandler(deps: DepsProvider): ApiHandler {
  const route: Route = {
    name: 'hris-events',
    scheme: CANONICAL_SCHEME,
    async verify(app, body, event) {
      return verifyCanonical({ secret: await app.secrets.get('hrisWebhook'), rawBody: body, headers: headerSource(event), nowSeconds: nowSeconds(app) });
    },
    async accept(app, body, payload) {
      const r = await acceptHrEvent(app, { source: 'canonical', rawBody: body, payload });
      logger.info('hr event accepted', { runId: r.runId, employeeId: r.employeeId, duplicate: r.duplicate });
      return json(202, { runId: r.runId, idempotencyKey: r.idempotencyKey, duplicate: r.duplicate });
    },
  };
  return jsonApiHandler(route.name, deps, (app, event) => ingest(route, app, event));
}

/** `POST /hris/bamboohr`: a BambooHR Field-Based webhook, signed with the webhook's private key (`bambooHr`). */
export function createBambooHrWebhookHandler(deps: DepsProvider, options: BambooHrWebhookOptions = {}): ApiHandler {
  const route: Route = {
    name: 'hris-bamboohr',
    scheme: BAMBOOHR_SCHEME,
    async verify(app, body, event) {
      return verifyBambooHr({ privateKey: await app.secrets.get('bambooHr'), rawBody: body, headers: headerSource(event), nowSeconds: nowSeconds(app) });
    },
    async accept(app, body, payload) {
      const r = await acceptHrEvent(app, { source: 'bamboohr', rawBody: body, payload, ...(options.mapping ? { mapping: options.mapping } : {}) });
      for (const run of r.runs) logger.info('hr event accepted', { runId: run.runId, employeeId: run.employeeId, duplicate: run.duplicate });
      for (const g of r.ignored) logger.info('bamboohr entry ignored', { entry: g.index, action: g.action });
      return json(202, {
        runs: r.runs.map((run) => ({ runId: run.runId, idempotencyKey: run.idempotencyKey, duplicate: run.duplicate, employeeId: run.employeeId })),
        ignored: r.ignored,
      });
    },
  };
  return jsonApiHandler(route.name, deps, (app, event) => ingest(route, app, event));
}

export const handler = createHrisWebhookHandler(processDeps);
export const bambooHrHandler = createBambooHrWebhookHandler(processDeps);
