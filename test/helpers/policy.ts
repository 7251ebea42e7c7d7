import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { compilePolicy, type Policy } from '#core/policy';
import { loadPolicyText } from '#core/policy-yaml';
import type { Worker } from '#core/hr-event';

export const POLICY_PATH = new URL('../../config/access-policy.yaml', import.meta.url);

let cached: Policy | undefined;
/** The example policy shipped in config/ (what the demo and docs use). */
export function examplePolicy(): Policy {
  return (cached ??= loadPolicyText(readFileSync(POLICY_PATH, 'utf8')));
}

/** The example policy as a plain object, for tests that mutate it. */
export function examplePolicyDocument(): Record<string, any> {
  return parse(readFileSync(POLICY_PATH, 'utf8'));
}

export function withPolicy(mutate: (doc: Record<string, any>) => void): Policy {
  const doc = examplePolicyDocument();
  mutate(doc);
  return compilePolicy(doc);
}

export function worker(over: Partial<Worker> = {}): Worker {
  return {
    employeeId: 'E1001',
    givenName: 'Ada',
    familyName: 'Lovelace',
    email: 'ada.lovelace@acme.example',
    department: 'Engineering',
    location: 'London',
    jobCode: 'ENG-2',
    managerId: 'E0100',
    employmentType: 'employee',
    startDate: '2026-12-01',
    ...over,
  };
}
