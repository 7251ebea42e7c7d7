/**
 * A Microsoft Graph v1.0 (+ Microsoft identity platform token endpoint) stand-in, served over
 * https on 127.0.0.1 with a certificate from the throwaway local CA (see `tls.ts`).
 *
 * It behaves like Graph for what the Entra connector uses — client-credentials tokens, users,
 * groups and direct memberships via `$ref`, licenses, sign-in session revocation, Temporary
 * Access Passes, directory audits, `/users/delta` with expiring delta tokens, and JSON `$batch` —
 * with Graph's status codes, error bodies and headers (`request-id`, `client-request-id`,
 * `Retry-After`). Latency, faults and rate limits come from the shared stand-in controls.
 *
 * One trap is modelled on purpose: `DELETE /groups/{g}/members/{u}` *without* `/$ref` addresses
 * the member object itself, i.e. deletes the user. Tests use it to prove the connector only ever
 * removes memberships through `/$ref`.
 */
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  RateLimiter,
  applyControls,
  defaultControls,
  listen,
  readBody,
  sendJson,
  type RateLimitConfig,
  type RequestLogEntry,
  type StandInControls,
  type TlsMaterial,
} from './http-kit.ts';
import {
  DEFAULT_USER_PROPERTIES,
  Directory,
  GROUP_FILTERABLE,
  GROUP_PROPERTIES,
  USER_FILTERABLE,
  USER_PROPERTIES,
  type ChangeContext,
  type GraphSeed,
} from './graph-directory.ts';
import { GraphHttpError, badRequest, matches, notFound, parseFilter, parseSelect, parseTop, project } from './graph-odata.ts';
import { ensureLocalTls } from './tls.ts';

export type { GraphSeed, GraphUser, GraphGroup, DirectoryAudit, SubscribedSku } from './graph-directory.ts';
export { Directory } from './graph-directory.ts';

export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';

export interface GraphStandInOptions {
  tenantId?: string;
  clientId: string;
  clientSecret: string;
  port?: number;
  seed?: GraphSeed;
  controls?: Partial<StandInControls>;
  /** Access token lifetime (Entra issues ~1 h tokens). */
  tokenLifetimeSeconds?: number;
  /** Delta tokens older than this (stand-in clock) answer 410 `syncStateNotFound`. Default 7 days. */
  deltaTokenTtlMs?: number;
  /** Delta page size when the client sends no `Prefer: odata.maxpagesize`. */
  deltaPageSize?: number;
  /** When set, a user's UPN must use one of these domains (as in a real tenant). */
  verifiedDomains?: string[];
  /** Server key + certificate; default: the local throwaway CA's 127.0.0.1 certificate. */
  tls?: TlsMaterial;
}

export interface GraphRequestLogEntry extends RequestLogEntry {
  /** Raw query string without `?`. */
  query: string;
  requestId: string;
  clientRequestId?: string;
}

/** Every Graph operation served: the HTTP ones and each request inside a `$batch`. */
export interface GraphOperationLogEntry {
  method: string;
  path: string;
  query: string;
  status: number;
  via: 'http' | 'batch';
  at: number;
}

export interface GraphStandIn {
  /** `https://127.0.0.1:PORT` */
  url: string;
  /** `POST` client-credentials token endpoint for the tenant. */
  tokenUrl: string;
  /** `https://127.0.0.1:PORT/v1.0` */
  graphUrl: string;
  port: number;
  tenantId: string;
  controls: StandInControls;
  state: Directory;
  /** HTTP round trips (a `$batch` is one). */
  requestLog: GraphRequestLogEntry[];
  /** Graph operations, including each request inside a batch. */
  operations: GraphOperationLogEntry[];
  /** Access tokens issued so far. */
  readonly tokensIssued: number;
  seed(seed: GraphSeed): void;
  /** Moves the stand-in clock (token and delta-token expiry, audit timestamps). */
  advanceClock(ms: number): void;
  now(): number;
  /** Invalidates every issued access token (as a credential rotation or a revoked app would). */
  revokeTokens(): void;
  close(): Promise<void>;
}

interface GraphRequest {
  method: string;
  /** Path below the version segment, e.g. `/users/123/memberOf`. */
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: unknown;
  change: ChangeContext;
}

interface GraphResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface DeltaCursor {
  ids: Array<{ id: string; removed: boolean }>;
  offset: number;
  pageSize: number;
  select: string[];
  upToSeq: number;
}

const JSON_TYPE = 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false';
const DAY_MS = 24 * 60 * 60 * 1000;
const BATCH_LIMIT = 20;

export async function startGraphStandIn(options: GraphStandInOptions): Promise<GraphStandIn> {
  const tenantId = options.tenantId ?? randomUUID();
  const controls: StandInControls = { ...defaultControls(), ...options.controls };
  let clockOffset = 0;
  const now = () => Date.now() + clockOffset;
  const directory = new Directory(tenantId, now);
  if (options.seed) directory.seed(options.seed);

  const tokenLifetime = options.tokenLifetimeSeconds ?? 3599;
  const deltaTtl = options.deltaTokenTtlMs ?? 7 * DAY_MS;
  const tokens = new Map<string, { appId: string; expiresAt: number }>();
  const deltaTokens = new Map<string, { seq: number; issuedAt: number; select: string[]; pageSize: number }>();
  const deltaCursors = new Map<string, DeltaCursor>();
  const requestLog: GraphRequestLogEntry[] = [];
  const operations: GraphOperationLogEntry[] = [];
  let tokensIssued = 0;
  let limiter: { config: RateLimitConfig; limiter: RateLimiter } | undefined;

  let base = '';
  let graphUrl = '';

  const rateLimit = (): { limited: boolean; retryAfter: number; headers: Record<string, string> } => {
    const config = controls.rateLimit;
    if (!config) return { limited: false, retryAfter: 0, headers: {} };
    if (limiter?.config !== config) limiter = { config, limiter: new RateLimiter(config) };
    const s = limiter.limiter.take();
    const used = s.limit - s.remaining;
    const headers: Record<string, string> = {};
    // Graph's early warning: sent once an app has used 80 % of its budget.
    if (used / s.limit >= 0.8) headers['x-ms-throttle-limit-percentage'] = (used / s.limit).toFixed(1);
    return { limited: s.limited, retryAfter: Math.max(1, Math.ceil((s.resetAt - Date.now()) / 1000)), headers };
  };

  const throttled = (retryAfter: number, requestId: string, clientRequestId: string): GraphResponse => ({
    status: 429,
    headers: { 'Retry-After': String(retryAfter) },
    body: errorBody(
      'Request_ThrottledTemporarily',
      `Your request is throttled temporarily. Please try after ${retryAfter} seconds.`,
      requestId,
      clientRequestId,
      now(),
    ),
  });

  // ---- Graph routes ---------------------------------------------------------------------------

  const dispatch = (r: GraphRequest): GraphResponse => {
    const p = r.path;
    const seg = p.split('/').filter(Boolean).map(decodeURIComponent);
    const m = r.method;

    if (seg[0] === 'users') {
      if (seg.length === 1) {
        if (m === 'GET') return listUsers(r);
        if (m === 'POST') return createUser(r);
      }
      if (seg.length === 2 && (seg[1] === 'delta' || seg[1] === 'microsoft.graph.delta') && m === 'GET') return delta(r);
      if (seg.length === 2) {
        if (m === 'GET') return getUser(r, seg[1]!);
        if (m === 'PATCH') {
          directory.patchUser(seg[1]!, asObject(r.body), r.change);
          return { status: 204 };
        }
        if (m === 'DELETE') {
          directory.deleteUser(seg[1]!, r.change);
          return { status: 204 };
        }
      }
      if (seg.length === 3) {
        const [, id, action] = seg as [string, string, string];
        if (action === 'revokeSignInSessions' && m === 'POST') {
          directory.revokeSessions(id, r.change);
          return { status: 200, body: { '@odata.context': `${graphUrl}/$metadata#Edm.Boolean`, value: true } };
        }
        if (action === 'assignLicense' && m === 'POST') {
          const u = directory.assignLicense(id, asObject(r.body), r.change);
          return {
            status: 200,
            body: { '@odata.context': `${graphUrl}/$metadata#users/$entity`, ...project(directory.userView(u), DEFAULT_USER_PROPERTIES) },
          };
        }
        if (action === 'licenseDetails' && m === 'GET') return licenseDetails(id);
        if (action === 'memberOf' && m === 'GET') return memberOf(r, id);
      }
      if (seg.length === 4 && seg[2] === 'memberOf' && seg[3] === 'microsoft.graph.group' && m === 'GET') return memberOf(r, seg[1]!);
      if (seg[2] === 'authentication' && seg[3] === 'temporaryAccessPassMethods') {
        const id = seg[1]!;
        if (seg.length === 4 && m === 'POST') return createTap(r, id);
        if (seg.length === 4 && m === 'GET') return listTaps(id);
        if (seg.length === 5 && m === 'DELETE') {
          directory.deleteTap(id, seg[4]!, r.change);
          return { status: 204 };
        }
      }
    }
    if (seg[0] === 'groups') {
      if (seg.length === 1 && m === 'GET') return listGroups(r);
      if (seg.length === 2 && m === 'GET') {
        return { status: 200, body: { '@odata.context': `${graphUrl}/$metadata#groups/$entity`, ...directory.group(seg[1]!) } };
      }
      if (seg[2] === 'members') {
        const gid = seg[1]!;
        if (seg.length === 3 && m === 'GET') return groupMembers(r, gid);
        if (seg.length === 4 && seg[3] === '$ref' && m === 'POST') {
          directory.addMember(gid, refTarget(r.body), r.change);
          return { status: 204 };
        }
        if (seg.length === 5 && seg[4] === '$ref' && m === 'DELETE') {
          directory.removeMember(gid, seg[3]!, r.change);
          return { status: 204 };
        }
        if (seg.length === 4 && m === 'DELETE') {
          // No `/$ref`: this addresses the member object itself — Graph deletes the user.
          directory.group(gid);
          if (!directory.isMember(gid, seg[3]!)) throw notFound(seg[3]!);
          directory.deleteUser(seg[3]!, r.change);
          return { status: 204 };
        }
      }
    }
    if (seg[0] === 'subscribedSkus' && seg.length === 1 && m === 'GET') {
      return { status: 200, body: { '@odata.context': `${graphUrl}/$metadata#subscribedSkus`, value: [...directory.skus.values()] } };
    }
    if (seg[0] === 'auditLogs' && seg[1] === 'directoryAudits' && seg.length === 2 && m === 'GET') return audits(r);

    const known = ['users', 'groups', 'subscribedSkus', 'auditLogs'].includes(seg[0] ?? '');
    if (known) {
      throw new GraphHttpError(405, 'Request_BadRequest', `Specified HTTP method is not allowed for the request uri.`);
    }
    throw new GraphHttpError(400, 'BadRequest', `Resource not found for the segment '${seg[0] ?? ''}'.`);
  };

  const listUsers = (r: GraphRequest): GraphResponse => {
    const clauses = parseFilter(r.query.get('$filter'), 'User', USER_FILTERABLE);
    const select = parseSelect(r.query.get('$select'), 'user', USER_PROPERTIES) ?? [...DEFAULT_USER_PROPERTIES];
    const top = parseTop(r.query.get('$top'), 100, 999);
    const all = [...directory.users.values()]
      .sort((a, b) => a.createdDateTime.localeCompare(b.createdDateTime) || a.id.localeCompare(b.id))
      .map((u) => directory.userView(u))
      .filter((u) => matches(u, clauses));
    return page(r, all, top, (u) => project(u, select), `users(${select.join(',')})`);
  };

  const getUser = (r: GraphRequest, id: string): GraphResponse => {
    const select = parseSelect(r.query.get('$select'), 'user', USER_PROPERTIES) ?? [...DEFAULT_USER_PROPERTIES];
    const u = directory.user(id);
    return {
      status: 200,
      body: { '@odata.context': `${graphUrl}/$metadata#users(${select.join(',')})/$entity`, ...project(directory.userView(u), select) },
    };
  };

  const createUser = (r: GraphRequest): GraphResponse => {
    const u = directory.createUser(asObject(r.body), r.change, options.verifiedDomains);
    return {
      status: 201,
      headers: { Location: `${graphUrl}/users/${u.id}` },
      body: { '@odata.context': `${graphUrl}/$metadata#users/$entity`, ...project(directory.userView(u), DEFAULT_USER_PROPERTIES) },
    };
  };

  const licenseDetails = (id: string): GraphResponse => {
    const u = directory.user(id);
    const value = [...(directory.licenses.get(u.id) ?? new Map<string, string[]>()).keys()].map((skuId) => {
      const sku = directory.skus.get(skuId)!;
      return {
        id: `${u.id}_${skuId}`,
        skuId,
        skuPartNumber: sku.skuPartNumber,
        servicePlans: sku.servicePlans.map((sp) => ({ ...sp })),
      };
    });
    return { status: 200, body: { '@odata.context': `${graphUrl}/$metadata#users('${u.id}')/licenseDetails`, value } };
  };

  const memberOf = (r: GraphRequest, id: string): GraphResponse => {
    const u = directory.user(id);
    const select = parseSelect(r.query.get('$select'), 'group', GROUP_PROPERTIES);
    const top = parseTop(r.query.get('$top'), 100, 999);
    const groups = directory.memberOf(u.id).map((g) => ({ '@odata.type': '#microsoft.graph.group', ...g }));
    return page(r, groups, top, (g) => (select ? project(g, select) : g), 'directoryObjects');
  };

  const listGroups = (r: GraphRequest): GraphResponse => {
    const clauses = parseFilter(r.query.get('$filter'), 'Group', GROUP_FILTERABLE);
    const select = parseSelect(r.query.get('$select'), 'group', GROUP_PROPERTIES);
    const top = parseTop(r.query.get('$top'), 100, 999);
    const all = [...directory.groups.values()]
      .sort((a, b) => a.displayName.localeCompare(b.displayName))
      .filter((g) => matches(g as unknown as Record<string, unknown>, clauses)) as unknown as Array<Record<string, unknown>>;
    return page(r, all, top, (g) => (select ? project(g, select) : g), 'groups');
  };

  const groupMembers = (r: GraphRequest, gid: string): GraphResponse => {
    const g = directory.group(gid);
    const select = parseSelect(r.query.get('$select'), 'user', USER_PROPERTIES);
    const top = parseTop(r.query.get('$top'), 100, 999);
    const users = [...(directory.members.get(g.id) ?? [])]
      .map((id) => directory.users.get(id))
      .filter((u) => u !== undefined)
      .map((u) => ({ '@odata.type': '#microsoft.graph.user', ...directory.userView(u) }));
    return page(r, users, top, (u) => project(u, select ?? [...DEFAULT_USER_PROPERTIES]), 'directoryObjects');
  };

  const createTap = (r: GraphRequest, id: string): GraphResponse => {
    const { record, secret } = directory.createTap(id, asObject(r.body), r.change);
    return {
      status: 201,
      body: {
        '@odata.context': `${graphUrl}/$metadata#users('${record.userId}')/authentication/temporaryAccessPassMethods/$entity`,
        ...tapView(record, now()),
        temporaryAccessPass: secret,
      },
    };
  };

  const listTaps = (id: string): GraphResponse => {
    const u = directory.user(id);
    const t = directory.taps.get(u.id);
    return {
      status: 200,
      body: {
        '@odata.context': `${graphUrl}/$metadata#users('${u.id}')/authentication/temporaryAccessPassMethods`,
        value: t ? [{ ...tapView(t, now()), temporaryAccessPass: null }] : [],
      },
    };
  };

  const audits = (r: GraphRequest): GraphResponse => {
    const clauses = parseFilter(r.query.get('$filter'), 'directoryAudit', [
      'activityDateTime', 'category', 'activityDisplayName', 'correlationId', 'result', 'loggedByService', 'targetResources/id',
    ]);
    const top = parseTop(r.query.get('$top'), 1000, 1000);
    const all = [...directory.audits]
      .reverse() // newest first, as Graph returns them
      .filter((a) => matches(a as unknown as Record<string, unknown>, clauses)) as unknown as Array<Record<string, unknown>>;
    return page(r, all, top, (a) => a, 'auditLogs/directoryAudits');
  };

  /** One page of a collection; the nextLink keeps the caller's query and adds `$skiptoken`. */
  const page = <T,>(
    r: GraphRequest,
    all: T[],
    top: number,
    view: (item: T) => Record<string, unknown>,
    context: string,
  ): GraphResponse => {
    const token = r.query.get('$skiptoken');
    let offset = 0;
    if (token) {
      const parsed = /^o(\d+)$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
      if (!parsed) throw badRequest(`Invalid $skiptoken.`, 'Directory_ExpiredPageToken');
      offset = Number(parsed[1]);
    }
    const slice = all.slice(offset, offset + top);
    const body: Record<string, unknown> = { '@odata.context': `${graphUrl}/$metadata#${context}` };
    if (offset + top < all.length) {
      const q = new URLSearchParams(r.query);
      q.set('$skiptoken', Buffer.from(`o${offset + top}`).toString('base64url'));
      body['@odata.nextLink'] = `${graphUrl}${r.path}?${odataQuery(q)}`;
    }
    body.value = slice.map(view);
    return { status: 200, body };
  };

  const delta = (r: GraphRequest): GraphResponse => {
    const skip = r.query.get('$skiptoken');
    const dtoken = r.query.get('$deltatoken');
    const preferred = /odata\.maxpagesize=(\d+)/.exec(r.headers.prefer ?? '')?.[1];
    let cursor: DeltaCursor;
    if (skip) {
      const c = deltaCursors.get(skip);
      if (!c) throw syncStateNotFound();
      deltaCursors.delete(skip);
      cursor = c;
    } else {
      const select = parseSelect(r.query.get('$select'), 'user', USER_PROPERTIES) ?? [...DEFAULT_USER_PROPERTIES];
      const pageSize = Number(preferred ?? options.deltaPageSize ?? 100);
      if (dtoken === 'latest') {
        return deltaPage({ ids: [], offset: 0, pageSize, select, upToSeq: directory.seq });
      }
      let since: number | undefined;
      if (dtoken) {
        const t = deltaTokens.get(dtoken);
        if (!t || now() - t.issuedAt > deltaTtl) {
          deltaTokens.delete(dtoken);
          throw syncStateNotFound();
        }
        since = t.seq;
        cursor = { ids: [], offset: 0, pageSize: Number(preferred ?? t.pageSize), select: t.select, upToSeq: directory.seq };
      } else {
        cursor = { ids: [], offset: 0, pageSize, select, upToSeq: directory.seq };
      }
      const changed: Array<{ id: string; removed: boolean; seq: number }> = [];
      for (const [id, seq] of directory.userSeq) {
        if (since === undefined || seq > since) changed.push({ id, removed: false, seq });
      }
      if (since !== undefined) {
        for (const [id, d] of directory.deleted) if (d.seq > since) changed.push({ id, removed: true, seq: d.seq });
      }
      cursor.ids = changed.sort((a, b) => a.seq - b.seq).map(({ id, removed }) => ({ id, removed }));
    }
    return deltaPage(cursor);
  };

  const deltaPage = (cursor: DeltaCursor): GraphResponse => {
    const slice = cursor.ids.slice(cursor.offset, cursor.offset + cursor.pageSize);
    const value = slice.map(({ id, removed }) => {
      const u = directory.users.get(id);
      if (removed || !u) return { '@odata.type': '#microsoft.graph.user', id, '@removed': { reason: 'changed' } };
      return project(directory.userView(u), cursor.select);
    });
    const body: Record<string, unknown> = { '@odata.context': `${graphUrl}/$metadata#users(${cursor.select.join(',')})` };
    if (cursor.offset + cursor.pageSize < cursor.ids.length) {
      const token = randomBytes(18).toString('base64url');
      deltaCursors.set(token, { ...cursor, offset: cursor.offset + cursor.pageSize });
      body['@odata.nextLink'] = `${graphUrl}/users/delta?$skiptoken=${token}`;
    } else {
      const token = randomBytes(18).toString('base64url');
      deltaTokens.set(token, { seq: cursor.upToSeq, issuedAt: now(), select: cursor.select, pageSize: cursor.pageSize });
      body['@odata.deltaLink'] = `${graphUrl}/users/delta?$deltatoken=${token}`;
    }
    body.value = value;
    return { status: 200, body };
  };

  // ---- $batch ---------------------------------------------------------------------------------

  const batch = (outer: GraphRequest, clientRequestId: string): GraphResponse => {
    const body = asObject(outer.body);
    const requests = body.requests;
    if (!Array.isArray(requests) || requests.length === 0) throw badRequest('Invalid batch payload format.', 'BadRequest');
    if (requests.length > BATCH_LIMIT) {
      throw badRequest(`Number of requests in the batch exceeds the limit of ${BATCH_LIMIT}.`, 'BadRequest');
    }
    const seen = new Set<string>();
    const parsed = requests.map((raw: unknown) => {
      const q = raw as { id?: unknown; method?: unknown; url?: unknown; headers?: unknown; body?: unknown; dependsOn?: unknown };
      if (typeof q.id !== 'string' || !q.id) throw badRequest('Batch request id is required.', 'BadRequest');
      const key = q.id.toLowerCase();
      if (seen.has(key)) throw badRequest(`Batch request id '${q.id}' is duplicated.`, 'BadRequest');
      seen.add(key);
      if (typeof q.method !== 'string' || typeof q.url !== 'string') {
        throw badRequest(`Batch request '${q.id}' needs a method and a url.`, 'BadRequest');
      }
      const headers = lowerKeys((q.headers as Record<string, string> | undefined) ?? {});
      if (q.body !== undefined && !headers['content-type']) {
        throw badRequest(`Content-Type header is required for request '${q.id}' with a body.`, 'BadRequest');
      }
      const dependsOn = Array.isArray(q.dependsOn) ? (q.dependsOn as string[]) : [];
      return { id: q.id, method: q.method.toUpperCase(), url: q.url, headers, body: q.body, dependsOn };
    });
    for (const q of parsed) {
      for (const d of q.dependsOn) {
        if (!seen.has(d.toLowerCase())) throw badRequest(`Request '${q.id}' depends on unknown request '${d}'.`, 'BadRequest');
      }
    }
    const statusById = new Map<string, number>();
    const responses: Array<Record<string, unknown>> = [];
    for (const q of parsed) {
      const innerRequestId = randomUUID();
      let res: GraphResponse;
      const failedDep = q.dependsOn.find((d) => (statusById.get(d.toLowerCase()) ?? 0) >= 400);
      const rel = q.url.replace(/^\/?(v1\.0|beta)(?=\/)/, '');
      const u = new URL(rel.startsWith('/') ? rel : `/${rel}`, 'https://batch.invalid');
      if (failedDep) {
        res = {
          status: 424,
          body: errorBody('FailedDependency', `The dependent request '${failedDep}' failed.`, innerRequestId, clientRequestId, now()),
        };
      } else if (u.pathname === '/$batch') {
        res = graphErrorResponse(badRequest('Nested batch requests are not supported.', 'BadRequest'), innerRequestId, clientRequestId);
      } else {
        const rl = rateLimit();
        if (rl.limited) res = throttled(rl.retryAfter, innerRequestId, clientRequestId);
        else {
          try {
            res = dispatch({ method: q.method, path: u.pathname, query: u.searchParams, headers: q.headers, body: q.body, change: outer.change });
          } catch (err) {
            res = graphErrorResponse(err, innerRequestId, clientRequestId);
          }
        }
      }
      statusById.set(q.id.toLowerCase(), res.status);
      operations.push({ method: q.method, path: u.pathname, query: u.search.slice(1), status: res.status, via: 'batch', at: Date.now() });
      const headers: Record<string, string> = { ...(res.headers ?? {}) };
      if (res.body !== undefined) headers['Content-Type'] = `${JSON_TYPE};charset=utf-8`;
      responses.push({ id: q.id, status: res.status, headers, ...(res.body !== undefined ? { body: res.body } : {}) });
    }
    // Graph may answer in any order; clients must correlate by id.
    return { status: 200, body: { responses: responses.reverse() } };
  };

  // ---- token endpoint -------------------------------------------------------------------------

  const token = async (req: IncomingMessage, tenant: string): Promise<GraphResponse> => {
    const traceId = randomUUID();
    const fail = (status: number, error: string, code: number, description: string): GraphResponse => ({
      status,
      body: {
        error,
        error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${randomUUID()} Timestamp: ${new Date(now()).toISOString()}`,
        error_codes: [code],
        timestamp: new Date(now()).toISOString(),
        trace_id: traceId,
        correlation_id: randomUUID(),
      },
    });
    if (req.method !== 'POST') return fail(400, 'invalid_request', 900561, 'The endpoint only accepts POST requests.');
    if (tenant !== tenantId) return fail(400, 'invalid_tenant', 90002, `Tenant '${tenant}' not found.`);
    const form = new URLSearchParams(await readBody(req));
    let clientId = form.get('client_id');
    let secret = form.get('client_secret');
    const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const [id, s] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':');
      clientId = decodeURIComponent(id ?? '');
      secret = decodeURIComponent(s ?? '');
    }
    if (form.get('grant_type') !== 'client_credentials') {
      return fail(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    }
    if (clientId !== options.clientId) {
      return fail(400, 'unauthorized_client', 700016, `Application with identifier '${clientId ?? ''}' was not found in the directory '${tenantId}'.`);
    }
    if (!secret || !safeEqual(secret, options.clientSecret)) {
      return fail(
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
      );
    }
    if (form.get('scope') !== GRAPH_SCOPE) {
      return fail(400, 'invalid_scope', 1002012, `The provided value for scope ${form.get('scope') ?? ''} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
    }
    const accessToken = `eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.${randomBytes(32).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
    tokens.set(accessToken, { appId: clientId, expiresAt: now() + tokenLifetime * 1000 });
    tokensIssued += 1;
    return {
      status: 200,
      body: { token_type: 'Bearer', expires_in: tokenLifetime, ext_expires_in: tokenLifetime, access_token: accessToken },
    };
  };

  // ---- HTTP plumbing --------------------------------------------------------------------------

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    const clientRequestId = (req.headers['client-request-id'] as string | undefined) ?? requestId;
    const url = new URL(req.url ?? '/', base);
    const path = url.pathname;
    const method = (req.method ?? 'GET').toUpperCase();
    const entry: GraphRequestLogEntry = {
      method,
      path,
      query: url.search.slice(1),
      status: 0,
      at: Date.now(),
      requestId,
      clientRequestId: req.headers['client-request-id'] as string | undefined,
    };
    requestLog.push(entry);
    const common = { 'request-id': requestId, 'client-request-id': clientRequestId, 'x-ms-ags-diagnostic': '{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"JML-STANDIN"}}' };
    const send = (r: GraphResponse) => {
      entry.status = r.status;
      if (r.body === undefined) {
        res.writeHead(r.status, { ...common, ...(r.headers ?? {}) });
        res.end();
        return;
      }
      sendJson(res, r.status, r.body, { ...common, ...(r.headers ?? {}) }, path.endsWith('/token') ? 'application/json' : JSON_TYPE);
    };
    const tokenPath = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path);

    try {
      const proceed = await applyControls(controls, req, res, path, {
        error: (_res, status) =>
          send(tokenPath
            ? { status, body: { error: 'temporarily_unavailable', error_description: `AADSTS90036: The service is temporarily unavailable.` } }
            : graphErrorResponse(new GraphHttpError(status, serverErrorCode(status), serverErrorMessage(status)), requestId, clientRequestId)),
        throttle: (_res, seconds) => send(throttled(seconds, requestId, clientRequestId)),
      });
      if (!proceed) return;

      if (tokenPath) {
        send(await token(req, decodeURIComponent(tokenPath[1]!)));
        return;
      }
      const version = /^\/(v1\.0)(\/.*)$/.exec(path);
      if (!version) {
        send(graphErrorResponse(new GraphHttpError(400, 'BadRequest', 'Invalid version.'), requestId, clientRequestId));
        return;
      }
      const auth = authenticate(req.headers.authorization);
      if (!auth.ok) {
        send({
          ...graphErrorResponse(new GraphHttpError(401, 'InvalidAuthenticationToken', auth.message), requestId, clientRequestId),
          headers: { 'WWW-Authenticate': 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"' },
        });
        return;
      }
      const raw = await readBody(req);
      let body: unknown;
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          throw badRequest('Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.', 'BadRequest');
        }
      }
      const graphReq: GraphRequest = {
        method,
        path: version[2]!,
        query: url.searchParams,
        headers: lowerKeys(req.headers as Record<string, string>),
        body,
        change: { appId: auth.appId, correlationId: clientRequestId },
      };
      if (graphReq.path === '/$batch') {
        if (method !== 'POST') throw new GraphHttpError(405, 'BadRequest', 'The batch endpoint only accepts POST.');
        const out = batch(graphReq, clientRequestId);
        operations.push({ method, path, query: entry.query, status: out.status, via: 'http', at: Date.now() });
        send(out);
        return;
      }
      const rl = rateLimit();
      if (rl.limited) {
        operations.push({ method, path: graphReq.path, query: entry.query, status: 429, via: 'http', at: Date.now() });
        send(throttled(rl.retryAfter, requestId, clientRequestId));
        return;
      }
      let out: GraphResponse;
      try {
        out = dispatch(graphReq);
      } catch (err) {
        out = graphErrorResponse(err, requestId, clientRequestId);
      }
      operations.push({ method, path: graphReq.path, query: entry.query, status: out.status, via: 'http', at: Date.now() });
      send({ ...out, headers: { ...rl.headers, ...(out.headers ?? {}) } });
    } catch (err) {
      if (!res.headersSent) send(graphErrorResponse(err, requestId, clientRequestId));
    }
  };

  const graphErrorResponse = (err: unknown, requestId: string, clientRequestId: string): GraphResponse => {
    if (err instanceof GraphHttpError) {
      return { status: err.status, headers: err.headers, body: errorBody(err.code, err.message, requestId, clientRequestId, now()) };
    }
    return {
      status: 500,
      body: errorBody('UnknownError', err instanceof Error ? err.message : 'Unexpected error', requestId, clientRequestId, now()),
    };
  };

  const authenticate = (header: string | undefined): { ok: true; appId: string } | { ok: false; message: string } => {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    if (!m) return { ok: false, message: 'Access token is empty.' };
    const t = tokens.get(m[1]!);
    if (!t) return { ok: false, message: 'Access token validation failure. Invalid audience.' };
    if (now() >= t.expiresAt) return { ok: false, message: 'Lifetime validation failed, the token is expired.' };
    return { ok: true, appId: t.appId };
  };

  const tls = options.tls ?? ensureLocalTls();
  const server = await listen((req, res) => void handler(req, res), { port: options.port, tls });
  base = server.url;
  graphUrl = `${base}/v1.0`;

  return {
    url: base,
    tokenUrl: `${base}/${tenantId}/oauth2/v2.0/token`,
    graphUrl,
    port: server.port,
    tenantId,
    controls,
    state: directory,
    requestLog,
    operations,
    get tokensIssued() {
      return tokensIssued;
    },
    seed: (seed) => directory.seed(seed),
    advanceClock: (ms) => {
      clockOffset += ms;
    },
    now,
    revokeTokens: () => tokens.clear(),
    close: () => server.close(),
  };
}

function errorBody(code: string, message: string, requestId: string, clientRequestId: string, at: number) {
  return {
    error: {
      code,
      message,
      innerError: {
        date: new Date(at).toISOString().replace(/\.\d{3}Z$/, ''),
        'request-id': requestId,
        'client-request-id': clientRequestId,
      },
    },
  };
}

function syncStateNotFound(): GraphHttpError {
  return new GraphHttpError(
    410,
    'syncStateNotFound',
    'The sync state generation is not found. The delta token is expired and data must be synchronized again.',
  );
}

function serverErrorCode(status: number): string {
  if (status === 503) return 'serviceNotAvailable';
  if (status === 504) return 'gatewayTimeout';
  if (status >= 500) return 'UnknownError';
  return 'BadRequest';
}

function serverErrorMessage(status: number): string {
  if (status === 503) return 'The service is temporarily unavailable. Please retry later.';
  if (status === 504) return 'The request timed out.';
  return `HTTP ${status}`;
}

function tapView(t: { id: string; createdDateTime: string; startDateTime: string; lifetimeInMinutes: number; isUsableOnce: boolean }, at: number) {
  const start = Date.parse(t.startDateTime);
  const end = start + t.lifetimeInMinutes * 60_000;
  const reason = at < start ? 'NotYetValid' : at >= end ? 'Expired' : 'EnabledByPolicy';
  return {
    id: t.id,
    isUsable: reason === 'EnabledByPolicy',
    methodUsabilityReason: reason,
    temporaryAccessPass: null as string | null,
    createdDateTime: t.createdDateTime,
    startDateTime: t.startDateTime,
    lifetimeInMinutes: t.lifetimeInMinutes,
    isUsableOnce: t.isUsableOnce,
  };
}

/** `{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{id}"}` → the id. */
function refTarget(body: unknown): string {
  const ref = (body as { '@odata.id'?: unknown } | undefined)?.['@odata.id'];
  if (typeof ref !== 'string') throw badRequest("Invalid request body: missing '@odata.id'.", 'BadRequest');
  const m = /\/(?:directoryObjects|users)\/([^/?#]+)$/.exec(ref);
  if (!m) throw badRequest(`Invalid object identifier '${ref}'.`, 'Request_BadRequest');
  return decodeURIComponent(m[1]!);
}

function asObject(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('Empty Payload. JSON content expected.', 'BadRequest');
  }
  return body as Record<string, unknown>;
}

function lowerKeys(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

/** Serialises a query keeping OData's `$` prefixes readable, values percent-encoded. */
function odataQuery(q: URLSearchParams): string {
  return [...q].map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
