/**
 * BambooHR → jml: BambooHR's webhook signature, its field-based webhook payload, and the mapping
 * of each employee entry to one canonical HR event (`hr-event.ts`).
 *
 * Signature — https://documentation.bamboohr.com/docs/webhooks#security: every delivery carries
 * `X-BambooHR-Timestamp` ("the timestamp when the request was sent") and `X-BambooHR-Signature`
 * ("the SHA-256 HMAC signature calculated using the payload, the timestamp, and your private
 * key"); the receiver recalculates it "using the raw request body, the timestamp from the
 * X-BambooHR-Timestamp header, and your stored private key". The signed message is the raw body
 * immediately followed by the timestamp header value (no separator), keyed with the webhook's
 * private key, hex-encoded — the order Nango's BambooHR integration documents too ("the signature
 * covers the request body followed by X-BambooHR-Timestamp",
 * https://nango.dev/docs/api-integrations/bamboohr/webhooks). The docs do not fix the timestamp's
 * format, so the freshness check reads unix seconds or an ISO 8601 date-time with a zone; the
 * HMAC always covers the header exactly as sent.
 *
 * Payload — https://documentation.bamboohr.com/docs/field-based-webhooks (the "Field-Based",
 * a.k.a. global, webhook; events `employee_with_fields.*`): `{ employees: [{ id, action?,
 * timestamp?, changedFields: [...], fields: { <post field name>: value } }] }`. Post fields are
 * named after BambooHR's field names unless given an alias; jml's defaults are the API field names
 * of https://documentation.bamboohr.com/docs/list-of-field-names (set each post field's alias to
 * that name, or pass a `fieldMap`). Event-Based webhooks (`employee.*`) carry no field values and
 * are refused with a message saying so.
 */
import * as z from 'zod';
import { ValidationError } from './errors.ts';
import { canonicalJson, sha256Hex } from './hash.ts';
import {
  EMPLOYMENT_TYPES,
  HrEventSchema,
  type EmploymentType,
  type HrEventInput,
  type HrEventType,
} from './hr-event.ts';
import {
  DEFAULT_TOLERANCE_SECONDS,
  anyMatch,
  fail,
  headerValue,
  hmacSha256,
  parseUnixSeconds,
  requireSecrets,
  withinWindow,
  type HeaderSource,
  type RawBody,
  type SecretInput,
  type SignatureScheme,
  type VerifyResult,
} from './signature.ts';
import { DATE_TIME_WITH_ZONE, isCalendarDate } from './time.ts';
import { formatIssues } from './validation.ts';

// ---------------------------------------------------------------------------------------------
// Signature

export const BAMBOOHR_TIMESTAMP_HEADER = 'X-BambooHR-Timestamp';
export const BAMBOOHR_SIGNATURE_HEADER = 'X-BambooHR-Signature';

export const BAMBOOHR_SCHEME: SignatureScheme = {
  timestampHeader: BAMBOOHR_TIMESTAMP_HEADER,
  signatureHeader: BAMBOOHR_SIGNATURE_HEADER,
  signatureFormat: '64 hex digits (HMAC-SHA256 of the raw body followed by the timestamp)',
};

export interface VerifyBambooHrInput {
  /** The webhook's private key; a list while a regenerated key is being rolled out. */
  privateKey: SecretInput;
  /** The body exactly as received. */
  rawBody: RawBody;
  headers: HeaderSource;
  nowSeconds: number;
  toleranceSeconds?: number;
}

// BambooHR's hex comes from a third party: accept either case rather than reject a real delivery.
const HEX_SHA256_ANY_CASE = /^[0-9a-fA-F]{64}$/;
const ISO_OFFSET_WITHOUT_COLON = /^(.*T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)([+-]\d{2})(\d{2})$/;

/** Unix seconds of a BambooHR timestamp: whole seconds, or an ISO date-time with a zone. */
export function parseBambooHrTimestamp(value: string): number | undefined {
  const seconds = parseUnixSeconds(value);
  if (seconds !== undefined) return seconds;
  const iso = toIsoWithZone(value.trim());
  return iso === undefined ? undefined : Math.floor(Date.parse(iso) / 1000);
}

export function verifyBambooHr(input: VerifyBambooHrInput): VerifyResult {
  const keys = requireSecrets(input.privateKey, 'verifyBambooHr');
  const tolerance = input.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;

  const timestamp = headerValue(input.headers, BAMBOOHR_TIMESTAMP_HEADER);
  if (timestamp === undefined) return fail('missing_timestamp');
  const timestampSeconds = parseBambooHrTimestamp(timestamp);
  if (timestampSeconds === undefined) return fail('missing_timestamp');

  const signature = headerValue(input.headers, BAMBOOHR_SIGNATURE_HEADER);
  if (signature === undefined || signature.trim() === '') return fail('missing_signature');
  const provided = signature.trim();
  if (!HEX_SHA256_ANY_CASE.test(provided)) return fail('malformed_signature');

  if (!withinWindow(timestampSeconds, input.nowSeconds, tolerance)) return fail('stale_timestamp');

  const expected = keys.map((k) => hmacSha256(k, [input.rawBody, timestamp]));
  return anyMatch(expected, [Buffer.from(provided, 'hex')]) ? { ok: true } : fail('bad_signature');
}

/** Headers BambooHR would send for `rawBody` (tests and the demo play BambooHR with this). */
export function signBambooHr(
  privateKey: string,
  rawBody: RawBody,
  timestamp: number | string,
): { 'X-BambooHR-Timestamp': string; 'X-BambooHR-Signature': string } {
  const ts = String(timestamp);
  const digest = hmacSha256(requireSecrets([privateKey], 'signBambooHr')[0]!, [rawBody, ts]);
  return { 'X-BambooHR-Timestamp': ts, 'X-BambooHR-Signature': digest.toString('hex') };
}

// ---------------------------------------------------------------------------------------------
// Payload

/** A posted field's value: usually a string; some integrations wrap it as `{ value }`. */
const FieldValueSchema = z.union([
  z.string(),
  z.number(),
  z.boolean(),
  z.null(),
  z.looseObject({ value: z.union([z.string(), z.number(), z.boolean(), z.null()]).optional() }),
]);

export const BambooHrEmployeeSchema = z.looseObject({
  id: z.union([z.string().trim().min(1).max(64), z.number().int().nonnegative()]),
  action: z.enum(['Created', 'Updated', 'Deleted']).optional(),
  timestamp: z.string().optional(),
  changedFields: z.array(z.string()).max(1000).default([]),
  fields: z.record(z.string(), FieldValueSchema).default({}),
});
export type BambooHrEmployee = z.infer<typeof BambooHrEmployeeSchema>;

export const BambooHrWebhookSchema = z.looseObject({
  employees: z.array(BambooHrEmployeeSchema).min(1),
});
export type BambooHrWebhook = z.infer<typeof BambooHrWebhookSchema>;

/**
 * Which BambooHR post field feeds each canonical attribute. `employeeId: 'id'` reads the entry's
 * own `id` (BambooHR's employee id, always present). Keep the person key and the manager key in
 * one id space: `id` pairs with `supervisorEId` (the supervisor's BambooHR id); `employeeNumber`
 * pairs with `supervisorId` (the supervisor's employee number) — see EMPLOYEE_NUMBER_KEYS.
 */
export interface FieldMap {
  employeeId: string;
  givenName: string;
  familyName: string;
  email: string;
  department: string;
  location: string;
  jobCode: string;
  managerId: string;
  /** Full-Time / Part-Time / Contractor / Terminated … (customised per BambooHR account). */
  employmentStatus: string;
  hireDate: string;
  /** First hire date; earlier than `hireDate` means this is a rehire. Optional in the payload. */
  originalHireDate: string;
  terminationDate: string;
  /** Active / Inactive. */
  status: string;
}

export const DEFAULT_FIELD_MAP: Readonly<FieldMap> = Object.freeze({
  employeeId: 'id',
  givenName: 'firstName',
  familyName: 'lastName',
  email: 'workEmail',
  department: 'department',
  location: 'location',
  jobCode: 'jobTitle',
  managerId: 'supervisorEId',
  employmentStatus: 'employmentHistoryStatus',
  hireDate: 'hireDate',
  originalHireDate: 'originalHireDate',
  terminationDate: 'terminationDate',
  status: 'status',
});

/** Use the company-assigned employee number as the person key (and the manager's number). */
export const EMPLOYEE_NUMBER_KEYS: Readonly<Partial<FieldMap>> = Object.freeze({
  employeeId: 'employeeNumber',
  managerId: 'supervisorId',
});

/** What an employment status value means; `terminated` marks a leaver. */
export type EmploymentStatusMeaning = EmploymentType | 'terminated';

/** Keys are compared case-insensitively, with spaces, dashes and underscores treated alike. */
export const DEFAULT_EMPLOYMENT_STATUSES: Readonly<Record<string, EmploymentStatusMeaning>> = Object.freeze({
  'full-time': 'employee',
  'part-time': 'employee',
  contractor: 'contractor',
  terminated: 'terminated',
});

export interface BambooToCanonicalOptions {
  fieldMap?: Partial<FieldMap>;
  /** Extra or overriding employment status values (e.g. `{ Intern: 'employee' }`). */
  employmentStatuses?: Record<string, EmploymentStatusMeaning>;
  /** Clock for entries without a `timestamp` (their `occurredAt`). */
  now: () => Date;
  eventIdPrefix?: string;
}

export interface IgnoredEntry {
  index: number;
  employeeId: string;
  action: 'Created' | 'Deleted';
  reason: string;
}

export interface BambooHrMapping {
  events: HrEventInput[];
  /** Entries that carry nothing to map (a bare Created or a Deleted notice), for the caller to log. */
  ignored: IgnoredEntry[];
}

/**
 * One canonical event per employee entry. Throws a ValidationError listing every problem, each
 * named by its place in the BambooHR payload (`employees[0].fields.workEmail: required`); no
 * value from the payload appears in a message (it is personal data).
 */
export function bambooToCanonical(payload: unknown, options: BambooToCanonicalOptions): HrEventInput[] {
  return mapBambooHrWebhook(payload, options).events;
}

/** As `bambooToCanonical`, and also says which entries were skipped and why. */
export function mapBambooHrWebhook(payload: unknown, options: BambooToCanonicalOptions): BambooHrMapping {
  refuseEventBasedPayload(payload);
  const parsed = BambooHrWebhookSchema.safeParse(payload);
  if (!parsed.success) throw new ValidationError(formatIssues(parsed.error));

  const map: FieldMap = { ...DEFAULT_FIELD_MAP, ...stripUndefined(options.fieldMap ?? {}) };
  const statuses = employmentStatusTable(options.employmentStatuses);
  const prefix = options.eventIdPrefix ?? 'bamboohr';

  const events: HrEventInput[] = [];
  const ignored: IgnoredEntry[] = [];
  const problems: string[] = [];
  parsed.data.employees.forEach((entry, index) => {
    const result = mapEntry(entry, index, map, statuses, prefix, options.now);
    if ('event' in result) events.push(result.event);
    else if ('ignored' in result) ignored.push(result.ignored);
    else problems.push(...result.problems);
  });
  if (problems.length) throw new ValidationError(problems);
  return { events, ignored };
}

function refuseEventBasedPayload(payload: unknown): void {
  if (
    payload &&
    typeof payload === 'object' &&
    !('employees' in payload) &&
    typeof (payload as { type?: unknown }).type === 'string' &&
    (payload as { type: string }).type.startsWith('employee.')
  ) {
    throw new ValidationError([
      'type: an Event-Based BambooHR webhook carries no field values; configure a Field-Based webhook (employee_with_fields events, JSON format)',
    ]);
  }
}

type EntryResult = { event: HrEventInput } | { ignored: IgnoredEntry } | { problems: string[] };

function mapEntry(
  entry: BambooHrEmployee,
  index: number,
  map: FieldMap,
  statuses: Map<string, EmploymentStatusMeaning>,
  prefix: string,
  now: () => Date,
): EntryResult {
  const at = `employees[${index}]`;
  const fieldPath = (name: string): string =>
    name === 'id' && !Object.hasOwn(entry.fields, 'id') ? `${at}.id` : `${at}.fields${/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`}`;
  const read = (name: string): string | undefined => {
    const raw = Object.hasOwn(entry.fields, name) ? entry.fields[name] : name === 'id' ? entry.id : undefined;
    const v = raw !== null && typeof raw === 'object' ? raw.value : raw;
    if (v === undefined || v === null) return undefined;
    const s = String(v).trim();
    return s === '' ? undefined : s;
  };
  // BambooHR writes an unset date as 0000-00-00.
  const readDate = (name: string): string | undefined => {
    const v = read(name);
    return v === undefined || /^0{4}-0{2}-0{2}$/.test(v) ? undefined : v;
  };

  const hasFields = Object.keys(entry.fields).length > 0;
  if (entry.action === 'Deleted' || (entry.action === 'Created' && !hasFields)) {
    return {
      ignored: {
        index,
        employeeId: String(entry.id),
        action: entry.action,
        reason:
          entry.action === 'Deleted'
            ? 'the employee record was deleted in BambooHR; no leaver run starts from a deletion (terminate the employee in BambooHR, or review the accounts by hand)'
            : 'creation notice without field values; the update that follows carries them',
      },
    };
  }

  const problems: string[] = [];
  const changed = new Set(entry.changedFields.map((f) => f.trim()));

  // Dates must be calendar dates before any comparison below means anything.
  const dateOf = (name: string): string | undefined => {
    const v = readDate(name);
    if (v !== undefined && !isCalendarDate(v)) {
      problems.push(`${fieldPath(name)}: must be a calendar date YYYY-MM-DD`);
      return undefined;
    }
    return v;
  };
  const hireDate = dateOf(map.hireDate);
  const originalHireDate = dateOf(map.originalHireDate);
  const terminationDate = dateOf(map.terminationDate);

  const statusRaw = read(map.status);
  const status = statusRaw?.toLowerCase();
  if (status !== undefined && status !== 'active' && status !== 'inactive') {
    problems.push(`${fieldPath(map.status)}: must be Active or Inactive`);
  }

  const employmentRaw = read(map.employmentStatus);
  let employment: EmploymentStatusMeaning | undefined;
  if (employmentRaw === undefined) {
    problems.push(`${fieldPath(map.employmentStatus)}: required`);
  } else {
    employment = statuses.get(statusKey(employmentRaw));
    if (!employment) {
      problems.push(
        `${fieldPath(map.employmentStatus)}: must be one of ${[...statuses.keys()].join(', ')} (map other values with the employmentStatuses option)`,
      );
    }
  }

  let occurredAt: string;
  if (entry.timestamp !== undefined) {
    const iso = toIsoWithZone(entry.timestamp.trim());
    if (iso === undefined) {
      problems.push(`${at}.timestamp: must be an ISO date-time with a zone`);
      occurredAt = '';
    } else occurredAt = iso;
  } else {
    occurredAt = now().toISOString();
  }

  // A termination date older than the current hire date belongs to an earlier employment.
  const earlierTermination = Boolean(terminationDate && hireDate && terminationDate < hireDate);
  const leaving = status === 'inactive' || employment === 'terminated' || (terminationDate !== undefined && !earlierTermination);
  if (leaving && (terminationDate === undefined || earlierTermination)) {
    problems.push(
      `${fieldPath(map.terminationDate)}: required for a terminated employee (status Inactive or employment status Terminated), and not before ${map.hireDate}`,
    );
  }
  if (problems.length) return { problems };

  const hireChanged = changed.has(map.hireDate);
  const statusChanged = changed.has(map.status);
  const priorEmployment = earlierTermination || Boolean(originalHireDate && hireDate && originalHireDate < hireDate);
  let eventType: HrEventType;
  if (leaving) eventType = 'termination';
  else if (priorEmployment && (hireChanged || statusChanged || entry.action === 'Created')) eventType = 'rehire';
  else if (entry.action === 'Created' || hireChanged) eventType = 'hire';
  else if (statusChanged) eventType = 'rehire'; // Inactive → Active: reinstated after a termination
  else eventType = 'change';

  const effectiveDate =
    eventType === 'termination'
      ? terminationDate!
      : (eventType === 'hire' || (eventType === 'rehire' && hireChanged)) && hireDate
        ? hireDate
        : occurredAt;

  const employeeId = read(map.employeeId);
  const worker: Record<string, unknown> = {
    employeeId,
    givenName: read(map.givenName),
    familyName: read(map.familyName),
    email: read(map.email),
    department: read(map.department),
    location: read(map.location),
    jobCode: read(map.jobCode),
    managerId: read(map.managerId),
    employmentType: employment === 'terminated' ? 'employee' : employment,
    startDate: hireDate,
    terminationDate: eventType === 'termination' ? terminationDate : undefined,
  };
  for (const key of Object.keys(worker)) if (worker[key] === undefined) delete worker[key];

  const event = {
    eventId: `${prefix}:${deliveryHash(entry)}`,
    eventType,
    effectiveDate,
    occurredAt,
    worker,
  };

  // Check against the canonical schema here, so a problem names the BambooHR field it came from.
  const checked = HrEventSchema.safeParse(event);
  if (!checked.success) {
    const attributeField: Record<string, string> = {
      employeeId: fieldPath(map.employeeId),
      givenName: fieldPath(map.givenName),
      familyName: fieldPath(map.familyName),
      email: fieldPath(map.email),
      department: fieldPath(map.department),
      location: fieldPath(map.location),
      jobCode: fieldPath(map.jobCode),
      managerId: fieldPath(map.managerId),
      employmentType: fieldPath(map.employmentStatus),
      startDate: fieldPath(map.hireDate),
      terminationDate: fieldPath(map.terminationDate),
    };
    return {
      problems: formatIssues(checked.error).map((line) => {
        const m = /^worker\.(\w+): (.*)$/.exec(line);
        if (m && attributeField[m[1]!]) return `${attributeField[m[1]!]}: ${m[2]}`;
        return `${at}: ${line}`;
      }),
    };
  }
  if (worker.managerId !== undefined && worker.managerId === employeeId) {
    return { problems: [`${fieldPath(map.managerId)}: an employee cannot be their own supervisor`] };
  }
  return { event: event as HrEventInput };
}

/**
 * Same delivery, same id: BambooHR's employee id, the entry's timestamp, the changed fields and
 * the posted values. A redelivery dedupes; a later change to the same person does not collide.
 */
function deliveryHash(entry: BambooHrEmployee): string {
  return sha256Hex(
    canonicalJson({
      id: String(entry.id),
      timestamp: entry.timestamp ?? null,
      changedFields: [...entry.changedFields].sort(),
      fields: entry.fields,
    }),
  );
}

function statusKey(value: string): string {
  return value.trim().toLowerCase().replace(/[\s_-]+/g, '-');
}

function employmentStatusTable(extra: Record<string, EmploymentStatusMeaning> | undefined): Map<string, EmploymentStatusMeaning> {
  const table = new Map<string, EmploymentStatusMeaning>();
  for (const [k, v] of Object.entries({ ...DEFAULT_EMPLOYMENT_STATUSES })) table.set(statusKey(k), v);
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v !== 'terminated' && !(EMPLOYMENT_TYPES as readonly string[]).includes(v)) {
      throw new Error(`employmentStatuses: "${k}" must map to ${EMPLOYMENT_TYPES.join(', ')} or terminated`);
    }
    table.set(statusKey(k), v);
  }
  return table;
}

/** BambooHR writes offsets as `+0000`; the canonical contract wants `+00:00` (or Z). */
function toIsoWithZone(value: string): string | undefined {
  const fixed = value.replace(ISO_OFFSET_WITHOUT_COLON, '$1$2:$3');
  return DATE_TIME_WITH_ZONE.test(fixed) && !Number.isNaN(Date.parse(fixed)) ? fixed : undefined;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
