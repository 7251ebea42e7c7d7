/**
 * Reconciliation: re-read every target, compare with what the policy says, act on the difference.
 * "Automation that looks successful" becomes "automation that is provably correct".
 *
 * Two entry points share one classifier:
 *  - the nightly `reconcile` state machine (statemachines/reconcile.asl.json): Start → for each
 *    target, pages of `listAccounts` (or Graph `/users/delta`), then — on a target whose pages
 *    carry no entitlements and that lists entitlement members (Okta) — the member pages of every
 *    entitlement the policy manages there → pages of the ledger's persons → the entitlement-gap
 *    step → Finish (report in the evidence store, KPIs). Workflow state carries cursors and
 *    counters only; each page's findings go to the ledger as the page is processed.
 *  - `reconcilePerson`: one person on demand (drift signals, scheduled actions).
 *
 * Classification, per account (IGA style):
 *  - linked and correct;
 *  - drift: missing or extra entitlements, or the wrong status, against the desired state
 *    (computed as the runs compute it, and never granting a bundle the person had rejected or a
 *    privileged bundle nobody approved);
 *  - a leaver still enabled (the person is terminated in HR, the account is enabled);
 *  - an orphan: no correlation key, or a key that matches nobody (and no stored link);
 *  - a conflict: two accounts claim one person (or one account two persons).
 * And per person (ledger pass): an account the person should have and no target listed.
 *
 * Policy: a leaver's enabled account is disabled at once (restrict ops, sessions revoked) and
 * counted as a revocation-completeness failure; other drift is re-converged (`onDrift: converge`)
 * or opened as an exception (`onDrift: exception`); orphans and conflicts open exceptions for the
 * target's owner; shadow-mode targets only report. A person whose own run is in flight is left
 * to that run (`deferred`). Automatic actions per target and reconciliation are capped by the
 * policy's bulk-guard count: past it, findings are reported and one exception says so (a broken
 * policy or feed must not rewrite everyone's access overnight).
 *
 * How deep each target is checked: pages that carry entitlements (SCIM: groups and roles inline;
 * Entra `listAccounts`) are compared in full. Okta's `listAccounts` pages carry status and
 * correlation key only (reading groups and apps would cost two calls per user); its entitlements
 * are compared from the other side, one managed group or app at a time (`listEntitlementMembers`,
 * 1 000 members a page): a membership the person's desired state does not allow is extra (the
 * account is read in full and judged), and who should hold each entitlement but was not listed
 * is found by subtracting two fixed-size membership sketches (`MembershipSketch`: the persons
 * pass builds "wanted", the member pages "held") — no set of members is ever held, no marker
 * written per membership. Graph `/users/delta` pages carry status and key only: there the nightly
 * pass compares status and correlation, and reads an account in full when it looks wrong or
 * changed. The event hook still catches Okta drift within seconds (drift signal → `reconcilePerson`).
 *
 * Every exception id is deterministic: re-running a page or a whole reconciliation never opens a
 * second exception or sends a second email for the same problem.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod';
import { entitlementKey, type ActualAccount, type DesiredTarget, type EntitlementRef } from '#core/access';
import type { Connector } from '#connectors/connector';
import type { EntraChanges } from '#connectors/entra.connector';
import { converge } from '#connectors/converge';
import type { ChangeRecord } from '#core/change';
import { desiredState, type DesiredState } from '#core/desired-state';
import { JmlError, TargetConflict, ValidationError, isRetryable } from '#core/errors';
import {
  buildEvidenceBundle,
  byteLength,
  contentTypeOf,
  EMPLOYEE_ID_PATTERN,
  MANIFEST_FILE,
  stableJson,
  type EvidenceBundle,
  type ExecutionStepEvidence,
  type ReconciliationEvidence,
  type ReconciliationTarget,
} from '#core/evidence';
import { EvidenceBundleExists, EvidenceChainConflict } from '#core/evidence-store';
import { mapLimit } from '#core/concurrency';
import { parseCause } from './runs.ts';
import { sha256Hex } from '#core/hash';
import type { Lifecycle } from '#core/hr-event';
import { TERMINAL_RUN_STATUSES, type PersonRecord, type RunRecord, type RunStatus } from '#core/ledger';
import { applyDecisions } from '#core/plan';
import type { Policy, PolicyTarget } from '#core/policy';
import { planTarget, type PlannedOp, type TargetOp } from '#core/target-plan';
import { parseOrThrow } from '#core/validation';
import { openException, retryTickets, type NewException } from './exceptions.ts';
import type { AppDeps } from './ports.ts';
import { bumpTime, updatePerson } from './people.ts';
import { accountProfile } from './profile.ts';
import { withTargetLease } from './target-lease.ts';

/** The evidence chain (and run-ledger "employee") that holds the nightly reports, one after another. */
export const RECONCILIATION_CHAIN_ID = 'jml-reconciliation';
/** Where a target's Graph delta link is kept between nights. */
export const deltaLinkKey = (target: string) => `reconcile/delta-link/${target}`;
const seenKey = (id: string, target: string, employeeId: string) => `reconcile/${id}/seen/${target}/${employeeId}`;
const findingsKey = (id: string, pass: string, page: number, part: number) => `reconcile/${id}/findings/${pass}/${page}.${part}`;
/** A person whose account on the target was judged in full this reconciliation (one finding per account and night). */
const judgedKey = (id: string, target: string, employeeId: string) => `reconcile/${id}/judged/${target}/${employeeId}`;
/** The membership sketch of one managed entitlement: `held` from its member pages, `wanted` from the persons pass. */
const sketchKey = (id: string, target: string, side: 'held' | 'wanted', e: EntitlementRef) =>
  `reconcile/${id}/sketch/${target}/${side}/${sha256Hex(entitlementKey(e)).slice(0, 24)}`;
const FINDINGS_TTL_SECONDS = 35 * 24 * 3600;
const SEEN_TTL_SECONDS = 3 * 24 * 3600;
/** A ledger item holds at most 400 KB; findings are stored in parts well below that. */
const FINDINGS_PART_BYTES = 300_000;
/** Pages one Task invocation works through (bounded memory: one page at a time). */
const PAGES_PER_TASK = 10;
const TASK_TIME_BUDGET_MS = 60_000;
const PERSONS_PAGE_SIZE = 250;
const CONCURRENCY = 8;
/** Findings listed in reconciliation.json / summary.html; findings.json has every one. */
const SUMMARY_FINDINGS = 1_000;

const RESTRICT_OPS: readonly TargetOp[] = ['disable', 'suspend', 'revokeSessions'];
const STATUS_OPS: ReadonlySet<TargetOp> = new Set(['disable', 'suspend', 'revokeSessions', 'enable', 'unsuspend']);

// ---------------------------------------------------------------------------------------------
// Findings and counters

export const FINDING_KINDS = ['drift', 'missing_account', 'leaver_enabled', 'orphan', 'conflict', 'failed'] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];
/**
 * What was done about a finding: `converged` / `disabled` (fixed by jml), `exception` (an owner
 * was asked), `reported` (shadow target, or over the automatic-action limit), `deferred` (the
 * person's own run is in flight), `failed` (the fix was refused; an exception says why).
 */
export type FindingAction = 'converged' | 'disabled' | 'exception' | 'reported' | 'deferred' | 'failed';

export interface Finding {
  kind: FindingKind;
  target: string;
  summary: string;
  action: FindingAction;
  accountId?: string;
  /** Every account involved (conflicts). */
  accountIds?: string[];
  employeeId?: string;
  userName?: string;
  exceptionId?: string;
  /** The fix's change records (with the target's request ids). */
  changes?: ChangeRecord[];
  evidence: {
    accountStatus?: string;
    correlationKey?: string | null;
    personStatus?: string;
    desiredStatus?: string;
    missing?: EntitlementRef[];
    unexpected?: EntitlementRef[];
    ops?: string[];
    /** Whether the account's entitlements were read (false: a status-only page). */
    entitlementsRead?: boolean;
    runInFlight?: string;
    error?: { name: string; message: string };
    note?: string;
  };
}

const zeroTargetCounters = () => ({
  pages: 0,
  /** Accounts listed (delta: changed accounts). */
  accounts: 0,
  /** Accounts deleted since the last delta round. */
  removed: 0,
  /** Accounts of in-scope persons, checked against the desired state. */
  managed: 0,
  /** Accounts of persons outside the policy scope (left alone). */
  unmanaged: 0,
  correct: 0,
  drift: 0,
  /** Accounts of terminated persons (revocation completeness denominator). */
  leaverAccounts: 0,
  leaversEnabled: 0,
  orphans: 0,
  conflicts: 0,
  missingAccounts: 0,
  /** Accounts linked to their person by this reconciliation (correlated). */
  linked: 0,
  fixed: 0,
  exceptions: 0,
  deferred: 0,
  reported: 0,
  failed: 0,
  /** Findings past the automatic-action limit (reported only). */
  limited: 0,
  /** Automatic actions taken (converges and exceptions, leaver disables excluded): the limit's count. */
  actions: 0,
  /** Persons checked for an account no page listed. */
  personsChecked: 0,
  /** Member pages read (one managed entitlement's members per page; targets whose account pages carry no entitlements). */
  memberPages: 0,
  /** Memberships listed on those pages. */
  memberships: 0,
  /** Memberships the policy wants and the target lacks, found by comparing membership sketches. */
  entitlementGaps: 0,
  /** Accounts an account page counted correct (status alone) that the member pass or gap step found drifting. */
  retracted: 0,
});
export type TargetCounters = ReturnType<typeof zeroTargetCounters>;
const TargetCountersSchema = z.object(Object.fromEntries(Object.keys(zeroTargetCounters()).map((k) => [k, z.number().int().nonnegative()])) as Record<keyof TargetCounters, z.ZodNumber>);

function addCounters(a: TargetCounters, b: Partial<TargetCounters>): TargetCounters {
  const out = { ...a };
  for (const [k, v] of Object.entries(b) as Array<[keyof TargetCounters, number]>) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** The counter each finding kind and each action adds to (a failed classification counts only as failed). */
const KIND_COUNTER: Record<FindingKind, keyof TargetCounters | undefined> = {
  drift: 'drift',
  missing_account: 'missingAccounts',
  leaver_enabled: 'leaversEnabled',
  orphan: 'orphans',
  conflict: 'conflicts',
  failed: undefined,
};
const ACTION_COUNTER: Record<FindingAction, keyof TargetCounters> = {
  converged: 'fixed',
  disabled: 'fixed',
  exception: 'exceptions',
  deferred: 'deferred',
  reported: 'reported',
  failed: 'failed',
};

function countFinding(c: TargetCounters, f: Finding): void {
  const kind = KIND_COUNTER[f.kind];
  if (kind) c[kind] += 1;
  c[ACTION_COUNTER[f.action]] += 1;
  // A failed action that still opened an exception counts as one too.
  if (f.action === 'failed' && f.exceptionId) c.exceptions += 1;
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing

const nowIso = (deps: AppDeps) => deps.clock.now().toISOString();
const epochSeconds = (deps: AppDeps, plus: number) => Math.floor(deps.clock.now().getTime() / 1000) + plus;


function errorOf(e: unknown): { name: string; message: string } {
  const err = e as Error;
  return { name: err?.name ?? 'Error', message: err?.message ?? String(e) };
}


/** A run id / key segment from anything (Step Functions execution names, event ids). */
export function safeId(raw: string, max = 100): string {
  const cleaned = raw.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  return (cleaned || sha256Hex(raw).slice(0, 16)).slice(0, max);
}

function fingerprint(parts: unknown[]): string {
  return sha256Hex(JSON.stringify(parts)).slice(0, 20);
}

/**
 * Bundles a reconcile must not grant: what an approver rejected (unless approved since) and
 * privileged bundles nobody approved — the same decisions the runs apply (`decidedDesired`),
 * without a run's plan: an approval reconciliation cannot ask for is an approval not given.
 */
export function withheldBundles(person: PersonRecord, desired: DesiredState, policy: Policy): Set<string> {
  const withheld = new Set<string>();
  for (const b of person.rejectedBundles) if (!person.approvedBundles.includes(b)) withheld.add(b);
  for (const g of desired.bundles) {
    if (policy.document.bundles[g.bundle]?.kind === 'privileged' && !person.approvedBundles.includes(g.bundle)) withheld.add(g.bundle);
  }
  return withheld;
}

function desiredOf(deps: AppDeps, policy: Policy, person: PersonRecord): DesiredState {
  return desiredState({ worker: person.worker, status: person.status }, policy, { grantedAt: person.grantedAt, now: nowIso(deps) });
}

/** The person's desired target, with the approval decisions applied against what the account holds. */
function decidedTarget(policy: Policy, person: PersonRecord, desired: DesiredState, target: string, account: ActualAccount | null): DesiredTarget | undefined {
  const withheld = withheldBundles(person, desired, policy);
  const decided = withheld.size ? applyDecisions(desired, withheld, { [target]: account }, policy) : desired;
  return decided.targets.find((t) => t.target === target);
}

/** The run that is changing the person right now, if any: reconciliation leaves them to it. */
async function runInFlight(deps: AppDeps, person: PersonRecord): Promise<RunRecord | null> {
  if (!person.lastRunId) return null;
  const run = await deps.ledger.getRun(person.lastRunId);
  return run && run.lifecycle !== 'reconcile' && !TERMINAL_RUN_STATUSES.has(run.status) ? run : null;
}

const refs = (ops: PlannedOp[], op: TargetOp) =>
  ops.filter((o) => o.op === op && o.entitlement).map((o) => ({ type: o.entitlement!.type, value: o.entitlement!.value }));

function describeOps(ops: PlannedOp[]): string {
  const parts: string[] = [];
  const status = ops.filter((o) => STATUS_OPS.has(o.op) && o.op !== 'revokeSessions').map((o) => o.op);
  if (status.length) parts.push(`needs ${status.join(', ')}`);
  const missing = refs(ops, 'addEntitlement');
  const extra = refs(ops, 'removeEntitlement');
  if (missing.length) parts.push(`missing ${missing.map((e) => `${e.type} "${e.value}"`).join(', ')}`);
  if (extra.length) parts.push(`holds ${extra.map((e) => `${e.type} "${e.value}"`).join(', ')} outside the policy`);
  return parts.join('; ');
}

/** Pages that carry each account's entitlements (the others carry status and correlation key only). */
function pagesCarryEntitlements(connector: Connector, source: TargetSource): boolean {
  return source === 'list' && connector.kind !== 'okta';
}

/** Targets whose entitlements are compared through their members' pages (`listEntitlementMembers`). */
function membersOf(connector: Connector): Required<Pick<Connector, 'listEntitlementMembers'>> | null {
  return typeof connector.listEntitlementMembers === 'function' ? (connector as Required<Pick<Connector, 'listEntitlementMembers'>>) : null;
}

/**
 * Every entitlement the policy's bundles name on the target, in a stable order: what the member
 * pass pages through. (An entitlement no bundle names is nobody's to grant; the per-account
 * checks still remove it where they read an account in full.)
 */
export function managedEntitlements(policy: Policy, target: string): EntitlementRef[] {
  const byKey = new Map<string, EntitlementRef>();
  for (const list of policy.bundleEntitlements.values()) {
    for (const e of list) if (e.target === target && !byKey.has(e.key)) byKey.set(e.key, { type: e.type, value: e.value });
  }
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
}

/**
 * What one person's account on the target may and must hold, as the per-account judging sees it
 * (`decidedTarget` + `planTarget`): `allowed` — every entitlement of the person's desired state
 * (holding one of a withheld bundle is left to its owner); `expected` — those with a granting
 * bundle that is not withheld (lacking one is drift). Null when the person wants no account there.
 */
function expectationsOf(policy: Policy, person: PersonRecord, desired: DesiredState, target: string): { allowed: Set<string>; expected: Set<string> } | null {
  const d = desired.targets.find((t) => t.target === target);
  if (!d || d.account === 'absent') return null;
  const withheld = withheldBundles(person, desired, policy);
  const allowed = new Set<string>();
  const expected = new Set<string>();
  for (const e of d.entitlements) {
    const key = entitlementKey(e);
    allowed.add(key);
    if ([e.bundle, ...(e.alsoGrantedBy ?? []).map((g) => g.bundle)].some((b) => !withheld.has(b))) expected.add(key);
  }
  return { allowed, expected };
}

async function markJudged(deps: AppDeps, id: string, target: string, employeeId: string): Promise<void> {
  await deps.ledger.putMeta(judgedKey(id, target, employeeId), { at: nowIso(deps) }, epochSeconds(deps, SEEN_TTL_SECONDS));
}

type TargetSource = 'list' | 'delta';
type Round = 'full' | 'incremental';

interface DeltaCapable {
  listChanges(link?: string): Promise<EntraChanges>;
}
function deltaOf(connector: Connector): DeltaCapable | null {
  const c = connector as Connector & Partial<DeltaCapable>;
  return typeof c.listChanges === 'function' ? (c as DeltaCapable) : null;
}

// ---------------------------------------------------------------------------------------------
// Membership sketches: which people should hold an entitlement and do not, in bounded memory

/** Cells per sub-table of a membership sketch (four sub-tables: each key lands once in each). */
const SKETCH_SUBTABLES = 4;
const SKETCH_SUBTABLE = 40;
const SKETCH_CELLS = SKETCH_SUBTABLES * SKETCH_SUBTABLE;
/** Employee ids are ASCII and at most 64 characters (`EMPLOYEE_ID_PATTERN`). */
const SKETCH_KEY_BYTES = 64;

export interface SketchJson {
  /** Keys added minus keys removed. */
  count: number;
  /** Non-empty cells: index → [count, XOR of the keys (hex, trailing zero bytes trimmed), XOR of the key checks]. */
  cells: Record<string, [number, string, number]>;
}

/**
 * An invertible Bloom lookup table of employee ids (Eppstein et al., "What's the difference?").
 * A fixed size whatever the number of ids added (160 cells, ~6 KB stored), and linear: the
 * sketch of the people who should hold an entitlement minus the sketch of those seen holding it
 * lists exactly who differs, as long as they are not many more than ~100 (`decode` says when
 * they are; the count of the difference is exact either way). This is how the nightly pass
 * finds missing entitlements without holding a set of members or writing a marker per member.
 */
export class MembershipSketch {
  count = 0;
  private readonly n = new Int32Array(SKETCH_CELLS);
  private readonly checks = new Uint32Array(SKETCH_CELLS);
  /** XOR of the keys in each cell, SKETCH_KEY_BYTES per cell. */
  private readonly keys = new Uint8Array(SKETCH_CELLS * SKETCH_KEY_BYTES);

  add(employeeId: string, sign: 1 | -1 = 1): void {
    const { cells, check, key } = MembershipSketch.hash(employeeId);
    this.count += sign;
    for (const i of cells) this.apply(i, sign, key, 0, check);
  }

  /** Adds (`sign` 1) or subtracts (-1) another sketch. */
  merge(other: MembershipSketch, sign: 1 | -1 = 1): this {
    this.count += sign * other.count;
    for (let i = 0; i < SKETCH_CELLS; i++) this.apply(i, sign * other.n[i]!, other.keys, i * SKETCH_KEY_BYTES, other.checks[i]!);
    return this;
  }

  get empty(): boolean {
    return this.count === 0 && this.n.every((x) => x === 0) && this.checks.every((x) => x === 0) && this.keys.every((x) => x === 0);
  }

  /**
   * Lists the ids of the difference: `added` (more adds than removes), `removed` (the other way).
   * `complete: false` when the difference is too large to list (the cells cannot be peeled).
   */
  decode(): { added: string[]; removed: string[]; complete: boolean } {
    const work = new MembershipSketch().merge(this);
    const added: string[] = [];
    const removed: string[] = [];
    for (let progress = true; progress; ) {
      progress = false;
      for (let i = 0; i < SKETCH_CELLS; i++) {
        const c = work.n[i]!;
        if (c !== 1 && c !== -1) continue;
        const id = work.keyAt(i);
        if (!EMPLOYEE_ID_PATTERN.test(id) || MembershipSketch.hash(id).check !== work.checks[i]) continue;
        (c === 1 ? added : removed).push(id);
        work.add(id, c === 1 ? -1 : 1);
        progress = true;
      }
    }
    return { added: added.sort(), removed: removed.sort(), complete: work.empty };
  }

  toJSON(): SketchJson {
    const cells: SketchJson['cells'] = {};
    for (let i = 0; i < SKETCH_CELLS; i++) {
      const key = Buffer.from(this.keys.subarray(i * SKETCH_KEY_BYTES, (i + 1) * SKETCH_KEY_BYTES)).toString('hex').replace(/(00)+$/, '');
      if (this.n[i] === 0 && this.checks[i] === 0 && !key) continue;
      cells[i] = [this.n[i]!, key, this.checks[i]!];
    }
    return { count: this.count, cells };
  }

  static from(json: SketchJson | null | undefined): MembershipSketch {
    const s = new MembershipSketch();
    if (!json) return s;
    s.count = json.count;
    for (const [raw, [n, hex, check]] of Object.entries(json.cells)) {
      const i = Number(raw);
      if (!Number.isInteger(i) || i < 0 || i >= SKETCH_CELLS || hex.length > 2 * SKETCH_KEY_BYTES) throw new ValidationError([`sketch.cells.${raw}: not a sketch cell`]);
      s.n[i] = n;
      s.checks[i] = check >>> 0;
      s.keys.set(Buffer.from(hex, 'hex'), i * SKETCH_KEY_BYTES);
    }
    return s;
  }

  private keyAt(i: number): string {
    const bytes = this.keys.subarray(i * SKETCH_KEY_BYTES, (i + 1) * SKETCH_KEY_BYTES);
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    return Buffer.from(bytes.subarray(0, end)).toString('latin1');
  }

  /** Count, and XOR of key and check — XOR is its own inverse: adding and removing are one operation there. */
  private apply(i: number, count: number, key: Uint8Array, offset: number, check: number): void {
    this.n[i]! += count;
    this.checks[i] = (this.checks[i]! ^ check) >>> 0;
    const base = i * SKETCH_KEY_BYTES;
    for (let b = 0; b < SKETCH_KEY_BYTES; b++) this.keys[base + b]! ^= key[offset + b]!;
  }

  private static hash(employeeId: string): { cells: number[]; check: number; key: Uint8Array } {
    const h = createHash('sha256').update('jml-sketch:').update(employeeId).digest();
    const key = new Uint8Array(SKETCH_KEY_BYTES);
    key.set(Buffer.from(employeeId, 'latin1').subarray(0, SKETCH_KEY_BYTES));
    const cells: number[] = [];
    for (let j = 0; j < SKETCH_SUBTABLES; j++) cells.push(j * SKETCH_SUBTABLE + (h.readUInt32BE(4 * j) % SKETCH_SUBTABLE));
    return { cells, check: h.readUInt32BE(4 * SKETCH_SUBTABLES), key };
  }
}

// ---------------------------------------------------------------------------------------------
// Acting on one finding

/** One target's context for a pass: policy facts, the connector and the action budget. */
interface TargetContext {
  deps: AppDeps;
  policy: Policy;
  target: PolicyTarget;
  connector: Connector;
  /** Run id the exceptions are filed under (the reconciliation, or the person's reconcile run). */
  runId: string;
  /** Who/what asked (for evidence): the nightly schedule, a drift signal and its actor, … */
  origin: string;
  /** Actions still allowed before findings are only reported. */
  budget: { left: number };
  /** Whether fixes that jml made need an exception of their own (a caller may report them itself). */
  raiseFixedIncidents: boolean;
}

const ownerOf = (ctx: TargetContext) => ctx.target.owner.email;

async function raise(
  ctx: TargetContext,
  input: { kind: 'orphan' | 'conflict' | 'drift' | 'leaver_enabled'; id: string; employeeId?: string; reason: string; evidence: unknown },
): Promise<string> {
  return openOnce(ctx.deps, {
    exceptionId: input.id,
    runId: ctx.runId,
    ...(input.employeeId ? { employeeId: input.employeeId } : {}),
    target: ctx.target.name,
    owner: ownerOf(ctx),
    kind: input.kind,
    reason: input.reason,
    evidence: input.evidence,
  });
}

const openedKey = (exceptionId: string) => `reconcile/exception-opened/${exceptionId}`;
const OPENED_TTL_SECONDS = 400 * 24 * 3600;

/**
 * Opens an exception with a deterministic id once: the same problem found again (a retried page,
 * the next night) returns the id without a second record or a second email to the owner — also
 * once the owner has resolved it (accepted), which the report then shows. The ledger's
 * `openException` keeps the first record for an existing id, but `openException` here would mail
 * again, so a marker written after the first open is checked first. A crash between the two
 * sends the owner the same exception twice, never none.
 */
async function openOnce(deps: AppDeps, input: NewException & { exceptionId: string }): Promise<string> {
  if (await deps.ledger.getMeta(openedKey(input.exceptionId))) return input.exceptionId;
  const e = await openException(deps, input);
  await deps.ledger.putMeta(openedKey(e.exceptionId), { at: e.openedAt }, epochSeconds(deps, OPENED_TTL_SECONDS));
  return e.exceptionId;
}

/** Takes one unit of the automatic-action budget; false once it is spent. */
function spend(ctx: TargetContext): boolean {
  if (ctx.budget.left <= 0) return false;
  ctx.budget.left -= 1;
  return true;
}

async function profileOf(deps: AppDeps, person: PersonRecord) {
  return accountProfile(deps.ledger, person);
}

/**
 * Converges the person's account on the target. A refusal that retrying cannot fix (rejected,
 * not found, conflict) becomes a `failed` finding with an exception; throttling and outages are
 * rethrown so the Task is retried.
 */
async function fix(
  ctx: TargetContext,
  person: PersonRecord,
  desired: DesiredTarget,
  options: { onlyOps?: readonly TargetOp[]; forceRevoke?: boolean; linkId?: string },
): Promise<{ ok: true; changes: ChangeRecord[]; accountId?: string; before: ActualAccount | null } | { ok: false; error: { name: string; message: string } }> {
  try {
    const profile = await profileOf(ctx.deps, person);
    const result = await withTargetLease(ctx.deps, { employeeId: person.employeeId, target: ctx.target.name, holder: `reconciliation ${ctx.runId}` }, () =>
      converge(ctx.connector, profile, desired, {
        linkIds: [options.linkId ?? person.links[ctx.target.name]].filter((x): x is string => !!x),
        ...(options.forceRevoke ? { forceRevoke: true } : {}),
        ...(options.onlyOps ? { onlyOps: options.onlyOps } : {}),
      }),
    );
    if (result.accountId && person.links[ctx.target.name] !== result.accountId) await link(ctx, person.employeeId, result.accountId);
    return { ok: true, changes: result.changes, before: result.before, ...(result.accountId ? { accountId: result.accountId } : {}) };
  } catch (e) {
    if (isRetryable(e)) throw e;
    if (!(e instanceof JmlError)) throw e;
    return { ok: false, error: errorOf(e) };
  }
}

/** Records the account as the person's on the target (correlation). Returns false if someone else holds it. */
async function link(ctx: TargetContext, employeeId: string, accountId: string): Promise<{ linked: boolean; conflict?: string }> {
  const name = ctx.target.name;
  try {
    const after = await updatePerson(
      ctx.deps.ledger,
      employeeId,
      (p) => {
        if (p.links[name] === accountId) return null;
        p.links[name] = accountId;
        return p;
      },
      () => ctx.deps.clock.now(),
    );
    return { linked: after?.links[name] === accountId };
  } catch (e) {
    if (e instanceof TargetConflict) return { linked: false, conflict: e.message };
    throw e;
  }
}

function accountEvidence(account: ActualAccount, entitlementsRead: boolean) {
  return {
    accountStatus: account.status,
    correlationKey: account.correlationKey ?? null,
    entitlementsRead,
  };
}

/**
 * Judges one account that belongs to `person` (linked or correlated) and acts by policy.
 * `entitlementsRead`: whether `account.entitlements` is what the target holds (false for a
 * status-only page: then only status is compared, and a mismatch is confirmed by a full read).
 * Returns null when the account matches the desired state.
 */
async function judgeAccount(
  ctx: TargetContext,
  person: PersonRecord,
  desired: DesiredState,
  account: ActualAccount,
  entitlementsRead: boolean,
): Promise<Finding | null> {
  const t = ctx.target;
  const caps = ctx.connector.capabilities;
  let actual = account;
  let read = entitlementsRead;
  let d = decidedTarget(ctx.policy, person, desired, t.name, actual);
  if (!d) return null;
  let ops = planTarget(d, actual, caps);
  if (!read) ops = ops.filter((o) => STATUS_OPS.has(o.op));
  const leaverEnabled = person.status === 'terminated' && actual.status === 'enabled';
  if (!ops.length && !leaverEnabled) return null;
  if (!read && !leaverEnabled) {
    // Status looks wrong on a status-only page: read the account in full before acting on it.
    actual = await ctx.connector.getAccount(account.id);
    read = true;
    d = decidedTarget(ctx.policy, person, desired, t.name, actual)!;
    ops = planTarget(d, actual, caps);
    if (!ops.length) return null;
  }
  const base = {
    target: t.name,
    accountId: actual.id,
    employeeId: person.employeeId,
    ...(actual.userName ? { userName: actual.userName } : {}),
  };
  const evidence: Finding['evidence'] = {
    ...accountEvidence(actual, read),
    personStatus: person.status,
    desiredStatus: d.account,
    ...(refs(ops, 'addEntitlement').length ? { missing: refs(ops, 'addEntitlement') } : {}),
    ...(refs(ops, 'removeEntitlement').length ? { unexpected: refs(ops, 'removeEntitlement') } : {}),
    ops: ops.map((o) => (o.entitlement ? `${o.op}:${o.entitlement.type}:${o.entitlement.value}` : o.op)),
  };

  if (person.status === 'terminated' && actual.status === 'enabled') {
    const summary = `${t.name}: account ${actual.id} of ${person.employeeId} is enabled, but the person left (terminated in HR)`;
    const inflight = await runInFlight(ctx.deps, person);
    if (inflight) return { kind: 'leaver_enabled', ...base, summary, action: 'deferred', evidence: { ...evidence, runInFlight: inflight.runId } };
    if (t.mode === 'shadow') return { kind: 'leaver_enabled', ...base, summary, action: 'reported', evidence: { ...evidence, note: 'shadow-mode target: reported only' } };
    // Disable and revoke at once. With onDrift: converge the rest of the leaver's access goes in
    // the same converge (the planner restricts first, then removes); otherwise it stays for review.
    // (A leaver needs no read first: whatever the account holds, it is disabled; converge reads it.)
    const fixed = await fix(ctx, person, d, { forceRevoke: true, linkId: actual.id, ...(t.onDrift === 'converge' ? {} : { onlyOps: RESTRICT_OPS }) });
    if (fixed.ok && fixed.before) {
      const held = fixed.before.entitlements.map((e) => ({ type: e.type, value: e.value }));
      Object.assign(evidence, { entitlementsRead: true, ...(held.length ? { unexpected: held } : {}) });
    }
    const finding: Finding = fixed.ok
      ? { kind: 'leaver_enabled', ...base, summary: `${summary}: disabled and sessions revoked`, action: 'disabled', changes: fixed.changes, evidence }
      : { kind: 'leaver_enabled', ...base, summary: `${summary}: could not be disabled (${fixed.error.name})`, action: 'failed', evidence: { ...evidence, error: fixed.error } };
    if (ctx.raiseFixedIncidents || !fixed.ok) {
      finding.exceptionId = await raise(ctx, {
        kind: 'leaver_enabled',
        id: `exc-rec-leaver-${safeId(t.name, 32)}-${fingerprint([ctx.runId, actual.id])}`,
        employeeId: person.employeeId,
        reason: fixed.ok
          ? `${t.name}: account ${actual.id} of ${person.employeeId}, who left, was still enabled (${ctx.origin}); jml disabled it and revoked its sessions — find out how it was re-enabled`
          : `${t.name}: account ${actual.id} of ${person.employeeId}, who left, is still enabled and jml could not disable it: ${fixed.error.name}: ${fixed.error.message}`,
        evidence: { ...finding.evidence, changes: finding.changes ?? [], origin: ctx.origin },
      });
    }
    return finding;
  }

  const summary = `${t.name}: account ${actual.id} of ${person.employeeId} does not match the desired state: ${describeOps(ops)}`;
  return act(ctx, person, d, { kind: 'drift', ...base, summary, evidence }, ops, actual.id);
}

/** Drift and missing accounts: defer, report, converge or raise by the target's policy. */
async function act(
  ctx: TargetContext,
  person: PersonRecord,
  d: DesiredTarget,
  finding: Omit<Finding, 'action'>,
  ops: PlannedOp[],
  accountId: string | undefined,
): Promise<Finding> {
  const t = ctx.target;
  const inflight = await runInFlight(ctx.deps, person);
  if (inflight) return { ...finding, action: 'deferred', evidence: { ...finding.evidence, runInFlight: inflight.runId } };
  if (t.mode === 'shadow') return { ...finding, action: 'reported', evidence: { ...finding.evidence, note: 'shadow-mode target: reported only' } };
  if (!spend(ctx)) return { ...finding, action: 'reported', evidence: { ...finding.evidence, note: 'over the automatic-action limit: reported only' } };
  // Re-creating an identity needs a credential handover (a joiner or rehire run does that): never automatic.
  const recreateIdp = finding.kind === 'missing_account' && t.name === ctx.policy.idp.name;
  if (t.onDrift === 'converge' && !recreateIdp) {
    const fixed = await fix(ctx, person, d, accountId ? { linkId: accountId } : {});
    if (fixed.ok) return { ...finding, action: 'converged', ...(fixed.accountId ? { accountId: fixed.accountId } : {}), changes: fixed.changes };
    const exceptionId = await raise(ctx, {
      kind: 'drift',
      id: `exc-rec-fix-${safeId(t.name, 32)}-${fingerprint([ctx.runId, person.employeeId, accountId ?? null])}`,
      employeeId: person.employeeId,
      reason: `${finding.summary} — jml could not converge it: ${fixed.error.name}: ${fixed.error.message}`,
      evidence: { ...finding.evidence, error: fixed.error, origin: ctx.origin },
    });
    return { ...finding, action: 'failed', exceptionId, evidence: { ...finding.evidence, error: fixed.error } };
  }
  const exceptionId = await raise(ctx, {
    kind: 'drift',
    // Same drift, same exception (night after night); a different drift is a new one.
    id: `exc-rec-drift-${safeId(t.name, 32)}-${fingerprint([person.employeeId, accountId ?? null, [...(finding.evidence.ops ?? [])].sort()])}`,
    employeeId: person.employeeId,
    reason: recreateIdp
      ? `${finding.summary} (an identity account is re-created by a joiner or rehire run, or restored on the IdP, not by reconciliation)`
      : finding.summary,
    evidence: { ...finding.evidence, origin: ctx.origin },
  });
  return { ...finding, action: 'exception', exceptionId };
}

async function orphan(ctx: TargetContext, account: ActualAccount, why: string): Promise<Finding> {
  const t = ctx.target;
  const summary = `${t.name}: account ${account.id}${account.userName ? ` (${account.userName})` : ''} ${why}`;
  const finding: Omit<Finding, 'action'> = {
    kind: 'orphan',
    target: t.name,
    accountId: account.id,
    ...(account.userName ? { userName: account.userName } : {}),
    summary,
    evidence: { ...accountEvidence(account, false), note: why },
  };
  if (t.mode === 'shadow') return { ...finding, action: 'reported' };
  if (!spend(ctx)) return { ...finding, action: 'reported', evidence: { ...finding.evidence, note: `${why}; over the automatic-action limit: reported only` } };
  const exceptionId = await raise(ctx, {
    kind: 'orphan',
    id: `exc-rec-orphan-${safeId(t.name, 32)}-${fingerprint([account.id])}`,
    reason: `${summary}: an account nobody in HR owns (${account.status}) — disable it, or link it to its owner`,
    evidence: { ...finding.evidence, origin: ctx.origin },
  });
  return { ...finding, action: 'exception', exceptionId };
}

async function conflict(ctx: TargetContext, employeeId: string, accountIds: string[], why: string): Promise<Finding> {
  const t = ctx.target;
  const ids = [...new Set(accountIds)].sort();
  const summary = `${t.name}: ${why}`;
  const finding: Omit<Finding, 'action'> = { kind: 'conflict', target: t.name, employeeId, accountIds: ids, accountId: ids[0], summary, evidence: { note: why } };
  if (t.mode === 'shadow') return { ...finding, action: 'reported' };
  if (!spend(ctx)) return { ...finding, action: 'reported', evidence: { note: `${why}; over the automatic-action limit: reported only` } };
  const exceptionId = await raise(ctx, {
    kind: 'conflict',
    id: `exc-rec-conflict-${safeId(t.name, 32)}-${fingerprint([employeeId, ids])}`,
    employeeId,
    reason: `${summary} — jml will not pick one; keep the right account, disable the other`,
    evidence: { accountIds: ids, origin: ctx.origin },
  });
  return { ...finding, action: 'exception', exceptionId };
}

/** A person who should hold an account the target does not list (`accounts` came back empty). */
async function missingAccount(ctx: TargetContext, person: PersonRecord, d: DesiredTarget): Promise<Finding> {
  const t = ctx.target;
  const ops = planTarget(d, null, ctx.connector.capabilities);
  const link = person.links[t.name];
  return act(
    ctx,
    person,
    d,
    {
      kind: 'missing_account',
      target: t.name,
      employeeId: person.employeeId,
      summary: `${t.name}: ${person.employeeId} should have an account and has none${link ? ` (the linked account ${link} is gone)` : ''}`,
      evidence: {
        personStatus: person.status,
        desiredStatus: d.account,
        missing: refs(ops, 'addEntitlement'),
        ops: ops.map((o) => (o.entitlement ? `${o.op}:${o.entitlement.type}:${o.entitlement.value}` : o.op)),
        ...(link ? { note: `linked account ${link} was not found` } : {}),
      },
    },
    ops,
    undefined,
  );
}

/**
 * Everything about one person on one target, from a full read (`findAccounts`): the check
 * `reconcilePerson` and the ledger pass make. Null when the target matches.
 */
async function judgePersonOnTarget(ctx: TargetContext, person: PersonRecord, desired: DesiredState): Promise<Finding | null> {
  const name = ctx.target.name;
  const link = person.links[name];
  const accounts = await ctx.connector.findAccounts({ employeeId: person.employeeId, linkIds: link ? [link] : [] });
  if (accounts.length > 1) {
    return conflict(ctx, person.employeeId, accounts.map((a) => a.id), `${accounts.length} accounts claim ${person.employeeId}: ${accounts.map((a) => a.id).join(', ')}`);
  }
  const account = accounts[0];
  if (!account) {
    const d = decidedTarget(ctx.policy, person, desired, name, null);
    if (!d || d.account !== 'enabled') return null; // nothing is created only to be restricted
    return missingAccount(ctx, person, d);
  }
  if (link !== account.id) {
    const linked = await link_(ctx, person, account.id);
    if (linked.conflict) return conflict(ctx, person.employeeId, [account.id], linked.conflict);
    person = linked.person;
  }
  return judgeAccount(ctx, person, desired, account, true);
}

async function link_(ctx: TargetContext, person: PersonRecord, accountId: string): Promise<{ person: PersonRecord; conflict?: string }> {
  const r = await link(ctx, person.employeeId, accountId);
  if (r.conflict) return { person, conflict: r.conflict };
  return { person: { ...person, links: { ...person.links, [ctx.target.name]: accountId } } };
}

// ---------------------------------------------------------------------------------------------
// Nightly: Start

const StartInputSchema = z.object({
  reconciliationId: z.string().min(1).max(80),
  input: z
    .looseObject({
      scope: z.string().max(64).optional(),
      trigger: z.string().max(256).optional(),
      requestedAt: z.string().max(64).optional(),
      /** Reconcile only these targets (default: every target jml manages). */
      targets: z.array(z.string().min(1).max(64)).min(1).optional(),
    })
    .nullish(),
});

export interface TargetProgress {
  reconciliationId: string;
  target: string;
  source: TargetSource;
  round: Round;
  cursor: string | null;
  /** Pages done. */
  page: number;
  more: boolean;
  counters: TargetCounters;
  /** Delta only: the link of the completed round (committed by Finish). */
  deltaLink: string | null;
  /** Delta only: the stored link had expired; this is a full resync. */
  resynced: boolean;
  /** Set by the state machine's Catch: the target could not be enumerated. */
  error?: { Error?: string; Cause?: string };
  /** The member pass (after the account pages), on targets whose account pages carry no entitlements. */
  members: MembersProgress;
}

/** Where the member pass is: which managed entitlement (`managedEntitlements` order) and which of its pages. */
export interface MembersProgress {
  /** Whether the target lists entitlement members (false: no member pass; `more` stays false). */
  supported: boolean;
  /** Index of the entitlement being paged. */
  index: number;
  cursor: string | null;
  /** Pages done of that entitlement. */
  page: number;
  /** Member pages done in all (findings are stored per member page). */
  pages: number;
  more: boolean;
  /** Set by the state machine's Catch: the members could not be listed to the end. */
  error?: { Error?: string; Cause?: string };
}

/** Where the entitlement-gap step is (after the persons pass): which (target, entitlement) next. */
export interface GapsProgress {
  next: number;
  /** Invocations done (findings are stored per invocation). */
  page: number;
  more: boolean;
  byTarget: Record<string, TargetCounters>;
}

export interface PersonsProgress {
  cursor: string | null;
  page: number;
  more: boolean;
  persons: number;
  outOfScope: number;
  /** Per target: persons checked, missing accounts and what was done about them. */
  byTarget: Record<string, TargetCounters>;
}

export interface StartOutput {
  reconciliationId: string;
  /** The Map's items: one progress per target. */
  targets: TargetProgress[];
  /** Filled by the Map (one final progress per target); empty until then, so a failure path can read it. */
  accounts: TargetProgress[];
  persons: PersonsProgress;
  gaps: GapsProgress;
}

/**
 * Opens the reconciliation: its run record (status RECONCILING, so `GET /runs/{id}` shows it)
 * and one progress item per target (where each will start: a stored delta link or the first page).
 */
export async function startReconciliation(deps: AppDeps, raw: unknown): Promise<StartOutput> {
  const { reconciliationId: rawId, input } = parseOrThrow(StartInputSchema, raw, 'reconciliation start');
  const id = safeId(rawId, 80);
  const policy = await deps.policy();
  const wanted = input?.targets;
  const unknown = (wanted ?? []).filter((t) => !policy.managedTargets.some((m) => m.name === t));
  if (unknown.length) throw new ValidationError([`input.targets: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not a target jml manages`]);
  const targets = policy.managedTargets.filter((t) => !wanted || wanted.includes(t.name));
  const at = nowIso(deps);
  const rawEvent = stableJson({ reconciliationId: id, input: input ?? {} });
  await deps.ledger.createRun({
    runId: id,
    idempotencyKey: `reconcile:${id}`,
    employeeId: RECONCILIATION_CHAIN_ID,
    eventId: id,
    eventType: 'reconcile',
    lifecycle: 'reconcile',
    status: 'RECONCILING',
    eventHash: sha256Hex(rawEvent),
    rawEvent,
    event: { kind: 'reconciliation', ...(input ?? {}) },
    effectiveAt: at,
    occurredAt: at,
    mappingVersion: policy.mappingVersion,
    createdAt: at,
    updatedAt: at,
    timeline: [{ phase: 'Start', at, note: `targets: ${targets.map((t) => t.name).join(', ')}` }],
  });
  const items: TargetProgress[] = [];
  for (const t of targets) {
    const connector = deps.connectors.get(t.name);
    const delta = deltaOf(connector);
    const stored = delta ? await deps.ledger.getMeta<{ link: string; at: string }>(deltaLinkKey(t.name)) : null;
    items.push({
      reconciliationId: id,
      target: t.name,
      source: delta ? 'delta' : 'list',
      round: stored ? 'incremental' : 'full',
      cursor: stored?.link ?? null,
      page: 0,
      more: true,
      counters: zeroTargetCounters(),
      deltaLink: null,
      resynced: false,
      members: {
        supported: !delta && !!membersOf(connector),
        index: 0,
        cursor: null,
        page: 0,
        pages: 0,
        more: !delta && !!membersOf(connector) && managedEntitlements(policy, t.name).length > 0,
      },
    });
  }
  return {
    reconciliationId: id,
    targets: items,
    accounts: [],
    persons: { cursor: null, page: 0, more: true, persons: 0, outOfScope: 0, byTarget: Object.fromEntries(targets.map((t) => [t.name, zeroTargetCounters()])) },
    gaps: { next: 0, page: 0, more: true, byTarget: {} },
  };
}

// ---------------------------------------------------------------------------------------------
// Nightly: one target's pages

const ErrorSchema = z.object({ Error: z.string().optional(), Cause: z.string().optional() }).optional();

const MembersProgressSchema = z.object({
  supported: z.boolean(),
  index: z.number().int().nonnegative(),
  cursor: z.string().max(8192).nullable(),
  page: z.number().int().nonnegative(),
  pages: z.number().int().nonnegative(),
  more: z.boolean(),
  error: ErrorSchema,
});

const TargetProgressSchema = z.object({
  reconciliationId: z.string().min(1).max(80),
  target: z.string().min(1).max(64),
  source: z.enum(['list', 'delta']),
  round: z.enum(['full', 'incremental']),
  cursor: z.string().max(8192).nullable(),
  page: z.number().int().nonnegative(),
  more: z.boolean(),
  counters: TargetCountersSchema,
  deltaLink: z.string().max(8192).nullable(),
  resynced: z.boolean(),
  error: ErrorSchema,
  members: MembersProgressSchema,
});

/** A target's pass as the Map hands it on: its last progress, or its input plus the caught error. */
const TargetOutcomeSchema = z.looseObject({
  target: z.string().min(1).max(64),
  source: z.enum(['list', 'delta']).optional(),
  round: z.enum(['full', 'incremental']).optional(),
  page: z.number().int().nonnegative().optional(),
  more: z.boolean().optional(),
  counters: TargetCountersSchema.optional(),
  deltaLink: z.string().max(8192).nullable().optional(),
  resynced: z.boolean().optional(),
  error: ErrorSchema,
  members: MembersProgressSchema.optional(),
});

interface SourcePage {
  accounts: ActualAccount[];
  removedIds: string[];
  next?: string;
  deltaLink?: string;
  round: Round;
  resynced: boolean;
}

async function readPage(connector: Connector, p: TargetProgress): Promise<SourcePage> {
  if (p.source === 'list') {
    const page = await connector.listAccounts(p.cursor ?? undefined);
    return { accounts: page.accounts, removedIds: [], ...(page.nextCursor ? { next: page.nextCursor } : {}), round: 'full', resynced: false };
  }
  const delta = deltaOf(connector)!;
  let round = p.round;
  let resynced = p.resynced;
  let changes = await delta.listChanges(p.cursor ?? undefined);
  if (changes.resyncRequired) {
    // The stored link (they live 7 days) or a paging link expired: start a full round over.
    round = 'full';
    resynced = true;
    changes = await delta.listChanges();
    if (changes.resyncRequired) throw new ValidationError([`${connector.name}: /users/delta refused a fresh round (resync required twice)`]);
  }
  return {
    accounts: changes.accounts.map((a) => ({ ...a, entitlements: [] })),
    removedIds: round === 'incremental' ? changes.removedIds : [],
    ...(changes.nextLink ? { next: changes.nextLink } : {}),
    ...(changes.deltaLink ? { deltaLink: changes.deltaLink } : {}),
    round,
    resynced,
  };
}

/**
 * Works through up to PAGES_PER_TASK pages of one target (one at a time: memory is one page),
 * classifying and acting on each account and writing the page's findings to the ledger before
 * the next page. Progress is returned with the next cursor; the state machine loops while `more`.
 * A page that fails after others succeeded returns the progress so far (the next invocation
 * retries that page); a first page that fails throws, for the state machine's Retry.
 */
export async function reconcilePage(deps: AppDeps, raw: unknown): Promise<TargetProgress> {
  let p = parseOrThrow(TargetProgressSchema, raw, 'reconcile page') as TargetProgress;
  const policy = await deps.policy();
  const target = policy.targetsByName.get(p.target);
  if (!target || !policy.managedTargets.includes(target)) throw new ValidationError([`target: ${p.target} is not a target jml manages`]);
  const connector = deps.connectors.get(p.target);
  const started = Date.now();
  let done = 0;
  // One phase per invocation: the account pages, then (a `ReconcileMembers` state) the member pages.
  const phase = p.more ? 'accounts' : 'members';
  const more = () => (phase === 'accounts' ? p.more : p.members.more);
  while (more() && done < PAGES_PER_TASK && Date.now() - started < TASK_TIME_BUDGET_MS) {
    try {
      p = phase === 'accounts' ? await onePage(deps, policy, target, connector, p) : await oneMembersPage(deps, policy, target, connector, p);
    } catch (e) {
      if (done > 0 && isRetryable(e)) return p;
      throw e;
    }
    done += 1;
  }
  return p;
}

/**
 * One page of the members of one managed entitlement (the member pass). Each member account is
 * matched to its person (correlation key, then link) and compared with what the person's
 * desired state allows there:
 *  - held outside the policy (extra): the account is read in full and judged like any account
 *    (one finding per account and night: a person judged already is skipped);
 *  - held and expected: the person is added to the entitlement's `held` sketch. The persons pass
 *    builds the `wanted` sketch of everyone who should hold it; the gap step lists the difference
 *    (missing entitlements) without either side ever being held in memory.
 * Accounts without a person, of a person out of scope, or not the person's linked account are
 * the account pass's findings (orphans, conflicts) and are left out here.
 */
async function oneMembersPage(deps: AppDeps, policy: Policy, target: PolicyTarget, connector: Connector, p: TargetProgress): Promise<TargetProgress> {
  const m = p.members;
  const entitlements = managedEntitlements(policy, target.name);
  const entitlement = entitlements[m.index];
  const lister = membersOf(connector);
  if (!entitlement || !lister) return { ...p, members: { ...m, cursor: null, more: false } };
  const page = await lister.listEntitlementMembers(entitlement, m.cursor ?? undefined);
  const counters = zeroTargetCounters();
  counters.memberPages = 1;
  counters.memberships = page.members.length;
  const ctx = { ...nightlyContext(deps, policy, target, p.reconciliationId, p.counters.actions), connector };
  const budgetBefore = ctx.budget.left;
  const key = entitlementKey(entitlement);
  const name = target.name;
  const held = new MembershipSketch();
  const extras: Array<{ accountId: string; person: PersonRecord; desired: DesiredState }> = [];
  await mapLimit(page.members, CONCURRENCY * 2, async (member) => {
    const k = member.correlationKey;
    let person = k && EMPLOYEE_ID_PATTERN.test(k) ? await deps.ledger.getPerson(k) : null;
    if (person?.links[name] !== member.accountId) {
      const linkedTo = await deps.ledger.findPersonByAccount(name, member.accountId);
      person = linkedTo ? await deps.ledger.getPerson(linkedTo) : null;
    }
    if (!person || person.links[name] !== member.accountId) return;
    const desired = desiredOf(deps, policy, person);
    if (!desired.inScope) return;
    const expect = expectationsOf(policy, person, desired, name);
    if (!expect) return;
    if (expect.expected.has(key)) held.add(person.employeeId);
    else if (!expect.allowed.has(key)) extras.push({ accountId: member.accountId, person, desired });
  });
  const findings: Finding[] = [];
  const judged = await mapLimit(extras, CONCURRENCY, async ({ accountId, person, desired }) => {
    if (await deps.ledger.getMeta(judgedKey(p.reconciliationId, name, person.employeeId))) return null;
    let account: ActualAccount;
    try {
      account = await connector.getAccount(accountId);
    } catch (e) {
      if (e instanceof JmlError && e.name === 'AccountNotFound') return null; // deleted since it was listed
      throw e;
    }
    const finding = await judgeAccount(ctx, person, desired, account, true);
    await markJudged(deps, p.reconciliationId, name, person.employeeId);
    return finding;
  });
  for (const f of judged) {
    if (!f) continue;
    findings.push(f);
    countFinding(counters, f);
    if (f.accountId) counters.retracted += 1; // the account page counted it correct on status alone
  }
  counters.actions = budgetBefore - ctx.budget.left;
  counters.limited = findings.filter((f) => f.evidence.note?.includes('automatic-action limit')).length;
  await writeFindings(deps, p.reconciliationId, `members-${name}`, m.pages, findings);
  await mergeSketch(deps, sketchKey(p.reconciliationId, name, 'held', entitlement), m.page, held, page.unresolved);
  const next = page.nextCursor ?? null;
  const index = next ? m.index : m.index + 1;
  return {
    ...p,
    counters: addCounters(p.counters, counters),
    members: { ...m, index, cursor: next, page: next ? m.page + 1 : 0, pages: m.pages + 1, more: index < entitlements.length },
  };
}

interface StoredSketch {
  /** The last page (or persons page) merged: a retried page is not counted twice. */
  throughPage: number;
  sketch: SketchJson;
  /** The entitlement does not exist on the target (why). */
  unresolved?: string;
}

/** Adds one page's sketch to the stored one (read, merge, write: one page at a time per key). */
async function mergeSketch(deps: AppDeps, key: string, page: number, add: MembershipSketch, unresolved?: string): Promise<void> {
  const stored = await deps.ledger.getMeta<StoredSketch>(key);
  if (stored && stored.throughPage >= page) return;
  if (!stored && add.empty && !unresolved && page > 0) return;
  const sketch = MembershipSketch.from(stored?.sketch).merge(add);
  const unresolvedNow = unresolved ?? stored?.unresolved;
  await deps.ledger.putMeta<StoredSketch>(key, { throughPage: page, sketch: sketch.toJSON(), ...(unresolvedNow ? { unresolved: unresolvedNow } : {}) }, epochSeconds(deps, SEEN_TTL_SECONDS));
}

/**
 * How a nightly step judges accounts on one target: this night's id, and what is left of the
 * target's automatic-action budget after the actions the night already took there.
 */
function nightlyContext(deps: AppDeps, policy: Policy, target: PolicyTarget, reconciliationId: string, actionsSoFar: number): TargetContext {
  return {
    deps,
    policy,
    target,
    connector: deps.connectors.get(target.name),
    runId: reconciliationId,
    origin: `reconciliation ${reconciliationId}`,
    budget: { left: Math.max(0, policy.document.bulkGuard.maxCount - actionsSoFar) },
    raiseFixedIncidents: true,
  };
}

async function onePage(deps: AppDeps, policy: Policy, target: PolicyTarget, connector: Connector, p: TargetProgress): Promise<TargetProgress> {
  const page = await readPage(connector, p);
  const counters = zeroTargetCounters();
  counters.pages = 1;
  const ctx = { ...nightlyContext(deps, policy, target, p.reconciliationId, p.counters.actions), connector };
  const budgetBefore = ctx.budget.left;
  const entitlementsRead = page.round === 'incremental' ? false : pagesCarryEntitlements(connector, p.source);
  const findings = await classifyAccounts(ctx, page.accounts, {
    entitlementsRead,
    // A delta change is worth a full read (it is one account, and something changed on it).
    readChanged: page.round === 'incremental',
    markSeen: page.round === 'full',
    counters,
  });
  for (const id of page.removedIds) {
    counters.removed += 1;
    const f = await removedAccount(ctx, id);
    if (f) findings.push(f);
  }
  if (p.members?.supported) {
    // The member pass that follows skips these people: one finding per account and night.
    const judged = [...new Set(findings.map((f) => f.employeeId).filter((x): x is string => !!x))];
    await mapLimit(judged, CONCURRENCY, (employeeId) => markJudged(deps, p.reconciliationId, p.target, employeeId));
  }
  for (const f of findings) countFinding(counters, f);
  counters.actions = budgetBefore - ctx.budget.left;
  counters.limited = findings.filter((f) => f.evidence.note?.includes('automatic-action limit')).length;
  await writeFindings(deps, p.reconciliationId, `accounts-${p.target}`, p.page, findings);
  return {
    ...p,
    round: page.round,
    resynced: page.resynced,
    cursor: page.next ?? null,
    page: p.page + 1,
    more: !!page.next,
    counters: addCounters(p.counters, counters),
    deltaLink: page.deltaLink ?? p.deltaLink,
  };
}

/** An account Graph reports deleted: a problem only if its person still needs one. */
async function removedAccount(ctx: TargetContext, accountId: string): Promise<Finding | null> {
  const employeeId = await ctx.deps.ledger.findPersonByAccount(ctx.target.name, accountId);
  const person = employeeId ? await ctx.deps.ledger.getPerson(employeeId) : null;
  if (!person) return null;
  const desired = desiredOf(ctx.deps, ctx.policy, person);
  if (!desired.inScope) return null;
  return judgePersonOnTarget(ctx, person, desired);
}

/**
 * Classifies a page of accounts. Each account is matched to its person by correlation key, then
 * by stored link; accounts of one person are handled together (two on one page is a conflict).
 */
async function classifyAccounts(
  ctx: TargetContext,
  accounts: ActualAccount[],
  options: { entitlementsRead: boolean; readChanged: boolean; markSeen: boolean; counters: TargetCounters },
): Promise<Finding[]> {
  const { deps } = ctx;
  const name = ctx.target.name;
  const c = options.counters;
  c.accounts += accounts.length;
  const resolved = await mapLimit(accounts, CONCURRENCY * 2, async (account) => {
    // A key that cannot be an employee id (the HR contract's rule) matches nobody: not looked up.
    const key = account.correlationKey;
    const byKey = key && EMPLOYEE_ID_PATTERN.test(key) ? await deps.ledger.getPerson(key) : null;
    if (byKey) return { account, person: byKey, via: 'key' as const };
    const linkedTo = await deps.ledger.findPersonByAccount(name, account.id);
    const person = linkedTo ? await deps.ledger.getPerson(linkedTo) : null;
    return { account, person, via: person ? ('link' as const) : null };
  });
  const findings: Finding[] = [];
  const byPerson = new Map<string, { person: PersonRecord; accounts: ActualAccount[] }>();
  const orphans: Array<{ account: ActualAccount; why: string }> = [];
  for (const r of resolved) {
    if (!r.person) {
      orphans.push({
        account: r.account,
        why: r.account.correlationKey
          ? `has correlation key "${r.account.correlationKey}", which matches no person in HR`
          : 'has no correlation key and is linked to no person',
      });
      continue;
    }
    const entry = byPerson.get(r.person.employeeId) ?? { person: r.person, accounts: [] };
    entry.accounts.push(r.account);
    byPerson.set(r.person.employeeId, entry);
  }
  findings.push(...(await mapLimit(orphans, CONCURRENCY, (o) => orphan(ctx, o.account, o.why))));
  const perPerson = await mapLimit([...byPerson.values()], CONCURRENCY, async ({ person, accounts: mine }) => {
    const desired = desiredOf(deps, ctx.policy, person);
    if (!desired.inScope) {
      c.unmanaged += mine.length;
      return [];
    }
    c.managed += mine.length;
    if (person.status === 'terminated') c.leaverAccounts += mine.length;
    if (options.markSeen) await deps.ledger.putMeta(seenKey(ctx.runId, name, person.employeeId), mine.map((a) => a.id), epochSeconds(deps, SEEN_TTL_SECONDS));
    if (mine.length > 1) {
      return [await conflict(ctx, person.employeeId, mine.map((a) => a.id), `${mine.length} accounts claim ${person.employeeId}: ${mine.map((a) => a.id).join(', ')}`)];
    }
    const account = mine[0]!;
    let current = person;
    const stored = person.links[name];
    if (stored && stored !== account.id) {
      // Linked to another account: a second account for one person, unless the linked one is gone.
      const all = await ctx.connector.findAccounts({ employeeId: person.employeeId, linkIds: [stored] });
      const ids = [...new Set([...all.map((a) => a.id), account.id])];
      if (ids.length > 1) return [await conflict(ctx, person.employeeId, ids, `${ids.length} accounts claim ${person.employeeId}: ${ids.join(', ')}`)];
    }
    if (stored !== account.id) {
      const linked = await link_(ctx, person, account.id);
      if (linked.conflict) return [await conflict(ctx, person.employeeId, [account.id], linked.conflict)];
      current = linked.person;
      c.linked += 1;
    }
    const full = !options.entitlementsRead && options.readChanged ? await ctx.connector.getAccount(account.id) : account;
    const finding = await judgeAccount(ctx, current, desired, full, options.entitlementsRead || options.readChanged);
    if (!finding) c.correct += 1;
    return finding ? [finding] : [];
  });
  for (const list of perPerson) findings.push(...list);
  return findings;
}

/** Findings of a page, in parts under the ledger's item size; read back by Finish. */
async function writeFindings(deps: AppDeps, id: string, pass: string, page: number, findings: Finding[]): Promise<void> {
  if (!findings.length) return;
  let part = 0;
  let batch: Finding[] = [];
  let bytes = 0;
  const flush = async () => {
    await deps.ledger.putMeta(findingsKey(id, pass, page, part), batch, epochSeconds(deps, FINDINGS_TTL_SECONDS));
    part += 1;
    batch = [];
    bytes = 0;
  };
  for (const f of findings) {
    const size = byteLength(JSON.stringify(f));
    if (batch.length && bytes + size > FINDINGS_PART_BYTES) await flush();
    batch.push(size > FINDINGS_PART_BYTES ? { ...f, changes: [], evidence: { note: 'evidence too large to store; see the exception' } } : f);
    bytes += size;
  }
  await flush();
}

async function* readFindings(deps: AppDeps, id: string, pass: string, pages: number): AsyncGenerator<Finding> {
  for (let page = 0; page < pages; page++) {
    for (let part = 0; ; part++) {
      const batch = await deps.ledger.getMeta<Finding[]>(findingsKey(id, pass, page, part));
      if (!batch) break;
      yield* batch;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Nightly: the ledger's persons

const PersonsInputSchema = z.object({
  reconciliationId: z.string().min(1).max(80),
  persons: z.object({
    cursor: z.string().max(8192).nullable(),
    page: z.number().int().nonnegative(),
    more: z.boolean(),
    persons: z.number().int().nonnegative(),
    outOfScope: z.number().int().nonnegative(),
    byTarget: z.record(z.string(), TargetCountersSchema),
  }),
  accounts: z.array(TargetOutcomeSchema),
});

/**
 * Pages through the ledger's persons for what no account page can show: a person who should
 * hold an account on a target and was listed on none (a missing account, or a linked account
 * that is gone). Checked only on targets whose pass was complete and full; a person is verified
 * against the target (`findAccounts`) before anything is reported, so an account created while
 * the reconciliation ran is not reported missing.
 */
export async function reconcilePersonsPage(deps: AppDeps, raw: unknown): Promise<PersonsProgress> {
  const input = parseOrThrow(PersonsInputSchema, raw, 'reconcile persons page');
  const id = input.reconciliationId;
  let p = input.persons as PersonsProgress;
  const policy = await deps.policy();
  const checkable = input.accounts.filter((a) => !a.error && !a.more && a.round === 'full').map((a) => a.target);
  const actionsSoFar = new Map(input.accounts.map((a) => [a.target, a.counters?.actions ?? 0]));
  const sketched = new Set(input.accounts.filter(membersComplete).map((a) => a.target));
  const started = Date.now();
  let done = 0;
  while (p.more && done < PAGES_PER_TASK && Date.now() - started < TASK_TIME_BUDGET_MS) {
    try {
      p = await onePersonsPage(deps, policy, id, p, checkable, actionsSoFar, sketched);
    } catch (e) {
      if (done > 0 && isRetryable(e)) return p;
      throw e;
    }
    done += 1;
  }
  return p;
}

async function onePersonsPage(
  deps: AppDeps,
  policy: Policy,
  id: string,
  p: PersonsProgress,
  checkable: string[],
  actionsSoFar: Map<string, number>,
  sketched: Set<string>,
): Promise<PersonsProgress> {
  const { persons, nextCursor } = await deps.ledger.listPersons(p.cursor ?? undefined, PERSONS_PAGE_SIZE);
  const byTarget: Record<string, TargetCounters> = Object.fromEntries(Object.entries(p.byTarget).map(([k, v]) => [k, { ...v }]));
  const contexts = new Map<string, TargetContext>();
  for (const name of checkable) {
    const target = policy.targetsByName.get(name)!;
    byTarget[name] ??= zeroTargetCounters();
    contexts.set(name, nightlyContext(deps, policy, target, id, (actionsSoFar.get(name) ?? 0) + byTarget[name].actions));
  }
  let outOfScope = 0;
  const findings: Finding[] = [];
  // The `wanted` side of the membership sketches: everyone whose listed account should hold each
  // managed entitlement (the member pass built the `held` side; the gap step compares them).
  const wanted = new Map<string, Map<string, { entitlement: EntitlementRef; sketch: MembershipSketch }>>();
  for (const name of checkable) {
    if (!sketched.has(name)) continue;
    wanted.set(name, new Map(managedEntitlements(policy, name).map((e) => [entitlementKey(e), { entitlement: e, sketch: new MembershipSketch() }])));
  }
  const results = await mapLimit(persons, CONCURRENCY, async (person) => {
    const desired = desiredOf(deps, policy, person);
    if (!desired.inScope) {
      outOfScope += 1;
      return [];
    }
    const out: Array<{ target: string; finding: Finding | null; checked: boolean }> = [];
    for (const [name, ctx] of contexts) {
      const d = decidedTarget(policy, person, desired, name, null);
      const needs = d?.account === 'enabled';
      const sketches = wanted.get(name);
      if (!needs && !sketches) continue; // nothing to find missing (a leaver's gone account is fine)
      const seen = await deps.ledger.getMeta<string[]>(seenKey(id, name, person.employeeId));
      if (sketches && seen?.length === 1 && person.links[name] === seen[0]) {
        for (const key of expectationsOf(policy, person, desired, name)?.expected ?? []) sketches.get(key)?.sketch.add(person.employeeId);
      }
      if (!needs || seen) continue;
      const before = ctx.budget.left;
      const finding = await judgePersonOnTarget(ctx, person, desired);
      byTarget[name]!.actions += before - ctx.budget.left;
      out.push({ target: name, finding, checked: true });
    }
    return out;
  });
  for (const list of results) {
    for (const r of list) {
      const c = byTarget[r.target]!;
      c.personsChecked += 1;
      if (r.finding) {
        countFinding(c, r.finding);
        if (r.finding.evidence.note?.includes('automatic-action limit')) c.limited += 1;
        findings.push(r.finding);
      }
    }
  }
  await writeFindings(deps, id, 'persons', p.page, findings);
  for (const [name, sketches] of wanted) {
    await mapLimit([...sketches.values()], CONCURRENCY, ({ entitlement, sketch }) => mergeSketch(deps, sketchKey(id, name, 'wanted', entitlement), p.page, sketch));
  }
  return {
    cursor: nextCursor ?? null,
    page: p.page + 1,
    more: !!nextCursor,
    persons: p.persons + persons.length,
    outOfScope: p.outOfScope + outOfScope,
    byTarget,
  };
}

/** A target whose accounts were listed in full and whose every managed entitlement's members were listed. */
function membersComplete(a: z.infer<typeof TargetOutcomeSchema>): boolean {
  return !!a.members?.supported && !a.members.error && a.members.more === false && !a.error && a.more === false && a.round === 'full';
}

// ---------------------------------------------------------------------------------------------
// Nightly: entitlement gaps (missing entitlements, from the membership sketches)

const GapsProgressSchema = z.object({
  next: z.number().int().nonnegative(),
  page: z.number().int().nonnegative(),
  more: z.boolean(),
  byTarget: z.record(z.string(), TargetCountersSchema),
});

const GapsInputSchema = z.object({
  reconciliationId: z.string().min(1).max(80),
  gaps: GapsProgressSchema,
  accounts: z.array(TargetOutcomeSchema),
  persons: PersonsInputSchema.shape.persons.partial().optional(),
});

/** Entitlements compared per invocation (each is two ledger reads, plus a full read per person it names). */
const GAP_ITEMS_PER_TASK = 20;

/**
 * After the persons pass: for each managed entitlement of each target with a complete member
 * pass, `wanted − held` (the two sketches) names the people whose account should hold it and
 * does not. Each is read in full and judged like any account (one finding per account and
 * night: people judged already are skipped). A difference too large to name (more than ~100
 * people for one entitlement — a mass removal, or a deleted group) is one exception for the
 * owner with the exact count; so is an entitlement the policy names that does not exist there.
 */
export async function reconcileGaps(deps: AppDeps, raw: unknown): Promise<GapsProgress> {
  const input = parseOrThrow(GapsInputSchema, raw, 'reconcile gaps');
  const id = input.reconciliationId;
  const policy = await deps.policy();
  const items = input.accounts
    .filter(membersComplete)
    .flatMap((a) => managedEntitlements(policy, a.target).map((entitlement) => ({ target: a.target, entitlement })));
  let p = input.gaps as GapsProgress;
  const byTarget: Record<string, TargetCounters> = Object.fromEntries(Object.entries(p.byTarget).map(([k, v]) => [k, { ...v }]));
  const findings: Finding[] = [];
  const started = Date.now();
  let next = p.next;
  while (next < items.length && next - p.next < GAP_ITEMS_PER_TASK && Date.now() - started < TASK_TIME_BUDGET_MS) {
    const { target: name, entitlement } = items[next]!;
    const target = policy.targetsByName.get(name)!;
    const c = (byTarget[name] ??= zeroTargetCounters());
    const before = (input.accounts.find((a) => a.target === name)?.counters?.actions ?? 0) + (input.persons?.byTarget?.[name]?.actions ?? 0);
    const ctx = nightlyContext(deps, policy, target, id, before + c.actions);
    const budgetBefore = ctx.budget.left;
    const found = await entitlementGaps(ctx, entitlement, c);
    c.actions += budgetBefore - ctx.budget.left;
    for (const f of found) {
      countFinding(c, f);
      if (f.kind === 'drift' && f.accountId) c.retracted += 1;
      if (f.evidence.note?.includes('automatic-action limit')) c.limited += 1;
      findings.push(f);
    }
    next += 1;
  }
  await writeFindings(deps, id, 'gaps', p.page, findings);
  p = { next, page: p.page + 1, more: next < items.length, byTarget };
  return p;
}

async function entitlementGaps(ctx: TargetContext, entitlement: EntitlementRef, c: TargetCounters): Promise<Finding[]> {
  const { deps } = ctx;
  const name = ctx.target.name;
  const id = ctx.runId;
  const [held, wanted] = await Promise.all([
    deps.ledger.getMeta<StoredSketch>(sketchKey(id, name, 'held', entitlement)),
    deps.ledger.getMeta<StoredSketch>(sketchKey(id, name, 'wanted', entitlement)),
  ]);
  const diff = MembershipSketch.from(wanted?.sketch).merge(MembershipSketch.from(held?.sketch), -1);
  if (diff.empty) return [];
  const what = `${entitlement.type} "${entitlement.value}"`;
  const wantedCount = MembershipSketch.from(wanted?.sketch).count;
  const decoded = diff.decode();
  if (held?.unresolved || !decoded.complete) {
    // Not nameable person by person: one finding, and one exception for the owner, with the count.
    const missing = Math.max(0, diff.count);
    c.entitlementGaps += missing;
    const summary = held?.unresolved
      ? `${name}: the policy grants ${what} to ${wantedCount} person(s), but it cannot be found on ${name}: ${held.unresolved}`
      : `${name}: ${missing} person(s) should hold ${what} and do not — more than the nightly check names one by one (a mass removal, or the ${entitlement.type} was replaced?)`;
    const finding: Omit<Finding, 'action'> = {
      kind: 'drift',
      target: name,
      summary,
      evidence: { missing: [{ type: entitlement.type, value: entitlement.value }], note: held?.unresolved ? `unresolved: ${held.unresolved}` : `${missing} member(s) missing; ${wantedCount} expected` },
    };
    if (ctx.target.mode === 'shadow') return [{ ...finding, action: 'reported', evidence: { ...finding.evidence, note: `${finding.evidence.note}; shadow-mode target: reported only` } }];
    const exceptionId = await raise(ctx, {
      kind: 'drift',
      // Same problem, same exception, night after night (as for every finding).
      id: `exc-rec-gap-${safeId(name, 32)}-${fingerprint([entitlementKey(entitlement), held?.unresolved ? 'unresolved' : 'unnamed'])}`,
      reason: `${summary}; review the ${entitlement.type}'s members against reconciliation ${id}`,
      evidence: { ...finding.evidence, origin: ctx.origin },
    });
    return [{ ...finding, action: 'exception', exceptionId }];
  }
  const { added, removed } = decoded;
  c.entitlementGaps += added.length;
  // `removed` (held and expected, yet not wanted by the persons pass) only happens when a person
  // changed while the reconciliation ran: judged again in full, like the missing ones.
  const people = [...new Set([...added, ...removed])];
  const results = await mapLimit(people, CONCURRENCY, async (employeeId) => {
    if (await deps.ledger.getMeta(judgedKey(id, name, employeeId))) return null;
    const person = await deps.ledger.getPerson(employeeId);
    if (!person) return null;
    const desired = desiredOf(deps, ctx.policy, person);
    if (!desired.inScope) return null;
    const finding = await judgePersonOnTarget(ctx, person, desired);
    await markJudged(deps, id, name, employeeId);
    return finding;
  });
  return results.filter((f): f is Finding => !!f);
}

// ---------------------------------------------------------------------------------------------
// Nightly: Finish

const FinishInputSchema = z.object({
  reconciliationId: z.string().min(1).max(80),
  accounts: z.array(TargetOutcomeSchema).optional(),
  persons: PersonsInputSchema.shape.persons.partial().optional(),
  gaps: GapsProgressSchema.partial().optional(),
  failed: z.boolean().optional(),
  error: ErrorSchema.nullable(),
});

export interface TargetReport {
  target: string;
  displayName: string;
  mode: 'enforce' | 'shadow';
  onDrift: 'converge' | 'exception';
  source: TargetSource;
  round: Round;
  resynced: boolean;
  /**
   * Whether every account's entitlements were compared (false: status and correlation only):
   * pages that carry them, or a complete member pass and gap check (`via: 'members'`).
   */
  entitlementsCompared: boolean;
  /** How entitlements were compared: on the account pages, or through each entitlement's member pages. */
  entitlementsVia?: 'pages' | 'members';
  /** Why the member pass did not finish (entitlements not compared). */
  entitlementsError?: string;
  complete: boolean;
  error?: string;
  counters: TargetCounters;
  driftRatePercent: number;
  revocationCompletenessPercent: number;
}

export interface ReconciliationReport {
  reconciliationId: string;
  status: RunStatus;
  startedAt: string;
  finishedAt: string;
  mappingVersion: string;
  trigger: unknown;
  targets: TargetReport[];
  persons: { checked: number; outOfScope: number; pages: number };
  totals: { accounts: number; managed: number; correct: number; findings: number; byKind: Record<FindingKind, number>; byAction: Record<FindingAction, number> };
  kpis: { driftRatePercent: number; orphanAccounts: number; leaversStillEnabled: number; revocationCompletenessPercent: number };
  findings: Finding[];
}

const pct = (num: number, den: number) => (den > 0 ? Math.round((10_000 * num) / den) / 100 : 0);

function driftCount(c: TargetCounters) {
  return c.drift + c.missingAccounts + c.leaversEnabled + c.conflicts;
}

/**
 * Writes the report to the evidence store (a bundle in the `jml-reconciliation` chain: the
 * standard files, with every finding in findings.json), commits the Graph delta links, emits the
 * KPIs and closes the run record. Also the Catch path (`failed: true`): the report then says
 * what was done before the failure.
 */
export async function finishReconciliation(deps: AppDeps, raw: unknown): Promise<{ status: RunStatus; evidence: string; findings: number }> {
  const input = parseOrThrow(FinishInputSchema, raw, 'reconciliation finish');
  const id = safeId(input.reconciliationId, 80);
  const run = await deps.ledger.getRun(id);
  if (!run) throw new ValidationError([`reconciliationId: no reconciliation ${id} was started`]);
  if (run.evidence) return { status: run.status, evidence: run.evidence.prefix, findings: (run.kpis?.findings as number | undefined) ?? 0 };
  const policy = await deps.policy();
  const finishedAt = nowIso(deps);

  const accounts = (input.accounts ?? []) as Array<Partial<TargetProgress> & { target: string }>;
  const personsCounters = (input.persons?.byTarget ?? {}) as Record<string, TargetCounters>;
  const findings: Finding[] = [];
  for (const a of accounts) for await (const f of readFindings(deps, id, `accounts-${a.target}`, a.page ?? 0)) findings.push(f);
  for (const a of accounts) for await (const f of readFindings(deps, id, `members-${a.target}`, a.members?.pages ?? 0)) findings.push(f);
  for await (const f of readFindings(deps, id, 'persons', input.persons?.page ?? 0)) findings.push(f);
  for await (const f of readFindings(deps, id, 'gaps', input.gaps?.page ?? 0)) findings.push(f);
  const gapsCounters = (input.gaps?.byTarget ?? {}) as Record<string, TargetCounters>;
  const gapsDone = input.gaps?.more === false;

  const targets: TargetReport[] = [];
  const exceptionsOpened: string[] = [];
  const targetNames = [...new Set([...accounts.map((a) => a.target), ...Object.keys(personsCounters)])];
  for (const name of targetNames) {
    const a = accounts.find((x) => x.target === name);
    const t = policy.targetsByName.get(name);
    const counters = addCounters(
      addCounters(a?.counters ? { ...zeroTargetCounters(), ...a.counters } : zeroTargetCounters(), personsCounters[name] ?? {}),
      gapsCounters[name] ?? {},
    );
    counters.correct = Math.max(0, counters.correct - counters.retracted);
    const complete = !!a && !a.error && a.more === false;
    const error = a?.error ? `${a.error.Error ?? 'Error'}: ${parseCause(a.error.Cause)}` : !a ? 'not enumerated' : a.more ? 'pages left unread' : undefined;
    const viaPages = a?.round !== 'incremental' && !!a?.source && pagesCarryEntitlements(deps.connectors.get(name), a.source);
    const viaMembers = !!a && membersComplete(a) && gapsDone;
    const membersError =
      a?.members?.supported && complete && !viaMembers
        ? a.members.error
          ? `${a.members.error.Error ?? 'Error'}: ${parseCause(a.members.error.Cause)}`
          : a.members.more
            ? 'member pages left unread'
            : 'missing entitlements not checked'
        : undefined;
    const report: TargetReport = {
      target: name,
      displayName: t?.displayName ?? name,
      mode: t?.mode ?? 'enforce',
      onDrift: t?.onDrift ?? 'converge',
      source: a?.source ?? 'list',
      round: a?.round ?? 'full',
      resynced: a?.resynced ?? false,
      entitlementsCompared: viaPages || viaMembers,
      ...(viaPages || viaMembers ? { entitlementsVia: viaPages ? ('pages' as const) : ('members' as const) } : {}),
      ...(membersError ? { entitlementsError: membersError } : {}),
      complete,
      ...(error ? { error } : {}),
      counters,
      driftRatePercent: pct(driftCount(counters), counters.managed + counters.missingAccounts),
      revocationCompletenessPercent: counters.leaverAccounts ? pct(counters.leaverAccounts - counters.leaversEnabled, counters.leaverAccounts) : 100,
    };
    targets.push(report);
    if (t && error && !input.failed) {
      // A target that could not be enumerated: its owner hears about it (once per reconciliation).
      const e = await openOnce(deps, {
        exceptionId: `exc-rec-incomplete-${safeId(name, 32)}-${fingerprint([id])}`,
        runId: id,
        target: name,
        owner: t.owner.email,
        kind: 'step_failed',
        reason: `${name}: reconciliation ${id} could not read every account (${error}); its findings are incomplete`,
        evidence: { reconciliationId: id, pagesRead: a?.page ?? 0, error: a?.error ?? null },
      });
      exceptionsOpened.push(e);
    }
    if (t && membersError && a?.members?.error && !input.failed) {
      // The accounts were read, their entitlements were not: the owner hears about that too.
      const e = await openOnce(deps, {
        exceptionId: `exc-rec-members-${safeId(name, 32)}-${fingerprint([id])}`,
        runId: id,
        target: name,
        owner: t.owner.email,
        kind: 'step_failed',
        reason: `${name}: reconciliation ${id} could not list the members of every managed entitlement (${membersError}); entitlement drift was not checked`,
        evidence: { reconciliationId: id, memberPagesRead: a.members.pages, error: a.members.error },
      });
      exceptionsOpened.push(e);
    }
    if (t && counters.limited > 0) {
      const e = await openOnce(deps, {
        exceptionId: `exc-rec-limit-${safeId(name, 32)}-${fingerprint([id])}`,
        runId: id,
        target: name,
        owner: t.owner.email,
        kind: 'drift',
        reason: `${name}: ${counters.limited} finding(s) over the automatic-action limit of ${policy.document.bulkGuard.maxCount} were reported but not acted on — a policy or feed problem can look like this; review the reconciliation report ${id}`,
        evidence: { reconciliationId: id, limited: counters.limited, limit: policy.document.bulkGuard.maxCount },
      });
      exceptionsOpened.push(e);
    }
    if (a?.source === 'delta' && complete && a.deltaLink && !input.failed) {
      await deps.ledger.putMeta(deltaLinkKey(name), { link: a.deltaLink, at: finishedAt, reconciliationId: id });
    }
  }

  const total = targets.reduce((acc, t) => addCounters(acc, t.counters), zeroTargetCounters());
  const byKind = Object.fromEntries(FINDING_KINDS.map((k) => [k, 0])) as Record<FindingKind, number>;
  const byAction = { converged: 0, disabled: 0, exception: 0, reported: 0, deferred: 0, failed: 0 } as Record<FindingAction, number>;
  for (const f of findings) {
    byKind[f.kind] += 1;
    byAction[f.action] += 1;
    if (f.exceptionId) exceptionsOpened.push(f.exceptionId);
  }
  const kpis = {
    driftRatePercent: pct(driftCount(total), total.managed + total.missingAccounts),
    orphanAccounts: total.orphans,
    leaversStillEnabled: total.leaversEnabled,
    revocationCompletenessPercent: total.leaverAccounts ? pct(total.leaverAccounts - total.leaversEnabled, total.leaverAccounts) : 100,
  };
  const status: RunStatus = input.failed
    ? 'FAILED'
    : exceptionsOpened.length || targets.some((t) => !t.complete)
      ? 'EXCEPTION_OPEN'
      : 'COMPLETED';
  const report: ReconciliationReport = {
    reconciliationId: id,
    status,
    startedAt: run.createdAt,
    finishedAt,
    mappingVersion: policy.mappingVersion,
    trigger: run.event,
    targets,
    persons: { checked: input.persons?.persons ?? 0, outOfScope: input.persons?.outOfScope ?? 0, pages: input.persons?.page ?? 0 },
    totals: { accounts: total.accounts, managed: total.managed, correct: total.correct, findings: findings.length, byKind, byAction },
    kpis,
    findings,
  };

  const finishing = [
    ...targets.map((t) => ({
      phase: `Accounts:${t.target}`,
      at: finishedAt,
      note: `${t.source}${t.source === 'delta' ? ` (${t.round}${t.resynced ? ', delta link expired: full resync' : ''})` : ''}: ${t.counters.accounts} account(s) in ${t.counters.pages} page(s)${t.counters.memberPages ? `; ${t.counters.memberships} membership(s) in ${t.counters.memberPages} member page(s)` : ''}${t.error ? `; incomplete: ${t.error}` : ''}${t.entitlementsError ? `; entitlements not compared: ${t.entitlementsError}` : ''}`,
    })),
    { phase: 'Persons', at: finishedAt, note: `${report.persons.checked} person(s) in ${report.persons.pages} page(s)` },
    ...(input.failed ? [{ phase: 'Failed', at: finishedAt, note: input.error ? `${input.error.Error}: ${parseCause(input.error.Cause)}` : 'failed' }] : []),
    { phase: 'Finish', at: finishedAt, note: `${findings.length} finding(s); drift rate ${kpis.driftRatePercent}%` },
  ];
  const kpiNumbers: Record<string, number> = {
    accountsEnumerated: total.accounts,
    accountsManaged: total.managed,
    findings: findings.length,
    driftRatePercent: kpis.driftRatePercent,
    orphanAccounts: kpis.orphanAccounts,
    leaversStillEnabled: kpis.leaversStillEnabled,
    revocationCompletenessPercent: kpis.revocationCompletenessPercent,
    revocationEnumerated: total.leaverAccounts,
    fixes: byAction.converged + byAction.disabled,
    exceptionCount: new Set(exceptionsOpened).size,
  };
  const bundle = await storeReport(deps, {
    runId: id,
    employeeId: RECONCILIATION_CHAIN_ID,
    displayName: 'Nightly reconciliation',
    status,
    closedAt: finishedAt,
    rawEvent: { body: run.rawEvent, receivedAt: run.createdAt },
    findings,
    report,
    exceptionIds: [...new Set(exceptionsOpened)],
    kpis: kpiNumbers,
    timeline: [...(run.timeline ?? []), ...finishing],
  });
  await deps.ledger.updateRun(id, {
    status,
    reconciliation: { summary: { ...report, findings: undefined }, findingsStored: findings.length },
    evidence: bundle,
    kpis: kpiNumbers,
    addTimeline: finishing,
  });

  for (const t of targets) {
    const dims = { Target: t.target };
    deps.metrics.put('DriftRate', t.driftRatePercent, 'Percent', dims);
    deps.metrics.put('OrphanAccounts', t.counters.orphans, 'Count', dims);
    deps.metrics.put('LeaversStillEnabled', t.counters.leaversEnabled, 'Count', dims);
    deps.metrics.put('RevocationCompleteness', t.revocationCompletenessPercent, 'Percent', { ...dims, Workflow: 'reconcile' });
  }
  deps.metrics.put('DriftRate', kpis.driftRatePercent, 'Percent');
  deps.metrics.put('OrphanAccounts', kpis.orphanAccounts, 'Count');
  deps.metrics.put('LeaversStillEnabled', kpis.leaversStillEnabled, 'Count');
  deps.metrics.put('RevocationCompleteness', kpis.revocationCompletenessPercent, 'Percent', { Workflow: 'reconcile' });
  deps.metrics.put('ReconciliationFindings', findings.length, 'Count');
  // Tickets the ITSM did not take when their exception opened (or closed) are retried nightly;
  // each outcome is recorded on its exception, so a failure here only waits for the next night.
  await retryTickets(deps).catch(() => deps.metrics.put('TicketFailed', 1, 'Count', { Phase: 'nightly-retry' }));
  return { status, evidence: bundle.prefix, findings: findings.length };
}


// ---------------------------------------------------------------------------------------------
// The report as evidence

interface ReportInput {
  runId: string;
  employeeId: string;
  displayName: string;
  status: RunStatus;
  closedAt: string;
  rawEvent: { body: string; receivedAt: string };
  findings: Finding[];
  report: unknown;
  exceptionIds: string[];
  kpis: Record<string, number>;
  timeline: Array<{ phase: string; at: string; note?: string }>;
}

/** Findings as the evidence format's reconciliation section (what summary.html shows). */
function toReconciliationEvidence(checkedAt: string, findings: Finding[], exceptionIds: string[]): ReconciliationEvidence {
  const listed = findings.slice(0, SUMMARY_FINDINGS);
  const targets: ReconciliationTarget[] = listed
    .filter((f) => f.kind !== 'orphan')
    .map((f) => ({
      target: f.target,
      result: f.kind === 'conflict' ? 'conflict' : f.kind === 'failed' ? 'unreachable' : 'drift',
      ...(f.accountId ? { accountId: f.accountId } : {}),
      ...(f.evidence.desiredStatus ? { desiredStatus: f.evidence.desiredStatus } : {}),
      ...(f.evidence.accountStatus ? { actualStatus: f.evidence.accountStatus } : {}),
      ...(f.evidence.missing?.length ? { missing: f.evidence.missing } : {}),
      ...(f.evidence.unexpected?.length ? { unexpected: f.evidence.unexpected } : {}),
      note: `${f.kind.replace(/_/g, ' ')} — ${f.action}${f.exceptionId ? ` (${f.exceptionId})` : ''}: ${f.summary}`,
    }));
  const orphans = listed
    .filter((f) => f.kind === 'orphan')
    .map((f) => ({ target: f.target, accountId: f.accountId!, ...(f.userName ? { userName: f.userName } : {}), reason: `${f.evidence.note ?? ''} — ${f.action}` }));
  if (findings.length > listed.length) {
    targets.push({ target: '(more)', result: 'drift', note: `${findings.length - listed.length} more finding(s) are listed in findings.json` });
  }
  return { checkedAt, targets, ...(orphans.length ? { orphans } : {}), ...(exceptionIds.length ? { exceptionsOpened: exceptionIds } : {}) };
}

/**
 * Builds the evidence bundle (the standard files and manifest, plus findings.json listed in the
 * manifest) and stores it in the chain of `employeeId`, rebuilding once per concurrent commit.
 */
async function storeReport(deps: AppDeps, r: ReportInput): Promise<{ prefix: string; manifestSha256: string }> {
  const exceptions = (await deps.ledger.listExceptions({ runId: r.runId })).filter((e) => r.exceptionIds.includes(e.exceptionId));
  const fixes: ExecutionStepEvidence[] = r.findings
    .filter((f) => f.changes?.length)
    .map((f, i) => ({
      stepId: `${String(i + 1).padStart(4, '0')}-${f.target}-${f.kind}`,
      target: f.target,
      phase: 'reconcile',
      outcome: f.action === 'failed' ? 'error' : 'ok',
      changes: f.changes!,
      writes: f.changes!.filter((c) => c.changed).length,
    }));
  for (let attempt = 0; ; attempt++) {
    const bundle = withExtraFile(
      buildEvidenceBundle({
        runId: r.runId,
        employeeId: r.employeeId,
        lifecycle: 'reconcile' as Lifecycle,
        status: r.status as Extract<RunStatus, 'COMPLETED' | 'EXCEPTION_OPEN' | 'FAILED'>,
        closedAt: r.closedAt,
        person: { displayName: r.displayName },
        rawEvent: r.rawEvent,
        plan: null,
        desired: null,
        approvals: [],
        executionLog: fixes,
        idpEvidence: [],
        reconciliation: toReconciliationEvidence(r.closedAt, r.findings, r.exceptionIds),
        exceptions,
        kpis: r.kpis,
        timeline: r.timeline,
        previousManifestSha256: await deps.evidence.latestManifestSha256(r.employeeId),
      }),
      'findings.json',
      stableJson(r.report),
    );
    try {
      const stored = await deps.evidence.putBundle(bundle);
      return { prefix: stored.prefix, manifestSha256: stored.manifestSha256 };
    } catch (e) {
      if (e instanceof EvidenceBundleExists) return e.existing;
      if (e instanceof EvidenceChainConflict && attempt < 5) continue;
      throw e;
    }
  }
}

/** Adds a file to a built bundle and re-issues its manifest (the file is listed, so verify checks it). */
function withExtraFile(bundle: EvidenceBundle, name: string, body: string): EvidenceBundle {
  const files = bundle.files.filter((f) => f.name !== MANIFEST_FILE);
  files.push({ name, contentType: contentTypeOf(name), body });
  const manifest = { ...bundle.manifest, files: [...bundle.manifest.files, { name, sha256: sha256Hex(body), bytes: byteLength(body) }] };
  const manifestBody = stableJson(manifest);
  files.push({ name: MANIFEST_FILE, contentType: contentTypeOf(MANIFEST_FILE), body: manifestBody });
  return { ...bundle, files, manifest, manifestSha256: sha256Hex(manifestBody) };
}

// ---------------------------------------------------------------------------------------------
// One person, on demand

const ReconcilePersonSchema = z.object({
  employeeId: z.string().min(1).max(64),
  /** Why: "drift signal user.lifecycle.reactivate", "scheduled expiry of bundle x", … (evidence). */
  reason: z.string().min(1).max(512),
  /** Who caused the reconcile, when known (the Okta event's actor). */
  actor: z.string().max(256).optional(),
  /** Makes the call idempotent: the same request id is one reconcile run (default: a fresh one). */
  requestId: z.string().min(1).max(200).optional(),
  /** What asked: an IdP drift signal, a scheduled action or an operator (the run's event type). */
  trigger: z.enum(['drift', 'schedule', 'operator']).default('operator'),
  /** False: fixes are only recorded in the run and its evidence (the caller reports them itself). */
  raiseFixedIncidents: z.boolean().optional(),
});
export type ReconcilePersonInput = z.input<typeof ReconcilePersonSchema>;

/** The run id of `reconcilePerson` for a request id (callers can point to the run before it exists). */
export function reconcileRunIdFor(requestId: string): string {
  return `reconcile-${safeId(requestId, 110)}`;
}

export interface ReconcilePersonResult {
  runId: string;
  employeeId: string;
  outcome: 'reconciled' | 'duplicate' | 'not_found' | 'out_of_scope';
  status?: RunStatus;
  /** Targets that matched the desired state. */
  matched: string[];
  findings: Finding[];
  evidence?: string;
}

/**
 * Reconciles one person on every managed target, now: reads each target in full
 * (`findAccounts`), classifies and acts exactly as the nightly pass does, and records the result
 * as a `reconcile` run of the person (`GET /runs?employeeId=` lists it) with an evidence bundle
 * in the person's own chain. Throttling and outages are thrown (the caller retries: the same
 * `requestId` resumes the same run); a target that refuses the reads is recorded as a `failed`
 * finding.
 */
export async function reconcilePerson(deps: AppDeps, raw: ReconcilePersonInput): Promise<ReconcilePersonResult> {
  const input = parseOrThrow(ReconcilePersonSchema, raw, 'reconcile person');
  const { employeeId } = input;
  const runId = reconcileRunIdFor(input.requestId ?? `${employeeId}-${deps.clock.now().getTime()}`);
  const existing = await deps.ledger.getRun(runId);
  if (existing && TERMINAL_RUN_STATUSES.has(existing.status)) {
    const rec = existing.reconciliation as { findings?: Finding[]; matched?: string[] } | undefined;
    return {
      runId,
      employeeId,
      outcome: 'duplicate',
      status: existing.status,
      matched: rec?.matched ?? [],
      findings: rec?.findings ?? [],
      ...(existing.evidence ? { evidence: existing.evidence.prefix } : {}),
    };
  }
  const person = await deps.ledger.getPerson(employeeId);
  if (!person) return { runId, employeeId, outcome: 'not_found', matched: [], findings: [] };
  const policy = await deps.policy();
  const desired = desiredOf(deps, policy, person);
  if (!desired.inScope) return { runId, employeeId, outcome: 'out_of_scope', matched: [], findings: [] };

  const at = nowIso(deps);
  const trigger = { trigger: input.trigger, reason: input.reason, ...(input.actor ? { actor: input.actor } : {}), ...(input.requestId ? { requestId: input.requestId } : {}) };
  const rawEvent = stableJson({ employeeId, ...trigger });
  if (!existing) {
    await deps.ledger.createRun({
      runId,
      idempotencyKey: `reconcile:${runId}`,
      employeeId,
      eventId: input.requestId ?? runId,
      eventType: input.trigger === 'drift' ? 'drift' : 'reconcile',
      lifecycle: 'reconcile',
      status: 'RECONCILING',
      eventHash: sha256Hex(rawEvent),
      rawEvent,
      event: { kind: 'reconcile-person', employeeId, ...trigger },
      effectiveAt: at,
      occurredAt: at,
      mappingVersion: policy.mappingVersion,
      createdAt: at,
      updatedAt: at,
      timeline: [{ phase: 'Start', at, note: input.reason }],
    });
  }
  const origin = `${input.reason}${input.actor ? ` (actor: ${input.actor})` : ''}`;
  const findings: Finding[] = [];
  const matched: string[] = [];
  let current = person;
  for (const t of policy.managedTargets) {
    let finding: Finding | null;
    try {
      const ctx: TargetContext = {
        deps,
        policy,
        target: t,
        connector: deps.connectors.get(t.name),
        runId,
        origin,
        budget: { left: Number.POSITIVE_INFINITY },
        raiseFixedIncidents: input.raiseFixedIncidents ?? true,
      };
      finding = await judgePersonOnTarget(ctx, current, desired);
    } catch (e) {
      if (isRetryable(e) || !(e instanceof JmlError)) throw e;
      finding = {
        kind: 'failed',
        target: t.name,
        employeeId,
        summary: `${t.name}: could not be read for ${employeeId}: ${e.name}: ${e.message}`,
        action: 'failed',
        evidence: { error: errorOf(e) },
      };
    }
    if (finding) findings.push(finding);
    else matched.push(t.name);
    current = (await deps.ledger.getPerson(employeeId)) ?? current;
  }
  const closedAt = bumpTime(deps.clock.now(), at);
  const exceptionIds = [...new Set(findings.map((f) => f.exceptionId).filter((x): x is string => !!x))];
  const status: RunStatus = findings.some((f) => f.action === 'exception' || f.action === 'failed' || f.action === 'reported') ? 'EXCEPTION_OPEN' : 'COMPLETED';
  const reconciled = [
    { phase: 'Reconcile', at: closedAt, note: `${matched.length}/${policy.managedTargets.length} target(s) match; ${findings.map((f) => `${f.target}: ${f.kind} → ${f.action}`).join('; ') || 'no findings'}` },
  ];
  const kpis = {
    findings: findings.length,
    fixes: findings.filter((f) => f.action === 'converged' || f.action === 'disabled').length,
    leaversStillEnabled: findings.filter((f) => f.kind === 'leaver_enabled').length,
    exceptionCount: exceptionIds.length,
  };
  const evidence = await storeReport(deps, {
    runId,
    employeeId,
    displayName: `${person.worker.givenName} ${person.worker.familyName}`,
    status,
    closedAt,
    rawEvent: { body: rawEvent, receivedAt: at },
    findings,
    report: { runId, employeeId, trigger, matched, findings, status },
    exceptionIds,
    kpis,
    timeline: [{ phase: 'Start', at, note: input.reason }, ...reconciled],
  });
  await deps.ledger.updateRun(runId, { status, reconciliation: { matched, findings }, evidence, kpis, addTimeline: reconciled });
  for (const f of findings) deps.metrics.put('ReconcileFinding', 1, 'Count', { Target: f.target, Kind: f.kind, Action: f.action });
  return { runId, employeeId, outcome: 'reconciled', status, matched, findings, evidence: evidence.prefix };
}
