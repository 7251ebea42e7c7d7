/**
 * A stand-in for the Okta Management API: the endpoints the Okta connector uses, with Okta's
 * shapes, status codes, headers and error bodies (checked against Okta's OpenAPI spec by
 * `test/contract/okta-openapi.test.ts`), its user lifecycle rules, `search` / `filter` / cursor
 * paging, System Log entries for every change, and its rate-limit headers and 429s.
 *
 * It listens on 127.0.0.1 only. Latency, faults and the rate limit come from the shared kit so a
 * test drives every stand-in the same way; `state` exposes the org for assertions and
 * `requestLog` every request served (method, path, query, status, arrival time, request id).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  applyControls,
  defaultControls,
  listen,
  RateLimiter,
  readBody,
  sendJson,
  type RateLimitConfig,
  type RateState,
  type RequestLogEntry,
  type StandInControls,
} from './http-kit.ts';
import { filterPaths, FilterSyntaxError, matchesFilter, parseFilter, type FilterNode } from './okta-filter.ts';
import {
  OktaState,
  type OktaAppAssignment,
  type OktaAppRecord,
  type OktaGroupRecord,
  type OktaSeed,
  type OktaUserRecord,
  type OktaUserStatus,
  type SeedResult,
} from './okta-state.ts';

export { OktaState } from './okta-state.ts';
export type { OktaSeed, OktaSeedUser, OktaUserRecord, OktaGroupRecord, OktaAppRecord, OktaLogEvent, OktaUserStatus, SeedResult } from './okta-state.ts';

export interface OktaRequestLogEntry extends RequestLogEntry {
  /** Query string including the leading `?` (empty when none). */
  query: string;
  requestId: string;
  /** `X-Okta-Retry-Count` sent by the client, when it retried. */
  retryCount?: number;
  /** `X-Okta-Retry-For`: the request id of the first attempt, when the client retried. */
  retryFor?: string;
  /** The rate-limit reset (epoch ms) announced on this response. */
  rateLimitResetAt?: number;
}

export interface OktaStandInOptions {
  token: string;
  port?: number;
  seed?: OktaSeed;
  controls?: Partial<StandInControls>;
  now?: () => number;
}

/**
 * A write Okta applies but whose answer never arrives (the connection drops after the commit):
 * the case that makes retrying a non-idempotent call dangerous. Matching requests are served,
 * then their socket is destroyed instead of answered.
 */
export interface LostResponseRule {
  method?: string;
  path?: RegExp;
  /** How many matching requests lose their answer (default 1). */
  times?: number;
}

export interface OktaStandIn {
  url: string;
  token: string;
  controls: StandInControls;
  /** Requests to apply and then drop without an answer (see LostResponseRule). */
  lostResponses: LostResponseRule[];
  state: OktaState;
  requestLog: OktaRequestLogEntry[];
  seed(data: OktaSeed): SeedResult;
  close(): Promise<void>;
}

/** Okta's per-endpoint default when a test sets no limit (generous, but reported like Okta does). */
const DEFAULT_RATE_LIMIT: RateLimitConfig = { limit: 10_000, windowMs: 60_000 };

class OktaHttpError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    readonly errorSummary: string,
    readonly causes: string[] = [],
  ) {
    super(errorSummary);
  }
}

const notFound = (what: string, kind: string) => new OktaHttpError(404, 'E0000007', `Not found: Resource not found: ${what} (${kind})`);
const notAllowedInStatus = () =>
  new OktaHttpError(403, 'E0000038', "This operation is not allowed in the user's current status.");
const invalidSearch = (reason: string) => new OktaHttpError(400, 'E0000031', 'Invalid search criteria.', [reason]);

export async function startOktaStandIn(options: OktaStandInOptions): Promise<OktaStandIn> {
  const now = options.now ?? Date.now;
  const controls: StandInControls = { ...defaultControls(), ...options.controls };
  const state = new OktaState(now);
  if (options.seed) state.seed(options.seed);
  const requestLog: OktaRequestLogEntry[] = [];
  const lostResponses: LostResponseRule[] = [];
  const tokenDigest = createHash('sha256').update(`SSWS ${options.token}`).digest();

  let limiter: RateLimiter | undefined;
  let limiterConfig: RateLimitConfig | undefined;
  const takeRate = (): RateState => {
    const config = controls.rateLimit ?? DEFAULT_RATE_LIMIT;
    if (!limiter || limiterConfig !== config) {
      limiter = new RateLimiter(config, now);
      limiterConfig = config;
    }
    return limiter.take();
  };

  const authorized = (req: IncomingMessage): boolean => {
    const header = req.headers.authorization;
    if (typeof header !== 'string') return false;
    return timingSafeEqual(createHash('sha256').update(header).digest(), tokenDigest);
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void serve(req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 500, errorBody(500, 'E0000009', 'Internal Server Error'));
      else res.destroy();
    });
  };

  function errorBody(_status: number, code: string, summary: string, causes: string[] = []) {
    return {
      errorCode: code,
      errorSummary: summary,
      errorLink: code,
      errorId: `oae${state.randomToken(22)}`,
      errorCauses: causes.map((c) => ({ errorSummary: c })),
    };
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    const requestId = state.randomToken(27);
    const retryHeader = req.headers['x-okta-retry-count'];
    const retryFor = req.headers['x-okta-retry-for'];
    const entry: OktaRequestLogEntry = {
      method: req.method ?? 'GET',
      path,
      query: url.search,
      status: 0,
      at: now(),
      requestId,
      ...(typeof retryHeader === 'string' ? { retryCount: Number(retryHeader) } : {}),
      ...(typeof retryFor === 'string' ? { retryFor } : {}),
    };
    requestLog.push(entry);
    const rate = takeRate();

    const headersFor = (r: { limit: number; remaining: number; resetAt: number }) => {
      entry.rateLimitResetAt = r.resetAt;
      return {
        'X-Okta-Request-Id': requestId,
        'X-Rate-Limit-Limit': String(r.limit),
        'X-Rate-Limit-Remaining': String(r.remaining),
        'X-Rate-Limit-Reset': String(Math.ceil(r.resetAt / 1000)),
        Date: new Date(now()).toUTCString(),
      };
    };
    const send = (status: number, body: unknown, extra: Record<string, string | string[]> = {}) => {
      entry.status = status;
      const headers = { ...headersFor(rate), ...extra };
      if (body === undefined) {
        res.writeHead(status, headers);
        res.end();
      } else {
        sendJson(res, status, body, headers as Record<string, string>);
      }
    };
    const sendError = (e: OktaHttpError, extra: Record<string, string> = {}) =>
      send(e.status, errorBody(e.status, e.errorCode, e.errorSummary, e.causes), extra);

    const proceed = await applyControls(controls, req, res, path, {
      error: (_res, status) =>
        status >= 500
          ? sendError(new OktaHttpError(status, 'E0000009', 'Internal Server Error'))
          : sendError(new OktaHttpError(status, 'E0000001', 'Api validation failed: injected fault')),
      throttle: (_res, seconds) => {
        const resetAt = Math.ceil((now() + seconds * 1000) / 1000) * 1000;
        entry.status = 429;
        sendJson(res, 429, errorBody(429, 'E0000047', 'API call exceeded rate limit due to too many requests.'), {
          ...headersFor({ limit: rate.limit, remaining: 0, resetAt }),
        });
      },
    });
    if (!proceed) return;
    if (rate.limited) {
      return sendError(new OktaHttpError(429, 'E0000047', 'API call exceeded rate limit due to too many requests.'));
    }
    if (!authorized(req)) {
      return sendError(new OktaHttpError(401, 'E0000011', 'Invalid token provided'), { 'WWW-Authenticate': 'SSWS realm="Okta"' });
    }

    const base = `http://${req.headers.host ?? '127.0.0.1'}`;
    const ctx: RequestContext = {
      req,
      url,
      base,
      requestId,
      userAgent: String(req.headers['user-agent'] ?? ''),
      body: async () => {
        const raw = await readBody(req);
        if (!raw) return {};
        try {
          return JSON.parse(raw) as unknown;
        } catch {
          throw new OktaHttpError(400, 'E0000003', 'The request body was not well-formed.');
        }
      },
    };
    try {
      const out = await route(ctx, req.method ?? 'GET', path.split('/').filter(Boolean).map(decodeURIComponent));
      const lost = lostResponses.find(
        (r) => (r.times ?? 1) > 0 && (!r.method || r.method.toUpperCase() === req.method) && (!r.path || r.path.test(path)),
      );
      if (lost) {
        lost.times = (lost.times ?? 1) - 1;
        req.socket.destroy();
        return;
      }
      send(out.status, out.body, out.headers);
    } catch (e) {
      if (e instanceof OktaHttpError) return sendError(e);
      throw e;
    }
  }

  // ---- routing ---------------------------------------------------------------------------------

  interface RequestContext {
    req: IncomingMessage;
    url: URL;
    base: string;
    requestId: string;
    userAgent: string;
    body(): Promise<unknown>;
  }
  interface Reply {
    status: number;
    body?: unknown;
    headers?: Record<string, string | string[]>;
  }
  const ok = (body: unknown, headers?: Record<string, string | string[]>): Reply => ({ status: 200, body, headers });
  const noContent = (): Reply => ({ status: 204 });
  const methodNotAllowed = () => new OktaHttpError(405, 'E0000022', 'The endpoint does not support the provided HTTP method');

  async function route(ctx: RequestContext, method: string, seg: string[]): Promise<Reply> {
    if (seg[0] !== 'api' || seg[1] !== 'v1') throw new OktaHttpError(404, 'E0000007', `Not found: Resource not found: ${ctx.url.pathname}`);
    const [, , resource, id, sub, subId, action] = seg;
    if (resource === 'users') {
      if (id === undefined) {
        if (method === 'GET') return listUsers(ctx);
        if (method === 'POST') return createUser(ctx);
        throw methodNotAllowed();
      }
      const user = state.findUser(id);
      if (sub === undefined) {
        if (method === 'GET') return ok(userJson(requireUser(user, id), ctx.base));
        if (method === 'POST') return updateUser(ctx, requireUser(user, id));
        if (method === 'DELETE') return deleteUser(ctx, requireUser(user, id));
        throw methodNotAllowed();
      }
      const u = requireUser(user, id);
      if (sub === 'lifecycle' && subId && method === 'POST' && seg.length === 6) return lifecycle(ctx, u, subId);
      if (sub === 'sessions' && seg.length === 5) {
        if (method !== 'DELETE') throw methodNotAllowed();
        return revokeSessions(ctx, u);
      }
      if (sub === 'groups' && seg.length === 5 && method === 'GET') {
        return ok(state.groupsOf(u.id).map((g) => groupJson(g, ctx.base)));
      }
      if (sub === 'appLinks' && seg.length === 5 && method === 'GET') return ok(appLinks(u, ctx.base));
    }
    if (resource === 'groups') {
      if (id === undefined) {
        if (method === 'GET') return listGroups(ctx);
        throw methodNotAllowed();
      }
      const group = state.groups.get(id);
      if (!group) throw notFound(id, 'UserGroup');
      if (sub === undefined) {
        if (method === 'GET') return ok(groupJson(group, ctx.base));
        throw methodNotAllowed();
      }
      if (sub === 'users' && subId === undefined && method === 'GET') return listGroupMembers(ctx, group);
      if (sub === 'users' && subId !== undefined && seg.length === 6) {
        const user = requireUser(state.findUser(subId), subId);
        if (method === 'PUT') return addMember(ctx, group, user);
        if (method === 'DELETE') return removeMember(ctx, group, user);
        throw methodNotAllowed();
      }
    }
    if (resource === 'apps') {
      if (id === undefined) {
        if (method === 'GET') return listApps(ctx);
        throw methodNotAllowed();
      }
      const app = state.apps.get(id);
      if (!app) throw notFound(id, 'AppInstance');
      if (sub === undefined) {
        if (method === 'GET') return ok(appJson(app, ctx.base));
        throw methodNotAllowed();
      }
      if (sub === 'users' && subId === undefined) {
        if (method === 'GET') {
          // Paged like Okta: `limit` 50 by default, 500 at most, `after` cursor in the Link header.
          const assigned = [...state.appAssignments.get(app.id)!.values()].map((a) => ({ id: a.userId, a }));
          return page(ctx, assigned, parseLimit(ctx, 50, 500), ({ a }) => appUserJson(a, ctx.base));
        }
        if (method === 'POST') {
          const body = (await ctx.body()) as { id?: unknown };
          if (typeof body?.id !== 'string') {
            throw new OktaHttpError(400, 'E0000001', 'Api validation failed: id', ['id: The field cannot be left blank']);
          }
          return assignApp(ctx, app, requireUser(state.findUser(body.id), body.id));
        }
        throw methodNotAllowed();
      }
      if (sub === 'users' && subId !== undefined && seg.length === 6) {
        const user = requireUser(state.findUser(subId), subId);
        const assignment = state.appAssignments.get(app.id)!.get(user.id);
        if (method === 'GET') {
          if (!assignment) throw notFound(user.id, 'AppUser');
          return ok(appUserJson(assignment, ctx.base));
        }
        // PUT is the legacy verb for an assignment; POST updates an existing one (creates if absent).
        if (method === 'PUT' || method === 'POST') return assignApp(ctx, app, user);
        if (method === 'DELETE') return unassignApp(ctx, app, user);
        throw methodNotAllowed();
      }
    }
    if (resource === 'logs' && id === undefined) {
      if (method === 'GET') return listLogs(ctx);
      throw methodNotAllowed();
    }
    throw new OktaHttpError(404, 'E0000007', `Not found: Resource not found: ${ctx.url.pathname}`);
  }

  function requireUser(user: OktaUserRecord | undefined, id: string): OktaUserRecord {
    if (!user) throw notFound(id, 'User');
    return user;
  }

  // ---- shared list helpers --------------------------------------------------------------------

  function parseLimit(ctx: RequestContext, fallback: number, max: number): number {
    const raw = ctx.url.searchParams.get('limit');
    if (raw === null) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n)) throw new OktaHttpError(400, 'E0000001', 'Api validation failed: limit', ['limit: must be an integer']);
    if (n <= 0) return fallback;
    return Math.min(n, max);
  }

  function parseExpression(raw: string): FilterNode {
    try {
      return parseFilter(raw);
    } catch (e) {
      if (e instanceof FilterSyntaxError) throw invalidSearch(e.message);
      throw e;
    }
  }

  /** Sorted-by-id cursor paging with Okta's `Link` headers (`self` and, when more, `next`). */
  function page<T extends { id: string }>(ctx: RequestContext, items: T[], limit: number, toJson: (t: T) => unknown): Reply {
    const sorted = [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const after = ctx.url.searchParams.get('after');
    const start = after ? sorted.findIndex((t) => t.id > after) : 0;
    const from = start < 0 ? sorted.length : start;
    const slice = sorted.slice(from, from + limit);
    const links = [`<${ctx.base}${ctx.url.pathname}${ctx.url.search}>; rel="self"`];
    if (from + limit < sorted.length && slice.length > 0) {
      const next = new URLSearchParams(ctx.url.searchParams);
      next.set('after', slice[slice.length - 1]!.id);
      next.set('limit', String(limit));
      links.push(`<${ctx.base}${ctx.url.pathname}?${next.toString()}>; rel="next"`);
    }
    return ok(slice.map(toJson), { Link: links });
  }

  // ---- users ------------------------------------------------------------------------------------

  const USER_FILTER_PATHS = new Set(['status', 'lastUpdated', 'id', 'profile.login', 'profile.email', 'profile.firstName', 'profile.lastName']);

  function searchable(u: OktaUserRecord) {
    return {
      id: u.id,
      status: u.status,
      created: u.created,
      activated: u.activated,
      statusChanged: u.statusChanged,
      lastUpdated: u.lastUpdated,
      type: { id: u.typeId },
      profile: u.profile,
    };
  }

  function listUsers(ctx: RequestContext): Reply {
    const p = ctx.url.searchParams;
    const search = p.get('search');
    const filter = p.get('filter');
    const q = p.get('q');
    let users = [...state.users.values()];
    if (search !== null) {
      const node = parseExpression(search);
      users = users.filter((u) => matchesFilter(node, searchable(u), { caseInsensitive: true }));
    } else if (filter !== null) {
      const node = parseExpression(filter);
      const bad = filterPaths(node).find((path) => !USER_FILTER_PATHS.has(path));
      if (bad) throw invalidSearch(`filter does not support the property ${bad}; use search`);
      users = users.filter((u) => matchesFilter(node, searchable(u), { caseInsensitive: false }));
    } else if (q !== null) {
      // `q` is a startsWith match on firstName, lastName or email; no paging, default limit 10.
      const needle = q.toLowerCase();
      users = users.filter(
        (u) =>
          u.status !== 'DEPROVISIONED' &&
          ['firstName', 'lastName', 'email'].some((k) => String(u.profile[k] ?? '').toLowerCase().startsWith(needle)),
      );
      const limit = parseLimit(ctx, 10, 200);
      return ok(users.slice(0, limit).map((u) => userJson(u, ctx.base)));
    } else {
      users = users.filter((u) => u.status !== 'DEPROVISIONED');
    }
    return page(ctx, users, parseLimit(ctx, 200, 200), (u) => userJson(u, ctx.base));
  }

  async function createUser(ctx: RequestContext): Promise<Reply> {
    const body = (await ctx.body()) as {
      profile?: Record<string, unknown>;
      credentials?: { password?: { value?: unknown } };
      groupIds?: unknown;
    };
    const profile = body?.profile;
    if (!profile || typeof profile !== 'object') {
      throw new OktaHttpError(400, 'E0000001', 'Api validation failed: profile', ['profile: The field cannot be left blank']);
    }
    const causes: string[] = [];
    for (const field of ['login', 'email', 'firstName', 'lastName']) {
      const v = profile[field];
      if (typeof v !== 'string' || v.trim() === '') causes.push(`${field}: The field cannot be left blank`);
    }
    if (causes.length) throw new OktaHttpError(400, 'E0000001', `Api validation failed: ${causes[0]!.split(':')[0]}`, causes);
    const login = profile.login as string;
    if (state.findUser(login)) {
      throw new OktaHttpError(400, 'E0000001', 'Api validation failed: login', [
        'login: An object with this field already exists in the current organization',
      ]);
    }
    const groupIds = Array.isArray(body.groupIds) ? (body.groupIds as unknown[]).map(String) : [];
    for (const gid of groupIds) if (!state.groups.has(gid)) throw notFound(gid, 'UserGroup');
    const hasPassword = typeof body.credentials?.password?.value === 'string';
    const activate = ctx.url.searchParams.get('activate') !== 'false';
    const user = state.addUser({
      status: activate ? (hasPassword ? 'ACTIVE' : 'PROVISIONED') : 'STAGED',
      profile: profile as OktaUserRecord['profile'],
      hasPassword,
    });
    for (const gid of groupIds) state.addMember(gid, user.id);
    logUser(ctx, user, 'user.lifecycle.create', 'core.user.config.user_creation.success', 'Create Okta user');
    if (activate) {
      // Okta emails a one-time activation link to users activated without a password.
      if (!hasPassword) state.activationEmails.push({ userId: user.id, at: now() });
      logUser(ctx, user, 'user.lifecycle.activate', 'core.user.config.user_activated', 'Activate Okta user');
    }
    return ok(userJson(user, ctx.base));
  }

  async function updateUser(ctx: RequestContext, user: OktaUserRecord): Promise<Reply> {
    const body = (await ctx.body()) as { profile?: Record<string, unknown> };
    if (user.status === 'DEPROVISIONED') throw notAllowedInStatus();
    if (body?.profile && typeof body.profile === 'object') {
      const login = body.profile.login;
      if (typeof login === 'string') {
        const other = state.findUser(login);
        if (other && other.id !== user.id) {
          throw new OktaHttpError(400, 'E0000001', 'Api validation failed: login', [
            'login: An object with this field already exists in the current organization',
          ]);
        }
      }
      Object.assign(user.profile, body.profile);
      user.lastUpdated = state.iso();
      logUser(ctx, user, 'user.account.update_profile', 'core.user.config.profile_update.success', 'Update user profile for Okta');
    }
    return ok(userJson(user, ctx.base));
  }

  function deactivate(ctx: RequestContext, user: OktaUserRecord): void {
    state.setStatus(user, 'DEPROVISIONED');
    // Deactivation deprovisions the user from every app (group memberships stay).
    for (const a of state.assignmentsOf(user.id)) {
      const app = state.apps.get(a.appId)!;
      state.unassign(a.appId, user.id);
      state.log({
        ...logBase(ctx),
        eventType: 'application.user_membership.remove',
        legacyEventType: 'app.generic.unprovision.success',
        displayMessage: 'Remove user from application membership',
        targets: [state.userTarget(user), state.appTarget(app)],
      });
    }
    logUser(ctx, user, 'user.lifecycle.deactivate', 'core.user.config.user_deactivated', 'Deactivate Okta user');
  }

  function deleteUser(ctx: RequestContext, user: OktaUserRecord): Reply {
    if (user.status !== 'DEPROVISIONED') {
      // As in Okta: a delete on a user that is not deactivated only deactivates it.
      deactivate(ctx, user);
      return noContent();
    }
    logUser(ctx, user, 'user.lifecycle.delete.initiated', 'core.user.config.user_deleted', 'Delete Okta user');
    state.deleteUser(user.id);
    return noContent();
  }

  function lifecycle(ctx: RequestContext, user: OktaUserRecord, op: string): Reply {
    const sendEmail = ctx.url.searchParams.get('sendEmail');
    const activationToken = () => {
      const token = state.randomToken(20, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789');
      return { activationUrl: `${ctx.base}/welcome/${token}`, activationToken: token };
    };
    switch (op) {
      case 'activate': {
        if (user.status !== 'STAGED' && user.status !== 'DEPROVISIONED') {
          throw new OktaHttpError(403, 'E0000016', 'Activation failed because the user is already active');
        }
        state.setStatus(user, user.hasPassword ? 'ACTIVE' : 'PROVISIONED');
        logUser(ctx, user, 'user.lifecycle.activate', 'core.user.config.user_activated', 'Activate Okta user');
        // sendEmail defaults to true: Okta mails the activation link and returns no token.
        if (sendEmail === 'false') return ok(user.hasPassword ? {} : activationToken());
        if (!user.hasPassword) state.activationEmails.push({ userId: user.id, at: now() });
        return ok({});
      }
      case 'reactivate': {
        if (user.status !== 'PROVISIONED' && user.status !== 'RECOVERY') throw notAllowedInStatus();
        state.setStatus(user, 'PROVISIONED');
        logUser(ctx, user, 'user.lifecycle.reactivate', 'core.user.config.user_reactivated', 'Reactivate Okta user');
        if (sendEmail === 'true') {
          state.activationEmails.push({ userId: user.id, at: now() });
          return ok({});
        }
        return ok(activationToken());
      }
      case 'deactivate': {
        if (user.status === 'DEPROVISIONED') throw notAllowedInStatus();
        deactivate(ctx, user);
        return { status: 200 };
      }
      case 'suspend': {
        if (user.status !== 'ACTIVE') {
          throw new OktaHttpError(400, 'E0000001', 'Api validation failed: status', [
            `status: Cannot suspend a user with status ${user.status}; only ACTIVE users can be suspended`,
          ]);
        }
        state.setStatus(user, 'SUSPENDED');
        logUser(ctx, user, 'user.lifecycle.suspend', 'core.user.config.user_suspended', 'Suspend Okta user');
        return { status: 200 };
      }
      case 'unsuspend': {
        if (user.status !== 'SUSPENDED') {
          throw new OktaHttpError(400, 'E0000001', 'Api validation failed: status', [
            `status: Cannot unsuspend a user with status ${user.status}; only SUSPENDED users can be unsuspended`,
          ]);
        }
        state.setStatus(user, 'ACTIVE');
        logUser(ctx, user, 'user.lifecycle.unsuspend', 'core.user.config.user_unsuspended', 'Unsuspend Okta user');
        return { status: 200 };
      }
      default:
        throw new OktaHttpError(404, 'E0000007', `Not found: Resource not found: ${ctx.url.pathname}`);
    }
  }

  function revokeSessions(ctx: RequestContext, user: OktaUserRecord): Reply {
    const oauthTokens = ctx.url.searchParams.get('oauthTokens') === 'true';
    state.sessions.set(user.id, 0);
    state.sessionsRevoked.push({ userId: user.id, at: now(), oauthTokens });
    logUser(ctx, user, 'user.session.clear', 'core.user_auth.session_clear', 'Clear user session');
    return noContent();
  }

  function appLinks(user: OktaUserRecord, base: string) {
    return state.assignmentsOf(user.id).map((a, i) => {
      const app = state.apps.get(a.appId)!;
      return {
        id: `${app.id.slice(0, 12)}${a.id.slice(12)}`,
        label: app.label,
        linkUrl: `${base}/home/${app.name}/${app.id}/${i + 1}`,
        logoUrl: `${base}/img/logos/${app.name}.png`,
        appName: app.name,
        appInstanceId: app.id,
        appAssignmentId: a.id,
        credentialsSetup: false,
        hidden: false,
        sortOrder: i,
      };
    });
  }

  // ---- groups -----------------------------------------------------------------------------------

  const GROUP_FILTER_PATHS = new Set(['id', 'type', 'lastUpdated', 'lastMembershipUpdated']);

  function listGroups(ctx: RequestContext): Reply {
    const p = ctx.url.searchParams;
    let groups = [...state.groups.values()];
    const search = p.get('search');
    const filter = p.get('filter');
    const q = p.get('q');
    if (search !== null) {
      const node = parseExpression(search);
      groups = groups.filter((g) => matchesFilter(node, g, { caseInsensitive: true }));
    } else if (filter !== null) {
      const node = parseExpression(filter);
      const bad = filterPaths(node).find((path) => !GROUP_FILTER_PATHS.has(path));
      if (bad) throw invalidSearch(`filter does not support the property ${bad}; use search`);
      groups = groups.filter((g) => matchesFilter(node, g, { caseInsensitive: false }));
    } else if (q !== null) {
      const needle = q.toLowerCase();
      groups = groups.filter((g) => g.profile.name.toLowerCase().startsWith(needle));
    }
    return page(ctx, groups, parseLimit(ctx, 10_000, 10_000), (g) => groupJson(g, ctx.base));
  }

  function listGroupMembers(ctx: RequestContext, group: OktaGroupRecord): Reply {
    const members = [...state.memberships.get(group.id)!].map((id) => state.users.get(id)!);
    return page(ctx, members, parseLimit(ctx, 1000, 1000), (u) => userJson(u, ctx.base));
  }

  function requireManagedGroup(group: OktaGroupRecord): void {
    if (group.type !== 'OKTA_GROUP') {
      // BUILT_IN (Everyone) and APP_GROUP memberships are not managed through this API.
      throw new OktaHttpError(403, 'E0000006', 'You do not have permission to perform the requested action');
    }
  }

  function addMember(ctx: RequestContext, group: OktaGroupRecord, user: OktaUserRecord): Reply {
    requireManagedGroup(group);
    if (state.addMember(group.id, user.id)) {
      state.log({
        ...logBase(ctx),
        eventType: 'group.user_membership.add',
        legacyEventType: 'core.user_group_member.user_add',
        displayMessage: 'Add user to group membership',
        targets: [state.userTarget(user), state.groupTarget(group)],
      });
    }
    return noContent();
  }

  function removeMember(ctx: RequestContext, group: OktaGroupRecord, user: OktaUserRecord): Reply {
    requireManagedGroup(group);
    if (state.removeMember(group.id, user.id)) {
      state.log({
        ...logBase(ctx),
        eventType: 'group.user_membership.remove',
        legacyEventType: 'core.user_group_member.user_remove',
        displayMessage: 'Remove user from group membership',
        targets: [state.userTarget(user), state.groupTarget(group)],
      });
    }
    return noContent();
  }

  // ---- apps -------------------------------------------------------------------------------------

  function listApps(ctx: RequestContext): Reply {
    const p = ctx.url.searchParams;
    let apps = [...state.apps.values()];
    const q = p.get('q');
    const filter = p.get('filter');
    if (q !== null) {
      const needle = q.toLowerCase();
      apps = apps.filter((a) => a.label.toLowerCase().startsWith(needle) || a.name.toLowerCase().startsWith(needle));
    }
    if (filter !== null) {
      const node = parseExpression(filter);
      apps = apps.filter((a) => {
        const view = { ...a, user: { id: [...state.appAssignments.get(a.id)!.keys()] } };
        return matchesFilter(node, view, { caseInsensitive: false });
      });
    }
    return page(ctx, apps, parseLimit(ctx, 200, 200), (a) => appJson(a, ctx.base));
  }

  function assignApp(ctx: RequestContext, app: OktaAppRecord, user: OktaUserRecord): Reply {
    if (user.status === 'DEPROVISIONED') throw notAllowedInStatus();
    const { assignment, created } = state.assign(app.id, user.id);
    if (created) {
      state.log({
        ...logBase(ctx),
        eventType: 'application.user_membership.add',
        legacyEventType: 'app.generic.provision.assign_user_to_app',
        displayMessage: 'Add user to application membership',
        targets: [state.userTarget(user), state.appTarget(app)],
      });
    }
    return ok(appUserJson(assignment, ctx.base));
  }

  function unassignApp(ctx: RequestContext, app: OktaAppRecord, user: OktaUserRecord): Reply {
    if (!state.unassign(app.id, user.id)) throw notFound(user.id, 'AppUser');
    state.log({
      ...logBase(ctx),
      eventType: 'application.user_membership.remove',
      legacyEventType: 'app.generic.unprovision.success',
      displayMessage: 'Remove user from application membership',
      targets: [state.userTarget(user), state.appTarget(app)],
    });
    return noContent();
  }

  // ---- system log ---------------------------------------------------------------------------------

  function parseTime(name: string, raw: string | null, fallback: number): number {
    if (raw === null) return fallback;
    const t = Date.parse(raw);
    if (Number.isNaN(t)) throw new OktaHttpError(400, 'E0000001', `Api validation failed: ${name}`, [`${name}: not an ISO 8601 timestamp`]);
    return t;
  }

  function listLogs(ctx: RequestContext): Reply {
    const p = ctx.url.searchParams;
    const bounded = p.has('until');
    const until = parseTime('until', p.get('until'), now());
    const since = parseTime('since', p.get('since'), until - 7 * 24 * 3600 * 1000);
    const limit = parseLimit(ctx, 100, 1000);
    const descending = p.get('sortOrder') === 'DESCENDING';
    const node = p.has('filter') ? parseExpression(p.get('filter')!) : undefined;
    const q = p.get('q')?.toLowerCase().split(/\s+/).filter(Boolean) ?? [];
    const after = Number(p.get('after') ?? (descending ? Infinity : 0));
    let events = state.logs.filter((e) => {
      const t = Date.parse(e.published);
      if (t < since || t >= until + 1) return false;
      if (node && !matchesFilter(node, e, { caseInsensitive: false })) return false;
      if (q.length && !q.every((k) => JSON.stringify(e).toLowerCase().includes(k))) return false;
      return true;
    });
    if (descending) events = events.reverse().filter((e) => e.seq < after);
    else events = events.filter((e) => e.seq > after);
    const slice = events.slice(0, limit);
    const links = [`<${ctx.base}${ctx.url.pathname}${ctx.url.search}>; rel="self"`];
    // Bounded queries page until exhausted; polling queries (no `until`) always offer a next link.
    if (!bounded || events.length > limit) {
      const next = new URLSearchParams(p);
      next.set('after', String(slice.length ? slice[slice.length - 1]!.seq : after === Infinity ? '' : after));
      links.push(`<${ctx.base}${ctx.url.pathname}?${next.toString()}>; rel="next"`);
    }
    return ok(
      slice.map(({ seq: _seq, ...wire }) => wire),
      { Link: links },
    );
  }

  // ---- wire shapes --------------------------------------------------------------------------------

  function logBase(ctx: RequestContext) {
    return { requestId: ctx.requestId, requestUri: ctx.url.pathname, userAgent: ctx.userAgent };
  }

  function logUser(ctx: RequestContext, user: OktaUserRecord, eventType: string, legacyEventType: string, displayMessage: string) {
    state.log({ ...logBase(ctx), eventType, legacyEventType, displayMessage, targets: [state.userTarget(user)] });
  }

  const link = (href: string, method?: string) => (method ? { href, hints: { allow: [method] } } : { href });

  function userJson(u: OktaUserRecord, base: string) {
    const self = `${base}/api/v1/users/${u.id}`;
    const lifecycleLinks: Record<string, ReturnType<typeof link>> = {};
    const add = (name: string, op: string) => (lifecycleLinks[name] = link(`${self}/lifecycle/${op}`, 'POST'));
    const s: OktaUserStatus = u.status;
    if (s === 'STAGED' || s === 'DEPROVISIONED') add('activate', 'activate');
    if (s === 'PROVISIONED') add('reactivate', 'reactivate');
    if (s === 'ACTIVE') add('suspend', 'suspend');
    if (s === 'SUSPENDED') add('unsuspend', 'unsuspend');
    if (s !== 'DEPROVISIONED') add('deactivate', 'deactivate');
    if (s === 'ACTIVE' || s === 'PASSWORD_EXPIRED' || s === 'RECOVERY') {
      add('resetPassword', 'reset_password');
      add('expirePassword', 'expire_password');
      add('resetFactors', 'reset_factors');
    }
    return {
      id: u.id,
      status: u.status,
      created: u.created,
      activated: u.activated,
      statusChanged: u.statusChanged,
      lastLogin: u.lastLogin,
      lastUpdated: u.lastUpdated,
      passwordChanged: u.passwordChanged,
      type: { id: u.typeId },
      profile: u.profile,
      credentials: {
        ...(u.hasPassword ? { password: {} } : {}),
        provider: { type: 'OKTA', name: 'OKTA' },
      },
      _links: {
        self: link(self),
        schema: link(`${base}/api/v1/meta/schemas/user/osc0jmldefault00000`),
        type: link(`${base}/api/v1/meta/types/user/${u.typeId}`),
        ...lifecycleLinks,
      },
    };
  }

  function groupJson(g: OktaGroupRecord, base: string) {
    const self = `${base}/api/v1/groups/${g.id}`;
    return {
      id: g.id,
      created: g.created,
      lastUpdated: g.lastUpdated,
      lastMembershipUpdated: g.lastMembershipUpdated,
      objectClass: [g.type === 'APP_GROUP' ? 'okta:windows_security_principal' : 'okta:user_group'],
      type: g.type,
      profile: { ...g.profile },
      _links: {
        self: link(self),
        logo: [
          { name: 'medium', href: `${base}/img/logos/groups/okta-medium.png`, type: 'image/png' },
          { name: 'large', href: `${base}/img/logos/groups/okta-large.png`, type: 'image/png' },
        ],
        users: link(`${self}/users`),
        apps: link(`${self}/apps`),
      },
    };
  }

  function appJson(a: OktaAppRecord, base: string) {
    const self = `${base}/api/v1/apps/${a.id}`;
    return {
      id: a.id,
      name: a.name,
      label: a.label,
      status: a.status,
      created: a.created,
      lastUpdated: a.lastUpdated,
      accessibility: { selfService: false },
      visibility: { autoLaunch: false, autoSubmitToolbar: false, hide: { iOS: false, web: false }, appLinks: { login: true } },
      features: [],
      signOnMode: 'BOOKMARK',
      credentials: { userNameTemplate: { template: '${source.login}', type: 'BUILT_IN' }, signing: {} },
      settings: { app: { requestIntegration: false, url: a.url } },
      _links: {
        self: link(self),
        users: link(`${self}/users`),
        groups: link(`${self}/groups`),
        appLinks: [{ name: 'login', href: `${base}/home/${a.name}/${a.id}/1`, type: 'text/html' }],
        deactivate: link(`${self}/lifecycle/deactivate`, 'POST'),
      },
    };
  }

  function appUserJson(a: OktaAppAssignment, base: string) {
    const user = state.users.get(a.userId)!;
    return {
      id: a.userId,
      created: a.created,
      lastUpdated: a.lastUpdated,
      scope: a.scope,
      status: 'ACTIVE',
      statusChanged: a.created,
      passwordChanged: null,
      syncState: 'DISABLED',
      credentials: { userName: user.profile.login },
      profile: {},
      _links: {
        app: link(`${base}/api/v1/apps/${a.appId}`),
        user: link(`${base}/api/v1/users/${a.userId}`),
      },
    };
  }

  const server = await listen(handler, { port: options.port });
  return {
    url: server.url,
    token: options.token,
    controls,
    lostResponses,
    state,
    requestLog,
    seed: (data) => state.seed(data),
    close: () => server.close(),
  };
}
