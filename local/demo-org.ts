/**
 * Seeds the local stack with an organisation as it is before jml takes over: people in the HR
 * ledger and their accounts already in the targets (converged to the policy once), plus a few
 * stray accounts nobody owns — what the nightly reconciliation should find.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { accountProfile } from '#app/profile';
import { converge } from '#connectors/converge';
import { desiredState } from '#core/desired-state';
import { WorkerSchema } from '#core/hr-event';
import type { PersonRecord } from '#core/ledger';
import { parseOrThrow } from '#core/validation';
import type { LocalStack } from './stack.ts';

const DemoOrgSchema = z.object({
  description: z.string().optional(),
  workers: z.array(WorkerSchema).min(1),
  strays: z
    .array(
      z.object({
        target: z.string(),
        login: z.string().optional(),
        userName: z.string().optional(),
        firstName: z.string().optional(),
        lastName: z.string().optional(),
        displayName: z.string().optional(),
        note: z.string().optional(),
      }),
    )
    .default([]),
});
export type DemoOrg = z.infer<typeof DemoOrgSchema>;

export function loadDemoOrg(path: string): DemoOrg {
  return parseOrThrow(DemoOrgSchema, JSON.parse(readFileSync(path, 'utf8')), 'demo org');
}

export async function seedDemoOrg(stack: LocalStack, org: DemoOrg): Promise<{ people: number; accounts: number }> {
  const { deps, policy } = stack;
  let accounts = 0;
  const seededAt = new Date(Date.UTC(2026, 0, 1)).toISOString();
  for (const worker of org.workers) {
    const person: PersonRecord = {
      employeeId: worker.employeeId,
      worker,
      status: 'active',
      version: seededAt,
      lastRunId: 'seed',
      links: {},
      grantedAt: {},
      approvedBundles: [],
      rejectedBundles: [],
      updatedAt: deps.clock.now().toISOString(),
    };
    await deps.ledger.putPerson(person, null);
  }
  // Accounts as provisioned before jml: every person converged once to today's policy.
  for (const worker of org.workers) {
    const person = (await deps.ledger.getPerson(worker.employeeId))!;
    const desired = desiredState({ worker, status: 'active' }, policy);
    const profile = await accountProfile(deps.ledger, person);
    const links: Record<string, string> = {};
    for (const target of desired.targets) {
      if (target.account !== 'enabled') continue;
      const result = await converge(deps.connectors.get(target.target), profile, { ...target, mode: 'enforce' });
      if (result.accountId) {
        links[target.target] = result.accountId;
        accounts += 1;
      }
    }
    const approved = desired.bundles.filter((b) => b.kind === 'privileged').map((b) => b.bundle);
    await deps.ledger.putPerson({ ...person, links, approvedBundles: approved, updatedAt: new Date(Date.parse(person.updatedAt) + 1).toISOString() }, person.updatedAt);
  }
  for (const stray of org.strays) {
    if (stray.target === policy.idp.name && stack.targets.okta && stray.login) {
      stack.targets.okta.seed({
        users: [{ status: 'ACTIVE', profile: { login: stray.login, email: stray.login, firstName: stray.firstName ?? 'Stray', lastName: stray.lastName ?? 'Account' } }],
      });
    } else if (stack.targets.scim[stray.target] && stray.userName) {
      stack.targets.scim[stray.target]!.state.insert(stack.targets.scim[stray.target]!.state.users, {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
        userName: stray.userName,
        displayName: stray.displayName ?? stray.userName,
        active: true,
      });
    }
  }
  return { people: org.workers.length, accounts };
}
