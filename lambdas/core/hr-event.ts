/**
 * The canonical HRIS event and worker (DESIGN.md contract for `POST /hris/events`), their
 * normalisation, and the lifecycle each event type maps to.
 *
 * HRIS is the source of truth; the person key is `employeeId`. Email is an attribute, never a key.
 */
import * as z from 'zod';
import { ValidationError } from './errors.ts';
import {
  DATE_TIME_WITH_ZONE,
  calendarDate,
  isCalendarDate,
  toZonedIso,
  zonedTimeToEpoch,
} from './time.ts';
import { parseOrThrow } from './validation.ts';

export const HR_EVENT_TYPES = ['hire', 'change', 'termination', 'rehire', 'leave_start', 'leave_end'] as const;
export type HrEventType = (typeof HR_EVENT_TYPES)[number];

export const LIFECYCLES = ['joiner', 'mover', 'leaver', 'rehire', 'leave_of_absence', 'return'] as const;
export type Lifecycle = (typeof LIFECYCLES)[number];

export const LIFECYCLE_OF: Record<HrEventType, Lifecycle> = {
  hire: 'joiner',
  change: 'mover',
  termination: 'leaver',
  rehire: 'rehire',
  leave_start: 'leave_of_absence',
  leave_end: 'return',
};

export const EMPLOYMENT_TYPES = ['employee', 'contractor'] as const;
export type EmploymentType = (typeof EMPLOYMENT_TYPES)[number];

/** Largest accepted webhook body; the same limit is enforced at the API edge. */
export const MAX_EVENT_BYTES = 256 * 1024;

// Control characters (other than none) have no place in HR attributes and break logs and pages.
const CONTROL = /[\u0000-\u001f\u007f]/;

const text = (max: number) =>
  z
    .string()
    .transform((s) => s.normalize('NFC').trim())
    .pipe(
      z
        .string()
        .min(1)
        .max(max)
        .refine((s) => !CONTROL.test(s), { message: 'must not contain control characters' }),
    );

const optionalText = (max: number) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v === null ? undefined : v), text(max).optional());

const calendarDateField = z
  .string()
  .trim()
  .refine(isCalendarDate, { message: 'must be a calendar date YYYY-MM-DD' });

const optionalCalendarDate = z.preprocess(
  (v) => (v === null || (typeof v === 'string' && v.trim() === '') ? undefined : v),
  calendarDateField.optional(),
);

const emailField = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.email({ message: 'must be an email address' }).max(254));

export const WorkerSchema = z
  .object({
    employeeId: text(64).refine((s) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s), {
      message: 'letters, digits, dot, dash and underscore only',
    }),
    givenName: text(128),
    familyName: text(128),
    email: emailField,
    department: text(128),
    location: text(128),
    jobCode: text(64),
    managerId: optionalText(64),
    employmentType: z.enum(EMPLOYMENT_TYPES),
    startDate: calendarDateField,
    terminationDate: optionalCalendarDate,
    lastDayWorked: optionalCalendarDate,
  })
  .strict();
export type Worker = z.infer<typeof WorkerSchema>;

export const HrEventSchema = z
  .object({
    eventId: text(128),
    eventType: z.enum(HR_EVENT_TYPES),
    /** A calendar date (midnight in the company time zone) or a date-time with its zone. */
    effectiveDate: z
      .string()
      .trim()
      .refine((s) => isCalendarDate(s) || (DATE_TIME_WITH_ZONE.test(s) && !Number.isNaN(Date.parse(s))), {
        message: 'must be YYYY-MM-DD or an ISO date-time with a zone',
      }),
    occurredAt: z
      .string()
      .trim()
      .refine((s) => DATE_TIME_WITH_ZONE.test(s) && !Number.isNaN(Date.parse(s)), {
        message: 'must be an ISO date-time with a zone (Z or ±hh:mm)',
      }),
    worker: WorkerSchema,
  })
  .strict();
export type HrEventInput = z.input<typeof HrEventSchema>;

/** An event after validation and normalisation: what every later phase works from. */
export interface HrEvent {
  eventId: string;
  eventType: HrEventType;
  lifecycle: Lifecycle;
  /** The instant the change takes effect, ISO with the company zone's offset. */
  effectiveAt: string;
  /** Calendar date of `effectiveAt` in the company zone (part of the idempotency key). */
  effectiveDate: string;
  /** When HR recorded the change, UTC ISO. Orders events of one person. */
  occurredAt: string;
  worker: Worker;
}

export interface NormaliseOptions {
  /** IANA zone in which date-only values are read (policy `company.timeZone`). */
  timeZone: string;
}

/** Validates and normalises a canonical event. Throws ValidationError naming each bad field. */
export function normaliseHrEvent(input: unknown, options: NormaliseOptions): HrEvent {
  const raw = parseOrThrow(HrEventSchema, input);
  const effectiveMs = isCalendarDate(raw.effectiveDate)
    ? zonedTimeToEpoch(raw.effectiveDate, options.timeZone)
    : Date.parse(raw.effectiveDate);
  const worker = raw.worker;
  const problems: string[] = [];
  if (raw.eventType === 'termination' && !worker.terminationDate) {
    problems.push('worker.terminationDate: required for a termination');
  }
  if (worker.terminationDate && worker.terminationDate < worker.startDate) {
    problems.push('worker.terminationDate: must not be before worker.startDate');
  }
  if (worker.lastDayWorked && worker.terminationDate && worker.lastDayWorked > worker.terminationDate) {
    problems.push('worker.lastDayWorked: must not be after worker.terminationDate');
  }
  if (worker.managerId && worker.managerId === worker.employeeId) {
    problems.push('worker.managerId: a worker cannot be their own manager');
  }
  if (problems.length) throw new ValidationError(problems);
  return {
    eventId: raw.eventId,
    eventType: raw.eventType,
    lifecycle: LIFECYCLE_OF[raw.eventType],
    effectiveAt: toZonedIso(effectiveMs, options.timeZone),
    effectiveDate: calendarDate(effectiveMs, options.timeZone),
    occurredAt: new Date(Date.parse(raw.occurredAt)).toISOString(),
    worker,
  };
}

export const PERSON_STATUSES = ['active', 'on_leave', 'terminated'] as const;
export type PersonStatus = (typeof PERSON_STATUSES)[number];

/** Whether an event sets the person's status (every kind but a `change` of the worker record). */
export const setsStatus = (eventType: HrEventType): boolean => eventType !== 'change';

/** Employment status after an event; a `change` keeps whatever status the person had. */
export function statusAfter(previous: PersonStatus | undefined, eventType: HrEventType): PersonStatus {
  switch (eventType) {
    case 'hire':
    case 'rehire':
    case 'leave_end':
      return 'active';
    case 'leave_start':
      return 'on_leave';
    case 'termination':
      return 'terminated';
    case 'change':
      return previous ?? 'active';
  }
}
