/**
 * Transport for the Entra connector, built from `@microsoft/microsoft-graph-client` v3 parts:
 *
 *   AuthenticationHandler(ClientCredentialsProvider) → GovernedRetryHandler → TelemetryHandler → HTTPMessageHandler
 *
 * - `ClientCredentialsProvider` gets app-only tokens (OAuth 2.0 client credentials) and caches
 *   them until shortly before expiry; concurrent callers share one token request.
 * - `GovernedRetryHandler` sends every attempt through the connector's `RateGovernor`, bounds
 *   each attempt with a timeout, honours `Retry-After` on 429 (telling the governor, so every
 *   other call waits too), backs off on 5xx, retries network failures only for idempotent
 *   requests, and refreshes the token once on a 401 `InvalidAuthenticationToken`.
 *   It replaces the SDK's RetryHandler, which retries neither 500/502 nor timeouts and resets.
 *
 * Nothing here logs, and no error message carries a token or the client secret.
 */
import type { AuthenticationProvider, Context, Middleware, MiddlewareOptions } from '@microsoft/microsoft-graph-client';
import * as z from 'zod';
import { TargetRejected, TargetThrottled, TargetUnavailable } from '#core/errors';
import type { RateGovernor } from './governor.ts';

export const GRAPH_DEFAULT_SCOPE = 'https://graph.microsoft.com/.default';

export interface RetryPolicy {
  /** Retries after the first attempt (so `maxRetries + 1` attempts at most). */
  maxRetries: number;
  /** Per-attempt timeout, covering the response body. */
  timeoutMs: number;
  /** First backoff for 5xx / network failures without `Retry-After`; doubles per attempt, with jitter. */
  baseDelayMs: number;
  /** A `Retry-After` longer than this is not slept through: the call fails as throttled at once. */
  maxRetryAfterSeconds: number;
}

const tokenResponse = z.object({
  token_type: z.string().regex(/^bearer$/i, 'token_type must be Bearer'),
  expires_in: z.coerce.number().int().positive(),
  access_token: z.string().min(1),
});

const tokenError = z.object({ error: z.string(), error_description: z.string().optional() });

export interface ClientCredentialsConfig {
  target: string;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  scope: string;
  governor: RateGovernor;
  retry: RetryPolicy;
  now?: () => number;
}

/** App-only token source for the Graph client's AuthenticationHandler. */
export class ClientCredentialsProvider implements AuthenticationProvider {
  private cached: { token: string; refreshAt: number } | undefined;
  private inflight: Promise<string> | undefined;
  private readonly now: () => number;
  /** Token requests made (a test proves the cache by this count). */
  tokenRequests = 0;

  constructor(private readonly config: ClientCredentialsConfig) {
    this.now = config.now ?? Date.now;
  }

  getAccessToken = async (): Promise<string> => {
    if (this.cached && this.now() < this.cached.refreshAt) return this.cached.token;
    this.inflight ??= this.fetchToken().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  };

  /** Forget the cached token (Graph said it is no longer valid). Only if it is still the one in use. */
  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = undefined;
  }

  private async fetchToken(): Promise<string> {
    const { retry, governor, target } = this.config;
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: this.config.clientId,
      client_secret: this.config.clientSecret,
      scope: this.config.scope,
    });
    for (let attempt = 0; ; attempt++) {
      let res: { status: number; headers: Headers; text: string };
      try {
        res = await governor.run(async () => {
          const r = await fetch(this.config.tokenUrl, {
            method: 'POST',
            headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
            body: form.toString(),
            signal: AbortSignal.timeout(retry.timeoutMs),
          });
          return { status: r.status, headers: r.headers, text: await r.text() };
        });
      } catch (err) {
        if (attempt < retry.maxRetries && !untrustedCertificate(err)) {
          await sleep(backoff(retry.baseDelayMs, attempt));
          continue;
        }
        throw new TargetUnavailable(target, `token endpoint: ${describeFailure(err, retry.timeoutMs)}`, { cause: err });
      }
      this.tokenRequests += 1;
      if (res.status === 200) {
        const parsed = tokenResponse.safeParse(safeJson(res.text));
        if (!parsed.success) {
          throw new TargetUnavailable(target, `token endpoint: unexpected response: ${zodIssues(parsed.error)}`);
        }
        const { access_token, expires_in } = parsed.data;
        // Refresh ahead of expiry: 5 minutes, or a tenth of very short lifetimes.
        const margin = Math.min(300_000, expires_in * 100);
        this.cached = { token: access_token, refreshAt: this.now() + expires_in * 1000 - margin };
        return access_token;
      }
      const retryAfter = parseRetryAfter(res.headers.get('retry-after'), this.now());
      if (res.status === 429 || res.status >= 500) {
        if (res.status === 429 && retryAfter !== undefined) governor.throttled(this.now() + retryAfter * 1000);
        const waitS = retryAfter ?? backoff(retry.baseDelayMs, attempt) / 1000;
        if (attempt < retry.maxRetries && waitS <= retry.maxRetryAfterSeconds) {
          if (res.status !== 429) await sleep(waitS * 1000);
          continue;
        }
        if (res.status === 429) throw new TargetThrottled(target, retryAfter ?? 1);
        throw new TargetUnavailable(target, `token endpoint answered HTTP ${res.status}`);
      }
      const err = tokenError.safeParse(safeJson(res.text));
      // AADSTS descriptions end with trace/correlation ids; the first sentence is the reason.
      const reason = err.success
        ? `${err.data.error}: ${(err.data.error_description ?? '').split(/\s+Trace ID:/)[0]}`
        : `HTTP ${res.status}`;
      throw new TargetRejected(target, res.status, redact(`token request refused (${reason})`, [this.config.clientSecret]));
    }
  }
}

/** Per-request transport options, set with `GraphRequest.middlewareOptions([...])`. */
export class TransportOptions implements MiddlewareOptions {
  constructor(
    /** Safe to resend after a timeout or reset (the effect of two deliveries equals one). */
    readonly idempotent: boolean,
  ) {}
}

/** Thrown when no response arrived (timeout, reset, refused) after the allowed attempts. */
export class TransportFailure extends Error {
  override readonly name = 'TransportFailure';
}

export class GovernedRetryHandler implements Middleware {
  private next: Middleware | undefined;
  private readonly now: () => number;

  constructor(
    private readonly governor: RateGovernor,
    private readonly auth: ClientCredentialsProvider,
    private readonly retry: RetryPolicy,
    now?: () => number,
  ) {
    this.now = now ?? Date.now;
  }

  setNext(next: Middleware): void {
    this.next = next;
  }

  async execute(context: Context): Promise<void> {
    const next = this.next;
    if (!next) throw new Error('GovernedRetryHandler needs a next middleware');
    const options = (context.options ??= {});
    const method = (options.method ?? 'GET').toUpperCase();
    const transport = context.middlewareControl?.getMiddlewareOptions(TransportOptions) as TransportOptions | undefined;
    const idempotent = transport?.idempotent ?? method !== 'POST';
    const url = typeof context.request === 'string' ? context.request : context.request.url;
    const label = `${method} ${new URL(url).pathname}`;
    let refreshedAuth = false;

    for (let attempt = 0; ; attempt++) {
      // The TelemetryHandler appends its header on every pass; keep one copy.
      deleteHeader(options, 'SdkVersion');
      let failure: unknown;
      try {
        await this.governor.run(async () => {
          options.signal = AbortSignal.timeout(this.retry.timeoutMs);
          await next.execute(context);
          context.response = await buffered(context.response!);
        });
      } catch (err) {
        failure = err;
      }
      if (failure !== undefined) {
        if (idempotent && attempt < this.retry.maxRetries && !untrustedCertificate(failure)) {
          await sleep(backoff(this.retry.baseDelayMs, attempt));
          continue;
        }
        const tries = attempt + 1;
        throw new TransportFailure(
          `${label}: no response after ${tries} attempt${tries > 1 ? 's' : ''} (${describeFailure(failure, this.retry.timeoutMs)})`,
        );
      }

      const res = context.response!;
      this.observe(res.headers);
      const status = res.status;

      if (status === 401 && !refreshedAuth && (await errorCode(res)) === 'InvalidAuthenticationToken') {
        // A token the cache still trusted was refused (expired early, rotated, revoked): get a new one once.
        refreshedAuth = true;
        const used = /^Bearer\s+(.+)$/.exec(getHeader(options, 'Authorization') ?? '')?.[1];
        if (used) this.auth.invalidate(used);
        setHeader(options, 'Authorization', `Bearer ${await this.auth.getAccessToken()}`);
        attempt -= 1;
        continue;
      }
      if (status === 429) {
        const retryAfter = parseRetryAfter(res.headers.get('retry-after'), this.now()) ?? backoff(this.retry.baseDelayMs, attempt) / 1000;
        this.governor.throttled(this.now() + retryAfter * 1000);
        if (attempt < this.retry.maxRetries && retryAfter <= this.retry.maxRetryAfterSeconds) continue; // the governor waits
        return;
      }
      const transient = status === 503 || status === 504 || ((status === 500 || status === 502) && idempotent);
      if (transient && attempt < this.retry.maxRetries) {
        const retryAfter = parseRetryAfter(res.headers.get('retry-after'), this.now());
        await sleep(retryAfter !== undefined ? Math.min(retryAfter, this.retry.maxRetryAfterSeconds) * 1000 : backoff(this.retry.baseDelayMs, attempt));
        continue;
      }
      return;
    }
  }

  /** IETF RateLimit headers, which some Graph workloads send; Retry-After is handled above. */
  private observe(headers: Headers): void {
    const limit = num(headers.get('ratelimit-limit'));
    const remaining = num(headers.get('ratelimit-remaining'));
    const reset = num(headers.get('ratelimit-reset'));
    if (limit === undefined && remaining === undefined) return;
    this.governor.observe({ limit, remaining, resetAt: reset === undefined ? undefined : this.now() + reset * 1000 });
  }
}

/** Reads the whole body inside the attempt (so the timeout and the governor slot cover it). */
async function buffered(res: Response): Promise<Response> {
  const nullBody = res.status === 204 || res.status === 205 || res.status === 304;
  const body = nullBody ? null : await res.arrayBuffer();
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

async function errorCode(res: Response): Promise<string | undefined> {
  try {
    const body = (await res.clone().json()) as { error?: { code?: unknown } };
    return typeof body?.error?.code === 'string' ? body.error.code : undefined;
  } catch {
    return undefined;
  }
}

type HeaderBag = { headers?: unknown };

function getHeader(options: HeaderBag, name: string): string | undefined {
  const h = options.headers;
  if (!h) return undefined;
  if (h instanceof Headers) return h.get(name) ?? undefined;
  const rec = h as Record<string, string>;
  const key = Object.keys(rec).find((k) => k.toLowerCase() === name.toLowerCase());
  return key ? rec[key] : undefined;
}

function setHeader(options: HeaderBag, name: string, value: string): void {
  deleteHeader(options, name);
  if (options.headers instanceof Headers) options.headers.set(name, value);
  else options.headers = { ...((options.headers as Record<string, string>) ?? {}), [name]: value };
}

function deleteHeader(options: HeaderBag, name: string): void {
  const h = options.headers;
  if (!h) return;
  if (h instanceof Headers) {
    h.delete(name);
    return;
  }
  const rec = h as Record<string, string>;
  for (const k of Object.keys(rec)) if (k.toLowerCase() === name.toLowerCase()) delete rec[k];
}

/** `Retry-After` as seconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const n = Number(value);
  if (Number.isFinite(n) && n >= 0) return n;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

export function backoff(baseMs: number, attempt: number): number {
  const exp = Math.min(10_000, baseMs * 2 ** attempt);
  return exp / 2 + Math.random() * (exp / 2);
}

const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A certificate the client does not trust will not become trusted by retrying. */
function untrustedCertificate(err: unknown): boolean {
  const code = (err as { cause?: { code?: string } })?.cause?.code;
  return code !== undefined && CERTIFICATE_ERRORS.has(code);
}

export function describeFailure(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `timed out after ${timeoutMs} ms`;
  const code = e?.cause?.code;
  if (code && CERTIFICATE_ERRORS.has(code)) return `TLS certificate not trusted (${code})`;
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'connection reset';
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code) return `network error ${code}`;
  return e?.message ? `network error: ${e.message}` : 'network error';
}

/** Removes every occurrence of the given secrets (never shorter than 4 characters) from a message. */
export function redact(message: string, secrets: ReadonlyArray<string | undefined>): string {
  let out = message;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  return out;
}

export function zodIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function num(v: string | null): number | undefined {
  if (v === null) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
