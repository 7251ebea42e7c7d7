/**
 * Deployment configuration: a clear synth-time error naming the file and the field for a missing
 * or wrong value and for a mismatch with the policy; and the variants an operator can choose
 * (Entra, COMPLIANCE Object Lock, WAF, HRIS allow-list, custom public URL) reach the template.
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '#aws/config';
import { DeployConfigError, loadDeployConfig, parseDeployConfig, readDeployConfigFile } from '../../lib/config.ts';
import { exampleConfig, synth, type Synthesized } from './synth.ts';

const withOverrides = (over: Record<string, unknown>) => ({ ...exampleConfig(), ...over });

describe('deployment configuration', () => {
  it('accepts the example as it ships', () => {
    const { config, policy } = readDeployConfigFile('example');
    expect(config.idp.kind).toBe(policy.idp.kind);
    expect(config.evidence).toEqual({ retentionDays: 2557, lockMode: 'GOVERNANCE' });
  });

  it('names every wrong field at once, with where it came from', () => {
    const raw = withOverrides({
      idp: { kind: 'okta', orgUrl: 'http://acme.okta.com' },
      mail: { from: 'not-an-address' },
      evidence: { retentionDays: 0, lockMode: 'LEGAL' },
      timeZone: 'Mars/Olympus',
      logRetentionDays: 42,
      itsm: { system: 'jira', baseUrl: 'http://acme.atlassian.net', serviceDeskId: 'IT', requestTypeId: '27' },
    });
    let message = '';
    try {
      parseDeployConfig(raw, 'config/deploy.prod.json');
    } catch (e) {
      expect(e).toBeInstanceOf(DeployConfigError);
      message = (e as Error).message;
    }
    expect(message).toMatch(/^config\/deploy\.prod\.json: /);
    for (const field of [
      'idp.orgUrl: must be an https:// URL',
      'mail.from: must be an email address',
      'evidence.retentionDays',
      'evidence.lockMode',
      'timeZone: must be an IANA time zone',
      'logRetentionDays: must be one of',
      'itsm.baseUrl: must be an https:// URL',
      'itsm.serviceDeskId: must be the numeric service desk id',
    ]) {
      expect(message).toContain(field);
    }
  });

  it('names a missing required section', () => {
    const { alarms: _dropped, ...raw } = exampleConfig() as Record<string, unknown>;
    expect(() => parseDeployConfig(raw, 'context jml')).toThrow('context jml: alarms: required');
  });

  it('refuses a configuration that does not fit the policy it deploys', () => {
    expect(() => parseDeployConfig(withOverrides({ idp: { kind: 'entra', tenantId: 'acme.example' } }), 'x')).toThrow(
      "idp.kind: is entra but the policy's IdP target okta is okta",
    );
    expect(() => parseDeployConfig(withOverrides({ scimApps: [{ name: 'slack', baseUrl: 'https://api.slack.com/scim/v2' }] }), 'x')).toThrow(
      "scimApps: no entry for the policy's SCIM target netsuite",
    );
    expect(() =>
      parseDeployConfig(
        withOverrides({
          scimApps: [
            { name: 'slack', baseUrl: 'https://a.example' },
            { name: 'netsuite', baseUrl: 'https://b.example' },
            { name: 'github', baseUrl: 'https://c.example' },
          ],
        }),
        'x',
      ),
    ).toThrow('scimApps: github is not a SCIM target jml provisions in the policy');
    expect(() => parseDeployConfig(withOverrides({ policyFile: 'config/nope.yaml' }), 'x')).toThrow('policyFile: config/nope.yaml does not exist');
  });

  it('reads the configuration named in the CDK context, or says how to give one', () => {
    expect(loadDeployConfig((k) => (k === 'config' ? 'example' : undefined)).source).toBe('config/deploy.example.json');
    expect(loadDeployConfig((k) => (k === 'jml' ? JSON.stringify(exampleConfig()) : undefined)).source).toBe('context jml');
    expect(() => loadDeployConfig(() => undefined)).toThrow('no deployment configuration: pass -c config=<name>');
    expect(() => loadDeployConfig((k) => (k === 'config' ? 'prod' : undefined))).toThrow('config/deploy.prod.json does not exist');
    expect(() => loadDeployConfig((k) => (k === 'config' ? '../etc/passwd' : undefined))).toThrow('is not a config name');
  });
});

describe('an Entra deployment with COMPLIANCE retention, WAF, an HRIS allow-list and a custom URL', () => {
  let s: Synthesized;
  let t: Template;
  beforeAll(() => {
    s = synth({
      policyFile: 'config/access-policy.entra.yaml',
      idp: { kind: 'entra', tenantId: '00000000-0000-4000-8000-000000000001', usageLocation: 'GB' },
      evidence: { retentionDays: 3650, lockMode: 'COMPLIANCE' },
      publicBaseUrl: 'https://access.acme.example/',
      api: { waf: true, hrisAllowedCidrs: ['203.0.113.0/24'] },
    });
    t = s.template;
  });
  afterAll(() => s?.cleanup());

  it('locks evidence in COMPLIANCE mode for the configured days', () => {
    t.hasResourceProperties('AWS::S3::Bucket', { ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 3650 } } } });
  });

  it('gives the connector functions the Entra tenant, and approval links the custom URL', () => {
    const env = t.toJSON().Resources[s.stack.getLogicalId(s.stack.functions.plan.node.defaultChild as never)].Properties.Environment.Variables;
    expect(env).toMatchObject({ [ENV.idpKind]: 'entra', [ENV.entraTenantId]: '00000000-0000-4000-8000-000000000001', [ENV.entraUsageLocation]: 'GB', [ENV.publicBaseUrl]: 'https://access.acme.example' });
    expect(env).not.toHaveProperty(ENV.oktaOrgUrl);
    t.hasResourceProperties('AWS::SecretsManager::Secret', { Name: 'Jml/entra-app-credentials' });
  });

  it('attaches a WAF web ACL to the stage', () => {
    t.hasResourceProperties('AWS::WAFv2::WebACL', {
      Scope: 'REGIONAL',
      Rules: [
        Match.objectLike({ Name: 'rate-per-ip', Action: { Block: {} }, Statement: { RateBasedStatement: Match.objectLike({ AggregateKeyType: 'IP' }) } }),
        Match.objectLike({ Name: 'AWSManagedRulesAmazonIpReputationList' }),
        Match.objectLike({ Name: 'AWSManagedRulesKnownBadInputsRuleSet' }),
      ],
    });
    expect(Object.values(t.findResources('AWS::WAFv2::WebACLAssociation'))).toHaveLength(1);
  });

  it('denies the HRIS routes outside the allow-list and keeps the read routes to this account', () => {
    const api = Object.values(t.findResources('AWS::ApiGateway::RestApi'))[0] as { Properties: { Policy: { Statement: Array<Record<string, any>> } } };
    const statements = api.Properties.Policy.Statement;
    const deny = statements.find((st) => st.Effect === 'Deny')!;
    expect(deny.Condition).toEqual({ NotIpAddress: { 'aws:SourceIp': ['203.0.113.0/24'] } });
    expect(deny.Resource).toEqual('execute-api:/*/POST/hris/*');
    const reads = statements.find((st) => JSON.stringify(st.Resource).includes('GET/runs'))!;
    expect(JSON.stringify(reads.Principal)).toContain(':root');
    const open = statements.find((st) => st.Effect === 'Allow' && st.Principal?.AWS === '*')!;
    expect(JSON.stringify(open.Resource)).not.toMatch(/runs|exceptions/);
  });
});
