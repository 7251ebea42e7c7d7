/**
 * `GET /local/outbox` on the local server: the whole outbox as before, or only what a follower
 * has not seen (`?after=N`, with `next` to ask from next time), without text and html on
 * `?summary=1`; positions survive a runtime taking over the same data directory (the file is
 * appended to, not rewritten). And the reliability harness's approver, which follows it that way.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AdjustableClock, Outbox } from '#local/adapters';
import { startLocalServer, type LocalServer } from '#local/server';
import { startLocalStack, type LocalStack } from '#local/stack';
import { worker } from '../helpers/policy.ts';
import { hrEvent, seedPeople, send, waitFor, waitForStatus } from '../helpers/stack.ts';
import { startHttpApprovalBot } from '../reliability/fixtures/harness.ts';

type Mail = { to: string[]; subject: string; text?: string; html?: string; links: string[]; runId: string | null; approvalId: string | null; sentAt: string };

const tmp = mkdtempSync(join(tmpdir(), 'jml-outbox-route-'));
const open: Array<{ stack: LocalStack; server: LocalServer }> = [];
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

async function serve(dataDir: string) {
  const stack = await startLocalStack({ dataDir, retryIntervalMs: 5 });
  const server = await startLocalServer(stack);
  stack.deps.publicBaseUrl = server.url;
  const served = { stack, server };
  open.push(served);
  return served;
}
async function close(served: { stack: LocalStack; server: LocalServer }) {
  open.splice(open.indexOf(served), 1);
  await served.server.close();
  await served.stack.close();
}
afterAll(async () => {
  for (const s of [...open]) await close(s);
});

async function outbox(server: LocalServer, query = '') {
  const res = await fetch(`${server.url}/local/outbox${query}`);
  return { status: res.status, body: (await res.json()) as { mails: Mail[]; next: number; error?: string; message?: string } };
}

/** A GET on a new connection (no keep-alive pool). */
function freshGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** A notification as the product's mail port sends it (numbered, so order is visible). */
const note = (i: number) => ({ to: ['it-access@acme.example'], subject: `notice ${i}`, text: `text ${i}`, html: `<p>html ${i}</p>`, links: [] });

describe('GET /local/outbox', () => {
  let served: { stack: LocalStack; server: LocalServer };
  const dataDir = join(tmp, 'a');
  beforeAll(async () => {
    served = await serve(dataDir);
    await seedPeople(served.stack);
    for (let i = 0; i < 5; i++) await served.stack.outbox.send(note(i));
  }, 60_000);

  it('without after answers every mail with text and html, as before, plus next', async () => {
    const { status, body } = await outbox(served.server);
    expect(status).toBe(200);
    expect(body.mails.map((m) => m.subject)).toEqual(['notice 0', 'notice 1', 'notice 2', 'notice 3', 'notice 4']);
    expect(body.mails[2]).toMatchObject({ to: ['it-access@acme.example'], text: 'text 2', html: '<p>html 2</p>', links: [], runId: null, approvalId: null });
    expect(body.next).toBe(5);
  });

  it('with after answers only the mails from that position on, and next follows them', async () => {
    const first = await outbox(served.server, '?after=3');
    expect(first.body.mails.map((m) => m.subject)).toEqual(['notice 3', 'notice 4']);
    expect(first.body.next).toBe(5);
    // Nothing new yet: no mails, the same position.
    expect((await outbox(served.server, `?after=${first.body.next}`)).body).toEqual({ mails: [], next: 5 });
    await served.stack.outbox.send(note(5));
    const second = await outbox(served.server, `?after=${first.body.next}`);
    expect(second.body.mails.map((m) => m.subject)).toEqual(['notice 5']);
    expect(second.body.next).toBe(6);
    expect((await outbox(served.server, '?after=0')).body.mails).toHaveLength(6);
  });

  it('answers next smaller than after when the caller followed a longer outbox', async () => {
    const { status, body } = await outbox(served.server, '?after=40');
    expect(status).toBe(200);
    expect(body.mails).toEqual([]);
    expect(body.next).toBe(served.stack.outbox.mails.length);
    expect(body.next).toBeLessThan(40);
  });

  it('with summary=1 leaves out text and html, and keeps what an approver follows', async () => {
    // A real approval email: a joiner's run asks the manager.
    const accepted = await send(served.stack, hrEvent('hire', worker({ employeeId: 'E7001', startDate: '2026-10-01' })));
    await waitForStatus(served.stack, accepted.runId, ['AWAITING_APPROVAL'], 30_000);
    const approval = await waitFor('the approval email', () => served.stack.outbox.mails.find((m) => m.runId === accepted.runId && m.approvalId));
    const position = served.stack.outbox.mails.indexOf(approval);

    const { status, body } = await outbox(served.server, `?after=${position}&summary=1`);
    expect(status).toBe(200);
    const mail = body.mails[0]!;
    expect(Object.keys(mail).sort()).toEqual(['approvalId', 'links', 'runId', 'sentAt', 'subject', 'to']);
    expect(mail).toMatchObject({ approvalId: approval.approvalId, runId: accepted.runId, subject: approval.subject, sentAt: approval.sentAt, to: ['margaret@acme.example'] });
    expect(new URL(mail.links[0]!).pathname).toBe(`/approvals/${approval.approvalId}`);
    // summary=0 is the full answer.
    expect((await outbox(served.server, `?after=${position}&summary=0`)).body.mails[0]!.html).toBe(approval.html);
  }, 60_000);

  it.each(['-1', 'abc', '1.5', '', '0x10', '1e3', '99999999999999999999'])('answers 400 naming after for after=%j', async (after) => {
    const { status, body } = await outbox(served.server, `?after=${encodeURIComponent(after)}`);
    expect(status).toBe(400);
    expect(body.error).toBe('invalid_request');
    expect(body.message).toMatch(/^after must be a non-negative integer/);
    expect(body.message).toContain(JSON.stringify(after));
  });

  it('answers 400 naming summary for a summary it does not know', async () => {
    const { status, body } = await outbox(served.server, '?summary=yes');
    expect(status).toBe(400);
    expect(body.message).toMatch(/^summary must be 1 or 0/);
  });

  it('answers loopback callers only, with or without after', async () => {
    // The server listens on 127.0.0.1 only, so a caller from elsewhere is simulated: the socket's
    // peer address (what `remoteAddress` reads) is another host's. A fresh connection each time,
    // so no socket whose address was read before is reused.
    vi.spyOn(Socket.prototype as unknown as { _getpeername(): object }, '_getpeername').mockReturnValue({ address: '10.1.2.3', port: 50000, family: 'IPv4' });
    for (const query of ['', '?after=0&summary=1']) {
      const { status, body } = await freshGet(`${served.server.url}/local/outbox${query}`);
      expect(status).toBe(403);
      expect(JSON.parse(body).message).toContain('loopback');
    }
    vi.restoreAllMocks();
    expect((await freshGet(`${served.server.url}/local/outbox?after=0&summary=1`)).status).toBe(200);
  });

  it('keeps positions across a runtime taking over the same data directory', async () => {
    const before = (await outbox(served.server)).body;
    await close(served);
    // The file the next runtime loads: every mail, in order, as a JSON array.
    const file = JSON.parse(readFileSync(join(dataDir, 'outbox.json'), 'utf8')) as Mail[];
    expect(file.map((m) => [m.subject, m.html])).toEqual(before.mails.map((m) => [m.subject, m.html]));
    served = await serve(dataDir);
    const after = await outbox(served.server, `?after=${before.next}`);
    expect(after.body).toEqual({ mails: [], next: before.next });
    await served.stack.outbox.send(note(99));
    const next = await outbox(served.server, `?after=${before.next}`);
    expect(next.body.mails.map((m) => m.subject)).toEqual(['notice 99']);
    expect((await outbox(served.server, '?after=2&summary=1')).body.mails.map((m) => m.subject)).toEqual(before.mails.slice(2).map((m) => m.subject).concat('notice 99'));
  }, 60_000);
});

describe('the outbox file', () => {
  it('reads an outbox written whole (pretty-printed), and appends to it', async () => {
    const dir = join(tmp, 'pretty');
    mkdirSync(dir);
    const earlier = [0, 1].map((i) => ({ ...note(i), messageId: `local-${i}`, sentAt: `2026-11-0${i + 1}T09:00:00.000Z` }));
    writeFileSync(join(dir, 'outbox.json'), JSON.stringify(earlier, null, 2));
    const first = new Outbox(new AdjustableClock(), join(dir, 'outbox.json'));
    expect(first.since(1).mails.map((m) => m.subject)).toEqual(['notice 1']);
    await first.send(note(2));
    await first.send(note(3));
    const again = new Outbox(new AdjustableClock(), join(dir, 'outbox.json'));
    expect(again.mails.map((m) => m.subject)).toEqual(['notice 0', 'notice 1', 'notice 2', 'notice 3']);
    expect(again.since(2)).toEqual({ mails: first.mails.slice(2), next: 4 });
    expect(JSON.parse(readFileSync(join(dir, 'outbox.json'), 'utf8'))).toEqual(first.mails);
  });
});

describe('the approval bot of the reliability harness', () => {
  it('decides every approval, and reads a new runtime\'s outbox from the start when it is shorter than its position', async () => {
    const a = await serve(join(tmp, 'bot-a'));
    await seedPeople(a.stack);
    let url: string | undefined = a.server.url;
    const bot = startHttpApprovalBot(() => url, { concurrency: 4 });
    try {
      // Two runtimes' worth of notifications first, so the second outbox is the shorter one.
      for (let i = 0; i < 30; i++) await a.stack.outbox.send(note(i));
      const hires = await Promise.all(
        Array.from({ length: 6 }, (_, i) => send(a.stack, hrEvent('hire', worker({ employeeId: `E71${i}`, email: `p${i}@acme.example`, startDate: '2026-10-01' })))),
      );
      for (const h of hires) await waitForStatus(a.stack, h.runId, ['COMPLETED'], 60_000);
      expect(bot.stats()).toMatchObject({ decided: 6, failed: 0 });
      const position = bot.stats().position;
      expect(position).toBe(a.stack.outbox.mails.length);

      // Another runtime, another data directory, fewer mails than the position: read from 0.
      const b = await serve(join(tmp, 'bot-b'));
      await seedPeople(b.stack);
      url = b.server.url;
      const hire = await send(b.stack, hrEvent('hire', worker({ employeeId: 'E7200', startDate: '2026-10-01' })));
      await waitForStatus(b.stack, hire.runId, ['COMPLETED'], 60_000);
      expect(b.stack.outbox.mails.length).toBeLessThan(position);
      expect(bot.stats()).toMatchObject({ decided: 7, failed: 0 });
    } finally {
      await bot.stop();
    }
  }, 120_000);
});
