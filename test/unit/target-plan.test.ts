import { describe, expect, it } from 'vitest';
import { planTarget } from '#core/target-plan';
import type { DesiredTarget } from '#core/access';

const caps = { suspend: true };
const desired = (over: Partial<DesiredTarget> = {}): DesiredTarget => ({
  target: 'okta',
  kind: 'okta',
  mode: 'enforce',
  account: 'enabled',
  entitlements: [{ type: 'group', value: 'Engineering', bundle: 'eng-baseline', rule: 'eng', privileged: false }],
  ...over,
});

describe('planTarget', () => {
  it('creates a missing account and then grants its entitlements', () => {
    expect(planTarget(desired(), null, caps).map((s) => s.op)).toEqual(['create', 'addEntitlement']);
  });

  it('disables and revokes a leaver before removing access', () => {
    const ops = planTarget(desired({ account: 'disabled', entitlements: [] }), {
      id: 'u1',
      status: 'enabled',
      entitlements: [{ type: 'group', value: 'Engineering' }],
    }, caps);
    expect(ops.map((s) => s.op)).toEqual(['disable', 'revokeSessions', 'removeEntitlement']);
  });

  it('maps suspend to disable on targets without a suspended state', () => {
    const ops = planTarget(desired({ account: 'suspended' }), {
      id: 'u1',
      status: 'enabled',
      entitlements: [{ type: 'group', value: 'Engineering' }],
    }, { suspend: false });
    expect(ops.map((s) => s.op)).toEqual(['disable', 'revokeSessions']);
  });
});
