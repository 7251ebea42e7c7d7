/**
 * Connector benchmark: converge N leavers against the Okta stand-in under Okta-like latency and
 * a per-minute rate limit, and compare the wall time with the floor the rate limit imposes.
 *
 *   npx tsx bench/connectors.ts [--leavers=1000] [--groups=3] [--latency=20] [--limit=600]
 *                               [--scale=10] [--concurrency=8] [--parallel=32]
 *
 * Time is scaled: a 600-per-minute limit at --scale=10 becomes 600 per 6 s window, so the run
 * takes minutes, not hours. Ratios are scale-free. Not a test: nothing here asserts timings.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { DesiredTarget } from '#core/access';
import type { AccountProfile } from '#connectors/connector';
import { converge } from '#connectors/converge';
import { createOktaConnector } from '#connectors/okta.connector';
import { startOktaStandIn } from '#local/standins/okta';

const { values: args } = parseArgs({
  options: {
    leavers: { type: 'string', default: '1000' },
    groups: { type: 'string', default: '3' },
    latency: { type: 'string', default: '20' },
    limit: { type: 'string', default: '600' },
    scale: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '8' },
    parallel: { type: 'string', default: '32' },
  },
});
const leavers = Number(args.leavers);
const groupsPerLeaver = Number(args.groups);
const latencyMs = Number(args.latency);
const limitPerMinute = Number(args.limit);
const scale = Number(args.scale);
const maxConcurrent = Number(args.concurrency);
const parallel = Number(args.parallel);
const windowMs = Math.round(60_000 / scale);

/**
 * The fewest Okta calls a leaver can be converged with, when nothing is known in advance:
 * 1 search by profile.employeeNumber (Okta cannot fetch by it), 1 read of the user's groups and
 * 1 of its app links (the plan is desired − actual, so actual must be read), 1 deactivate, 1
 * session revocation (the product revokes explicitly; deactivation is not documented to end
 * sessions), and 1 DELETE per OKTA_GROUP membership (Okta has no bulk removal). App assignments
 * need no call of their own: deactivation deprovisions them.
 */
const minimumCallsPerLeaver = 5 + groupsPerLeaver;

async function benchOktaLeavers() {
  const token = randomBytes(24).toString('base64url');
  const okta = await startOktaStandIn({ token, controls: { latencyMs, rateLimit: { limit: limitPerMinute, windowMs } } });
  const groupNames = Array.from({ length: Math.max(groupsPerLeaver, 8) }, (_, i) => `Team ${i + 1}`);
  const profiles: AccountProfile[] = Array.from({ length: leavers }, (_, i) => {
    const n = String(i + 1).padStart(5, '0');
    return {
      employeeId: `L${n}`,
      userName: `leaver.${n}@example.com`,
      email: `leaver.${n}@example.com`,
      givenName: 'Leaver',
      familyName: n,
      displayName: `Leaver ${n}`,
      department: 'Engineering',
      jobCode: 'SWE',
      location: 'Berlin',
      employmentType: 'employee',
    };
  });
  okta.seed({
    groups: groupNames.map((name) => ({ name })),
    users: profiles.map((p, i) => ({
      status: 'ACTIVE' as const,
      profile: { login: p.userName, firstName: p.givenName, lastName: p.familyName, employeeNumber: p.employeeId },
      groups: Array.from({ length: groupsPerLeaver }, (_, g) => groupNames[(i + g) % groupNames.length]!),
    })),
  });
  const connector = createOktaConnector({ name: 'okta', orgUrl: okta.url, token, maxConcurrent });
  const leaver: DesiredTarget = { target: 'okta', kind: 'okta', mode: 'enforce', account: 'disabled', entitlements: [] };

  // Start on a window boundary so the first window is a whole one, like every later one.
  const sinceBoundary = Date.now() % windowMs;
  await new Promise((r) => setTimeout(r, windowMs - sinceBoundary + 5));

  const started = performance.now();
  let next = 0;
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < profiles.length) {
        const profile = profiles[next++]!;
        try {
          await converge(connector, profile, leaver, { forceRevoke: true });
        } catch (e) {
          failures.push(`${profile.employeeId}: ${(e as Error).name}: ${(e as Error).message}`);
        }
      }
    }),
  );
  const totalMs = performance.now() - started;

  const log = okta.requestLog;
  const calls = log.length;
  const throttled = log.filter((r) => r.status === 429);
  const per429Request = new Map<string, number>();
  for (const r of throttled) {
    const logical = r.retryFor ?? r.requestId;
    per429Request.set(logical, (per429Request.get(logical) ?? 0) + 1);
  }
  const floorMs = (calls / limitPerMinute) * windowMs;
  // With fixed windows the last window's budget can be spent at once: the run cannot end before
  // that window opens, but it may end well before its close.
  const fixedWindowFloorMs = (Math.ceil(calls / limitPerMinute) - 1) * windowMs;

  const users = [...okta.state.users.values()];
  const deprovisioned = users.filter((u) => u.status === 'DEPROVISIONED').length;
  const revoked = new Set(okta.state.sessionsRevoked.map((s) => s.userId)).size;
  const membershipsLeft = groupNames.reduce((n, name) => n + okta.state.memberships.get(okta.state.groupByName(name)!.id)!.size, 0);
  const converged = failures.length === 0 && deprovisioned === leavers && revoked === leavers && membershipsLeft === 0;

  connector.dispose();
  await okta.close();
  return {
    bench: 'okta-leavers',
    leavers,
    groupsPerLeaver,
    latencyMs,
    limitPerMinute,
    scale,
    windowMs,
    maxConcurrent,
    parallelConverges: parallel,
    totalMs: Math.round(totalMs),
    floorMs: Math.round(floorMs),
    ratioToFloor: Number((totalMs / floorMs).toFixed(3)),
    fixedWindowFloorMs,
    ratioToFixedWindowFloor: fixedWindowFloorMs > 0 ? Number((totalMs / fixedWindowFloorMs).toFixed(3)) : null,
    calls,
    callsPerLeaver: Number((calls / leavers).toFixed(2)),
    minimumCallsPerLeaver,
    http429: throttled.length,
    requestsThrottled: per429Request.size,
    requestsThrottledMoreThanOnce: [...per429Request.values()].filter((n) => n > 1).length,
    governorWaits: connector.stats.governor.waits,
    retries: { on429: connector.stats.retried429, on5xx: connector.stats.retried5xx, network: connector.stats.retriedNetwork },
    converged,
    failures: failures.slice(0, 5),
  };
}

const r = await benchOktaLeavers();
const rows: Array<[string, string]> = [
  ['leavers (ACTIVE, groups each)', `${r.leavers} (${r.groupsPerLeaver} groups)`],
  ['latency / rate limit', `${r.latencyMs} ms / ${r.limitPerMinute} per min`],
  ['time scale', `×${r.scale} (${r.limitPerMinute} per ${r.windowMs} ms window)`],
  ['connector concurrency / converges in flight', `${r.maxConcurrent} / ${r.parallelConverges}`],
  ['total time', `${(r.totalMs / 1000).toFixed(1)} s (${((r.totalMs * r.scale) / 60_000).toFixed(1)} min unscaled)`],
  ['floor (calls ÷ rate limit)', `${(r.floorMs / 1000).toFixed(1)} s`],
  ['total ÷ floor (goal ≤ 1.1)', `${r.ratioToFloor}`],
  ['fixed-window floor (last window opens) / ratio', `${(r.fixedWindowFloorMs / 1000).toFixed(1)} s / ${r.ratioToFixedWindowFloor}`],
  ['calls / per leaver / minimum', `${r.calls} / ${r.callsPerLeaver} / ${r.minimumCallsPerLeaver}`],
  ['429s / requests throttled / throttled > once', `${r.http429} / ${r.requestsThrottled} / ${r.requestsThrottledMoreThanOnce}`],
  ['governor waits', `${r.governorWaits}`],
  ['all converged (DEPROVISIONED, sessions revoked, no memberships)', `${r.converged}`],
];
const width = Math.max(...rows.map(([k]) => k.length));
console.log('Okta connector — leaver converge benchmark');
for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
if (r.failures.length) console.log('  first failures:', r.failures);
console.log(JSON.stringify(r));
if (!r.converged) process.exitCode = 1;
