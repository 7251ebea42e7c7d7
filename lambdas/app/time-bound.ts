/**
 * Time-bound access: bundles with `expiresAfter` in the policy, and exception grants.
 *
 * A time-bound bundle expires `expiresAfter` after it was granted (`person.grantedAt[bundle]`,
 * recorded by the converge step that added it). Each gets a one-time `expire-bundle` schedule
 * named `jml-expire-{employeeId}-{bundle}`: a run that may grant one schedules it provisionally
 * (the grant time is not known until the approval and the converge happen), and the expiry
 * handler moves it to the exact time when it fires early — so no schedule is ever missed and
 * none fires a bundle off before its time. At expiry the bundle's targets are converged to the
 * desired state, which no longer holds it (`desiredState` drops expired grants), the removal is
 * recorded as evidence, and the bundle's approval is forgotten: renewing it takes a new approval
 * (an exception grant, or the policy granting it again after a rehire).
 */
import type { ActualAccount } from '#core/access';
import { converge } from '#connectors/converge';
import { desiredState, type DesiredState } from '#core/desired-state';
import type { ExecutionStepEvidence } from '#core/evidence';
import { sha256Hex } from '#core/hash';
import { TERMINAL_RUN_STATUSES, type PersonRecord } from '#core/ledger';
import { applyDecisions } from '#core/plan';
import { durationMs, type Policy } from '#core/policy';
import type { AppDeps } from './ports.ts';
import { accountProfile } from './profile.ts';
import { updatePerson } from './people.ts';
import { openException } from './exceptions.ts';
import { activeExceptionGrants } from './exception-grants.ts';
import { recordSystemEvidence } from './system-evidence.ts';
import { withTargetLease } from './target-lease.ts';

const SCHEDULE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * `prefix-employeeId-suffix` as an EventBridge Scheduler name (1–64 of `[0-9A-Za-z_.-]`);
 * shortened with a hash when too long, so two people never share a name.
 */
export function boundedName(prefix: string, employeeId: string, suffix: string): string {
  const plain = `${prefix}-${employeeId}-${suffix}`.replace(/[^A-Za-z0-9_.-]/g, '_');
  if (SCHEDULE_NAME.test(plain)) return plain;
  const digest = sha256Hex(`${prefix}\n${employeeId}\n${suffix}`).slice(0, 24);
  const room = 64 - prefix.length - digest.length - 2;
  return `${prefix}-${employeeId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, room)}-${digest}`;
}

export const expiryScheduleName = (employeeId: string, bundle: string) => boundedName('jml-expire', employeeId, bundle);

/** The retry of a retention delete (its own name: a fired schedule is not rewritten while it completes). */
export const retentionRetryScheduleName = (employeeId: string, target: string) => boundedName('jml-retention-retry', employeeId, target);

/** The decided desired state outside a run: rejected bundles and unapproved privileged ones withheld. */
export function decidedDesiredFor(person: PersonRecord, policy: Policy, now: string, actual: Record<string, ActualAccount[]>): DesiredState {
  const grants = activeExceptionGrants(person, now);
  const desired = desiredState({ worker: person.worker, status: person.status }, policy, { grantedAt: person.grantedAt, exceptionGrants: grants, now });
  const approved = new Set([...person.approvedBundles, ...grants.map((g) => g.bundle)]);
  const withheld = new Set(person.rejectedBundles.filter((b) => !approved.has(b)));
  // A privileged bundle is granted only through its approval (in a run, or an approved exception grant).
  for (const b of desired.bundles) if (b.kind === 'privileged' && !approved.has(b.bundle)) withheld.add(b.bundle);
  return withheld.size ? applyDecisions(desired, withheld, actual, policy) : desired;
}

export interface BundleConvergeResult {
  person: PersonRecord;
  desired: DesiredState;
  steps: ExecutionStepEvidence[];
  failures: Array<{ target: string; name: string; message: string }>;
}

/**
 * Converges the targets a bundle lists to the person's current desired state (the same computation
 * a run makes), one target at a time, and records new account links.
 */
export async function convergeBundleTargets(deps: AppDeps, employeeId: string, bundle: string, phase: string): Promise<BundleConvergeResult> {
  const policy = await deps.policy();
  const person = await deps.ledger.getPerson(employeeId);
  if (!person) throw new Error(`person ${employeeId} is not in the ledger`);
  const now = deps.clock.now().toISOString();
  const listed = new Set(Object.keys(policy.document.bundles[bundle]?.targets ?? {}));
  const targets = policy.managedTargets.filter((t) => listed.has(t.name)).map((t) => t.name);
  const actual: Record<string, ActualAccount[]> = {};
  for (const t of targets) {
    const link = person.links[t];
    actual[t] = await deps.connectors.get(t).findAccounts({ employeeId, linkIds: link ? [link] : [] });
  }
  const desired = decidedDesiredFor(person, policy, now, actual);
  const profile = await accountProfile(deps.ledger, person);
  const steps: ExecutionStepEvidence[] = [];
  const failures: BundleConvergeResult['failures'] = [];
  const links: Record<string, string> = {};
  for (const [i, t] of targets.entries()) {
    const d = desired.targets.find((x) => x.target === t);
    if (!d) continue;
    const startedAt = deps.clock.now().toISOString();
    const stepId = `${i + 1}-${t}-${phase}`;
    try {
      const link = person.links[t];
      const result = await withTargetLease(deps, { employeeId, target: t, holder: `${phase} of ${bundle}` }, () => converge(deps.connectors.get(t), profile, d, { linkIds: link ? [link] : [] }));
      if (result.accountId && result.accountId !== link) links[t] = result.accountId;
      steps.push({ stepId, target: t, phase, startedAt, finishedAt: deps.clock.now().toISOString(), outcome: d.mode === 'shadow' ? 'shadow' : 'ok', changes: result.changes, writes: result.writes });
    } catch (e) {
      const err = e as Error;
      failures.push({ target: t, name: err.name, message: err.message });
      steps.push({ stepId, target: t, phase, startedAt, finishedAt: deps.clock.now().toISOString(), outcome: 'error', changes: [], writes: 0, error: { name: err.name, message: err.message } });
    }
  }
  let updated = person;
  if (Object.keys(links).length) {
    updated =
      (await updatePerson(deps.ledger, employeeId, (p) => {
        let changed = false;
        for (const [t, id] of Object.entries(links)) if (p.links[t] !== id) ((p.links[t] = id), (changed = true));
        return changed ? p : null;
      }, () => deps.clock.now())) ?? person;
  }
  return { person: updated, desired, steps, failures };
}

/**
 * Upserts the expiry schedule of each time-bound bundle the person holds or is about to be
 * granted. Safe to call any time (names are deterministic; an already expired bundle is skipped).
 */
export async function scheduleBundleExpiries(deps: AppDeps, input: { employeeId: string }): Promise<string[]> {
  const policy = await deps.policy();
  const person = await deps.ledger.getPerson(input.employeeId);
  if (!person || person.status === 'terminated') return [];
  const now = deps.clock.now().getTime();
  const selected = new Set(
    desiredState({ worker: person.worker, status: person.status }, policy, { grantedAt: person.grantedAt, now: new Date(now).toISOString() }).bundles.map((b) => b.bundle),
  );
  const scheduled: string[] = [];
  for (const [bundle, def] of Object.entries(policy.document.bundles)) {
    if (!def.expiresAfter) continue;
    const granted = person.grantedAt[bundle];
    if (!granted && !selected.has(bundle)) continue;
    // Granted: exact. About to be granted: provisional (the handler moves it to the exact time).
    const at = (granted ? Date.parse(granted) : now) + durationMs(def.expiresAfter);
    if (granted && at <= now) continue; // expired already: handled when it expired
    const name = expiryScheduleName(input.employeeId, bundle);
    await deps.scheduler.upsertOnce(name, new Date(at), { kind: 'expire-bundle', payload: { employeeId: input.employeeId, bundle } });
    scheduled.push(`${name}@${new Date(at).toISOString()}`);
  }
  return scheduled;
}

export type ExpiryOutcome =
  | { outcome: 'removed'; evidence: string; writes: number }
  | { outcome: 'failed'; evidence: string; exceptionId: string }
  | { outcome: 'rescheduled'; at: string }
  | { outcome: 'skipped'; reason: string };

/** `expire-bundle` `{ employeeId, bundle }`: removes a time-bound bundle whose time is up. */
export async function expireBundle(deps: AppDeps, input: { employeeId: string; bundle: string; schedule?: string }): Promise<ExpiryOutcome> {
  const policy = await deps.policy();
  const person = await deps.ledger.getPerson(input.employeeId);
  if (!person) return { outcome: 'skipped', reason: `person ${input.employeeId} is not in the ledger` };
  if (person.status === 'terminated') return { outcome: 'skipped', reason: 'the person left; the leaver run removed all access' };
  const def = policy.document.bundles[input.bundle];
  if (!def?.expiresAfter) return { outcome: 'skipped', reason: `bundle ${input.bundle} is not time-bound in the current policy` };
  const now = deps.clock.now();
  const name = expiryScheduleName(input.employeeId, input.bundle);
  const granted = person.grantedAt[input.bundle];
  if (!granted) {
    // Not granted yet: while a run that may grant it is in flight, look again later.
    const inFlight = (await deps.ledger.listRunsByEmployee(input.employeeId)).some((r) => !TERMINAL_RUN_STATUSES.has(r.status) && r.lifecycle !== 'reconcile');
    if (!inFlight) return { outcome: 'skipped', reason: `bundle ${input.bundle} was never granted (not approved, or no longer selected)` };
    const at = new Date(now.getTime() + durationMs(def.expiresAfter));
    await deps.scheduler.upsertOnce(name, at, { kind: 'expire-bundle', payload: { employeeId: input.employeeId, bundle: input.bundle } });
    return { outcome: 'rescheduled', at: at.toISOString() };
  }
  const due = Date.parse(granted) + durationMs(def.expiresAfter);
  if (due > now.getTime()) {
    await deps.scheduler.upsertOnce(name, new Date(due), { kind: 'expire-bundle', payload: { employeeId: input.employeeId, bundle: input.bundle } });
    return { outcome: 'rescheduled', at: new Date(due).toISOString() };
  }

  const receivedAt = now.toISOString();
  const result = await convergeBundleTargets(deps, input.employeeId, input.bundle, 'expire');
  // The approval was for this grant; renewing it takes a new one.
  const after =
    (await updatePerson(deps.ledger, input.employeeId, (p) => (p.approvedBundles.includes(input.bundle) ? ((p.approvedBundles = p.approvedBundles.filter((b) => b !== input.bundle)), p) : null), () => deps.clock.now())) ??
    result.person;
  const writes = result.steps.reduce((n, s) => n + (s.writes ?? 0), 0);
  const expiredAt = new Date(due).toISOString();
  const exception = result.failures.length
    ? await openException(deps, {
        exceptionId: `exc-expiry-${sha256Hex(`${input.employeeId}|${input.bundle}|${granted}`).slice(0, 32)}`,
        employeeId: input.employeeId,
        target: result.failures[0]!.target,
        owner: policy.targetsByName.get(result.failures[0]!.target)?.owner.email ?? policy.document.company.fallbackApprover,
        kind: 'drift',
        reason: `time-bound bundle ${input.bundle} expired at ${expiredAt} but could not be removed from ${result.failures.map((f) => `${f.target} (${f.name}: ${f.message})`).join(', ')}; the nightly reconciliation removes it once the target answers`,
        evidence: { bundle: input.bundle, grantedAt: granted, expiredAt, failures: result.failures },
      })
    : undefined;
  const evidence = await recordSystemEvidence(deps, {
    kind: 'expiry',
    triggerKey: `${input.employeeId}|${input.bundle}|${granted}`,
    person: after,
    lifecycle: 'mover',
    status: exception ? 'EXCEPTION_OPEN' : 'COMPLETED',
    trigger: { trigger: 'expire-bundle', schedule: input.schedule ?? name, employeeId: input.employeeId, bundle: input.bundle, grantedAt: granted, expiresAfter: def.expiresAfter, expiredAt },
    receivedAt,
    desired: result.desired,
    steps: result.steps,
    ...(exception ? { exceptions: [exception] } : {}),
    timeline: [
      { phase: 'Granted', at: granted, note: `bundle ${input.bundle} (expires after ${def.expiresAfter})` },
      { phase: 'Expired', at: expiredAt },
      { phase: 'Execute', at: receivedAt, note: `${writes} write(s) on ${result.steps.map((s) => s.target).join(', ')}` },
    ],
  });
  deps.metrics.put('BundlesExpired', 1, 'Count', { Bundle: input.bundle });
  return exception
    ? { outcome: 'failed', evidence: evidence.prefix, exceptionId: exception.exceptionId }
    : { outcome: 'removed', evidence: evidence.prefix, writes };
}
