/**
 * The SCIM stand-in and the SCIM connector, over real HTTP on 127.0.0.1. Nothing is mocked:
 * the connector talks to the stand-in with fetch, and assertions read the stand-in's state and
 * request log (what the target saw), as a user of either would.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { DesiredTarget, Entitlement } from '#core/access';
import { AccountNotFound, PolicyViolation, TargetConflict, TargetRejected, TargetThrottled, TargetUnavailable, ValidationError } from '#core/errors';
import type { AccountProfile, ChangeRecord } from '#connectors/connector';
import { converge } from '#connectors/converge';
import { createScimConnector, SCIM_NO_SESSION_API, type ScimConnectorConfig } from '#connectors/scim.connector';
import { listen, sendJson, type RunningServer } from '#local/standins/http-kit';
import { startScimStandIn, type ScimSeed, type ScimStandIn, type ScimStandInOptions } from '#local/standins/scim';

const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';

const running: Array<ScimStandIn | RunningServer> = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

const seed: ScimSeed = {
  users: [
    {
      id: 'mgr-1',
      userName: 'alan.turing@example.com',
      externalId: 'E0001',
      displayName: 'Alan Turing',
      emails: [{ value: 'alan.turing@example.com', type: 'work', primary: true }],
    },
  ],
  groups: [{ id: 'g-eng', displayName: 'Engineering', members: ['mgr-1'] }, { id: 'g-vpn', displayName: 'VPN Users' }, { id: 'g-fin', displayName: 'Finance' }],
};

async function start(options: Partial<ScimStandInOptions> = {}): Promise<ScimStandIn> {
  const s = await startScimStandIn({ name: 'wiki', token: randomBytes(24).toString('base64url'), seed, ...options });
  running.push(s);
  return s;
}

function connectorFor(s: ScimStandIn, over: Partial<ScimConnectorConfig> = {}) {
  return createScimConnector({ name: s.name, baseUrl: s.url, token: s.token, quirks: s.quirks, retryBaseDelayMs: 5, ...over });
}

async function call(s: ScimStandIn, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${s.token}`, 'Content-Type': 'application/scim+json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

const patch = (...Operations: unknown[]) => ({ schemas: [PATCH_OP], Operations });
const writes = (s: ScimStandIn) => s.requestLog.filter((e) => e.method !== 'GET');

const grace: AccountProfile = {
  employeeId: 'E1001',
  userName: 'grace.hopper@example.com',
  email: 'grace.hopper@example.com',
  givenName: 'Grace',
  familyName: 'Hopper',
  displayName: 'Grace Hopper',
  department: 'Engineering',
  jobCode: 'ENG2',
  location: 'NYC',
  employmentType: 'employee',
  managerEmail: 'alan.turing@example.com',
};

const grant = (type: Entitlement['type'], value: string): Entitlement => ({ type, value, bundle: 'eng-baseline', rule: 'dept-engineering', privileged: false });
const joiner = (over: Partial<DesiredTarget> = {}): DesiredTarget => ({
  target: 'wiki',
  kind: 'scim',
  mode: 'enforce',
  account: 'enabled',
  entitlements: [grant('group', 'Engineering'), grant('group', 'VPN Users'), grant('role', 'editor')],
  ...over,
});
const leaver = () => joiner({ account: 'disabled', entitlements: [] });

// -------------------------------------------------------------------------------------------------

describe('SCIM stand-in (RFC 7643 / 7644)', () => {
  it('refuses requests without the bearer token with a SCIM error, a request id and no echo of secrets', async () => {
    const s = await start();
    for (const auth of [undefined, 'Bearer wrong-token', `Basic ${s.token}`]) {
      const res = await fetch(`${s.url}/Users`, { headers: auth ? { Authorization: auth } : {} });
      const text = await res.text();
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toMatch(/^application\/scim\+json/);
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(JSON.parse(text)).toMatchObject({ schemas: [ERROR], status: '401' });
      expect(text).not.toContain(s.token);
    }
  });

  it('creates a user with 201, Location and meta, and refuses a duplicate userName with 409 uniqueness', async () => {
    const s = await start();
    const created = await call(s, 'POST', '/Users', {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', ENTERPRISE],
      userName: 'ada@example.com',
      externalId: 'E2',
      password: 'not-returned',
      id: 'client-chosen-id-is-ignored',
      roles: [{ value: 'admin', primary: true }],
      [ENTERPRISE]: { department: 'R&D' },
    });
    expect(created.status).toBe(201);
    const user = created.body!;
    expect(user.id).not.toBe('client-chosen-id-is-ignored');
    expect(user.password).toBeUndefined();
    expect(JSON.stringify(s.requestLog)).not.toContain('not-returned');
    expect(user.meta).toMatchObject({ resourceType: 'User', location: `${s.url}/Users/${user.id}`, version: 'W/"1"' });
    expect(Date.parse(user.meta.created)).not.toBeNaN();
    expect(user.meta.lastModified).toBe(user.meta.created);
    expect(created.headers.get('location')).toBe(user.meta.location);
    expect(created.headers.get('etag')).toBe('W/"1"');
    expect(user.schemas).toEqual(['urn:ietf:params:scim:schemas:core:2.0:User', ENTERPRISE]);

    const fetched = await call(s, 'GET', `/Users/${user.id}`);
    expect(fetched.body).toEqual(user);

    const dup = await call(s, 'POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'ADA@example.com' });
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ schemas: [ERROR], status: '409', scimType: 'uniqueness' });

    const noName = await call(s, 'POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], displayName: 'x' });
    expect(noName.body).toMatchObject({ status: '400', scimType: 'invalidValue', detail: 'required attribute userName is missing' });
    const unknown = await call(s, 'POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'b', shoeSize: 9 });
    expect(unknown.body).toMatchObject({ status: '400', scimType: 'invalidSyntax', detail: 'shoeSize is not an attribute of User' });
    expect((await call(s, 'GET', '/Users/nope')).status).toBe(404);
  });

  it('filters and pages /Users into a ListResponse', async () => {
    const s = await start({
      seed: { users: ['u1', 'u2', 'u3', 'u4', 'u5'].map((u, i) => ({ userName: `${u}@example.com`, externalId: `X${i}`, active: i % 2 === 0 })) },
    });
    const page = await call(s, 'GET', `/Users?filter=${encodeURIComponent('userName sw "U" and (active eq true or externalId eq "X1")')}&startIndex=2&count=2`);
    expect(page.status).toBe(200);
    expect(page.body).toMatchObject({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'],
      totalResults: 4,
      startIndex: 2,
      itemsPerPage: 2,
    });
    expect(page.body!.Resources.map((u: any) => u.userName)).toEqual(['u2@example.com', 'u3@example.com']);

    const projected = await call(s, 'GET', `/Users?attributes=userName&count=1`);
    expect(Object.keys(projected.body!.Resources[0]).sort()).toEqual(['id', 'schemas', 'userName']);

    const bad = await call(s, 'GET', `/Users?filter=${encodeURIComponent('userName eq "a" and')}`);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ scimType: 'invalidFilter' });

    const search = await call(s, 'POST', '/Users/.search', { schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: 'externalId eq "X4"' });
    expect(search.body!.Resources.map((u: any) => u.userName)).toEqual(['u5@example.com']);
  });

  it('accepts PATCH ops in any case, with and without path, with value filters and URN paths', async () => {
    const s = await start({
      seed: {
        users: [
          {
            id: 'u1',
            userName: 'ada@example.com',
            emails: [{ value: 'ada@home.example', type: 'home' }, { value: 'old@example.com', type: 'work', primary: true }],
            roles: [{ value: 'admin' }, { value: 'auditor' }],
          },
        ],
      },
    });
    const res = await call(
      s,
      'PATCH',
      '/Users/u1',
      patch(
        { op: 'Replace', path: 'emails[type eq "work"].value', value: 'ada@example.com' },
        { op: 'REMOVE', path: 'roles[value eq "admin"]' },
        { op: 'Add', value: { 'name.givenName': 'Ada', [`${ENTERPRISE}:department`]: 'R&D', title: 'Countess' } },
        { op: 'replace', value: { active: 'False' } },
        { op: 'add', path: 'phoneNumbers[type eq "mobile"].value', value: '+1 555 0100' },
      ),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      active: false,
      title: 'Countess',
      name: { givenName: 'Ada' },
      roles: [{ value: 'auditor' }],
      phoneNumbers: [{ type: 'mobile', value: '+1 555 0100' }],
      [ENTERPRISE]: { department: 'R&D' },
      meta: { version: 'W/"2"' },
    });
    expect(res.body!.emails).toEqual([
      { value: 'ada@home.example', type: 'home' },
      { value: 'ada@example.com', type: 'work', primary: true },
    ]);

    // Re-applying a state the user already has changes nothing, so the version stays.
    const again = await call(s, 'PATCH', '/Users/u1', patch({ op: 'add', path: 'roles', value: [{ value: 'auditor' }] }));
    expect(again.body!.meta.version).toBe('W/"2"');

    // Atomic: the second operation fails, so the first is not applied either.
    const failed = await call(s, 'PATCH', '/Users/u1', patch({ op: 'replace', path: 'title', value: 'Changed' }, { op: 'replace', path: 'emails[type eq "fax"].value', value: 'x' }));
    expect(failed.body).toMatchObject({ status: '400', scimType: 'noTarget' });
    expect(s.state.user('u1')!.title).toBe('Countess');

    for (const [body, scimType] of [
      [patch({ op: 'remove' }), 'noTarget'],
      [patch({ op: 'move', path: 'title' }), 'invalidSyntax'],
      [patch({ op: 'replace', path: 'id', value: 'x' }), 'mutability'],
      [patch({ op: 'replace', path: 'groups', value: [] }), 'mutability'],
      [patch({ op: 'replace', path: 'emails[type eq', value: 'x' }), 'invalidPath'],
      [patch({ op: 'replace', path: 'shoeSize', value: 9 }), 'invalidPath'],
      [patch({ op: 'remove', path: 'userName' }), 'invalidValue'],
      [{ Operations: [{ op: 'add', path: 'title', value: 'x' }] }, 'invalidSyntax'],
    ] as const) {
      const r = await call(s, 'PATCH', '/Users/u1', body);
      expect([r.status, r.body!.scimType]).toEqual([400, scimType]);
    }
  });

  it('keeps group membership on /Groups and derives the read-only "groups" of users from it', async () => {
    const s = await start();
    const u = await call(s, 'POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'kim@example.com', displayName: 'Kim' });
    const id = u.body!.id as string;

    const found = await call(s, 'GET', `/Groups?filter=${encodeURIComponent('displayName eq "vpn users"')}`);
    expect(found.body!.Resources.map((g: any) => g.id)).toEqual(['g-vpn']);

    await call(s, 'PATCH', '/Groups/g-vpn', patch({ op: 'Add', path: 'members', value: [{ value: id }] }));
    await call(s, 'PATCH', '/Groups/g-eng', patch({ op: 'add', path: 'members', value: [{ value: id }] }));
    const user = await call(s, 'GET', `/Users/${id}`);
    expect(user.body!.groups).toEqual([
      { value: 'g-eng', $ref: `${s.url}/Groups/g-eng`, display: 'Engineering', type: 'direct' },
      { value: 'g-vpn', $ref: `${s.url}/Groups/g-vpn`, display: 'VPN Users', type: 'direct' },
    ]);
    expect((await call(s, 'GET', '/Groups/g-eng')).body!.members).toEqual([
      { value: 'mgr-1', $ref: `${s.url}/Users/mgr-1`, type: 'User', display: 'Alan Turing' },
      { value: id, $ref: `${s.url}/Users/${id}`, type: 'User', display: 'Kim' },
    ]);

    // Remove by value filter, and the Azure AD form (path "members" with a value list).
    await call(s, 'PATCH', '/Groups/g-eng', patch({ op: 'remove', path: `members[value eq "${id}"]` }));
    await call(s, 'PATCH', '/Groups/g-vpn', patch({ op: 'Remove', path: 'members', value: [{ value: id }] }));
    expect((await call(s, 'GET', `/Users/${id}`)).body!.groups).toBeUndefined();
    expect(s.state.group('Engineering')!.members).toEqual([expect.objectContaining({ value: 'mgr-1' })]);

    // Users cannot write their groups; groups refuse members that do not exist.
    const ro = await call(s, 'PATCH', `/Users/${id}`, patch({ op: 'add', path: 'groups', value: [{ value: 'g-fin' }] }));
    expect(ro.body).toMatchObject({ status: '400', scimType: 'mutability' });
    const ghost = await call(s, 'PATCH', '/Groups/g-fin', patch({ op: 'add', path: 'members', value: [{ value: 'ghost' }] }));
    expect(ghost.body).toMatchObject({ status: '400', scimType: 'invalidValue' });

    const put = await call(s, 'PUT', '/Groups/g-fin', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Finance', members: [{ value: id }] });
    expect(put.status).toBe(200);
    expect(s.state.user(id)!.groups).toEqual([expect.objectContaining({ value: 'g-fin', display: 'Finance' })]);

    const newGroup = await call(s, 'POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Ops' });
    expect(newGroup.status).toBe(201);
    expect(newGroup.body!.meta.resourceType).toBe('Group');
  });

  it('honours If-Match (412 on a stale version) and deletes with 204', async () => {
    const s = await start();
    const stale = await call(s, 'PATCH', '/Users/mgr-1', patch({ op: 'replace', path: 'title', value: 'x' }), { 'If-Match': 'W/"7"' });
    expect(stale.status).toBe(412);
    const fresh = await call(s, 'PATCH', '/Users/mgr-1', patch({ op: 'replace', path: 'title', value: 'x' }), { 'If-Match': 'W/"1"' });
    expect(fresh.status).toBe(200);
    expect((await call(s, 'DELETE', '/Users/mgr-1')).status).toBe(204);
    expect((await call(s, 'GET', '/Users/mgr-1')).status).toBe(404);
    expect(s.state.group('Engineering')!.members).toBeUndefined();
  });

  it('serves /ServiceProviderConfig, /Schemas and /ResourceTypes', async () => {
    const s = await start();
    const spc = await call(s, 'GET', '/ServiceProviderConfig');
    expect(spc.body).toMatchObject({
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
      patch: { supported: true },
      filter: { supported: true, maxResults: 200 },
      etag: { supported: true },
      authenticationSchemes: [expect.objectContaining({ type: 'oauthbearertoken' })],
    });
    const schemas = await call(s, 'GET', '/Schemas');
    expect(schemas.body!.Resources.map((x: any) => x.id)).toEqual([
      'urn:ietf:params:scim:schemas:core:2.0:User',
      ENTERPRISE,
      'urn:ietf:params:scim:schemas:core:2.0:Group',
    ]);
    const userSchema = await call(s, 'GET', '/Schemas/urn:ietf:params:scim:schemas:core:2.0:User');
    expect(userSchema.body!.attributes.find((x: any) => x.name === 'userName')).toMatchObject({ required: true, uniqueness: 'server', caseExact: false });
    expect(userSchema.body!.attributes.find((x: any) => x.name === 'groups')).toMatchObject({ mutability: 'readOnly', multiValued: true });
    const types = await call(s, 'GET', '/ResourceTypes');
    expect(types.body!.Resources).toEqual([
      expect.objectContaining({ id: 'User', endpoint: '/Users', schemaExtensions: [{ schema: ENTERPRISE, required: false }] }),
      expect.objectContaining({ id: 'Group', endpoint: '/Groups' }),
    ]);
  });

  it('models apps that only support PUT, and apps that delete users on deactivation', async () => {
    const putOnly = await start({ quirks: { putOnly: true } });
    const refused = await call(putOnly, 'PATCH', '/Users/mgr-1', patch({ op: 'replace', path: 'active', value: false }));
    expect(refused.status).toBe(501);
    expect(refused.body).toMatchObject({ schemas: [ERROR], status: '501' });
    expect((await call(putOnly, 'GET', '/ServiceProviderConfig')).body!.patch).toEqual({ supported: false });

    const deleting = await start({ quirks: { deleteOnDeactivate: true } });
    const off = await call(deleting, 'PATCH', '/Users/mgr-1', patch({ op: 'replace', path: 'active', value: false }));
    expect(off.status).toBe(200);
    expect((await call(deleting, 'GET', '/Users/mgr-1')).status).toBe(404);
    expect(deleting.state.group('Engineering')!.members).toBeUndefined();
  });
});

// -------------------------------------------------------------------------------------------------

describe('SCIM connector', () => {
  it('validates its configuration and names the field, never the token', () => {
    const token = randomBytes(16).toString('hex');
    try {
      createScimConnector({ name: 'wiki', baseUrl: 'not a url', token, maxRetries: -1 });
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toMatch(/baseUrl/);
      expect((err as Error).message).toMatch(/maxRetries/);
      expect((err as Error).message).not.toContain(token);
    }
  });

  it('creates an account with the full profile, the manager resolved, and the request id recorded', async () => {
    const s = await start();
    const c = connectorFor(s);
    const { account, change } = await c.createAccount(grace, { enabled: true });

    expect(account).toEqual({ id: account.id, correlationKey: 'E1001', userName: grace.userName, status: 'enabled', entitlements: [] });
    expect(change).toMatchObject({ target: 'wiki', op: 'create', accountId: account.id, changed: true });
    const post = s.requestLog.find((e) => e.method === 'POST')!;
    expect(change.requestIds).toContain(post.requestId);
    expect(s.state.user(account.id)).toMatchObject({
      userName: 'grace.hopper@example.com',
      externalId: 'E1001',
      active: true,
      displayName: 'Grace Hopper',
      name: { givenName: 'Grace', familyName: 'Hopper', formatted: 'Grace Hopper' },
      emails: [{ value: 'grace.hopper@example.com', type: 'work', primary: true }],
      title: 'ENG2',
      userType: 'Employee',
      [ENTERPRISE]: { employeeNumber: 'E1001', department: 'Engineering', manager: { value: 'mgr-1', displayName: 'Alan Turing' } },
    });

    // Creating again (a retried step) finds this person's account instead of failing.
    const again = await c.createAccount(grace, { enabled: true });
    expect(again.change).toMatchObject({ changed: false, accountId: account.id, detail: 'account already existed for this employee' });

    // Someone else holding the userName is a conflict, not a silent takeover.
    await expect(c.createAccount({ ...grace, employeeId: 'E9999' }, { enabled: true })).rejects.toThrow(TargetConflict);
  });

  it('leaves the manager unset, and says so, when the manager has no account on the target', async () => {
    const s = await start({ seed: {} });
    const { account, change } = await connectorFor(s).createAccount({ ...grace, managerEmail: 'nobody@example.com' }, { enabled: false });
    expect(change.detail).toBe('manager has no account on this target; manager left unset');
    expect(s.state.user(account.id)).toMatchObject({ active: false, [ENTERPRISE]: { employeeNumber: 'E1001' } });
    expect((s.state.user(account.id)![ENTERPRISE] as any).manager).toBeUndefined();
  });

  it('finds accounts by externalId and by link id, and reads one account', async () => {
    const s = await start({
      seed: {
        ...seed,
        users: [...seed.users!, { id: 'u-linked', userName: 'old-login@example.com', roles: [{ value: 'viewer' }] }, { id: 'u-g', userName: 'g@example.com', externalId: 'E1001', active: false }],
        groups: [{ displayName: 'Finance', members: ['u-g'] }],
      },
    });
    const c = connectorFor(s);
    const accounts = await c.findAccounts({ employeeId: 'E1001', linkIds: ['u-linked', 'u-missing'] });
    expect(accounts).toEqual([
      { id: 'u-g', correlationKey: 'E1001', userName: 'g@example.com', status: 'disabled', entitlements: [{ type: 'group', value: 'Finance' }] },
      { id: 'u-linked', userName: 'old-login@example.com', status: 'enabled', entitlements: [{ type: 'role', value: 'viewer' }] },
    ]);
    expect(await c.findAccounts({ employeeId: 'e1001' })).toEqual([]); // externalId is case-exact
    expect(await c.getAccount('u-g')).toEqual(accounts[0]);
    await expect(c.getAccount('nope')).rejects.toThrow(AccountNotFound);
  });

  it('sets status idempotently; suspend means active=false', async () => {
    const s = await start();
    const c = connectorFor(s);
    const off = await c.setStatus('mgr-1', 'disabled');
    expect(off).toMatchObject({ op: 'disable', changed: true });
    expect(s.state.user('mgr-1')!.active).toBe(false);
    expect(writes(s)).toEqual([expect.objectContaining({ method: 'PATCH', path: '/scim/v2/Users/mgr-1', body: patch({ op: 'replace', path: 'active', value: false }) })]);

    const before = writes(s).length;
    expect(await c.setStatus('mgr-1', 'disabled')).toMatchObject({ changed: false });
    expect(await c.setStatus('mgr-1', 'suspended')).toMatchObject({ op: 'suspend', changed: false, detail: 'SCIM has no suspended state: active=false' });
    expect(writes(s).length).toBe(before);

    expect(await c.setStatus('mgr-1', 'enabled')).toMatchObject({ op: 'enable', changed: true });
    expect(s.state.user('mgr-1')!.active).toBe(true);
    expect(c.capabilities.suspend).toBe(false);
    await expect(c.setStatus('nope', 'disabled')).rejects.toThrow(AccountNotFound);
  });

  it('adds and removes groups on the Group and roles on the user, idempotently', async () => {
    const s = await start();
    const c = connectorFor(s);
    const add = await c.addEntitlement('mgr-1', { type: 'group', value: 'VPN Users' });
    expect(add).toMatchObject({ op: 'addEntitlement', changed: true, entitlement: { type: 'group', value: 'VPN Users' } });
    expect(writes(s).at(-1)).toMatchObject({ method: 'PATCH', path: '/scim/v2/Groups/g-vpn', body: patch({ op: 'add', path: 'members', value: [{ value: 'mgr-1' }] }) });
    expect(await c.addEntitlement('mgr-1', { type: 'group', value: 'VPN Users' })).toMatchObject({ changed: false });

    const rm = await c.removeEntitlement('mgr-1', { type: 'group', value: 'Engineering' });
    expect(rm.changed).toBe(true);
    expect(writes(s).at(-1)).toMatchObject({ path: '/scim/v2/Groups/g-eng', body: patch({ op: 'remove', path: 'members[value eq "mgr-1"]' }) });
    expect(await c.removeEntitlement('mgr-1', { type: 'group', value: 'Engineering' })).toMatchObject({ changed: false });

    expect(await c.addEntitlement('mgr-1', { type: 'role', value: 'editor' })).toMatchObject({ changed: true });
    expect(await c.addEntitlement('mgr-1', { type: 'role', value: 'editor' })).toMatchObject({ changed: false });
    expect((await c.getAccount('mgr-1')).entitlements).toEqual([
      { type: 'group', value: 'VPN Users' },
      { type: 'role', value: 'editor' },
    ]);
    expect(await c.removeEntitlement('mgr-1', { type: 'role', value: 'editor' })).toMatchObject({ changed: true });
    expect(writes(s).at(-1)).toMatchObject({ path: '/scim/v2/Users/mgr-1', body: patch({ op: 'remove', path: 'roles[value eq "editor"]' }) });
    expect(s.state.user('mgr-1')!.roles).toBeUndefined();

    await expect(c.addEntitlement('mgr-1', { type: 'group', value: 'No Such Group' })).rejects.toThrow(/group "No Such Group" does not exist/);
    await expect(c.addEntitlement('mgr-1', { type: 'license', value: 'E5' })).rejects.toThrow(PolicyViolation);
  });

  it('re-resolves a group whose cached id went stale', async () => {
    const s = await start();
    const c = connectorFor(s);
    await c.addEntitlement('mgr-1', { type: 'group', value: 'Finance' });
    await call(s, 'DELETE', '/Groups/g-fin');
    await call(s, 'POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Finance' });
    await c.removeEntitlement('mgr-1', { type: 'group', value: 'VPN Users' }); // unrelated, no write
    await c.addEntitlement('mgr-1', { type: 'group', value: 'Finance' });
    expect(s.state.user('mgr-1')!.groups).toEqual(expect.arrayContaining([expect.objectContaining({ display: 'Finance' })]));
  });

  it('cannot revoke sessions on SCIM and says so without calling the target', async () => {
    const s = await start();
    const change = await connectorFor(s).revokeSessions('mgr-1');
    expect(change).toEqual({ target: 'wiki', op: 'revokeSessions', accountId: 'mgr-1', changed: false, requestIds: [], detail: SCIM_NO_SESSION_API });
    expect(SCIM_NO_SESSION_API).toBe('target has no session API; access ends with active=false');
    expect(s.requestLog).toEqual([]);
  });

  it('deletes accounts; deleting an absent one changes nothing', async () => {
    const s = await start();
    const c = connectorFor(s);
    const del = await c.deleteAccount('mgr-1');
    expect(del).toMatchObject({ op: 'delete', changed: true });
    expect(del.requestIds).toEqual([s.requestLog.at(-1)!.requestId]);
    expect(s.state.user('mgr-1')).toBeUndefined();
    expect(await c.deleteAccount('mgr-1')).toMatchObject({ changed: false, detail: 'account already absent' });
  });

  it('lists all accounts one startIndex/count page at a time', async () => {
    const s = await start({
      seed: {
        users: Array.from({ length: 7 }, (_, i) => ({ id: `u${i}`, userName: `user${i}@example.com`, ...(i === 6 ? {} : { externalId: `E${i}` }), roles: i === 0 ? [{ value: 'admin' }] : undefined })),
        groups: [{ displayName: 'Engineering', members: ['u0', 'u4'] }],
      },
    });
    const c = connectorFor(s, { pageSize: 3 });
    const pages = [];
    let cursor: string | undefined;
    do {
      const page = await c.listAccounts(cursor);
      pages.push(page);
      cursor = page.nextCursor;
    } while (cursor);
    expect(pages.map((p) => p.accounts.length)).toEqual([3, 3, 1]);
    expect(pages.map((p) => p.nextCursor)).toEqual(['4', '7', undefined]);
    const all = pages.flatMap((p) => p.accounts);
    expect(all.map((a) => a.id)).toEqual(['u0', 'u1', 'u2', 'u3', 'u4', 'u5', 'u6']);
    expect(all[0]).toEqual({ id: 'u0', correlationKey: 'E0', userName: 'user0@example.com', status: 'enabled', entitlements: [{ type: 'group', value: 'Engineering' }, { type: 'role', value: 'admin' }] });
    expect(all[6]!.correlationKey).toBeUndefined(); // an orphan for reconciliation
    expect(s.requestLog.map((e) => new URLSearchParams(e.query).get('startIndex'))).toEqual(['1', '4', '7']);
    await expect(c.listAccounts('zero')).rejects.toThrow(ValidationError);
  });

  it('gives the account meta as audit evidence, and proves absence after a delete', async () => {
    const s = await start();
    const c = connectorFor(s);
    await c.setStatus('mgr-1', 'disabled');
    const user = s.state.user('mgr-1')!;
    const meta = user.meta as { lastModified: string; version: string };
    const [entry, ...rest] = await c.auditEvidence('mgr-1', '2000-01-01T00:00:00Z');
    expect(rest).toEqual([]);
    expect(entry).toMatchObject({ time: meta.lastModified, eventType: 'scim.user.lastModified', outcome: 'SUCCESS', targetIds: ['mgr-1'] });
    expect(entry!.id).toBe(`scim:wiki:mgr-1:${meta.version}`);
    expect(entry!.summary).toContain('active=false, access: group:Engineering, version W/"2"');
    expect(await c.auditEvidence('mgr-1', new Date(Date.now() + 60_000).toISOString())).toEqual([]);

    await c.deleteAccount('mgr-1');
    const [gone] = await c.auditEvidence('mgr-1', '2000-01-01T00:00:00Z');
    expect(gone).toMatchObject({ eventType: 'scim.user.absent', summary: 'GET /Users/mgr-1 answered 404: the account does not exist on wiki' });
  });
});

// -------------------------------------------------------------------------------------------------

describe('SCIM converge (joiner, leaver, quirks)', () => {
  it('a joiner converge creates and grants; converging again makes no write', async () => {
    const s = await start();
    const c = connectorFor(s);
    const first = await converge(c, grace, joiner());
    expect(first.planned.map((p) => p.op)).toEqual(['create', 'addEntitlement', 'addEntitlement', 'addEntitlement']);
    expect(first.writes).toBe(4);
    const user = s.state.user(grace.userName)!;
    expect(user.groups).toEqual([expect.objectContaining({ display: 'Engineering' }), expect.objectContaining({ display: 'VPN Users' })]);
    expect(user.roles).toEqual([{ value: 'editor' }]);

    const logged = s.requestLog.length;
    const second = await converge(c, grace, joiner());
    expect(second).toMatchObject({ writes: 0, planned: [], changes: [], accountId: user.id });
    expect(s.requestLog.slice(logged).map((e) => e.method)).toEqual(['GET']);
    expect(writes(s)).toHaveLength(4);
  });

  it('a leaver converge sets active=false and removes every group and role', async () => {
    const s = await start();
    const c = connectorFor(s);
    await converge(c, grace, joiner());
    const result = await converge(c, grace, leaver(), { forceRevoke: true });
    expect(result.changes.map((x) => [x.op, x.changed, x.entitlement?.value])).toEqual([
      ['disable', true, undefined],
      ['revokeSessions', false, undefined],
      ['removeEntitlement', true, 'Engineering'],
      ['removeEntitlement', true, 'VPN Users'],
      ['removeEntitlement', true, 'editor'],
    ]);
    const user = s.state.user(grace.userName)!;
    expect(user.active).toBe(false);
    expect(user.groups).toBeUndefined();
    expect(user.roles).toBeUndefined();
    expect((await converge(c, grace, leaver())).writes).toBe(0);
  });

  it('on an app that deletes on deactivation, the leaver account disappears and a rehire re-creates it', async () => {
    const s = await start({ quirks: { deleteOnDeactivate: true } });
    const c = connectorFor(s);
    const hired = await converge(c, grace, joiner());
    const leave = await converge(c, grace, leaver(), { forceRevoke: true });
    expect(leave.changes[0]).toMatchObject({
      op: 'disable',
      changed: true,
      detail: 'the app deletes users on deactivation: the account was deleted (GET answered 404)',
    });
    expect(leave.changes.slice(2).every((x) => x.op === 'removeEntitlement' && !x.changed)).toBe(true);
    expect(s.state.user(grace.userName)).toBeUndefined();
    expect(s.state.group('Engineering')!.members).toEqual([expect.objectContaining({ value: 'mgr-1' })]);
    expect((await converge(c, grace, leaver())).writes).toBe(0);

    const rehired = await converge(c, grace, joiner());
    expect(rehired.planned.map((p) => p.op)).toEqual(['create', 'addEntitlement', 'addEntitlement', 'addEntitlement']);
    expect(rehired.accountId).not.toBe(hired.accountId);
    expect(s.state.user(grace.userName)).toMatchObject({ active: true, roles: [{ value: 'editor' }] });
  });

  it('on a PUT-only app, every change is a whole-resource PUT with If-Match and never a PATCH', async () => {
    const s = await start({ quirks: { putOnly: true } });
    const c = connectorFor(s);
    await converge(c, grace, joiner());
    const mover = await converge(c, grace, joiner({ entitlements: [grant('group', 'Finance'), grant('role', 'viewer')] }));
    expect(mover.writes).toBe(5);
    let user = s.state.user(grace.userName)!;
    expect(user.groups).toEqual([expect.objectContaining({ display: 'Finance' })]);
    expect(user.roles).toEqual([{ value: 'viewer' }]);
    expect(user.name).toEqual({ givenName: 'Grace', familyName: 'Hopper', formatted: 'Grace Hopper' }); // PUT kept the rest

    await converge(c, grace, leaver());
    user = s.state.user(grace.userName)!;
    expect(user).toMatchObject({ active: false, userName: grace.userName });
    expect(user.groups).toBeUndefined();
    expect(s.requestLog.filter((e) => e.method === 'PATCH')).toEqual([]);
    expect(s.requestLog.filter((e) => e.method === 'PUT').length).toBeGreaterThanOrEqual(7);
    expect(s.state.group('Engineering')!.members).toEqual([expect.objectContaining({ value: 'mgr-1' })]);
  });

  it('refuses to pick between two accounts with one externalId', async () => {
    const s = await start({
      seed: { users: [{ id: 'a', userName: 'grace@example.com', externalId: 'E1001' }, { id: 'b', userName: 'ghopper@example.com', externalId: 'E1001' }] },
    });
    const err = await converge(connectorFor(s), grace, joiner()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetConflict);
    expect((err as TargetConflict).accountIds).toEqual(['a', 'b']);
    expect((err as Error).message).toBe('wiki: 2 accounts claim employee E1001');
    expect(writes(s)).toEqual([]);
  });
});

// -------------------------------------------------------------------------------------------------

describe('SCIM connector under faults', () => {
  it('waits out a 429 Retry-After and then succeeds', async () => {
    const s = await start({ controls: { faults: [{ kind: 'throttle', retryAfterSeconds: 1, times: 1 }] } });
    const c = connectorFor(s);
    const t0 = Date.now();
    const account = await c.getAccount('mgr-1');
    expect(account.userName).toBe('alan.turing@example.com');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(s.requestLog.map((e) => e.status)).toEqual([429, 200]);
    expect(c.governor.stats.throttled).toBe(1);
  });

  it('throws TargetThrottled when the target asks for a longer wait than one invocation should spend', async () => {
    const s = await start({ controls: { faults: [{ kind: 'throttle', retryAfterSeconds: 120 }] } });
    const c = connectorFor(s);
    const err = await c.getAccount('mgr-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetThrottled);
    expect(err).toMatchObject({ name: 'TargetThrottled', retryAfterSeconds: 120 });
    expect(s.requestLog).toHaveLength(1);

    // The same (warm) instance fails fast while the wait lasts, without calling the target.
    const t0 = Date.now();
    const again = await c.findAccounts({ employeeId: 'E1001' }).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(TargetThrottled);
    expect((again as TargetThrottled).retryAfterSeconds).toBeGreaterThan(100);
    expect(Date.now() - t0).toBeLessThan(100);
    expect(s.requestLog).toHaveLength(1);
  });

  it('gives up on a persistent 5xx with TargetUnavailable after the configured retries', async () => {
    const s = await start({ controls: { faults: [{ kind: 'status', status: 503 }] } });
    const err = await connectorFor(s, { maxRetries: 2 }).setStatus('mgr-1', 'disabled').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetUnavailable);
    expect((err as Error).message).toBe('wiki: GET /Users/mgr-1 answered HTTP 503 (Service Unavailable); gave up after 3 attempts');
    expect(s.requestLog.map((e) => e.status)).toEqual([503, 503, 503]);
  });

  it('retries a transient 5xx and a connection reset, then succeeds', async () => {
    const s = await start({
      controls: { faults: [{ kind: 'status', status: 502, times: 1 }, { kind: 'reset', times: 1 }] },
    });
    const change = await connectorFor(s).setStatus('mgr-1', 'disabled');
    expect(change.changed).toBe(true);
    expect(s.state.user('mgr-1')!.active).toBe(false);
    expect(s.requestLog.map((e) => `${e.method} ${e.status}`)).toEqual(['GET 502', 'GET 0', 'GET 200', 'PATCH 200']);
  });

  it('does not send a membership or role write again blind when its answer was lost: reads back, and resends only what did not land', async () => {
    // The target applies each write, then the connection closes before the answer goes out.
    const s = await start({
      controls: {
        faults: [
          { kind: 'lost', method: 'PATCH', path: /\/Groups\/g-vpn$/, times: 1 },
          { kind: 'lost', method: 'PATCH', path: /\/Users\/mgr-1$/, times: 1 },
        ],
      },
    });
    const connector = connectorFor(s);
    const added = await connector.addEntitlement('mgr-1', { type: 'group', value: 'VPN Users' });
    const role = await connector.addEntitlement('mgr-1', { type: 'role', value: 'Editor' });
    expect((s.state.user('mgr-1')!.groups as Array<{ display: string }>).map((g) => g.display).sort()).toEqual(['Engineering', 'VPN Users']);
    expect(s.state.user('mgr-1')!.roles).toEqual([{ value: 'Editor' }]);
    // Each write sent once; the read after the lost answer showed it had landed.
    expect(writes(s).map((e) => `${e.method} ${e.path.replace(/^\/scim\/v2/, '')} ${e.status}`)).toEqual(['PATCH /Groups/g-vpn 200', 'PATCH /Users/mgr-1 200']);
    for (const c of [added, role]) {
      expect(c).toMatchObject({ changed: true, detail: 'the target applied the write; its answer was lost (read back, not sent again)' });
    }

    // Closed before it was served (the write did not land): read back, then sent once more.
    s.controls.faults.push({ kind: 'reset', method: 'PATCH', path: /\/Groups\/g-fin$/, times: 1 });
    const fin = await connector.addEntitlement('mgr-1', { type: 'group', value: 'Finance' });
    expect(fin).toMatchObject({ changed: true });
    expect(fin.detail).toBeUndefined();
    expect(writes(s).slice(2).map((e) => `${e.method} ${e.path.replace(/^\/scim\/v2/, '')} ${e.status}`)).toEqual(['PATCH /Groups/g-fin 0', 'PATCH /Groups/g-fin 200']);

    // Never answered: sent as often as a retried call would be, a read before each resend, then
    // TargetUnavailable (the name the workflow retries on).
    s.controls.faults.push({ kind: 'reset', method: 'PATCH', path: /\/Groups\/g-eng$/ });
    const err = (await connector.removeEntitlement('mgr-1', { type: 'group', value: 'Engineering' }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(TargetUnavailable);
    expect(err.name).toBe('TargetUnavailable');
    expect(err.message).toMatch(/^wiki: PATCH \/Groups\/g-eng failed \(.+\): sent, no answer$/);
    const send = 'PATCH /Groups/g-eng';
    const read = 'GET /Users/mgr-1';
    expect(s.requestLog.slice(-7).map((e) => `${e.method} ${e.path.replace(/^\/scim\/v2/, '')}`)).toEqual([send, read, send, read, send, read, send]);
    expect(s.state.user('mgr-1')!.groups).toHaveLength(3); // still a member of all three
  });

  it('turns a hung request into TargetUnavailable after the timeout', async () => {
    const s = await start({ controls: { faults: [{ kind: 'timeout' }] } });
    const t0 = Date.now();
    const err = await connectorFor(s, { requestTimeoutMs: 150, maxRetries: 1 }).getAccount('mgr-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetUnavailable);
    expect((err as Error).message).toBe('wiki: GET /Users/mgr-1 timed out after 150 ms; gave up after 2 attempts');
    expect(s.requestLog).toHaveLength(2);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('maps 4xx refusals to TargetRejected with the SCIM detail and without the token', async () => {
    const s = await start();
    const err = await connectorFor(s).createAccount({ ...grace, userName: '' }, { enabled: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetRejected);
    expect(err).toMatchObject({ status: 400 });
    expect((err as Error).message).toBe('wiki: POST /Users refused (invalidValue: required attribute userName is missing) (HTTP 400)');

    const wrong = createScimConnector({ name: 'wiki', baseUrl: s.url, token: randomBytes(24).toString('base64url') });
    const denied = await wrong.getAccount('mgr-1').catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(TargetRejected);
    expect(denied).toMatchObject({ status: 401 });
    expect(JSON.stringify({ message: (denied as Error).message, ...(denied as object) })).not.toContain(s.token);
  });

  it('rejects a response that is not a SCIM resource, naming the field', async () => {
    const server = await listen((req, res) => sendJson(res, 200, { id: 'u1', userName: 42 }, {}, 'application/scim+json'));
    running.push(server);
    const c = createScimConnector({ name: 'odd', baseUrl: `${server.url}/scim/v2`, token: 't0k3n', maxRetries: 0 });
    await expect(c.getAccount('u1')).rejects.toThrow('odd: GET /Users/u1 answered with an invalid SCIM User u1: userName: Invalid input: expected string, received number');
  });

  it('accepts apps that answer PATCH with 204 No Content', async () => {
    let active = true;
    const server = await listen((req, res) => {
      if (req.method === 'PATCH') {
        active = false;
        res.writeHead(204).end();
      } else {
        sendJson(res, 200, { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], id: 'u1', userName: 'kim@example.com', active }, {}, 'application/scim+json');
      }
    });
    running.push(server);
    const c = createScimConnector({ name: 'terse', baseUrl: `${server.url}/scim/v2`, token: 't0k3n' });
    expect(await c.setStatus('u1', 'disabled')).toMatchObject({ changed: true });
    expect((await c.getAccount('u1')).status).toBe('disabled');
  });

  it('paces itself from X-RateLimit headers instead of running into 429s', async () => {
    const s = await start({ controls: { rateLimit: { limit: 5, windowMs: 1_000 } } });
    const c = connectorFor(s, { maxConcurrent: 4 });
    const results = await Promise.all(Array.from({ length: 12 }, () => c.getAccount('mgr-1')));
    expect(results.every((a) => a.id === 'mgr-1')).toBe(true);
    // 12 calls at 5 per window need three windows; the governor waits instead of being refused.
    expect(s.requestLog.filter((e) => e.status === 429)).toEqual([]);
    expect(s.requestLog).toHaveLength(12);
    expect(c.governor.stats.waits).toBeGreaterThan(0);
  });

  it('never puts the token in a change record', async () => {
    const s = await start();
    const c = connectorFor(s);
    const records: ChangeRecord[] = [];
    records.push(...(await converge(c, grace, joiner())).changes, ...(await converge(c, grace, leaver(), { forceRevoke: true })).changes);
    expect(records.length).toBeGreaterThan(5);
    expect(JSON.stringify(records)).not.toContain(s.token);
  });
});
