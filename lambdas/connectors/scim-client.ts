/**
 * HTTP for the SCIM connector: Node's built-in fetch with a per-attempt timeout, every attempt
 * through the connector's RateGovernor, bounded retries, and the typed errors of `#core/errors`.
 *
 * Retries: 5xx (except 501), timeouts and connection resets back off exponentially with jitter —
 * except a write the caller marks `resendUnanswered: false`, which is not sent again when its
 * answer is lost (the caller reads back first, see `UnansweredWrite`);
 * 429 waits for `Retry-After` (via the governor, so concurrent calls wait too) when the wait is
 * short enough to spend inside one Lambda invocation, and otherwise throws TargetThrottled for the
 * workflow to retry later. The bearer token is only ever in the Authorization header: it is never
 * in an error message, and a target that echoes it back has it redacted.
 */
import type { z } from 'zod';
import { AccountNotFound, TargetConflict, TargetRejected, TargetThrottled, TargetUnavailable } from '#core/errors';
import { RateGovernor, type RateObservation } from './governor.ts';
import { SCIM_CONTENT_TYPE, scimErrorSchema } from './scim-wire.ts';

export interface ScimClientOptions {
  target: string;
  baseUrl: string;
  token: string;
  maxConcurrent: number;
  requestTimeoutMs: number;
  maxRetries: number;
  retryBaseDelayMs: number;
  /** Longest `Retry-After` waited in-process; longer ones throw TargetThrottled. */
  maxRetryAfterSeconds: number;
}

export interface CallOptions<T> {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Validates a 2xx body. */
  schema?: z.ZodType<T>;
  /** What the body is, for messages ("SCIM User"). */
  what?: string;
  /** Request ids of every attempt are appended here (the change record's evidence). */
  trace: string[];
  ifMatch?: string;
  /**
   * False for a write that must not be sent twice blind: when no answer arrives (timeout, reset)
   * the call throws `UnansweredWrite` at once, and the caller reads the target to learn whether
   * the write took effect before sending it again.
   */
  resendUnanswered?: boolean;
}

/**
 * A write sent without an answer (timeout, connection closed): it may or may not have taken
 * effect. Its name stays `TargetUnavailable` (the workflow retries on that name).
 */
export class UnansweredWrite extends TargetUnavailable {
  override readonly name = 'TargetUnavailable';
}

export interface ScimReply<T> {
  status: number;
  body: T;
  etag?: string;
}

type Attempt =
  | { kind: 'response'; status: number; headers: Headers; text: string }
  | { kind: 'network'; timedOut: boolean; reason: string };

const REQUEST_ID_HEADERS = ['x-request-id', 'request-id', 'x-correlation-id', 'x-amzn-requestid'];

export class ScimClient {
  readonly governor: RateGovernor;
  private readonly baseUrl: string;
  /** Epoch ms before which the target asked us not to call (last Retry-After). */
  private blockedUntil = 0;

  constructor(private readonly options: ScimClientOptions) {
    this.governor = new RateGovernor({ maxConcurrent: options.maxConcurrent });
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  async call<T = unknown>(method: string, path: string, opts: CallOptions<T>): Promise<ScimReply<T>> {
    const { target, maxRetries, requestTimeoutMs } = this.options;
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const label = `${method} ${path}`;
    const headers: Record<string, string> = {
      Accept: `${SCIM_CONTENT_TYPE}, application/json`,
      Authorization: `Bearer ${this.options.token}`,
    };
    if (opts.body !== undefined) headers['Content-Type'] = SCIM_CONTENT_TYPE;
    if (opts.ifMatch) headers['If-Match'] = opts.ifMatch;
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);

    // A warm instance still under a long Retry-After fails fast instead of sleeping in the
    // governor past the invocation's timeout; the workflow retries after the wait.
    const blockedMs = this.blockedUntil - Date.now();
    if (blockedMs > this.options.maxRetryAfterSeconds * 1000) throw new TargetThrottled(target, Math.ceil(blockedMs / 1000));

    for (let attempt = 0; ; attempt += 1) {
      const attempts = attempt + 1;
      const outcome = await this.attempt(method, url, headers, payload);
      const retriesLeft = attempt < maxRetries;

      if (outcome.kind === 'network') {
        const what = outcome.timedOut ? `timed out after ${requestTimeoutMs} ms` : `failed (${outcome.reason})`;
        if (opts.resendUnanswered === false) throw new UnansweredWrite(target, `${label} ${what}: sent, no answer`);
        if (retriesLeft) {
          await sleep(this.backoff(attempt));
          continue;
        }
        throw new TargetUnavailable(target, `${label} ${what}; gave up after ${attempts} attempt${attempts > 1 ? 's' : ''}`);
      }

      const { status, headers: h, text } = outcome;
      const requestId = REQUEST_ID_HEADERS.map((n) => h.get(n)).find((v) => v);
      if (requestId) opts.trace.push(requestId);
      const retryAfter = parseRetryAfter(h.get('retry-after'), Date.now());

      if (status >= 200 && status < 300) return { status, body: this.parse(label, text, opts), etag: h.get('etag') ?? undefined };

      if (status === 429) {
        const wait = retryAfter ?? Math.ceil(this.backoff(attempt) / 1000);
        this.blockedUntil = Math.max(this.blockedUntil, Date.now() + wait * 1000);
        this.governor.throttled(Date.now() + wait * 1000);
        if (retriesLeft && wait <= this.options.maxRetryAfterSeconds) continue;
        throw new TargetThrottled(target, wait);
      }
      if (status >= 500 && status !== 501) {
        if (retriesLeft) {
          if (retryAfter !== undefined) this.governor.throttled(Date.now() + retryAfter * 1000);
          await sleep(this.backoff(attempt));
          continue;
        }
        throw new TargetUnavailable(target, `${label} answered HTTP ${status}${this.detail(text)}; gave up after ${attempts} attempt${attempts > 1 ? 's' : ''}`);
      }
      throw this.clientError(label, status, text, opts.what);
    }
  }

  private async attempt(method: string, url: URL, headers: Record<string, string>, payload: string | undefined): Promise<Attempt> {
    try {
      return await this.governor.run(async () => {
        const res = await fetch(url, {
          method,
          headers,
          body: payload,
          redirect: 'manual',
          signal: AbortSignal.timeout(this.options.requestTimeoutMs),
        });
        // Observed while this call still holds its slot: the governor discounts calls in flight.
        this.governor.observe(rateObservation(res.headers, Date.now()));
        // Reading the body is inside the timeout and the governor slot too.
        const text = await res.text();
        return { kind: 'response', status: res.status, headers: res.headers, text } as const;
      });
    } catch (err) {
      const e = err as { name?: string; cause?: { code?: string; message?: string } };
      const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError';
      return { kind: 'network', timedOut, reason: e.cause?.code ?? e.cause?.message ?? e.name ?? 'network error' };
    }
  }

  private parse<T>(label: string, text: string, opts: CallOptions<T>): T {
    if (!opts.schema) return (text ? safeJson(text) : undefined) as T;
    const json = text ? safeJson(text) : undefined;
    const result = opts.schema.safeParse(json);
    if (result.success) return result.data;
    const issues = result.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`)
      .join('; ');
    throw new TargetUnavailable(this.options.target, `${label} answered with an invalid ${opts.what ?? 'body'}: ${issues}`);
  }

  /** ` (scimType: detail)` from a SCIM error body, redacted; '' when there is none. */
  private detail(text: string): string {
    const parsed = scimErrorSchema.safeParse(safeJson(text));
    if (!parsed.success) return '';
    const { scimType, detail } = parsed.data;
    const msg = [scimType, detail].filter(Boolean).join(': ');
    return msg ? ` (${this.redact(msg)})` : '';
  }

  private clientError(label: string, status: number, text: string, what: string | undefined): Error {
    const { target } = this.options;
    const detail = this.detail(text);
    switch (status) {
      case 404:
        return new AccountNotFound(target, `${what ?? 'resource'} not found: ${label} answered 404${detail}`);
      case 409:
        return new TargetConflict(target, `${label} answered 409${detail}`);
      case 412:
        return new TargetConflict(target, `${label} answered 412: the resource changed since it was read${detail}`);
      default:
        if (status >= 300 && status < 400) return new TargetRejected(target, status, `${label} answered with a redirect, which the connector does not follow`);
        return new TargetRejected(target, status, `${label} refused${detail}`);
    }
  }

  private redact(text: string): string {
    return this.options.token ? text.split(this.options.token).join('[redacted]') : text;
  }

  private backoff(attempt: number): number {
    const exp = Math.min(10_000, this.options.retryBaseDelayMs * 2 ** attempt);
    return exp / 2 + Math.random() * (exp / 2);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `Retry-After` as seconds (delta-seconds or HTTP-date). */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * `X-RateLimit-*` (reset as epoch seconds, or delta seconds when small) and the IETF draft
 * `RateLimit-*` headers (reset as delta seconds).
 */
export function rateObservation(h: Headers, now: number): RateObservation {
  const num = (name: string) => {
    const v = h.get(name);
    if (v === null || v.trim() === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  };
  const limit = num('x-ratelimit-limit') ?? num('ratelimit-limit');
  const remaining = num('x-ratelimit-remaining') ?? num('ratelimit-remaining');
  const reset = num('x-ratelimit-reset') ?? num('ratelimit-reset');
  const resetAt = reset === undefined ? undefined : reset > 1e9 ? reset * 1000 : now + reset * 1000;
  return {
    ...(limit !== undefined ? { limit } : {}),
    ...(remaining !== undefined ? { remaining } : {}),
    ...(resetAt !== undefined ? { resetAt } : {}),
  };
}
