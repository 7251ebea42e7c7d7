/**
 * What ships, run as it ships: code built with the stack's esbuild settings (`lib/bundling.ts`)
 * and loaded by a plain `node` process, the way the Lambda runtime loads it — not the sources
 * vitest transforms. A resolution setting that breaks a CommonJS dependency in the bundle (the
 * Okta SDK's `require('node-fetch')` did) shows up here, not on the first deployed leaver.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePolicy } from '#core/policy';
import { loadPolicyText } from '#core/policy-yaml';
import { startGraphStandIn, type GraphStandIn } from '#local/standins/graph';
import { startOktaStandIn, type OktaStandIn } from '#local/standins/okta';
import { REPO_ROOT, entryFile, esbuildOptions, type BundleSettings } from '../../lib/bundling.ts';
import { FUNCTION_NAMES } from '../../lib/functions.ts';

const settings: BundleSettings = { idpKind: 'okta', policyFile: 'config/access-policy.yaml' };
const out = mkdtempSync(join(tmpdir(), 'jml-bundles-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

async function bundle(entry: string, name: string, s: BundleSettings = settings): Promise<{ file: string; meta: Metafile }> {
  const file = join(out, name, 'index.mjs');
  const r = await build(esbuildOptions(s, entry, file));
  return { file, meta: r.metafile! };
}

/** Runs an ES module body in a plain `node`, asynchronously (the stand-ins in this process answer it); its stdout as JSON. */
async function runNode<T>(script: string, env: Record<string, string>): Promise<T> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as T;
}

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
    const script = `
      const { createOktaConnector } = await import(${JSON.stringify(file)});
      const c = createOktaConnector({ name: 'okta', orgUrl: ${JSON.stringify(okta.url)}, token: process.env.OKTA_TOKEN, maxRetries: 0 });
      const created = await c.createAccount(${JSON.stringify(profile)}, { enabled: true });
      const found = await c.findAccounts({ employeeId: 'E1001' });
      const grouped = await c.addEntitlement(created.account.id, { type: 'group', value: 'Engineering' });
      const disabled = await c.setStatus(created.account.id, 'disabled');
      const again = await c.setStatus(created.account.id, 'disabled');
      process.stdout.write(JSON.stringify({ id: created.account.id, found: found.map((a) => a.id), changed: [created.change.changed, grouped.changed, disabled.changed, again.changed] }), () => process.exit(0));`;
    const result = await runNode<{ id: string; found: string[]; changed: boolean[] }>(script, { OKTA_TOKEN: token });
    expect(result.found).toEqual([result.id]);
    expect(result.changed).toEqual([true, true, true, false]);
    const user = okta.state.findUser(result.id)!;
    expect(user.profile).toMatchObject({ login: 'ada@acme.example', employeeNumber: 'E1001' });
    expect(user.status).toBe('DEPROVISIONED');
    expect(okta.state.groupByName('Engineering')).toBeDefined();
    expect([...okta.state.memberships.get(okta.state.groupByName('Engineering')!.id)!]).toContain(result.id);
  }, 60_000);
});

describe('the Entra connector as bundled (Entra deployment)', () => {
  let graph: GraphStandIn;
  let file: string;
  const clientSecret = randomBytes(24).toString('base64url');

  beforeAll(async () => {
    graph = await startGraphStandIn({ clientId: 'jml-app', clientSecret, verifiedDomains: ['acme.example'] });
    const entra: BundleSettings = { idpKind: 'entra', policyFile: 'config/access-policy.entra.yaml' };
    file = (await bundle(join(REPO_ROOT, 'lambdas', 'connectors', 'entra.connector.ts'), 'entra-connector', entra)).file;
  }, 60_000);
  afterAll(() => graph?.close());

  it('creates, finds and disables a user on the Graph stand-in, and a repeated disable changes nothing', async () => {
    const script = `
      const { createEntraConnector } = await import(${JSON.stringify(file)});
      const c = createEntraConnector({ name: 'entra', tenantId: ${JSON.stringify(graph.tenantId)}, clientId: 'jml-app', clientSecret: process.env.GRAPH_SECRET,
        authorityHost: ${JSON.stringify(graph.url)}, graphBaseUrl: ${JSON.stringify(graph.url)}, customHosts: ['127.0.0.1'], domain: 'acme.example', usageLocation: 'GB', maxRetries: 0 });
      const created = await c.createAccount(${JSON.stringify(profile)}, { enabled: true });
      const found = await c.findAccounts({ employeeId: 'E1001' });
      const disabled = await c.setStatus(created.account.id, 'disabled');
      const again = await c.setStatus(created.account.id, 'disabled');
      process.stdout.write(JSON.stringify({ id: created.account.id, found: found.map((a) => a.id), changed: [created.change.changed, disabled.changed, again.changed] }), () => process.exit(0));`;
    // The stand-in's TLS CA: test/global-setup.ts puts it in NODE_EXTRA_CA_CERTS.
    const result = await runNode<{ id: string; found: string[]; changed: boolean[] }>(script, {
      GRAPH_SECRET: clientSecret,
      ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
    });
    expect(result.found).toEqual([result.id]);
    expect(result.changed).toEqual([true, true, false]);
    const user = graph.state.user(result.id);
    expect(user).toMatchObject({ employeeId: 'E1001', accountEnabled: false });
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

  it('an Okta function carries the SDK\'s HTTP layer only: no generated API classes or models, no private-key crypto, under 1 MiB', async () => {
    const converge = await bundle(entryFile('converge'), 'converge-okta-layer');
    const inputs = Object.keys(converge.meta.inputs);
    const sdkFiles = inputs.filter((p) => p.includes('node_modules/@okta/okta-sdk-nodejs/')).map((p) => p.replace(/.*okta-sdk-nodejs\//, ''));
    expect(sdkFiles.filter((p) => p.startsWith('src/generated/') && !/^src\/generated\/(http\/|rxjsStub)/.test(p))).toEqual([]);
    expect(sdkFiles).not.toContain('src/client.js');
    const shimmed = /node_modules\/(node-jose|node-forge|njwt|rasha|eckles|form-data|mime-db)\//;
    expect(inputs.filter((p) => shimmed.test(p))).toEqual([]);
    const output = Object.values(converge.meta.outputs).find((o) => o.entryPoint)!;
    expect(output.bytes).toBeLessThanOrEqual(1024 * 1024); // 448 KiB today; 4,719 KiB with the SDK's Client
  }, 60_000);

  it('the policy comes parsed: no YAML parser in a function, and the bundled data compiles to the policy file\'s mapping version', async () => {
    const read = await bundle(entryFile('read-api'), 'read-api-policy');
    expect(Object.keys(read.meta.inputs).filter((p) => /node_modules\/yaml\//.test(p))).toEqual([]);
    const policyInput = Object.keys(read.meta.inputs).find((p) => /\.jml-build\/policy-[0-9a-f]{16}\.json$/.test(p));
    expect(policyInput).toBeDefined();
    const fromBuild = compilePolicy(JSON.parse(readFileSync(resolve(REPO_ROOT, policyInput!), 'utf8')));
    expect(fromBuild.mappingVersion).toBe(loadPolicyText(readFileSync(resolve(REPO_ROOT, 'config/access-policy.yaml'), 'utf8')).mappingVersion);
  }, 60_000);

  it('the packages replaced by shims are required by nothing but the Okta SDK files that never run with an API token, in any function', async () => {
    // Every function of both deployments, one esbuild build per deployment (what matters is who imports the shims).
    const deployments: BundleSettings[] = [settings, { idpKind: 'entra', policyFile: 'config/access-policy.entra.yaml' }];
    const importers = new Set<string>();
    for (const s of deployments) {
      const { outfile: _outfile, entryPoints: _entry, ...options } = esbuildOptions(s, '', '');
      const r = await build({ ...options, entryPoints: FUNCTION_NAMES.map(entryFile), outdir: join(out, `all-${s.idpKind}`), write: false, minify: false, sourcemap: false });
      for (const [path, input] of Object.entries(r.metafile!.inputs)) {
        for (const i of input.imports) if (i.path.includes('lambdas/aws/shims/')) importers.add(`${path.replace(/^node_modules\//, '')} → ${i.path.replace(/.*\/shims\//, '')}`);
      }
    }
    expect([...importers].sort()).toEqual([
      '@okta/okta-sdk-nodejs/src/dpop.js → okta-private-key-auth.ts',
      '@okta/okta-sdk-nodejs/src/http.js → form-data.cjs',
      '@okta/okta-sdk-nodejs/src/jwt.js → okta-private-key-auth.ts',
      'node-fetch/lib/index.js → whatwg-url.ts',
    ]);
  }, 60_000);

  it('the SDK code that would use a shim fails with a clear error, not a TypeError', async () => {
    // The SDK's DPoP proof (private-key OAuth) and multipart upload, bundled with the stack's settings.
    const probe = `
      import { generateDpopJwt } from '@okta/okta-sdk-nodejs/src/dpop.js';
      import { getPemAndJwk } from '@okta/okta-sdk-nodejs/src/jwt.js';
      import { Http } from '@okta/okta-sdk-nodejs/src/http.js';
      const outcome = async (f) => { try { await f(); return 'no error'; } catch (e) { return e.message; } };
      const http = new Http({ cacheMiddleware: null, requestExecutor: { fetch: () => { throw new Error('sent a request'); } } });
      process.stdout.write(JSON.stringify([
        await outcome(() => generateDpopJwt({ method: 'GET', url: 'https://x.okta.com/api/v1/users' }, { privateKey: { kty: 'RSA', n: 'x', e: 'AQAB' } }, 'at')),
        await outcome(() => getPemAndJwk('-----BEGIN PRIVATE KEY-----')),
        await outcome(() => http.postFormDataFile('https://x.okta.com/api/v1/brands/b/themes/t/logo', {}, Buffer.from('png'))),
      ]), () => process.exit(0));`;
    const file = join(out, 'shim-probe', 'index.mjs');
    const { entryPoints: _entry, ...options } = esbuildOptions(settings, '', file);
    await build({ ...options, stdin: { contents: probe, resolveDir: REPO_ROOT, sourcefile: 'shim-probe.mjs', loader: 'js' } });
    const dpop = 'DPoP/OAuth private-key auth is not supported by the jml Okta connector: use an API token';
    expect(await runNode<string[]>(`await import(${JSON.stringify(file)});`, {})).toEqual([
      dpop,
      dpop,
      'multipart uploads (Http.postFormDataFile) are not supported by the jml Okta connector',
    ]);
  }, 60_000);

  it('tree-shakes zod: the read API carries only the parts of it the code uses', async () => {
    // `import * as z from 'zod'` lets esbuild drop what is unused; `import { z }` pulls in all of
    // zod (~350 KiB) into every bundle.
    const read = await bundle(entryFile('read-api'), 'read-api');
    const output = Object.values(read.meta.outputs).find((o) => o.entryPoint)!;
    const zodBytes = Object.entries(output.inputs)
      .filter(([p]) => /node_modules\/zod\//.test(p))
      .reduce((n, [, i]) => n + i.bytesInOutput, 0);
    expect(zodBytes).toBeGreaterThan(0);
    expect(zodBytes / 1024).toBeLessThan(150); // ~105 KiB today; all of zod is ~460 KiB
  }, 60_000);
});

