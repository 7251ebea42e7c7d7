/**
 * Ingest benchmark: how fast the HRIS webhook accepts events.
 *
 *   npx tsx bench/ingest.ts [--events 2000]
 *
 * A. The CPU path alone (verify signature → parse → validate and normalise → idempotency key),
 *    on one core: what the handler costs before any I/O.
 * B. The real handler (`hris-webhook`) end to end with the DynamoDB ledger on dynalite and the
 *    local FIFO queue: sequential (latency) and 8 in flight (throughput). dynalite is slower than
 *    DynamoDB per call and shares this machine's two cores, so B is a floor, not a forecast.
 */
import '../local/quiet.ts';
import { parseArgs } from 'node:util';
import { idempotencyKey } from '#core/idempotency';
import { normaliseHrEvent } from '#core/hr-event';
import { signCanonical, verifyCanonical } from '#core/signature';
import { createHrisWebhookHandler } from '#handlers/hris-webhook';
import { toApiGatewayEvent } from '#local/api-gateway';
import { DEV_SECRETS, startLocalStack } from '#local/stack';
import { percentile } from './_stats.ts';

const { values } = parseArgs({ options: { events: { type: 'string' } } });
const N = Number(values.events ?? 2000);
const secret = DEV_SECRETS.hrisWebhook;

function event(i: number) {
  return JSON.stringify({
    eventId: `bench-${i}`,
    eventType: i % 10 === 0 ? 'termination' : i % 3 === 0 ? 'change' : 'hire',
    effectiveDate: '2026-11-01',
    occurredAt: `2026-11-01T09:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}Z`,
    worker: {
      employeeId: `E${100000 + i}`, givenName: 'Bench', familyName: `Person ${i}`, email: `p${i}@acme.example`, department: ['Engineering', 'Sales', 'Finance', 'Support', 'People'][i % 5],
      location: 'London', jobCode: 'ENG-2', managerId: 'E0100', employmentType: 'employee', startDate: '2025-01-01', ...(i % 10 === 0 ? { terminationDate: '2026-11-01' } : {}),
    },
  });
}


// A. CPU path
const bodies = Array.from({ length: N }, (_, i) => event(i));
const now = Math.floor(Date.now() / 1000);
const signed = bodies.map((b) => ({ body: b, headers: signCanonical(secret, b, now) }));
for (let i = 0; i < 200; i++) normaliseHrEvent(JSON.parse(bodies[i % N]!), { timeZone: 'Europe/London' }); // warm up
const cpu: number[] = [];
const t0 = performance.now();
for (const s of signed) {
  const t = performance.now();
  const v = verifyCanonical({ secret, rawBody: s.body, headers: s.headers, nowSeconds: now });
  if (!v.ok) throw new Error('signature failed');
  const e = normaliseHrEvent(JSON.parse(s.body), { timeZone: 'Europe/London' });
  idempotencyKey(e, 'mapping');
  cpu.push(performance.now() - t);
}
const cpuMs = performance.now() - t0;

// B. The handler on the local stack
const stack = await startLocalStack({});
// Measure acceptance only: the queue's consumer would start runs on this same core.
(stack.queue as unknown as { consume: unknown }).consume = async () => undefined;
const handler = createHrisWebhookHandler(async () => stack.deps);
const call = async (i: number) => {
  const b = event(N + i);
  const res = await handler(
    toApiGatewayEvent({ method: 'POST', url: '/hris/events', headers: { 'content-type': 'application/json', ...signCanonical(secret, b, Math.floor(Date.now() / 1000)) }, body: b }),
  );
  if (res.statusCode !== 202) throw new Error(`HTTP ${res.statusCode}: ${res.body}`);
};
for (let i = 0; i < 50; i++) await call(-i - 1); // warm up
const M = Math.min(N, 1000);
const seq: number[] = [];
const s0 = performance.now();
for (let i = 0; i < M; i++) {
  const t = performance.now();
  await call(i);
  seq.push(performance.now() - t);
}
const seqMs = performance.now() - s0;
let next = M;
const par0 = performance.now();
await Promise.all(
  Array.from({ length: 8 }, async () => {
    while (next < 2 * M) await call(next++);
  }),
);
const parMs = performance.now() - par0;
await stack.close();

const results = {
  cpuPath: { events: N, eventsPerSecond: Math.round(N / (cpuMs / 1000)), p50us: Math.round(percentile(cpu, 50) * 1000), p99us: Math.round(percentile(cpu, 99) * 1000) },
  handlerSequential: { events: M, eventsPerSecond: Math.round(M / (seqMs / 1000)), p50ms: +percentile(seq, 50).toFixed(2), p99ms: +percentile(seq, 99).toFixed(2) },
  handlerConcurrent8: { events: M, eventsPerSecond: Math.round(M / (parMs / 1000)) },
};
console.log('ingest: HRIS webhook acceptance (signature, validation, record RECEIVED, enqueue)');
console.table(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v])));
console.log(JSON.stringify({ bench: 'ingest', node: process.version, results }));
