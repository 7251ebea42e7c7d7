/**
 * The Okta adapter of the Connector port, built on the HTTP layer of `@okta/okta-sdk-nodejs` v8
 * (`Http`, `Collection`, `RequestExecutor`; see `okta-executor.ts` for why not its generated API
 * classes). Each Okta call is the request the SDK's generated method sends, through one of three
 * helpers (`read`, `all` / `page`, `okta.send`); answers are checked with zod (`okta-model.ts`).
 *
 * Set up for Lambda: one HTTP client per connector instance (create it once per cold start), no
 * in-memory response cache (a warm Lambda would serve stale users across invocations), every
 * call through one `RateGovernor` via `GovernedRequestExecutor` (pacing from Okta's rate-limit
 * headers, per-attempt timeouts, bounded retries, request ids for the change records).
 *
 * Reading before writing is what makes the port idempotent, and reads are most of the calls a
 * run makes against Okta's rate limits. So the connector keeps a short-lived snapshot of what it
 * last read about each user (status, OKTA_GROUP memberships, app assignments; `snapshotTtlMs`,
 * default 10 s): a converge reads once in `findAccounts` and its writes do not read again. The
 * snapshot is only trusted to decide that a write *is* needed, never that it is not: every
 * "already in that state, no write" answer comes from a fresh read. That is safe because the
 * writes it lets through are harmless when the snapshot was stale — membership PUT/DELETE are
 * idempotent, an app unassign of a missing assignment is a 404, and Okta refuses a lifecycle
 * transition that no longer applies, after which the connector re-reads and decides again.
 * Group names and app labels resolve to ids once per instance (and from every membership read).
 */
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
import type { TargetOp } from '#core/target-plan';
import type { AccountPage, AccountProfile, AccountQuery, AuditEntry, ChangeRecord, Connector, MemberPage } from './connector.ts';
import { RateGovernor } from './governor.ts';
import {
  apiPath,
  captureRequests,
  currentCapture,
  GovernedRequestExecutor,
  isRetryableNetworkError,
  newCapture,
  OktaHttp,
  type OktaQuery,
  type RequestCapture,
} from './okta-executor.ts';
import { LANDED, sendOnce, type Sent } from './send-once.ts';
import {
  describeIssues,
  OKTA_USER_STATUSES,
  OktaApp,
  OktaAppLink,
  OktaGroup,
  OktaLogEvent,
  OktaUser,
  toAccountStatus,
  transitionFor,
  type LifecycleOp,
  type OktaUserStatus,
} from './okta-model.ts';

function isSafeOrgUrl(raw: string): boolean {
  try {
    const u = new URL(raw);
    if (u.protocol === 'https:') return true;
    // The API token must never cross a network in clear text; plain http only to this machine.
    return u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}

export const OktaConnectorConfigSchema = z.object({
  /** Target name as in the policy. */
  name: z.string().min(1),
  /** `https://<org>.okta.com` (plain http is accepted only for loopback stand-ins). */
  orgUrl: z.string().refine(isSafeOrgUrl, 'must be an https:// URL (http:// only for 127.0.0.1 or localhost)'),
  /** SSWS API token. Never logged, never part of an error. */
  token: z.string().min(1),
  /** Calls in flight at once against this org. */
  maxConcurrent: z.number().int().min(1).max(64).default(8),
  /** Timeout of each attempt (the SDK has none by default). */
  requestTimeoutMs: z.number().int().min(50).max(120_000).default(10_000),
  /** Retries per call for 429 (with `X-Rate-Limit-Reset`), 5xx, timeouts and connection resets. */
  maxRetries: z.number().int().min(0).max(10).default(3),
  /** A 429 whose reset is further away than this is not waited for: the workflow retries later. */
  maxRetryWaitMs: z.number().int().min(0).max(120_000).default(20_000),
  /** First step of the 5xx / network back-off (doubles per attempt, with jitter). */
  backoffBaseMs: z.number().int().min(0).max(10_000).default(200),
  /** How long what was read about a user may spare a re-read before a write (0 disables). */
  snapshotTtlMs: z.number().int().min(0).max(60_000).default(10_000),
});
export type OktaConnectorConfig = z.input<typeof OktaConnectorConfigSchema>;

const LOOKUP_TTL_MS = 5 * 60_000;
const ALL_STATUSES_FILTER = OKTA_USER_STATUSES.map((s) => `status eq "${s}"`).join(' or ');
const PAGE_SIZE = 200;
/** `GET /groups/{id}/users` serves up to 1 000 users a page; `GET /apps/{id}/users` up to 500. */
const GROUP_MEMBERS_PAGE_SIZE = 1000;
const APP_USERS_PAGE_SIZE = 500;

/** An app assignment as `GET /apps/{id}/users` lists it: the user's id is the assignment's id. */
const OktaAppUser = z.object({ id: z.string().min(1), scope: z.enum(['USER', 'GROUP']).optional() });
/** A page of any Okta list: a JSON array (its items are checked by the caller). */
const PAGE = z.array(z.unknown());

/** A value inside a double-quoted Okta filter / search literal. */
function literal(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

interface SdkError {
  status?: number;
  errorCode?: string;
  errorSummary?: string;
  errorCauses?: Array<{ errorSummary?: string }>;
  headers?: { get?(name: string): string | null } | Record<string, string>;
}

function httpStatus(e: unknown): number | undefined {
  if (!e || typeof e !== 'object') return undefined;
  const err = e as SdkError & { name?: string; code?: unknown };
  if ((err.name === 'OktaApiError' || err.name === 'HttpError') && typeof err.status === 'number') return err.status;
  return undefined;
}

function errorCode(e: unknown): string | undefined {
  return httpStatus(e) === undefined ? undefined : (e as SdkError).errorCode;
}

function headerOf(e: unknown, name: string): string | undefined {
  const h = (e as SdkError).headers;
  if (!h) return undefined;
  if (typeof (h as { get?: unknown }).get === 'function') return (h as { get(n: string): string | null }).get(name) ?? undefined;
  return (h as Record<string, string>)[name];
}

/** Okta's refusal of a lifecycle call that does not apply to the user's current status. */
function isLifecycleRefusal(e: unknown): boolean {
  const status = httpStatus(e);
  const code = errorCode(e);
  return (status === 400 && code === 'E0000001') || (status === 403 && (code === 'E0000038' || code === 'E0000016'));
}

function isLoginConflict(e: unknown): boolean {
  if (httpStatus(e) !== 400 || errorCode(e) !== 'E0000001') return false;
  const causes = (e as SdkError).errorCauses ?? [];
  return causes.some((c) => /login/i.test(c.errorSummary ?? '') && /already exists/i.test(c.errorSummary ?? ''));
}

interface Snapshot {
  at: number;
  status?: OktaUserStatus;
  /** OKTA_GROUP memberships: id → name. */
  groups?: Map<string, string>;
  /** App assignments: app id → label. */
  apps?: Map<string, string>;
}

type Resolution = { id: string } | { missing: string };

/** Connector for one Okta org. Create once per cold start; it is safe to share across invocations. */
export class OktaConnector implements Connector {
  readonly kind = 'okta' as const;
  readonly capabilities = { suspend: true };
  readonly name: string;
  readonly governor: RateGovernor;
  private readonly executor: GovernedRequestExecutor;
  private readonly okta: OktaHttp;
  private readonly snapshotTtlMs: number;
  /** Resends and first back-off of a write whose answer was lost (send-once.ts). */
  private readonly resend: { retries: number; baseDelayMs: number };
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly groupIds = new Map<string, { id: string; at: number }>();
  private readonly appIds = new Map<string, { id: string; at: number }>();
  private readonly inFlightLookups = new Map<string, Promise<Resolution>>();
  private readonly now: () => number;

  constructor(config: OktaConnectorConfig, deps: { now?: () => number } = {}) {
    const parsed = OktaConnectorConfigSchema.safeParse(config);
    if (!parsed.success) {
      // Issues name the field and rule only; zod never echoes the token's value.
      throw new ValidationError(parsed.error.issues.map((i) => `okta connector config ${i.path.join('.')}: ${i.message}`));
    }
    const cfg = parsed.data;
    this.name = cfg.name;
    this.now = deps.now ?? Date.now;
    this.snapshotTtlMs = cfg.snapshotTtlMs;
    this.resend = { retries: cfg.maxRetries, baseDelayMs: cfg.backoffBaseMs };
    this.governor = new RateGovernor({ maxConcurrent: cfg.maxConcurrent });
    this.executor = new GovernedRequestExecutor({
      governor: this.governor,
      requestTimeoutMs: cfg.requestTimeoutMs,
      maxRetries: cfg.maxRetries,
      maxRetryWaitMs: cfg.maxRetryWaitMs,
      backoffBaseMs: cfg.backoffBaseMs,
      maxSockets: cfg.maxConcurrent,
    });
    this.okta = new OktaHttp({ orgUrl: cfg.orgUrl, token: cfg.token, executor: this.executor, userAgent: 'jml-okta-connector' });
  }

  /** Attempts sent and retries by cause, for benchmarks and structured logs. */
  get stats() {
    return { ...this.executor.stats, governor: { ...this.governor.stats } };
  }

  /** Closes pooled connections (tests and scripts; a Lambda keeps them warm). */
  dispose(): void {
    this.executor.destroy();
  }

  // ---- reads ------------------------------------------------------------------------------------

  async findAccounts(query: AccountQuery): Promise<ActualAccount[]> {
    if (!query.employeeId) throw new ValidationError(['employeeId: required']);
    return this.run(`find accounts of employee ${query.employeeId}`, async () => {
      const users = new Map<string, OktaUser>();
      const search = `profile.employeeNumber eq "${literal(query.employeeId)}"`;
      for (const item of await this.all('/api/v1/users', { search, limit: PAGE_SIZE }, 'users')) {
        const user = this.parse(OktaUser, item, 'User');
        users.set(user.id, user);
      }
      for (const id of query.linkIds ?? []) {
        if (users.has(id)) continue;
        const user = await this.fetchUser(id);
        if (user) users.set(user.id, user);
      }
      if (query.entitlements === false) {
        return [...users.values()].map((u) => {
          this.remember(u.id, { status: u.status });
          return this.toActual(u, []);
        });
      }
      return Promise.all([...users.values()].map((u) => this.withEntitlements(u)));
    }).then((r) => r.result);
  }

  async getAccount(accountId: string): Promise<ActualAccount> {
    return this.run(`read user ${accountId}`, async () => this.withEntitlements(await this.readUser(accountId))).then((r) => r.result);
  }

  /**
   * One page of every user in the org, DEPROVISIONED included (a plain list omits them, so this
   * filters on every status). For speed, `entitlements` is left empty here — reading groups and
   * app links would cost two more calls per user; use `getAccount` for the accounts that need
   * them. `correlationKey` (profile.employeeNumber) and `status` are always set.
   */
  async listAccounts(cursor?: string): Promise<AccountPage> {
    return this.run('list users', async () => {
      const { items, nextCursor } = await this.page('/api/v1/users', { filter: ALL_STATUSES_FILTER, after: cursor, limit: PAGE_SIZE }, 'users');
      const accounts = items.map((item, i) => {
        const user = this.parse(OktaUser, item, `users[${i}]`);
        return this.toActual(user, []);
      });
      return { accounts, ...(nextCursor ? { nextCursor } : {}) };
    }).then((r) => r.result);
  }

  /**
   * One page of the members of a managed entitlement: the users of an OKTA_GROUP
   * (`GET /api/v1/groups/{id}/users`, 1 000 a page, full user objects, so the correlation key
   * comes with them) or the users assigned to an app (`GET /api/v1/apps/{id}/users`, 500 a page,
   * direct and group-scoped assignments alike — both are what `getAccount` reports as held).
   * Names resolve to ids like every other call; a name that does not resolve is `unresolved`.
   */
  async listEntitlementMembers(entitlement: EntitlementRef, cursor?: string): Promise<MemberPage> {
    const kind = this.supported(entitlement);
    return this.run(`list members of ${entitlement.type} "${entitlement.value}"`, async (): Promise<MemberPage> => {
      const cache = kind === 'group' ? this.groupIds : this.appIds;
      let page: { items: unknown[]; nextCursor?: string };
      for (let attempt = 0; ; attempt++) {
        const resolved = kind === 'group' ? await this.resolveGroup(entitlement.value) : await this.resolveApp(entitlement.value);
        if ('missing' in resolved) return { members: [], unresolved: resolved.missing };
        try {
          page =
            kind === 'group'
              ? await this.page(apiPath`/api/v1/groups/${resolved.id}/users`, { after: cursor, limit: GROUP_MEMBERS_PAGE_SIZE }, 'groupUsers')
              : await this.page(apiPath`/api/v1/apps/${resolved.id}/users`, { after: cursor, limit: APP_USERS_PAGE_SIZE }, 'appUsers');
          break;
        } catch (e) {
          // A cached id whose object was deleted since: forget it and resolve the name again (once).
          if (httpStatus(e) !== 404 || attempt > 0) throw e;
          cache.delete(entitlement.value);
        }
      }
      const members = page.items.map((item, i) => {
        if (kind === 'group') {
          const user = this.parse(OktaUser, item, `groupUsers[${i}]`);
          return { accountId: user.id, ...(user.profile.employeeNumber ? { correlationKey: user.profile.employeeNumber } : {}) };
        }
        return { accountId: this.parse(OktaAppUser, item, `appUsers[${i}]`).id };
      });
      return { members, ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    }).then((r) => r.result);
  }

  /**
   * The System Log entries that name the account as a target, since `since` (bounded by now, so
   * the query ends: an unbounded System Log query is a poll that never runs out of pages).
   */
  async auditEvidence(accountId: string, since: string): Promise<AuditEntry[]> {
    const sinceMs = Date.parse(since);
    if (Number.isNaN(sinceMs)) throw new ValidationError([`since: "${since}" is not an ISO 8601 time`]);
    return this.run(`read System Log of ${accountId}`, async () => {
      const query = {
        since: new Date(sinceMs).toISOString(),
        until: new Date(this.now()).toISOString(),
        filter: `target.id eq "${literal(accountId)}"`,
        limit: 1000,
        sortOrder: 'ASCENDING',
      };
      const events = await this.all('/api/v1/logs', query, 'logEvents');
      return events.map((item, i): AuditEntry => {
        const e = this.parse(OktaLogEvent, item, `logEvents[${i}]`);
        const time = new Date(e.published).toISOString();
        const actor = e.actor?.alternateId ?? e.actor?.displayName ?? e.actor?.id ?? undefined;
        const request = e.transaction?.id ? ` (Okta request ${e.transaction.id})` : '';
        return {
          id: e.uuid,
          time,
          eventType: e.eventType,
          outcome: e.outcome?.result ?? 'UNKNOWN',
          ...(actor ? { actor } : {}),
          targetIds: (e.target ?? []).map((t) => t.id),
          summary: `${e.displayMessage ?? e.eventType}${e.outcome?.reason ? `: ${e.outcome.reason}` : ''}${request}`,
        };
      });
    }).then((r) => r.result);
  }

  // ---- writes -----------------------------------------------------------------------------------

  /**
   * Creates the user STAGED (`activate=false`) and, when enabled, activates it with
   * `sendEmail=false`: creating with `activate=true` would make Okta email an activation link,
   * and onboarding mail is the product's job. Okta's answer to the activation carries a one-time
   * activation token; it is dropped, never recorded.
   *
   * A login that already exists is a TargetConflict — unless this very call was retried after a
   * lost response and the existing user carries the same employeeNumber: then it is the account
   * the first attempt created, and it is adopted instead of failing the joiner.
   */
  async createAccount(profile: AccountProfile, options: { enabled: boolean }): Promise<{ account: ActualAccount; change: ChangeRecord }> {
    const { result, requestIds } = await this.run(`create user ${profile.userName}`, async () => {
      const body = {
        profile: {
          login: profile.userName,
          email: profile.email,
          firstName: profile.givenName,
          lastName: profile.familyName,
          displayName: profile.displayName,
          employeeNumber: profile.employeeId,
          department: profile.department,
          title: profile.jobCode,
          city: profile.location,
          userType: profile.employmentType,
          ...(profile.managerEmail ? { manager: profile.managerEmail } : {}),
        },
      };
      let user: OktaUser;
      let detail = 'created STAGED';
      let adopted = false;
      try {
        user = this.parse(OktaUser, await this.okta.json('POST', '/api/v1/users', { activate: false }, body), 'User');
      } catch (e) {
        if (!isLoginConflict(e)) throw e;
        const existing = await this.fetchUser(profile.userName);
        if (existing && currentCapture()?.retried && existing.profile.employeeNumber === profile.employeeId) {
          user = existing;
          adopted = true;
          detail = 'adopted the user an earlier attempt created (its response was lost)';
        } else {
          const owner = existing
            ? `Okta user ${existing.id}${existing.profile.employeeNumber ? ` (employeeNumber ${existing.profile.employeeNumber})` : ''}`
            : 'another Okta user';
          throw new TargetConflict(this.name, `login ${profile.userName} already belongs to ${owner}`, existing ? [existing.id] : []);
        }
      }
      let status = user.status;
      if (options.enabled && transitionFor(status, 'enabled') === 'activate') {
        // The answer carries a one-time activation token: read to the end and dropped.
        await this.okta.send('POST', apiPath`/api/v1/users/${user.id}/lifecycle/activate`, { sendEmail: false });
        detail += ', activated without email';
        status = 'PROVISIONED';
      }
      // A new user belongs to no OKTA_GROUP and no app yet: its grants can be written straight away.
      // (An adopted one may have some already: leave those to be read.)
      this.remember(user.id, adopted ? { status: undefined } : { status: undefined, groups: new Map(), apps: new Map() }, !adopted);
      const account: ActualAccount = {
        id: user.id,
        correlationKey: profile.employeeId,
        userName: user.profile.login,
        status: toAccountStatus(status),
        entitlements: [],
      };
      return { account, detail };
    });
    return {
      account: result.account,
      change: this.change('create', result.account.id, true, requestIds, { detail: result.detail }),
    };
  }

  async setStatus(accountId: string, status: 'enabled' | 'suspended' | 'disabled'): Promise<ChangeRecord> {
    const { result, requestIds } = await this.run(`set ${accountId} ${status}`, async () => {
      let current = this.snapshot(accountId)?.status;
      let fresh = false;
      if (current === undefined || transitionFor(current, status) === null) {
        current = (await this.readUser(accountId)).status;
        fresh = true;
      }
      let op = transitionFor(current, status);
      if (!op) return { from: current, op: null };
      try {
        await this.lifecycle(accountId, op);
      } catch (e) {
        if (fresh || !isLifecycleRefusal(e)) throw e;
        // What we last read was stale: read again and decide again (once).
        current = (await this.readUser(accountId)).status;
        op = transitionFor(current, status);
        if (!op) return { from: current, op: null };
        await this.lifecycle(accountId, op);
      }
      return { from: current, op };
    });
    const planOp: TargetOp =
      status === 'disabled' ? 'disable' : status === 'suspended' ? 'suspend' : result.from === 'SUSPENDED' ? 'unsuspend' : 'enable';
    const detail = result.op
      ? `${result.from} → ${result.op}`
      : `already ${result.from}${result.from === 'STAGED' ? ' (never activated: counts as disabled)' : ''}`;
    return this.change(planOp, accountId, result.op !== null, requestIds, { detail });
  }

  /**
   * Ends every Okta session and revokes OAuth/OIDC tokens. Okta cannot tell whether there was a
   * session to end, so this always writes and reports `changed: true`.
   */
  async revokeSessions(accountId: string): Promise<ChangeRecord> {
    const { requestIds } = await this.run(`revoke sessions of ${accountId}`, () =>
      this.okta.send('DELETE', apiPath`/api/v1/users/${accountId}/sessions`, { oauthTokens: true }),
    );
    return this.change('revokeSessions', accountId, true, requestIds, { detail: 'sessions cleared, OAuth tokens revoked' });
  }

  async addEntitlement(accountId: string, entitlement: EntitlementRef): Promise<ChangeRecord> {
    const kind = this.supported(entitlement);
    const { result, requestIds } = await this.run(`grant ${entitlement.type} "${entitlement.value}" to ${accountId}`, async () => {
      const resolved = kind === 'group' ? await this.resolveGroup(entitlement.value) : await this.resolveApp(entitlement.value);
      if ('missing' in resolved) throw new AccountNotFound(this.name, resolved.missing);
      const id = resolved.id;
      if (kind === 'group') {
        let groups = this.snapshot(accountId)?.groups;
        if (!groups || groups.has(id)) {
          groups = await this.readGroups(accountId);
          if (groups.has(id)) return { changed: false, detail: 'already a member' };
        }
        const sent = await this.sendOnce(
          () => this.okta.send('PUT', apiPath`/api/v1/groups/${id}/users/${accountId}`, undefined, undefined, { resendUnanswered: false }),
          async () => (await this.readGroups(accountId)).has(id),
        );
        this.snapshot(accountId)?.groups?.set(id, entitlement.value);
        return { changed: true, detail: sent === 'landed' ? LANDED : `added to group ${id}` };
      }
      const apps = this.snapshot(accountId)?.apps;
      if (!apps || apps.has(id)) {
        if (await this.isAssigned(id, accountId)) return { changed: false, detail: 'already assigned' };
      }
      await this.okta.send('POST', apiPath`/api/v1/apps/${id}/users`, undefined, { id: accountId, scope: 'USER' });
      this.snapshot(accountId)?.apps?.set(id, entitlement.value);
      return { changed: true, detail: `assigned app ${id}` };
    });
    return this.change('addEntitlement', accountId, result.changed, requestIds, { entitlement, detail: result.detail });
  }

  async removeEntitlement(accountId: string, entitlement: EntitlementRef): Promise<ChangeRecord> {
    const kind = this.supported(entitlement);
    const { result, requestIds } = await this.run(`remove ${entitlement.type} "${entitlement.value}" from ${accountId}`, async () => {
      const resolved = kind === 'group' ? await this.resolveGroup(entitlement.value) : await this.resolveApp(entitlement.value);
      // An entitlement whose object no longer exists cannot be held: nothing to remove.
      if ('missing' in resolved) return { changed: false, detail: resolved.missing };
      const id = resolved.id;
      if (kind === 'group') {
        const groups = this.snapshot(accountId)?.groups;
        if (!groups?.has(id)) {
          const fresh = await this.readGroups(accountId);
          if (!fresh.has(id)) return { changed: false, detail: 'not a member' };
        }
        await this.okta.send('DELETE', apiPath`/api/v1/groups/${id}/users/${accountId}`);
        this.snapshot(accountId)?.groups?.delete(id);
        return { changed: true, detail: `removed from group ${id}` };
      }
      const apps = this.snapshot(accountId)?.apps;
      if (!apps?.has(id)) {
        const scope = await this.assignmentScope(id, accountId);
        if (!scope) return { changed: false, detail: 'not assigned' };
        if (scope === 'GROUP') {
          throw new TargetConflict(this.name, `app "${entitlement.value}" is assigned to ${accountId} through a group; remove that group instead`);
        }
      }
      try {
        await this.okta.send('DELETE', apiPath`/api/v1/apps/${id}/users/${accountId}`, { sendEmail: false });
      } catch (e) {
        // 404: the assignment is already gone (deactivation deprovisions every app).
        if (httpStatus(e) !== 404) throw e;
        this.snapshot(accountId)?.apps?.delete(id);
        return { changed: false, detail: 'not assigned' };
      }
      this.snapshot(accountId)?.apps?.delete(id);
      return { changed: true, detail: `unassigned app ${id}` };
    });
    return this.change('removeEntitlement', accountId, result.changed, requestIds, { entitlement, detail: result.detail });
  }

  /** Deactivates when needed, then deletes. A user that is already gone is `changed: false`. */
  async deleteAccount(accountId: string): Promise<ChangeRecord> {
    const { result, requestIds } = await this.run(`delete ${accountId}`, async () => {
      const user = await this.fetchUser(accountId);
      if (!user) return { changed: false, detail: 'already deleted' };
      if (user.status !== 'DEPROVISIONED') await this.lifecycle(accountId, 'deactivate');
      await this.okta.send('DELETE', apiPath`/api/v1/users/${accountId}`, { sendEmail: false });
      this.snapshots.delete(accountId);
      return { changed: true, detail: user.status === 'DEPROVISIONED' ? 'deleted' : `deactivated (${user.status}), then deleted` };
    });
    return this.change('delete', accountId, result.changed, requestIds, { detail: result.detail });
  }

  // ---- internals ----------------------------------------------------------------------------------

  /** Runs one port operation: captures request ids and maps every failure to a typed error. */
  private async run<T>(what: string, fn: () => Promise<T>): Promise<{ result: T; requestIds: string[] }> {
    const capture = newCapture();
    try {
      const result = await captureRequests(capture, fn);
      return { result, requestIds: capture.requestIds };
    } catch (e) {
      throw this.mapError(e, what, capture);
    }
  }

  /** A group membership PUT: not sent twice blind when its answer is lost (send-once.ts). */
  private sendOnce(write: () => Promise<unknown>, tookEffect: () => Promise<boolean>): Promise<Sent> {
    return sendOnce({ write, tookEffect, unanswered: isRetryableNetworkError, ...this.resend });
  }

  private change(
    op: TargetOp,
    accountId: string,
    changed: boolean,
    requestIds: string[],
    extra: { entitlement?: EntitlementRef; detail?: string } = {},
  ): ChangeRecord {
    return {
      target: this.name,
      op,
      accountId,
      changed,
      ...(extra.entitlement ? { entitlement: { type: extra.entitlement.type, value: extra.entitlement.value } } : {}),
      requestIds,
      ...(extra.detail ? { detail: extra.detail } : {}),
    };
  }

  private supported(e: EntitlementRef): 'group' | 'app' {
    if (e.type === 'group' || e.type === 'app') return e.type;
    throw new PolicyViolation(`${this.name}: Okta entitlements are groups and apps; "${e.type}" (${e.value}) is not one`);
  }

  private parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new TargetUnavailable(this.name, `Okta returned an unexpected ${what}: ${describeIssues(parsed.error, what)}`);
    }
    return parsed.data;
  }

  /** One JSON object read with GET, checked against `schema` (`what` names it in errors). */
  private async read<S extends z.ZodType>(schema: S, what: string, path: string, query?: OktaQuery): Promise<z.infer<S>> {
    return this.parse(schema, await this.okta.json('GET', path, query), what);
  }

  /** Every item of a paged list, all pages (bounded queries only). */
  private async all(path: string, query: OktaQuery, what: string): Promise<unknown[]> {
    const collection = this.okta.list(path, query);
    const items: unknown[] = [];
    while (collection.nextUri) {
      for (const item of this.parse(PAGE, await collection.getNextPage(), what)) if (item !== null && item !== undefined) items.push(item);
    }
    return items;
  }

  /** One page of a paged list, and the cursor (`after`) of the next one when there is one. */
  private async page(path: string, query: OktaQuery, what: string): Promise<{ items: unknown[]; nextCursor?: string }> {
    const collection = this.okta.list(path, query);
    const items = this.parse(PAGE, await collection.getNextPage(), what);
    const next = collection.nextUri ? new URL(collection.nextUri).searchParams.get('after') : null;
    return { items, ...(next ? { nextCursor: next } : {}) };
  }

  private async readUser(userId: string): Promise<OktaUser> {
    const user = await this.fetchUser(userId);
    if (!user) throw new AccountNotFound(this.name, `no Okta user ${userId}`);
    return user;
  }

  /** GET by id or login; undefined on 404. */
  private async fetchUser(idOrLogin: string): Promise<OktaUser | undefined> {
    try {
      const user = await this.read(OktaUser, 'User', apiPath`/api/v1/users/${idOrLogin}`);
      this.remember(user.id, { status: user.status });
      return user;
    } catch (e) {
      if (httpStatus(e) === 404) return undefined;
      throw e;
    }
  }

  private async readGroups(userId: string): Promise<Map<string, string>> {
    const groups = new Map<string, string>();
    const items = await this.all(apiPath`/api/v1/users/${userId}/groups`, {}, 'groups');
    items.forEach((item, i) => {
      const g = this.parse(OktaGroup, item, `groups[${i}]`);
      // Only OKTA_GROUPs are ours to converge: BUILT_IN (Everyone) is every user, and APP_GROUP
      // memberships are mastered by the app that imported them.
      if (g.type !== 'OKTA_GROUP') return;
      groups.set(g.id, g.profile.name);
      this.learn(this.groupIds, g.profile.name, g.id);
    });
    this.remember(userId, { groups });
    return groups;
  }

  private async readApps(userId: string): Promise<Map<string, string>> {
    const apps = new Map<string, string>();
    const items = await this.all(apiPath`/api/v1/users/${userId}/appLinks`, {}, 'appLinks');
    items.forEach((item, i) => {
      const link = this.parse(OktaAppLink, item, `appLinks[${i}]`);
      // An app with several links (Google Mail, Calendar…) is one assignment: keep one label per app.
      if (!apps.has(link.appInstanceId)) apps.set(link.appInstanceId, link.label);
    });
    for (const [id, label] of apps) this.learn(this.appIds, label, id);
    this.remember(userId, { apps });
    return apps;
  }

  private async withEntitlements(user: OktaUser): Promise<ActualAccount> {
    const [groups, apps] = await Promise.all([this.readGroups(user.id), this.readApps(user.id)]);
    this.remember(user.id, { status: user.status, groups, apps }, true);
    const entitlements: EntitlementRef[] = [
      ...[...groups.values()].map((value) => ({ type: 'group' as const, value })),
      ...[...apps.values()].map((value) => ({ type: 'app' as const, value })),
    ];
    return this.toActual(user, entitlements);
  }

  private toActual(user: OktaUser, entitlements: EntitlementRef[]): ActualAccount {
    return {
      id: user.id,
      ...(user.profile.employeeNumber ? { correlationKey: user.profile.employeeNumber } : {}),
      userName: user.profile.login,
      status: toAccountStatus(user.status),
      entitlements,
    };
  }

  private async isAssigned(appId: string, userId: string): Promise<boolean> {
    return (await this.assignmentScope(appId, userId)) !== undefined;
  }

  private async assignmentScope(appId: string, userId: string): Promise<'USER' | 'GROUP' | undefined> {
    try {
      const appUser = await this.read(OktaAppUser, 'appUser', apiPath`/api/v1/apps/${appId}/users/${userId}`);
      return appUser.scope === 'GROUP' ? 'GROUP' : 'USER';
    } catch (e) {
      if (httpStatus(e) === 404) return undefined;
      throw e;
    }
  }

  private async lifecycle(userId: string, op: LifecycleOp): Promise<void> {
    switch (op) {
      case 'activate':
        // The answer carries a one-time activation token: read to the end and dropped.
        await this.okta.send('POST', apiPath`/api/v1/users/${userId}/lifecycle/activate`, { sendEmail: false });
        this.remember(userId, { status: undefined });
        return;
      case 'unsuspend':
        await this.okta.send('POST', apiPath`/api/v1/users/${userId}/lifecycle/unsuspend`);
        this.remember(userId, { status: 'ACTIVE' });
        return;
      case 'suspend':
        await this.okta.send('POST', apiPath`/api/v1/users/${userId}/lifecycle/suspend`);
        this.remember(userId, { status: 'SUSPENDED' });
        return;
      case 'deactivate':
        await this.okta.send('POST', apiPath`/api/v1/users/${userId}/lifecycle/deactivate`, { sendEmail: false });
        // Okta deprovisions every app on deactivation: what we knew about apps is now wrong.
        this.remember(userId, { status: 'DEPROVISIONED', apps: undefined });
        return;
    }
  }

  private resolveGroup(name: string): Promise<Resolution> {
    return this.resolve(this.groupIds, `group:${name}`, name, async () => {
      const items = await this.all('/api/v1/groups', { search: `profile.name eq "${literal(name)}"`, limit: PAGE_SIZE }, 'groups');
      const groups = items.map((item, i) => this.parse(OktaGroup, item, `groups[${i}]`));
      const exact = groups.filter((g) => g.type === 'OKTA_GROUP' && g.profile.name === name);
      if (exact.length === 1) return { id: exact[0]!.id };
      if (exact.length > 1) {
        return { missing: `group name "${name}" is ambiguous: ${exact.length} OKTA_GROUP groups have it (${exact.map((g) => g.id).join(', ')})` };
      }
      const near = groups.find((g) => g.type === 'OKTA_GROUP');
      return { missing: `no OKTA_GROUP named "${name}"${near ? ` (did you mean "${near.profile.name}"?)` : ''}` };
    });
  }

  private resolveApp(label: string): Promise<Resolution> {
    return this.resolve(this.appIds, `app:${label}`, label, async () => {
      const items = await this.all('/api/v1/apps', { q: label, limit: PAGE_SIZE }, 'apps');
      const apps = items.map((item, i) => this.parse(OktaApp, item, `apps[${i}]`)).filter((a) => a.label === label);
      if (apps.length === 1) return { id: apps[0]!.id };
      if (apps.length > 1) return { missing: `app label "${label}" is ambiguous: ${apps.length} apps have it (${apps.map((a) => a.id).join(', ')})` };
      return { missing: `no app labelled "${label}"` };
    });
  }

  /** Name → id with a per-instance cache and one lookup in flight per name. */
  private resolve(
    cache: Map<string, { id: string; at: number }>,
    key: string,
    name: string,
    lookup: () => Promise<Resolution>,
  ): Promise<Resolution> {
    const hit = cache.get(name);
    if (hit && this.now() - hit.at < LOOKUP_TTL_MS) return Promise.resolve({ id: hit.id });
    const pending = this.inFlightLookups.get(key);
    if (pending) return pending;
    const promise = lookup()
      .then((r) => {
        if ('id' in r) cache.set(name, { id: r.id, at: this.now() });
        return r;
      })
      .finally(() => this.inFlightLookups.delete(key));
    this.inFlightLookups.set(key, promise);
    return promise;
  }

  /** Learns a name → id seen in a read; two ids for one name make the name ambiguous (look it up). */
  private learn(cache: Map<string, { id: string; at: number }>, name: string, id: string): void {
    const known = cache.get(name);
    if (known && known.id !== id) cache.delete(name);
    else if (!known) cache.set(name, { id, at: this.now() });
  }

  private snapshot(userId: string): Snapshot | undefined {
    const s = this.snapshots.get(userId);
    if (!s) return undefined;
    if (this.now() - s.at > this.snapshotTtlMs) {
      this.snapshots.delete(userId);
      return undefined;
    }
    return s;
  }

  private remember(userId: string, patch: Partial<Omit<Snapshot, 'at'>>, complete = false): void {
    if (this.snapshotTtlMs === 0) return;
    const t = this.now();
    let s = this.snapshot(userId);
    if (!s) {
      if (this.snapshots.size >= 5_000) {
        for (const [id, old] of this.snapshots) if (t - old.at > this.snapshotTtlMs) this.snapshots.delete(id);
      }
      s = { at: t };
      this.snapshots.set(userId, s);
    }
    if (complete) s.at = t;
    Object.assign(s, patch);
  }

  private mapError(e: unknown, what: string, capture: RequestCapture): Error {
    if (e instanceof JmlError) return e;
    const last = capture.requestIds.at(-1);
    const ref = last ? `; Okta request ${last}` : '';
    const status = httpStatus(e);
    if (status !== undefined) {
      const err = e as SdkError;
      const code = err.errorCode ? `${err.errorCode} ` : '';
      const causes = (err.errorCauses ?? []).map((c) => c.errorSummary).filter(Boolean);
      const summary = `${code}${err.errorSummary || `HTTP ${status}`}${causes.length ? ` (${causes.join('; ')})` : ''}`;
      if (status === 429) {
        const reset = Number(headerOf(e, 'x-rate-limit-reset'));
        const waitMs = Number.isFinite(reset) && reset > 0 ? this.executor.resetToLocalMs(reset) - this.now() : 60_000;
        const seconds = Math.max(1, Math.ceil(waitMs / 1000));
        return new TargetThrottled(
          this.name,
          seconds,
          `${this.name}: rate limited while trying to ${what} (${capture.lastCallAttempts} attempts); retry after ${seconds}s${ref}`,
        );
      }
      if (status >= 500) return new TargetUnavailable(this.name, `${what} failed after ${capture.lastCallAttempts} attempts: ${summary}${ref}`);
      if (status === 404) return new AccountNotFound(this.name, `${what}: ${summary}${ref}`);
      if (status === 409) return new TargetConflict(this.name, `${what}: ${summary}${ref}`);
      return new TargetRejected(this.name, status, `${what}: ${summary}${ref}`);
    }
    const fetchError = e as { name?: string; type?: string; code?: string };
    if (fetchError?.name === 'FetchError') {
      // A 2xx answer whose body is not JSON (node-fetch's `json()` refused it).
      if (fetchError.type === 'invalid-json') return new TargetUnavailable(this.name, `${what}: Okta answered with a body that is not JSON${ref}`);
      const reason =
        fetchError.type === 'request-timeout' || fetchError.type === 'body-timeout'
          ? 'timed out'
          : `connection failed (${fetchError.code ?? fetchError.type ?? 'network error'})`;
      return new TargetUnavailable(this.name, `${what} ${reason} after ${capture.lastCallAttempts} attempts${ref}`);
    }
    return e instanceof Error ? e : new Error(String(e));
  }
}

/** The Okta adapter of the Connector port. Create once per cold start and reuse. */
export function createOktaConnector(config: {
  name: string;
  orgUrl: string;
  token: string;
  maxConcurrent?: number;
  requestTimeoutMs?: number;
  maxRetries?: number;
} & Partial<Pick<OktaConnectorConfig, 'maxRetryWaitMs' | 'backoffBaseMs' | 'snapshotTtlMs'>>): OktaConnector {
  return new OktaConnector(config);
}

