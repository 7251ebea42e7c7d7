import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { entitlementKey, type ActualAccount, type EntitlementRef } from '#core/access';
import { desiredState } from '#core/desired-state';
import { normaliseHrEvent, type Worker } from '#core/hr-event';
import { idempotencyKey } from '#core/idempotency';
import { plan, type ActualState } from '#core/plan';
import { effectiveStatus, type PlannedOp } from '#core/target-plan';
import { examplePolicy } from '../helpers/policy.ts';

const policy = examplePolicy();
const CAPS = { okta: { suspend: true }, slack: { suspend: false }, netsuite: { suspend: false } } as const;

const workerArb: fc.Arbitrary<Worker> = fc.record({
  employeeId: fc.stringMatching(/^E[0-9]{1,5}$/),
  givenName: fc.constant('Grace'),
  familyName: fc.constant('Hopper'),
  email: fc.constant('grace@acme.example'),
  department: fc.constantFrom('Engineering', 'Sales', 'Finance', 'Support', 'People', 'Legal'),
  location: fc.constantFrom('London', 'Berlin', 'New York'),
  jobCode: fc.constantFrom('ENG-1', 'SRE-2', 'FIN-SYSADMIN', 'FIN-1', 'SLS-1', 'PPL-HRIS1', 'SUP-1'),
  managerId: fc.option(fc.constant('E9999'), { nil: undefined }),
  employmentType: fc.constantFrom('employee' as const, 'contractor' as const),
  startDate: fc.constant('2026-01-05'),
});
const statusArb = fc.constantFrom('active' as const, 'on_leave' as const, 'terminated' as const);

/** Every entitlement the policy can grant per target, plus some it never grants (drift). */
const universe: Record<string, EntitlementRef[]> = {};
for (const [, list] of policy.bundleEntitlements) for (const e of list) (universe[e.target] ??= []).push({ type: e.type, value: e.value });
universe.okta!.push({ type: 'group', value: 'Shadow Admins' });
universe.slack!.push({ type: 'group', value: 'random' });

const accountArb = (target: string): fc.Arbitrary<ActualAccount | null> =>
  fc.option(
    fc.record({
      id: fc.constant(`${target}-1`),
      status: fc.constantFrom('enabled' as const, 'suspended' as const, 'disabled' as const).filter((s) => CAPS[target as keyof typeof CAPS].suspend || s !== 'suspended'),
      entitlements: fc.subarray(universe[target] ?? []),
    }),
    { nil: null },
  );
const actualArb: fc.Arbitrary<ActualState> = fc.record({
  okta: accountArb('okta'),
  slack: accountArb('slack'),
  netsuite: accountArb('netsuite'),
});

/** What a target does with an op: the model converge relies on. */
function applyOps(account: ActualAccount | null, ops: PlannedOp[]): ActualAccount | null {
  let acc = account ? { ...account, entitlements: [...account.entitlements] } : null;
  for (const o of ops) {
    if (o.op === 'create') acc = { id: 'new', status: 'enabled', entitlements: [] };
    if (!acc) throw new Error(`${o.op} on a missing account`);
    switch (o.op) {
      case 'disable': acc.status = 'disabled'; break;
      case 'suspend': acc.status = 'suspended'; break;
      case 'enable': case 'unsuspend': acc.status = 'enabled'; break;
      case 'addEntitlement': acc.entitlements.push({ type: o.entitlement!.type, value: o.entitlement!.value }); break;
      case 'removeEntitlement': acc.entitlements = acc.entitlements.filter((e) => entitlementKey(e) !== entitlementKey(o.entitlement!)); break;
      case 'delete': return null;
      default: break;
    }
  }
  return acc;
}

const one = (a: ActualState[string]) => (Array.isArray(a) ? a[0] ?? null : a ?? null);

describe('planner properties', () => {
  it('plan(d, d) is empty', () => {
    fc.assert(
      fc.property(workerArb, statusArb, (w, status) => {
        const d = desiredState({ worker: w, status }, policy);
        const actual: ActualState = {};
        for (const t of d.targets) {
          if (t.account === 'absent') continue;
          actual[t.target] = t.account === 'disabled' && t.entitlements.length === 0 ? null : {
            id: `${t.target}-1`,
            status: effectiveStatus(t.account, CAPS[t.target as keyof typeof CAPS]),
            entitlements: t.entitlements.map((e) => ({ type: e.type, value: e.value })),
          };
        }
        expect(plan(d, actual, policy, { lifecycle: 'mover' }).stepCount).toBe(0);
      }),
    );
  });

  it('applying plan(d, a) to a yields d, and planning again is empty', () => {
    fc.assert(
      fc.property(workerArb, statusArb, actualArb, (w, status, actual) => {
        const d = desiredState({ worker: w, status }, policy);
        const p = plan(d, actual, policy, { lifecycle: status === 'terminated' ? 'leaver' : 'mover' });
        const after: ActualState = {};
        for (const tp of p.targets) {
          const result = applyOps(one(actual[tp.target]), tp.steps);
          after[tp.target] = result;
          const want = d.targets.find((t) => t.target === tp.target)!;
          if (!result) {
            expect(want.account === 'enabled').toBe(false);
            continue;
          }
          const caps = CAPS[tp.target as keyof typeof CAPS];
          if (want.account === 'enabled') expect(result.status).toBe('enabled');
          else expect(result.status === 'disabled' || result.status === effectiveStatus(want.account as 'suspended', caps)).toBe(true);
          expect(new Set(result.entitlements.map(entitlementKey))).toEqual(new Set(want.entitlements.map(entitlementKey)));
        }
        const again = plan(d, after, policy, { lifecycle: 'mover' });
        expect(again.stepCount).toBe(0);
      }),
    );
  });

  it('within a target, restrictions come first and removals precede additions', () => {
    fc.assert(
      fc.property(workerArb, statusArb, actualArb, (w, status, actual) => {
        const p = plan(desiredState({ worker: w, status }, policy), actual, policy, { lifecycle: 'mover' });
        for (const tp of p.targets) {
          const ops = tp.steps.map((s) => s.op);
          const lastRemove = ops.lastIndexOf('removeEntitlement');
          const firstAdd = ops.indexOf('addEntitlement');
          if (lastRemove >= 0 && firstAdd >= 0) expect(lastRemove).toBeLessThan(firstAdd);
          for (const restrict of ['disable', 'suspend'] as const) {
            const i = ops.indexOf(restrict);
            if (i >= 0) expect(i).toBe(0);
          }
        }
      }),
    );
  });

  it("a leaver's applied plan leaves no enabled account and no entitlement", () => {
    fc.assert(
      fc.property(workerArb, actualArb, (w, actual) => {
        const d = desiredState({ worker: w, status: 'terminated' }, policy);
        const p = plan(d, actual, policy, { lifecycle: 'leaver' });
        if (!d.inScope) return;
        for (const tp of p.targets) {
          const result = applyOps(one(actual[tp.target]), tp.steps);
          if (result) {
            expect(result.status).not.toBe('enabled');
            expect(result.entitlements).toEqual([]);
          }
          expect(tp.steps.filter((s) => ['disable', 'revokeSessions'].includes(s.op)).every((s) => s.approval.mode === 'none')).toBe(true);
        }
      }),
    );
  });
});

describe('idempotency key properties', () => {
  const rawEvent = (w: Worker) => ({
    eventId: 'e-1',
    eventType: 'change',
    effectiveDate: '2026-12-01',
    occurredAt: '2026-11-20T10:00:00Z',
    worker: { ...w },
  });
  const shuffle = (o: Record<string, unknown>, seed: number): Record<string, unknown> => {
    const keys = Object.keys(o);
    for (let i = keys.length - 1; i > 0; i--) {
      const j = (seed + i * 7) % (i + 1);
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
    return Object.fromEntries(keys.map((k) => [k, o[k]]));
  };

  it('is stable under key order and whitespace', () => {
    fc.assert(
      fc.property(workerArb, fc.nat(), fc.constantFrom(0, 2, '\t'), (w, seed, indent) => {
        const a = normaliseHrEvent(JSON.parse(JSON.stringify(rawEvent(w))), { timeZone: 'Europe/London' });
        const shuffled = shuffle({ ...rawEvent(w), worker: shuffle({ ...w, givenName: `  ${w.givenName} ` }, seed) }, seed + 1);
        const b = normaliseHrEvent(JSON.parse(JSON.stringify(shuffled, null, indent)), { timeZone: 'Europe/London' });
        expect(idempotencyKey(b, policy.mappingVersion)).toBe(idempotencyKey(a, policy.mappingVersion));
      }),
    );
  });

  it('differs for a second, different change on the same day, and for another policy', () => {
    fc.assert(
      fc.property(workerArb, fc.constantFrom('department', 'jobCode', 'location', 'managerId', 'employmentType') , (w, field) => {
        const a = normaliseHrEvent(rawEvent(w), { timeZone: 'UTC' });
        const changed = { ...w, [field]: field === 'employmentType' ? (w.employmentType === 'employee' ? 'contractor' : 'employee') : `${String(w[field as keyof Worker] ?? 'X')}-2` };
        const b = normaliseHrEvent(rawEvent(changed as Worker), { timeZone: 'UTC' });
        expect(idempotencyKey(b, policy.mappingVersion)).not.toBe(idempotencyKey(a, policy.mappingVersion));
        expect(idempotencyKey(a, 'other-version')).not.toBe(idempotencyKey(a, policy.mappingVersion));
      }),
    );
  });
});
