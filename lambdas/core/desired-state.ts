/**
 * Desired state: what every managed target should hold for one person, computed only from the
 * person's *current* canonical record and the policy (state-based, not event-based — a stale or
 * replayed event cannot regress access). Every entitlement carries the rule and bundle that
 * granted it.
 */
import type { DesiredTarget, Entitlement } from './access.ts';
import type { PersonStatus, Worker } from './hr-event.ts';
import { durationMs, inScope, matchView, type Policy } from './policy.ts';

export interface PersonState {
  worker: Worker;
  status: PersonStatus;
}

export interface BundleGrant {
  bundle: string;
  rule: string;
  kind: 'baseline' | 'privileged';
  /** Set for time-bound bundles. */
  expiresAt?: string;
}

/** A bounded re-grant of a named bundle outside the rules (mover exception grant). */
export interface ExceptionGrant {
  bundle: string;
  reason: string;
  expiresAt: string;
}

export interface DesiredState {
  employeeId: string;
  status: PersonStatus;
  inScope: boolean;
  mappingVersion: string;
  bundles: BundleGrant[];
  /** Managed targets, IdP first. */
  targets: DesiredTarget[];
}

export interface DesiredStateOptions {
  /** When each time-bound bundle was granted (ISO), to compute its expiry. */
  grantedAt?: Record<string, string>;
  exceptionGrants?: ExceptionGrant[];
  /** Evaluation time (ISO); expired time-bound grants are not desired. */
  now?: string;
}

/** Bundles the rules select for a worker, in rule order, each with the first rule that selected it. */
export function selectBundles(worker: Worker, policy: Policy, options: DesiredStateOptions = {}): BundleGrant[] {
  const out: BundleGrant[] = [];
  const seen = new Set<string>();
  let now: number | undefined;
  const nowMs = () => (now ??= options.now ? Date.parse(options.now) : Date.now());
  const add = (bundle: string, rule: string, expiresAt?: string) => {
    if (seen.has(bundle)) return;
    const def = policy.document.bundles[bundle];
    if (!def) return;
    let expiry = expiresAt;
    if (!expiry && def.expiresAfter) {
      const granted = options.grantedAt?.[bundle];
      expiry = new Date((granted ? Date.parse(granted) : nowMs()) + durationMs(def.expiresAfter)).toISOString();
    }
    if (expiry && Date.parse(expiry) <= nowMs()) return;
    seen.add(bundle);
    out.push(expiry ? { bundle, rule, kind: def.kind, expiresAt: expiry } : sharedGrant(policy, bundle, rule, def.kind));
  };
  const view = matchView(worker);
  for (const { rule, matches } of policy.matchersFor(view.department)) {
    if (matches(view)) for (const b of rule.grant) add(b, rule.id);
  }
  for (const g of options.exceptionGrants ?? []) add(g.bundle, `exception:${g.reason}`, g.expiresAt);
  return out;
}

/** Grants without an expiry are the same for everyone a rule selects: one frozen object each. */
const grants = new WeakMap<Policy, Map<string, BundleGrant>>();
function sharedGrant(policy: Policy, bundle: string, rule: string, kind: BundleGrant['kind']): BundleGrant {
  let m = grants.get(policy);
  if (!m) grants.set(policy, (m = new Map()));
  const key = `${bundle}\u0000${rule}`;
  let g = m.get(key);
  if (!g) m.set(key, (g = Object.freeze({ bundle, rule, kind })));
  return g;
}

export function desiredState(person: PersonState, policy: Policy, options: DesiredStateOptions = {}): DesiredState {
  const { worker, status } = person;
  const base = {
    employeeId: worker.employeeId,
    status,
    mappingVersion: policy.mappingVersion,
  };
  if (!inScope(policy, worker)) return { ...base, inScope: false, bundles: [], targets: [] };

  if (status === 'terminated') {
    return {
      ...base,
      inScope: true,
      bundles: [],
      targets: policy.managedTargets.map((t) => ({
        target: t.name,
        kind: t.kind,
        mode: t.mode,
        account: 'disabled',
        entitlements: [],
      })),
    };
  }

  const bundles = selectBundles(worker, policy, options);
  return {
    employeeId: worker.employeeId,
    status,
    mappingVersion: policy.mappingVersion,
    inScope: true,
    bundles,
    targets: targetsFor(bundles, status, policy),
  };
}

/**
 * Many people share a bundle selection (same department, site and job family), so the targets
 * for a selection are assembled once per policy and shared. They are frozen: consumers derive
 * new objects (as `applyDecisions` does) and never mutate a desired state.
 */
const assembled = new WeakMap<Policy, Map<string, readonly DesiredTarget[]>>();
const ASSEMBLED_MAX = 20_000;

function targetsFor(bundles: BundleGrant[], status: PersonStatus, policy: Policy): DesiredTarget[] {
  let cache = assembled.get(policy);
  if (!cache) assembled.set(policy, (cache = new Map()));
  let key = status;
  for (const b of bundles) key += `|${b.bundle}@${b.rule}@${b.expiresAt ?? ''}`;
  let targets = cache.get(key);
  if (!targets) {
    if (cache.size >= ASSEMBLED_MAX) cache.clear();
    targets = deepFreeze(assembleTargets(bundles, status, policy));
    cache.set(key, targets);
  }
  return targets as DesiredTarget[];
}

function assembleTargets(bundles: BundleGrant[], status: PersonStatus, policy: Policy): DesiredTarget[] {
  const perTarget = new Map<string, Map<string, Entitlement>>();
  const listed = new Set<string>();
  for (const grant of bundles) {
    const def = policy.document.bundles[grant.bundle]!;
    for (const targetName of Object.keys(def.targets)) listed.add(targetName);
    for (const e of policy.bundleEntitlements.get(grant.bundle) ?? []) {
      let m = perTarget.get(e.target);
      if (!m) perTarget.set(e.target, (m = new Map()));
      const existing = m.get(e.key);
      if (existing) {
        existing.alsoGrantedBy = [...(existing.alsoGrantedBy ?? []), { bundle: grant.bundle, rule: grant.rule }];
        existing.privileged ||= grant.kind === 'privileged';
        continue;
      }
      m.set(e.key, {
        type: e.type,
        value: e.value,
        bundle: grant.bundle,
        rule: grant.rule,
        privileged: grant.kind === 'privileged',
        ...(grant.expiresAt ? { expiresAt: grant.expiresAt } : {}),
      });
    }
  }
  return policy.managedTargets.map((t) => {
    const isIdp = t === policy.idp;
    const wanted = isIdp || listed.has(t.name);
    const account: DesiredTarget['account'] = !wanted ? 'disabled' : status === 'on_leave' && isIdp ? 'suspended' : 'enabled';
    return {
      target: t.name,
      kind: t.kind,
      mode: t.mode,
      account,
      entitlements: wanted ? [...(perTarget.get(t.name)?.values() ?? [])] : [],
    };
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
