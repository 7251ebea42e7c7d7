/**
 * Hostile HR data in every page and email a cycle produces. A person whose names carry markup,
 * quotes and bidirectional / zero-width characters is hired (manager approval), then leaves (data
 * handling approvals); every email in the outbox, every approval page its links open and the
 * run summaries are scanned for the HR values unescaped. (Input-level fuzzing of the webhook —
 * unicode, nesting, size — is in test/unit/hris-webhook.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovalsApiHandler } from '#handlers/approvals-api';
import { toApiGatewayEvent } from '#local/api-gateway';
import { startLocalStack, type LocalStack } from '#local/stack';
import { worker } from '../helpers/policy.ts';
import { approvalMail, decideByEmail, hrEvent, seedPeople, send, waitForStatus } from '../helpers/stack.ts';

const GIVEN = `<script>alert("g")</script>Zoë`;
const FAMILY = `O'Brien "Q" <img src=x onerror=alert(1)> \u202Eevil\u200B`;
const hostile = worker({ employeeId: 'X3001', givenName: GIVEN, familyName: FAMILY, email: 'x3001@acme.example', startDate: '2026-09-01' });

let stack: LocalStack;
const pages: Array<{ where: string; html: string }> = [];

beforeAll(async () => {
  stack = await startLocalStack({ retryIntervalMs: 5 });
  await seedPeople(stack);
  const api = createApprovalsApiHandler(async () => stack.deps);
  const open = async (link: string) => {
    const url = new URL(link);
    const page = await api(toApiGatewayEvent({ method: 'GET', url: url.pathname + url.search }));
    pages.push({ where: `page ${url.pathname}`, html: page.body });
  };
  const hire = await send(stack, hrEvent('hire', hostile, { effectiveDate: '2026-09-01', occurredAt: '2026-09-01T08:00:00.000Z' }));
  const baseline = await approvalMail(stack, hire.runId, 'baseline');
  await open(baseline.mail.links[0]!);
  await decideByEmail(stack, baseline.mail.links[0]!, 'approve');
  await waitForStatus(stack, hire.runId, ['COMPLETED', 'EXCEPTION_OPEN']);
  const leave = await send(
    stack,
    hrEvent('termination', { ...hostile, terminationDate: '2026-11-03' }, { effectiveDate: '2026-11-03', occurredAt: '2026-11-03T08:00:00.000Z' }),
  );
  for (const request of ['data:mailbox-delegation', 'data:file-transfer']) {
    const { mail } = await approvalMail(stack, leave.runId, request);
    await open(mail.links[0]!);
    await decideByEmail(stack, mail.links[0]!, 'approve');
  }
  await waitForStatus(stack, leave.runId, ['COMPLETED', 'EXCEPTION_OPEN']);
  // The decided link, opened again, shows its "already used" page.
  await open(baseline.mail.links[0]!);
  for (const runId of [hire.runId, leave.runId]) {
    const run = (await stack.deps.ledger.getRun(runId))!;
    const files = await stack.deps.evidence.loadBundle(run.evidence!.prefix);
    pages.push({ where: `summary.html of ${runId}`, html: Buffer.from(files.get('summary.html')!).toString('utf8') });
  }
  for (const m of stack.outbox.mails) pages.push({ where: `email "${m.subject}" to ${m.to.join(', ')}`, html: m.html });
}, 90_000);

afterAll(async () => {
  await stack?.close();
});

describe('HR data in pages and emails', () => {
  it('scans every approval page, email and summary of the cycle', () => {
    expect(pages.filter((p) => p.where.startsWith('page')).length).toBe(4);
    expect(pages.filter((p) => p.where.startsWith('summary')).length).toBe(2);
    expect(pages.filter((p) => p.where.startsWith('email')).length).toBeGreaterThanOrEqual(3);
    // The person is named on them (escaped), so the scan is not of pages that never show the name.
    expect(pages.filter((p) => p.html.includes('&lt;script&gt;')).length).toBeGreaterThanOrEqual(6);
  });

  it('never carries the markup, or the quotes inside attributes, unescaped', () => {
    const raw = ['<script', '<img', `"Q"`, `O'Brien`];
    const found = pages.flatMap((p) => raw.filter((r) => p.html.includes(r)).map((r) => `${r} in ${p.where}`));
    expect(found).toEqual([]);
  });

  // A U+202E (right-to-left override) in an HR name would reverse the text that follows it on
  // approval pages, summaries and emails; the html template isolates such values in <bdi>.
  it('keeps a right-to-left override in a name from reordering the text around it', () => {
    // An unisolated U+202E turns everything after it around ("…approve" reads as "evorppa…").
    const leaking = pages.filter((p) => p.html.includes('\u202E') && !/<bdi[^>]*>[^<]*\u202E/.test(p.html)).map((p) => p.where);
    expect(leaking).toEqual([]);
  });
});
