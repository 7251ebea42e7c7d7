/**
 * What ships, run as it ships: code built with the stack's esbuild settings (`lib/bundling.ts`)
 * and loaded by a plain `node` process, the way the Lambda runtime loads it — not the sources
 * vitest transforms. A resolution setting that breaks a CommonJS dependency in the bundle (the
 * Okta SDK's `require('node-fetch')` did) shows up here, not on the first deployed leaver.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOktaStandIn, type OktaStandIn } from '#local/standins/okta';
import { REPO_ROOT, entryFile, esbuildOptions, type BundleSettings } from '../../lib/bundling.ts';

const settings: BundleSettings = { idpKind: 'okta', policyFile: 'config/access-policy.yaml' };
const out = mkdtempSync(join(tmpdir(), 'jml-bundles-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

async function bundle(entry: string, name: string): Promise<{ file: string; meta: Metafile }> {
  const file = join(out, name, 'index.mjs');
  const r = await build(esbuildOptions(settings, entry, file));
  return { file, meta: r.metafile! };
}

const carriesOktaSdk = (meta: Metafile) => Object.keys(meta.inputs).some((p) => p.includes('node_modules/@okta/okta-sdk-nodejs/'));

describe('the Okta connector as bundled', () => {
  let okta: OktaStandIn;
  let file: string;
  const token = randomBytes(24).toString('base64url');

  beforeAll(async () => {
    okta = await startOktaStandIn({ token, seed: { groups: [{ name: 'Engineering' }] } });
    file = (await bundle(join(REPO_ROOT, 'lambdas', 'connectors', 'okta.connector.ts'), 'okta-connector')).file;
  }, 60_000);
  afterAll(() => okta?.close());

  it('creates, finds, groups and disables a user on the Okta stand-in, and a repeated disable changes nothing', async () => {
    const profile = {
      employeeId: 'E1001',
      userName: 'ada@acme.example',
      email: 'ada@acme.example',
      givenName: 'Ada',
      familyName: 'Lovelace',
      displayName: 'Ada Lovelace',
      department: 'Engineering',
      jobCode: 'ENG2',
      location: 'London',
      employmentType: 'employee',
    };
    const script = `
      const { createOktaConnector } = await import(${JSON.stringify(file)});
      const c = createOktaConnector({ name: 'okta', orgUrl: ${JSON.stringify(okta.url)}, token: process.env.OKTA_TOKEN, maxRetries: 0 });
      const created = await c.createAccount(${JSON.stringify(profile)}, { enabled: true });
      const found = await c.findAccounts({ employeeId: 'E1001' });
      const grouped = await c.addEntitlement(created.account.id, { type: 'group', value: 'Engineering' });
      const disabled = await c.setStatus(created.account.id, 'disabled');
      const again = await c.setStatus(created.account.id, 'disabled');
      process.stdout.write(JSON.stringify({ id: created.account.id, found: found.map((a) => a.id), changed: [created.change.changed, grouped.changed, disabled.changed, again.changed] }), () => process.exit(0));`;
    // Asynchronous: the stand-in in this process answers the child.
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], {
      env: { PATH: process.env.PATH ?? '', OKTA_TOKEN: token },
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
    const result = JSON.parse(stdout) as { id: string; found: string[]; changed: boolean[] };
    expect(result.found).toEqual([result.id]);
    expect(result.changed).toEqual([true, true, true, false]);
    const user = okta.state.findUser(result.id)!;
    expect(user.profile).toMatchObject({ login: 'ada@acme.example', employeeNumber: 'E1001' });
    expect(user.status).toBe('DEPROVISIONED');
    expect(okta.state.groupByName('Engineering')).toBeDefined();
    expect([...okta.state.memberships.get(okta.state.groupByName('Engineering')!.id)!]).toContain(result.id);
  }, 60_000);
});

describe('what the bundles carry', () => {
  it('the reconciliation start only reads what the targets are: no Okta SDK in its bundle; converge carries it', async () => {
    const [start, converge] = await Promise.all([bundle(entryFile('reconcile-start'), 'reconcile-start'), bundle(entryFile('converge'), 'converge')]);
    expect(carriesOktaSdk(start.meta)).toBe(false);
    expect(carriesOktaSdk(converge.meta)).toBe(true);
    // node-fetch's whatwg-url is replaced by Node's URL (lib/bundling.ts): no tr46 tables.
    expect(Object.keys(converge.meta.inputs).filter((p) => /node_modules\/(whatwg-url|tr46)\//.test(p))).toEqual([]);
  }, 60_000);
});
