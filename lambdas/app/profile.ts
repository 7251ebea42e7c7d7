/** Builds what connectors need about a person from the ledger's canonical record. */
import type { AccountProfile } from '#connectors/connector';
import type { Ledger, PersonRecord } from '#core/ledger';

export async function accountProfile(ledger: Ledger, person: PersonRecord): Promise<AccountProfile> {
  const w = person.worker;
  const manager = w.managerId ? await ledger.getPerson(w.managerId) : null;
  return {
    employeeId: w.employeeId,
    userName: w.email,
    email: w.email,
    givenName: w.givenName,
    familyName: w.familyName,
    displayName: `${w.givenName} ${w.familyName}`,
    department: w.department,
    jobCode: w.jobCode,
    location: w.location,
    employmentType: w.employmentType,
    ...(manager ? { managerEmail: manager.worker.email } : {}),
  };
}
