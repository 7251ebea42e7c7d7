/**
 * Impact of a policy change before it ships: for each person on a roster, who gains and who
 * loses which entitlement (and account), with privileged changes called out — so the reviewer
 * of a policy pull request approves it knowing its effect.
 */
import { entitlementKey, type DesiredTarget } from './access.ts';
import { desiredState, type PersonState } from './desired-state.ts';
import type { Policy } from './policy.ts';

export interface EntitlementChange {
  target: string;
  type: string;
  value: string;
  privileged: boolean;
  /** Bundle and rule: of the new grant for a gain, of the old grant for a loss. */
  bundle: string;
  rule: string;
}

export interface PersonImpact {
  employeeId: string;
  name: string;
  gains: EntitlementChange[];
  losses: EntitlementChange[];
  accountChanges: Array<{ target: string; from: DesiredTarget['account']; to: DesiredTarget['account'] }>;
  scopeChange?: 'enters scope' | 'leaves scope';
}

export interface PolicyImpact {
  fromVersion: string;
  toVersion: string;
  people: number;
  affected: PersonImpact[];
  totals: { gains: number; losses: number; privilegedGains: number; privilegedLosses: number };
}

function index(targets: DesiredTarget[]): Map<string, { t: DesiredTarget; e: DesiredTarget['entitlements'][number] }> {
  const m = new Map<string, { t: DesiredTarget; e: DesiredTarget['entitlements'][number] }>();
  for (const t of targets) for (const e of t.entitlements) m.set(`${t.target}|${entitlementKey(e)}`, { t, e });
  return m;
}

export function policyImpact(before: Policy, after: Policy, roster: PersonState[], now?: string): PolicyImpact {
  const affected: PersonImpact[] = [];
  const totals = { gains: 0, losses: 0, privilegedGains: 0, privilegedLosses: 0 };
  for (const person of roster) {
    const a = desiredState(person, before, { now });
    const b = desiredState(person, after, { now });
    const ia = index(a.targets);
    const ib = index(b.targets);
    const toChange = ({ t, e }: { t: DesiredTarget; e: DesiredTarget['entitlements'][number] }): EntitlementChange => ({
      target: t.target,
      type: e.type,
      value: e.value,
      privileged: e.privileged,
      bundle: e.bundle,
      rule: e.rule,
    });
    const gains = [...ib].filter(([k]) => !ia.has(k)).map(([, v]) => toChange(v));
    const losses = [...ia].filter(([k]) => !ib.has(k)).map(([, v]) => toChange(v));
    const accountChanges: PersonImpact['accountChanges'] = [];
    const names = new Set([...a.targets, ...b.targets].map((t) => t.target));
    for (const name of names) {
      const from = a.targets.find((t) => t.target === name)?.account ?? 'absent';
      const to = b.targets.find((t) => t.target === name)?.account ?? 'absent';
      if (from !== to) accountChanges.push({ target: name, from, to });
    }
    const scopeChange = a.inScope === b.inScope ? undefined : b.inScope ? 'enters scope' : 'leaves scope';
    if (gains.length || losses.length || accountChanges.length || scopeChange) {
      affected.push({
        employeeId: person.worker.employeeId,
        name: `${person.worker.givenName} ${person.worker.familyName}`,
        gains,
        losses,
        accountChanges,
        ...(scopeChange ? { scopeChange } : {}),
      });
      totals.gains += gains.length;
      totals.losses += losses.length;
      totals.privilegedGains += gains.filter((g) => g.privileged).length;
      totals.privilegedLosses += losses.filter((g) => g.privileged).length;
    }
  }
  return { fromVersion: before.mappingVersion, toVersion: after.mappingVersion, people: roster.length, affected, totals };
}
