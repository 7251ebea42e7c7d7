/**
 * Reconciliation benchmark: N people × 3 targets (Okta + Slack and NetSuite over SCIM) on the
 * stand-ins, reconciled by the real `reconcile` state machine (aws-local-stepfunctions, the same
 * Task handlers), with a few of each thing reconciliation exists for: drift, leavers still
 * enabled, orphans, conflicts, missing accounts, and Okta groups added (a privileged one) or removed
 * (a required one) outside jml on accounts whose status is right.
 *
 *   npx tsx bench/reconcile.ts [--people=100000] [--anomalies=10] [--latency=0] [--ledger=memory|dynalite]
 *   node --expose-gc --import tsx bench/reconcile.ts …   # also measures the live heap (forced GC)
 *
 * Reported: API calls per target against the minimum page count (the fewest list calls that can
 * enumerate each target at its largest page size — for Okta also the member pages of every group
 * the policy manages, 1 000 members a page, at least one per group; goal ≤ 1.05×), the calls the findings cost on
 * top (a search before each fix, the fix's own reads and writes), wall time, and the reconciling
 * process's memory above what the seeded org already takes.
 *
 * Set-up, and why:
 *  - Each stand-in runs in its own process, seeded directly (not through its API) with
 *    deterministic ids: 100k users in seconds, the stand-ins' CPU off the reconciler's core, and
 *    the reconciler's memory measured alone. Both stand-ins filter and sort (Okta) or render
 *    (SCIM) the whole org on every list call — O(N) per page — so at 100k the wall time is
 *    mostly theirs; a real tenant answers a page in constant time and is bound by its rate limit.
 *  - The SCIM stand-in finds each user's groups by scanning every group's members on every render
 *    (quadratic at 100k). Its process gives the store an indexed, cached renderer with the same
 *    output (the cache is dropped when a group or the user changes).
 *  - The ledger is in memory by default: dynalite serves ~1 000 operations/s, so seeding 100k
 *    persons through it would take minutes. `--ledger=dynalite` runs on it (use a smaller
 *    `--people`). Ledger operations are counted and reported; they are not API calls.
 *  - The policy is the example one with the bulk guard's count raised, so every anomaly is acted on.
 */
import '#local/polyfills';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { reserveCalls, type CallReservation, type CallSchedule } from '#core/call-budget';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import type { AppDeps, ConnectorRegistry } from '#app/ports';
import type { ReconciliationReport } from '#app/reconcile';
import type { DesiredTarget } from '#core/access';
import type { Connector } from '#connectors/connector';
import { createOktaConnector } from '#connectors/okta.connector';
import { createScimConnector } from '#connectors/scim.connector';
import { desiredState } from '#core/desired-state';
import { ChainedEvidenceStore, ObjectExists, type ObjectBackend, type PutOptions } from '#core/evidence-store';
import type { Worker } from '#core/hr-event';
import {
  ConditionFailed,
  type ApprovalRecord,
  type ExceptionRecord,
  type TicketRef,
  type Ledger,
  type PersonRecord,
  type RunRecord,
  type RunStatus,
  type StepAttempt,
  type StepRecord,
} from '#core/ledger';
import { TargetConflict } from '#core/errors';
import { compilePolicy, type Policy } from '#core/policy';
import { DynamoLedger } from '#aws/ledger.dynamodb';
import { reconcileTaskHandlers } from '#handlers/reconcile-tasks';
import { MemoryMetrics } from '#local/adapters';
import { ensureTable, startDynalite } from '#local/dynalite';
import { startOktaStandIn } from '#local/standins/okta';
import { startScimStandIn, type ScimStandIn } from '#local/standins/scim';
import { LocalWorkflows } from '#local/workflow-engine';
import { oktaProfileOf } from '#local/standins/okta-state';

const { values: args } = parseArgs({
  options: {
    people: { type: 'string', default: '100000' },
    anomalies: { type: 'string', default: '10' },
    latency: { type: 'string', default: '0' },
    ledger: { type: 'string', default: 'memory' },
    role: { type: 'string', default: 'main' },
    app: { type: 'string' },
    /** Write a CPU profile of each stand-in process here (where does the time go?). */
    'profile-dir': { type: 'string' },
  },
});
const PEOPLE = Number(args.people);
const ANOMALIES = Number(args.anomalies);
const LATENCY = Number(args.latency);
if (!Number.isInteger(PEOPLE) || PEOPLE < 10) throw new Error('--people: an integer ≥ 10');
if (!Number.isInteger(ANOMALIES) || ANOMALIES < 0 || ANOMALIES * 12 > PEOPLE) throw new Error('--anomalies: an integer ≥ 0, at most people/12');
if (!['memory', 'dynalite'].includes(args.ledger!)) throw new Error('--ledger: memory or dynalite');

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Largest page each target API serves (Okta /users: limit ≤ 200, /groups/{id}/users: 1 000; the SCIM stand-in: count ≤ 200). */
const MAX_PAGE = { okta: 200, oktaMembers: 1000, scim: 200 } as const;
/** Okta anomalies: a privileged group added outside jml, a required one removed. */
const OKTA_EXTRA_GROUP = 'HRIS Admins';
const OKTA_REMOVED_GROUP = 'All Staff';
const SCIM_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';

// ---------------------------------------------------------------------------------------------
// An in-memory ledger with the DynamoDB adapter's semantics (conditional writes, link ownership)

class MemoryLedger implements Ledger {
  private readonly persons = new Map<string, string>();
  private readonly order: string[] = [];
  private readonly links = new Map<string, string>();
  private readonly runs = new Map<string, RunRecord>();
  private readonly steps = new Map<string, StepRecord[]>();
  private readonly approvals = new Map<string, ApprovalRecord>();
  private readonly exceptions = new Map<string, ExceptionRecord>();
  private readonly meta = new Map<string, { value: string; expires?: number }>();
  readonly ops = { reads: 0, writes: 0 };

  async getPerson(employeeId: string) {
    this.ops.reads += 1;
    const p = this.persons.get(employeeId);
    return p ? (JSON.parse(p) as PersonRecord) : null;
  }
  async putPerson(person: PersonRecord, expectedUpdatedAt: string | null) {
    this.ops.writes += 1;
    const current = this.persons.get(person.employeeId);
    const currentAt = current ? (JSON.parse(current) as PersonRecord).updatedAt : null;
    if (expectedUpdatedAt === null ? current !== undefined : currentAt !== expectedUpdatedAt) {
      throw new ConditionFailed(`person ${person.employeeId} changed`);
    }
    for (const [target, accountId] of Object.entries(person.links)) {
      const owner = this.links.get(`${target}#${accountId}`);
      if (owner && owner !== person.employeeId) {
        const ownerRecord = await this.getPerson(owner);
        if (ownerRecord?.links[target] === accountId) throw new TargetConflict(target, `account ${accountId} is linked to employee ${owner}`, [accountId]);
      }
      this.links.set(`${target}#${accountId}`, person.employeeId);
    }
    if (!current) this.order.push(person.employeeId);
    this.persons.set(person.employeeId, JSON.stringify(person));
  }
  async findPersonByAccount(target: string, accountId: string) {
    const owner = this.links.get(`${target}#${accountId}`);
    if (!owner) return null;
    return (await this.getPerson(owner))?.links[target] === accountId ? owner : null;
  }
  async listPersons(cursor?: string, limit = 100) {
    this.ops.reads += 1;
    const from = cursor ? Number(cursor) : 0;
    const ids = this.order.slice(from, from + limit);
    const next = from + limit < this.order.length ? String(from + limit) : undefined;
    return { persons: ids.map((id) => JSON.parse(this.persons.get(id)!) as PersonRecord), ...(next ? { nextCursor: next } : {}) };
  }
  async createRun(run: RunRecord) {
    this.ops.writes += 1;
    if (this.runs.has(run.runId)) return false;
    this.runs.set(run.runId, structuredClone(run));
    return true;
  }
  async getRun(runId: string) {
    this.ops.reads += 1;
    const r = this.runs.get(runId);
    return r ? structuredClone(r) : null;
  }
  async updateRun(runId: string, patch: Partial<RunRecord>, from?: readonly RunStatus[]): Promise<void> {
    this.ops.writes += 1;
    const r = this.runs.get(runId);
    if (!r || (from && !from.includes(r.status))) throw new ConditionFailed(`run ${runId}`);
    this.runs.set(runId, { ...r, ...structuredClone(patch), updatedAt: new Date().toISOString() });
  }
  async listRunsByEmployee(employeeId: string) {
    return [...this.runs.values()].filter((r) => r.employeeId === employeeId);
  }
  async listRunsByStatus(status: RunStatus) {
    return [...this.runs.values()].filter((r) => r.status === status);
  }
  async recordStepAttempt(step: StepAttempt) {
    const steps = this.steps.get(step.runId) ?? [];
    const before = steps.find((s) => s.stepId === step.stepId);
    const { error, ...latest } = step;
    const folded: StepRecord = before
      ? { ...before, ...latest, startedAt: before.startedAt, changes: [...before.changes, ...step.changes], writes: before.writes + step.writes, attempts: (before.attempts ?? 1) + 1 }
      : { ...latest, attempts: 1 };
    if (error) folded.error = error;
    else delete folded.error;
    this.steps.set(step.runId, [...steps.filter((s) => s.stepId !== step.stepId), folded]);
  }
  async listSteps(runId: string) {
    return this.steps.get(runId) ?? [];
  }
  async putApproval(a: ApprovalRecord) {
    this.approvals.set(a.approvalId, a);
  }
  async getApproval(id: string) {
    return this.approvals.get(id) ?? null;
  }
  async decideApproval(id: string, decision: Pick<ApprovalRecord, 'status' | 'decidedAt' | 'rationale' | 'sourceIp' | 'userAgent'>): Promise<ApprovalRecord> {
    const a = this.approvals.get(id);
    if (!a || a.status !== 'PENDING') throw new ConditionFailed(`approval ${id}`);
    const next = { ...a, ...decision };
    this.approvals.set(id, next);
    return next;
  }
  async listApprovals(runId: string) {
    return [...this.approvals.values()].filter((a) => a.runId === runId);
  }
  async openException(e: ExceptionRecord) {
    this.ops.writes += 1;
    if (this.exceptions.has(e.exceptionId)) return false;
    this.exceptions.set(e.exceptionId, structuredClone(e));
    return true;
  }
  async resolveException(id: string, r: { resolvedAt: string; resolution: string; resolvedBy: string }) {
    const e = this.exceptions.get(id);
    if (!e || e.status !== 'open') throw new ConditionFailed(`exception ${id}`);
    const next: ExceptionRecord = { ...e, ...r, status: 'resolved' };
    this.exceptions.set(id, next);
    return next;
  }
  async listExceptions(filter: { status?: 'open' | 'resolved'; runId?: string }) {
    return [...this.exceptions.values()].filter((e) => (!filter.status || e.status === filter.status) && (!filter.runId || e.runId === filter.runId));
  }
  async setExceptionTicket(id: string, update: { ticket?: TicketRef; ticketError?: string | null }) {
    this.ops.writes += 1;
    const e = this.exceptions.get(id);
    if (!e) throw new ConditionFailed(`exception ${id}`);
    const { ticketError: _, ...rest } = e;
    this.exceptions.set(id, { ...(update.ticketError === null ? rest : e), ...(update.ticket ? { ticket: update.ticket } : {}), ...(update.ticketError ? { ticketError: update.ticketError } : {}) });
  }  private readonly ticketsDue = new Set<string>();
  async markTicketDue(id: string) {
    this.ops.writes += 1;
    this.ticketsDue.add(id);
  }
  async clearTicketDue(id: string) {
    this.ops.writes += 1;
    this.ticketsDue.delete(id);
  }
  async listTicketsDue() {
    this.ops.reads += 1;
    return [...this.ticketsDue].map((id) => this.exceptions.get(id)).filter((e): e is ExceptionRecord => !!e);
  }

  async getMeta<T>(key: string) {
    this.ops.reads += 1;
    const m = this.meta.get(key);
    if (!m || (m.expires !== undefined && m.expires * 1000 <= Date.now())) return null;
    return JSON.parse(m.value) as T;
  }
  /** Bytes held by meta items (what the reconciliation writes: markers, findings, delta links). */
  metaBytes(): number {
    let n = 0;
    for (const [k, v] of this.meta) n += k.length + v.value.length;
    return n;
  }
  async putMeta<T>(key: string, value: T, ttlEpochSeconds?: number) {
    this.ops.writes += 1;
    this.meta.set(key, { value: JSON.stringify(value), ...(ttlEpochSeconds !== undefined ? { expires: ttlEpochSeconds } : {}) });
  }
  private readonly counters = new Map<string, number>();
  async addToCounter(key: string, by: number, options: { max?: number; ttlEpochSeconds?: number } = {}) {
    this.ops.writes += 1;
    const value = this.counters.get(key) ?? 0;
    if (options.max !== undefined && value + by > options.max) return { added: false, value };
    this.counters.set(key, value + by);
    return { added: true, value: value + by };
  }
  async getCounters(keys: readonly string[]) {
    this.ops.reads += 1;
    return keys.map((k) => this.counters.get(k) ?? 0);
  }
  private readonly leases = new Map<string, { holder: string; untilMs: number; attempt?: string }>();
  async acquireLease(key: string, holder: string, untilMs: number, nowMs: number, attempt?: string) {
    this.ops.writes += 1;
    const l = this.leases.get(key);
    if (l && l.holder !== holder && l.untilMs >= nowMs) return { acquired: false as const, holder: l.holder, untilMs: l.untilMs };
    this.leases.set(key, { holder, untilMs, attempt });
    return { acquired: true as const };
  }
  async releaseLease(key: string, holder: string, attempt?: string) {
    this.ops.writes += 1;
    const l = this.leases.get(key);
    if (l?.holder === holder && (!attempt || l.attempt === attempt)) this.leases.delete(key);
  }
  private readonly callBudgets = new Map<string, CallSchedule>();
  async reserveCalls(key: string, reservation: CallReservation) {
    this.ops.writes += 1;
    const next = reserveCalls(this.callBudgets.get(key) ?? null, reservation);
    this.callBudgets.set(key, next.schedule);
    return { startAtMs: next.startAtMs };
  }
}

class MemoryBackend implements ObjectBackend {
  readonly objects = new Map<string, Uint8Array>();
  async put(key: string, body: Uint8Array, options: PutOptions) {
    if (options.ifAbsent && this.objects.has(key)) throw new ObjectExists(key);
    this.objects.set(key, body);
  }
  async get(key: string) {
    return this.objects.get(key) ?? null;
  }
  async list(prefix: string) {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}

/** Counts ledger calls on any Ledger (the dynalite one included). */
function counted(ledger: Ledger, ops: { reads: number; writes: number }): Ledger {
  return new Proxy(ledger, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      const name = String(prop);
      return (...a: unknown[]) => {
        if (/^(get|find|list)/.test(name)) ops.reads += 1;
        else ops.writes += 1;
        return v.apply(target, a);
      };
    },
  });
}

// ---------------------------------------------------------------------------------------------
// The SCIM stand-in's renderer, indexed and memoised (same output as ScimStore.renderUser)

type Json = Record<string, unknown>;

/**
 * Replaces the store's `renderUser` with one that gives the same JSON: the original renders the
 * user against a view of the store with no groups (so it scans nothing), and the user's groups
 * come from a member index. Results are cached per user version; when a group changes, only the
 * users whose membership changed (all its members, if it was renamed) are rendered again.
 */
function indexedScimRenderer(standIn: ScimStandIn): void {
  const store = standIn.state;
  const render = Object.getPrototypeOf(store).renderUser as (this: unknown, u: unknown) => Json;
  const view = Object.create(store, { groups: { value: new Map() } });
  const seen = new Map<string, { version: number; name: unknown; members: Set<string> }>();
  const memberOf = new Map<string, Set<string>>();
  const cache = new Map<string, { version: number; json: Json }>();
  const membersOf = (g: { data: Json }) => new Set(((g.data.members as Array<{ value: string }> | undefined) ?? []).map((m) => m.value));
  const refresh = () => {
    const stale = new Set<string>();
    const current = new Set<string>();
    for (const g of store.groups.values()) {
      current.add(g.id);
      const before = seen.get(g.id);
      if (before && before.version === g.version) continue;
      const after = membersOf(g);
      const renamed = before && before.name !== g.data.displayName;
      for (const u of after) if (renamed || !before?.members.has(u)) stale.add(u);
      for (const u of before?.members ?? []) if (!after.has(u)) stale.add(u);
      for (const u of before?.members ?? []) memberOf.get(u)?.delete(g.id);
      for (const u of after) {
        let set = memberOf.get(u);
        if (!set) memberOf.set(u, (set = new Set()));
        set.add(g.id);
      }
      seen.set(g.id, { version: g.version, name: g.data.displayName, members: after });
    }
    for (const [id, before] of seen) {
      if (current.has(id)) continue;
      for (const u of before.members) {
        memberOf.get(u)?.delete(id);
        stale.add(u);
      }
      seen.delete(id);
    }
    for (const u of stale) cache.delete(u);
  };
  // A list call renders every user in one synchronous pass: look at the groups once per pass.
  let checked = false;
  store.renderUser = (u) => {
    if (!checked) {
      refresh();
      checked = true;
      setImmediate(() => (checked = false));
    }
    const hit = cache.get(u.id);
    if (hit && hit.version === u.version) return hit.json;
    const groups = [...(memberOf.get(u.id) ?? [])].map((gid) => {
      const g = store.groups.get(gid)!;
      return { value: g.id, $ref: `${standIn.url}/Groups/${g.id}`, display: g.data.displayName, type: 'direct' };
    });
    const json = { ...render.call(view, u), ...(groups.length ? { groups } : {}) };
    cache.set(u.id, { version: u.version, json });
    return json;
  };
}

// ---------------------------------------------------------------------------------------------
// The org: deterministic, so each stand-in process and the ledger agree without exchanging it

const DEPARTMENTS: Array<[string, string, number]> = [
  ['Engineering', 'ENG-2', 40],
  ['Sales', 'SLS-1', 25],
  ['Support', 'SUP-1', 15],
  ['Finance', 'FIN-1', 10],
  ['People', 'PPL-1', 10],
];

function personWorker(i: number): Worker {
  const id = `P${String(i).padStart(6, '0')}`;
  let slot = i % 100;
  let dept = DEPARTMENTS[0]!;
  for (const d of DEPARTMENTS) {
    if (slot < d[2]) {
      dept = d;
      break;
    }
    slot -= d[2];
  }
  return {
    employeeId: id,
    givenName: 'Person',
    familyName: id,
    email: `${id.toLowerCase()}@acme.example`,
    department: dept[0],
    location: 'London',
    jobCode: dept[1],
    employmentType: i % 10 === 9 ? 'contractor' : 'employee',
    startDate: '2024-01-01',
  };
}

const accountId = {
  okta: (i: number) => `00u${String(i).padStart(17, '0')}`,
  scim: (app: string, i: number) => `${app}-${i}`,
};

function benchPolicy(): Policy {
  const doc = parse(readFileSync(`${ROOT}config/access-policy.yaml`, 'utf8'));
  doc.bulkGuard = { ...doc.bulkGuard, maxCount: 1_000_000 };
  return compilePolicy(doc);
}

/** Which people carry which anomaly: spread over the org, disjoint. */
function anomalySets() {
  const sets = {
    drift: new Set<number>(),
    leavers: new Set<number>(),
    conflicts: new Set<number>(),
    missing: new Set<number>(),
    oktaExtra: new Set<number>(),
    oktaMissing: new Set<number>(),
  };
  const kinds = Object.values(sets);
  const stride = Math.floor(PEOPLE / Math.max(1, ANOMALIES * kinds.length + 1));
  for (let k = 0; k < ANOMALIES; k++) kinds.forEach((set, j) => set.add(1 + (k * kinds.length + j) * stride));
  return sets;
}

/** Every person and what each target holds for them (the converged state, before anomalies). */
function* org(policy: Policy): Generator<{ i: number; worker: Worker; targets: DesiredTarget[] }> {
  const now = new Date().toISOString();
  for (let i = 1; i <= PEOPLE; i++) {
    const worker = personWorker(i);
    const targets = desiredState({ worker, status: 'active' }, policy, { now }).targets.filter((t) => t.account === 'enabled');
    yield { i, worker, targets };
  }
}

interface CallSummary {
  total: number;
  list: number;
  /** Of the list calls: member pages (Okta `GET /groups/{id}/users`, `/apps/{id}/users`). */
  members: number;
  /** Name → id lookups (Okta `GET /groups?search=`, `GET /apps?q=`): one per managed entitlement and connector instance. */
  lookups: number;
  otherReads: number;
  writes: number;
}

/** A list call enumerates (Okta: the all-statuses filter; SCIM: startIndex paging); a search for one person is a read a finding costs. */
function summarise(log: Array<{ method: string; path: string; query: string }>): CallSummary {
  const isList = (r: { method: string; path: string; query: string }) =>
    r.method === 'GET' && /\/(users|Users)$/.test(r.path) && !/search=|filter=(?!status)/.test(r.query.replace(/^\?/, ''));
  const list = log.filter(isList).length;
  const members = log.filter((r) => r.method === 'GET' && /^\/api\/v1\/(groups|apps)\/[^/]+\/users$/.test(r.path)).length;
  const lookups = log.filter((r) => r.method === 'GET' && /^\/api\/v1\/(groups|apps)$/.test(r.path)).length;
  const writes = log.filter((r) => r.method !== 'GET').length;
  return { total: log.length, list, members, lookups, otherReads: log.length - list - lookups - writes, writes };
}

// ---------------------------------------------------------------------------------------------
// A stand-in process: seeds its target, serves it, reports its request log on request

type ToChild = { type: 'start'; token: string } | { type: 'mark' } | { type: 'stats' } | { type: 'close' };
type FromChild = { type: 'ready'; url: string; accounts: number; memberPages: number } | { type: 'stats'; calls: CallSummary };

async function standInProcess(): Promise<void> {
  const policy = benchPolicy();
  const a = anomalySets();
  const groupsOf = (target: string, type: string) =>
    [...new Set([...policy.bundleEntitlements.values()].flat().filter((e) => e.target === target && e.type === type).map((e) => e.value))];
  const send = (m: FromChild) => process.send!(m);
  const { token } = await new Promise<{ token: string }>((resolve) => process.once('message', (m: ToChild) => m.type === 'start' && resolve(m)));
  let log: Array<{ method: string; path: string; query: string }>;
  let close: () => Promise<void>;
  let url: string;
  let accounts: number;
  let memberPages = 0;
  if (args.role === 'okta') {
    const okta = await startOktaStandIn({ token, controls: { latencyMs: LATENCY }, seed: { groups: groupsOf('okta', 'group').map((name) => ({ name })) } });
    const groupIds = new Map([...okta.state.groups.values()].map((g) => [g.profile.name, g.id]));
    for (const { i, worker: w, targets } of org(policy)) {
      const t = targets.find((x) => x.target === 'okta');
      if (!t) continue;
      const user = okta.state.addUser({
        id: accountId.okta(i),
        status: 'ACTIVE',
        hasPassword: true,
        profile: oktaProfileOf(w),
      });
      for (const e of t.entitlements) if (!(a.oktaMissing.has(i) && e.value === OKTA_REMOVED_GROUP)) okta.state.addMember(groupIds.get(e.value)!, user.id);
      if (a.oktaExtra.has(i)) okta.state.addMember(groupIds.get(OKTA_EXTRA_GROUP)!, user.id); // by an admin, outside jml
    }
    for (let k = 0; k < ANOMALIES; k++) {
      okta.state.addUser({ id: `00uorphan${String(k).padStart(11, '0')}`, status: 'ACTIVE', hasPassword: true, profile: { login: `svc-${k}@acme.example`, email: `svc-${k}@acme.example` } });
    }
    ({ requestLog: log, url } = okta);
    accounts = okta.state.users.size;
    // The fewest member pages: every managed group's members at 1 000 a page, one page for an empty group.
    for (const name of groupsOf('okta', 'group')) memberPages += Math.max(1, Math.ceil(okta.state.memberships.get(groupIds.get(name)!)!.size / MAX_PAGE.oktaMembers));
    close = () => okta.close();
  } else {
    const app = args.app!;
    const standIn = await startScimStandIn({ name: app, token, controls: { latencyMs: LATENCY }, seed: { groups: groupsOf(app, 'group').map((displayName) => ({ displayName })) } });
    indexedScimRenderer(standIn);
    const store = standIn.state;
    const members = new Map<string, Array<{ value: string }>>();
    for (const { i, worker: w, targets } of org(policy)) {
      const t = targets.find((x) => x.target === app);
      if (!t || (app === 'slack' && a.missing.has(i))) continue; // deleted in Slack by an admin
      const roles = t.entitlements.filter((e) => e.type === 'role').map((e) => ({ value: e.value }));
      const id = accountId.scim(app, i);
      store.insert(
        store.users,
        { schemas: [SCIM_USER], userName: w.email, externalId: w.employeeId, displayName: `${w.givenName} ${w.familyName}`, active: true, emails: [{ value: w.email, type: 'work', primary: true }], ...(roles.length ? { roles } : {}) },
        id,
      );
      const groups = t.entitlements.filter((e) => e.type === 'group').map((e) => e.value);
      // Added in Slack, outside jml: a channel group of another department.
      if (app === 'slack' && a.drift.has(i)) groups.push(w.department === 'Support' ? 'sales' : 'support');
      for (const g of groups) {
        let list = members.get(g);
        if (!list) members.set(g, (list = []));
        list.push({ value: id });
      }
      if (app === 'slack' && a.conflicts.has(i)) {
        store.insert(store.users, { schemas: [SCIM_USER], userName: `second.${w.email}`, externalId: w.employeeId, active: true }, `${id}-b`);
      }
    }
    if (app === 'slack') {
      for (let k = 0; k < ANOMALIES; k++) store.insert(store.users, { schemas: [SCIM_USER], userName: `guest-${k}@partner.example`, externalId: `X${k}`, active: true }, `slack-orphan-${k}`);
    }
    for (const g of store.groups.values()) store.update(g, { ...g.data, members: members.get(String(g.data.displayName)) ?? [] });
    store.listUsers(); // fill the render cache now, not during the measured run
    ({ requestLog: log, url } = standIn);
    accounts = store.users.size;
    close = () => standIn.close();
  }
  let mark = 0;
  send({ type: 'ready', url, accounts, memberPages });
  process.on('message', (m: ToChild) => {
    if (m.type === 'mark') mark = log.length;
    if (m.type === 'stats') send({ type: 'stats', calls: summarise(log.slice(mark)) });
    if (m.type === 'close') void close().then(() => process.exit(0)); // exit() writes the CPU profile, if any
  });
}

function startChild(role: string, app?: string): { child: ChildProcess; ready: Promise<{ url: string; accounts: number; memberPages: number }>; token: string } {
  const token = randomBytes(24).toString('base64url');
  const child = fork(fileURLToPath(import.meta.url), [`--role=${role}`, ...(app ? [`--app=${app}`] : []), `--people=${PEOPLE}`, `--anomalies=${ANOMALIES}`, `--latency=${LATENCY}`], {
    execArgv: ['--import', 'tsx', ...(args['profile-dir'] ? ['--cpu-prof', `--cpu-prof-dir=${args['profile-dir']}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = new Promise<{ url: string; accounts: number; memberPages: number }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${role} stand-in exited with ${code}`)));
    child.on('message', (m: FromChild) => m.type === 'ready' && resolve(m));
  });
  child.send({ type: 'start', token } satisfies ToChild);
  return { child, ready, token };
}

function ask(child: ChildProcess): Promise<CallSummary> {
  return new Promise((resolve) => {
    const on = (m: FromChild) => {
      if (m.type !== 'stats') return;
      child.off('message', on);
      resolve(m.calls);
    };
    child.on('message', on);
    child.send({ type: 'stats' } satisfies ToChild);
  });
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const policy = benchPolicy();
  const a = anomalySets();
  const seedStarted = performance.now();
  const children = { okta: startChild('okta'), slack: startChild('scim', 'slack'), netsuite: startChild('scim', 'netsuite') };

  const ledgerOps = { reads: 0, writes: 0 };
  let ledger: Ledger;
  let memoryLedger: MemoryLedger | undefined;
  let dynaliteClose: (() => Promise<void>) | undefined;
  if (args.ledger === 'dynalite') {
    const d = await startDynalite();
    await ensureTable(d.client, 'jml');
    ledger = counted(new DynamoLedger({ client: d.ledgerClient, tableName: 'jml' }), ledgerOps);
    dynaliteClose = () => d.close();
  } else {
    memoryLedger = new MemoryLedger();
    ledger = counted(memoryLedger, ledgerOps);
  }
  // Drift: a Slack group added (Slack), an Okta group added, an Okta group removed.
  const expected = { drift: ANOMALIES * 3, leaver_enabled: 0, orphan: ANOMALIES * 2, conflict: ANOMALIES, missing_account: ANOMALIES, failed: 0 };
  const now = new Date().toISOString();
  let batch: Array<Promise<void>> = [];
  for (const { i, worker: w, targets } of org(policy)) {
    const links: Record<string, string> = {};
    for (const t of targets) {
      if (t.target === 'slack' && a.missing.has(i)) continue;
      links[t.target] = t.kind === 'okta' ? accountId.okta(i) : accountId.scim(t.target, i);
    }
    const leaver = a.leavers.has(i);
    if (leaver) expected.leaver_enabled += Object.keys(links).length; // every open account of a leaver
    batch.push(
      ledger.putPerson(
        {
          employeeId: w.employeeId,
          worker: w,
          status: leaver ? 'terminated' : 'active', // HR says gone; the accounts are still open
          version: '2024-01-01T00:00:00.000Z',
          lastRunId: 'seed',
          links,
          grantedAt: {},
          approvedBundles: [],
          rejectedBundles: [],
          updatedAt: now,
        },
        null,
      ),
    );
    if (batch.length >= 200) {
      await Promise.all(batch);
      batch = [];
    }
  }
  await Promise.all(batch);
  const ready = {
    okta: await children.okta.ready,
    slack: await children.slack.ready,
    netsuite: await children.netsuite.ready,
  };
  const seedMs = performance.now() - seedStarted;

  const connectors = new Map<string, Connector>([
    ['okta', createOktaConnector({ name: 'okta', orgUrl: ready.okta.url, token: children.okta.token })],
    ['slack', createScimConnector({ name: 'slack', baseUrl: ready.slack.url, token: children.slack.token, pageSize: MAX_PAGE.scim })],
    ['netsuite', createScimConnector({ name: 'netsuite', baseUrl: ready.netsuite.url, token: children.netsuite.token, pageSize: MAX_PAGE.scim })],
  ]);
  const registry: ConnectorRegistry = { get: (t) => connectors.get(t)! };
  const clock = { now: () => new Date() };
  let mails = 0;
  let deps!: AppDeps;
  const workflows = new LocalWorkflows({ dir: `${ROOT}statemachines`, handlers: reconcileTaskHandlers(async () => deps) });
  deps = {
    ledger,
    evidence: new ChainedEvidenceStore(new MemoryBackend()),
    policy: async () => policy,
    connectors: registry,
    queue: { send: async () => undefined },
    workflows,
    callbacks: workflows,
    mailer: {
      send: async () => {
        mails += 1;
        return { messageId: `m-${mails}` };
      },
    },
    scheduler: { upsertOnce: async () => undefined, delete: async () => false },
    secrets: { get: async () => [randomBytes(16).toString('hex')] },
    metrics: new MemoryMetrics(clock),
    clock,
    publicBaseUrl: 'http://127.0.0.1:8787',
  };

  const accounts = { okta: ready.okta.accounts, slack: ready.slack.accounts, netsuite: ready.netsuite.accounts };
  const minimumPages = {
    okta: Math.ceil(accounts.okta / MAX_PAGE.okta) + ready.okta.memberPages,
    slack: Math.ceil(accounts.slack / MAX_PAGE.scim),
    netsuite: Math.ceil(accounts.netsuite / MAX_PAGE.scim),
  };
  for (const c of Object.values(children)) c.child.send({ type: 'mark' } satisfies ToChild);
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const baseHeap = process.memoryUsage().heapUsed;
  const metaBefore = memoryLedger?.metaBytes() ?? 0;
  let peakHeap = baseHeap;
  let peakLive = baseHeap;
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 20);
  const liveSampler = gc
    ? setInterval(() => {
        gc();
        peakLive = Math.max(peakLive, process.memoryUsage().heapUsed);
      }, 2_000)
    : undefined;
  const ledgerBefore = { ...ledgerOps };
  const started = performance.now();
  await workflows.start('reconcile', 'nightly-bench', { scope: 'nightly', trigger: 'bench' });
  const execution = await workflows.wait('nightly-bench', 60 * 60_000);
  const wallMs = performance.now() - started;
  clearInterval(sampler);
  if (liveSampler) clearInterval(liveSampler);
  if (execution.status !== 'SUCCEEDED') throw new Error(`reconciliation ${execution.status}: ${execution.error?.message}`);
  const metaGrowth = (memoryLedger?.metaBytes() ?? 0) - metaBefore;
  // What stays after the run is what it wrote to the ledger (in memory here; DynamoDB in AWS).
  gc?.();
  const endLive = process.memoryUsage().heapUsed;

  const run = (await ledger.getRun('nightly-bench'))!;
  const files = await deps.evidence.loadBundle(run.evidence!.prefix);
  const report = JSON.parse(Buffer.from(files.get('findings.json')!).toString()) as ReconciliationReport;
  const perTarget = { okta: await ask(children.okta.child), slack: await ask(children.slack.child), netsuite: await ask(children.netsuite.child) };
  const minimum = minimumPages.okta + minimumPages.slack + minimumPages.netsuite;
  const total = perTarget.okta.total + perTarget.slack.total + perTarget.netsuite.total;
  const lists = perTarget.okta.list + perTarget.slack.list + perTarget.netsuite.list;
  const found = report.totals.byKind;
  const allFound = Object.entries(expected).every(([k, n]) => found[k as keyof typeof found] === n);
  const MB = 2 ** 20;

  const r = {
    bench: 'reconcile',
    people: PEOPLE,
    anomaliesPerKind: ANOMALIES,
    ledger: args.ledger,
    latencyMs: LATENCY,
    accounts,
    minimumPages,
    calls: perTarget,
    listCallsPerMinimumPage: Number((lists / minimum).toFixed(3)),
    /** Everything a clean org costs: the pages and the lookups. */
    enumerationCallsPerMinimumPage: Number(((lists + perTarget.okta.lookups) / minimum).toFixed(3)),
    allCallsPerMinimumPage: Number((total / minimum).toFixed(3)),
    lookups: perTarget.okta.lookups,
    callsForFindings: total - lists - perTarget.okta.lookups,
    wallSeconds: Number((wallMs / 1000).toFixed(1)),
    seedSeconds: Number((seedMs / 1000).toFixed(1)),
    heapSeededMb: Math.round(baseHeap / MB),
    peakHeapAboveSeededMb: Math.round((peakHeap - baseHeap) / MB),
    peakLiveHeapAboveSeededMb: gc ? Math.round((peakLive - baseHeap) / MB) : null,
    ledgerMetaGrowthMb: memoryLedger ? Math.round(metaGrowth / MB) : null,
    retainedAfterRunMb: gc ? Math.round((endLive - baseHeap) / MB) : null,
    /** Peak live heap less what the run left in the (in-memory) ledger: the reconciler's working set. */
    workingSetMb: gc ? Math.round((peakLive - endLive) / MB) : null,
    peakRssMb: Math.round(peakRss / MB),
    ledgerOps: { reads: ledgerOps.reads - ledgerBefore.reads, writes: ledgerOps.writes - ledgerBefore.writes },
    stateTransitions: workflows.statesEntered('nightly-bench').length,
    findings: report.totals.findings,
    expected,
    byKind: found,
    byAction: report.totals.byAction,
    mails,
    kpis: report.kpis,
    allAnomaliesFound: allFound,
  };

  const rows: Array<[string, string]> = [
    ['people × targets', `${PEOPLE} × 3 (okta, slack, netsuite); ${ANOMALIES} anomalies of each kind`],
    ['accounts (okta / slack / netsuite)', `${accounts.okta} / ${accounts.slack} / ${accounts.netsuite}`],
    ['minimum pages', `${minimumPages.okta} (${minimumPages.okta - ready.okta.memberPages} users + ${ready.okta.memberPages} member) / ${minimumPages.slack} / ${minimumPages.netsuite} = ${minimum}`],
    ['list calls made', `${perTarget.okta.list} (${perTarget.okta.list - perTarget.okta.members} users + ${perTarget.okta.members} member) / ${perTarget.slack.list} / ${perTarget.netsuite.list} = ${lists}`],
    ['list calls ÷ minimum pages (goal ≤ 1.05)', `${r.listCallsPerMinimumPage}`],
    ['name → id lookups (okta)', `${perTarget.okta.lookups}`],
    ['list calls and lookups ÷ minimum pages', `${r.enumerationCallsPerMinimumPage}`],
    ['calls the findings cost (reads + writes)', `okta ${perTarget.okta.otherReads}+${perTarget.okta.writes}, slack ${perTarget.slack.otherReads}+${perTarget.slack.writes}, netsuite ${perTarget.netsuite.otherReads}+${perTarget.netsuite.writes} = ${r.callsForFindings}`],
    ['all calls ÷ minimum pages', `${r.allCallsPerMinimumPage}`],
    ['wall time (seeding excluded)', `${r.wallSeconds} s (seeding ${r.seedSeconds} s)`],
    ['heap: seeded org (ledger) in this process', `${r.heapSeededMb} MB`],
    ['heap above it: peak sampled / peak live', `${r.peakHeapAboveSeededMb} MB / ${r.peakLiveHeapAboveSeededMb ?? 'n/a (run with --expose-gc)'} MB`],
    ['  left in the ledger after the run (markers, findings)', `${r.retainedAfterRunMb ?? 'n/a'} MB (${r.ledgerMetaGrowthMb ?? 'n/a'} MB of JSON)`],
    ['  reconciler working set (peak live − left in ledger)', `${r.workingSetMb ?? 'n/a'} MB`],
    ['peak RSS (reconciler + in-memory ledger)', `${r.peakRssMb} MB`],
    ['ledger operations (reads / writes)', `${r.ledgerOps.reads} / ${r.ledgerOps.writes} (${args.ledger})`],
    ['state transitions', `${r.stateTransitions}`],
    ['findings by kind', Object.entries(found).map(([k, n]) => `${k} ${n}`).join(', ')],
    ['findings by action', Object.entries(report.totals.byAction).map(([k, n]) => `${k} ${n}`).join(', ')],
    ['every seeded anomaly found, nothing else', `${allFound}`],
    ['KPIs', `drift ${report.kpis.driftRatePercent}%, orphans ${report.kpis.orphanAccounts}, leavers enabled ${report.kpis.leaversStillEnabled}, revocation completeness ${report.kpis.revocationCompletenessPercent}%`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('Nightly reconciliation benchmark');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log(JSON.stringify(r));

  (connectors.get('okta') as { dispose?: () => void }).dispose?.();
  for (const c of Object.values(children)) c.child.send({ type: 'close' } satisfies ToChild);
  await dynaliteClose?.();
  if (!allFound) process.exitCode = 1;
}

if (args.role === 'main') await main();
else await standInProcess();
