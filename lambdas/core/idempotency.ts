/**
 * Idempotency key (DESIGN.md): sha256(employeeId | eventType | effectiveDate | mappingVersion |
 * hash of the access-relevant worker attributes). Exact redeliveries dedupe; a second, different
 * change on the same day (another department, a new manager) gets its own key and is not swallowed.
 */
import type { HrEvent, Worker } from './hr-event.ts';
import { canonicalJson, sha256Hex } from './hash.ts';

/** Worker attributes that can change what access a person should have. */
export const ACCESS_RELEVANT_ATTRIBUTES = [
  'department',
  'location',
  'jobCode',
  'employmentType',
  'managerId',
  'startDate',
  'terminationDate',
  'lastDayWorked',
] as const satisfies ReadonlyArray<keyof Worker>;

export function accessAttributesHash(worker: Worker): string {
  const picked: Record<string, string | null> = {};
  for (const k of ACCESS_RELEVANT_ATTRIBUTES) picked[k] = worker[k] ?? null;
  return sha256Hex(canonicalJson(picked));
}

export function idempotencyKey(event: Pick<HrEvent, 'eventType' | 'effectiveDate' | 'worker'>, mappingVersion: string): string {
  return sha256Hex(
    [event.worker.employeeId, event.eventType, event.effectiveDate, mappingVersion, accessAttributesHash(event.worker)].join('|'),
  );
}

/** A run id derived from the key: the Step Functions execution name, so a second start is refused. */
export function runIdFor(key: string): string {
  return `run-${key.slice(0, 32)}`;
}
