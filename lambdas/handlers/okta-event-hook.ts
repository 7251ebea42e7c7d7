/**
 * `GET | POST /okta/events`: Okta's event hook (https://developer.okta.com/docs/concepts/event-hooks/).
 *
 * Authentication: Okta sends the header configured on the hook ("Authentication field" /
 * "Authentication secret", `channel.config.authScheme` in the API) on *every* request it makes
 * to the endpoint — the one-time verification GET as well as the event POSTs. So both methods
 * require `Authorization` to equal one of the `oktaHook` secret values (several during a
 * rotation), compared in constant time. Answering the challenge without it would let anybody
 * who learns the URL verify a hook of their own org against this endpoint.
 *
 * - GET: echoes `X-Okta-Verification-Challenge` as `{ "verification": "<challenge>" }` (200).
 * - POST: validates the envelope, enqueues the events that may be drift (`acceptOktaEvents`)
 *   and answers 200 with an empty body, as Okta expects. Okta waits at most 3 s for the answer
 *   and retries once, so the handler does no more than a few ledger reads and queue sends per
 *   event; deduplication on the event's `uuid` makes Okta's retry harmless.
 *
 * `JML_OKTA_SELF_ACTOR_IDS` (comma-separated): the Okta principals jml acts as (the API token's
 * user id, or the OAuth service app's client id), whose own changes are not drift.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { acceptOktaEvents, type OktaEventsOptions } from '#app/ingest';
import type { AppDeps } from '#app/ports';
import { ValidationError } from '#core/errors';
import { processDeps, type DepsProvider } from './deps.ts';
import { BodyTooLarge, exceedsJsonDepth, header, isJsonContentType, json, jsonApiHandler, jsonError, rawBody, type ApiHandler } from './json-api.ts';
import { logger } from './logger.ts';

/** An Okta delivery holds a batch of System Log events; a few KB each. */
export const MAX_OKTA_HOOK_BYTES = 1024 * 1024;
export const OKTA_CHALLENGE_HEADER = 'X-Okta-Verification-Challenge';
const MAX_CHALLENGE_LENGTH = 1024;
const MAX_JSON_DEPTH = 16;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Constant-time: every configured value is compared (as SHA-256 digests, so lengths are equal
 * and say nothing), and the results are folded without an early return.
 */
export function authorizationMatches(provided: string | undefined, secrets: readonly string[]): boolean {
  const usable = secrets.filter((s) => s.length > 0);
  if (usable.length === 0) throw new Error('okta event hook: no oktaHook secret configured');
  if (provided === undefined || provided === '') return false;
  const p = digest(provided);
  let matched = 0;
  for (const s of usable) matched |= timingSafeEqual(p, digest(s)) ? 1 : 0;
  return matched === 1;
}

async function route(app: AppDeps, event: APIGatewayProxyEvent, options: OktaEventsOptions): Promise<APIGatewayProxyResult> {
  const method = (event.httpMethod ?? '').toUpperCase();
  if (method !== 'GET' && method !== 'POST') return jsonError(405, 'method_not_allowed', 'use GET (verification) or POST (events)', {}, { Allow: 'GET, POST' });

  if (!authorizationMatches(header(event, 'authorization'), await app.secrets.get('oktaHook'))) {
    logger.warn('okta event hook: authorization refused', { method });
    return jsonError(401, 'unauthorized', 'Authorization header does not match the event hook secret');
  }

  if (method === 'GET') {
    const challenge = header(event, OKTA_CHALLENGE_HEADER);
    if (!challenge) return jsonError(400, 'missing_challenge', `${OKTA_CHALLENGE_HEADER} header is missing`);
    if (challenge.length > MAX_CHALLENGE_LENGTH) return jsonError(400, 'invalid_challenge', `${OKTA_CHALLENGE_HEADER} is longer than ${MAX_CHALLENGE_LENGTH} characters`);
    logger.info('okta event hook verified');
    return json(200, { verification: challenge });
  }

  if (!isJsonContentType(event)) return jsonError(415, 'unsupported_media_type', 'Content-Type must be application/json (UTF-8)');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(rawBody(event, MAX_OKTA_HOOK_BYTES));
  } catch (e) {
    if (e instanceof BodyTooLarge) return jsonError(413, 'payload_too_large', `body must be at most ${MAX_OKTA_HOOK_BYTES} bytes`);
    return jsonError(400, 'invalid_json', 'body is not valid JSON');
  }
  if (exceedsJsonDepth(text, MAX_JSON_DEPTH)) return jsonError(400, 'invalid_json', `body nests objects or arrays deeper than ${MAX_JSON_DEPTH} levels`);
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    return jsonError(400, 'invalid_json', 'body is not valid JSON');
  }
  try {
    const r = await acceptOktaEvents(app, envelope, options);
    logger.info('okta events received', { received: r.received, enqueued: r.enqueued.length, skipped: r.skipped.length });
    return { statusCode: 200, headers: { 'Cache-Control': 'no-store' }, body: '' };
  } catch (e) {
    if (e instanceof ValidationError) {
      return jsonError(400, 'invalid_event', 'not an Okta event hook delivery; each issue names its field', { issues: e.issues });
    }
    throw e;
  }
}

export function createOktaEventHookHandler(deps: DepsProvider, options: OktaEventsOptions = {}): ApiHandler {
  return jsonApiHandler('okta-events', deps, (app, event) => route(app, event, options));
}

const selfActorIds = (process.env.JML_OKTA_SELF_ACTOR_IDS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

export const handler = createOktaEventHookHandler(processDeps, { selfActorIds });
