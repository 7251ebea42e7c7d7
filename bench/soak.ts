/**
 * Reliability soak: the full-size version of test/reliability/events.test.ts.
 *
 *   npx tsx bench/soak.ts [--people 2000] [--events 10000] [--faults 0.2] [--kill-at 0.5] [--approvers 16] [--audit-out file.json]
 *
 * A generated stream of hires, changes, leaves, returns and terminations (10% redelivered, 5%
 * overtaken by a later event of the same person) is posted, signed, to `POST /hris/events` of the
 * local runtime while every target injects transient faults (503, connection resets, timeouts,
 * 429 with the reset header) on `--faults` of its requests. The runtime runs in its own process
 * and is killed (SIGKILL) after `--kill-at` of the deliveries; a new runtime on the same data
 * directory takes over, every fourth run that reaches its app steps crashes in a Task there,
 * approvers answer every approval email (following the outbox, `--approvers` mails at once).
 * Then the nightly reconciliation runs and the audit of the reliability suite checks the promises.
 *
 * Reports: events/s (deliveries, accepted until every run closed), run-close latency p50/p99
 * (run recorded → closed), lost runs, duplicate accounts, doubled membership adds, revocation
 * completeness, open exceptions and the peak RSS of the taking-over runtime (this process).
 * Exits 1 when the audit has any finding (each is a broken promise), 0 otherwise.
 * Takes long at full size (the local runtime's ledger is dynalite): not part of `npm run bench`.
 */
import '../local/quiet.ts';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalServer } from '#local/server';
import { startLocalStack, type LocalStack } from '#local/stack';
import {
  audit,
  clearFaults,
  deliver,
  injectFaults,
  loadPolicyFile,
  nightlyReconcile,
  spawnRuntime,
  startHttpApprovalBot,
  startTargets,
  targetConfig,
  TERMINAL,
} from '../test/reliability/fixtures/harness.ts';
import { generateWorkload } from '../test/reliability/fixtures/workload.ts';
import { percentile } from './_stats.ts';

const { values } = parseArgs({
  options: { people: { type: 'string' }, events: { type: 'string' }, faults: { type: 'string' }, 'kill-at': { type: 'string' }, seed: { type: 'string' }, approvers: { type: 'string' }, 'audit-out': { type: 'string' } },
});
const PEOPLE = Number(values.people ?? 2000);
const EVENTS = Number(values.events ?? 10_000);
const FAULTS = Number(values.faults ?? 0.2);
const KILL_AT = Number(values['kill-at'] ?? 0.5);
// Approval emails answered at once (a team of approvers).
const APPROVERS = Number(values.approvers ?? 16);

const dir = mkdtempSync(join(tmpdir(), 'jml-soak-'));
const dataDir = join(dir, 'state');
mkdirSync(dataDir);
const secrets = { hrisWebhook: randomBytes(24).toString('base64url'), linkSigning: randomBytes(32).toString('base64url') };
const { file: policyFile, policy } = loadPolicyFile(dir);
const workload = generateWorkload({ people: PEOPLE, events: EVENTS, seed: Number(values.seed ?? 1) });
const targets = await startTargets(policy);
injectFaults(targets, FAULTS);

const started = Date.now();
let url: string | undefined;
const bot = startHttpApprovalBot(() => url, { concurrency: APPROVERS });
let stack: LocalStack | undefined;
// A full-size soak runs for an hour or more: say every minute how far it got (stderr).
let phase = 'first runtime: delivering the first part';
const progress = setInterval(() => {
  const b = bot.stats();
  const approvals = `${b.decided} approvals decided, ${b.failed} failed, ${b.queued + b.inFlight} waiting for the approver (outbox position ${b.position})`;
  const where = stack ? `; ${stack.queue.pending()} queued, ${stack.workflows.running().length} running, ${approvals}` : '';
  console.error(`  … ${((Date.now() - started) / 1000).toFixed(0)} s: ${phase}${where}`);
}, 60_000);
progress.unref();
try {
  const cut = Math.floor(workload.deliveries.length * KILL_AT);
  // Approvers answer only after the restart, so approvals are decided by the resumed runtime.
  const first = await spawnRuntime({ dataDir, policyFile, secrets, targets: targetConfig(targets), seed: true });
  const deliveries = await deliver(first.url, secrets.hrisWebhook, workload.deliveries.slice(0, cut));
  await first.kill();

  phase = 'taking over after the kill';
  stack = await startLocalStack({ dataDir, policyFile, secrets, retryIntervalMs: 5, connectorOverrides: targets.newConnectors() });
  const resumed = stack.resumed.length;
  let reachedApps = 0;
  const crashed = new Set<string>();
  stack.workflows.beforeTask = ({ execution, state }) => {
    if (state !== 'AppConverge' || crashed.has(execution)) return;
    if (reachedApps++ % 4 !== 0) return;
    crashed.add(execution);
    throw new Error('handler process exited before it answered');
  };
  const server = await startLocalServer(stack);
  stack.deps.publicBaseUrl = server.url;
  url = server.url;
  phase = 'second runtime: delivering the rest';
  deliveries.push(...(await deliver(server.url, secrets.hrisWebhook, workload.deliveries.slice(cut))));
  phase = 'working off the runs';
  // Until nothing is queued or running any more (runs left open by a known defect stay open).
  await stack.settle(6 * 3600_000);
  const closedAt = Date.now();
  const runs = (await Promise.all([...new Set(deliveries.map((d) => d.runId!))].map((id) => stack!.deps.ledger.getRun(id)))).filter((r): r is NonNullable<typeof r> => !!r);
  await bot.stop();
  const approver = bot.stats();
  clearFaults(targets);
  phase = 'nightly reconciliation';
  // 2,000 people against targets failing 20 % of requests: minutes, not seconds.
  await nightlyReconcile(stack, { timeoutMs: 3600_000 });
  phase = 'audit';
  const report = await audit(stack, targets, workload, deliveries, stack.queue.deadLetters);
  await server.close();

  const latencies = runs
    .filter((r) => TERMINAL.includes(r.status) && !['STALE', 'SUPERSEDED'].includes(r.status))
    .map((r) => Date.parse(r.updatedAt) - Date.parse(r.createdAt));
  const seconds = (closedAt - started) / 1000;
  const rows: Array<[string, string]> = [
    ['people / distinct events / deliveries', `${PEOPLE} / ${workload.events.length} / ${workload.deliveries.length} (${workload.duplicates} redelivered, ${workload.outOfOrder} overtaken)`],
    ['target faults', `${Math.round(FAULTS * 100)}% of requests; runtime killed after ${Math.round(KILL_AT * 100)}% of deliveries; ${crashed.size} Task crashes`],
    ['throughput', `${(deliveries.length / seconds).toFixed(2)} events/s, ${(runs.length / seconds).toFixed(2)} runs/s (${seconds.toFixed(0)} s until nothing was queued or running)`],
    ['run-close latency', `p50 ${(percentile(latencies, 50) / 1000).toFixed(1)} s, p99 ${(percentile(latencies, 99) / 1000).toFixed(1)} s (${latencies.length} runs that ran)`],
    ['lost', `${report.lost.length} accepted events without a run; ${report.deadLetters} dead letters; ${report.notClosed.length} runs left open`],
    ['duplicates', `${report.duplicateAccounts.length} accounts, ${report.doubledGroupAdds.length} memberships added twice by one run, ${report.racingGroupAdds.length} by two racing runs of one person`],
    ['revocation completeness', `${report.leaversDisabled}/${report.leavers} leavers disabled everywhere after the nightly reconciliation`],
    ['exceptions', `${report.openExceptions} open; ${report.exceptionsWithoutTargetOrReason.length} without target or reason; ${report.failedRunsWithoutException.length} failed runs without one`],
    ['runs', JSON.stringify(report.runStatuses)],
    ['resumed after the kill', String(resumed)],
    [
      `approvals (by email link, ${APPROVERS} at once)`,
      `${approver.decided} decided, ${approver.failed} not decided ${JSON.stringify(approver.failures)}, ${approver.retried} retried after the runtime went away`,
    ],
    ['peak RSS (taking-over runtime + harness)', `${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`],
  ];
  console.log(`Reliability soak — npx tsx bench/soak.ts --people ${PEOPLE} --events ${EVENTS} --faults ${FAULTS} --kill-at ${KILL_AT}`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(42)} ${v}`);
  // What broke, by run: the first few of each finding here, all of them in --audit-out.
  // (`report.detail` explains them, in --audit-out only.)
  const findings = Object.entries(report).filter((e): e is [string, string[]] => Array.isArray(e[1]) && e[1].length > 0);
  for (const [name, list] of findings) {
    console.log(`  ${name} (${list.length}):`);
    for (const line of list.slice(0, 8)) console.log(`    ${line}`);
  }
  if (values['audit-out']) writeFileSync(values['audit-out'], JSON.stringify({ rows: Object.fromEntries(rows), approver, report }, null, 2));
  // Every finding is a broken promise (a run left open, a record not at HR's, a racing add …).
  process.exitCode = findings.length ? 1 : 0;
} catch (e) {
  // Said before the runtime is closed under whatever was still running.
  console.error(`  the soak failed during "${phase}":`, e);
  process.exitCode = 1;
} finally {
  clearInterval(progress);
  await bot.stop();
  await stack?.close();
  await targets.close();
  // A run with findings keeps its ledger (dynalite's files) and schedules for a look afterwards.
  if (process.exitCode === 1) console.log(`  state kept for inspection: ${dataDir}`);
  else rmSync(dir, { recursive: true, force: true });
}
