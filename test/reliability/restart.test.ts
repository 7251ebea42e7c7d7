/**
 * Restarting the local runtime mid-run. The runtime runs in its own process and is killed with
 * SIGKILL while runs are in flight (no shutdown hook, nothing drained); a new runtime on the same
 * data directory picks the runs up from the ledger. The identity targets live in the test process,
 * as a real Okta or SaaS app outlives jml, and their request logs show whether anything was done
 * twice.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServer, type LocalServer } from '#local/server';
import { startLocalStack, type LocalStack } from '#local/stack';
import type { Worker } from '#core/hr-event';
import {
  loadPolicyFile,
  spawnRuntime,
  startHttpApprovalBot,
  startTargets,
  targetConfig,
  waitForRuns,
  type ExternalTargets,
  type RuntimeProcess,
  postSigned,
} from './fixtures/harness.ts';
import { waitFor } from '../helpers/stack.ts';

const root = mkdtempSync(join(tmpdir(), 'jml-restart-'));
const secrets = { hrisWebhook: randomBytes(24).toString('base64url'), linkSigning: randomBytes(32).toString('base64url') };
const { file: policyFile, policy } = loadPolicyFile(root);

let targets: ExternalTargets;
let child: RuntimeProcess | undefined;
let stack: LocalStack | undefined;
let server: LocalServer | undefined;
let n = 0;

beforeAll(async () => {
  targets = await startTargets(policy);
});
afterEach(async () => {
  await child?.kill();
  child = undefined;
  await server?.close();
  server = undefined;
  await stack?.close();
  stack = undefined;
});
afterAll(async () => {
  await targets?.close();
  rmSync(root, { recursive: true, force: true });
});

const newDataDir = () => {
  const dir = join(root, `state-${++n}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

async function post(url: string, event: unknown): Promise<string> {
  const body = JSON.stringify(event);
  const res = await postSigned(url, secrets.hrisWebhook, body);
  expect(res.status).toBe(202);
  return ((await res.json()) as { runId: string }).runId;
}

const runOf = async (url: string, runId: string) => (await (await fetch(`${url}/runs/${runId}`)).json()) as { status: string; approvals?: Array<{ status: string }> };

function person(i: number, over: Partial<Worker> = {}): Worker {
  const employeeId = `R${String(n).padStart(2, '0')}${String(i).padStart(3, '0')}`;
  return {
    employeeId,
    givenName: 'Restart',
    familyName: `Person${i}`,
    email: `${employeeId.toLowerCase()}@acme.example`,
    department: 'Engineering',
    location: 'London',
    jobCode: 'ENG-2',
    managerId: 'E0100',
    employmentType: 'employee',
    startDate: '2026-09-01',
    ...over,
  };
}

/** The in-process runtime that takes over the data directory of a killed one. */
async function takeOver(dataDir: string) {
  stack = await startLocalStack({ dataDir, policyFile, secrets, retryIntervalMs: 5, connectorOverrides: targets.newConnectors() });
  server = await startLocalServer(stack);
  stack.deps.publicBaseUrl = server.url;
  return { stack, url: server.url };
}

/** Successful writes per person on every target since `from` (request-log positions). */
function writesSince(from: { okta: number; scim: Record<string, number> }) {
  const writes: Array<{ person: string; key: string }> = [];
  const okta = targets.okta;
  for (const e of okta.requestLog.slice(from.okta)) {
    if (e.method === 'GET' || e.status < 200 || e.status >= 300) continue;
    const userId = /\/users\/([^/?]+)/.exec(e.path)?.[1];
    const who = userId ? String(okta.state.findUser(userId)?.profile.employeeNumber ?? userId) : '?';
    writes.push({ person: who, key: `okta ${e.method} ${e.path}${e.query}` });
  }
  for (const app of Object.values(targets.scim)) {
    for (const e of app.requestLog.slice(from.scim[app.name] ?? 0)) {
      if (e.method === 'GET' || e.status < 200 || e.status >= 300) continue;
      const body = JSON.stringify(e.body ?? null);
      const userId = /\/Users\/([^/]+)$/.exec(e.path)?.[1] ?? /"value":"([^"]+)"|value eq \\"([^"\\]+)/.exec(body)?.slice(1).find(Boolean);
      const user = userId ? app.state.users.get(userId) : undefined;
      const who = String((user?.data as { externalId?: string } | undefined)?.externalId ?? (e.body as { externalId?: string } | undefined)?.externalId ?? userId ?? '?');
      writes.push({ person: who, key: `${app.name} ${e.method} ${e.path} ${body}` });
    }
  }
  return writes;
}

const logPositions = () => ({ okta: targets.okta.requestLog.length, scim: Object.fromEntries(Object.values(targets.scim).map((s) => [s.name, s.requestLog.length])) });

describe('restarting the runtime mid-run', () => {
  it('resumes movers from the ledger after the process is killed, and does no target write twice', async () => {
    const dataDir = newDataDir();
    const people = Array.from({ length: 3 }, (_, i) => person(i + 1));
    const t0 = Date.now();
    const phase = (what: string) => console.info(`restart: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // Joiners, approved and completed, then a clean stop.
    child = await spawnRuntime({ dataDir, policyFile, secrets, targets: targetConfig(targets), seed: true });
    const url1 = child.url;
    const bot = startHttpApprovalBot(() => url1);
    const hires = [];
    for (const w of people) hires.push(await post(url1, { eventId: `h-${w.employeeId}`, eventType: 'hire', effectiveDate: '2026-09-01', occurredAt: '2026-09-01T08:00:00Z', worker: w }));
    for (const id of hires) await waitFor(`hire ${id}`, async () => (await runOf(url1, id)).status === 'COMPLETED', 60_000);
    await bot.stop();
    await child.stop();
    phase('joiners completed');

    // Movers on slow targets; the process dies while they are in flight.
    const from = logPositions();
    for (const t of targets.all()) t.controls.latencyMs = 40;
    child = await spawnRuntime({ dataDir, policyFile, secrets, targets: targetConfig(targets) });
    const url2 = child.url;
    const moved = people.map((w) => ({ ...w, department: 'Sales', jobCode: 'SLS-1' }));
    const runs = await Promise.all(moved.map((w) => post(url2, { eventId: `m-${w.employeeId}`, eventType: 'change', effectiveDate: '2026-11-01', occurredAt: '2026-11-01T08:00:00Z', worker: w })));
    // Some writes have landed, not all.
    await waitFor('the first writes of the movers', async () => writesSince(from).length >= 3, 30_000);
    await child.kill();
    child = undefined;
    phase('killed mid-flight');
    const beforeKill = writesSince(from).length;

    for (const t of targets.all()) t.controls.latencyMs = 0;
    const { stack: s } = await takeOver(dataDir);
    expect(s.resumed.length).toBeGreaterThan(0);
    phase(`taken over, ${s.resumed.length} runs resumed`);
    const closed = await waitForRuns(() => s, runs, 60_000);
    expect(closed.map((r) => r.status)).toEqual(runs.map(() => 'COMPLETED'));

    // Every write happened once: none repeated by the resumed runs.
    const writes = writesSince(from);
    expect(writes.length).toBeGreaterThan(beforeKill);
    const seen = new Map<string, number>();
    for (const w of writes) seen.set(w.key, (seen.get(w.key) ?? 0) + 1);
    expect([...seen].filter(([, count]) => count > 1).map(([key, count]) => `${key} ×${count}`)).toEqual([]);
    // Per person: the movers' Okta and Slack writes are the role change and nothing else.
    for (const w of moved) {
      const mine = writes.filter((x) => x.person === w.employeeId).map((x) => x.key.split(' ').slice(0, 2).join(' '));
      expect(mine.filter((k) => k.startsWith('okta')).sort(), w.employeeId).toEqual(['okta DELETE', 'okta DELETE', 'okta PUT', 'okta PUT']);
    }
    // And the targets ended where the policy wants them.
    for (const w of moved) {
      const [account] = await targets.connectors.okta!.findAccounts({ employeeId: w.employeeId });
      expect(account!.entitlements.map((e) => e.value).sort()).toEqual(['All Staff', 'CRM Users', 'Employees', 'Sales']);
    }
  }, 240_000);

  // A leaver's workflow starts with DisableAtIdp while its run is still RECEIVED: the local
  // runtime's resume starts a RECEIVED run that already has an execution again under its name.
  it('finishes a leaver killed during its IdP disable', async () => {
    const dataDir = newDataDir();
    const w = person(1);
    child = await spawnRuntime({ dataDir, policyFile, secrets, targets: targetConfig(targets), seed: true });
    const url1 = child.url;
    const bot = startHttpApprovalBot(() => url1);
    const hire = await post(url1, { eventId: `h-${w.employeeId}`, eventType: 'hire', effectiveDate: '2026-09-01', occurredAt: '2026-09-01T08:00:00Z', worker: w });
    try {
      await waitFor(`hire ${hire}`, async () => (await runOf(url1, hire)).status === 'COMPLETED', 60_000);
    } finally {
      await bot.stop();
    }
    targets.okta.controls.latencyMs = 1000; // the disable is in flight when the process dies
    const from = targets.okta.requestLog.length;
    const runId = await post(url1, { eventId: `l-${w.employeeId}`, eventType: 'termination', effectiveDate: '2026-11-02', occurredAt: '2026-11-02T08:00:00Z', worker: { ...w, terminationDate: '2026-11-02' } });
    await waitFor('the disable to reach Okta', async () => targets.okta.requestLog.length > from, 30_000);
    await child.kill();
    child = undefined;
    targets.okta.controls.latencyMs = 0;

    const { stack: s, url } = await takeOver(dataDir);
    const approver = startHttpApprovalBot(() => url);
    try {
      const [run] = await waitForRuns(() => s, [runId], 15_000);
      expect(run!.status).toBe('COMPLETED');
    } finally {
      await approver.stop();
    }
  }, 120_000);

  // requestApproval answers a new task for an approval already decided with the recorded
  // decision (proved in test/integration/approvals.test.ts, "already decided"); here end to end,
  // across a kill of the runtime after the decision.
  it('finishes a run resumed after its approval was decided', async () => {
    const dataDir = newDataDir();
    const w = person(1);
    // Slow Okta (and a connector that waits for it): the IdP step is still running when the process dies.
    targets.okta.controls.latencyMs = 1500;
    child = await spawnRuntime({ dataDir, policyFile, secrets, targets: targetConfig(targets), seed: true, requestTimeoutMs: 5000 });
    const url1 = child.url;
    const bot = startHttpApprovalBot(() => url1);
    const runId = await post(url1, { eventId: `h-${w.employeeId}`, eventType: 'hire', effectiveDate: '2026-09-01', occurredAt: '2026-09-01T08:00:00Z', worker: w });
    try {
      await waitFor('the approval', async () => (await runOf(url1, runId)).approvals?.some((a) => a.status === 'APPROVED'), 30_000);
    } finally {
      await bot.stop();
    }
    await new Promise((r) => setTimeout(r, 500));
    await child.kill();
    child = undefined;
    targets.okta.controls.latencyMs = 0;

    const { stack: s } = await takeOver(dataDir);
    expect(s.resumed).toContain(runId);
    const [run] = await waitForRuns(() => s, [runId], 12_000);
    expect(run!.status).toBe('COMPLETED');
  }, 90_000);
});
