/**
 * 1,000-leaver burst through the whole engine: N terminations posted at once to the canonical
 * webhook handler (signed, the real `hris-webhook` handler), then queue → start-run → the leaver
 * workflow (`leaver.asl.json` on the local Step Functions engine) → Okta, with the Okta stand-in
 * limited to 600 requests per minute. Compares the total time with the floor the rate limit
 * imposes, counts 429s, and counts the state transitions of every execution (what Step Functions
 * Standard bills) from the local engine's execution history.
 *
 *   npx tsx bench/burst.ts [--leavers 1000] [--limit 600] [--scale 10] [--latency 20] [--no-budget]
 *
 * Time is scaled like bench/connectors.ts: at --scale=10 the limit is 600 per 6 s window, so a
 * run that would take half an hour against a real org takes ~3 minutes. Ratios are scale-free;
 * the Step Functions retry waits are the definitions' own (unscaled, so conservative).
 *
 * The benchmark's policy is the example policy with two explicit changes:
 *  - the bulk-change guard's limit is raised above N (a burst of N terminations is exactly what it
 *    holds for the fallback approver; this measures the engine once they are released);
 *  - leavers have no data-handling approvals (a human would otherwise decide 2 × N requests
 *    before the runs can close; the disable never waits for them anyway);
 *  - the Okta target declares the org's rate limit (`rateLimit`), so runs reserve their calls
 *    from the shared call budget (`--no-budget`: without it, calls only queue in the connector).
 * Each leaver is ACTIVE in Okta with the groups the policy gives them; they have no app accounts
 * (the SCIM stand-ins are not rate-limited and not what this measures).
 */
import '../local/quiet.ts';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';
import { mapLimit } from '#core/concurrency';
import { desiredState } from '#core/desired-state';
import type { Worker } from '#core/hr-event';
import type { PersonRecord } from '#core/ledger';
import { signCanonical } from '#core/signature';
import { createHrisWebhookHandler } from '#handlers/hris-webhook';
import { toApiGatewayEvent } from '#local/api-gateway';
import { DEV_SECRETS, REPO_ROOT, startLocalStack } from '#local/stack';
import { oktaProfileOf } from '#local/standins/okta-state';
import { percentile } from './_stats.ts';

const { values: args } = parseArgs({
  options: {
    leavers: { type: 'string', default: '1000' },
    limit: { type: 'string', default: '600' },
    scale: { type: 'string', default: '10' },
    latency: { type: 'string', default: '20' },
    'no-budget': { type: 'boolean', default: false },
  },
});
const leavers = Number(args.leavers);
const limitPerMinute = Number(args.limit);
const scale = Number(args.scale);
const latencyMs = Number(args.latency);
const windowMs = Math.round(60_000 / scale);
/** Step Functions Standard: $0.025 per 1,000 state transitions (us-east-1, beyond the free tier). */
const USD_PER_TRANSITION = 0.025 / 1000;

const tmp = mkdtempSync(join(tmpdir(), 'jml-burst-'));
const policyFile = join(tmp, 'policy.yaml');
const doc = parse(readFileSync(join(REPO_ROOT, 'config', 'access-policy.yaml'), 'utf8'));
doc.bulkGuard = { ...doc.bulkGuard, maxPercent: 100, maxCount: leavers * 2, minCount: leavers * 2 };
doc.leaver = { ...doc.leaver, dataHandling: [] };
// The org's rate limit, declared to jml as operators do (the policy's minutes are real ones, the
// stand-in's are scaled): runs reserve their Okta calls from it. `--no-budget` leaves it out.
const okta = doc.targets.find((t: { name: string }) => t.name === 'okta');
if (!args['no-budget']) okta.rateLimit = { requestsPerMinute: limitPerMinute * scale };
writeFileSync(policyFile, stringify(doc));

const stack = await startLocalStack({ policyFile });
const oktaStandIn = stack.targets.okta!;
const { deps, policy } = stack;

// People: engineers in London (four Okta groups each by the policy), ACTIVE in Okta.
const seededAt = new Date(Date.UTC(2026, 0, 1)).toISOString();
const workers: Worker[] = Array.from({ length: leavers }, (_, i) => {
  const n = String(i + 1).padStart(5, '0');
  return {
    employeeId: `B${n}`,
    givenName: 'Burst',
    familyName: `Leaver${n}`,
    email: `burst.${n}@acme.example`,
    department: 'Engineering',
    location: 'London',
    jobCode: 'SWE',
    employmentType: 'employee',
    startDate: '2024-01-08',
  } as Worker;
});
const oktaGroups = (w: Worker) =>
  desiredState({ worker: w, status: 'active' }, policy)
    .targets.find((t) => t.target === policy.idp.name)!
    .entitlements.filter((e) => e.type === 'group')
    .map((e) => e.value);
const ids = oktaStandIn.seed({
  users: workers.map((w) => ({
    status: 'ACTIVE' as const,
    profile: oktaProfileOf(w),
    groups: oktaGroups(w),
  })),
}).users;
await mapLimit(workers, 16, (w) =>
  deps.ledger.putPerson(
    {
      employeeId: w.employeeId,
      worker: w,
      status: 'active',
      version: seededAt,
      lastRunId: 'seed',
      links: { [policy.idp.name]: ids[w.email]! },
      grantedAt: {},
      approvedBundles: [],
      rejectedBundles: [],
      updatedAt: deps.clock.now().toISOString(),
    } satisfies PersonRecord,
    null,
  ),
);
const groupsPerLeaver = oktaGroups(workers[0]!).length;

oktaStandIn.controls.latencyMs = latencyMs;
oktaStandIn.controls.rateLimit = { limit: limitPerMinute, windowMs };
const logStart = oktaStandIn.requestLog.length;

// Start on a window boundary so the first window is a whole one, like every later one.
await new Promise((r) => setTimeout(r, windowMs - (Date.now() % windowMs) + 5));

const webhook = createHrisWebhookHandler(async () => deps);
const today = new Date().toISOString().slice(0, 10);
const started = performance.now();
const startedEpoch = Date.now();
const responses = await Promise.all(
  workers.map(async (w, i) => {
    const body = JSON.stringify({
      eventId: `burst-${i}`,
      eventType: 'termination',
      effectiveDate: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      occurredAt: new Date().toISOString(),
      worker: { ...w, terminationDate: today },
    });
    const headers = { 'content-type': 'application/json', ...signCanonical(DEV_SECRETS.hrisWebhook, body, Math.floor(Date.now() / 1000)) };
    const res = await webhook(toApiGatewayEvent({ method: 'POST', url: '/hris/events', headers, body, sourceIp: '127.0.0.1' }));
    if (res.statusCode !== 202) throw new Error(`webhook answered ${res.statusCode}: ${res.body}`);
    return JSON.parse(res.body) as { runId: string };
  }),
);
const acceptedMs = performance.now() - started;
// Progress every 30 s (a slow machine can take much longer than the floor): runs still running,
// Okta calls so far against the floor for those calls.
const progress = setInterval(() => {
  const callsSoFar = oktaStandIn.requestLog.length - logStart;
  const elapsed = performance.now() - started;
  console.error(
    `  … ${(elapsed / 1000).toFixed(0)} s: ${stack.workflows.running().length} runs running, ${callsSoFar} Okta calls (floor for them ${((callsSoFar / limitPerMinute) * windowMs / 1000).toFixed(0)} s), heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB`,
  );
}, 30_000);
progress.unref();
await stack.settle(60 * 60_000);
clearInterval(progress);
const totalMs = performance.now() - started;

// Outcomes
const runs = await mapLimit(responses, 32, async (r) => (await deps.ledger.getRun(r.runId))!);
const byStatus: Record<string, number> = {};
for (const r of runs) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
const timeToDisable = runs
  .map((r) => r.timeline?.find((t) => t.phase === 'IdpDisabled'))
  .filter((t): t is { phase: string; at: string } => !!t)
  .map((t) => Date.parse(t.at) - startedEpoch)
  .sort((a, b) => a - b);
const users = workers.map((w) => oktaStandIn.state.users.get(ids[w.email]!)!);
const deprovisioned = users.filter((u) => u.status === 'DEPROVISIONED').length;
const revoked = new Set(oktaStandIn.state.sessionsRevoked.map((s) => s.userId));
const sessionsRevoked = users.filter((u) => revoked.has(u.id)).length;

// Okta calls and the floor
const log = oktaStandIn.requestLog.slice(logStart);
const calls = log.length;
const http429 = log.filter((r) => r.status === 429).length;
const lastCallMs = Math.max(...log.map((r) => r.at)) - startedEpoch;
const floorMs = (calls / limitPerMinute) * windowMs;
const fixedWindowFloorMs = (Math.ceil(calls / limitPerMinute) - 1) * windowMs;

// State transitions, from each execution's history: every state entered is one transition, and
// so is every retry of a state (Step Functions bills both).
const transitions = responses.map((r) => {
  const path = stack.workflows.execution(r.runId)?.path ?? [];
  return path.filter((e) => e.type === 'StateEntered' || e.type === 'StateRetried').length;
});
const sortedTransitions = [...transitions].sort((a, b) => a - b);
const statesOfOne = stack.workflows.statesEntered(responses[0]!.runId);

await stack.close();
rmSync(tmp, { recursive: true, force: true });

const result = {
  bench: 'burst',
  leavers,
  groupsPerLeaver,
  limitPerMinute,
  scale,
  windowMs,
  latencyMs,
  callBudget: !args['no-budget'],
  acceptedMs: Math.round(acceptedMs),
  totalMs: Math.round(totalMs),
  lastOktaCallMs: Math.round(lastCallMs),
  floorMs: Math.round(floorMs),
  ratioToFloor: Number((totalMs / floorMs).toFixed(3)),
  fixedWindowFloorMs,
  ratioToFixedWindowFloor: Number((totalMs / fixedWindowFloorMs).toFixed(3)),
  oktaCalls: calls,
  oktaCallsPerLeaver: Number((calls / leavers).toFixed(2)),
  http429,
  runs: byStatus,
  deprovisioned,
  sessionsRevoked,
  timeToDisableMs: { p50: percentile(timeToDisable, 50), p99: percentile(timeToDisable, 99), max: timeToDisable.at(-1) },
  transitionsPerRun: { p50: percentile(sortedTransitions, 50), max: sortedTransitions.at(-1), mean: Number((transitions.reduce((a, b) => a + b, 0) / transitions.length).toFixed(1)) },
  usdPerRun: Number((percentile(sortedTransitions, 50) * USD_PER_TRANSITION).toFixed(6)),
  usdPer1000Leavers: Number((transitions.reduce((a, b) => a + b, 0) * USD_PER_TRANSITION * (1000 / leavers)).toFixed(3)),
  statesOfOneRun: statesOfOne,
};
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const rows: Array<[string, string]> = [
  ['leavers (ACTIVE, Okta groups each)', `${leavers} (${groupsPerLeaver})`],
  ['Okta latency / rate limit', `${latencyMs} ms / ${limitPerMinute} per min${args['no-budget'] ? ' (no call budget)' : ' (call budget on)'}`],
  ['time scale', `×${scale} (${limitPerMinute} per ${windowMs} ms window)`],
  ['all accepted by the webhook after', s(result.acceptedMs)],
  ['total time (first post → every run closed)', `${s(result.totalMs)} (${((totalMs * scale) / 60_000).toFixed(1)} min unscaled)`],
  ['floor (Okta calls ÷ rate limit)', s(result.floorMs)],
  ['total ÷ floor (goal ≤ 1.1)', `${result.ratioToFloor}`],
  ['fixed-window floor (last window opens) / ratio', `${s(fixedWindowFloorMs)} / ${result.ratioToFixedWindowFloor}`],
  ['Okta calls / per leaver', `${calls} / ${result.oktaCallsPerLeaver}`],
  ['429 responses', `${http429}`],
  ['runs by status', JSON.stringify(byStatus)],
  ['Okta users deprovisioned / sessions revoked', `${deprovisioned} / ${sessionsRevoked}`],
  ['time to disable under the burst p50 / p99 (scaled)', `${s(result.timeToDisableMs.p50)} / ${s(result.timeToDisableMs.p99)}`],
  ['state transitions per run p50 / max (goal ≤ 30)', `${result.transitionsPerRun.p50} / ${result.transitionsPerRun.max}`],
  ['Step Functions Standard cost per run', `$${result.usdPerRun} ($${result.usdPer1000Leavers} per 1,000 leavers)`],
];
const width = Math.max(...rows.map(([k]) => k.length));
console.log('1,000-leaver burst: webhook → queue → start-run → leaver workflow → Okta (local stack)');
for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
console.log(`  states of one run: ${statesOfOne.join(' → ')}`);
console.log(JSON.stringify(result));
const ok = deprovisioned === leavers && sessionsRevoked === leavers && (byStatus.COMPLETED ?? 0) === leavers;
// Executions and sockets of the stack are closed; nothing else is worth waiting for.
process.exit(ok ? 0 : 1);
