/**
 * The Okta SDK's HTTP layer, configured for Lambda.
 *
 * The connector uses `@okta/okta-sdk-nodejs` v8 for its hand-written HTTP layer only — `Http`
 * (SSWS authentication, the SDK's mapping of error answers to `OktaApiError` / `HttpError`, the
 * `RequestExecutor` seam) and `Collection` (Okta's `Link: <…>; rel="next"` paging) — loaded by
 * deep path. Its generated API classes are not used: `Client` builds all of them, and they import
 * every model, 4 MiB of code in each Lambda bundle for the 21 requests the connector sends.
 * `OktaHttp` sends those requests exactly as the generated methods do (method, path, query
 * parameters in the same order and encoding, headers, JSON body).
 *
 * Every call goes through a `RequestExecutor`. This one:
 *  - sends each attempt through the connector's `RateGovernor` (concurrency cap + pacing from
 *    Okta's `X-Rate-Limit-*` headers, observed on every response, so we slow down before a 429);
 *  - gives every attempt its own timeout (the SDK default has none, and a Lambda must not hang);
 *  - retries a 429 only when Okta says when to (`X-Rate-Limit-Reset`), waiting until then, and
 *    gives up early when that wait is longer than a Lambda should idle (the workflow retries);
 *  - retries 5xx, timeouts and connection resets a bounded number of times with jittered
 *    exponential back-off, marking retries with Okta's `X-Okta-Retry-For` / `X-Okta-Retry-Count`
 *    — except a request sent with `resendUnanswered: false` (a group membership), which a lost
 *    answer does not resend: the connector reads back first;
 *  - records the `X-Okta-Request-Id` of every response for the change records (see
 *    `captureRequests`), and keeps connections alive across calls of a warm Lambda.
 * Resending writes is safe in effect because the connector's writes are idempotent on Okta's side
 * (membership PUT/DELETE, lifecycle transitions that Okta refuses when they no longer apply); user
 * creation is reconciled by the connector (see `createAccount`). A membership PUT whose answer is
 * lost is still not resent blind (`resendUnanswered: false`): the connector reads the groups
 * back and sends it again only when it did not land, so each membership write sent was needed.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { platform, release } from 'node:os';
import sdkPackage from '@okta/okta-sdk-nodejs/package.json' with { type: 'json' };
import { Collection } from '@okta/okta-sdk-nodejs/src/collection.js';
import { Http } from '@okta/okta-sdk-nodejs/src/http.js';
import RequestExecutor, { type ExecutorRequest, type FetchResponse } from '@okta/okta-sdk-nodejs/src/request-executor.js';
import type { RateGovernor } from './governor.ts';

/** What one connector operation sent: the request ids Okta returned and whether anything was retried. */
export interface RequestCapture {
  requestIds: string[];
  /** Attempts sent, all calls together. */
  attempts: number;
  /** Attempts the most recent call needed (1 when it was not retried). */
  lastCallAttempts: number;
  retried: boolean;
}

const captureStore = new AsyncLocalStorage<RequestCapture>();

export function newCapture(): RequestCapture {
  return { requestIds: [], attempts: 0, lastCallAttempts: 0, retried: false };
}

/**
 * Runs `fn`, collecting into `capture` the Okta request ids of every call it makes (nested
 * captures roll up into their parent). The caller keeps `capture`, so it can read it on failure.
 */
export async function captureRequests<T>(capture: RequestCapture, fn: () => Promise<T>): Promise<T> {
  const parent = captureStore.getStore();
  try {
    return await captureStore.run(capture, fn);
  } finally {
    if (parent) {
      parent.requestIds.push(...capture.requestIds);
      parent.attempts += capture.attempts;
      parent.retried ||= capture.retried;
    }
  }
}

/** The capture of the operation in progress, if any. */
export function currentCapture(): RequestCapture | undefined {
  return captureStore.getStore();
}

/** Per request, passed through the SDK's `Http` to the executor with the request. */
export interface RequestOptions {
  /**
   * False for a write that must not be sent twice blind: a network error (timeout, reset) is
   * thrown at once, for the caller to read back whether the write landed (send-once.ts).
   */
  resendUnanswered?: boolean;
}

export interface ExecutorOptions {
  governor: RateGovernor;
  requestTimeoutMs: number;
  maxRetries: number;
  /** Longest wait for a rate-limit reset before giving up with a 429 (the caller retries later). */
  maxRetryWaitMs: number;
  /** First back-off step for 5xx / network retries (doubles per attempt, full jitter). */
  backoffBaseMs?: number;
  maxSockets?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const RETRYABLE_NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH']);

/** node-fetch reports timeouts as `type: 'request-timeout'` and socket errors as `type: 'system'`. */
export function isRetryableNetworkError(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const err = e as { name?: string; type?: string; code?: string };
  if (err.name !== 'FetchError') return false;
  return err.type === 'request-timeout' || (err.type === 'system' && RETRYABLE_NETWORK_CODES.has(err.code ?? ''));
}

export class GovernedRequestExecutor extends RequestExecutor {
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly httpAgent: HttpAgent;
  private readonly httpsAgent: HttpsAgent;
  /**
   * Our clock minus Okta's, estimated from `Date` headers. `Date` has whole-second precision and
   * is never later than Okta's true time, so the smallest `now - Date` seen is an upper bound of
   * the skew: converting Okta's reset time with it never resumes early.
   */
  private clockOffsetMs: number | undefined;
  /** Counters for benchmarks and logs: attempts sent, retries by cause. */
  readonly stats = { attempts: 0, retried429: 0, retried5xx: 0, retriedNetwork: 0 };

  constructor(private readonly options: ExecutorOptions) {
    super();
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = options.random ?? Math.random;
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 16 };
    this.httpAgent = new HttpAgent(agentOptions);
    this.httpsAgent = new HttpsAgent(agentOptions);
  }

  /** Okta's reset time (epoch seconds) on our clock, in ms. */
  resetToLocalMs(resetEpochSeconds: number): number {
    return resetEpochSeconds * 1000 + (this.clockOffsetMs ?? 0);
  }

  override async fetch({ resendUnanswered, ...request }: ExecutorRequest & RequestOptions): Promise<FetchResponse> {
    const capture = captureStore.getStore();
    const url = String(request.url);
    const agent = url.startsWith('https:') ? this.httpsAgent : this.httpAgent;
    let retryFor: string | undefined;
    for (let attempt = 0; ; attempt += 1) {
      const headers: Record<string, string> = { ...request.headers };
      if (attempt > 0) {
        if (retryFor) headers['X-Okta-Retry-For'] = retryFor;
        headers['X-Okta-Retry-Count'] = String(attempt);
      }
      const attemptRequest = { ...request, headers, agent, timeout: this.options.requestTimeoutMs };
      this.stats.attempts += 1;
      if (capture) {
        capture.attempts += 1;
        capture.lastCallAttempts = attempt + 1;
        if (attempt > 0) capture.retried = true;
      }
      let response: FetchResponse;
      try {
        // Rate headers are read inside the governor slot: the governor counts this call as
        // still running while it learns the target's remaining budget.
        response = await this.options.governor.run(async () => {
          const r = await super.fetch(attemptRequest);
          this.observe(r);
          return r;
        });
      } catch (e) {
        if (attempt < this.options.maxRetries && isRetryableNetworkError(e) && resendUnanswered !== false) {
          this.stats.retriedNetwork += 1;
          await this.sleep(this.backoff(attempt));
          continue;
        }
        throw e;
      }

      const requestId = response.headers.get('x-okta-request-id') ?? undefined;
      if (requestId) {
        capture?.requestIds.push(requestId);
        retryFor ??= requestId;
      }

      if (response.status === 429) {
        const resetAt = this.resetHeaderMs(response);
        if (resetAt === undefined) return response; // Okta always sends it; without it we cannot know when to retry.
        // Nothing goes out before the reset (plus a little, as Okta counts by its own clock).
        const until = resetAt + 100;
        this.options.governor.throttled(until);
        if (attempt >= this.options.maxRetries || until - this.now() > this.options.maxRetryWaitMs) return response;
        this.stats.retried429 += 1;
        await response.text().catch(() => undefined);
        continue;
      }
      if (response.status >= 500 && attempt < this.options.maxRetries) {
        this.stats.retried5xx += 1;
        await response.text().catch(() => undefined);
        await this.sleep(this.backoff(attempt));
        continue;
      }
      return response;
    }
  }

  /** Releases pooled sockets (tests and scripts; a Lambda keeps them for the next invocation). */
  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private backoff(attempt: number): number {
    const base = this.options.backoffBaseMs ?? 200;
    const cap = Math.min(base * 2 ** attempt, 5_000);
    return Math.round(cap / 2 + (this.random() * cap) / 2);
  }

  private resetHeaderMs(response: FetchResponse): number | undefined {
    const raw = response.headers.get('x-rate-limit-reset');
    // Duplicate headers arrive comma-joined (OKTA-112507); the SDK refuses to trust those too.
    if (!raw || raw.includes(',')) return undefined;
    const seconds = Number(raw);
    return Number.isFinite(seconds) && seconds > 0 ? this.resetToLocalMs(seconds) : undefined;
  }

  private observe(response: FetchResponse): void {
    const date = Date.parse(response.headers.get('date') ?? '');
    if (!Number.isNaN(date)) {
      const offset = this.now() - date;
      this.clockOffsetMs = this.clockOffsetMs === undefined ? offset : Math.min(this.clockOffsetMs, offset);
    }
    const limit = Number(response.headers.get('x-rate-limit-limit'));
    const remaining = Number(response.headers.get('x-rate-limit-remaining'));
    const resetAt = response.status === 429 ? undefined : this.resetHeaderMs(response);
    this.options.governor.observe({
      ...(Number.isFinite(limit) && limit > 0 ? { limit } : {}),
      ...(Number.isFinite(remaining) && response.headers.get('x-rate-limit-remaining') !== null ? { remaining } : {}),
      ...(resetAt !== undefined ? { resetAt } : {}),
    });
  }
}

/** Query parameters in the order the generated SDK method sets them (undefined ones are left out). */
export type OktaQuery = Record<string, string | number | boolean | undefined>;

/**
 * A path with each interpolated value encoded as one segment, as the generated methods encode
 * path parameters (`apiPath\`/api/v1/users/${login}\`` → `/api/v1/users/ada%40example.com`).
 */
export function apiPath(strings: TemplateStringsArray, ...values: string[]): string {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]!) : ''), '');
}

/** The `User-Agent` suffix the SDK's `Client` sends (its `DEFAULT_USER_AGENT`). */
export const SDK_USER_AGENT = `${sdkPackage.name}/${sdkPackage.version} node/${process.versions.node} ${platform()}/${release()}`;

/** What every generated method sends as `Accept`. */
const ACCEPT = 'application/json, */*;q=0.8';

/**
 * The SDK's `Http`, configured as its `Client` configures it for an API token: no response cache
 * (`cacheMiddleware: null`; a warm Lambda would serve stale users), `Authorization: SSWS <token>`,
 * `User-Agent: <ours> <the SDK's>`, requests through the given executor. Three request shapes:
 * a JSON answer (`json`), an answer that is not needed (`send`) and a paged list (`list`).
 */
export class OktaHttp {
  private readonly http: Http;
  private readonly baseUrl: string;

  constructor(options: { orgUrl: string; token: string; executor: RequestExecutor; userAgent: string }) {
    this.baseUrl = options.orgUrl.replace(/\/$/, '');
    this.http = new Http({ requestExecutor: options.executor, cacheMiddleware: null });
    this.http.defaultHeaders.Authorization = `SSWS ${options.token}`;
    this.http.defaultHeaders['User-Agent'] = `${options.userAgent} ${SDK_USER_AGENT}`;
  }

  /** The request's URL; the query encoded like the generated methods do (`encodeURIComponent`, `&`). */
  url(path: string, query: OktaQuery = {}): string {
    const pairs = Object.entries(query)
      .filter((entry): entry is [string, string | number | boolean] => entry[1] !== undefined)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
    return `${this.baseUrl}${path}${pairs.length ? `?${pairs.join('&')}` : ''}`;
  }

  /** A request whose JSON answer the caller reads (a non-2xx answer rejects with the SDK's error). */
  async json(method: 'GET' | 'POST', path: string, query?: OktaQuery, body?: unknown): Promise<unknown> {
    const res = await this.http.http(this.url(path, query), request(method, body));
    return res.json();
  }

  /** A write whose answer is not needed: read to the end, so the connection returns to the pool. */
  async send(method: 'POST' | 'PUT' | 'DELETE', path: string, query?: OktaQuery, body?: unknown, options: RequestOptions = {}): Promise<void> {
    const res = await this.http.http(this.url(path, query), { ...request(method, body), ...options });
    await res.text();
  }

  /** A list Okta pages with `Link` headers; `getNextPage()` reads one page and follows `rel="next"`. */
  list(path: string, query?: OktaQuery): Collection {
    return new Collection(this.http, this.url(path, query), {}, request('GET'));
  }
}

function request(method: string, body?: unknown): { method: string; headers: Record<string, string>; body?: string } {
  if (body === undefined) return { method, headers: { Accept: ACCEPT } };
  return { method, headers: { Accept: ACCEPT, 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
}
