/**
 * The Okta connector, through the real Okta SDK over loopback HTTP, against the Okta stand-in.
 * Nothing is mocked at function level: assertions read the stand-in's org state and its request
 * log (what a person looking at Okta, or at its System Log, would see).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DesiredTarget, Entitlement } from '#core/access';
import type { AccountProfile } from '#connectors/connector';
import { changesBeforeFailure, converge } from '#connectors/converge';
import { createOktaConnector, type OktaConnector } from '#connectors/okta.connector';
import { startOktaStandIn, type OktaRequestLogEntry, type OktaStandIn, type OktaUserStatus } from '#local/standins/okta';

let okta: OktaStandIn;
let token: string;
const open: OktaConnector[] = [];

function connect(over: Partial<Parameters<typeof createOktaConnector>[0]> = {}): OktaConnector {
  const c = createOktaConnector({ name: 'okta', orgUrl: okta.url, token, backoffBaseMs: 5, ...over });
  open.push(c);
  return c;
}

beforeEach(async () => {
  token = randomBytes(24).toString('base64url');
  okta = await startOktaStandIn({ token });
});

afterEach(async () => {
  for (const c of open.splice(0)) c.dispose();
  await okta.close();
});

const writesIn = (log: OktaRequestLogEntry[]) => log.filter((r) => r.method !== 'GET');
const since = (mark: number) => okta.requestLog.slice(mark);
const line = (r: OktaRequestLogEntry) => `${r.method} ${r.path} ${r.status}`;

function profile(over: Partial<AccountProfile> = {}): AccountProfile {
  return {
    employeeId: 'E100',
    userName: 'ada.lovelace@example.com',
    email: 'ada.lovelace@example.com',
    givenName: 'Ada',
    familyName: 'Lovelace',
    displayName: 'Ada Lovelace',
    department: 'Engineering',
    jobCode: 'SWE-3',
    location: 'London',
    employmentType: 'employee',
    managerEmail: 'grace.hopper@example.com',
    ...over,
  };
}

const grant = (type: Entitlement['type'], value: string): Entitlement => ({ type, value, bundle: 'eng-baseline', rule: 'eng', privileged: false });

function desired(over: Partial<DesiredTarget> = {}): DesiredTarget {
  return {
    target: 'okta',
    kind: 'okta',
    mode: 'enforce',
    account: 'enabled',
    entitlements: [grant('group', 'Engineering'), grant('group', 'All Staff'), grant('app', 'Slack')],
    ...over,
  };
}

function seedAda(over: { status?: OktaUserStatus; groups?: string[]; apps?: string[] } = {}) {
  const ids = okta.seed({
    groups: [{ name: 'Engineering' }, { name: 'All Staff' }, { name: 'Finance' }],
    apps: [{ label: 'Slack' }, { label: 'Jira' }],
    users: [
      {
        status: over.status ?? 'ACTIVE',
        profile: { login: 'ada.lovelace@example.com', firstName: 'Ada', lastName: 'Lovelace', employeeNumber: 'E100' },
        groups: over.groups ?? ['Engineering', 'All Staff'],
        apps: over.apps ?? ['Slack'],
      },
    ],
  });
  return { ...ids, ada: ids.users['ada.lovelace@example.com']! };
}

async function expectError(p: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  const e = await p.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: unknown) => err,
  );
  const err = e as Error & Record<string, unknown>;
  // Whatever failed, the token is nowhere in what a log or an exception record would keep.
  expect(`${err.message}\n${err.stack ?? ''}\n${JSON.stringify(err)}`).not.toContain(token);
  return err;
}

describe('reads', () => {
  it('finds accounts by profile.employeeNumber and by link id, once each, with OKTA_GROUP and app entitlements', async () => {
    const ids = okta.seed({
      groups: [{ name: 'Engineering' }, { name: 'All Staff' }, { name: 'AD Domain Users', type: 'APP_GROUP' }],
      apps: [{ label: 'Slack' }],
      users: [
        {
          profile: { login: 'ada.lovelace@example.com', employeeNumber: 'E100' },
          groups: ['Engineering', 'All Staff', 'AD Domain Users'],
          apps: ['Slack'],
        },
        { profile: { login: 'ada.old@example.com' }, status: 'DEPROVISIONED' },
        { profile: { login: 'someone.else@example.com', employeeNumber: 'E200' }, groups: ['Engineering'] },
      ],
    });
    const ada = ids.users['ada.lovelace@example.com']!;
    const old = ids.users['ada.old@example.com']!;
    const connector = connect();

    const found = await connector.findAccounts({ employeeId: 'E100', linkIds: [ada, old, '00uDoesNotExist00000'] });

    expect(found.map((a) => a.id).sort()).toEqual([ada, old].sort());
    const main = found.find((a) => a.id === ada)!;
    expect(main).toMatchObject({ correlationKey: 'E100', userName: 'ada.lovelace@example.com', status: 'enabled' });
    // Everyone (BUILT_IN) and the imported APP_GROUP are not the connector's to converge.
    expect(main.entitlements).toEqual(
      expect.arrayContaining([
        { type: 'group', value: 'Engineering' },
        { type: 'group', value: 'All Staff' },
        { type: 'app', value: 'Slack' },
      ]),
    );
    expect(main.entitlements).toHaveLength(3);
    const linked = found.find((a) => a.id === old)!;
    expect(linked.status).toBe('disabled');
    expect(linked.correlationKey).toBeUndefined();
    expect(await connector.findAccounts({ employeeId: 'E999' })).toEqual([]);
  });

  it('maps every Okta lifecycle status to the product status', async () => {
    const statuses: OktaUserStatus[] = ['STAGED', 'PROVISIONED', 'ACTIVE', 'RECOVERY', 'PASSWORD_EXPIRED', 'LOCKED_OUT', 'SUSPENDED', 'DEPROVISIONED'];
    const ids = okta.seed({ users: statuses.map((status) => ({ status, profile: { login: `${status.toLowerCase()}@example.com` } })) });
    const connector = connect();
    const mapped: Record<string, string> = {};
    for (const s of statuses) mapped[s] = (await connector.getAccount(ids.users[`${s.toLowerCase()}@example.com`]!)).status;
    expect(mapped).toEqual({
      STAGED: 'disabled',
      PROVISIONED: 'enabled',
      ACTIVE: 'enabled',
      RECOVERY: 'enabled',
      PASSWORD_EXPIRED: 'enabled',
      LOCKED_OUT: 'enabled',
      SUSPENDED: 'suspended',
      DEPROVISIONED: 'disabled',
    });
  });

  it('serves every read fresh from Okta (no response cache in a warm Lambda)', async () => {
    const { ada } = seedAda();
    const connector = connect();
    expect((await connector.getAccount(ada)).status).toBe('enabled');
    okta.state.setStatus(okta.state.users.get(ada)!, 'SUSPENDED'); // changed in the admin console
    okta.state.removeMember(okta.state.groupByName('Engineering')!.id, ada);
    const again = await connector.getAccount(ada);
    expect(again.status).toBe('suspended');
    expect(again.entitlements).not.toContainEqual({ type: 'group', value: 'Engineering' });
  });

  it('reports an unknown account as AccountNotFound', async () => {
    const err = await expectError(connect().getAccount('00uNoSuchUser0000000'));
    expect(err.name).toBe('AccountNotFound');
    expect(err.message).toMatch(/^okta: .*00uNoSuchUser0000000/);
  });

  it('lists every user a page at a time, DEPROVISIONED included, with correlation key and status', async () => {
    okta.seed({
      users: Array.from({ length: 430 }, (_, i) => ({
        profile: { login: `user${i}@example.com`, employeeNumber: `E${i}` },
        status: i === 7 ? ('DEPROVISIONED' as const) : ('ACTIVE' as const),
      })),
    });
    const connector = connect();
    const sizes: number[] = [];
    const seen = new Map<string, { correlationKey?: string; status: string }>();
    let cursor: string | undefined;
    do {
      const page = await connector.listAccounts(cursor);
      sizes.push(page.accounts.length);
      for (const a of page.accounts) {
        expect(a.entitlements).toEqual([]);
        seen.set(a.id, a);
      }
      cursor = page.nextCursor;
    } while (cursor);
    expect(sizes).toEqual([200, 200, 30]);
    expect(seen.size).toBe(430);
    const deprovisioned = [...seen.values()].filter((a) => a.status === 'disabled');
    expect(deprovisioned.map((a) => a.correlationKey)).toEqual(['E7']);
    expect([...seen.values()].every((a) => a.correlationKey?.startsWith('E'))).toBe(true);
  });

  it('lists the members of a group (1 000 a page, with correlation keys) and the users of an app (500 a page)', async () => {
    okta.seed({
      groups: [{ name: 'All Staff' }, { name: 'Empty' }],
      apps: [{ label: 'Slack' }],
      users: Array.from({ length: 1_250 }, (_, i) => ({
        profile: { login: `user${i}@example.com`, ...(i === 3 ? {} : { employeeNumber: `E${i}` }) },
        groups: i % 5 === 0 ? [] : ['All Staff'],
        apps: i < 600 ? ['Slack'] : [],
      })),
    });
    const connector = connect();
    const drain = async (e: { type: 'group' | 'app'; value: string }) => {
      const sizes: number[] = [];
      const members = new Map<string, string | undefined>();
      let cursor: string | undefined;
      do {
        const page = await connector.listEntitlementMembers(e, cursor);
        expect(page.unresolved).toBeUndefined();
        sizes.push(page.members.length);
        for (const m of page.members) members.set(m.accountId, m.correlationKey);
        cursor = page.nextCursor;
      } while (cursor);
      return { sizes, members };
    };
    const mark = okta.requestLog.length;
    const group = await drain({ type: 'group', value: 'All Staff' });
    expect(group.members.size).toBe(1_000);
    expect(group.sizes).toEqual([1000]);
    expect(group.members.get(okta.state.usersByEmployeeNumber('E1')[0]!.id)).toBe('E1');
    expect(group.members.has(okta.state.usersByEmployeeNumber('E5')[0]!.id)).toBe(false);
    expect([...group.members.values()].filter((k) => k === undefined)).toHaveLength(1); // user3 has no employeeNumber
    const groupCalls = since(mark).map((r) => `${r.method} ${r.path}`);
    expect(groupCalls.filter((c) => c.includes('/users'))).toEqual([`GET /api/v1/groups/${okta.state.groupByName('All Staff')!.id}/users`]);

    const mark2 = okta.requestLog.length;
    const app = await drain({ type: 'app', value: 'Slack' });
    expect(app.sizes).toEqual([500, 100]);
    expect(app.members.size).toBe(600);
    expect(since(mark2).filter((r) => r.path.endsWith('/users'))).toHaveLength(2);

    expect(await drain({ type: 'group', value: 'Empty' })).toEqual({ sizes: [0], members: new Map() });
    const missing = await connector.listEntitlementMembers({ type: 'group', value: 'Production Access' });
    expect(missing).toEqual({ members: [], unresolved: 'no OKTA_GROUP named "Production Access"' });
    // A group deleted after its id was cached: the 404 makes the connector look the name up again.
    const empty = okta.state.groupByName('Empty')!.id;
    okta.state.groups.delete(empty);
    okta.state.memberships.delete(empty);
    expect(await connector.listEntitlementMembers({ type: 'group', value: 'Empty' })).toEqual({ members: [], unresolved: 'no OKTA_GROUP named "Empty"' });
  });

  it('returns the System Log entries that name the account, since a given time', async () => {
    const { ada } = seedAda();
    const connector = connect();
    await connector.setStatus(ada, 'suspended');
    await new Promise((r) => setTimeout(r, 5));
    const mark = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 5));
    await connector.setStatus(ada, 'enabled');
    const revoke = await connector.revokeSessions(ada);

    const all = await connector.auditEvidence(ada, new Date(Date.now() - 60_000).toISOString());
    expect(all.map((e) => e.eventType)).toEqual(['user.lifecycle.suspend', 'user.lifecycle.unsuspend', 'user.session.clear']);
    expect(all.every((e) => e.targetIds.includes(ada) && e.outcome === 'SUCCESS' && e.actor)).toBe(true);
    // The entry names the Okta request that made the change, which the change record also holds.
    expect(all[2]!.summary).toContain(revoke.requestIds[0]!);

    const recent = await connector.auditEvidence(ada, mark);
    expect(recent.map((e) => e.eventType)).toEqual(['user.lifecycle.unsuspend', 'user.session.clear']);
  });
});

describe('account writes', () => {
  it('creates an enabled user with the HR attributes, activated without an email, with its request ids', async () => {
    const connector = connect();
    const { account, change } = await connector.createAccount(profile(), { enabled: true });

    const user = okta.state.users.get(account.id)!;
    expect(user.status).toBe('PROVISIONED'); // no password: the person finishes activation themselves
    expect(user.profile).toMatchObject({
      login: 'ada.lovelace@example.com',
      email: 'ada.lovelace@example.com',
      firstName: 'Ada',
      lastName: 'Lovelace',
      displayName: 'Ada Lovelace',
      employeeNumber: 'E100',
      department: 'Engineering',
      title: 'SWE-3',
      city: 'London',
      userType: 'employee',
      manager: 'grace.hopper@example.com',
    });
    expect(okta.state.activationEmails).toEqual([]);
    expect(account).toMatchObject({ status: 'enabled', correlationKey: 'E100', entitlements: [] });
    expect(change).toMatchObject({ target: 'okta', op: 'create', accountId: account.id, changed: true });
    const posts = okta.requestLog.filter((r) => r.method === 'POST');
    expect(posts.map((r) => `${r.path}${r.query}`)).toEqual([
      '/api/v1/users?activate=false',
      `/api/v1/users/${account.id}/lifecycle/activate?sendEmail=false`,
    ]);
    expect(change.requestIds).toEqual(posts.map((r) => r.requestId));
    // Okta answered the activation with a one-time token; the record keeps none of it.
    expect(JSON.stringify(change)).not.toMatch(/activation(Token|Url)|\/welcome\//);
  });

  it('adopts the user its own lost create made, instead of failing the joiner or making a second one', async () => {
    okta.lostResponses.push({ method: 'POST', path: /^\/api\/v1\/users$/ });
    const { account, change } = await connect().createAccount(profile(), { enabled: true });

    expect(okta.state.users.size).toBe(1);
    const user = okta.state.users.get(account.id)!;
    expect(user.profile.employeeNumber).toBe('E100');
    expect(user.status).toBe('PROVISIONED');
    expect(change).toMatchObject({ op: 'create', changed: true });
    expect(change.detail).toContain('adopted');
    const creates = okta.requestLog.filter((r) => r.method === 'POST' && r.path === '/api/v1/users');
    expect(creates.map((r) => [r.status, r.retryCount])).toEqual([
      [0, undefined], // applied, answer lost
      [400, 1], // the retry: login already exists
    ]);
  });

  it('still refuses a lost-and-retried create when the existing login belongs to someone else', async () => {
    okta.seed({ users: [{ profile: { login: 'ada.lovelace@example.com', employeeNumber: 'E555' } }] });
    okta.controls.faults.push({ kind: 'reset', method: 'POST', path: /^\/api\/v1\/users$/, times: 1 });
    const err = await expectError(connect().createAccount(profile(), { enabled: true }));
    expect(err.name).toBe('TargetConflict');
    expect(okta.state.users.size).toBe(1);
  });

  it('creates a disabled user STAGED', async () => {
    const { account } = await connect().createAccount(profile(), { enabled: false });
    expect(okta.state.users.get(account.id)!.status).toBe('STAGED');
    expect(account.status).toBe('disabled');
  });

  it('refuses to create over an existing login with TargetConflict naming the owner', async () => {
    const ids = okta.seed({ users: [{ profile: { login: 'ada.lovelace@example.com', employeeNumber: 'E555' } }] });
    const err = await expectError(connect().createAccount(profile(), { enabled: true }));
    expect(err.name).toBe('TargetConflict');
    expect(err.accountIds).toEqual([ids.users['ada.lovelace@example.com']]);
    expect(err.message).toContain('login ada.lovelace@example.com already belongs to');
    expect(okta.state.users.size).toBe(1);
  });

  it('walks the lifecycle with the right Okta calls and writes nothing when already there', async () => {
    const { ada } = seedAda({ apps: [] });
    const connector = connect();
    const status = () => okta.state.users.get(ada)!.status;

    expect(await connector.setStatus(ada, 'suspended')).toMatchObject({ op: 'suspend', changed: true });
    expect(status()).toBe('SUSPENDED');
    expect(await connector.setStatus(ada, 'enabled')).toMatchObject({ op: 'unsuspend', changed: true });
    expect(status()).toBe('ACTIVE');
    expect(await connector.setStatus(ada, 'disabled')).toMatchObject({ op: 'disable', changed: true });
    expect(status()).toBe('DEPROVISIONED');

    const mark = okta.requestLog.length;
    const again = await connector.setStatus(ada, 'disabled');
    expect(again).toMatchObject({ op: 'disable', changed: false });
    expect(writesIn(since(mark))).toEqual([]);
    // Deactivated already satisfies "suspended": Okta cannot suspend it, and nothing is written.
    expect(await connector.setStatus(ada, 'suspended')).toMatchObject({ changed: false });
    expect(writesIn(since(mark))).toEqual([]);

    expect(await connector.setStatus(ada, 'enabled')).toMatchObject({ op: 'enable', changed: true });
    expect(status()).toBe('ACTIVE');
    expect(okta.state.activationEmails).toEqual([]);
    expect(okta.state.eventsFor(ada).map((e) => e.eventType)).toEqual([
      'user.lifecycle.suspend',
      'user.lifecycle.unsuspend',
      'user.lifecycle.deactivate',
      'user.lifecycle.activate',
    ]);
  });

  it('treats a never-activated (STAGED) user as disabled already', async () => {
    const ids = okta.seed({ users: [{ status: 'STAGED', profile: { login: 'new@example.com' } }] });
    const id = ids.users['new@example.com']!;
    const change = await connect().setStatus(id, 'disabled');
    expect(change).toMatchObject({ changed: false });
    expect(change.detail).toContain('STAGED');
    expect(okta.state.users.get(id)!.status).toBe('STAGED');
  });

  it("passes on Okta's refusal of an invalid transition as TargetRejected with Okta's summary", async () => {
    const ids = okta.seed({ users: [{ status: 'PROVISIONED', profile: { login: 'pending@example.com' } }] });
    const err = await expectError(connect().setStatus(ids.users['pending@example.com']!, 'suspended'));
    expect(err.name).toBe('TargetRejected');
    expect(err.status).toBe(400);
    expect(err.message).toContain('E0000001 Api validation failed: status');
    expect(err.message).toContain('Cannot suspend a user with status PROVISIONED');
  });

  it('re-reads and decides again when what it read moments ago went stale', async () => {
    const { ada } = seedAda();
    const connector = connect();
    await connector.findAccounts({ employeeId: 'E100' }); // reads ACTIVE
    okta.state.setStatus(okta.state.users.get(ada)!, 'DEPROVISIONED'); // someone deactivates in the admin console

    const mark = okta.requestLog.length;
    const change = await connector.setStatus(ada, 'suspended');

    expect(change).toMatchObject({ op: 'suspend', changed: false });
    expect(since(mark).map(line)).toEqual([`POST /api/v1/users/${ada}/lifecycle/suspend 400`, `GET /api/v1/users/${ada} 200`]);
    expect(okta.state.users.get(ada)!.status).toBe('DEPROVISIONED');
  });

  it('revokes sessions and OAuth tokens', async () => {
    const { ada } = seedAda();
    expect(okta.state.sessions.get(ada)).toBe(1);
    const change = await connect().revokeSessions(ada);
    expect(change).toMatchObject({ op: 'revokeSessions', changed: true });
    expect(change.requestIds).toHaveLength(1);
    expect(okta.state.sessions.get(ada)).toBe(0);
    expect(okta.state.sessionsRevoked).toEqual([expect.objectContaining({ userId: ada, oauthTokens: true })]);
  });

  it('deletes: deactivates first, then deletes; a second delete changes nothing', async () => {
    const { ada } = seedAda();
    const connector = connect();
    const change = await connector.deleteAccount(ada);
    expect(change).toMatchObject({ op: 'delete', changed: true });
    expect(change.requestIds).toHaveLength(3); // read, deactivate, delete
    expect(okta.state.users.has(ada)).toBe(false);
    expect(okta.state.eventsFor(ada).map((e) => e.eventType)).toEqual([
      'application.user_membership.remove',
      'user.lifecycle.deactivate',
      'user.lifecycle.delete.initiated',
    ]);
    expect(await connector.deleteAccount(ada)).toMatchObject({ changed: false, detail: 'already deleted' });
  });
});

describe('entitlements', () => {
  it('adds and removes a group membership, writing only when needed, and leaves the user in place', async () => {
    const { ada, groups } = seedAda({ groups: ['All Staff'] });
    const connector = connect();
    const eng = { type: 'group', value: 'Engineering' } as const;

    expect(await connector.addEntitlement(ada, eng)).toMatchObject({ op: 'addEntitlement', changed: true, entitlement: eng });
    expect(okta.state.groupNamesOf(ada).sort()).toEqual(['All Staff', 'Engineering', 'Everyone']);

    let mark = okta.requestLog.length;
    expect(await connector.addEntitlement(ada, eng)).toMatchObject({ changed: false });
    expect(writesIn(since(mark))).toEqual([]);
    // The group name resolved once; it is not searched again.
    expect(since(mark).filter((r) => r.path === '/api/v1/groups')).toEqual([]);

    expect(await connector.removeEntitlement(ada, eng)).toMatchObject({ op: 'removeEntitlement', changed: true });
    const user = okta.state.users.get(ada)!;
    expect(user.status).toBe('ACTIVE');
    expect(okta.state.groupNamesOf(ada).sort()).toEqual(['All Staff', 'Everyone']);
    expect(okta.state.appLabelsOf(ada)).toEqual(['Slack']);
    expect(okta.state.memberships.get(groups['Engineering']!)!.has(ada)).toBe(false);

    mark = okta.requestLog.length;
    expect(await connector.removeEntitlement(ada, eng)).toMatchObject({ changed: false });
    expect(writesIn(since(mark))).toEqual([]);
  });

  it('names a group it cannot resolve, and hints at a near match', async () => {
    const { ada } = seedAda();
    const err = await expectError(connect().addEntitlement(ada, { type: 'group', value: 'engineering' }));
    expect(err.name).toBe('AccountNotFound');
    expect(err.message).toBe('okta: no OKTA_GROUP named "engineering" (did you mean "Engineering"?)');
    expect(okta.state.groupNamesOf(ada)).not.toContain('engineering');
  });

  it('treats two OKTA_GROUPs with one name as unresolvable rather than picking one', async () => {
    const { ada } = seedAda();
    okta.seed({ groups: [{ name: 'Finance' }] });
    const err = await expectError(connect().addEntitlement(ada, { type: 'group', value: 'Finance' }));
    expect(err.name).toBe('AccountNotFound');
    expect(err.message).toContain('"Finance" is ambiguous');
  });

  it('assigns and unassigns an app by label', async () => {
    const { ada } = seedAda({ apps: [] });
    const connector = connect();
    const jira = { type: 'app', value: 'Jira' } as const;
    expect(await connector.addEntitlement(ada, jira)).toMatchObject({ changed: true });
    expect(okta.state.appLabelsOf(ada)).toEqual(['Jira']);
    expect(await connector.addEntitlement(ada, jira)).toMatchObject({ changed: false });
    expect(await connector.removeEntitlement(ada, jira)).toMatchObject({ changed: true });
    expect(okta.state.appLabelsOf(ada)).toEqual([]);
    expect(await connector.removeEntitlement(ada, jira)).toMatchObject({ changed: false });
    expect(okta.state.eventsFor(ada).map((e) => e.eventType)).toEqual(['application.user_membership.add', 'application.user_membership.remove']);
  });

  it('refuses entitlement types Okta does not have', async () => {
    const { ada } = seedAda();
    const err = await expectError(connect().addEntitlement(ada, { type: 'license', value: 'E5' }));
    expect(err.name).toBe('PolicyViolation');
    expect(okta.requestLog).toEqual([]);
  });
});

describe('converge', () => {
  it('creates and grants a joiner, then a re-run makes no write at all', async () => {
    okta.seed({ groups: [{ name: 'Engineering' }, { name: 'All Staff' }], apps: [{ label: 'Slack' }] });
    const connector = connect();

    const first = await converge(connector, profile(), desired());
    expect(first.planned.map((p) => p.op)).toEqual(['create', 'addEntitlement', 'addEntitlement', 'addEntitlement']);
    expect(first.writes).toBe(4);
    const id = first.accountId!;
    expect(okta.state.groupNamesOf(id).sort()).toEqual(['All Staff', 'Engineering', 'Everyone']);
    expect(okta.state.appLabelsOf(id)).toEqual(['Slack']);

    const mark = okta.requestLog.length;
    const second = await converge(connector, profile(), desired());
    expect(second.planned).toEqual([]);
    expect(second.writes).toBe(0);
    expect(writesIn(since(mark))).toEqual([]);
    // A fresh instance (a new Lambda) reaches the same answer.
    const mark2 = okta.requestLog.length;
    expect((await converge(connect(), profile(), desired())).planned).toEqual([]);
    expect(writesIn(since(mark2))).toEqual([]);
  });

  it('a converge that fails part-way keeps its error (the workflow matches on its name) and says which writes it made first', async () => {
    okta.seed({ groups: [{ name: 'Engineering' }, { name: 'All Staff' }], apps: [{ label: 'Slack' }] });
    // The app assignment keeps failing: the account and its two groups are written before it.
    okta.controls.faults.push({ kind: 'status', status: 503, method: 'POST', path: /^\/api\/v1\/apps\/[^/]+\/users$/ });
    const err = await converge(connect({ maxRetries: 1 }), profile(), desired()).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('TargetUnavailable');
    const made = changesBeforeFailure(err);
    expect(made.map((c) => `${c.op} ${c.entitlement?.value ?? ''}`.trim())).toEqual(['create', 'addEntitlement Engineering', 'addEntitlement All Staff']);
    expect(made.every((c) => c.changed)).toBe(true);
    // An error from before any write carries none.
    expect(changesBeforeFailure(new Error('read failed'))).toEqual([]);
  });

  it('restricts a leaver first — deactivate, then end sessions — and only then removes access', async () => {
    const { ada } = seedAda({ groups: ['Engineering', 'All Staff'], apps: ['Slack'] });
    const connector = connect();
    const mark = okta.requestLog.length;

    const result = await converge(connector, profile(), desired({ account: 'disabled', entitlements: [] }), { forceRevoke: true });

    expect(result.planned.map((p) => p.op)).toEqual(['disable', 'revokeSessions', 'removeEntitlement', 'removeEntitlement', 'removeEntitlement']);
    const writes = writesIn(since(mark)).map(line);
    expect(writes.slice(0, 2)).toEqual([
      `POST /api/v1/users/${ada}/lifecycle/deactivate 200`,
      `DELETE /api/v1/users/${ada}/sessions 204`,
    ]);
    expect(writes.slice(2).every((w) => w.startsWith('DELETE /api/v1/groups/') || w.startsWith('DELETE /api/v1/apps/'))).toBe(true);
    const user = okta.state.users.get(ada)!;
    expect(user.status).toBe('DEPROVISIONED');
    expect(okta.state.sessions.get(ada)).toBe(0);
    expect(okta.state.groupNamesOf(ada)).toEqual(['Everyone']);
    expect(okta.state.appLabelsOf(ada)).toEqual([]);
    // Deactivation already deprovisioned the app: its removal is recorded, but unchanged.
    const appRemoval = result.changes.find((c) => c.entitlement?.type === 'app')!;
    expect(appRemoval.changed).toBe(false);
    // Reading once in findAccounts is enough: the writes did not re-read the user or its groups.
    expect(since(mark).filter((r) => r.method === 'GET').map((r) => r.path)).toEqual([
      '/api/v1/users',
      `/api/v1/users/${ada}/groups`,
      `/api/v1/users/${ada}/appLinks`,
      `/api/v1/apps/${okta.state.appByLabel('Slack')!.id}/users/${ada}`,
    ]);
  });

  it("a leaver's first step reads only the user: deactivate and end sessions need neither its groups nor its apps", async () => {
    const { ada } = seedAda({ groups: ['Engineering'], apps: ['Slack'] });
    const connector = connect();
    const mark = okta.requestLog.length;

    const result = await converge(connector, profile(), desired({ account: 'disabled', entitlements: [] }), {
      forceRevoke: true,
      onlyOps: ['disable', 'suspend', 'revokeSessions'],
      statusOnly: true,
    });

    expect(result.planned.map((p) => p.op)).toEqual(['disable', 'revokeSessions']);
    expect(since(mark).map(line)).toEqual([
      expect.stringMatching(/^GET \/api\/v1\/users 200$/),
      `POST /api/v1/users/${ada}/lifecycle/deactivate 200`,
      `DELETE /api/v1/users/${ada}/sessions 204`,
    ]);
    expect(okta.state.users.get(ada)!.status).toBe('DEPROVISIONED');
    // A status-only read must never drive a membership change.
    await expect(converge(connector, profile(), desired({ account: 'disabled', entitlements: [] }), { statusOnly: true })).rejects.toThrow(/statusOnly/);
    // Nor may accounts found ahead without their memberships.
    await expect(converge(connector, profile(), desired({ account: 'disabled', entitlements: [] }), { found: Promise.resolve([]) })).rejects.toThrow(/`found` needs statusOnly/);
  });

  it('refuses to act when two users carry one employeeNumber', async () => {
    const ids = okta.seed({
      users: [
        { profile: { login: 'ada.lovelace@example.com', employeeNumber: 'E100' } },
        { profile: { login: 'a.lovelace@example.com', employeeNumber: 'E100' } },
      ],
    });
    const err = await expectError(converge(connect(), profile(), desired({ account: 'disabled', entitlements: [] })));
    expect(err.name).toBe('TargetConflict');
    expect((err.accountIds as string[]).sort()).toEqual(Object.values(ids.users).sort());
    expect(writesIn(okta.requestLog)).toEqual([]);
  });
});

describe('rate limits and failures', () => {
  it('rides out a 429 storm, waiting each time until the X-Rate-Limit-Reset Okta named', async () => {
    seedAda();
    okta.controls.faults.push({ kind: 'throttle', path: /^\/api\/v1\/users$/, times: 2, retryAfterSeconds: 1 });
    const found = await connect().findAccounts({ employeeId: 'E100' });
    expect(found).toHaveLength(1);

    const attempts = okta.requestLog.filter((r) => r.path === '/api/v1/users');
    expect(attempts.map((r) => r.status)).toEqual([429, 429, 200]);
    expect(attempts.map((r) => r.retryCount)).toEqual([undefined, 1, 2]);
    expect(attempts[1]!.retryFor).toBe(attempts[0]!.requestId);
    for (let i = 1; i < attempts.length; i += 1) {
      expect(attempts[i]!.at).toBeGreaterThanOrEqual(attempts[i - 1]!.rateLimitResetAt!);
    }
  });

  it('gives up with TargetThrottled (retry after the reset) when the reset is further away than it may wait', async () => {
    const { ada } = seedAda();
    okta.controls.faults.push({ kind: 'throttle', retryAfterSeconds: 30 });
    const err = await expectError(connect({ maxRetryWaitMs: 5_000 }).getAccount(ada));
    expect(err.name).toBe('TargetThrottled');
    expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(29);
    expect(err.retryAfterSeconds).toBeLessThanOrEqual(31);
    expect(okta.requestLog).toHaveLength(1);
  });

  it('ends persistent 5xx in TargetUnavailable after a bounded number of attempts', async () => {
    const { ada } = seedAda();
    okta.controls.faults.push({ kind: 'status', status: 503, path: /lifecycle\/deactivate$/ });
    const err = await expectError(connect({ maxRetries: 2 }).setStatus(ada, 'disabled'));
    expect(err.name).toBe('TargetUnavailable');
    expect(err.message).toContain('after 3 attempts');
    expect(okta.requestLog.filter((r) => r.path.endsWith('/lifecycle/deactivate')).map((r) => r.status)).toEqual([503, 503, 503]);
    expect(okta.state.users.get(ada)!.status).toBe('ACTIVE');
  });

  it('retries a transient 5xx, a timeout and a connection reset, then succeeds', async () => {
    const { ada } = seedAda();
    okta.controls.faults.push(
      { kind: 'status', status: 502, path: /^\/api\/v1\/users$/, times: 1 },
      { kind: 'timeout', path: /\/groups$/, times: 1 },
      { kind: 'reset', path: /\/appLinks$/, times: 1 },
    );
    const [account] = await connect({ requestTimeoutMs: 1000 }).findAccounts({ employeeId: 'E100' });
    expect(account!.id).toBe(ada);
    expect(account!.entitlements).toHaveLength(3);
    const count = (re: RegExp) => okta.requestLog.filter((r) => re.test(r.path)).length;
    expect([count(/^\/api\/v1\/users$/), count(/\/groups$/), count(/\/appLinks$/)]).toEqual([2, 2, 2]);
  });

  it('does not PUT a group membership again blind when its answer was lost: reads the groups back first', async () => {
    const { ada } = seedAda({ groups: ['All Staff'] });
    const membershipPuts = () => okta.requestLog.filter((r) => r.method === 'PUT' && /^\/api\/v1\/groups\/[^/]+\/users\//.test(r.path));
    // Served, then the connection closes before the answer: the membership is there.
    okta.controls.faults.push({ kind: 'lost', method: 'PUT', path: /^\/api\/v1\/groups\/[^/]+\/users\//, times: 1 });
    const connector = connect();
    const added = await connector.addEntitlement(ada, { type: 'group', value: 'Engineering' });
    expect(added).toMatchObject({ changed: true, detail: 'the target applied the write; its answer was lost (read back, not sent again)' });
    expect(membershipPuts()).toHaveLength(1);
    expect(okta.state.groupNamesOf(ada).sort()).toEqual(['All Staff', 'Engineering', 'Everyone']);

    // Closed before it was served: not there on reading back, so sent once more.
    okta.controls.faults.push({ kind: 'reset', method: 'PUT', path: /^\/api\/v1\/groups\/[^/]+\/users\//, times: 1 });
    const again = await connector.addEntitlement(ada, { type: 'group', value: 'Finance' });
    expect(again).toMatchObject({ changed: true, detail: expect.stringMatching(/^added to group /) });
    expect(membershipPuts().slice(1).map((r) => r.status)).toEqual([0, 204]);
    expect(okta.state.groupNamesOf(ada)).toContain('Finance');
  });

  it('ends persistent timeouts in TargetUnavailable', async () => {
    const { ada } = seedAda();
    okta.controls.faults.push({ kind: 'timeout' });
    const err = await expectError(connect({ requestTimeoutMs: 150, maxRetries: 1 }).revokeSessions(ada));
    expect(err.name).toBe('TargetUnavailable');
    expect(err.message).toMatch(/timed out after 2 attempts/);
    expect(okta.state.sessionsRevoked).toEqual([]);
  });

  it('paces itself to the org rate limit instead of collecting 429s', async () => {
    const { ada } = seedAda();
    okta.controls.rateLimit = { limit: 8, windowMs: 1000 };
    const connector = connect({ maxConcurrent: 4 });
    await Promise.all(Array.from({ length: 20 }, () => connector.revokeSessions(ada)));
    expect(okta.requestLog).toHaveLength(20);
    expect(okta.requestLog.filter((r) => r.status === 429)).toEqual([]);
    expect(connector.stats.governor.waits).toBeGreaterThan(0);
  });

  it('rejects a bad token as TargetRejected (401) without echoing it', async () => {
    const { ada } = seedAda();
    const err = await expectError(connect({ token: `${token}x` }).getAccount(ada));
    expect(err.name).toBe('TargetRejected');
    expect(err.status).toBe(401);
    expect(err.message).toContain('E0000011 Invalid token provided');
  });

  it('validates its configuration, naming the field and never the token', () => {
    expect(() => createOktaConnector({ name: 'okta', orgUrl: 'http://example.okta.com', token })).toThrow(/orgUrl: must be an https:\/\/ URL/);
    try {
      createOktaConnector({ name: 'okta', orgUrl: okta.url, token, maxConcurrent: 0 });
      expect.unreachable();
    } catch (e) {
      expect((e as Error).name).toBe('ValidationError');
      expect((e as Error).message).toContain('maxConcurrent');
      expect((e as Error).message).not.toContain(token);
    }
  });
});

describe('the stand-in speaks Okta', () => {
  const call = (path: string, init: RequestInit & { auth?: string } = {}) =>
    fetch(`${okta.url}${path}`, {
      ...init,
      headers: { Authorization: init.auth ?? `SSWS ${token}`, Accept: 'application/json', 'Content-Type': 'application/json' },
    });

  it('answers an invalid lifecycle transition with Okta error bodies and headers', async () => {
    const ids = okta.seed({ users: [{ status: 'STAGED', profile: { login: 'staged@example.com' } }, { profile: { login: 'active@example.com' } }] });
    const suspend = await call(`/api/v1/users/${ids.users['staged@example.com']}/lifecycle/suspend`, { method: 'POST' });
    expect(suspend.status).toBe(400);
    expect(await suspend.json()).toEqual({
      errorCode: 'E0000001',
      errorSummary: 'Api validation failed: status',
      errorLink: 'E0000001',
      errorId: expect.stringMatching(/^oae/),
      errorCauses: [{ errorSummary: 'status: Cannot suspend a user with status STAGED; only ACTIVE users can be suspended' }],
    });
    for (const h of ['x-okta-request-id', 'x-rate-limit-limit', 'x-rate-limit-remaining', 'x-rate-limit-reset', 'date']) {
      expect(suspend.headers.get(h)).toBeTruthy();
    }
    const activate = await call(`/api/v1/users/${ids.users['active@example.com']}/lifecycle/activate?sendEmail=false`, { method: 'POST' });
    expect(activate.status).toBe(403);
    expect(await activate.json()).toMatchObject({ errorCode: 'E0000016', errorSummary: 'Activation failed because the user is already active' });
  });

  it('checks the SSWS token', async () => {
    const res = await call('/api/v1/users', { auth: 'SSWS not-the-token' });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ errorCode: 'E0000011', errorSummary: 'Invalid token provided', errorCauses: [] });
  });

  it('searches, filters and pages users as Okta does', async () => {
    okta.seed({
      users: [
        { profile: { login: 'a@example.com', employeeNumber: 'E1', firstName: 'Alan' } },
        { profile: { login: 'b@example.com', employeeNumber: 'E2' }, status: 'DEPROVISIONED' },
        { profile: { login: 'c@example.com', employeeNumber: 'E3' }, status: 'SUSPENDED' },
      ],
    });
    const logins = async (query: string) =>
      ((await (await call(`/api/v1/users?${query}`)).json()) as Array<{ profile: { login: string } }>).map((u) => u.profile.login).sort();
    expect(await logins('')).toEqual(['a@example.com', 'c@example.com']); // plain list omits DEPROVISIONED
    expect(await logins(`search=${encodeURIComponent('profile.employeeNumber eq "e2"')}`)).toEqual(['b@example.com']);
    expect(await logins(`search=${encodeURIComponent('status eq "SUSPENDED" and profile.login sw "c"')}`)).toEqual(['c@example.com']);
    expect(await logins(`filter=${encodeURIComponent('status eq "DEPROVISIONED" or status eq "ACTIVE"')}`)).toEqual(['a@example.com', 'b@example.com']);
    expect(await logins('q=ala')).toEqual(['a@example.com']);
    expect((await call(`/api/v1/users?filter=${encodeURIComponent('profile.employeeNumber eq "E1"')}`)).status).toBe(400);

    const first = await call('/api/v1/users?limit=1');
    const next = /<([^>]+)>; rel="next"/.exec(first.headers.get('link') ?? '')?.[1];
    expect(next).toContain('after=');
    const second = await fetch(next!, { headers: { Authorization: `SSWS ${token}` } });
    const [a] = (await first.json()) as Array<{ id: string }>;
    const [b] = (await second.json()) as Array<{ id: string }>;
    expect(a!.id).not.toBe(b!.id);
  });

  it('deactivates (rather than deletes) an active user on DELETE, as Okta does', async () => {
    const ids = okta.seed({ users: [{ profile: { login: 'a@example.com' } }] });
    const id = ids.users['a@example.com']!;
    expect((await call(`/api/v1/users/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect(okta.state.users.get(id)!.status).toBe('DEPROVISIONED');
    expect((await call(`/api/v1/users/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect(okta.state.users.has(id)).toBe(false);
    expect((await call(`/api/v1/users/${id}`)).status).toBe(404);
  });

  it('filters the System Log by target and event type', async () => {
    const { ada, groups } = seedAda();
    const connector = connect();
    await connector.setStatus(ada, 'suspended');
    await connector.removeEntitlement(ada, { type: 'group', value: 'Engineering' });
    const filter = encodeURIComponent(`target.id eq "${groups['Engineering']}" or eventType eq "user.lifecycle.suspend"`);
    const res = await call(`/api/v1/logs?since=${encodeURIComponent(new Date(Date.now() - 60_000).toISOString())}&until=${encodeURIComponent(new Date().toISOString())}&filter=${filter}`);
    const events = (await res.json()) as Array<{ eventType: string }>;
    expect(events.map((e) => e.eventType)).toEqual(['user.lifecycle.suspend', 'group.user_membership.remove']);
  });
});
