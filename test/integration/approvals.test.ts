/**
 * Approvals by emailed link, end to end through the API handler: the DynamoDB ledger on
 * dynalite, the example policy and the real planner; mail and task callbacks are recorded.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expireApproval, remindApproval, requestApproval } from '#app/approvals';
import { MAX_RATIONALE_CHARS } from '#app/approval-views';
import type { ApprovalRecord } from '#core/ledger';
import { randomBytes } from 'node:crypto';
import {
  FALLBACK,
  FORM,
  MANAGER,
  SKIP_LEVEL,
  call,
  form,
  formFields,
  personRecord,
  seedJoinerRun,
  seedOrg,
  startHarness,
  taskToken,
  type Harness,
} from '../helpers/approvals-harness.ts';
import { worker } from '../helpers/policy.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
  await seedOrg(h);
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => {
  h.clock.set('2026-11-30T09:00:00.000Z');
});

/** A joiner run waiting for its manager: the request made, the email sent, its link. */
async function requested(over: Parameters<typeof seedJoinerRun>[1] = {}, requestId = 'baseline') {
  const seeded = await seedJoinerRun(h, over);
  const token = taskToken();
  const before = h.outbox.sent.length;
  const { approvalId } = await requestApproval(h.deps, { runId: seeded.run.runId, requestId, taskToken: token, escalation: false });
  const mails = h.outbox.sent.slice(before);
  const link = mails.at(-1)!.links[0]!;
  return { ...seeded, token, approvalId, mails, link };
}

async function openPage(link: string) {
  const res = await call(h, { method: 'GET', url: link });
  return { res, fields: res.statusCode === 200 ? formFields(res.body) : undefined };
}

async function post(approvalId: string, fields: Record<string, string | undefined>, extra: { sourceIp?: string; userAgent?: string } = {}) {
  return call(h, { method: 'POST', url: `/approvals/${approvalId}`, headers: FORM, body: form(fields), ...extra });
}

const record = async (id: string) => (await h.ledger.getApproval(id))!;
const callbacksFor = (token: string) => h.callbacks.calls.filter((c) => c.taskToken === token);

describe('requesting an approval', () => {
  it('stores the task token server-side and emails the manager one link that carries no token', async () => {
    const r = await requested({ givenName: 'Ada', familyName: 'Lovelace' });
    expect(r.mails).toHaveLength(1);
    const mail = r.mails[0]!;
    expect(mail.to).toEqual([MANAGER]);
    expect(mail.links).toHaveLength(1);
    expect(r.link).toMatch(new RegExp(`^https://jml\\.acme\\.example/prod/approvals/${r.approvalId}\\?t=[A-Za-z0-9_.-]+$`));
    for (const part of [mail.subject, mail.text, mail.html, ...mail.links]) {
      expect(part).not.toContain(r.token);
      expect(part).not.toContain(r.token.slice(3, 40));
    }
    expect(mail.subject).toBe('[Acme Corp] Approval needed: access for Ada Lovelace');
    // Who, what, risk, why, by when — in both parts.
    for (const body of [mail.text, mail.html]) {
      expect(body).toContain('Ada Lovelace');
      expect(body).toContain('Engineering');
      expect(body).toContain('ENG-2');
      expect(body).toContain('all-staff, employees, engineering');
      expect(body).toContain('Okta (workforce identity): group GitHub Users');
      expect(body).toContain('Slack: group eng');
      expect(body).toContain('Standard access');
      expect(body).toContain('baseline access for a joiner needs the manager');
      expect(body).toContain('Thu, 3 Dec 2026, 08:59 GMT'); // 72 h minus the 60 s margin, London time
    }
    expect(mail.text).toContain(r.link);

    const stored = await record(r.approvalId);
    expect(stored).toMatchObject({
      runId: r.run.runId,
      requestId: 'baseline',
      approver: MANAGER,
      approverRole: 'manager',
      taskToken: r.token,
      status: 'PENDING',
      requestedAt: '2026-11-30T09:00:00.000Z',
      // The window of the waiting state, closing a minute early so a late decision never outlives the wait.
      expiresAt: '2026-12-03T08:59:00.000Z',
    });
    expect(stored.request).toMatchObject({ person: { name: 'Ada Lovelace', department: 'Engineering', jobCode: 'ENG-2' }, privileged: false });
  });

  it('schedules one reminder reminderHours (policy) before the window closes', async () => {
    const r = await requested({ givenName: 'Ada', familyName: 'Lovelace' });
    const stored = await record(r.approvalId);
    const reminders = h.scheduler.list().filter((e) => e.action.kind === 'approval-reminder' && e.action.payload.approvalId === r.approvalId);
    expect(reminders).toHaveLength(1);
    expect(reminders[0]!.action.payload).toMatchObject({ approvalId: r.approvalId });
    expect(Date.parse(stored!.expiresAt) - Date.parse(reminders[0]!.at)).toBe(24 * 3_600_000);
  });

  it('a retried request step sends no second email and keeps the newest task token', async () => {
    const r = await requested();
    const again = taskToken();
    await requestApproval(h.deps, { runId: r.run.runId, requestId: 'baseline', taskToken: r.token });
    await requestApproval(h.deps, { runId: r.run.runId, requestId: 'baseline', taskToken: again });
    expect(h.outbox.sent.filter((m) => m.approvalId === r.approvalId)).toHaveLength(1);
    expect((await record(r.approvalId)).taskToken).toBe(again);
  });

  it('a request for an approval already decided (a resumed run) asks nobody and answers the new task with the decision', async () => {
    const approved = await requested();
    const page = await openPage(approved.link);
    expect((await post(approved.approvalId, { t: page.fields!.t, csrf: page.fields!.csrf, decision: 'approve', rationale: '' })).statusCode).toBe(200);
    const mails = h.outbox.sent.length;
    const resumed = taskToken();
    await requestApproval(h.deps, { runId: approved.run.runId, requestId: 'baseline', taskToken: resumed });
    expect(h.outbox.sent.length).toBe(mails);
    expect(callbacksFor(resumed)).toEqual([
      { kind: 'succeed', taskToken: resumed, output: { requestId: 'baseline', approvalId: approved.approvalId, decision: 'approved' }, answer: 'ok' },
    ]);

    const rejected = await requested();
    const page2 = await openPage(rejected.link);
    expect((await post(rejected.approvalId, { t: page2.fields!.t, csrf: page2.fields!.csrf, decision: 'reject', rationale: 'Wrong team' })).statusCode).toBe(200);
    const again = taskToken();
    await requestApproval(h.deps, { runId: rejected.run.runId, requestId: 'baseline', taskToken: again });
    expect(callbacksFor(again)).toEqual([
      { kind: 'fail', taskToken: again, error: 'ApprovalRejected', cause: JSON.stringify({ requestId: 'baseline', approvalId: rejected.approvalId }), answer: 'ok' },
    ]);
  });

  it('uses the timeout the workflow waits with', async () => {
    const seeded = await seedJoinerRun(h);
    const { approvalId } = await requestApproval(h.deps, { runId: seeded.run.runId, requestId: 'baseline', taskToken: taskToken(), timeoutSeconds: 3600 });
    expect((await record(approvalId)).expiresAt).toBe('2026-11-30T09:59:00.000Z');
  });

  it('refuses a run or request that does not exist, by name', async () => {
    await expect(requestApproval(h.deps, { runId: 'run-nope', requestId: 'baseline', taskToken: taskToken() })).rejects.toMatchObject({
      name: 'ApprovalRequestInvalid',
      message: 'run run-nope not found',
    });
    const seeded = await seedJoinerRun(h);
    await expect(requestApproval(h.deps, { runId: seeded.run.runId, requestId: 'bundle:nope', taskToken: taskToken() })).rejects.toMatchObject({
      name: 'ApprovalRequestInvalid',
    });
    await expect(requestApproval(h.deps, { runId: seeded.run.runId, requestId: '', taskToken: taskToken() })).rejects.toMatchObject({
      name: 'ValidationError',
      message: expect.stringContaining('requestApproval: requestId'),
    });
  });

  it('sends a privileged bundle to its app owner, with the risk stated', async () => {
    const r = await requested({ jobCode: 'SRE-2' }, 'bundle:production-access');
    expect(r.mails[0]!.to).toEqual(['platform-lead@acme.example']);
    expect(r.mails[0]!.subject).toBe(`[Acme Corp] Approval needed: privileged access for Ada Lovelace`);
    expect(r.mails[0]!.text).toContain('Risk: Privileged access');
    expect(r.mails[0]!.text).toContain('Break-glass production access for on-call SREs');
    expect((await record(r.approvalId)).approverRole).toBe('appOwner');
  });
});

describe('self-approval falls back', () => {
  it('to the fallback approver when the manager is the person themself', async () => {
    const r = await requested({ employeeId: 'E3001', managerId: 'E3001', email: 'self.managed@acme.example' });
    expect(r.mails[0]!.to).toEqual([FALLBACK]);
    expect((await record(r.approvalId)).approverRole).toBe('fallback');
  });

  it('when the manager record carries the person’s own address', async () => {
    await h.ledger.putPerson(personRecord(worker({ employeeId: 'E3100', email: 'twin@acme.example', managerId: 'E0001' })), null);
    const r = await requested({ employeeId: 'E3101', managerId: 'E3100', email: 'twin@acme.example' });
    expect(r.mails[0]!.to).toEqual([FALLBACK]);
  });

  it('when the manager is unknown, not in the ledger, or has left', async () => {
    await h.ledger.putPerson(personRecord(worker({ employeeId: 'E3200', email: 'gone@acme.example' }), { status: 'terminated' }), null);
    for (const managerId of [undefined, 'E9999', 'E3200']) {
      const r = await requested({ managerId });
      expect(r.mails[0]!.to).toEqual([FALLBACK]);
    }
  });

  it('when the app owner is the person themself', async () => {
    const r = await requested({ jobCode: 'SRE-1', email: 'platform-lead@acme.example' }, 'bundle:production-access');
    expect(r.mails[0]!.to).toEqual([FALLBACK]);
  });
});

describe('the confirmation page', () => {
  it('shows the request with strict headers; GET and HEAD (scanner prefetch) change nothing', async () => {
    const r = await requested({ givenName: 'Ada', familyName: 'Lovelace' });
    const before = await record(r.approvalId);
    const get = await call(h, { method: 'GET', url: r.link });
    expect(get.statusCode).toBe(200);
    expect(get.headers).toMatchObject({
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
    });
    const csp = String(get.headers!['Content-Security-Policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/script-src|unsafe-inline/);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(get.body).toContain('<html lang="en">');
    expect(get.body).toContain('Acme Corp');
    expect(get.body).toContain('Approve access bundles all-staff, employees, engineering for Ada Lovelace?');
    expect(get.body).toMatch(/<label for="rationale">Rationale<\/label>/);
    expect(get.body).toContain('value="approve">Approve</button>');
    expect(get.body).toContain('value="reject">Reject</button>');
    expect(get.body).toContain('What will happen');
    expect(get.body).not.toMatch(/<script|onload=|http-equiv="refresh"/i);
    expect(get.body).not.toContain(r.token);

    const head = await call(h, { method: 'HEAD', url: r.link });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers!['Cache-Control']).toBe('no-store');
    await call(h, { method: 'GET', url: r.link });

    expect(await record(r.approvalId)).toEqual(before);
    expect(callbacksFor(r.token)).toEqual([]);
  });
});

describe('deciding', () => {
  it('approve: records the evidence and tells the waiting workflow once', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    h.clock.advance(5 * 60_000);
    const res = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve', rationale: 'Known start date, standard kit' }, { sourceIp: '203.0.113.9', userAgent: 'Mobile Safari' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('Approved');
    expect(res.body).toContain('the run for Ada Lovelace continues');
    expect(await record(r.approvalId)).toMatchObject({
      status: 'APPROVED',
      decidedAt: '2026-11-30T09:05:00.000Z',
      rationale: 'Known start date, standard kit',
      sourceIp: '203.0.113.9',
      userAgent: 'Mobile Safari',
      approver: MANAGER,
      expiresAt: '2026-12-03T08:59:00.000Z',
    });
    expect(callbacksFor(r.token)).toEqual([
      { kind: 'succeed', taskToken: r.token, output: { requestId: 'baseline', approvalId: r.approvalId, decision: 'approved' }, answer: 'ok' },
    ]);
  });

  it('reject: needs a rationale, then fails the task with ApprovalRejected', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    const bare = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'reject', rationale: '   ' });
    expect(bare.statusCode).toBe(400);
    expect(bare.body).toContain('A rationale is required to reject');
    expect((await record(r.approvalId)).status).toBe('PENDING');

    const res = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'reject', rationale: 'Not starting in this team' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('will not be granted');
    expect((await record(r.approvalId)).status).toBe('REJECTED');
    expect(callbacksFor(r.token)).toEqual([
      { kind: 'fail', taskToken: r.token, error: 'ApprovalRejected', cause: JSON.stringify({ requestId: 'baseline', approvalId: r.approvalId }), answer: 'ok' },
    ]);
  });

  it('replaying the POST after the decision changes nothing and says the link was used', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    const body = { t: fields!.t, csrf: fields!.csrf, decision: 'approve' };
    expect((await post(r.approvalId, body)).statusCode).toBe(200);
    const decided = await record(r.approvalId);
    h.clock.advance(10 * 60_000);
    const replay = await post(r.approvalId, { ...body, decision: 'reject', rationale: 'changed my mind' });
    expect(replay.statusCode).toBe(410);
    expect(replay.body).toContain('This link was already used: the request was approved by grace.hopper@acme.example');
    const get = await call(h, { method: 'GET', url: r.link });
    expect(get.statusCode).toBe(410);
    expect(await record(r.approvalId)).toEqual(decided);
    expect(callbacksFor(r.token)).toHaveLength(1);
  });

  it('two POSTs racing: exactly one decides and one callback is sent', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    const [a, b] = await Promise.all([
      post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve' }),
      post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'reject', rationale: 'no' }),
    ]);
    expect([a!.statusCode, b!.statusCode].sort()).toEqual([200, 410]);
    const winner = a!.statusCode === 200 ? 'APPROVED' : 'REJECTED';
    expect((await record(r.approvalId)).status).toBe(winner);
    const calls = callbacksFor(r.token);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.kind).toBe(winner === 'APPROVED' ? 'succeed' : 'fail');
  });

  it('a POST without (or with a foreign) form token decides nothing and shows the form again', async () => {
    const r = await requested();
    const other = await requested();
    const { fields } = await openPage(r.link);
    const { fields: foreign } = await openPage(other.link);
    for (const csrf of [undefined, '', foreign!.csrf, `${fields!.csrf}x`]) {
      const res = await post(r.approvalId, { t: fields!.t, csrf, decision: 'approve', rationale: 'kept text' });
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('Nothing was decided.');
      expect(res.body).toContain('>kept text</textarea>');
      expect(formFields(res.body).csrf).not.toBe(csrf);
    }
    // A stale page (left open over 8 h) is refused the same way, with its reason.
    h.clock.advance(9 * 3600_000);
    const stale = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve' });
    expect(stale.statusCode).toBe(403);
    expect(stale.body).toContain('The page was open too long');
    expect((await record(r.approvalId)).status).toBe('PENDING');
    expect(callbacksFor(r.token)).toEqual([]);
  });

  it('an oversized rationale is refused with its length; the maximum is accepted', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    const long = 'x'.repeat(MAX_RATIONALE_CHARS + 1);
    const res = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve', rationale: long });
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain(`The rationale is ${MAX_RATIONALE_CHARS + 1} characters long; at most ${MAX_RATIONALE_CHARS}`);
    expect((await record(r.approvalId)).status).toBe('PENDING');
    const ok = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve', rationale: 'é'.repeat(MAX_RATIONALE_CHARS) });
    expect(ok.statusCode).toBe(200);
    expect((await record(r.approvalId)).rationale).toHaveLength(MAX_RATIONALE_CHARS);
  });

  it('a decision that reaches a task no longer waiting tells the approver the request is closed, and records it', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    h.callbacks.timeOut(r.token); // the execution was stopped (superseded by a newer HR change)
    const res = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve' });
    expect(res.statusCode).toBe(410);
    expect(res.body).toContain('This request is no longer open');
    expect(await h.ledger.getMeta(`approval-callback:${r.approvalId}`)).toMatchObject({ outcome: 'gone', decision: 'APPROVED' });
    const later = await call(h, { method: 'GET', url: r.link });
    expect(later.statusCode).toBe(410);
    expect(later.body).toContain('after the request had closed, so the decision did not change the run');
  });

  it('a recorded decision whose callback was lost is delivered by a later POST, once', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    const original = h.deps.callbacks.succeed;
    h.deps.callbacks.succeed = async () => {
      throw new Error('socket hang up');
    };
    const failed = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve' });
    h.deps.callbacks.succeed = original;
    expect(failed.statusCode).toBe(500);
    expect(failed.body).not.toContain('socket hang up');
    expect((await record(r.approvalId)).status).toBe('APPROVED');
    expect(callbacksFor(r.token)).toEqual([]);

    // A double click right away does not redeliver (the first delivery may still be in flight)...
    await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve' });
    expect(callbacksFor(r.token)).toEqual([]);
    // ...a retry minutes later does, with the recorded decision, whatever the new form says.
    h.clock.advance(3 * 60_000);
    const retry = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'reject', rationale: 'x' });
    expect(retry.statusCode).toBe(410);
    expect(callbacksFor(r.token).map((c) => [c.kind, c.answer])).toEqual([['succeed', 'ok']]);
    await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve' });
    expect(callbacksFor(r.token)).toHaveLength(1);
  });
});

describe('bad links', () => {
  it('a one-character change to the signature: 403 with the reason, nothing changes', async () => {
    const r = await requested();
    const url = new URL(r.link);
    const t = url.searchParams.get('t')!;
    const i = t.length - 5;
    url.searchParams.set('t', t.slice(0, i) + (t[i] === 'A' ? 'B' : 'A') + t.slice(i + 1));
    const res = await call(h, { method: 'GET', url: url.href });
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain('This link is not valid');
    expect(res.body).toContain('its signature does not match');
    const { fields } = await openPage(r.link);
    const forged = await post(r.approvalId, { t: url.searchParams.get('t')!, csrf: fields!.csrf, decision: 'approve' });
    expect(forged.statusCode).toBe(403);
    expect((await record(r.approvalId)).status).toBe('PENDING');
    expect(callbacksFor(r.token)).toEqual([]);
  });

  it('a missing or truncated token: 403', async () => {
    const r = await requested();
    const missing = await call(h, { method: 'GET', url: `/approvals/${r.approvalId}` });
    expect(missing.statusCode).toBe(403);
    expect(missing.body).toContain('its security token is missing');
    const cut = await call(h, { method: 'GET', url: r.link.slice(0, -10) });
    expect(cut.statusCode).toBe(403);
    expect(cut.body).toContain('damaged or incomplete');
  });

  it('approval id swap: a genuine link for A used on B is refused on GET and POST; neither changes', async () => {
    const a = await requested();
    const b = await requested();
    const tA = new URL(a.link).searchParams.get('t')!;
    const swapped = await call(h, { method: 'GET', url: `/approvals/${b.approvalId}?t=${encodeURIComponent(tA)}` });
    expect(swapped.statusCode).toBe(403);
    expect(swapped.body).toContain('belongs to a different approval request');
    const { fields } = await openPage(a.link);
    const res = await post(b.approvalId, { t: tA, csrf: fields!.csrf, decision: 'approve' });
    expect(res.statusCode).toBe(403);
    expect((await record(a.approvalId)).status).toBe('PENDING');
    expect((await record(b.approvalId)).status).toBe('PENDING');
    expect(h.callbacks.calls.filter((c) => c.taskToken === a.token || c.taskToken === b.token)).toEqual([]);
  });

  it('an unknown approval id: 404', async () => {
    const r = await requested();
    const res = await call(h, { method: 'GET', url: `/approvals/apr_doesnotexist?t=${new URL(r.link).searchParams.get('t')}` });
    expect(res.statusCode).toBe(403); // the token names another approval: refused as a swap
    const junk = await call(h, { method: 'GET', url: '/approvals/%3Cscript%3E?t=x' });
    expect(junk.statusCode).toBe(404);
  });

  it('expiry at the boundary: one millisecond before decides, the expiry instant is 410', async () => {
    const late = await requested();
    const onTime = await requested();
    const expiresAt = Date.parse((await record(late.approvalId)).expiresAt);
    h.clock.set(new Date(expiresAt - 60_000));
    const { fields: lf } = await openPage(late.link);
    const { fields: of } = await openPage(onTime.link);

    h.clock.set(new Date(expiresAt));
    const get = await call(h, { method: 'GET', url: late.link });
    expect(get.statusCode).toBe(410);
    expect(get.body).toContain('The link has expired: the deadline was 3 Dec 2026, 08:59 (Europe/London)');
    const res = await post(late.approvalId, { t: lf!.t, csrf: lf!.csrf, decision: 'approve' });
    expect(res.statusCode).toBe(410);
    expect((await record(late.approvalId)).status).toBe('PENDING');

    h.clock.set(new Date(expiresAt - 1));
    const ok = await post(onTime.approvalId, { t: of!.t, csrf: of!.csrf, decision: 'approve' });
    expect(ok.statusCode).toBe(200);
    expect(callbacksFor(late.token)).toEqual([]);
    expect(callbacksFor(onTime.token)).toHaveLength(1);
  });

  it('links keep working through a key rotation and stop when the old key is retired', async () => {
    const r = await requested();
    const oldKey = h.linkKeys[0]!;
    h.linkKeys.splice(0, 1, randomBytes(32).toString('base64url'), oldKey);
    expect((await call(h, { method: 'GET', url: r.link })).statusCode).toBe(200);
    h.linkKeys.splice(1, 1);
    expect((await call(h, { method: 'GET', url: r.link })).statusCode).toBe(403);
    h.linkKeys.splice(0, 1, oldKey);
  });
});

describe('HTML injection', () => {
  it('names and rationales are escaped on the page and in the email', async () => {
    const evilGiven = '<script>alert(1)</script>';
    const evilFamily = '"><img src=x onerror=alert(2)>';
    const r = await requested({ givenName: evilGiven, familyName: evilFamily, department: 'Engineering', location: '<b>London</b>' });
    const mail = r.mails[0]!;
    const { res, fields } = await openPage(r.link);
    for (const markup of [mail.html, res.body]) {
      expect(markup).not.toContain('<script>alert');
      expect(markup).not.toContain('<img src=x');
      expect(markup).not.toContain('<b>London</b>');
      expect(markup).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(markup).toContain('&quot;&gt;&lt;img src=x onerror=alert(2)&gt;');
    }
    // The plain-text part is text: it carries the name as is (mail clients never render it).
    expect(mail.text).toContain(`${evilGiven} ${evilFamily}`);

    const rationale = '</textarea><script>steal()</script><a href="javascript:x">click</a>';
    const refused = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'maybe', rationale });
    expect(refused.statusCode).toBe(400);
    expect(refused.body).not.toContain('<script>steal');
    expect(refused.body).toContain('&lt;/textarea&gt;&lt;script&gt;steal()&lt;/script&gt;');

    const decided = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'reject', rationale });
    expect(decided.statusCode).toBe(200);
    const replay = await call(h, { method: 'GET', url: r.link });
    for (const markup of [decided.body, replay.body]) {
      expect(markup).not.toContain('<script>steal');
      expect(markup).not.toContain('href="javascript:');
      expect(markup).toContain('&lt;a href=&quot;javascript:x&quot;&gt;click&lt;/a&gt;');
    }
    expect((await record(r.approvalId)).rationale).toBe(rationale);
  });
});

describe('escalation and expiry', () => {
  it('an unanswered manager request escalates once to the skip-level manager, then expires into an exception', async () => {
    const r = await requested({ givenName: 'Ada', familyName: 'Lovelace' });
    const first = await record(r.approvalId);
    // The window lapses; the workflow's States.Timeout catch asks again with a new task token.
    h.clock.set(first.expiresAt);
    h.callbacks.timeOut(r.token);
    const token2 = taskToken();
    const before = h.outbox.sent.length;
    const { approvalId: escalatedId } = await requestApproval(h.deps, { runId: r.run.runId, requestId: 'baseline', taskToken: token2, escalation: true });
    expect(escalatedId).not.toBe(r.approvalId);
    expect((await record(r.approvalId)).status).toBe('ESCALATED');
    const escalated = await record(escalatedId);
    expect(escalated).toMatchObject({
      approver: SKIP_LEVEL,
      approverRole: 'escalation',
      escalationOf: r.approvalId,
      status: 'PENDING',
      taskToken: token2,
      requestedAt: first.expiresAt,
      expiresAt: new Date(Date.parse(first.expiresAt) + (72 * 3600 - 60) * 1000).toISOString(),
    });
    const mails = h.outbox.sent.slice(before);
    expect(mails.map((m) => m.to)).toEqual([[SKIP_LEVEL]]);
    expect(mails[0]!.subject).toBe('[Acme Corp] Escalated: approval needed: access for Ada Lovelace');
    expect(mails[0]!.links[0]).not.toBe(r.link);

    // The first link is closed with its reason; the new one works.
    const old = await call(h, { method: 'GET', url: r.link });
    expect(old.statusCode).toBe(410);
    expect(old.body).toContain('escalated to another approver');
    expect((await call(h, { method: 'GET', url: mails[0]!.links[0]! })).statusCode).toBe(200);

    // A retried escalation step neither re-asks nor re-mails.
    await requestApproval(h.deps, { runId: r.run.runId, requestId: 'baseline', taskToken: token2, escalation: true });
    expect(h.outbox.sent.length).toBe(before + 1);

    // Nobody decides again: the escalated link expires, and the workflow closes the request.
    h.clock.set(escalated.expiresAt);
    expect((await call(h, { method: 'GET', url: mails[0]!.links[0]! })).statusCode).toBe(410);
    const out = await expireApproval(h.deps, { runId: r.run.runId, requestId: 'baseline' });
    expect(out).toMatchObject({ requestId: 'baseline', decision: 'expired' });
    expect((await record(escalatedId)).status).toBe('EXPIRED');
    const exceptions = await h.ledger.listExceptions({ runId: r.run.runId });
    expect(exceptions).toHaveLength(1);
    expect(exceptions[0]).toMatchObject({
      kind: 'approval_expired',
      status: 'open',
      target: 'okta',
      owner: 'iam@acme.example',
      employeeId: r.run.employeeId,
      reason: expect.stringContaining('all-staff, employees, engineering'),
    });
    // A retried expiry step opens no second exception.
    await expireApproval(h.deps, { runId: r.run.runId, requestId: 'baseline' });
    expect(await h.ledger.listExceptions({ runId: r.run.runId })).toHaveLength(1);
  });

  it('an app-owner request escalates to the owner of record of the target', async () => {
    const r = await requested({ jobCode: 'SRE-3' }, 'bundle:production-access');
    h.clock.set((await record(r.approvalId)).expiresAt);
    const { approvalId } = await requestApproval(h.deps, { runId: r.run.runId, requestId: 'bundle:production-access', taskToken: taskToken(), escalation: true });
    expect((await record(approvalId)).approver).toBe('iam@acme.example');
  });

  it('leaver data handling goes to the manager and, unanswered, to the fallback approver as an exception', async () => {
    const seeded = await seedJoinerRun(h, { givenName: 'Leaving', familyName: 'Person' }, {}, 'leaver');
    expect(seeded.requests).toEqual(['data:mailbox-delegation', 'data:file-transfer']);
    const before = h.outbox.sent.length;
    const { approvalId } = await requestApproval(h.deps, { runId: seeded.run.runId, requestId: 'data:mailbox-delegation', taskToken: taskToken() });
    const mail = h.outbox.sent[before]!;
    expect(mail.to).toEqual([MANAGER]);
    expect(mail.subject).toBe('[Acme Corp] Approval needed: data handling for Leaving Person');
    expect(mail.text).toContain('What: Delegate the mailbox to the manager for 30 days');
    expect(mail.text).toContain('Risk: Data handling for a leaver');
    h.clock.set((await record(approvalId)).expiresAt);
    await requestApproval(h.deps, { runId: seeded.run.runId, requestId: 'data:mailbox-delegation', taskToken: taskToken(), escalation: true });
    await expireApproval(h.deps, { runId: seeded.run.runId, requestId: 'data:mailbox-delegation' });
    const [exception] = await h.ledger.listExceptions({ runId: seeded.run.runId });
    expect(exception).toMatchObject({ kind: 'approval_expired', owner: FALLBACK, target: 'okta' });
    expect(exception!.reason).toContain('Delegate the mailbox to the manager for 30 days');
  });

  it('with escalateTo: fallback, the escalation goes to the fallback approver', async () => {
    const { withPolicy } = await import('../helpers/policy.ts');
    const fb = await startHarness({ policy: withPolicy((doc) => (doc.approvals.escalateTo = 'fallback')) });
    try {
      await seedOrg(fb);
      const seeded = await seedJoinerRun(fb);
      await requestApproval(fb.deps, { runId: seeded.run.runId, requestId: 'baseline', taskToken: taskToken() });
      fb.clock.advance(73 * 3600_000);
      const { approvalId } = await requestApproval(fb.deps, { runId: seeded.run.runId, requestId: 'baseline', taskToken: taskToken(), escalation: true });
      expect(await fb.ledger.getApproval(approvalId)).toMatchObject({ approver: FALLBACK, approverRole: 'escalation' });
    } finally {
      await fb.close();
    }
  });
});

describe('reminders', () => {
  it('re-send the same link while pending, and nothing once decided or expired', async () => {
    const r = await requested();
    h.clock.advance(48 * 3600_000);
    expect(await remindApproval(h.deps, { approvalId: r.approvalId })).toEqual({ sent: true, reason: 'reminder sent' });
    const reminder = h.outbox.sent.at(-1)!;
    expect(reminder.subject).toBe('[Acme Corp] Reminder: approval needed: access for Ada Lovelace');
    expect(reminder.links).toEqual([r.link]);
    const { fields } = await openPage(r.link);
    await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve' });
    expect(await remindApproval(h.deps, { approvalId: r.approvalId })).toEqual({ sent: false, reason: 'approval is APPROVED' });
    const other = await requested();
    h.clock.advance(80 * 3600_000);
    expect(await remindApproval(h.deps, { approvalId: other.approvalId })).toEqual({ sent: false, reason: 'approval has expired' });
  });
});

describe('the API handler edge', () => {
  it('refuses other methods, content types and oversized forms without deciding', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    const put = await call(h, { method: 'PUT', url: `/approvals/${r.approvalId}` });
    expect(put.statusCode).toBe(405);
    expect(put.headers!.Allow).toBe('GET, HEAD, POST');
    const json = await call(h, {
      method: 'POST',
      url: `/approvals/${r.approvalId}`,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ t: fields!.t, csrf: fields!.csrf, decision: 'approve' }),
    });
    expect(json.statusCode).toBe(415);
    const huge = await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve', rationale: 'y'.repeat(20_000) });
    expect(huge.statusCode).toBe(413);
    expect((await record(r.approvalId)).status).toBe('PENDING');
  });

  it('accepts a base64-encoded form body (binary media types enabled on the API)', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    const body = Buffer.from(form({ t: fields!.t, csrf: fields!.csrf, decision: 'approve', rationale: 'ok ✓' })).toString('base64');
    const res = await call(h, {
      method: 'POST',
      url: `/approvals/${r.approvalId}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
      body,
      isBase64Encoded: true,
    });
    expect(res.statusCode).toBe(200);
    expect((await record(r.approvalId)).rationale).toBe('ok ✓');
  });
});

describe('evidence', () => {
  it('every decided approval of a run carries who, what, when, from where and the window', async () => {
    const r = await requested();
    const { fields } = await openPage(r.link);
    await post(r.approvalId, { t: fields!.t, csrf: fields!.csrf, decision: 'approve', rationale: 'fine' }, { sourceIp: '192.0.2.1', userAgent: 'UA/1' });
    const [a] = (await h.ledger.listApprovals(r.run.runId)) as ApprovalRecord[];
    expect(a).toMatchObject({ approver: MANAGER, status: 'APPROVED', rationale: 'fine', sourceIp: '192.0.2.1', userAgent: 'UA/1' });
    expect(Object.keys(a!)).toEqual(expect.arrayContaining(['requestedAt', 'decidedAt', 'expiresAt']));
  });
});
