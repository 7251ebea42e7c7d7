/**
 * The Entra connector (real Microsoft Graph client, over https on loopback) against the Graph
 * stand-in. TLS verification is on: the stand-in's certificate is trusted through the throwaway
 * CA that test/global-setup.ts puts in NODE_EXTRA_CA_CERTS before the workers start.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DesiredTarget, Entitlement } from '#core/access';
import type { AccountProfile } from '#connectors/connector';
import { converge } from '#connectors/converge';
import { createEntraConnector, type EntraConnector, type EntraConnectorConfig } from '#connectors/entra.connector';
import { startGraphStandIn, type GraphSeed, type GraphStandIn } from '#local/standins/graph';
import { ensureLocalTls } from '#local/standins/tls';

const DOMAIN = 'contoso.example';

const baseSeed = (): GraphSeed => ({
  groups: [{ displayName: 'All Staff' }, { displayName: 'Engineering' }, { displayName: 'Finance' }],
  skus: [{ skuPartNumber: 'ENTERPRISEPACK', prepaidUnits: 10 }, { skuPartNumber: 'EMS', prepaidUnits: 10 }],
});

function profile(over: Partial<AccountProfile> = {}): AccountProfile {
  return {
    employeeId: 'E1001',
    userName: `ada.lovelace@${DOMAIN}`,
    email: `ada.lovelace@${DOMAIN}`,
    givenName: 'Ada',
    familyName: 'Lovelace',
    displayName: 'Ada Lovelace',
    department: 'Engineering',
    jobCode: 'ENG2',
    location: 'London',
    employmentType: 'employee',
    ...over,
  };
}

const ent = (type: Entitlement['type'], value: string): Entitlement => ({
  type,
  value,
  bundle: 'baseline-engineering',
  rule: 'dept-engineering',
  privileged: false,
});

function desired(account: DesiredTarget['account'], entitlements: Entitlement[]): DesiredTarget {
  return { target: 'entra', kind: 'entra', mode: 'enforce', account, entitlements };
}

let graph: GraphStandIn;
let clientSecret: string;

async function start(seed: GraphSeed = baseSeed(), extra: Partial<Parameters<typeof startGraphStandIn>[0]> = {}) {
  clientSecret = randomBytes(24).toString('base64url');
  graph = await startGraphStandIn({ clientId: 'jml-app', clientSecret, seed, verifiedDomains: [DOMAIN], ...extra });
}

function connector(over: Partial<EntraConnectorConfig> = {}): EntraConnector {
  return createEntraConnector({
    name: 'entra',
    tenantId: graph.tenantId,
    clientId: 'jml-app',
    clientSecret,
    authorityHost: graph.url,
    graphBaseUrl: graph.url,
    customHosts: ['127.0.0.1'],
    domain: DOMAIN,
    usageLocation: 'GB',
    retryBaseDelayMs: 10,
    requestTimeoutMs: 3_000,
    ...over,
  });
}

/** Graph writes served since `from` (batch POSTs carry only reads here). */
function writesSince(from: number) {
  return graph.operations.slice(from).filter((o) => o.method !== 'GET' && o.path !== '/$batch' && o.path !== '/v1.0/$batch');
}

const graphCalls = () => graph.requestLog.filter((r) => r.path.startsWith('/v1.0/'));

beforeEach(async () => {
  await start();
});

afterEach(async () => {
  await graph.close();
});

describe('transport: https, tokens, governor', () => {
  it('serves a certificate that only the local CA vouches for (verification stays on)', async () => {
    expect(process.env.NODE_TLS_REJECT_UNAUTHORIZED).not.toBe('0');
    expect(process.env.NODE_EXTRA_CA_CERTS).toBeTruthy();
    expect(graph.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const attempt = (ca?: string[]) =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(`${graph.url}/v1.0/users`, ca ? { ca } : {}, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    // Default trust (public roots + NODE_EXTRA_CA_CERTS): the handshake succeeds; Graph wants a token.
    expect(await attempt()).toBe(401);
    // Public roots only: the same certificate is refused.
    await expect(attempt([...rootCertificates])).rejects.toMatchObject({
      code: expect.stringMatching(/^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/),
    });
    // The workers trust the throwaway CA (alone, or added to the caller's own extra bundle).
    const trusted = readFileSync(process.env.NODE_EXTRA_CA_CERTS!, 'utf8');
    expect(trusted).toContain(readFileSync(ensureLocalTls().caPath, 'utf8').trim());
  });

  it('caches the client-credentials token and sends every call through the governor', async () => {
    graph.seed({ users: [{ userPrincipalName: `u1@${DOMAIN}`, employeeId: 'E1' }] });
    const entra = connector();
    const [account] = await entra.findAccounts({ employeeId: 'E1' });
    await entra.getAccount(account!.id);
    await entra.setStatus(account!.id, 'disabled');
    await entra.setStatus(account!.id, 'disabled');
    expect(graph.tokensIssued).toBe(1);
    expect(entra.stats().tokenRequests).toBe(1);
    // Every HTTP request the stand-in saw (token + Graph) went through the governor.
    expect(entra.stats().governor.calls).toBe(graph.requestLog.length);
    expect(graph.requestLog.every((r) => r.clientRequestId || r.path.endsWith('/token'))).toBe(true);
  });

  it('gets a new token once when Graph refuses the cached one', async () => {
    graph.seed({ users: [{ userPrincipalName: `u1@${DOMAIN}`, employeeId: 'E1' }] });
    const entra = connector();
    await entra.findAccounts({ employeeId: 'E1' });
    graph.revokeTokens();
    const accounts = await entra.findAccounts({ employeeId: 'E1' });
    expect(accounts).toHaveLength(1);
    expect(graph.tokensIssued).toBe(2);
    expect(graph.requestLog.filter((r) => r.status === 401)).toHaveLength(1);
  });

  it('a refused token refresh in the middle of a call keeps its type and status', async () => {
    graph.seed({ users: [{ userPrincipalName: `u1@${DOMAIN}`, employeeId: 'E1' }] });
    const entra = connector();
    await entra.findAccounts({ employeeId: 'E1' });
    graph.revokeTokens();
    graph.controls.faults.push({ kind: 'status', status: 401, path: /\/oauth2\/v2\.0\/token$/ });
    const err = await rejection(entra.findAccounts({ employeeId: 'E1' }));
    expect(err).toMatchObject({ name: 'TargetRejected', status: 401 });
    expect(err.message).toMatch(/^entra: token request refused/);
    expect(err.message).not.toContain(clientSecret);
  });

  it('a wrong client secret is TargetRejected with the AADSTS reason and without the secret', async () => {
    const wrong = randomBytes(24).toString('base64url');
    const entra = connector({ clientSecret: wrong });
    const err = await rejection(entra.findAccounts({ employeeId: 'E1' }));
    expect(err).toMatchObject({ name: 'TargetRejected', status: 401 });
    expect(err.message).toMatch(/invalid_client: AADSTS7000215/);
    expect(err.message).not.toContain(wrong);
    expect(err.message).not.toContain(clientSecret);
    expect(graphCalls()).toHaveLength(0);
  });

  it('refuses a bad configuration up front, naming the field', () => {
    expect(() => connector({ domain: 'not a domain' })).toThrow(/entra config domain: a DNS domain/);
    expect(() => connector({ graphBaseUrl: 'http://127.0.0.1:1' })).toThrow(/entra config graphBaseUrl/);
    expect(() => connector({ customHosts: ['https://127.0.0.1:8443'] })).toThrow(/customHosts\.0: a host name only/);
  });
});

describe('joiner, leaver and idempotence (converge)', () => {
  const joinerTarget = desired('enabled', [ent('group', 'All Staff'), ent('group', 'Engineering'), ent('license', 'ENTERPRISEPACK')]);

  it('joiner converge creates and entitles the account; a second converge makes zero writes', async () => {
    const entra = connector();
    const first = await converge(entra, profile(), joinerTarget);
    expect(first.planned.map((p) => p.op)).toEqual(['create', 'addEntitlement', 'addEntitlement', 'addEntitlement']);
    expect(first.writes).toBe(4);
    for (const c of first.changes) expect(c.requestIds.length).toBeGreaterThan(0);

    const user = graph.state.findUser(`ada.lovelace@${DOMAIN}`)!;
    expect(user).toMatchObject({ employeeId: 'E1001', accountEnabled: true, usageLocation: 'GB', department: 'Engineering', employeeType: 'Employee' });
    expect(user.forceChangePasswordNextSignIn).toBe(true);
    expect(graph.state.groupNamesOf(user.id)).toEqual(['All Staff', 'Engineering']);
    expect(graph.state.licenseNamesOf(user.id)).toEqual(['ENTERPRISEPACK']);

    const mark = graph.operations.length;
    const second = await converge(entra, profile(), joinerTarget, { linkIds: [user.id] });
    expect(second.planned).toEqual([]);
    expect(second.writes).toBe(0);
    expect(writesSince(mark)).toEqual([]);
    // The re-read was one batched round trip (user + memberOf + licenseDetails + the employeeId query).
    expect(graph.requestLog.slice(-1)[0]).toMatchObject({ method: 'POST', path: '/v1.0/$batch' });
  });

  it('leaver converge disables, revokes sessions, then removes access', async () => {
    const entra = connector();
    const { accountId } = await converge(entra, profile(), joinerTarget);
    const before = graph.state.users.get(accountId!)!.signInSessionsValidFromDateTime;
    await new Promise((r) => setTimeout(r, 5));

    const leaver = await converge(entra, profile(), desired('disabled', []), { forceRevoke: true });
    expect(leaver.changes.map((c) => c.op)).toEqual(['disable', 'revokeSessions', 'removeEntitlement', 'removeEntitlement', 'removeEntitlement']);
    expect(leaver.changes.every((c) => c.changed)).toBe(true);
    const user = graph.state.users.get(accountId!)!;
    expect(user.accountEnabled).toBe(false);
    expect(Date.parse(user.signInSessionsValidFromDateTime)).toBeGreaterThan(Date.parse(before));
    expect(graph.state.groupNamesOf(user.id)).toEqual([]);
    expect(graph.state.licenseNamesOf(user.id)).toEqual([]);

    const again = await converge(entra, profile(), desired('disabled', []));
    expect(again.writes).toBe(0);
  });

  it('two accounts carrying one employeeId are a TargetConflict, and nothing is written', async () => {
    graph.seed({
      users: [
        { userPrincipalName: `ada@${DOMAIN}`, employeeId: 'E1001' },
        { userPrincipalName: `ada.l@${DOMAIN}`, employeeId: 'E1001' },
      ],
    });
    const entra = connector();
    const mark = graph.operations.length;
    const err = await rejection(converge(entra, profile(), joinerTarget));
    expect(err).toMatchObject({ name: 'TargetConflict' });
    const ids = [...graph.state.users.values()].map((u) => u.id).sort();
    expect([...(err.accountIds as string[])].sort()).toEqual(ids);
    expect(writesSince(mark)).toEqual([]);
  });

  it('a retried create adopts the account only when it carries the same employeeId', async () => {
    graph.seed({ users: [{ userPrincipalName: `ada.lovelace@${DOMAIN}`, employeeId: 'E1001' }] });
    const entra = connector();
    const same = await entra.createAccount(profile(), { enabled: true });
    expect(same.change.changed).toBe(false);
    expect(same.account.correlationKey).toBe('E1001');
    const clash = await rejection(entra.createAccount(profile({ employeeId: 'E2002' }), { enabled: true }));
    expect(clash).toMatchObject({ name: 'TargetConflict' });
    expect(graph.state.users.size).toBe(1);
  });
});

describe('port operations', () => {
  it('findAccounts / getAccount read user, memberships and licenses', async () => {
    graph.seed({
      users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7', usageLocation: 'US', accountEnabled: false }],
      memberships: [{ group: 'Finance', user: `grace@${DOMAIN}` }],
      licenses: [{ user: `grace@${DOMAIN}`, sku: 'EMS' }],
    });
    const entra = connector();
    const [found] = await entra.findAccounts({ employeeId: 'E7' });
    const expected = {
      correlationKey: 'E7',
      userName: `grace@${DOMAIN}`,
      status: 'disabled',
      entitlements: [
        { type: 'group', value: 'Finance' },
        { type: 'license', value: 'EMS' },
      ],
    };
    expect(found).toMatchObject(expected);
    expect(await entra.getAccount(found!.id)).toEqual(found);
    expect(await entra.findAccounts({ employeeId: "O'Brien" })).toEqual([]);
    await expect(entra.getAccount('00000000-0000-0000-0000-000000000000')).rejects.toMatchObject({ name: 'AccountNotFound' });
  });

  it('uses $batch: one account read is one round trip for three Graph operations', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const entra = connector();
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    await entra.getAccount(id); // warms the token
    const calls = graphCalls().length;
    const ops = graph.operations.length;
    await entra.getAccount(id);
    expect(graphCalls().length - calls).toBe(1);
    const served = graph.operations.slice(ops);
    expect(served.filter((o) => o.via === 'batch').map((o) => o.path).sort()).toEqual(
      [`/users/${id}`, `/users/${id}/licenseDetails`, `/users/${id}/memberOf`].sort(),
    );

    // With a stored link, correlation query + linked user + entitlements also share one round trip.
    const before = graphCalls().length;
    const found = await entra.findAccounts({ employeeId: 'E7', linkIds: [id] });
    expect(found).toHaveLength(1);
    expect(graphCalls().length - before).toBe(1);
  });

  it('a stale link id is ignored and the account is still found by employeeId', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const entra = connector();
    const found = await entra.findAccounts({ employeeId: 'E7', linkIds: ['11111111-2222-3333-4444-555555555555'] });
    expect(found.map((a) => a.userName)).toEqual([`grace@${DOMAIN}`]);
  });

  it('setStatus, revokeSessions and deleteAccount write only when needed', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    const entra = connector();
    expect(entra.capabilities.suspend).toBe(false);

    expect(await entra.setStatus(id, 'enabled')).toMatchObject({ op: 'enable', changed: false });
    const disabled = await entra.setStatus(id, 'suspended');
    expect(disabled).toMatchObject({ op: 'suspend', changed: true });
    expect(disabled.detail).toMatch(/no suspended state/);
    expect(graph.state.users.get(id)!.accountEnabled).toBe(false);
    expect(await entra.setStatus(id, 'disabled')).toMatchObject({ changed: false });
    expect(await entra.setStatus(id, 'enabled')).toMatchObject({ changed: true });

    const revoked = await entra.revokeSessions(id);
    expect(revoked).toMatchObject({ op: 'revokeSessions', changed: true });
    expect(revoked.requestIds).toHaveLength(1);
    expect(graph.requestLog.map((r) => r.requestId)).toContain(revoked.requestIds[0]);

    expect(await entra.deleteAccount(id)).toMatchObject({ op: 'delete', changed: true });
    expect(graph.state.users.has(id)).toBe(false);
    expect(await entra.deleteAccount(id)).toMatchObject({ op: 'delete', changed: false });
    await expect(entra.setStatus(id, 'disabled')).rejects.toMatchObject({ name: 'AccountNotFound' });
  });

  it('group removal goes through /$ref and never deletes the user', async () => {
    graph.seed({
      users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }],
      memberships: [
        { group: 'Finance', user: `grace@${DOMAIN}` },
        { group: 'All Staff', user: `grace@${DOMAIN}` },
      ],
    });
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    const finance = graph.state.findGroup('Finance')!.id;
    const entra = connector();

    const change = await entra.removeEntitlement(id, { type: 'group', value: 'Finance' });
    expect(change).toMatchObject({ op: 'removeEntitlement', changed: true, entitlement: { type: 'group', value: 'Finance' } });
    expect(graph.state.users.has(id)).toBe(true);
    expect(graph.state.groupNamesOf(id)).toEqual(['All Staff']);
    const deletes = graph.operations.filter((o) => o.method === 'DELETE');
    expect(deletes.map((o) => o.path)).toEqual([`/groups/${finance}/members/${id}/$ref`]);

    expect(await entra.removeEntitlement(id, { type: 'group', value: 'Finance' })).toMatchObject({ changed: false });
    expect(graph.operations.filter((o) => o.method === 'DELETE')).toHaveLength(1);

    // The trap is real in the stand-in: the same DELETE without /$ref deletes the user.
    const token = await fetchToken();
    const res = await fetch(`${graph.graphUrl}/groups/${graph.state.findGroup('All Staff')!.id}/members/${id}`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(204);
    expect(graph.state.users.has(id)).toBe(false);
  });

  it('adds a group membership once, and a duplicate add is a no-op', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    const entra = connector();
    expect(await entra.addEntitlement(id, { type: 'group', value: 'Engineering' })).toMatchObject({ changed: true });
    expect(await entra.addEntitlement(id, { type: 'group', value: 'Engineering' })).toMatchObject({ changed: false });
    expect(graph.operations.filter((o) => o.method === 'POST' && o.path.endsWith('/members/$ref'))).toHaveLength(1);
    await expect(entra.addEntitlement(id, { type: 'group', value: 'Nope' })).rejects.toMatchObject({ name: 'AccountNotFound' });
    await expect(entra.addEntitlement(id, { type: 'role', value: 'Global Administrator' })).rejects.toMatchObject({ name: 'PolicyViolation' });
  });

  it('assigns and removes licenses, setting usageLocation first when the user has none', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    const entra = connector();

    const added = await entra.addEntitlement(id, { type: 'license', value: 'ENTERPRISEPACK' });
    expect(added).toMatchObject({ changed: true });
    expect(added.detail).toMatch(/usageLocation set to GB/);
    expect(graph.state.users.get(id)!.usageLocation).toBe('GB');
    expect(graph.state.licenseNamesOf(id)).toEqual(['ENTERPRISEPACK']);
    expect(await entra.addEntitlement(id, { type: 'license', value: 'ENTERPRISEPACK' })).toMatchObject({ changed: false });

    expect(await entra.removeEntitlement(id, { type: 'license', value: 'ENTERPRISEPACK' })).toMatchObject({ changed: true });
    expect(graph.state.licenseNamesOf(id)).toEqual([]);
    expect(await entra.removeEntitlement(id, { type: 'license', value: 'ENTERPRISEPACK' })).toMatchObject({ changed: false });
    await expect(entra.addEntitlement(id, { type: 'license', value: 'NOT_A_SKU' })).rejects.toMatchObject({ name: 'AccountNotFound' });

    // Without a configured usageLocation the connector cannot assign, and says why.
    const bare = connector({ usageLocation: undefined });
    graph.state.users.get(id)!.usageLocation = null;
    await expect(bare.addEntitlement(id, { type: 'license', value: 'EMS' })).rejects.toThrow(/no usageLocation/);
  });

  it('issues a Temporary Access Pass whose secret appears only in the return value', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    const entra = connector();
    const since = new Date(Date.now() - 1000).toISOString();

    const tap = await entra.createTemporaryAccessPass(id, 1440);
    expect(tap.lifetimeInMinutes).toBe(1440);
    expect(createHash('sha256').update(tap.secret).digest('hex')).toBe(graph.state.taps.get(id)!.secretSha256);
    expect(JSON.stringify(tap.change)).not.toContain(tap.secret);
    expect(tap.change).toMatchObject({ accountId: id, changed: true });
    expect(tap.change.requestIds).toHaveLength(1);

    const evidence = await entra.auditEvidence(id, since);
    expect(evidence.map((e) => e.eventType)).toContain('Admin registered security info');
    expect(JSON.stringify(evidence)).not.toContain(tap.secret);

    const errors = await Promise.all([
      rejection(entra.createTemporaryAccessPass('00000000-0000-0000-0000-000000000000', 1440)),
      rejection(entra.createTemporaryAccessPass(id, 5)),
    ]);
    expect(errors.map((e) => e.name)).toEqual(['AccountNotFound', 'ValidationError']);
    for (const e of errors) {
      expect(`${e.message}${e.stack}`).not.toContain(tap.secret);
      expect(`${e.message}${e.stack}`).not.toContain(clientSecret);
    }
  });

  it('listAccounts pages through every user with entitlements; foreign cursors are refused', async () => {
    graph.seed({
      users: Array.from({ length: 7 }, (_, i) => ({ userPrincipalName: `p${i}@${DOMAIN}`, employeeId: `P${i}` })),
      memberships: [{ group: 'Engineering', user: `p3@${DOMAIN}` }],
    });
    const entra = connector({ pageSize: 3 });
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await entra.listAccounts(cursor);
      pages += 1;
      seen.push(...page.accounts.map((a) => a.correlationKey!));
      cursor = page.nextCursor;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual(['P0', 'P1', 'P2', 'P3', 'P4', 'P5', 'P6']);
    const p3 = (await entra.findAccounts({ employeeId: 'P3' }))[0]!;
    expect(p3.entitlements).toEqual([{ type: 'group', value: 'Engineering' }]);
    await expect(entra.listAccounts('https://evil.example/v1.0/users?$skiptoken=x')).rejects.toMatchObject({ name: 'ValidationError' });
  });

  it('auditEvidence returns the directory audit entries of the account since a time', async () => {
    const entra = connector();
    const since = new Date(Date.now() - 1000).toISOString();
    const { accountId } = await converge(entra, profile(), desired('enabled', [ent('group', 'Engineering'), ent('license', 'EMS')]));
    await entra.setStatus(accountId!, 'disabled');
    const evidence = await entra.auditEvidence(accountId!, since);
    expect(evidence.map((e) => e.eventType)).toEqual(['Add user', 'Add member to group', 'Change user license', 'Disable account']);
    expect(evidence.every((e) => e.targetIds.includes(accountId!) && e.outcome === 'success' && e.actor === 'jml provisioning')).toBe(true);
    expect(await entra.auditEvidence(accountId!, new Date(Date.now() + 60_000).toISOString())).toEqual([]);
  });
});

describe('failures', () => {
  it('a 429 storm with Retry-After ends in success, and the governor holds every caller back', async () => {
    graph.seed({ users: Array.from({ length: 4 }, (_, i) => ({ userPrincipalName: `s${i}@${DOMAIN}`, employeeId: `S${i}` })) });
    const ids = [...graph.state.users.keys()];
    const entra = connector({ maxConcurrent: 4 });
    await entra.getAccount(ids[0]!); // token first, so the storm hits Graph calls
    graph.controls.faults.push({ kind: 'throttle', path: /^\/v1\.0\/users\//, retryAfterSeconds: 1, times: 4 });
    const t0 = Date.now();
    const results = await Promise.all(ids.map((id) => entra.setStatus(id, 'disabled')));
    const elapsed = Date.now() - t0;
    expect(results.every((r) => r.changed)).toBe(true);
    expect([...graph.state.users.values()].every((u) => !u.accountEnabled)).toBe(true);
    expect(graph.requestLog.filter((r) => r.status === 429)).toHaveLength(4);
    expect(entra.stats().governor.throttled).toBeGreaterThanOrEqual(1);
    expect(elapsed).toBeGreaterThanOrEqual(950); // Retry-After: 1 was honoured
    expect(elapsed).toBeLessThan(5_000);
  });

  it('under a tenant rate limit, throttled requests inside $batch are resent until every read succeeds', async () => {
    graph.seed({
      users: Array.from({ length: 6 }, (_, i) => ({ userPrincipalName: `r${i}@${DOMAIN}`, employeeId: `R${i}` })),
      memberships: [{ group: 'Finance', user: `r5@${DOMAIN}` }],
    });
    const ids = [...graph.state.users.keys()];
    const entra = connector({ maxConcurrent: 2 });
    graph.controls.rateLimit = { limit: 10, windowMs: 1_000 };
    const accounts = await Promise.all(ids.map((id) => entra.getAccount(id)));
    expect(accounts.map((a) => a.id)).toEqual(ids);
    expect(accounts[5]!.entitlements).toEqual([{ type: 'group', value: 'Finance' }]);
    const innerThrottled = graph.operations.filter((o) => o.via === 'batch' && o.status === 429);
    expect(innerThrottled.length).toBeGreaterThan(0);
    expect(entra.stats().governor.throttled).toBeGreaterThan(0);
  });

  it('an unavailable token endpoint is TargetUnavailable after bounded retries', async () => {
    graph.controls.faults.push({ kind: 'status', status: 503, path: /\/oauth2\/v2\.0\/token$/ });
    const entra = connector({ maxRetries: 2 });
    const err = await rejection(entra.findAccounts({ employeeId: 'E1' }));
    expect(err).toMatchObject({ name: 'TargetUnavailable' });
    expect(err.message).toMatch(/token endpoint answered HTTP 503/);
    expect(graph.requestLog.filter((r) => r.path.endsWith('/token'))).toHaveLength(3);
    expect(graphCalls()).toHaveLength(0);
  });

  it('throttling beyond what may be waited out is TargetThrottled with the Retry-After', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const entra = connector({ maxRetryAfterSeconds: 30 });
    graph.controls.faults.push({ kind: 'throttle', path: /^\/v1\.0\/users/, retryAfterSeconds: 120 });
    const err = await rejection(entra.findAccounts({ employeeId: 'E7' }));
    expect(err).toMatchObject({ name: 'TargetThrottled', retryAfterSeconds: 120 });
    expect(graph.requestLog.filter((r) => r.status === 429)).toHaveLength(1);
  });

  it('a persistent 5xx is TargetUnavailable after bounded retries', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    const entra = connector({ maxRetries: 2 });
    graph.controls.faults.push({ kind: 'status', status: 503, path: /^\/v1\.0\/users\// });
    const err = await rejection(entra.setStatus(id, 'disabled'));
    expect(err).toMatchObject({ name: 'TargetUnavailable' });
    expect(err.message).toMatch(/service is temporarily unavailable/i);
    expect(graph.requestLog.filter((r) => r.status === 503)).toHaveLength(3);
    expect(graph.state.users.get(id)!.accountEnabled).toBe(true);
  });

  it('a transient 5xx on a write is retried and succeeds', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    const entra = connector();
    graph.controls.faults.push({ kind: 'status', status: 503, method: 'PATCH', times: 2 });
    expect(await entra.setStatus(id, 'disabled')).toMatchObject({ changed: true });
    expect(graph.state.users.get(id)!.accountEnabled).toBe(false);
  });

  it('timeouts and connection resets become TargetUnavailable naming the failure', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    const entra = connector({ requestTimeoutMs: 200, maxRetries: 1 });
    await entra.getAccount(id);

    graph.controls.faults.push({ kind: 'timeout', method: 'GET', path: /^\/v1\.0\/users\//, times: 2 });
    const timedOut = await rejection(entra.setStatus(id, 'disabled'));
    expect(timedOut).toMatchObject({ name: 'TargetUnavailable' });
    expect(timedOut.message).toMatch(/no response after 2 attempts \(timed out after 200 ms\)/);

    graph.controls.faults.push({ kind: 'reset', method: 'GET', path: /^\/v1\.0\/users\//, times: 2 });
    const reset = await rejection(entra.setStatus(id, 'disabled'));
    expect(reset).toMatchObject({ name: 'TargetUnavailable' });
    expect(reset.message).toMatch(/connection reset|network error/);

    // A timed-out POST is not resent (it may have been applied): one attempt only.
    graph.controls.faults.push({ kind: 'timeout', method: 'POST', path: /^\/v1\.0\/users$/ });
    const before = graph.requestLog.filter((r) => r.method === 'POST' && r.path === '/v1.0/users').length;
    await expect(entra.createAccount(profile(), { enabled: true })).rejects.toMatchObject({ name: 'TargetUnavailable' });
    expect(graph.requestLog.filter((r) => r.method === 'POST' && r.path === '/v1.0/users').length - before).toBe(1);
  });

  it('a Graph 4xx is TargetRejected with the Graph message, never the password', async () => {
    const entra = connector({ domain: 'unverified.example' });
    const err = await rejection(entra.createAccount(profile({ userName: 'ada' }), { enabled: true }));
    expect(err).toMatchObject({ name: 'TargetRejected', status: 400 });
    expect(err.message).toMatch(/verified domain names/);
    expect(err.message).toMatch(/request-id [0-9a-f-]{36}/);
  });
});

describe('reconciliation: users delta', () => {
  it('pages a full sync, then reports changes and removals; an expired delta link asks for a resync', async () => {
    graph.seed({ users: Array.from({ length: 5 }, (_, i) => ({ userPrincipalName: `d${i}@${DOMAIN}`, employeeId: `D${i}` })) });
    const entra = connector({ pageSize: 2 });

    const full: string[] = [];
    let round = await entra.listChanges();
    let pages = 1;
    full.push(...round.accounts.map((a) => a.correlationKey!));
    while (round.nextLink) {
      expect(round.deltaLink).toBeUndefined();
      round = await entra.listChanges(round.nextLink);
      pages += 1;
      full.push(...round.accounts.map((a) => a.correlationKey!));
    }
    expect(pages).toBe(3);
    expect(full.sort()).toEqual(['D0', 'D1', 'D2', 'D3', 'D4']);
    const deltaLink = round.deltaLink!;
    expect(deltaLink).toContain('$deltatoken=');

    const d1 = graph.state.findUser(`d1@${DOMAIN}`)!.id;
    const d2 = graph.state.findUser(`d2@${DOMAIN}`)!.id;
    await entra.setStatus(d1, 'disabled');
    await entra.deleteAccount(d2);
    const changes = await entra.listChanges(deltaLink);
    expect(changes.resyncRequired).toBe(false);
    expect(changes.accounts).toEqual([{ id: d1, correlationKey: 'D1', userName: `d1@${DOMAIN}`, status: 'disabled' }]);
    expect(changes.removedIds).toEqual([d2]);
    expect(changes.deltaLink).toBeDefined();

    // Eight days later (the stand-in clock): the link has expired. The access token has too,
    // so this also exercises the refresh on 401.
    graph.advanceClock(8 * 24 * 60 * 60 * 1000);
    const stale = await entra.listChanges(changes.deltaLink);
    expect(stale).toEqual({ accounts: [], removedIds: [], resyncRequired: true });
    expect(graph.requestLog.some((r) => r.status === 410)).toBe(true);
    const restart = await entra.listChanges();
    expect(restart.resyncRequired).toBe(false);
    expect(restart.accounts.length).toBeGreaterThan(0);
  });
});

describe('Graph stand-in fidelity', () => {
  it('answers like Graph: auth errors, $ref duplicates, batch limits and dependsOn', async () => {
    graph.seed({ users: [{ userPrincipalName: `grace@${DOMAIN}`, employeeId: 'E7' }] });
    const id = graph.state.findUser(`grace@${DOMAIN}`)!.id;
    const gid = graph.state.findGroup('Finance')!.id;

    const anon = await fetch(`${graph.graphUrl}/users`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await anon.json()).toMatchObject({ error: { code: 'InvalidAuthenticationToken' } });

    const token = await fetchToken();
    const h = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    const ref = { '@odata.id': `https://graph.microsoft.com/v1.0/directoryObjects/${id}` };
    const add = () => fetch(`${graph.graphUrl}/groups/${gid}/members/$ref`, { method: 'POST', headers: h, body: JSON.stringify(ref) });
    expect((await add()).status).toBe(204);
    const dup = await add();
    expect(dup.status).toBe(400);
    expect(((await dup.json()) as { error: { message: string } }).error.message).toMatch(/One or more added object references already exist/);

    const noDefault = await (await fetch(`${graph.graphUrl}/users/${id}`, { headers: h })).json();
    expect(noDefault).not.toHaveProperty('accountEnabled'); // v1.0 default property set

    const batch = (requests: unknown[]) =>
      fetch(`${graph.graphUrl}/$batch`, { method: 'POST', headers: h, body: JSON.stringify({ requests }) });
    const tooMany = await batch(Array.from({ length: 21 }, (_, i) => ({ id: `${i}`, method: 'GET', url: '/users' })));
    expect(tooMany.status).toBe(400);
    const dependent = (await (
      await batch([
        { id: '1', method: 'GET', url: '/users/does-not-exist' },
        { id: '2', method: 'PATCH', url: `/users/${id}`, dependsOn: ['1'], body: { accountEnabled: false }, headers: { 'Content-Type': 'application/json' } },
      ])
    ).json()) as { responses: Array<{ id: string; status: number }> };
    const byId = Object.fromEntries(dependent.responses.map((r) => [r.id, r.status]));
    expect(byId).toEqual({ '1': 404, '2': 424 });
    expect(graph.state.users.get(id)!.accountEnabled).toBe(true);
  });
});

/** The error a call fails with; fails the test if the call succeeds. */
async function rejection(call: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await call;
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

async function fetchToken(): Promise<string> {
  const res = await fetch(graph.tokenUrl, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: 'jml-app',
      client_secret: clientSecret,
      scope: 'https://graph.microsoft.com/.default',
    }),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}
