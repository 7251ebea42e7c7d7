/**
 * The local runtime across a restart: the ledger, evidence and outbox were always kept; with a
 * target state folder the Okta and SCIM stand-ins keep their accounts too, so after a restart the
 * targets still match the ledger. Checked through the targets' own APIs (Okta's REST API with its
 * SSWS token, SCIM /Users with the bearer token) and a nightly reconciliation run over HTTP with
 * `jml reconcile --now`.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { seedDemoOrg } from '#local/demo-org';
import { startLocalServer, type LocalServer } from '#local/server';
import { startLocalStack, type LocalStack } from '#local/stack';
import { startGraphStandIn } from '#local/standins/graph';
import { startOktaStandIn } from '#local/standins/okta';
import { startScimStandIn } from '#local/standins/scim';
import { persistGraphStandIn, persistOktaStandIn, persistScimStandIn, StandInStateInvalid } from '#local/standins/persistence';
import { main } from '../../bin/cli.ts';
import { approvalMail, decideByEmail, hrEvent, MANAGERS, send, waitForStatus } from '../helpers/stack.ts';
import { worker } from '../helpers/policy.ts';

const tmp = mkdtempSync(join(tmpdir(), 'jml-restart-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let stack: LocalStack | undefined;
let server: LocalServer | undefined;
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  await server?.close();
  await stack?.close();
  server = undefined;
  stack = undefined;
  for (const c of closers.splice(0)) await c();
});

async function start(dir: string, options: { persistTargets?: boolean; fresh?: boolean } = {}) {
  stack = await startLocalStack({
    dataDir: join(dir, 'state'),
    ...(options.persistTargets === false ? {} : { targetStateDir: join(dir, 'state', 'targets') }),
    fresh: options.fresh,
    retryIntervalMs: 5,
  });
  server = await startLocalServer(stack);
  stack.deps.publicBaseUrl = server.url;
  vi.stubEnv('JML_URL', server.url);
  return stack;
}

async function stop() {
  await server?.close();
  await stack?.close();
  server = undefined;
  stack = undefined;
}

/** The person's Okta user as Okta's API returns it (search by employee number), with its groups. */
async function oktaUser(s: LocalStack, employeeId: string) {
  const { orgUrl, token } = (s.targetInfo() as { okta: { orgUrl: string; token: string } }).okta;
  const headers = { authorization: `SSWS ${token}`, accept: 'application/json' };
  const search = encodeURIComponent(`profile.employeeNumber eq "${employeeId}"`);
  const users = (await (await fetch(`${orgUrl}/api/v1/users?search=${search}`, { headers })).json()) as Array<{ id: string; status: string }>;
  if (users.length !== 1) return { count: users.length };
  const groups = (await (await fetch(`${orgUrl}/api/v1/users/${users[0]!.id}/groups`, { headers })).json()) as Array<{ profile: { name: string } }>;
  return { count: 1, id: users[0]!.id, status: users[0]!.status, groups: groups.map((g) => g.profile.name).sort() };
}

/** The person's user in a SCIM app, through the app's /Users filter. */
async function scimUser(s: LocalStack, app: string, employeeId: string) {
  const info = (s.targetInfo() as { scim: Array<{ name: string; baseUrl: string; token: string }> }).scim.find((x) => x.name === app)!;
  const filter = encodeURIComponent(`externalId eq "${employeeId}"`);
  const res = (await (await fetch(`${info.baseUrl}/Users?filter=${filter}`, { headers: { authorization: `Bearer ${info.token}` } })).json()) as {
    totalResults: number;
    Resources: Array<{ id: string; active: boolean; userName: string }>;
  };
  const u = res.Resources[0];
  return res.totalResults === 1 && u ? { count: 1, id: u.id, userName: u.userName, active: u.active } : { count: res.totalResults };
}

async function hireAda(s: LocalStack) {
  const accepted = await send(s, hrEvent('hire', worker({ startDate: '2026-10-01' })));
  const { mail } = await approvalMail(s, accepted.runId, 'baseline');
  expect((await decideByEmail(s, mail.links[0]!, 'approve')).statusCode).toBe(200);
  expect(await waitForStatus(s, accepted.runId, ['COMPLETED', 'EXCEPTION_OPEN', 'FAILED'])).toBe('COMPLETED');
  if (s.workflows.execution(accepted.runId)) await s.workflows.wait(accepted.runId);
  return accepted.runId;
}

/** `jml reconcile --now --json` against the running server: the nightly reconciliation's KPIs. */
async function reconcileNow(): Promise<Record<string, number>> {
  const out: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  const code = await main(['reconcile', '--now', '--json']);
  vi.mocked(console.log).mockRestore();
  expect(code).toBe(0);
  return JSON.parse(out.join('\n')).kpis;
}

const writesTo = (s: LocalStack) => ({
  okta: s.targets.okta!.requestLog.filter((r) => r.method !== 'GET').length,
  scim: Object.values(s.targets.scim).reduce((n, t) => n + t.requestLog.filter((r) => r.method !== 'GET').length, 0),
});

describe('local runtime restart', () => {
  it('keeps a hired person’s Okta and SCIM accounts, and the nightly reconcile after the restart finds nothing to fix', async () => {
    const dir = join(tmp, 'kept');
    let s = await start(dir);
    await seedDemoOrg(s, { workers: MANAGERS, strays: [] });
    await hireAda(s);
    const before = { okta: await oktaUser(s, 'E1001'), slack: await scimUser(s, 'slack', 'E1001') };
    expect(before.okta).toMatchObject({ count: 1, status: 'PROVISIONED', groups: ['All Staff', 'Employees', 'Engineering', 'Everyone', 'GitHub Users'] });
    expect(before.slack).toMatchObject({ count: 1, active: true });
    await stop();
    expect(existsSync(join(dir, 'state', 'targets', 'okta.json'))).toBe(true);
    expect(existsSync(join(dir, 'state', 'targets', 'scim', 'slack.json'))).toBe(true);

    s = await start(dir);
    // New servers, new throwaway tokens — the same accounts, with the same ids.
    expect(await oktaUser(s, 'E1001')).toEqual(before.okta);
    expect(await scimUser(s, 'slack', 'E1001')).toEqual(before.slack);
    expect(await scimUser(s, 'netsuite', 'E1001')).toEqual({ count: 0 });
    const person = await s.deps.ledger.getPerson('E1001');
    expect(person?.links.okta).toBe((before.okta as { id: string }).id);

    const kpis = await reconcileNow();
    expect(kpis).toMatchObject({ findings: 0, fixes: 0, orphanAccounts: 0, exceptionCount: 0 });
    expect(kpis.accountsManaged).toBeGreaterThanOrEqual(MANAGERS.length + 1);
    expect(writesTo(s)).toEqual({ okta: 0, scim: 0 }); // reconciling read, and wrote nothing

    // --fresh starts the targets over too.
    await stop();
    s = await start(dir, { fresh: true });
    expect(await oktaUser(s, 'E1001')).toEqual({ count: 0 });
    expect(await scimUser(s, 'slack', 'E1001')).toEqual({ count: 0 });
  });

  it('without a target state folder the stand-ins start empty and the reconcile after a restart has accounts missing (what the folder prevents)', async () => {
    const dir = join(tmp, 'not-kept');
    let s = await start(dir, { persistTargets: false });
    await seedDemoOrg(s, { workers: MANAGERS, strays: [] });
    await hireAda(s);
    await stop();
    expect(existsSync(join(dir, 'state', 'targets'))).toBe(false);

    s = await start(dir, { persistTargets: false });
    expect(await oktaUser(s, 'E1001')).toEqual({ count: 0 });
    const kpis = await reconcileNow();
    expect(kpis.findings).toBeGreaterThanOrEqual(MANAGERS.length + 1); // every person's accounts are missing
  });
});

describe('stand-in state files', () => {
  it('an org written in a burst of changes is saved in a few writes and reads back with new ids that do not collide', async () => {
    const path = join(tmp, 'okta-burst.json');
    const token = randomBytes(16).toString('hex');
    const first = persistOktaStandIn(await startOktaStandIn({ token, seed: { groups: [{ name: 'Engineering' }] } }), path, { debounceMs: 30 });
    closers.push(() => first.close());
    const groups: string[] = [];
    for (let i = 0; i < 200; i += 1) groups.push(first.state.addGroup({ name: `g${i}` }).id);
    await new Promise((r) => setTimeout(r, 80));
    expect(first.persistence.writes).toBeLessThanOrEqual(2);
    const saved = JSON.parse(readFileSync(path, 'utf8'));
    expect(saved.groups).toHaveLength(202); // Everyone, Engineering, 200 more
    expect(JSON.stringify(saved)).not.toContain(token);
    await first.close();
    closers.pop();

    const second = persistOktaStandIn(await startOktaStandIn({ token, seed: { groups: [{ name: 'Engineering' }, { name: 'Finance' }] } }), path);
    closers.push(() => second.close());
    expect(second.persistence.loaded).toBe(true);
    expect([...second.state.groups.keys()]).toEqual(expect.arrayContaining(groups));
    // A group the new seed names (a changed policy) is added; nothing is duplicated.
    expect([...second.state.groups.values()].filter((g) => g.profile.name === 'Engineering')).toHaveLength(1);
    expect(second.state.groupByName('Finance')).toBeDefined();
    const fresh = Array.from({ length: 50 }, (_, i) => second.state.addGroup({ name: `new${i}` }).id);
    expect(fresh.filter((id) => groups.includes(id))).toEqual([]);
  });

  it('a SCIM app keeps users written over its API', async () => {
    const path = join(tmp, 'scim-app.json');
    const token = randomBytes(16).toString('hex');
    const app = persistScimStandIn(await startScimStandIn({ name: 'app', token }), path);
    closers.push(() => app.close());
    const res = await fetch(`${app.url}/Users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
      body: JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'ada@acme.example', externalId: 'E1001', active: true }),
    });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; meta: { version: string } };
    await app.close();
    closers.pop();

    const again = persistScimStandIn(await startScimStandIn({ name: 'app', token }), path);
    closers.push(() => again.close());
    const read = await fetch(`${again.url}/Users/${created.id}`, { headers: { authorization: `Bearer ${token}` } });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ id: created.id, userName: 'ada@acme.example', active: true, meta: { version: created.meta.version } });
  });

  it('a Graph tenant keeps users, memberships, licences and its change sequence; an old delta token answers 410', async () => {
    const path = join(tmp, 'graph.json');
    const clientSecret = randomBytes(24).toString('base64url');
    const seed = { groups: [{ displayName: 'Engineering' }], skus: [{ skuPartNumber: 'ENTERPRISEPACK' }] };
    const tenant = persistGraphStandIn(await startGraphStandIn({ clientId: 'jml-app', clientSecret, seed }), path);
    closers.push(() => tenant.close());
    tenant.seed({
      users: [{ userPrincipalName: 'ada@acme.example', employeeId: 'E1001' }],
      memberships: [{ group: 'Engineering', user: 'ada@acme.example' }],
      licenses: [{ user: 'ada@acme.example', sku: 'ENTERPRISEPACK' }],
    });
    const token = async (base: string, tenantId: string) => {
      const res = await fetch(`${base}/${tenantId}/oauth2/v2.0/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'jml-app', client_secret: clientSecret, scope: 'https://graph.microsoft.com/.default' }),
      });
      return ((await res.json()) as { access_token: string }).access_token;
    };
    const first = await fetch(`${tenant.graphUrl}/users/delta`, { headers: { authorization: `Bearer ${await token(tenant.url, tenant.tenantId)}` } });
    const deltaLink = ((await first.json()) as { '@odata.deltaLink': string })['@odata.deltaLink'];
    const { id, seq } = { id: tenant.state.findUser('ada@acme.example')!.id, seq: tenant.state.seq };
    await tenant.close();
    closers.pop();

    const again = persistGraphStandIn(await startGraphStandIn({ clientId: 'jml-app', clientSecret, seed }), path);
    closers.push(() => again.close());
    expect(again.state.findUser('ada@acme.example')?.id).toBe(id);
    expect(again.state.groupNamesOf('ada@acme.example')).toEqual(['Engineering']);
    expect(again.state.licenseNamesOf('ada@acme.example')).toEqual(['ENTERPRISEPACK']);
    expect(again.state.seq).toBe(seq);
    const bearer = `Bearer ${await token(again.url, again.tenantId)}`;
    const user = await fetch(`${again.graphUrl}/users/${id}?$select=id,employeeId`, { headers: { authorization: bearer } });
    expect(await user.json()).toMatchObject({ id, employeeId: 'E1001' });
    const stale = await fetch(deltaLink.replace(tenant.graphUrl, again.graphUrl), { headers: { authorization: bearer } });
    expect(stale.status).toBe(410);
  });

  it('refuses a damaged state file, naming the file and the field', async () => {
    const path = join(tmp, 'okta-damaged.json');
    writeFileSync(path, JSON.stringify({ kind: 'okta', version: 1, everyoneGroupId: '00gX', users: [{ id: 'u1', status: 'ACTIVE', profile: { login: 'a@b' } }] }));
    const standIn = await startOktaStandIn({ token: randomBytes(16).toString('hex') });
    closers.push(() => standIn.close());
    let error: unknown;
    try {
      persistOktaStandIn(standIn, path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StandInStateInvalid);
    expect((error as Error).message).toContain(`${path}: users[0].profile.email: required`);
    expect((error as Error).message).toContain('--fresh');
    writeFileSync(path, '{ not json');
    expect(() => persistOktaStandIn(standIn, path)).toThrow(/okta-damaged\.json is not valid JSON/);
  });
});
