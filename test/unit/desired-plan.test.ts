import { describe, expect, it } from 'vitest';
import { desiredState } from '#core/desired-state';
import { applyDecisions, plan } from '#core/plan';
import { examplePolicy, withPolicy, worker } from '../helpers/policy.ts';

const policy = examplePolicy();

describe('desiredState', () => {
  it('explains every entitlement with the rule and bundle that granted it', () => {
    const d = desiredState({ worker: worker({ department: 'Finance', jobCode: 'FIN-SYSADMIN' }), status: 'active' }, policy);
    const netsuite = d.targets.find((t) => t.target === 'netsuite')!;
    expect(netsuite.account).toBe('enabled');
    expect(netsuite.entitlements).toEqual([
      { type: 'role', value: 'Employee Center', bundle: 'finance', rule: 'finance', privileged: false },
      { type: 'role', value: 'Administrator', bundle: 'finance-system-admin', rule: 'finance-system-admins', privileged: true },
      { type: 'group', value: 'SOX Controls', bundle: 'finance-system-admin', rule: 'finance-system-admins', privileged: true },
    ]);
  });

  it('gives an engineer no finance system account and a contractor no employee groups', () => {
    const d = desiredState({ worker: worker({ employmentType: 'contractor' }), status: 'active' }, policy);
    expect(d.targets.find((t) => t.target === 'netsuite')!.account).toBe('disabled');
    expect(d.targets[0]!.entitlements.map((e) => e.value)).toEqual(['All Staff', 'Contractors', 'Engineering', 'GitHub Users']);
  });

  it('gives time-bound bundles an expiry and drops them once expired', () => {
    const sre = worker({ jobCode: 'SRE-3' });
    const d = desiredState({ worker: sre, status: 'active' }, policy, { now: '2026-12-01T00:00:00Z', grantedAt: { 'production-access': '2026-11-01T00:00:00Z' } });
    const prod = d.targets[0]!.entitlements.find((e) => e.value === 'Production Access')!;
    expect(prod.expiresAt).toBe('2027-01-30T00:00:00.000Z');
    const later = desiredState({ worker: sre, status: 'active' }, policy, { now: '2027-02-01T00:00:00Z', grantedAt: { 'production-access': '2026-11-01T00:00:00Z' } });
    expect(later.targets[0]!.entitlements.map((e) => e.value)).not.toContain('Production Access');
  });

  it('wants every account of a leaver disabled with nothing in it, and suspends only the IdP on leave', () => {
    const gone = desiredState({ worker: worker(), status: 'terminated' }, policy);
    expect(gone.targets.map((t) => [t.target, t.account, t.entitlements.length])).toEqual([
      ['okta', 'disabled', 0],
      ['slack', 'disabled', 0],
      ['netsuite', 'disabled', 0],
    ]);
    const leave = desiredState({ worker: worker(), status: 'on_leave' }, policy);
    expect(leave.targets.map((t) => t.account)).toEqual(['suspended', 'enabled', 'disabled']);
  });

  it('leaves a worker outside the pilot scope alone', () => {
    const d = desiredState({ worker: worker({ department: 'Legal' }), status: 'active' }, policy);
    expect(d.inScope).toBe(false);
    expect(d.targets).toEqual([]);
  });

  it('grants an exception bundle for a bounded time with its reason as provenance', () => {
    const d = desiredState({ worker: worker(), status: 'active' }, policy, {
      now: '2026-12-01T00:00:00Z',
      exceptionGrants: [{ bundle: 'sales', reason: 'CHG-42 handover', expiresAt: '2026-12-15T00:00:00Z' }],
    });
    const crm = d.targets[0]!.entitlements.find((e) => e.value === 'CRM Users')!;
    expect(crm).toMatchObject({ bundle: 'sales', rule: 'exception:CHG-42 handover', expiresAt: '2026-12-15T00:00:00Z' });
  });
});

describe('plan', () => {
  it('asks the manager once for all baseline bundles and the app owner for privileged ones (joiner)', () => {
    const d = desiredState({ worker: worker({ department: 'Finance', jobCode: 'FIN-SYSADMIN' }), status: 'active' }, policy);
    const p = plan(d, {}, policy, { lifecycle: 'joiner' });
    expect(p.approvals.map((a) => [a.id, a.approverRole, a.approvers, a.bundles])).toEqual([
      ['baseline', 'manager', [], ['all-staff', 'employees', 'finance']],
      ['bundle:finance-system-admin', 'appOwner', ['controller@acme.example'], ['finance-system-admin']],
    ]);
    expect(p.targets.map((t) => t.target)).toEqual(['okta', 'slack', 'netsuite']);
    expect(p.targets[0]!.steps[0]).toMatchObject({ op: 'create', approval: { mode: 'required', request: 'baseline' } });
  });

  it('removes old-role access before adding the new role for a mover, auto-approving baseline', () => {
    const d = desiredState({ worker: worker({ department: 'Sales', jobCode: 'SLS-1' }), status: 'active' }, policy);
    const actual = {
      okta: { id: 'u1', status: 'enabled' as const, entitlements: ['All Staff', 'Employees', 'Engineering', 'GitHub Users'].map((value) => ({ type: 'group' as const, value })) },
      slack: { id: 's1', status: 'enabled' as const, entitlements: [{ type: 'group' as const, value: 'all-hands' }, { type: 'role' as const, value: 'member' }, { type: 'group' as const, value: 'eng' }] },
    };
    const p = plan(d, actual, policy, { lifecycle: 'mover' });
    expect(p.targets[0]!.steps.map((s) => `${s.op} ${s.entitlement?.value}`)).toEqual([
      'removeEntitlement Engineering',
      'removeEntitlement GitHub Users',
      'addEntitlement Sales',
      'addEntitlement CRM Users',
    ]);
    expect(p.approvals).toEqual([]);
    expect(p.targets[0]!.steps.every((s) => s.approval.mode === 'auto')).toBe(true);
  });

  it('disables and revokes a leaver first without approval, and asks the manager about data handling', () => {
    const d = desiredState({ worker: worker(), status: 'terminated' }, policy);
    const actual = { okta: { id: 'u1', status: 'enabled' as const, entitlements: [{ type: 'group' as const, value: 'Engineering' }] } };
    const p = plan(d, actual, policy, { lifecycle: 'leaver' });
    expect(p.targets[0]!.steps.map((s) => [s.op, s.approval.mode])).toEqual([
      ['disable', 'none'],
      ['revokeSessions', 'none'],
      ['removeEntitlement', 'auto'],
    ]);
    expect(p.approvals.map((a) => [a.id, a.approverRole])).toEqual([
      ['data:mailbox-delegation', 'manager'],
      ['data:file-transfer', 'manager'],
    ]);
  });

  it('plans nothing for a target where two accounts claim the person, and says so', () => {
    const d = desiredState({ worker: worker(), status: 'active' }, policy);
    const two = [
      { id: 'a', status: 'enabled' as const, entitlements: [] },
      { id: 'b', status: 'enabled' as const, entitlements: [] },
    ];
    const p = plan(d, { okta: two }, policy, { lifecycle: 'mover' });
    expect(p.targets[0]).toMatchObject({ target: 'okta', conflict: ['a', 'b'], steps: [] });
  });

  it('asks the manager for baseline mover access when the policy says so', () => {
    const strict = withPolicy((doc) => (doc.approvals.moverBaseline = 'manager'));
    const d = desiredState({ worker: worker({ department: 'Sales' }), status: 'active' }, strict);
    const p = plan(d, { okta: { id: 'u', status: 'enabled', entitlements: [] } }, strict, { lifecycle: 'mover' });
    expect(p.approvals.map((a) => a.id)).toEqual(['baseline']);
  });
});

describe('applyDecisions', () => {
  it('withholds a rejected privileged bundle but keeps the rest of the run', () => {
    const d = desiredState({ worker: worker({ department: 'Finance', jobCode: 'FIN-SYSADMIN' }), status: 'active' }, policy);
    const decided = applyDecisions(d, new Set(['finance-system-admin']), {}, policy);
    const netsuite = decided.targets.find((t) => t.target === 'netsuite')!;
    expect(netsuite.entitlements.map((e) => e.value)).toEqual(['Employee Center']);
    expect(netsuite.account).toBe('enabled');
  });

  it('does not create an app account whose only justifying bundle was rejected', () => {
    const d = desiredState({ worker: worker({ department: 'Finance', jobCode: 'FIN-1' }), status: 'active' }, policy);
    const decided = applyDecisions(d, new Set(['finance']), {}, policy);
    expect(decided.targets.find((t) => t.target === 'netsuite')!.account).toBe('disabled');
  });

  it('never strips access the person already holds because a new request was rejected', () => {
    const d = desiredState({ worker: worker({ department: 'Finance', jobCode: 'FIN-SYSADMIN' }), status: 'active' }, policy);
    const actual = { netsuite: { id: 'n', status: 'enabled' as const, entitlements: [{ type: 'role' as const, value: 'Administrator' }] } };
    const decided = applyDecisions(d, new Set(['finance-system-admin']), actual, policy);
    expect(decided.targets.find((t) => t.target === 'netsuite')!.entitlements.map((e) => e.value)).toEqual(['Employee Center', 'Administrator']);
  });
});
