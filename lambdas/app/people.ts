/** Person-record updates that several steps of one run may make at once. */
import { ConditionFailed, type Ledger, type PersonRecord } from '#core/ledger';

/**
 * Read-modify-write with optimistic concurrency: app targets converge in parallel and each
 * records its account link, so a lost update is retried on the fresh record, never overwritten.
 */
export async function updatePerson(
  ledger: Ledger,
  employeeId: string,
  mutate: (p: PersonRecord) => PersonRecord | null,
  now: () => Date,
  attempts = 8,
): Promise<PersonRecord | null> {
  for (let i = 0; i < attempts; i++) {
    const current = await ledger.getPerson(employeeId);
    if (!current) return null;
    const next = mutate(structuredClone(current));
    if (!next) return current;
    next.updatedAt = bumpTime(now(), current.updatedAt);
    try {
      await ledger.putPerson(next, current);
      return next;
    } catch (e) {
      if (!(e instanceof ConditionFailed)) throw e;
    }
  }
  throw new ConditionFailed(`person ${employeeId} kept changing; gave up after ${attempts} attempts`);
}

/** A strictly newer ISO time than `previous`, so the optimistic check always sees a change. */
export function bumpTime(now: Date, previous?: string): string {
  const t = now.toISOString();
  if (!previous || t > previous) return t;
  return new Date(Date.parse(previous) + 1).toISOString();
}
