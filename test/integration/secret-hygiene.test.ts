/**
 * Nothing a run writes carries a secret: a joiner (with an Entra Temporary Access Pass) and a
 * leaver run end to end over HTTP, then every evidence file and every email except the one meant
 * to carry it is searched for the webhook secret, the link-signing key, the SCIM tokens, the
 * Step Functions task tokens and the pass itself.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { signCanonical } from '#core/signature';
import type { LocalServer } from '#local/server';
import type { LocalStack } from '#local/stack';
import { decideByEmail, approvalMail, serveLocalStack, waitForStatus } from '../helpers/stack.ts';

const secrets = {
  hrisWebhook: randomBytes(24).toString('base64url'),
  bambooHr: randomBytes(24).toString('base64url'),
  oktaHook: randomBytes(24).toString('base64url'),
  linkSigning: randomBytes(32).toString('base64url'),
};

let stack: LocalStack;
let server: LocalServer;

const served = serveLocalStack({ idp: 'entra', retryIntervalMs: 5, secrets });
beforeAll(() => void ({ stack, server } = served));

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

async function post(event: unknown) {
  const body = JSON.stringify(event);
  const res = await fetch(`${server.url}/hris/events`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...signCanonical(secrets.hrisWebhook, body, Math.floor(Date.now() / 1000)) },
  });
  expect(res.status).toBe(202);
  return { body, runId: ((await res.json()) as { runId: string }).runId };
}

describe('secret hygiene', () => {
  it('keeps secrets, tokens and the day-one pass out of evidence and the wrong emails', async () => {
    const worker = {
      employeeId: 'E8001', givenName: 'Katalin', familyName: 'Karikó', email: 'katalin.kariko@acme.example', department: 'Engineering',
      location: 'London', jobCode: 'ENG-2', managerId: 'E0100', employmentType: 'employee', startDate: '2026-10-01',
    };
    const hire = await post({ eventId: 'hyg-hire', eventType: 'hire', effectiveDate: '2026-10-01', occurredAt: '2026-10-01T09:00:00Z', worker });
    await decideByEmail(stack, (await approvalMail(stack, hire.runId, 'baseline')).mail.links[0]!, 'approve');
    await waitForStatus(stack, hire.runId, ['COMPLETED', 'EXCEPTION_OPEN']);
    const leave = await post({ eventId: 'hyg-leave', eventType: 'termination', effectiveDate: '2026-11-02', occurredAt: '2026-11-02T09:00:00Z', worker: { ...worker, terminationDate: '2026-11-02' } });
    await decideByEmail(stack, (await approvalMail(stack, leave.runId, 'data:mailbox-delegation')).mail.links[0]!, 'approve');
    await decideByEmail(stack, (await approvalMail(stack, leave.runId, 'data:file-transfer')).mail.links[0]!, 'approve');
    await waitForStatus(stack, leave.runId, ['COMPLETED', 'EXCEPTION_OPEN']);

    // The pass went to the manager, and only there.
    const tapMail = stack.outbox.mails.find((m) => m.subject.startsWith('Day-one sign-in code'));
    expect(tapMail?.to).toEqual(['margaret@acme.example']);
    const tap = /^\s{4}(\S+)$/m.exec(tapMail!.text)![1]!;
    expect(tap.length).toBeGreaterThanOrEqual(8);

    const taskTokens = (await Promise.all([hire.runId, leave.runId].map((r) => stack.deps.ledger.listApprovals(r))))
      .flat()
      .map((a) => a.taskToken)
      .filter((t): t is string => !!t);
    expect(taskTokens.length).toBeGreaterThanOrEqual(3);
    const scimTokens = Object.values(stack.targets.scim).map((s) => s.token);
    const forbidden: Record<string, string> = {
      'HRIS webhook secret': secrets.hrisWebhook,
      'link-signing key': secrets.linkSigning,
      'Temporary Access Pass': tap,
      ...Object.fromEntries(scimTokens.map((t, i) => [`SCIM token ${i}`, t])),
      ...Object.fromEntries(taskTokens.map((t, i) => [`task token ${i}`, t])),
    };

    const evidence = filesUnder(stack.evidenceRoot).map((p) => ({ where: p, text: readFileSync(p, 'utf8') }));
    expect(evidence.some((e) => e.where.endsWith('summary.html'))).toBe(true);
    const otherMails = stack.outbox.mails.filter((m) => m !== tapMail).map((m, i) => ({ where: `mail ${i}: ${m.subject}`, text: `${m.text}\n${m.html}\n${m.links.join('\n')}` }));
    const haystacks = [...evidence, ...otherMails];
    const leaks = haystacks.flatMap((h) => Object.entries(forbidden).filter(([, v]) => h.text.includes(v)).map(([what]) => `${what} in ${h.where}`));
    expect(leaks).toEqual([]);

  });
});
