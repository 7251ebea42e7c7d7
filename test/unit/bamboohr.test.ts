import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  EMPLOYEE_NUMBER_KEYS,
  bambooToCanonical,
  mapBambooHrWebhook,
  signBambooHr,
  verifyBambooHr,
  type BambooToCanonicalOptions,
} from '#core/bamboohr';
import { ValidationError } from '#core/errors';
import { normaliseHrEvent, type HrEventInput } from '#core/hr-event';
import { describeSignatureFailure, signCanonical } from '#core/signature';
import { BAMBOOHR_SCHEME } from '#core/bamboohr';

const fixture = (name: string): string =>
  readFileSync(fileURLToPath(new URL(`../fixtures/bamboohr/${name}.json`, import.meta.url)), 'utf8');
const payload = (name: string): any => JSON.parse(fixture(name));

const privateKey = () => randomBytes(24).toString('hex');
const NOW = 1_773_046_800; // 2026-03-09T09:00:00Z
const options: BambooToCanonicalOptions = { now: () => new Date('2026-09-14T12:00:00Z') };
const TZ = { timeZone: 'Europe/Berlin' };

function only(events: HrEventInput[]): HrEventInput {
  expect(events).toHaveLength(1);
  return events[0]!;
}

function validationIssues(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    return (e as ValidationError).issues;
  }
  throw new Error('expected a ValidationError');
}

describe('verifyBambooHr', () => {
  const body = fixture('department-change');

  it('accepts what BambooHR sends: hex HMAC-SHA256 of the raw body followed by the timestamp', () => {
    const key = privateKey();
    const headers = signBambooHr(key, body, NOW);
    expect(verifyBambooHr({ privateKey: key, rawBody: body, headers, nowSeconds: NOW + 12 })).toEqual({ ok: true });
    expect(verifyBambooHr({ privateKey: key, rawBody: Buffer.from(body), headers, nowSeconds: NOW })).toEqual({ ok: true });
  });

  it('matches an independent computation over body + timestamp (openssl), not timestamp + "." + body', () => {
    const key = privateKey();
    const script = `{ printf '%s' "$BODY"; printf '%s' "$TS"; } | openssl dgst -sha256 -hmac "$KEY" -r | cut -d' ' -f1`;
    const digest = execFileSync('sh', ['-c', script], {
      env: { PATH: process.env.PATH, BODY: body, TS: String(NOW), KEY: key },
      encoding: 'utf8',
    }).trim();
    const headers = { 'x-bamboohr-timestamp': String(NOW), 'x-bamboohr-signature': digest };
    expect(verifyBambooHr({ privateKey: key, rawBody: body, headers, nowSeconds: NOW })).toEqual({ ok: true });
    expect(signBambooHr(key, body, NOW)['X-BambooHR-Signature']).toBe(digest);

    // The canonical jml scheme's message over the same inputs is a different signature.
    const canonicalDigest = signCanonical(key, body, NOW)['X-JML-Signature'].slice(3);
    const wrongScheme = { 'X-BambooHR-Timestamp': String(NOW), 'X-BambooHR-Signature': canonicalDigest };
    expect(verifyBambooHr({ privateKey: key, rawBody: body, headers: wrongScheme, nowSeconds: NOW })).toEqual({
      ok: false,
      reason: 'bad_signature',
    });
  });

  it('rejects a wrong private key, and accepts the old key during a rotation', () => {
    const oldKey = privateKey();
    const newKey = privateKey();
    const headers = signBambooHr(oldKey, body, NOW);
    expect(verifyBambooHr({ privateKey: newKey, rawBody: body, headers, nowSeconds: NOW })).toEqual({ ok: false, reason: 'bad_signature' });
    expect(verifyBambooHr({ privateKey: [newKey, oldKey], rawBody: body, headers, nowSeconds: NOW })).toEqual({ ok: true });
  });

  it('rejects clock skew beyond the tolerance either way, and accepts it within', () => {
    const key = privateKey();
    const headers = signBambooHr(key, body, NOW);
    for (const skew of [-300, 0, 300]) {
      expect(verifyBambooHr({ privateKey: key, rawBody: body, headers, nowSeconds: NOW + skew }).ok).toBe(true);
    }
    for (const skew of [-301, 301, 86_400]) {
      expect(verifyBambooHr({ privateKey: key, rawBody: body, headers, nowSeconds: NOW + skew })).toEqual({
        ok: false,
        reason: 'stale_timestamp',
      });
    }
    expect(verifyBambooHr({ privateKey: key, rawBody: body, headers, nowSeconds: NOW + 90, toleranceSeconds: 60 }).ok).toBe(false);
  });

  it('reads an ISO 8601 timestamp header for freshness and signs it exactly as sent', () => {
    const key = privateKey();
    for (const ts of ['2026-03-09T09:00:10+0000', '2026-03-09T10:00:10+01:00', '2026-03-09T09:00:10Z']) {
      const headers = signBambooHr(key, body, ts);
      expect(verifyBambooHr({ privateKey: key, rawBody: body, headers, nowSeconds: NOW })).toEqual({ ok: true });
      expect(verifyBambooHr({ privateKey: key, rawBody: body, headers, nowSeconds: NOW + 400 })).toEqual({
        ok: false,
        reason: 'stale_timestamp',
      });
    }
  });

  it('fails when any single byte of the body, the timestamp or the signature changes', () => {
    const key = privateKey();
    const headers = signBambooHr(key, body, NOW);
    const bytes = Buffer.from(body);
    for (const i of [0, 1, Math.floor(bytes.length / 2), bytes.length - 1]) {
      const tampered = Buffer.from(bytes);
      tampered[i] = tampered[i]! ^ 0x01;
      expect(verifyBambooHr({ privateKey: key, rawBody: tampered, headers, nowSeconds: NOW })).toEqual({
        ok: false,
        reason: 'bad_signature',
      });
    }
    const ts = headers['X-BambooHR-Timestamp'];
    const nextSecond = { ...headers, 'X-BambooHR-Timestamp': ts.slice(0, -1) + String((Number(ts.at(-1)) + 1) % 10) };
    expect(verifyBambooHr({ privateKey: key, rawBody: body, headers: nextSecond, nowSeconds: NOW })).toEqual({
      ok: false,
      reason: 'bad_signature',
    });
    const sig = headers['X-BambooHR-Signature'];
    const flipped = { ...headers, 'X-BambooHR-Signature': (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1) };
    expect(verifyBambooHr({ privateKey: key, rawBody: body, headers: flipped, nowSeconds: NOW })).toEqual({
      ok: false,
      reason: 'bad_signature',
    });
  });

  it('names missing and malformed headers, with messages that name BambooHR headers only', () => {
    const key = privateKey();
    const h = signBambooHr(key, body, NOW);
    const cases: Array<[Record<string, string>, string]> = [
      [{ 'X-BambooHR-Signature': h['X-BambooHR-Signature'] }, 'missing_timestamp'],
      [{ ...h, 'X-BambooHR-Timestamp': 'yesterday' }, 'missing_timestamp'],
      [{ 'X-BambooHR-Timestamp': h['X-BambooHR-Timestamp'] }, 'missing_signature'],
      [{ ...h, 'X-BambooHR-Signature': `sha256=${h['X-BambooHR-Signature']}` }, 'malformed_signature'],
      [{ ...h, 'X-BambooHR-Signature': h['X-BambooHR-Signature'].slice(1) }, 'malformed_signature'],
    ];
    for (const [headers, reason] of cases) {
      expect(verifyBambooHr({ privateKey: key, rawBody: body, headers, nowSeconds: NOW })).toEqual({ ok: false, reason });
      const message = describeSignatureFailure(reason as never, BAMBOOHR_SCHEME);
      expect(message).toMatch(/X-BambooHR-/);
      expect(message).not.toContain(key);
      expect(message).not.toContain(h['X-BambooHR-Signature']);
    }
  });
});

describe('bambooToCanonical — fixtures', () => {
  it('maps a hire to a joiner effective on the hire date', () => {
    const event = only(bambooToCanonical(payload('hire'), options));
    expect(event).toMatchObject({
      eventType: 'hire',
      effectiveDate: '2026-03-16',
      occurredAt: '2026-03-02T09:14:27+00:00',
      worker: {
        employeeId: '412',
        givenName: 'Amara',
        familyName: 'Okafor',
        email: 'Amara.Okafor@example.com',
        department: 'Engineering',
        location: 'Berlin',
        jobCode: 'Backend Engineer',
        managerId: '118',
        employmentType: 'employee',
        startDate: '2026-03-16',
      },
    });
    expect(event.worker.terminationDate).toBeUndefined();
    const normalised = normaliseHrEvent(event, TZ);
    expect(normalised.lifecycle).toBe('joiner');
    expect(normalised.worker.email).toBe('amara.okafor@example.com');
    expect(normalised.effectiveAt).toBe('2026-03-16T00:00:00+01:00');
    expect(normalised.occurredAt).toBe('2026-03-02T09:14:27.000Z');
  });

  it('maps a department change to a mover effective when BambooHR recorded it', () => {
    const event = only(bambooToCanonical(payload('department-change'), options));
    expect(event).toMatchObject({
      eventType: 'change',
      effectiveDate: '2026-05-11T14:02:55+00:00',
      worker: { employeeId: '287', department: 'Finance', jobCode: 'Financial Analyst', managerId: '203', startDate: '2023-09-04' },
    });
    const normalised = normaliseHrEvent(event, TZ);
    expect(normalised.lifecycle).toBe('mover');
    expect(normalised.effectiveDate).toBe('2026-05-11');
  });

  it('maps a termination to a leaver effective on the termination date', () => {
    const event = only(bambooToCanonical(payload('termination'), options));
    expect(event).toMatchObject({
      eventType: 'termination',
      effectiveDate: '2026-06-30',
      worker: { employeeId: '156', terminationDate: '2026-06-30', startDate: '2021-02-01', employmentType: 'employee' },
    });
    expect(normaliseHrEvent(event, TZ).lifecycle).toBe('leaver');
  });

  it('maps a contractor without a supervisor', () => {
    const event = only(bambooToCanonical(payload('contractor'), options));
    expect(event.eventType).toBe('hire');
    expect(event.worker.employmentType).toBe('contractor');
    expect(event.worker).not.toHaveProperty('managerId');
    const normalised = normaliseHrEvent(event, TZ);
    expect(normalised.worker.familyName).toBe('García Núñez');
    expect(normalised.worker.location).toBe('Remote - Spain');
  });

  it('maps a batch of three: a move, a future-dated termination and a rehire', () => {
    const events = bambooToCanonical(payload('batch'), options);
    expect(events.map((e) => [e.worker.employeeId, e.eventType, e.effectiveDate])).toEqual([
      ['301', 'change', '2026-09-14T10:05:12+00:00'],
      ['219', 'termination', '2026-10-02'],
      ['174', 'rehire', '2026-10-01'],
    ]);
    // The rehire's old termination date belongs to the earlier employment and is not carried over.
    expect(events[2]!.worker.terminationDate).toBeUndefined();
    expect(events[2]!.worker.employmentType).toBe('employee');
    expect(new Set(events.map((e) => e.eventId)).size).toBe(3);
    expect(events.map((e) => normaliseHrEvent(e, TZ).lifecycle)).toEqual(['mover', 'leaver', 'rehire']);
  });

  it('verifies and maps a signed delivery end to end', () => {
    const key = privateKey();
    const raw = fixture('batch');
    const headers = signBambooHr(key, raw, NOW);
    expect(verifyBambooHr({ privateKey: key, rawBody: Buffer.from(raw), headers, nowSeconds: NOW }).ok).toBe(true);
    const events = bambooToCanonical(JSON.parse(raw), options).map((e) => normaliseHrEvent(e, TZ));
    expect(events).toHaveLength(3);
    expect(events.every((e) => e.eventId.startsWith('bamboohr:'))).toBe(true);
  });
});

describe('bambooToCanonical — event ids', () => {
  it('gives a redelivery the same event id, whatever the order of changedFields', () => {
    const first = bambooToCanonical(payload('batch'), options);
    const again = payload('batch');
    for (const e of again.employees) e.changedFields.reverse();
    expect(again.employees[2].changedFields[0]).toBe('status');
    const second = bambooToCanonical(again, { ...options, now: () => new Date('2027-01-01T00:00:00Z') });
    expect(second.map((e) => e.eventId)).toEqual(first.map((e) => e.eventId));
  });

  it('gives a later change of the same person a different event id', () => {
    const first = only(bambooToCanonical(payload('department-change'), options));
    const later = payload('department-change');
    later.employees[0].timestamp = '2026-05-12T08:00:00+0000';
    expect(only(bambooToCanonical(later, options)).eventId).not.toBe(first.eventId);
    const otherValue = payload('department-change');
    otherValue.employees[0].fields.department = 'Legal';
    expect(only(bambooToCanonical(otherValue, options)).eventId).not.toBe(first.eventId);
  });

  it('uses the prefix given and the clock only for occurredAt of entries without a timestamp', () => {
    const p = payload('department-change');
    delete p.employees[0].timestamp;
    const a = only(bambooToCanonical(p, { now: () => new Date('2026-05-11T15:00:00Z'), eventIdPrefix: 'acme-bhr' }));
    const b = only(bambooToCanonical(p, { now: () => new Date('2026-05-11T15:00:09Z'), eventIdPrefix: 'acme-bhr' }));
    expect(a.eventId).toMatch(/^acme-bhr:[0-9a-f]{64}$/);
    expect(a.eventId).toBe(b.eventId);
    expect(a.occurredAt).toBe('2026-05-11T15:00:00.000Z');
    expect(normaliseHrEvent(a, TZ).eventType).toBe('change');
  });
});

describe('bambooToCanonical — inference and configuration', () => {
  it('treats Inactive → Active without a new hire date as a reinstatement (rehire)', () => {
    const p = payload('department-change');
    p.employees[0].changedFields = ['status'];
    const event = only(bambooToCanonical(p, options));
    expect(event.eventType).toBe('rehire');
    expect(event.effectiveDate).toBe('2026-05-11T14:02:55+00:00');
  });

  it('treats an Inactive status as a termination even when the employment status is not Terminated', () => {
    const p = payload('termination');
    p.employees[0].fields.employmentHistoryStatus = 'Full-Time';
    expect(only(bambooToCanonical(p, options)).eventType).toBe('termination');
  });

  it('uses the employee number as the person key with EMPLOYEE_NUMBER_KEYS', () => {
    const event = only(bambooToCanonical(payload('hire'), { ...options, fieldMap: EMPLOYEE_NUMBER_KEYS }));
    expect(event.worker.employeeId).toBe('E-1042');
    expect(event.worker.managerId).toBe('E-0007');
    expect(normaliseHrEvent(event, TZ).worker.employeeId).toBe('E-1042');
  });

  it('reads aliased post fields through a field map, and names them in errors', () => {
    const p = payload('hire');
    const f = p.employees[0].fields;
    p.employees[0].fields = { ...f, 'Work Email': f.workEmail, 'Job Code': 'ENG-BE-2' };
    delete p.employees[0].fields.workEmail;
    const fieldMap = { email: 'Work Email', jobCode: 'Job Code' };
    const event = only(bambooToCanonical(p, { ...options, fieldMap }));
    expect(event.worker.email).toBe('Amara.Okafor@example.com');
    expect(event.worker.jobCode).toBe('ENG-BE-2');

    delete p.employees[0].fields['Work Email'];
    expect(validationIssues(() => bambooToCanonical(p, { ...options, fieldMap }))).toEqual([
      'employees[0].fields["Work Email"]: required',
    ]);
  });

  it('accepts extra employment status values through employmentStatuses', () => {
    const p = payload('hire');
    p.employees[0].fields.employmentHistoryStatus = 'Intern';
    expect(validationIssues(() => bambooToCanonical(p, options))[0]).toMatch(
      /^employees\[0\]\.fields\.employmentHistoryStatus: must be one of full-time, part-time, contractor, terminated/,
    );
    const event = only(bambooToCanonical(p, { ...options, employmentStatuses: { Intern: 'employee', 'Freelance Contractor': 'contractor' } }));
    expect(event.worker.employmentType).toBe('employee');
    p.employees[0].fields.employmentHistoryStatus = 'freelance_contractor';
    expect(only(bambooToCanonical(p, { ...options, employmentStatuses: { 'Freelance Contractor': 'contractor' } })).worker.employmentType).toBe(
      'contractor',
    );
  });

  it('unwraps fields posted as { value } objects and numeric ids', () => {
    const p = payload('department-change');
    const e = p.employees[0];
    e.id = 287;
    e.fields = Object.fromEntries(Object.entries(e.fields).map(([k, v]) => [k, { value: v }]));
    e.fields.supervisorEId = { value: 203 };
    const event = only(bambooToCanonical(p, options));
    expect(event.worker).toMatchObject({ employeeId: '287', managerId: '203', department: 'Finance' });
  });

  it('skips bare creation notices and deletions, and says so', () => {
    const p = payload('department-change');
    p.employees.push(
      { id: '600', action: 'Created', timestamp: '2026-05-11T14:03:00+0000', changedFields: [], fields: {} },
      { id: '98', action: 'Deleted', timestamp: '2026-05-11T14:04:00+0000', changedFields: [], fields: {} },
    );
    const mapped = mapBambooHrWebhook(p, options);
    expect(mapped.events.map((e) => e.worker.employeeId)).toEqual(['287']);
    expect(mapped.ignored.map((i) => [i.index, i.employeeId, i.action])).toEqual([
      [1, '600', 'Created'],
      [2, '98', 'Deleted'],
    ]);
    expect(mapped.ignored[1]!.reason).toMatch(/deleted in BambooHR/);
    expect(bambooToCanonical(p, options)).toHaveLength(1);
  });
});

describe('bambooToCanonical — errors name the BambooHR field', () => {
  it('names a missing required field by its place in the payload', () => {
    const p = payload('hire');
    delete p.employees[0].fields.workEmail;
    expect(validationIssues(() => bambooToCanonical(p, options))).toEqual(['employees[0].fields.workEmail: required']);
  });

  it('lists the problems of every employee in one error, with indexes', () => {
    const p = payload('batch');
    delete p.employees[0].fields.department;
    p.employees[2].fields.workEmail = 'sofia.costa-at-example.com';
    p.employees[2].fields.lastName = '   ';
    const issues = validationIssues(() => bambooToCanonical(p, options));
    expect(issues).toEqual(
      expect.arrayContaining([
        'employees[0].fields.department: required',
        'employees[2].fields.workEmail: must be an email address',
        'employees[2].fields.lastName: required',
      ]),
    );
    expect(issues.join(' ')).not.toContain('sofia.costa-at-example.com');
  });

  it('rejects malformed dates, statuses and timestamps', () => {
    const p = payload('department-change');
    p.employees[0].fields.hireDate = '09/04/2023';
    p.employees[0].fields.status = 'On Leave';
    p.employees[0].timestamp = 'last Tuesday';
    expect(validationIssues(() => bambooToCanonical(p, options))).toEqual([
      'employees[0].fields.hireDate: must be a calendar date YYYY-MM-DD',
      'employees[0].fields.status: must be Active or Inactive',
      'employees[0].timestamp: must be an ISO date-time with a zone',
    ]);
  });

  it('needs a termination date for an Inactive employee', () => {
    const p = payload('termination');
    p.employees[0].fields.terminationDate = '0000-00-00';
    expect(validationIssues(() => bambooToCanonical(p, options))).toEqual([
      'employees[0].fields.terminationDate: required for a terminated employee (status Inactive or employment status Terminated), and not before hireDate',
    ]);
  });

  it('refuses an employee who is their own supervisor', () => {
    const p = payload('department-change');
    p.employees[0].fields.supervisorEId = '287';
    expect(validationIssues(() => bambooToCanonical(p, options))).toEqual([
      'employees[0].fields.supervisorEId: an employee cannot be their own supervisor',
    ]);
  });

  it('names problems with the envelope itself', () => {
    expect(validationIssues(() => bambooToCanonical({ employees: [] }, options))).toEqual(['employees: at least 1']);
    expect(validationIssues(() => bambooToCanonical({}, options))).toEqual(['employees: required']);
    expect(validationIssues(() => bambooToCanonical({ employees: [{ fields: {} }] }, options))[0]).toMatch(/^employees\[0\]\.id: /);
    expect(
      validationIssues(() =>
        bambooToCanonical({ employees: [{ id: '1', action: 'Renamed', changedFields: [], fields: {} }] }, options),
      )[0],
    ).toBe('employees[0].action: must be one of Created, Updated, Deleted');
  });

  it('refuses an Event-Based payload, which carries no field values', () => {
    const eventBased = {
      type: 'employee.updated',
      timestamp: '2026-01-31T18:42:00+0000',
      data: { companyId: '12345', employeeId: '67890', changedFields: ['firstName'] },
    };
    expect(validationIssues(() => bambooToCanonical(eventBased, options))[0]).toMatch(/^type: an Event-Based BambooHR webhook carries no field values/);
  });
});
