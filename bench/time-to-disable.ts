/**
 * Time to disable: termination event accepted → IdP account disabled and sessions revoked, on the
 * local stack (same handlers and ASL as in AWS) against the Okta stand-in with a set latency.
 *
 *   npx tsx bench/time-to-disable.ts [--leavers 20] [--latency 20]
 *
 * Engine overhead = measured − target latency × the Okta calls made before the disable was
 * confirmed (each call waits for the stand-in's latency): what jml itself adds.
 * Leavers are terminated one after another, so each figure is the unloaded latency.
 */
import '../local/quiet.ts';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { join } from 'node:path';
import { acceptHrEvent } from '#app/ingest';
import { REPO_ROOT, startLocalStack } from '#local/stack';
import { loadDemoOrg, seedDemoOrg } from '#local/demo-org';

const { values } = parseArgs({ options: { leavers: { type: 'string' }, latency: { type: 'string' } } });
const latencyMs = Number(values.latency ?? 20);
const org = loadDemoOrg(join(REPO_ROOT, 'config', 'demo-org.json'));
// Terminating many people of a 33-person company in minutes is exactly what the bulk-change
// guard holds for a human to release; this benchmark measures the engine, so it lifts the guard.
const policyFile = join(mkdtempSync(join(tmpdir(), 'jml-ttd-')), 'policy.yaml');
const doc = parse(readFileSync(join(REPO_ROOT, 'config', 'access-policy.yaml'), 'utf8'));
doc.bulkGuard = { maxPercent: 100, maxCount: 100_000, windowMinutes: 1 };
writeFileSync(policyFile, stringify(doc));
const stack = await startLocalStack({ retryIntervalMs: 20, policyFile });
await seedDemoOrg(stack, org);
const okta = stack.targets.okta!;
okta.controls.latencyMs = latencyMs;
for (const s of Object.values(stack.targets.scim)) s.controls.latencyMs = latencyMs;

const people = org.workers.filter((w) => w.employeeId.startsWith('E1')).slice(0, Number(values.leavers ?? 20));
const rows: Array<{ employeeId: string; measuredMs: number; acceptMs: number; toWorkflowMs: number; inWorkflowMs: number; oktaCalls: number; overheadMs: number }> = [];
for (const [i, w] of people.entries()) {
  const today = new Date().toISOString().slice(0, 10);
  const body = JSON.stringify({
    eventId: `ttd-${i}`, eventType: 'termination', effectiveDate: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), occurredAt: new Date().toISOString(),
    worker: { ...w, terminationDate: today < w.startDate ? w.startDate : today },
  });
  const logStart = okta.requestLog.length;
  const t0 = Date.now();
  const accepted = await acceptHrEvent(stack.deps, { source: 'canonical', rawBody: body });
  const acceptedAt = Date.now();
  let disabledAt: number | undefined;
  for (;;) {
    const run = await stack.deps.ledger.getRun(accepted.runId);
    const mark = run?.timeline?.find((t) => t.phase === 'IdpDisabled');
    if (mark) {
      disabledAt = Date.parse(mark.at);
      break;
    }
    if (Date.now() - t0 > 30_000) throw new Error(`run ${accepted.runId} did not disable within 30 s (status ${run?.status})`);
    await new Promise((r) => setTimeout(r, 2));
  }
  const log = okta.requestLog.slice(logStart);
  const deactivate = log.findIndex((r) => /lifecycle\/deactivate$/.test(r.path));
  const sessions = log.findIndex((r) => r.method === 'DELETE' && /\/sessions$/.test(r.path));
  const calls = Math.max(deactivate, sessions) + 1;
  const measured = disabledAt - t0;
  const execution = stack.workflows.execution(accepted.runId);
  rows.push({
    employeeId: w.employeeId,
    measuredMs: measured,
    acceptMs: acceptedAt - t0,
    toWorkflowMs: (execution?.startedAt ?? acceptedAt) - acceptedAt,
    inWorkflowMs: disabledAt - (execution?.startedAt ?? acceptedAt),
    oktaCalls: calls,
    overheadMs: measured - latencyMs * calls,
  });
  // The run goes on to wait for the manager's data-handling approval; the disable is what is measured.
}
await stack.close();

const sorted = (k: 'measuredMs' | 'overheadMs') => rows.map((r) => r[k]).sort((a, b) => a - b);
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const results = {
  leavers: rows.length,
  targetLatencyMs: latencyMs,
  oktaCallsBeforeDisable: rows[0]?.oktaCalls,
  measuredMs: { p50: pct(sorted('measuredMs'), 50), p99: pct(sorted('measuredMs'), 99) },
  engineOverheadMs: { p50: pct(sorted('overheadMs'), 50), p99: pct(sorted('overheadMs'), 99) },
  phasesMsP50: {
    accept: pct(rows.map((r) => r.acceptMs).sort((a, b) => a - b), 50),
    queueAndStart: pct(rows.map((r) => r.toWorkflowMs).sort((a, b) => a - b), 50),
    workflowToDisabled: pct(rows.map((r) => r.inWorkflowMs).sort((a, b) => a - b), 50),
  },
};
console.log('time to disable: termination accepted → IdP disabled + sessions revoked (local stack, Okta stand-in)');
console.table(rows.slice(0, 5));
console.log(results);
console.log(JSON.stringify({ bench: 'time-to-disable', node: process.version, results }));
