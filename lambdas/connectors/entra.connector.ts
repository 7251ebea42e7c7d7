/**
 * Microsoft Entra ID adapter for the Connector port, on Microsoft Graph v1.0 through
 * `@microsoft/microsoft-graph-client` v3 (app-only, client credentials).
 *
 * - Correlation: `employeeId eq '<id>'`, plus stored link ids (object ids).
 * - Status: `accountEnabled`; Entra has no suspended state (`capabilities.suspend = false`).
 * - Entitlements: groups by displayName (direct memberships), licenses by SKU part number
 *   (resolved through `subscribedSkus`). Name → id lookups are cached per instance.
 * - Group membership is only ever changed through `/members/$ref`: `DELETE
 *   /groups/{g}/members/{u}` without `$ref` would delete the *user*.
 * - Reads of one account (user + memberOf + licenseDetails) go out as one JSON `$batch`.
 * - Every write reads first and writes only when needed (`changed: false` otherwise) and records
 *   Graph's `request-id`s. Failures are the typed errors of `#core/errors`.
 * - Secrets (client secret, generated passwords, TAP codes) never reach errors or change records.
 */
import { randomBytes, randomInt } from 'node:crypto';
import {
  AuthenticationHandler,
  Client,
  GraphError,
  HTTPMessageHandler,
  ResponseType,
  TelemetryHandler,
} from '@microsoft/microsoft-graph-client';
import * as z from 'zod';
import type { ActualAccount, EntitlementRef } from '#core/access';
import {
  AccountNotFound,
  JmlError,
  PolicyViolation,
  TargetConflict,
  TargetRejected,
  TargetThrottled,
  TargetUnavailable,
  ValidationError,
} from '#core/errors';
import type { TargetCapabilities } from '#core/target-plan';
import type {
  AccountPage,
  AccountProfile,
  AuditEntry,
  ChangeRecord,
  Connector,
  TemporaryAccessPass,
} from './connector.ts';
import {
  ClientCredentialsProvider,
  GRAPH_DEFAULT_SCOPE,
  GovernedRetryHandler,
  TransportOptions,
  backoff,
  parseRetryAfter,
  redact,
  sleep,
  zodIssues,
  type RetryPolicy,
} from './entra-transport.ts';
import * as S from './entra-schemas.ts';
import { RateGovernor, type GovernorStats } from './governor.ts';

export interface EntraConnectorConfig {
  /** Target name as in the policy. */
  name: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** Default `https://login.microsoftonline.com`. */
  authorityHost?: string;
  /** Graph root without the version, default `https://graph.microsoft.com`. */
  graphBaseUrl?: string;
  /** Extra hosts (no scheme, no port) the Graph client may send its token to, e.g. a stand-in. */
  customHosts?: string[];
  /** Domain for generated userPrincipalNames. */
  domain: string;
  /** Two-letter country set on new users (and before a license is assigned to a user without one). */
  usageLocation?: string;
  maxConcurrent?: number;
  requestTimeoutMs?: number;
  maxRetries?: number;
  /** First backoff step for 5xx / network retries (default 250 ms). */
  retryBaseDelayMs?: number;
  /** Longest Retry-After slept through before failing as TargetThrottled (default 60 s). */
  maxRetryAfterSeconds?: number;
  /** Users per `listAccounts` page (default 50). */
  pageSize?: number;
}

/** An account as `/users/delta` reports it: attributes only, no memberships. */
export type AccountSummary = Omit<ActualAccount, 'entitlements'>;

export interface EntraChanges {
  accounts: AccountSummary[];
  removedIds: string[];
  /** More changes in this round: call again with it. */
  nextLink?: string;
  /** Round complete: keep it and call with it next time to get later changes. */
  deltaLink?: string;
  /** The stored delta link expired or was refused: start again without one (full resync). */
  resyncRequired: boolean;
}

export interface EntraConnector extends Connector {
  createTemporaryAccessPass(accountId: string, lifetimeInMinutes: number, startDateTime?: string): Promise<TemporaryAccessPass>;
  /** One page of user changes (`/users/delta`): start without a link, then follow nextLink / deltaLink. */
  listChanges(link?: string): Promise<EntraChanges>;
  /** Transport figures: token requests and governor stats. */
  stats(): { tokenRequests: number; governor: GovernorStats };
}

const configSchema = z.object({
  name: z.string().min(1),
  tenantId: z.string().min(1),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  authorityHost: z.url({ protocol: /^https$/ }).optional(),
  graphBaseUrl: z.url({ protocol: /^https$/ }).optional(),
  customHosts: z.array(z.string().regex(/^[A-Za-z0-9.-]+$/, 'a host name only, without scheme, port or path')).optional(),
  domain: z.string().regex(/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/, 'a DNS domain'),
  usageLocation: z.string().regex(/^[A-Z]{2}$/, 'an ISO 3166 two-letter country code').optional(),
  maxConcurrent: z.number().int().min(1).max(64).optional(),
  requestTimeoutMs: z.number().int().min(50).optional(),
  maxRetries: z.number().int().min(0).max(10).optional(),
  retryBaseDelayMs: z.number().int().min(0).optional(),
  maxRetryAfterSeconds: z.number().min(0).optional(),
  pageSize: z.number().int().min(1).max(999).optional(),
});

const USER_SELECT = 'id,userPrincipalName,accountEnabled,employeeId';
const BATCH_LIMIT = 20;

interface Reply {
  status: number;
  body: unknown;
  requestId?: string;
  headers: Headers;
}

interface BatchReply {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

export function createEntraConnector(config: EntraConnectorConfig): EntraConnector {
  const parsed = configSchema.safeParse(config);
  if (!parsed.success) {
    throw new ValidationError(parsed.error.issues.map((i) => `entra config ${i.path.join('.')}: ${i.message}`));
  }
  const name = config.name;
  const graphRoot = (config.graphBaseUrl ?? 'https://graph.microsoft.com').replace(/\/+$/, '');
  const graphV1 = `${graphRoot}/v1.0`;
  const authority = (config.authorityHost ?? 'https://login.microsoftonline.com').replace(/\/+$/, '');
  const retry: RetryPolicy = {
    maxRetries: config.maxRetries ?? 3,
    timeoutMs: config.requestTimeoutMs ?? 10_000,
    baseDelayMs: config.retryBaseDelayMs ?? 250,
    maxRetryAfterSeconds: config.maxRetryAfterSeconds ?? 60,
  };
  const pageSize = config.pageSize ?? 50;
  const governor = new RateGovernor({ maxConcurrent: config.maxConcurrent ?? 4 });
  const auth = new ClientCredentialsProvider({
    target: name,
    tokenUrl: `${authority}/${encodeURIComponent(config.tenantId)}/oauth2/v2.0/token`,
    clientId: config.clientId,
    clientSecret: config.clientSecret,
    scope: GRAPH_DEFAULT_SCOPE,
    governor,
    retry,
  });
  const client = Client.initWithMiddleware({
    baseUrl: graphRoot,
    defaultVersion: 'v1.0',
    customHosts: config.customHosts?.length ? new Set(config.customHosts) : undefined,
    middleware: [
      new AuthenticationHandler(auth),
      new GovernedRetryHandler(governor, auth, retry),
      new TelemetryHandler(),
      new HTTPMessageHandler(),
    ],
  });
  const graphOrigin = new URL(graphRoot).origin;
  const capabilities: TargetCapabilities = { suspend: false };

  // ---- plumbing -------------------------------------------------------------------------------

  /** One Graph call. Non-2xx statuses come back as replies; only transport failures throw. */
  async function send(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    path: string,
    opts: { body?: unknown; idempotent?: boolean; headers?: Record<string, string>; secrets?: string[] } = {},
  ): Promise<Reply> {
    // Surfaces token failures as typed errors (the Graph client would wrap them) and warms the cache.
    await auth.getAccessToken();
    const request = client
      .api(path)
      .responseType(ResponseType.RAW)
      .middlewareOptions([new TransportOptions(opts.idempotent ?? method !== 'POST')]);
    if (opts.headers) request.headers(opts.headers);
    let raw: Response;
    try {
      switch (method) {
        case 'GET':
          raw = await request.get();
          break;
        case 'POST':
          raw = await request.post(opts.body ?? {});
          break;
        case 'PATCH':
          raw = await request.patch(opts.body ?? {});
          break;
        case 'DELETE':
          raw = await request.delete();
          break;
      }
    } catch (err) {
      throw clientFailure(err, opts.secrets);
    }
    const text = await raw.text();
    let body: unknown;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        if (raw.ok) throw new TargetUnavailable(name, `${method} ${pathOnly(path)}: response is not JSON (HTTP ${raw.status})`);
      }
    }
    return { status: raw.status, body, requestId: raw.headers.get('request-id') ?? undefined, headers: raw.headers };
  }

  /**
   * The Graph client wraps whatever its middleware throws in a GraphError whose `code` is the
   * original error's name: a TransportFailure (no response), or — when a token refresh inside
   * the AuthenticationHandler fails — one of our typed errors, which is rebuilt here.
   */
  function clientFailure(err: unknown, secrets?: string[]): Error {
    if (err instanceof JmlError) return err;
    const e = err as { code?: string | null; message?: string };
    const message = redact(e?.message ?? String(err), [config.clientSecret, ...(secrets ?? [])]).replace(`${name}: `, '');
    if (err instanceof GraphError && e.code === 'TargetRejected') {
      const status = Number(/\(HTTP (\d{3})\)$/.exec(message)?.[1] ?? 400);
      return new TargetRejected(name, status, message.replace(/\s*\(HTTP \d{3}\)$/, ''));
    }
    if (err instanceof GraphError && e.code === 'TargetThrottled') {
      return new TargetThrottled(name, Number(/retry after (\d+)s/.exec(message)?.[1] ?? 1));
    }
    return new TargetUnavailable(name, message);
  }

  /** Maps a non-2xx reply (or batch reply) to the port's typed errors, with Graph's own message. */
  function failure(what: string, status: number, body: unknown, headers: { get(k: string): string | null }, requestId?: string, secrets: string[] = []): Error {
    const parsedError = S.graphErrorBody.safeParse(body);
    const detail = parsedError.success ? `${parsedError.data.error.message} [${parsedError.data.error.code}]` : `HTTP ${status}`;
    const message = redact(`${what}: ${detail}${requestId ? ` (request-id ${requestId})` : ''}`, [config.clientSecret, ...secrets]);
    if (status === 429) return new TargetThrottled(name, parseRetryAfter(headers.get('retry-after'), Date.now()) ?? 1, `${name}: ${message}`);
    if (status >= 500 || status === 0) return new TargetUnavailable(name, message);
    if (status === 404) return new AccountNotFound(name, message);
    if (status === 409) return new TargetConflict(name, message);
    return new TargetRejected(name, status, message);
  }

  function check(reply: Reply, what: string, secrets?: string[]): void {
    if (reply.status >= 200 && reply.status < 300) return;
    throw failure(what, reply.status, reply.body, reply.headers, reply.requestId, secrets);
  }

  function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
    const r = schema.safeParse(body);
    if (!r.success) throw new TargetUnavailable(name, `${what}: unexpected response: ${zodIssues(r.error)}`);
    return r.data;
  }

  function graphErrorCode(body: unknown): string | undefined {
    const r = S.graphErrorBody.safeParse(body);
    return r.success ? r.data.error.code : undefined;
  }

  function graphErrorMessage(body: unknown): string {
    const r = S.graphErrorBody.safeParse(body);
    return r.success ? r.data.error.message : '';
  }

  /** A nextLink / deltaLink / cursor must point at our Graph, or the token would go elsewhere. */
  function ownLink(link: string, what: string): string {
    let u: URL;
    try {
      u = new URL(link);
    } catch {
      throw new ValidationError([`${what}: not a URL`]);
    }
    if (u.origin !== graphOrigin || !u.pathname.startsWith('/v1.0/')) {
      throw new ValidationError([`${what}: must be a ${graphOrigin}/v1.0 link`]);
    }
    return link;
  }

  /**
   * GET requests as JSON batches (≤ 20 each). Inner 429/503/504 replies are retried (bounded)
   * after their Retry-After; the final reply of each request is returned by id.
   */
  async function batchGet(requests: Array<{ id: string; url: string }>): Promise<Map<string, BatchReply>> {
    const out = new Map<string, BatchReply>();
    const chunks: Array<Array<{ id: string; url: string }>> = [];
    for (let i = 0; i < requests.length; i += BATCH_LIMIT) chunks.push(requests.slice(i, i + BATCH_LIMIT));
    await Promise.all(
      chunks.map(async (chunk) => {
        let pending = chunk;
        for (let attempt = 0; ; attempt++) {
          const reply = await send('POST', '/$batch', {
            body: { requests: pending.map((r) => ({ id: r.id, method: 'GET', url: r.url })) },
            idempotent: true,
          });
          check(reply, 'POST /$batch');
          const responses = parse(S.batchResponse, reply.body, 'POST /$batch').responses;
          const again: typeof pending = [];
          let waitMs = 0;
          for (const r of responses) {
            const req = pending.find((p) => p.id === r.id);
            if (!req) continue;
            const headers = lowerKeys(r.headers ?? {});
            const transient = r.status === 429 || r.status === 503 || r.status === 504;
            if (transient && attempt < retry.maxRetries) {
              const after = parseRetryAfter(headers['retry-after'], Date.now());
              if (r.status === 429) governor.throttled(Date.now() + (after ?? 1) * 1000);
              else waitMs = Math.max(waitMs, after !== undefined ? after * 1000 : backoff(retry.baseDelayMs, attempt));
              again.push(req);
            } else {
              out.set(r.id, { status: r.status, body: r.body, headers });
            }
          }
          for (const p of pending) {
            if (!out.has(p.id) && !again.includes(p)) {
              throw new TargetUnavailable(name, `POST /$batch: no response for request ${p.id}`);
            }
          }
          if (!again.length) return;
          if (waitMs) await sleep(waitMs);
          pending = again;
        }
      }),
    );
    return out;
  }

  function batchBody<T>(replies: Map<string, BatchReply>, id: string, schema: z.ZodType<T>, what: string): T {
    const r = replies.get(id);
    if (!r) throw new TargetUnavailable(name, `${what}: missing from batch response`);
    if (r.status < 200 || r.status >= 300) {
      throw failure(what, r.status, r.body, { get: (k) => r.headers[k.toLowerCase()] ?? null });
    }
    return parse(schema, r.body, what);
  }

  /** Follows `@odata.nextLink`s of a page already read, collecting every item. */
  async function rest<T extends { value: unknown[]; '@odata.nextLink'?: string }>(
    first: T,
    schema: z.ZodType<T>,
    what: string,
  ): Promise<T['value']> {
    const items = [...first.value];
    let next = first['@odata.nextLink'];
    for (let pages = 1; next; pages++) {
      if (pages > 1000) throw new TargetUnavailable(name, `${what}: too many pages`);
      const reply = await send('GET', ownLink(next, `${what} nextLink`));
      check(reply, what);
      const page = parse(schema, reply.body, what);
      items.push(...page.value);
      next = page['@odata.nextLink'];
    }
    return items;
  }

  // ---- name → id resolution (cached per instance) ---------------------------------------------

  const groupIds = new Map<string, string>();
  let skuIds: Map<string, string> | undefined;
  let skuNames: Map<string, string> | undefined;

  async function groupId(displayName: string): Promise<string | undefined> {
    const cached = groupIds.get(displayName);
    if (cached) return cached;
    const reply = await send('GET', `/groups?$filter=${q(`displayName eq ${lit(displayName)}`)}&$select=id,displayName`);
    check(reply, `GET /groups (${displayName})`);
    const groups = parse(S.groupPage, reply.body, 'GET /groups').value.filter((g) => g.displayName === displayName);
    if (groups.length > 1) {
      throw new TargetConflict(name, `${groups.length} groups are named '${displayName}'; refusing to guess`, groups.map((g) => g.id));
    }
    const id = groups[0]?.id;
    if (id) groupIds.set(displayName, id);
    return id;
  }

  async function loadSkus(): Promise<void> {
    if (skuIds && skuNames) return;
    const reply = await send('GET', '/subscribedSkus?$select=skuId,skuPartNumber');
    check(reply, 'GET /subscribedSkus');
    const skus = parse(S.subscribedSkus, reply.body, 'GET /subscribedSkus').value;
    skuIds = new Map(skus.map((s) => [s.skuPartNumber, s.skuId]));
    skuNames = new Map(skus.map((s) => [s.skuId, s.skuPartNumber]));
  }

  async function skuId(partNumber: string): Promise<string | undefined> {
    await loadSkus();
    return skuIds!.get(partNumber);
  }

  // ---- reads ----------------------------------------------------------------------------------

  const userPath = (id: string) => `/users/${encodeURIComponent(requireId(id))}`;
  const entitlementUrls = (id: string) => ({
    memberOf: `${userPath(id)}/memberOf?$select=id,displayName&$top=999`,
    licenses: `${userPath(id)}/licenseDetails?$select=skuId,skuPartNumber`,
  });

  function toAccount(u: S.UserRecord, entitlements: EntitlementRef[]): ActualAccount {
    return {
      id: u.id,
      ...(u.employeeId ? { correlationKey: u.employeeId } : {}),
      ...(u.userPrincipalName ? { userName: u.userPrincipalName } : {}),
      status: u.accountEnabled ? 'enabled' : 'disabled',
      entitlements,
    };
  }

  async function entitlementsFrom(
    memberOf: z.infer<typeof S.directoryObjectPage>,
    licenses: z.infer<typeof S.licenseDetailsPage>,
    who: string,
  ): Promise<EntitlementRef[]> {
    const groups = (await rest(memberOf, S.directoryObjectPage, `GET memberOf of ${who}`)).filter(
      (o) => (o['@odata.type'] ?? '#microsoft.graph.group') === '#microsoft.graph.group' && o.displayName,
    );
    const skus = await rest(licenses, S.licenseDetailsPage, `GET licenseDetails of ${who}`);
    const refs: EntitlementRef[] = [
      ...groups.map((g) => ({ type: 'group' as const, value: g.displayName! })),
      ...skus.map((s) => ({ type: 'license' as const, value: s.skuPartNumber })),
    ];
    const seen = new Set<string>();
    return refs.filter((r) => {
      const k = `${r.type}:${r.value}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  /** Users plus their entitlements: memberOf + licenseDetails of up to 10 users per batch. */
  async function withEntitlements(users: S.UserRecord[], known?: Map<string, BatchReply>): Promise<ActualAccount[]> {
    const replies = new Map(known ?? []);
    const missing = users.filter((u) => !replies.has(`m-${u.id}`));
    if (missing.length) {
      const fetched = await batchGet(
        missing.flatMap((u) => {
          const urls = entitlementUrls(u.id);
          return [
            { id: `m-${u.id}`, url: urls.memberOf },
            { id: `l-${u.id}`, url: urls.licenses },
          ];
        }),
      );
      for (const [k, v] of fetched) replies.set(k, v);
    }
    return Promise.all(
      users.map(async (u) =>
        toAccount(
          u,
          await entitlementsFrom(
            batchBody(replies, `m-${u.id}`, S.directoryObjectPage, `GET memberOf of ${u.id}`),
            batchBody(replies, `l-${u.id}`, S.licenseDetailsPage, `GET licenseDetails of ${u.id}`),
            u.id,
          ),
        ),
      ),
    );
  }

  async function findAccounts(query: { employeeId: string; linkIds?: string[] }): Promise<ActualAccount[]> {
    if (!query.employeeId) throw new ValidationError(['employeeId: required']);
    const filterUrl = `/users?$filter=${q(`employeeId eq ${lit(query.employeeId)}`)}&$select=${USER_SELECT}&$top=999`;
    const links = [...new Set(query.linkIds ?? [])].filter(Boolean);
    const users = new Map<string, S.UserRecord>();
    let replies: Map<string, BatchReply> | undefined;

    if (!links.length) {
      const reply = await send('GET', filterUrl);
      check(reply, 'GET /users by employeeId');
      const first = parse(S.userCollection, reply.body, 'GET /users');
      for (const u of await rest(first, S.userCollection, 'GET /users')) users.set(u.id, u);
    } else {
      // One round trip: the correlation query, and each linked user with its entitlements.
      replies = await batchGet([
        { id: 'byEmployeeId', url: filterUrl },
        ...links.flatMap((id, i) => {
          const urls = entitlementUrls(id);
          return [
            { id: `u${i}`, url: `${userPath(id)}?$select=${USER_SELECT}` },
            { id: `m-${id}`, url: urls.memberOf },
            { id: `l-${id}`, url: urls.licenses },
          ];
        }),
      ]);
      const first = batchBody(replies, 'byEmployeeId', S.userCollection, 'GET /users by employeeId');
      for (const u of await rest(first, S.userCollection, 'GET /users')) users.set(u.id, u);
      links.forEach((id, i) => {
        const r = replies!.get(`u${i}`);
        if (r?.status === 404) return; // a stale link: the object is gone
        const u = batchBody(replies!, `u${i}`, S.userRecord, `GET /users/${id}`);
        users.set(u.id, u);
      });
    }
    return withEntitlements([...users.values()], replies);
  }

  async function getAccount(accountId: string): Promise<ActualAccount> {
    const urls = entitlementUrls(accountId);
    const replies = await batchGet([
      { id: 'user', url: `${userPath(accountId)}?$select=${USER_SELECT}` },
      { id: `m-${accountId}`, url: urls.memberOf },
      { id: `l-${accountId}`, url: urls.licenses },
    ]);
    const user = batchBody(replies, 'user', S.userRecord, `GET /users/${accountId}`);
    return (await withEntitlements([user], replies))[0]!;
  }

  async function listAccounts(cursor?: string): Promise<AccountPage> {
    const path = cursor ? ownLink(cursor, 'cursor') : `/users?$select=${USER_SELECT}&$top=${pageSize}`;
    const reply = await send('GET', path);
    check(reply, 'GET /users');
    const page = parse(S.userCollection, reply.body, 'GET /users');
    const accounts = await withEntitlements(page.value);
    return { accounts, ...(page['@odata.nextLink'] ? { nextCursor: page['@odata.nextLink'] } : {}) };
  }

  // ---- writes ---------------------------------------------------------------------------------

  async function createAccount(profile: AccountProfile, options: { enabled: boolean }) {
    const nickname = mailNickname(profile);
    const upn = profile.userName.includes('@') ? profile.userName : `${profile.userName || nickname}@${config.domain}`;
    const password = strongPassword();
    const body: Record<string, unknown> = {
      accountEnabled: options.enabled,
      displayName: profile.displayName,
      mailNickname: nickname,
      userPrincipalName: upn,
      passwordProfile: { forceChangePasswordNextSignIn: true, password },
      employeeId: profile.employeeId,
      givenName: profile.givenName,
      surname: profile.familyName,
      department: profile.department,
      jobTitle: profile.jobCode,
      officeLocation: profile.location,
      employeeType: profile.employmentType === 'contractor' ? 'Contractor' : 'Employee',
      ...(config.usageLocation ? { usageLocation: config.usageLocation } : {}),
    };
    const reply = await send('POST', '/users', { body, idempotent: false, secrets: [password] });
    if (reply.status === 400 && /userPrincipalName already exists/i.test(graphErrorMessage(reply.body))) {
      // A retried create, or a name clash: adopt the account only if it is this person's.
      const existing = await send('GET', `/users?$filter=${q(`userPrincipalName eq ${lit(upn)}`)}&$select=${USER_SELECT}`);
      check(existing, 'GET /users by userPrincipalName');
      const found = parse(S.userCollection, existing.body, 'GET /users').value[0];
      if (!found || found.employeeId !== profile.employeeId) {
        throw new TargetConflict(name, `userPrincipalName ${upn} already belongs to another account`, found ? [found.id] : []);
      }
      const account = await getAccount(found.id);
      return {
        account,
        change: record('create', found.id, false, [reply.requestId, existing.requestId], `account ${upn} already exists for this employee`),
      };
    }
    check(reply, 'POST /users', [password]);
    const created = parse(S.createdUser, reply.body, 'POST /users');
    const account: ActualAccount = {
      id: created.id,
      correlationKey: profile.employeeId,
      userName: created.userPrincipalName,
      status: options.enabled ? 'enabled' : 'disabled',
      entitlements: [],
    };
    return { account, change: record('create', created.id, true, [reply.requestId], `created ${created.userPrincipalName}`) };
  }

  async function setStatus(accountId: string, status: 'enabled' | 'suspended' | 'disabled'): Promise<ChangeRecord> {
    const want = status === 'enabled';
    const op = want ? 'enable' : status === 'suspended' ? 'suspend' : 'disable';
    const read = await send('GET', `${userPath(accountId)}?$select=id,accountEnabled`);
    check(read, `GET /users/${accountId}`);
    const user = parse(S.userStatus, read.body, `GET /users/${accountId}`);
    const note = status === 'suspended' ? ' (Entra has no suspended state: disabled)' : '';
    if (user.accountEnabled === want) {
      return record(op, accountId, false, [read.requestId], `already ${want ? 'enabled' : 'disabled'}${note}`);
    }
    const patch = await send('PATCH', userPath(accountId), { body: { accountEnabled: want } });
    check(patch, `PATCH /users/${accountId}`);
    return record(op, accountId, true, [read.requestId, patch.requestId], `accountEnabled → ${want}${note}`);
  }

  async function revokeSessions(accountId: string): Promise<ChangeRecord> {
    // Safe to resend: a second revocation only moves the cut-off a moment later.
    const reply = await send('POST', `${userPath(accountId)}/revokeSignInSessions`, { idempotent: true });
    check(reply, `POST /users/${accountId}/revokeSignInSessions`);
    const result = parse(S.revokeResult, reply.body, 'revokeSignInSessions');
    return record('revokeSessions', accountId, true, [reply.requestId], result.value ? 'sign-in sessions and refresh tokens revoked' : 'Graph answered value=false');
  }

  /** Direct group ids of the user (paged memberOf). */
  async function directGroupIds(accountId: string): Promise<{ ids: Set<string>; requestIds: Array<string | undefined> }> {
    const reply = await send('GET', `${userPath(accountId)}/memberOf?$select=id&$top=999`);
    check(reply, `GET /users/${accountId}/memberOf`);
    const first = parse(S.directoryObjectPage, reply.body, 'GET memberOf');
    const all = await rest(first, S.directoryObjectPage, 'GET memberOf');
    return { ids: new Set(all.map((o) => o.id)), requestIds: [reply.requestId] };
  }

  /** The only way this connector addresses a membership: the `$ref` link, never the member object. */
  const memberRef = (gid: string, uid?: string) =>
    uid === undefined
      ? `/groups/${encodeURIComponent(gid)}/members/$ref`
      : `/groups/${encodeURIComponent(gid)}/members/${encodeURIComponent(uid)}/$ref`;

  async function addEntitlement(accountId: string, e: EntitlementRef): Promise<ChangeRecord> {
    requireId(accountId);
    if (e.type === 'group') {
      const gid = await groupId(e.value);
      if (!gid) throw new AccountNotFound(name, `group '${e.value}' does not exist`);
      const current = await directGroupIds(accountId);
      if (current.ids.has(gid)) return record('addEntitlement', accountId, false, current.requestIds, 'already a member', e);
      const reply = await send('POST', memberRef(gid), {
        body: { '@odata.id': `${graphV1}/directoryObjects/${accountId}` },
        idempotent: true, // a duplicate answers 400 "already exist", handled below
      });
      if (reply.status === 400 && /already exist/i.test(graphErrorMessage(reply.body))) {
        return record('addEntitlement', accountId, false, [...current.requestIds, reply.requestId], 'already a member', e);
      }
      check(reply, `POST /groups/${gid}/members/$ref`);
      return record('addEntitlement', accountId, true, [...current.requestIds, reply.requestId], `added to group ${e.value}`, e);
    }
    if (e.type === 'license') {
      const sku = await skuId(e.value);
      if (!sku) throw new AccountNotFound(name, `license ${e.value} is not subscribed in the tenant`);
      const read = await send('GET', `${userPath(accountId)}?$select=id,usageLocation,assignedLicenses`);
      check(read, `GET /users/${accountId}`);
      const user = parse(S.userLicenses, read.body, `GET /users/${accountId}`);
      const ids: Array<string | undefined> = [read.requestId];
      if (user.assignedLicenses.some((l) => l.skuId === sku)) return record('addEntitlement', accountId, false, ids, 'license already assigned', e);
      let note = '';
      if (!user.usageLocation) {
        if (!config.usageLocation) {
          throw new TargetRejected(name, 400, `cannot assign ${e.value} to ${accountId}: the user has no usageLocation and none is configured`);
        }
        const patch = await send('PATCH', userPath(accountId), { body: { usageLocation: config.usageLocation } });
        check(patch, `PATCH /users/${accountId} usageLocation`);
        ids.push(patch.requestId);
        note = ` (usageLocation set to ${config.usageLocation})`;
      }
      const reply = await send('POST', `${userPath(accountId)}/assignLicense`, {
        body: { addLicenses: [{ skuId: sku, disabledPlans: [] }], removeLicenses: [] },
        idempotent: true,
      });
      check(reply, `POST /users/${accountId}/assignLicense`);
      return record('addEntitlement', accountId, true, [...ids, reply.requestId], `license ${e.value} assigned${note}`, e);
    }
    throw new PolicyViolation(`${name}: entitlement type '${e.type}' is not managed on Entra (groups and licenses only)`);
  }

  async function removeEntitlement(accountId: string, e: EntitlementRef): Promise<ChangeRecord> {
    requireId(accountId);
    if (e.type === 'group') {
      const gid = await groupId(e.value);
      if (!gid) return record('removeEntitlement', accountId, false, [], `group ${e.value} no longer exists`, e);
      const current = await directGroupIds(accountId);
      if (!current.ids.has(gid)) return record('removeEntitlement', accountId, false, current.requestIds, 'not a member', e);
      const reply = await send('DELETE', memberRef(gid, accountId));
      if (reply.status === 404) {
        return record('removeEntitlement', accountId, false, [...current.requestIds, reply.requestId], 'not a member', e);
      }
      check(reply, `DELETE /groups/${gid}/members/${accountId}/$ref`);
      return record('removeEntitlement', accountId, true, [...current.requestIds, reply.requestId], `removed from group ${e.value}`, e);
    }
    if (e.type === 'license') {
      const sku = await skuId(e.value);
      if (!sku) return record('removeEntitlement', accountId, false, [], `license ${e.value} is not subscribed in the tenant`, e);
      const read = await send('GET', `${userPath(accountId)}?$select=id,usageLocation,assignedLicenses`);
      check(read, `GET /users/${accountId}`);
      const user = parse(S.userLicenses, read.body, `GET /users/${accountId}`);
      if (!user.assignedLicenses.some((l) => l.skuId === sku)) {
        return record('removeEntitlement', accountId, false, [read.requestId], 'license not assigned', e);
      }
      const reply = await send('POST', `${userPath(accountId)}/assignLicense`, {
        body: { addLicenses: [], removeLicenses: [sku] },
        idempotent: true,
      });
      if (reply.status === 400 && /does not have a corresponding license/i.test(graphErrorMessage(reply.body))) {
        return record('removeEntitlement', accountId, false, [read.requestId, reply.requestId], 'license not assigned', e);
      }
      check(reply, `POST /users/${accountId}/assignLicense`);
      return record('removeEntitlement', accountId, true, [read.requestId, reply.requestId], `license ${e.value} removed`, e);
    }
    throw new PolicyViolation(`${name}: entitlement type '${e.type}' is not managed on Entra (groups and licenses only)`);
  }

  async function deleteAccount(accountId: string): Promise<ChangeRecord> {
    const reply = await send('DELETE', userPath(accountId));
    if (reply.status === 404) return record('delete', accountId, false, [reply.requestId], 'already deleted');
    check(reply, `DELETE /users/${accountId}`);
    return record('delete', accountId, true, [reply.requestId], 'user deleted (recoverable from deleted items for 30 days)');
  }

  async function createTemporaryAccessPass(accountId: string, lifetimeInMinutes: number, startDateTime?: string): Promise<TemporaryAccessPass> {
    if (!Number.isInteger(lifetimeInMinutes) || lifetimeInMinutes < 10 || lifetimeInMinutes > 43200) {
      throw new ValidationError(['lifetimeInMinutes: an integer from 10 to 43200']);
    }
    // Resending is safe: a new pass replaces the previous one, and only the last is returned.
    const reply = await send('POST', `${userPath(accountId)}/authentication/temporaryAccessPassMethods`, {
      body: { lifetimeInMinutes, isUsableOnce: false, ...(startDateTime ? { startDateTime } : {}) },
      idempotent: true,
    });
    const secretOf = (b: unknown) => {
      const s = (b as { temporaryAccessPass?: unknown } | undefined)?.temporaryAccessPass;
      return typeof s === 'string' ? [s] : [];
    };
    check(reply, `POST /users/${accountId}/authentication/temporaryAccessPassMethods`, secretOf(reply.body));
    const tap = S.temporaryAccessPass.safeParse(reply.body);
    if (!tap.success) {
      // The issue list names fields only; values (the pass) are not echoed.
      throw new TargetUnavailable(name, `temporaryAccessPassMethods: unexpected response: ${zodIssues(tap.error)}`);
    }
    return {
      secret: tap.data.temporaryAccessPass,
      startDateTime: tap.data.startDateTime,
      lifetimeInMinutes: tap.data.lifetimeInMinutes,
      change: record(
        'enable',
        accountId,
        true,
        [reply.requestId],
        `Temporary Access Pass ${tap.data.id} issued, valid ${tap.data.lifetimeInMinutes} min from ${tap.data.startDateTime}`,
      ),
    };
  }

  // ---- evidence and reconciliation ------------------------------------------------------------

  async function auditEvidence(accountId: string, since: string): Promise<AuditEntry[]> {
    const at = Date.parse(since);
    if (Number.isNaN(at)) throw new ValidationError([`since: not an ISO date-time (${since})`]);
    const filter = `targetResources/any(t:t/id eq ${lit(requireId(accountId))}) and activityDateTime ge ${new Date(at).toISOString()}`;
    const reply = await send('GET', `/auditLogs/directoryAudits?$filter=${q(filter)}`);
    check(reply, 'GET /auditLogs/directoryAudits');
    const first = parse(S.directoryAuditPage, reply.body, 'GET /auditLogs/directoryAudits');
    const entries = await rest(first, S.directoryAuditPage, 'GET /auditLogs/directoryAudits');
    return entries
      .map((a) => {
        const props = a.targetResources.flatMap((t) => (t.modifiedProperties ?? []).map((p) => p.displayName).filter(Boolean));
        return {
          id: a.id,
          time: a.activityDateTime,
          eventType: a.activityDisplayName,
          outcome: a.result ?? 'unknown',
          ...(a.initiatedBy?.app?.displayName || a.initiatedBy?.user?.userPrincipalName
            ? { actor: (a.initiatedBy?.app?.displayName ?? a.initiatedBy?.user?.userPrincipalName)! }
            : {}),
          targetIds: a.targetResources.map((t) => t.id).filter((id): id is string => !!id),
          summary: `${a.activityDisplayName} (${a.category})${props.length ? `: ${[...new Set(props)].join(', ')}` : ''}`,
        };
      })
      .sort((x, y) => x.time.localeCompare(y.time));
  }

  async function listChanges(link?: string): Promise<EntraChanges> {
    const path = link ? ownLink(link, 'delta link') : `/users/delta?$select=${USER_SELECT}`;
    const reply = await send('GET', path, { headers: { Prefer: `odata.maxpagesize=${pageSize}` } });
    const code = graphErrorCode(reply.body);
    if (reply.status === 410 || (reply.status === 400 && /syncStateNotFound|resyncRequired/i.test(code ?? ''))) {
      return { accounts: [], removedIds: [], resyncRequired: true };
    }
    check(reply, 'GET /users/delta');
    const page = parse(S.deltaPage, reply.body, 'GET /users/delta');
    const accounts: AccountSummary[] = [];
    const removedIds: string[] = [];
    for (const item of page.value) {
      if ('@removed' in item) removedIds.push(item.id);
      else {
        const { entitlements: _none, ...summary } = toAccount(item, []);
        accounts.push(summary);
      }
    }
    return {
      accounts,
      removedIds,
      ...(page['@odata.nextLink'] ? { nextLink: page['@odata.nextLink'] } : {}),
      ...(page['@odata.deltaLink'] ? { deltaLink: page['@odata.deltaLink'] } : {}),
      resyncRequired: false,
    };
  }

  function record(
    op: ChangeRecord['op'],
    accountId: string,
    changed: boolean,
    requestIds: Array<string | undefined>,
    detail: string,
    entitlement?: EntitlementRef,
  ): ChangeRecord {
    return {
      target: name,
      op,
      accountId,
      changed,
      ...(entitlement ? { entitlement: { type: entitlement.type, value: entitlement.value } } : {}),
      requestIds: requestIds.filter((id): id is string => !!id),
      detail,
    };
  }

  function requireId(id: string): string {
    if (typeof id !== 'string' || !id.trim()) throw new ValidationError(['accountId: required']);
    return id;
  }

  return {
    name,
    kind: 'entra',
    capabilities,
    findAccounts,
    getAccount,
    createAccount,
    setStatus,
    revokeSessions,
    addEntitlement,
    removeEntitlement,
    deleteAccount,
    listAccounts,
    auditEvidence,
    createTemporaryAccessPass,
    listChanges,
    stats: () => ({ tokenRequests: auth.tokenRequests, governor: { ...governor.stats } }),
  };
}

/** Percent-encodes an OData expression for the query string. */
function q(expr: string): string {
  return encodeURIComponent(expr);
}

/** An OData string literal (single quotes doubled). */
function lit(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function pathOnly(path: string): string {
  return path.split('?')[0]!;
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

/** mailNickname: the local part of the login (or email), reduced to what Entra accepts. */
function mailNickname(profile: AccountProfile): string {
  const source = (profile.userName || profile.email).split('@')[0] ?? '';
  const cleaned = source
    .normalize('NFKD')
    .replace(/[^A-Za-z0-9._-]/g, '')
    .replace(/^\.+|\.+$/g, '')
    .slice(0, 64);
  return cleaned || `u${profile.employeeId.replace(/[^A-Za-z0-9]/g, '')}`.slice(0, 64);
}

/** 24 characters from all four classes; it is set once and never stored, logged or returned. */
function strongPassword(): string {
  const sets = ['ABCDEFGHJKLMNPQRSTUVWXYZ', 'abcdefghijkmnopqrstuvwxyz', '23456789', '!@#$%^&*-_=+?'];
  const all = sets.join('');
  const chars = sets.map((s) => s[randomInt(s.length)]!);
  for (const b of randomBytes(20)) chars.push(all[b % all.length]!);
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars.join('');
}

