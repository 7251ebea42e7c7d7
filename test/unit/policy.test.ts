import { describe, expect, it } from 'vitest';
import { loadPolicyText } from '#core/policy-yaml';
import { ValidationError } from '#core/errors';
import { examplePolicy, examplePolicyDocument, withPolicy } from '../helpers/policy.ts';
import { stringify } from 'yaml';

function problems(mutate: (doc: Record<string, any>) => void): string[] {
  try {
    withPolicy(mutate);
  } catch (e) {
    if (e instanceof ValidationError) return e.issues;
    throw e;
  }
  throw new Error('expected the policy to be refused');
}

describe('access policy', () => {
  it('validates the shipped example and orders managed targets IdP first', () => {
    const p = examplePolicy();
    expect(p.idp.name).toBe('okta');
    expect(p.managedTargets.map((t) => t.name)).toEqual(['okta', 'slack', 'netsuite']);
    expect(p.mappingVersion).toMatch(/^[0-9a-f]{64}$/);
  });

  it('has a mappingVersion that ignores key order, comments and whitespace but not content', () => {
    const doc = examplePolicyDocument();
    const reordered = Object.fromEntries(Object.entries(doc).reverse());
    const again = loadPolicyText(`# a comment\n${stringify(reordered, { indent: 4 })}`);
    expect(again.mappingVersion).toBe(examplePolicy().mappingVersion);
    const changed = withPolicy((d) => d.bundles.engineering.targets.okta.push({ group: 'Jira Users' }));
    expect(changed.mappingVersion).not.toBe(examplePolicy().mappingVersion);
  });

  it('refuses a target with two owners (the same app twice) and a duplicate target name', () => {
    expect(
      problems((d) => d.targets.push({ ...d.targets[1], name: 'slack-2', app: 'slack' })),
    ).toContain('targets[3]: app "slack" is already target "slack" — one target must have exactly one owner');
    expect(problems((d) => d.targets.push({ ...d.targets[2] }))).toContain('targets[3].name: target "netsuite" is defined twice');
  });

  it('refuses to manage a target another system provisions', () => {
    expect(problems((d) => (d.targets[1].provisionedBy = 'okta'))).toContain(
      'bundles.all-staff.targets.slack: target is provisioned by okta; jml will not manage a target it does not own',
    );
  });

  it('refuses an IdP app assignment that races a SCIM target jml provisions', () => {
    expect(problems((d) => d.bundles['all-staff'].targets.okta.push({ app: 'Slack' }))).toContain(
      'bundles.all-staff.targets.okta[1]: app "Slack" is also provisioned by jml as target "slack" — two provisioning paths for one app',
    );
  });

  it('names unknown bundles, unknown targets, wrong entitlement types and bad values precisely', () => {
    const issues = problems((d) => {
      d.rules[0].grant.push('no-such-bundle');
      d.bundles.sales.targets.jira = [];
      d.bundles.sales.targets.okta.push({ license: 'E5' });
      d.company.timeZone = 'Mars/Olympus';
      d.targets[0].retentionDays = -1;
      d.bundles['production-access'].expiresAfter = '90 days';
    });
    expect(issues).toEqual(
      expect.arrayContaining([
        'company.timeZone: must be an IANA time zone like Europe/London',
        'targets[0].retentionDays: at least 0',
        'bundles.production-access.expiresAfter: must be an ISO 8601 duration like P90D or PT12H',
      ]),
    );
    const cross = problems((d) => {
      d.rules[0].grant.push('no-such-bundle');
      d.bundles.sales.targets.jira = [];
      d.bundles.sales.targets.okta.push({ license: 'E5' });
    });
    expect(cross).toEqual(
      expect.arrayContaining([
        'rules[0].grant[1]: no such bundle "no-such-bundle"',
        'bundles.sales.targets.jira: no such target',
        'bundles.sales.targets.okta[2]: okta targets take group or app, not license',
      ]),
    );
  });

  it('requires exactly one identity provider', () => {
    expect(problems((d) => d.targets.push({ ...d.targets[0], name: 'entra', kind: 'entra', app: 'entra' }))).toContain(
      'targets: exactly one identity provider (okta or entra) is required, found 2',
    );
  });

  it('takes a rate limit on the identity provider only, and says what is wrong with one', () => {
    const slack = (d: any) => d.targets.findIndex((t: { name: string }) => t.name === 'slack');
    expect(withPolicy((d) => (d.targets[0].rateLimit = { requestsPerMinute: 600, burst: 60 })).idp.rateLimit).toEqual({ requestsPerMinute: 600, burst: 60 });
    expect(problems((d) => (d.targets[slack(d)].rateLimit = { requestsPerMinute: 100 }))).toEqual([
      `targets[${slack(examplePolicyDocument())}].rateLimit: only the identity provider's calls are budgeted; remove it from "slack"`,
    ]);
    expect(problems((d) => (d.targets[0].rateLimit = { requestsPerMinute: 0 }))).toEqual(
      expect.arrayContaining([expect.stringMatching(/^targets\[0\]\.rateLimit\.requestsPerMinute: /)]),
    );
  });

  it('reports YAML syntax errors and duplicate keys instead of guessing', () => {
    expect(() => loadPolicyText('version: 1\nversion: 2\n')).toThrow(/yaml: Map keys must be unique/);
    expect(() => loadPolicyText('version: [1\n')).toThrow(/yaml:/);
  });
});
