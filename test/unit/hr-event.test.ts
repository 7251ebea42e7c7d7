import { describe, expect, it } from 'vitest';
import { normaliseHrEvent, statusAfter } from '#core/hr-event';
import { ValidationError } from '#core/errors';
import { worker } from '../helpers/policy.ts';

const event = (over: Record<string, unknown> = {}, workerOver: Record<string, unknown> = {}) => ({
  eventId: 'evt-1',
  eventType: 'hire',
  effectiveDate: '2026-12-01',
  occurredAt: '2026-11-20T09:30:00Z',
  worker: { ...worker(), ...workerOver },
  ...over,
});

function errorOf(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ValidationError) return e;
    throw e;
  }
  throw new Error('expected a ValidationError');
}

describe('normaliseHrEvent', () => {
  it('reads a date-only effective date as midnight in the company time zone', () => {
    const winter = normaliseHrEvent(event(), { timeZone: 'Europe/London' });
    expect(winter.effectiveAt).toBe('2026-12-01T00:00:00+00:00');
    const summer = normaliseHrEvent(event({ effectiveDate: '2026-07-01' }), { timeZone: 'Europe/London' });
    expect(summer.effectiveAt).toBe('2026-07-01T00:00:00+01:00');
    const ny = normaliseHrEvent(event(), { timeZone: 'America/New_York' });
    expect(ny.effectiveAt).toBe('2026-12-01T00:00:00-05:00');
    expect(new Date(ny.effectiveAt).toISOString()).toBe('2026-12-01T05:00:00.000Z');
  });

  it('keeps the calendar date of a zoned effective time in the company zone', () => {
    // 23:30 UTC on 30 Nov is already 1 December in Berlin.
    const e = normaliseHrEvent(event({ effectiveDate: '2026-11-30T23:30:00Z' }), { timeZone: 'Europe/Berlin' });
    expect(e.effectiveDate).toBe('2026-12-01');
    expect(e.effectiveAt).toBe('2026-12-01T00:30:00+01:00');
  });

  it('trims strings, lower-cases the email and maps the event to its lifecycle', () => {
    const e = normaliseHrEvent(
      event({ eventType: 'termination' }, { givenName: '  Ada ', email: ' Ada.Lovelace@ACME.example ', terminationDate: '2026-12-31' }),
      { timeZone: 'UTC' },
    );
    expect(e.worker.givenName).toBe('Ada');
    expect(e.worker.email).toBe('ada.lovelace@acme.example');
    expect(e.lifecycle).toBe('leaver');
    expect(e.occurredAt).toBe('2026-11-20T09:30:00.000Z');
  });

  it('names every bad field and the rule it broke', () => {
    const err = errorOf(() =>
      normaliseHrEvent(
        event({ eventType: 'fired', occurredAt: '2026-11-20 09:30' }, { employeeId: undefined, email: 'not-an-email', employmentType: 'intern' }),
        { timeZone: 'UTC' },
      ),
    );
    expect(err.issues).toEqual(
      expect.arrayContaining([
        'eventType: must be one of hire, change, termination, rehire, leave_start, leave_end',
        'occurredAt: must be an ISO date-time with a zone (Z or ±hh:mm)',
        'worker.employeeId: required',
        'worker.email: must be an email address',
        'worker.employmentType: must be one of employee, contractor',
      ]),
    );
    expect(err.message).not.toMatch(/at .*\.ts/); // no stack trace in the message
  });

  it('rejects impossible dates, unknown fields and a termination without its date', () => {
    expect(errorOf(() => normaliseHrEvent(event({ effectiveDate: '2026-02-30' }), { timeZone: 'UTC' })).issues).toContain(
      'effectiveDate: must be YYYY-MM-DD or an ISO date-time with a zone',
    );
    expect(errorOf(() => normaliseHrEvent(event({ extra: 1 }), { timeZone: 'UTC' })).issues).toContain('(root): unknown field(s) extra');
    expect(errorOf(() => normaliseHrEvent(event({ eventType: 'termination' }), { timeZone: 'UTC' })).issues).toContain(
      'worker.terminationDate: required for a termination',
    );
    expect(errorOf(() => normaliseHrEvent(event({}, { managerId: 'E1001' }), { timeZone: 'UTC' })).issues).toContain(
      'worker.managerId: a worker cannot be their own manager',
    );
  });

  it('refuses control characters but keeps unicode names intact', () => {
    const e = normaliseHrEvent(event({}, { givenName: 'Zoë', familyName: 'Ñúñez-Łukasz 李' }), { timeZone: 'UTC' });
    expect(e.worker.familyName).toBe('Ñúñez-Łukasz 李');
    expect(errorOf(() => normaliseHrEvent(event({}, { givenName: 'A\u0000B' }), { timeZone: 'UTC' })).issues).toContain(
      'worker.givenName: must not contain control characters',
    );
  });

  it('treats contractors and employees as distinct employment types', () => {
    expect(normaliseHrEvent(event({}, { employmentType: 'contractor' }), { timeZone: 'UTC' }).worker.employmentType).toBe('contractor');
  });
});

describe('statusAfter', () => {
  it('follows the employment lifecycle and keeps the status across a change', () => {
    expect(statusAfter(undefined, 'hire')).toBe('active');
    expect(statusAfter('active', 'leave_start')).toBe('on_leave');
    expect(statusAfter('on_leave', 'change')).toBe('on_leave');
    expect(statusAfter('on_leave', 'leave_end')).toBe('active');
    expect(statusAfter('active', 'termination')).toBe('terminated');
    expect(statusAfter('terminated', 'rehire')).toBe('active');
  });
});
