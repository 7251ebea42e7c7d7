/**
 * The approval page in a real browser: headless Chromium (Debian `chromium`, driven by
 * playwright-core) against the API handler served on 127.0.0.1 by a small node:http adapter,
 * on the local stack (real ASL workflow waiting on the task token, dynalite ledger, Okta and
 * SCIM stand-ins). The approver opens the emailed link, reads the request, clicks Approve, and
 * the run continues; opening the link alone never decides.
 *
 * `JML_UPDATE_SCREENSHOT=1` rewrites docs/img/approval-page.png from this run.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskCallbacks } from '#app/ports';
import { createApprovalsApiHandler } from '#handlers/approvals-api';
import { toApiGatewayEvent } from '#local/api-gateway';
import { startLocalStack, type LocalStack } from '#local/stack';
import { worker } from '../helpers/policy.ts';
import { approvalMail, hrEvent, seedPeople, send, waitForStatus } from '../helpers/stack.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const SCREENSHOT = fileURLToPath(new URL('../../docs/img/approval-page.png', import.meta.url));

interface Recorded {
  kind: 'succeed' | 'fail';
  taskToken: string;
  payload: unknown;
  answer: 'ok' | 'gone';
}

/** HTTP → APIGatewayProxyEvent → handler → HTTP, on loopback only. */
async function serve(stack: () => LocalStack): Promise<{ server: Server; url: string }> {
  const api = createApprovalsApiHandler(async () => stack().deps);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const m = /^\/approvals\/([^/]+)$/.exec(url.pathname);
      if (!m) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      const event = toApiGatewayEvent({
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks),
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        pathParameters: { id: decodeURIComponent(m[1]!) },
        resource: '/approvals/{id}',
      });
      api(event).then(
        (out) => {
          res.writeHead(out.statusCode, out.headers as Record<string, string>);
          res.end(req.method === 'HEAD' ? undefined : out.body);
        },
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.name),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

if (!haveChromium) {
  describe('approval page in Chromium', () => {
    it.skip(`skipped: ${CHROMIUM} is not installed (apt-get install -y chromium; .ci/run installs it)`, () => {});
  });
} else {
  describe('approval page in Chromium', () => {
    let stack: LocalStack;
    let server: Server;
    let context: BrowserContext;
    let userDataDir: string;
    const calls: Recorded[] = [];

    beforeAll(async () => {
      const served = await serve(() => stack);
      server = served.server;
      stack = await startLocalStack({ retryIntervalMs: 5, publicBaseUrl: served.url });
      await seedPeople(stack);
      // Record every task callback on its way to the workflow engine.
      const engine: TaskCallbacks = stack.deps.callbacks;
      stack.deps.callbacks = {
        succeed: async (taskToken, output) => {
          const answer = await engine.succeed(taskToken, output);
          calls.push({ kind: 'succeed', taskToken, payload: output, answer });
          return answer;
        },
        fail: async (taskToken, error, cause) => {
          const answer = await engine.fail(taskToken, error, cause);
          calls.push({ kind: 'fail', taskToken, payload: { error, cause }, answer });
          return answer;
        },
      };
      userDataDir = mkdtempSync(join(tmpdir(), 'jml-chromium-'));
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
        viewport: { width: 390, height: 844 }, // a phone
        deviceScaleFactor: 2,
        locale: 'en-GB',
      });
    }, 60_000);

    afterAll(async () => {
      await context?.close();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      await stack?.close();
      if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    });

    async function hire(employeeId: string, givenName: string, familyName: string) {
      const accepted = await send(stack, hrEvent('hire', worker({ employeeId, givenName, familyName, email: `${givenName.toLowerCase()}@acme.example` })));
      const { mail, approval } = await approvalMail(stack, accepted.runId, 'baseline');
      return { runId: accepted.runId, link: mail.links[0]!, approval };
    }

    it('the emailed link shows the request; Approve decides and the run continues', async () => {
      const { runId, link, approval } = await hire('E5001', 'Ada', 'Lovelace');
      expect(link.startsWith(`${new URL(link).origin}/approvals/${approval.approvalId}?t=`)).toBe(true);
      const page = await context.newPage();
      const response = await page.goto(link);
      expect(response!.status()).toBe(200);
      expect(response!.headers()['cache-control']).toBe('no-store');

      await expect(page.title()).resolves.toBe('Approve access for Ada Lovelace · Acme Corp');
      expect(await page.locator('h1').innerText()).toBe('Approve access bundles all-staff, employees, engineering for Ada Lovelace?');
      const text = await page.locator('main').innerText();
      expect(text).toContain('Engineering');
      expect(text).toContain('Okta (workforce identity): group GitHub Users');
      expect(text).toContain('Standard access');
      expect(text).toContain('baseline access for a joiner needs the manager');
      expect(await page.locator('script').count()).toBe(0);
      // (Page expressions are strings: the project compiles without the DOM library.)
      // Phone-sized: nothing wider than the screen.
      expect(await page.evaluate<boolean>('document.documentElement.scrollWidth <= document.documentElement.clientWidth')).toBe(true);

      // Keyboard: the rationale, then Approve, then Reject, each with a visible focus ring.
      await page.keyboard.press('Tab');
      expect(await page.evaluate<string>('document.activeElement.id')).toBe('rationale');
      await page.keyboard.press('Tab');
      expect(await page.evaluate<string>('document.activeElement.textContent')).toBe('Approve');
      expect(await page.evaluate<string>('getComputedStyle(document.activeElement).outlineStyle')).toBe('solid');

      await page.getByLabel('Rationale').fill('Welcome aboard, Ada');
      await page.screenshot({ path: process.env.JML_UPDATE_SCREENSHOT === '1' ? SCREENSHOT : join(userDataDir, 'approval-page.png'), fullPage: true });
      expect(await stack.deps.ledger.getApproval(approval.approvalId)).toMatchObject({ status: 'PENDING' });

      await Promise.all([page.waitForURL(`**/approvals/${approval.approvalId}`), page.getByRole('button', { name: 'Approve' }).click()]);
      expect(await page.locator('h1').innerText()).toBe('Approved: access bundles all-staff, employees, engineering for Ada Lovelace');
      expect(await page.locator('main').innerText()).toContain('the run for Ada Lovelace continues');

      expect(calls).toEqual([
        {
          kind: 'succeed',
          taskToken: approval.taskToken,
          payload: { requestId: 'baseline', approvalId: approval.approvalId, decision: 'approved' },
          answer: 'ok',
        },
      ]);
      expect(await stack.deps.ledger.getApproval(approval.approvalId)).toMatchObject({
        status: 'APPROVED',
        rationale: 'Welcome aboard, Ada',
        sourceIp: '127.0.0.1',
        userAgent: expect.stringContaining('Chrome/'),
      });
      // The machine may be busy: give the rest of the run (IdP, apps, reconcile, evidence) time.
      await waitForStatus(stack, runId, ['COMPLETED'], 45_000);
      expect(stack.workflows.statesEntered(runId)).toEqual(expect.arrayContaining(['ApprovalRequest', 'ApprovalApproved', 'ExecuteIdp', 'CloseWithEvidence']));
      const user = stack.targets.okta!.state.usersByEmployeeNumber('E5001')[0]!;
      expect(stack.targets.okta!.state.groupNamesOf(user.id)).toEqual(expect.arrayContaining(['All Staff', 'Employees', 'Engineering', 'GitHub Users']));

      // Back and submit again: the link is used up.
      await page.goBack();
      await page.reload();
      expect(await page.locator('h1').innerText()).toBe('This request is no longer open');
      await page.close();
    }, 90_000);

    it('opening the link (and reloading it) never decides', async () => {
      const before = calls.length;
      const { runId, link, approval } = await hire('E5002', 'Alan', 'Turing');
      const page = await context.newPage();
      for (let i = 0; i < 3; i++) {
        const response = await page.goto(link, { waitUntil: 'networkidle' });
        expect(response!.status()).toBe(200);
      }
      await page.reload({ waitUntil: 'networkidle' });
      await page.close();
      await new Promise((r) => setTimeout(r, 200));
      expect(await stack.deps.ledger.getApproval(approval.approvalId)).toMatchObject({ status: 'PENDING' });
      expect((await stack.deps.ledger.getApproval(approval.approvalId))?.decidedAt).toBeUndefined();
      expect(calls.length).toBe(before);
      expect((await stack.deps.ledger.getRun(runId))?.status).toBe('AWAITING_APPROVAL');
      expect(stack.workflows.statesEntered(runId).at(-1)).toBe('ApprovalRequest');
    });
  });
}
