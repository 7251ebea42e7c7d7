/**
 * Okta's event hook as API Gateway invokes it: the one-time verification GET, the Authorization
 * secret on every request, and which System Log events become drift messages on the queue.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { oktaEventMetaKey } from '#app/ingest';
import { authorizationMatches, createOktaEventHookHandler } from '#handlers/okta-event-hook';
import type { PersonRecord } from '#core/ledger';
import type { PersonStatus } from '#core/hr-event';
import { apiEvent, bodyOf } from '../helpers/api-gateway.ts';
import { testDeps, useDynalite, type TestDeps } from '../helpers/deps.ts';
import { withPolicy, worker } from '../helpers/policy.ts';

const dynamo = useDynalite();
const JML_ACTOR = '00ujmlservice0001';

async function setup(options: Parameters<typeof testDeps>[1] = {}) {
  const deps = await testDeps(dynamo(), options);
  return { deps, hook: createOktaEventHookHandler(async () => deps, { selfActorIds: [JML_ACTOR] }) };
}

async function person(deps: TestDeps, employeeId: string, oktaId: string, status: PersonStatus) {
  const p: PersonRecord = {
    employeeId,
    worker: worker({ employeeId, email: `${employeeId.toLowerCase()}@acme.example` }),
    status,
    version: '2026-11-01T00:00:00.000Z',
    lastRunId: 'run-0',
    links: { okta: oktaId },
    grantedAt: {},
    approvedBundles: [],
    rejectedBundles: [],
    updatedAt: '2026-11-01T00:00:00.000Z',
  };
  await deps.ledger.putPerson(p, null);
}

interface EventSpec {
  user: string;
  group?: string;
  app?: string;
  actor?: string;
  result?: string;
  uuid?: string;
  published?: string;
}

/** A System Log event as Okta puts it in an event hook delivery. */
function oktaEvent(eventType: string, s: EventSpec) {
  const target: any[] = [{ id: s.user, type: 'User', alternateId: `${s.user}@acme.example`, displayName: 'Some Person', detailEntry: null }];
  if (s.group) target.push({ id: `00g${s.group.replace(/\W/g, '')}`, type: 'UserGroup', alternateId: 'unknown', displayName: s.group, detailEntry: null });
  if (s.app) target.push({ id: '0oaapp1', type: 'AppInstance', alternateId: s.app, displayName: s.app, detailEntry: null });
  return {
    uuid: s.uuid ?? randomUUID(),
    published: s.published ?? '2026-11-20T08:59:30.123Z',
    eventType,
    version: '0',
    displayMessage: eventType,
    severity: 'INFO',
    client: { userAgent: { rawUserAgent: 'Mozilla/5.0', os: 'Mac OS X', browser: 'CHROME' }, zone: 'null', device: 'Computer', id: null, ipAddress: '203.0.113.9' },
    device: null,
    actor: { id: s.actor ?? '00uadmin0000001', type: 'User', alternateId: s.actor === JML_ACTOR ? 'jml-service@acme.example' : 'it.admin@acme.example', displayName: 'IT Admin', detailEntry: null },
    outcome: { result: s.result ?? 'SUCCESS', reason: null },
    target,
    transaction: { type: 'WEB', id: 'Y1nRZ', detail: {} },
    debugContext: { debugData: {} },
    legacyEventType: null,
    authenticationContext: {},
    securityContext: {},
  };
}

function delivery(events: unknown[]) {
  return {
    eventType: 'com.okta.event_hook',
    eventTypeVersion: '1.0',
    cloudEventsVersion: '0.1',
    source: 'https://acme.okta.com/api/v1/eventHooks/who8tsqyrhCdmetzx135',
    eventId: randomUUID(),
    eventTime: '2026-11-20T08:59:31.000Z',
    contentType: 'application/json',
    data: { events },
  };
}

function post(deps: TestDeps, body: unknown, headers: Record<string, string> = {}) {
  return apiEvent({
    method: 'POST',
    path: '/okta/events',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', Authorization: deps.secrets.current('oktaHook'), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('GET /okta/events — one-time verification', () => {
  it('echoes the challenge as { verification } when Authorization matches', async () => {
    const { deps, hook } = await setup();
    const challenge = randomBytes(24).toString('base64url');
    const res = await hook(
      apiEvent({ method: 'GET', path: '/okta/events', headers: { Authorization: deps.secrets.current('oktaHook'), 'x-okta-verification-challenge': challenge } }),
    );
    expect(res.statusCode).toBe(200);
    expect(res.headers?.['Content-Type']).toBe('application/json; charset=utf-8');
    expect(bodyOf(res)).toEqual({ verification: challenge });
  });

  it('does not echo the challenge without the secret; 400 without a challenge', async () => {
    const { deps, hook } = await setup();
    const challenge = randomBytes(24).toString('base64url');
    for (const auth of [undefined, '', randomBytes(16).toString('hex'), `${deps.secrets.current('oktaHook')} `]) {
      const res = await hook(
        apiEvent({ method: 'GET', path: '/okta/events', headers: { 'X-Okta-Verification-Challenge': challenge, ...(auth !== undefined ? { Authorization: auth } : {}) } }),
      );
      expect(res.statusCode).toBe(401);
      expect(res.body).not.toContain(challenge);
      expect(bodyOf(res)).toEqual({ error: 'unauthorized', message: 'Authorization header does not match the event hook secret' });
    }
    const noChallenge = await hook(apiEvent({ method: 'GET', path: '/okta/events', headers: { Authorization: deps.secrets.current('oktaHook') } }));
    expect(noChallenge.statusCode).toBe(400);
    expect(bodyOf(noChallenge).message).toBe('X-Okta-Verification-Challenge header is missing');
  });

  it('accepts either secret during a rotation', async () => {
    const { deps, hook } = await setup();
    const [next, current] = [randomBytes(20).toString('hex'), randomBytes(20).toString('hex')];
    deps.secrets.set('oktaHook', [next, current]);
    for (const auth of [next, current]) {
      const res = await hook(apiEvent({ method: 'GET', path: '/okta/events', headers: { authorization: auth, 'X-Okta-Verification-Challenge': 'abc' } }));
      expect(bodyOf(res)).toEqual({ verification: 'abc' });
    }
  });

  it('authorizationMatches compares against every secret and refuses an empty configuration', () => {
    expect(authorizationMatches('a', ['b', 'a'])).toBe(true);
    expect(authorizationMatches('a', ['b', 'c'])).toBe(false);
    expect(authorizationMatches(undefined, ['a'])).toBe(false);
    expect(() => authorizationMatches('a', [''])).toThrow('no oktaHook secret configured');
  });
});

describe('POST /okta/events — drift signals', () => {
  it('401 without the secret, nothing enqueued', async () => {
    const { deps, hook } = await setup();
    await person(deps, 'E1001', '00u1001', 'terminated');
    const body = delivery([oktaEvent('user.lifecycle.reactivate', { user: '00u1001' })]);
    expect((await hook(post(deps, body, { Authorization: 'wrong' }))).statusCode).toBe(401);
    const noAuth = post(deps, body);
    delete noAuth.headers.Authorization;
    delete noAuth.multiValueHeaders.Authorization;
    expect((await hook(noAuth)).statusCode).toBe(401);
    expect(deps.queue.attempts).toEqual([]);
  });

  it('a terminated person reactivated in Okta → one drift message in the person\'s group, keyed by the event uuid', async () => {
    const { deps, hook } = await setup();
    await person(deps, 'E1001', '00u1001', 'terminated');
    const ev = oktaEvent('user.lifecycle.reactivate', { user: '00u1001', published: '2026-11-20T08:59:30.123+00:00' });
    const res = await hook(post(deps, delivery([ev])));
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('');
    expect(deps.queue.sent).toEqual([
      {
        message: {
          kind: 'drift',
          eventId: ev.uuid,
          employeeId: 'E1001',
          target: 'okta',
          accountId: '00u1001',
          eventType: 'user.lifecycle.reactivate',
          actor: 'it.admin@acme.example',
          published: '2026-11-20T08:59:30.123Z',
        },
        groupId: 'E1001',
        deduplicationId: ev.uuid,
      },
    ]);
    // The Okta event is kept as evidence for the exception.
    expect(await deps.ledger.getMeta(oktaEventMetaKey(ev.uuid))).toMatchObject({
      uuid: ev.uuid,
      actor: { id: '00uadmin0000001', alternateId: 'it.admin@acme.example' },
      target: [expect.objectContaining({ id: '00u1001', type: 'User' })],
      outcome: { result: 'SUCCESS', reason: null },
    });
  });

  it('keeps what matters and skips the rest', async () => {
    const { deps, hook } = await setup();
    await person(deps, 'E1001', '00u1001', 'active');
    await person(deps, 'E1002', '00u1002', 'terminated');
    await person(deps, 'E1003', '00u1003', 'on_leave');
    const kept = [
      oktaEvent('group.user_membership.add', { user: '00u1001', group: 'Production Access' }), // managed group
      oktaEvent('group.user_membership.add', { user: '00u1002', group: 'Book Club' }), // any group, for a leaver
      oktaEvent('user.lifecycle.unsuspend', { user: '00u1003' }), // on leave, unsuspended
      oktaEvent('application.user_membership.add', { user: '00u1002', app: 'Zoom' }), // app for a leaver
      oktaEvent('user.account.privilege.grant', { user: '00u9999' }), // admin role, unknown account
    ];
    const skipped = [
      oktaEvent('user.lifecycle.activate', { user: '00u1001' }), // active in HR: expected
      oktaEvent('user.lifecycle.reactivate', { user: '00u7777' }), // not a person jml manages
      oktaEvent('user.lifecycle.unsuspend', { user: '00u1001' }), // active: not drift
      oktaEvent('group.user_membership.add', { user: '00u1001', group: 'Book Club' }), // unmanaged group
      oktaEvent('application.user_membership.add', { user: '00u1001', app: 'Zoom' }), // unmanaged app
      oktaEvent('group.user_membership.add', { user: '00u1002', group: 'Engineering', actor: JML_ACTOR }), // jml's own change
      oktaEvent('user.lifecycle.reactivate', { user: '00u1002', result: 'FAILURE' }), // nothing changed
      oktaEvent('user.session.start', { user: '00u1002' }), // not watched
    ];
    const res = await hook(post(deps, delivery([...skipped.slice(0, 4), ...kept, ...skipped.slice(4)])));
    expect(res.statusCode).toBe(200);
    expect(new Set(deps.queue.sent.map((s) => s.deduplicationId))).toEqual(new Set(kept.map((e) => e.uuid)));
    const byEvent = Object.fromEntries(deps.queue.sent.map((s) => [s.deduplicationId, s]));
    expect(byEvent[kept[0]!.uuid]!.groupId).toBe('E1001');
    expect(byEvent[kept[4]!.uuid]).toMatchObject({ groupId: 'okta-00u9999', message: { accountId: '00u9999', eventType: 'user.account.privilege.grant' } });
    expect(byEvent[kept[4]!.uuid]!.message).not.toHaveProperty('employeeId');
    for (const e of skipped) expect(await deps.ledger.getMeta(oktaEventMetaKey(e.uuid))).toBeNull();
  });

  it('one person\'s events are enqueued in delivery order; Okta\'s retry of a delivery is deduplicated', async () => {
    const { deps, hook } = await setup();
    await person(deps, 'E1002', '00u1002', 'terminated');
    const events = ['Engineering', 'Sales', 'Finance', 'Production Access'].map((g, i) =>
      oktaEvent('group.user_membership.add', { user: '00u1002', group: g, published: `2026-11-20T08:59:3${i}.000Z` }),
    );
    const body = delivery(events);
    expect((await hook(post(deps, body))).statusCode).toBe(200);
    expect(deps.queue.sent.map((s) => s.deduplicationId)).toEqual(events.map((e) => e.uuid));
    expect((await hook(post(deps, body))).statusCode).toBe(200);
    expect(deps.queue.sent).toHaveLength(8);
    expect(deps.queue.delivered().map((s) => s.deduplicationId)).toEqual(events.map((e) => e.uuid));
  });

  it('answers a 100-event delivery well within Okta\'s 3 s', async () => {
    const { deps, hook } = await setup();
    for (let i = 0; i < 20; i++) await person(deps, `E3${String(i).padStart(3, '0')}`, `00u3${String(i).padStart(3, '0')}`, i % 2 ? 'terminated' : 'active');
    const events = Array.from({ length: 100 }, (_, i) =>
      oktaEvent(i % 3 ? 'group.user_membership.add' : 'user.lifecycle.reactivate', { user: `00u3${String(i % 20).padStart(3, '0')}`, group: 'Book Club' }),
    );
    const started = performance.now();
    const res = await hook(post(deps, delivery(events)));
    const ms = performance.now() - started;
    expect(res.statusCode).toBe(200);
    // Odd people are terminated: all their events (reactivations and group adds) are drift.
    expect(deps.queue.sent).toHaveLength(events.filter((_, i) => (i % 20) % 2 === 1).length);
    expect(ms).toBeLessThan(3000);
    console.info(`okta event hook: 100 events (${deps.queue.sent.length} drift) answered in ${ms.toFixed(0)} ms`);
  });

  it('with Entra as the identity provider, Okta events are not drift', async () => {
    const policy = withPolicy((doc) => {
      doc.targets[0].kind = 'entra';
    });
    const { deps, hook } = await setup({ policy });
    await person(deps, 'E1002', '00u1002', 'terminated');
    expect((await hook(post(deps, delivery([oktaEvent('user.lifecycle.reactivate', { user: '00u1002' })])))).statusCode).toBe(200);
    expect(deps.queue.attempts).toEqual([]);
  });

  it('400 naming the field for something that is not an event hook delivery; 415, 413 and bad JSON refused', async () => {
    const { deps, hook } = await setup();
    const noUuid = oktaEvent('user.lifecycle.reactivate', { user: '00u1' }) as any;
    delete noUuid.uuid;
    const res = await hook(post(deps, delivery([noUuid])));
    expect(res.statusCode).toBe(400);
    expect(bodyOf(res)).toMatchObject({ error: 'invalid_event', issues: ['data.events[0].uuid: required'] });
    expect(bodyOf(await hook(post(deps, { data: {} }))).issues).toEqual(['data.events: required']);
    expect(bodyOf(await hook(post(deps, { ...delivery([]), eventType: 'com.example.other' }))).issues).toEqual([expect.stringMatching(/^eventType: /)]);
    expect(bodyOf(await hook(post(deps, '{"data":'))).message).toBe('body is not valid JSON');
    expect((await hook(post(deps, delivery([]), { 'Content-Type': 'text/plain' }))).statusCode).toBe(415);
    expect((await hook(post(deps, JSON.stringify(delivery([])).padEnd(1024 * 1024 + 1, ' ')))).statusCode).toBe(413);
    expect((await hook(post(deps, '['.repeat(5000) + ']'.repeat(5000)))).statusCode).toBe(400);
    const put = post(deps, delivery([]));
    put.httpMethod = 'PUT';
    expect((await hook(put)).statusCode).toBe(405);
    expect(deps.queue.attempts).toEqual([]);
  });
});
