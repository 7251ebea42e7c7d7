/**
 * The HRIS webhooks as API Gateway invokes them: the canonical `POST /hris/events` and BambooHR's
 * `POST /hris/bamboohr`. Deps are the test AppDeps (real ledger on dynalite, recording queue).
 * Every refusal is checked for its status, its message, and that nothing was recorded or queued.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createBambooHrWebhookHandler, createHrisWebhookHandler } from '#handlers/hris-webhook';
import { signBambooHr } from '#core/bamboohr';
import { sha256Hex } from '#core/hash';
import { MAX_EVENT_BYTES } from '#core/hr-event';
import { signCanonical } from '#core/signature';
import { apiEvent, bodyOf } from '../helpers/api-gateway.ts';
import { testDeps, useDynalite, type TestDeps } from '../helpers/deps.ts';
import { worker } from '../helpers/policy.ts';

const dynamo = useDynalite();

function hire(over: Record<string, unknown> = {}, workerOver: Record<string, unknown> = {}) {
  return {
    eventId: 'wd-0001',
    eventType: 'hire',
    effectiveDate: '2026-12-01',
    occurredAt: '2026-11-19T16:04:11Z',
    worker: { ...worker(), ...workerOver },
    ...over,
  };
}

async function setup() {
  const deps = await testDeps(dynamo());
  return { deps, handler: createHrisWebhookHandler(async () => deps), bamboo: createBambooHrWebhookHandler(async () => deps) };
}

function signed(deps: TestDeps, body: string | Uint8Array, opts: { secret?: string; at?: number; headers?: Record<string, string> } = {}) {
  const sig = signCanonical(opts.secret ?? deps.secrets.current('hrisWebhook'), body, opts.at ?? deps.clock.seconds());
  return apiEvent({ path: '/hris/events', headers: { 'Content-Type': 'application/json', ...sig, ...opts.headers }, body });
}

/** Nothing recorded for the person, nothing on the queue. */
async function expectNothingAccepted(deps: TestDeps, employeeId = 'E1001') {
  expect(deps.queue.attempts).toEqual([]);
  expect(await deps.ledger.listRunsByEmployee(employeeId)).toEqual([]);
}

describe('POST /hris/events — accepted', () => {
  it('records the run (RECEIVED, readable at once), enqueues it by person, answers 202', async () => {
    const { deps, handler } = await setup();
    const body = JSON.stringify(hire());
    const res = await handler(signed(deps, body));
    expect(res.statusCode).toBe(202);
    const out = bodyOf(res);
    expect(Object.keys(out).sort()).toEqual(['duplicate', 'idempotencyKey', 'runId']);
    expect(out.duplicate).toBe(false);
    expect(out.runId).toBe(`run-${out.idempotencyKey.slice(0, 32)}`);

    const run = await deps.ledger.getRun(out.runId);
    expect(run).toMatchObject({
      status: 'RECEIVED',
      employeeId: 'E1001',
      eventType: 'hire',
      lifecycle: 'joiner',
      idempotencyKey: out.idempotencyKey,
      eventHash: sha256Hex(body),
      rawEvent: body,
      mappingVersion: deps.currentPolicy.mappingVersion,
      effectiveAt: '2026-12-01T00:00:00+00:00',
      occurredAt: '2026-11-19T16:04:11.000Z',
      enqueuedAt: '2026-11-20T09:00:00.000Z',
    });
    expect(deps.queue.sent).toEqual([
      { message: { kind: 'hr-event', runId: out.runId, employeeId: 'E1001', lifecycle: 'joiner' }, groupId: 'E1001', deduplicationId: out.idempotencyKey },
    ]);
  });

  it('a replay inside the window is a duplicate: same runId, no second message', async () => {
    const { deps, handler } = await setup();
    const request = signed(deps, JSON.stringify(hire()));
    const first = bodyOf(await handler(request));
    deps.clock.advance(120_000);
    const again = await handler(request);
    expect(again.statusCode).toBe(202);
    expect(bodyOf(again)).toEqual({ ...first, duplicate: true });
    expect(deps.queue.sent).toHaveLength(1);
    expect(await deps.ledger.listRunsByEmployee('E1001')).toHaveLength(1);
  });

  it('a redelivery with a fresh signature and another eventId for the same change is the same run', async () => {
    const { deps, handler } = await setup();
    const first = bodyOf(await handler(signed(deps, JSON.stringify(hire()))));
    deps.clock.advance(3_600_000);
    const second = bodyOf(await handler(signed(deps, JSON.stringify(hire({ eventId: 'wd-0001-retry', occurredAt: '2026-11-19T16:05:00Z' })))));
    expect(second).toEqual({ ...first, duplicate: true });
    // A different, access-relevant change on the same day is not swallowed.
    const third = bodyOf(await handler(signed(deps, JSON.stringify(hire({ eventId: 'wd-0002' }, { department: 'Sales' })))));
    expect(third.duplicate).toBe(false);
    expect(third.runId).not.toBe(first.runId);
    expect(deps.queue.sent.map((s) => s.message)).toHaveLength(2);
  });

  it('accepts unicode names (stored NFC-normalised) and keeps the raw bytes as sent', async () => {
    const { deps, handler } = await setup();
    const nfd = 'Zoe\u0308'; // "Zoë" with a combining diaeresis
    const body = JSON.stringify(hire({}, { givenName: nfd, familyName: '山田 Ñúñez', location: 'São Paulo' }));
    const res = await handler(signed(deps, body));
    expect(res.statusCode).toBe(202);
    const run = await deps.ledger.getRun(bodyOf(res).runId);
    expect((run!.event as any).worker.givenName).toBe('Zo\u00eb');
    expect((run!.event as any).worker.familyName).toBe('山田 Ñúñez');
    expect(run!.rawEvent).toBe(body);
    expect(run!.eventHash).toBe(sha256Hex(Buffer.from(body, 'utf8')));
  });

  it('verifies and hashes a base64-encoded body as the bytes sent', async () => {
    const { deps, handler } = await setup();
    const bytes = Buffer.from(JSON.stringify(hire(), null, 2) + '\n', 'utf8');
    const sig = signCanonical(deps.secrets.current('hrisWebhook'), bytes, deps.clock.seconds());
    const res = await handler(apiEvent({ path: '/hris/events', headers: { 'content-type': 'application/json; charset=UTF-8', ...sig }, body: bytes }));
    expect(res.statusCode).toBe(202);
    expect((await deps.ledger.getRun(bodyOf(res).runId))!.eventHash).toBe(sha256Hex(bytes));
  });

  it('accepts the old secret during a rotation, and several v1 entries', async () => {
    const { deps, handler } = await setup();
    const [oldSecret, newSecret] = [randomBytes(32).toString('hex'), randomBytes(32).toString('hex')];
    deps.secrets.set('hrisWebhook', [newSecret, oldSecret]);
    const body = JSON.stringify(hire());
    expect((await handler(signed(deps, body, { secret: oldSecret }))).statusCode).toBe(202);
    const both = `${signCanonical(randomBytes(8).toString('hex'), body, deps.clock.seconds())['X-JML-Signature']},${signCanonical(newSecret, body, deps.clock.seconds())['X-JML-Signature']}`;
    const res = await handler(signed(deps, body, { secret: newSecret, headers: { 'X-JML-Signature': both } }));
    expect(res.statusCode).toBe(202);
    expect(bodyOf(res).duplicate).toBe(true);
  });
});

describe('POST /hris/events — refused, nothing recorded or enqueued', () => {
  const cases: Array<[string, (deps: TestDeps, body: string) => ReturnType<typeof apiEvent>, string, RegExp]> = [
    ['wrong secret', (d, b) => signed(d, b, { secret: randomBytes(32).toString('hex') }), 'bad_signature', /does not match the body and X-JML-Timestamp/],
    ['timestamp 301 s old (skew or replay)', (d, b) => signed(d, b, { at: d.clock.seconds() - 301 }), 'stale_timestamp', /more than 300 s away/],
    ['timestamp 301 s ahead', (d, b) => signed(d, b, { at: d.clock.seconds() + 301 }), 'stale_timestamp', /more than 300 s away/],
    [
      'body changed by one byte after signing',
      (d, b) => {
        const ev = signed(d, b);
        ev.body = b.replace('"Ada"', '"Adb"');
        return ev;
      },
      'bad_signature',
      /does not match/,
    ],
    [
      'missing X-JML-Timestamp',
      (d, b) => apiEvent({ path: '/hris/events', headers: { 'Content-Type': 'application/json', 'X-JML-Signature': signCanonical(d.secrets.current('hrisWebhook'), b, d.clock.seconds())['X-JML-Signature'] }, body: b }),
      'missing_timestamp',
      /X-JML-Timestamp header is missing/,
    ],
    [
      'missing X-JML-Signature',
      (d, b) => apiEvent({ path: '/hris/events', headers: { 'Content-Type': 'application/json', 'X-JML-Timestamp': String(d.clock.seconds()) }, body: b }),
      'missing_signature',
      /X-JML-Signature header is missing/,
    ],
    ['malformed signature', (d, b) => signed(d, b, { headers: { 'X-JML-Signature': 'sha256=abc' } }), 'malformed_signature', /must be one to 8/],
    [
      'two different timestamps',
      (d, b) => {
        const ev = signed(d, b);
        ev.multiValueHeaders['X-JML-Timestamp'] = [String(d.clock.seconds()), String(d.clock.seconds() - 1)];
        return ev;
      },
      'missing_timestamp',
      /repeated with different values/,
    ],
  ];

  for (const [name, make, reason, message] of cases) {
    it(`401 for ${name}`, async () => {
      const { deps, handler } = await setup();
      const res = await handler(make(deps, JSON.stringify(hire())));
      expect(res.statusCode).toBe(401);
      const out = bodyOf(res);
      expect(out).toMatchObject({ error: 'invalid_signature', reason });
      expect(out.message).toMatch(message);
      expect(res.body).not.toContain(deps.secrets.current('hrisWebhook'));
      await expectNothingAccepted(deps);
    });
  }

  it('a replay after the 300 s window is refused even though it was accepted before', async () => {
    const { deps, handler } = await setup();
    const request = signed(deps, JSON.stringify(hire()));
    expect((await handler(request)).statusCode).toBe(202);
    deps.clock.advance(301_000);
    const res = await handler(request);
    expect(res.statusCode).toBe(401);
    expect(bodyOf(res).reason).toBe('stale_timestamp');
    expect(deps.queue.sent).toHaveLength(1);
  });

  it('413 for a body over 256 KiB (plain and base64), before the signature is checked', async () => {
    const { deps, handler } = await setup();
    const big = JSON.stringify({ ...hire(), pad: 'x'.repeat(MAX_EVENT_BYTES) });
    const plain = await handler(signed(deps, big));
    expect(plain.statusCode).toBe(413);
    expect(bodyOf(plain)).toEqual({ error: 'payload_too_large', message: `body must be at most ${MAX_EVENT_BYTES} bytes` });
    const binary = await handler(apiEvent({ path: '/hris/events', headers: { 'Content-Type': 'application/json' }, body: Buffer.alloc(MAX_EVENT_BYTES + 1, 0x20) }));
    expect(binary.statusCode).toBe(413);
    // Exactly at the limit is not "too large" (it fails later, on its content).
    const atLimit = JSON.stringify(hire()).padEnd(MAX_EVENT_BYTES, ' ');
    expect((await handler(signed(deps, atLimit))).statusCode).toBe(202);
    expect(deps.queue.sent).toHaveLength(1);
  });

  it('415 unless Content-Type is application/json (UTF-8)', async () => {
    const { deps, handler } = await setup();
    const body = JSON.stringify(hire());
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=iso-8859-1', 'application/jsonp', undefined]) {
      const ev = signed(deps, body);
      delete ev.headers['Content-Type'];
      delete ev.multiValueHeaders['Content-Type'];
      if (ct) ev.headers['content-type'] = ct;
      const res = await handler(ev);
      expect(res.statusCode, String(ct)).toBe(415);
      expect(bodyOf(res)).toEqual({ error: 'unsupported_media_type', message: 'Content-Type must be application/json (UTF-8)' });
    }
    await expectNothingAccepted(deps);
  });

  it('400 "body is not valid JSON" for a signed body that is not JSON', async () => {
    const { deps, handler } = await setup();
    for (const body of ['{"eventId": "x",', '', 'null garbage', '\ufeff{}']) {
      const res = await handler(signed(deps, body));
      expect(res.statusCode).toBe(400);
      expect(bodyOf(res)).toEqual({ error: 'invalid_json', message: 'body is not valid JSON' });
    }
    const notUtf8 = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
    expect(bodyOf(await handler(signed(deps, notUtf8))).message).toBe('body is not valid JSON');
    await expectNothingAccepted(deps);
  });

  it('400 for deeply nested JSON (no stack blown, whatever the depth)', async () => {
    const { deps, handler } = await setup();
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const res = await handler(signed(deps, deep));
    expect(res.statusCode).toBe(400);
    expect(bodyOf(res)).toEqual({ error: 'invalid_json', message: 'body nests objects or arrays deeper than 16 levels' });
    let nested: unknown = 'x';
    for (let i = 0; i < 20; i++) nested = { a: nested };
    const inWorker = await handler(signed(deps, JSON.stringify(hire({}, { department: nested }))));
    expect(inWorker.statusCode).toBe(400);
    // Brackets inside strings are text, not nesting.
    const brackets = await handler(signed(deps, JSON.stringify(hire({ eventId: '[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{' }))));
    expect(brackets.statusCode).toBe(202);
  });

  it('400 invalid_event naming every bad field, never echoing values', async () => {
    const { deps, handler } = await setup();
    const bad = hire({ eventType: 'promotion', extra: 1 }, { email: 'not-an-email', employeeId: 'E 1001' });
    delete (bad.worker as any).startDate;
    const res = await handler(signed(deps, JSON.stringify(bad)));
    expect(res.statusCode).toBe(400);
    const out = bodyOf(res);
    expect(out.error).toBe('invalid_event');
    expect(out.issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^eventType: must be one of hire, change/),
        '(root): unknown field(s) extra',
        'worker.email: must be an email address',
        expect.stringMatching(/^worker\.employeeId: /),
        'worker.startDate: required',
      ]),
    );
    expect(res.body).not.toContain('not-an-email');
    const termination = await handler(signed(deps, JSON.stringify(hire({ eventType: 'termination' }))));
    expect(bodyOf(termination).issues).toEqual(['worker.terminationDate: required for a termination']);
    await expectNothingAccepted(deps);
  });

  it('405 for other methods', async () => {
    const { deps, handler } = await setup();
    const ev = signed(deps, JSON.stringify(hire()));
    ev.httpMethod = 'PUT';
    const res = await handler(ev);
    expect(res.statusCode).toBe(405);
    expect(res.headers?.Allow).toBe('POST');
    await expectNothingAccepted(deps);
  });

  it('500 (retry) when the queue is down; the retry finishes the enqueue as a duplicate', async () => {
    const { deps, handler } = await setup();
    const request = signed(deps, JSON.stringify(hire()));
    deps.queue.failNext();
    const res = await handler(request);
    expect(res.statusCode).toBe(500);
    expect(bodyOf(res)).toEqual({ error: 'internal_error', message: 'the request could not be completed; retry later' });
    const [run] = await deps.ledger.listRunsByEmployee('E1001');
    expect(run!.status).toBe('RECEIVED');
    expect(run!.enqueuedAt).toBeUndefined();
    const retry = await handler(request);
    expect(retry.statusCode).toBe(202);
    expect(bodyOf(retry)).toMatchObject({ runId: run!.runId, duplicate: true });
    expect(deps.queue.sent.map((s) => s.message)).toEqual([{ kind: 'hr-event', runId: run!.runId, employeeId: 'E1001', lifecycle: 'joiner' }]);
  });
});

// ---------------------------------------------------------------------------------------------

const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`../fixtures/bamboohr/${name}.json`, import.meta.url)), 'utf8');

function bambooRequest(deps: TestDeps, body: string | Uint8Array, key = deps.secrets.current('bambooHr'), at = deps.clock.seconds()) {
  return apiEvent({ path: '/hris/bamboohr', headers: { 'Content-Type': 'application/json', ...signBambooHr(key, body, at) }, body });
}

describe('POST /hris/bamboohr', () => {
  it('one delivery with several employees → one run per employee, each in its own FIFO group', async () => {
    const { deps, bamboo } = await setup();
    const body = fixture('batch');
    const res = await bamboo(bambooRequest(deps, body));
    expect(res.statusCode).toBe(202);
    const out = bodyOf(res);
    expect(out.ignored).toEqual([]);
    expect(out.runs.map((r: any) => [r.employeeId, r.duplicate])).toEqual([
      ['301', false],
      ['219', false],
      ['174', false],
    ]);
    expect(deps.queue.sent.map((s) => [s.groupId, s.message.kind])).toEqual([
      ['301', 'hr-event'],
      ['219', 'hr-event'],
      ['174', 'hr-event'],
    ]);
    const runs = await Promise.all(out.runs.map((r: any) => deps.ledger.getRun(r.runId)));
    expect(runs.map((r) => r!.eventType)).toEqual(['change', 'termination', 'rehire']);
    // Each run keeps its own entry only: no other person's HR data in its record.
    expect(runs[0]!.rawEvent).toContain('Hannah');
    expect(runs[0]!.rawEvent).not.toContain('Kwame');
    expect(runs[0]!.eventHash).toBe(sha256Hex(runs[0]!.rawEvent));
    expect(runs[1]!.timeline![0]!.note).toBe(`received from BambooHR: entry employees[1] of delivery sha256 ${sha256Hex(body)}`);

    const again = bodyOf(await bamboo(bambooRequest(deps, body)));
    expect(again.runs.map((r: any) => r.duplicate)).toEqual([true, true, true]);
    expect(deps.queue.sent).toHaveLength(3);
  });

  it('reports ignored entries (a Deleted record) and enqueues the rest', async () => {
    const { deps, bamboo } = await setup();
    const payload = JSON.parse(fixture('batch'));
    payload.employees.push({ id: '999', action: 'Deleted', changedFields: [], fields: {} });
    const res = await bamboo(bambooRequest(deps, JSON.stringify(payload)));
    expect(res.statusCode).toBe(202);
    expect(bodyOf(res).ignored).toEqual([expect.objectContaining({ index: 3, employeeId: '999', action: 'Deleted' })]);
    expect(deps.queue.sent).toHaveLength(3);
  });

  it('401 with the BambooHR header names for a wrong key or a changed body', async () => {
    const { deps, bamboo } = await setup();
    const body = fixture('batch');
    const wrong = await bamboo(bambooRequest(deps, body, randomBytes(24).toString('hex')));
    expect(wrong.statusCode).toBe(401);
    expect(bodyOf(wrong)).toMatchObject({ reason: 'bad_signature', message: expect.stringMatching(/^X-BambooHR-Signature does not match/) });
    const changed = bambooRequest(deps, body);
    changed.body = body.replace('Munich', 'Munchi');
    expect(bodyOf(await bamboo(changed)).reason).toBe('bad_signature');
    // The canonical secret does not open the BambooHR route.
    expect((await bamboo(bambooRequest(deps, body, deps.secrets.current('hrisWebhook')))).statusCode).toBe(401);
    expect(deps.queue.attempts).toEqual([]);
  });

  it('refuses the whole delivery when one entry is invalid, naming the BambooHR field', async () => {
    const { deps, bamboo } = await setup();
    const payload = JSON.parse(fixture('batch'));
    delete payload.employees[2].fields.workEmail;
    const res = await bamboo(bambooRequest(deps, JSON.stringify(payload)));
    expect(res.statusCode).toBe(400);
    expect(bodyOf(res).issues).toEqual(['employees[2].fields.workEmail: required']);
    expect(deps.queue.attempts).toEqual([]);
    for (const id of ['301', '219', '174']) expect(await deps.ledger.listRunsByEmployee(id)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz: whatever arrives, never a 5xx, and never a message on the queue without a 202.

const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', 'E1001', 'Engineering', '2026-12-01', '2026-02-30', '0000-00-00', '2026-11-19T16:04:11Z', 'hire', 'termination', 'a@b.example', '\u0000', 'x'.repeat(300)),
);
const value = fc.oneof(text, fc.integer(), fc.boolean(), fc.constant(null), fc.array(text, { maxLength: 2 }), fc.dictionary(fc.string({ maxLength: 5 }), text, { maxKeys: 2 }));

/** A valid event with some fields replaced, removed or added. */
const canonicalPayload = fc
  .tuple(
    fc.dictionary(fc.constantFrom('eventId', 'eventType', 'effectiveDate', 'occurredAt', 'worker', 'extra'), value, { maxKeys: 2 }),
    fc.dictionary(
      fc.constantFrom('employeeId', 'givenName', 'familyName', 'email', 'department', 'location', 'jobCode', 'managerId', 'employmentType', 'startDate', 'terminationDate', 'lastDayWorked'),
      fc.option(value, { nil: undefined }),
      { maxKeys: 3 },
    ),
    fc.constantFrom('hire', 'change', 'termination', 'rehire', 'leave_start', 'leave_end'),
  )
  .map(([top, w, eventType]) => {
    const base: any = hire({ eventType }, eventType === 'termination' ? { terminationDate: '2026-12-31' } : {});
    for (const [k, v] of Object.entries(w)) if (v === undefined) delete base.worker[k];
    else base.worker[k] = v;
    return { ...base, ...top };
  });

const bambooPayload = fc
  .array(
    fc.record({
      id: fc.oneof(fc.constantFrom('301', '219', '77'), fc.integer({ min: 0, max: 999 }), text),
      action: fc.constantFrom('Created', 'Updated', 'Deleted', undefined, 'Other'),
      timestamp: fc.oneof(fc.constant(undefined), fc.constantFrom('2026-09-14T10:05:12+0000', '2026-09-14T10:05:12Z', 'yesterday'), text),
      changedFields: fc.subarray(['location', 'hireDate', 'status', 'terminationDate', 'employmentHistoryStatus']),
      fields: fc.tuple(fc.constantFrom(0, 1, 2), fc.dictionary(
        fc.constantFrom('firstName', 'lastName', 'workEmail', 'department', 'location', 'jobTitle', 'supervisorEId', 'employmentHistoryStatus', 'hireDate', 'originalHireDate', 'terminationDate', 'status', 'other'),
        fc.oneof(value, fc.record({ value: fc.oneof(text, fc.constant(null)) })),
        { maxKeys: 4 },
      )),
    }),
    { minLength: 0, maxLength: 3 },
  )
  .map((entries) => {
    const base = JSON.parse(fixture('batch')).employees;
    return {
      employees: entries.map((e, i) => {
        const [from, over] = e.fields;
        const entry: any = { ...base[(from + i) % 3], id: e.id, changedFields: e.changedFields, fields: { ...base[(from + i) % 3].fields, ...over } };
        if (e.action === undefined) delete entry.action;
        else entry.action = e.action;
        if (e.timestamp === undefined) delete entry.timestamp;
        else entry.timestamp = e.timestamp;
        return entry;
      }),
    };
  });

describe('fuzz', () => {
  it('canonical payloads: 202 or 400 only; a message only with a 202, exactly one per new run', async () => {
    const { deps, handler } = await setup();
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(canonicalPayload, async (payload) => {
        const before = deps.queue.attempts.length;
        const res = await handler(signed(deps, JSON.stringify(payload)));
        expect([202, 400]).toContain(res.statusCode);
        const added = deps.queue.attempts.length - before;
        if (res.statusCode !== 202) expect(added).toBe(0);
        else {
          accepted++;
          expect(added).toBe(bodyOf(res).duplicate ? 0 : 1);
          expect(await deps.ledger.getRun(bodyOf(res).runId)).toMatchObject({ status: 'RECEIVED' });
        }
      }),
      { numRuns: 150 },
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it('arbitrary bodies and headers: never a 5xx, never a message', async () => {
    const { deps, handler } = await setup();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ maxLength: 200 }), fc.json(), fc.uint8Array({ maxLength: 200 })),
        fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-16', undefined),
        fc.boolean(),
        fc.option(fc.string({ maxLength: 80 }), { nil: undefined }),
        fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
        async (body, ct, sign, sig, ts) => {
          const ev = sign ? signed(deps, body) : apiEvent({ path: '/hris/events', body });
          ev.headers = { ...ev.headers };
          delete ev.headers['Content-Type'];
          delete ev.multiValueHeaders['Content-Type'];
          if (ct) ev.headers['Content-Type'] = ct;
          if (!sign && sig !== undefined) ev.headers['X-JML-Signature'] = sig;
          if (!sign && ts !== undefined) ev.headers['X-JML-Timestamp'] = ts;
          const res = await handler(ev);
          expect(res.statusCode).toBeLessThan(500);
          expect(res.statusCode).not.toBe(202);
        },
      ),
      { numRuns: 200 },
    );
    expect(deps.queue.attempts).toEqual([]);
  });

  it('BambooHR deliveries: 202 or 400 only; messages only with a 202, one per new run', async () => {
    const { deps, bamboo } = await setup();
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(bambooPayload, async (payload) => {
        const before = deps.queue.attempts.length;
        const res = await bamboo(bambooRequest(deps, JSON.stringify(payload)));
        expect([202, 400]).toContain(res.statusCode);
        const added = deps.queue.attempts.length - before;
        if (res.statusCode !== 202) expect(added).toBe(0);
        else {
          accepted++;
          expect(added).toBe(bodyOf(res).runs.filter((r: any) => !r.duplicate).length);
        }
      }),
      { numRuns: 120 },
    );
    expect(accepted).toBeGreaterThan(0);
  });
});
