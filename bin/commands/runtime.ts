/**
 * CLI commands that talk to a running jml: the local runtime by default, another at `JML_URL`,
 * or a deployed stack with `--stack <name>` / `JML_STACK` (see remote.ts): send-event, runs,
 * run, exceptions, resolve, evidence verify, reconcile, kpis — and, against the local runtime
 * only, approve / reject, clock.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { verifyBundle, verifyChain, MANIFEST_FILE, parseManifest } from '#core/evidence';
import { verifyPersonChain, verifyStoredBundle } from '#core/evidence-store';
import { signCanonical } from '#core/signature';
import { DEV_SECRETS } from '#local/stack';
import { UsageError, readStructured } from './io.ts';
import { endpoint, localBaseUrl, requireLocal, StackError, type Endpoint, type RequestInit } from './remote.ts';
import { printKpis, summariseKpis } from './kpis.ts';
import { KPI_WINDOW, kpisOnStack, parseWindow, printReconciliation, reconcileOnStack } from './stack-ops.ts';

export { RuntimeUnavailable } from './remote.ts';
export { printKpis, summariseKpis, type KpiSummary } from './kpis.ts';

/** The local runtime's base URL (`JML_URL`, default http://127.0.0.1:8787). */
export const baseUrl = localBaseUrl;

/** A request to the runtime or stack this invocation talks to (signed where the stack needs it). */
export async function http(method: string, path: string, init: RequestInit = {}) {
  return (await endpoint()).request(method, path, init);
}

function fail(res: { status: number; json: any; text: string }, what: string): never {
  const message = res.json?.message ?? res.json?.error ?? res.text.slice(0, 300);
  throw new UsageError(`${what}: HTTP ${res.status} — ${message}${res.json?.issues ? `\n  - ${res.json.issues.join('\n  - ')}` : ''}`);
}

/** `jml send-event <file>`: signs each event (a JSON object or an array) and posts it. */
export async function sendEventCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  if (!positionals[0]) throw new UsageError('usage: jml send-event <event.json>  (an event or an array of events)');
  const data = readStructured(positionals[0], 'event');
  const events = Array.isArray(data) ? data : [data];
  const target = await endpoint();
  const fromEnv = process.env.JML_HRIS_WEBHOOK_SECRET;
  if (target.kind === 'stack' && !fromEnv) {
    const name = target.stack!.outputs.SecretHrisWebhook ?? `${target.stack!.name}/hris-webhook`;
    throw new UsageError(
      `sending to ${target.label} signs with the stack's HRIS webhook secret: set JML_HRIS_WEBHOOK_SECRET to its "current" value (secret ${name} in Secrets Manager) — the local development default is never used against a stack`,
    );
  }
  const secret = (fromEnv ?? DEV_SECRETS.hrisWebhook).split(',')[0]!;
  let failed = 0;
  const results = [];
  for (const [i, event] of events.entries()) {
    const body = JSON.stringify(event);
    const headers = signCanonical(secret, body, Math.floor(Date.now() / 1000));
    const res = await http('POST', '/hris/events', { body, headers: { 'content-type': 'application/json', ...headers } });
    results.push({ status: res.status, ...(res.json ?? {}) });
    if (res.status !== 202) failed += 1;
    if (!values.json) {
      if (res.status === 202) console.log(`${res.json.duplicate ? '= duplicate' : '✔ accepted '}  ${res.json.runId}  (${(event as { eventType?: string }).eventType ?? '?'} ${(event as { worker?: { employeeId?: string } }).worker?.employeeId ?? ''})`);
      else console.log(`✘ event ${i + 1}: HTTP ${res.status} — ${res.json?.message ?? res.text}${res.json?.issues ? `\n    - ${res.json.issues.join('\n    - ')}` : ''}`);
    }
    if (events.length > 20 && !values.json && (i + 1) % 50 === 0) console.log(`  … ${i + 1}/${events.length}`);
  }
  if (values.json) console.log(JSON.stringify(results, null, 2));
  return failed ? 1 : 0;
}

export async function runsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { employee: { type: 'string' }, json: { type: 'boolean' } } });
  if (!values.employee) throw new UsageError('usage: jml runs --employee <employeeId>');
  const res = await http('GET', `/runs?employeeId=${encodeURIComponent(values.employee)}`);
  if (res.status !== 200) fail(res, 'runs');
  if (values.json) console.log(JSON.stringify(res.json, null, 2));
  else for (const r of res.json.runs) console.log(`${r.createdAt}  ${r.runId}  ${r.lifecycle.padEnd(16)} ${r.status}${r.statusReason ? `  — ${r.statusReason}` : ''}`);
  return 0;
}

export async function runCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  if (!positionals[0]) throw new UsageError('usage: jml run <runId>');
  const res = await http('GET', `/runs/${encodeURIComponent(positionals[0])}`);
  if (res.status !== 200) fail(res, 'run');
  const run = res.json;
  if (values.json) {
    console.log(JSON.stringify(run, null, 2));
    return 0;
  }
  console.log(`${run.runId}  ${run.lifecycle}  ${run.employeeId}  → ${run.status}${run.statusReason ? ` (${run.statusReason})` : ''}`);
  console.log(`  effective ${run.effectiveAt}   received ${run.createdAt}`);
  for (const t of run.timeline ?? []) console.log(`  ${t.at}  ${t.phase.padEnd(24)} ${t.note ?? ''}`);
  for (const s of run.steps ?? []) {
    const writes = (s.changes ?? []).filter((c: { changed: boolean }) => c.changed).map((c: { op: string; entitlement?: { value: string } }) => `${c.op}${c.entitlement ? ` ${c.entitlement.value}` : ''}`);
    console.log(`  step ${s.stepId.padEnd(22)} ${s.outcome.padEnd(7)} ${writes.join(', ') || 'no change'}${s.error ? `  ${s.error.name}: ${s.error.message}` : ''}`);
  }
  for (const a of run.approvals ?? []) console.log(`  approval ${a.requestId.padEnd(28)} ${a.status.padEnd(9)} ${a.approver}${a.rationale ? ` — “${a.rationale}”` : ''}`);
  for (const e of run.exceptions ?? []) console.log(`  exception ${e.exceptionId} [${e.status}] ${e.target}: ${e.reason}`);
  if (run.evidence) console.log(`  evidence ${await evidenceLocation(run.runId, run.evidence.prefix)}`);
  if (run.kpis && Object.keys(run.kpis).length) console.log(`  kpis ${Object.entries(run.kpis).map(([k, v]) => `${k}=${v}`).join('  ')}`);
  return 0;
}

export async function exceptionsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { status: { type: 'string' }, json: { type: 'boolean' } } });
  const res = await http('GET', `/exceptions?status=${encodeURIComponent(values.status ?? 'open')}`);
  if (res.status !== 200) fail(res, 'exceptions');
  if (values.json) console.log(JSON.stringify(res.json, null, 2));
  else if (!res.json.exceptions.length) console.log(`no ${values.status ?? 'open'} exceptions`);
  else {
    for (const e of res.json.exceptions) {
      const ticket = e.ticket ? `  [${e.ticket.key ?? e.ticket.id}]` : e.ticketError ? '  [ticket pending]' : '';
      console.log(`${e.openedAt}  ${e.exceptionId}  ${e.target.padEnd(9)} owner ${e.owner}  ${e.kind}: ${e.reason}${ticket}`);
    }
  }
  return 0;
}

/** `jml resolve <exceptionId> --resolution "…" --by <who>`: records the resolution; the ITSM ticket follows. */
export async function resolveCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { resolution: { type: 'string' }, by: { type: 'string' }, json: { type: 'boolean' } },
  });
  const id = positionals[0];
  if (!id || !values.resolution || !values.by) throw new UsageError('usage: jml resolve <exceptionId> --resolution "what was done" --by <who>');
  const res = await http('POST', `/exceptions/${encodeURIComponent(id)}/resolve`, {
    body: JSON.stringify({ resolution: values.resolution, resolvedBy: values.by }),
    headers: { 'content-type': 'application/json' },
  });
  if (res.status !== 200) fail(res, `resolve ${id}`);
  if (values.json) console.log(JSON.stringify(res.json, null, 2));
  else {
    const t = res.json.ticket;
    console.log(`✔ resolved ${id} (${res.json.target}, ${res.json.kind})${t ? ` — ticket ${t.key ?? t.id}${t.closedAt ? ' closed' : ''}` : ''}`);
    if (res.json.ticketError) console.log(`  ! the ITSM did not take it yet: ${res.json.ticketError} (retried nightly)`);
  }
  return 0;
}

/**
 * `jml approve|reject <approvalId>` — for local use: follows the emailed link from the outbox,
 * opens the confirmation page and posts its form, exactly as the approver's browser would.
 */
export function decideCommand(decision: 'approve' | 'reject') {
  return async (args: string[]): Promise<number> => {
    const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { rationale: { type: 'string' } } });
    if (!positionals[0]) throw new UsageError(`usage: jml ${decision} <approvalId> [--rationale "…"]`);
    if (decision === 'reject' && !values.rationale) throw new UsageError('a rejection needs --rationale "why"');
    requireLocal(decision, 'it follows the emailed link from the local outbox; in a deployed stack the approver decides through the link in their email (ApprovalLinksBaseUrl)');
    const outbox = await http('GET', '/local/outbox');
    if (outbox.status !== 200) fail(outbox, 'outbox');
    const mail = [...outbox.json.mails].reverse().find((m: { approvalId: string | null }) => m.approvalId === positionals[0]);
    if (!mail) throw new UsageError(`no approval email for ${positionals[0]} in the outbox`);
    const link = new URL(mail.links[0]);
    const result = await decideViaLink(link.pathname + link.search, decision, values.rationale ?? '');
    console.log(result.ok ? `✔ ${decision === 'approve' ? 'approved' : 'rejected'} ${positionals[0]}` : `✘ ${result.message}`);
    return result.ok ? 0 : 1;
  };
}

/** Opens the confirmation page and posts its form; returns the page's verdict. */
export async function decideViaLink(pathAndQuery: string, decision: 'approve' | 'reject', rationale: string) {
  const page = await http('GET', pathAndQuery);
  if (page.status !== 200) return { ok: false, status: page.status, message: textOf(page.text) };
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(page.text)?.[1]?.replace(/&amp;/g, '&') ?? '';
  const form = new URLSearchParams({ t: field('t'), csrf: field('csrf'), decision, rationale });
  const res = await http('POST', new URL(pathAndQuery, 'http://x').pathname, {
    body: form.toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'jml-cli' },
  });
  return { ok: res.status === 200, status: res.status, message: textOf(res.text) };
}

function textOf(html: string): string {
  const h1 = /<h1[^>]*>([\s\S]*?)<\/h1>/.exec(html)?.[1] ?? '';
  const p = /<p[^>]*>([\s\S]*?)<\/p>/.exec(html)?.[1] ?? '';
  return `${h1} ${p}`.replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim();
}

export async function clockCommand(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true });
  const m = /^(\d+)(m|h|d)$/.exec(positionals[1] ?? '');
  if (positionals[0] !== 'advance' || !m) throw new UsageError('usage: jml clock advance <N>m|h|d   (local runtime only)');
  requireLocal('clock advance', "a deployed stack runs on real time; its schedules fire in EventBridge Scheduler");
  const ms = Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
  const res = await http('POST', '/local/clock', { body: JSON.stringify({ advanceMs: ms }), headers: { 'content-type': 'application/json' } });
  if (res.status !== 200) fail(res, 'clock');
  console.log(`local clock now ${res.json.now}; ${res.json.fired} schedule(s) fired`);
  return 0;
}

/**
 * `jml kpis [--since 7d]`: the four KPIs. The local runtime's come from its metric points (since
 * it started); a stack's from CloudWatch over `--since` (default 7d), see stack-ops.ts.
 */
export async function kpisCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, since: { type: 'string' } } });
  const where = await endpoint();
  if (where.kind === 'stack') {
    const since = values.since ?? '7d';
    return kpisOnStack(where, { sinceMs: parseWindow(since, '--since', KPI_WINDOW), sinceLabel: since, json: !!values.json });
  }
  if (values.since) throw new UsageError("--since applies to a deployed stack's CloudWatch metrics; the local runtime's KPIs count everything since it started");
  const res = await http('GET', '/local/metrics');
  if (res.status !== 200) fail(res, 'kpis');
  const k = summariseKpis(res.json.points);
  if (values.json) console.log(JSON.stringify(k, null, 2));
  else printKpis(k);
  return 0;
}

/**
 * `jml evidence verify <runId | bundle-dir>`: recomputes every file hash against the manifest
 * and the person's hash chain, and says exactly what does not match.
 *
 * Against a deployed stack: the API has no evidence route (bundles stay in the Object Lock
 * bucket, and the read API serves no files), so the run is read through the signed read API and
 * the bundle and the person's chain straight from the evidence bucket (stack output
 * EvidenceBucketName) with the same credentials: s3:GetObject and s3:ListBucket on the bucket,
 * kms:Decrypt on its key.
 */
export async function evidenceVerifyCommand(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true });
  const target = positionals[0];
  if (!target) throw new UsageError('usage: jml evidence verify <runId | path to a bundle folder>');
  if (existsSync(target) && statSync(target).isDirectory()) {
    const files = new Map<string, Uint8Array>();
    for (const name of readdirSync(target)) {
      const p = join(target, name);
      if (statSync(p).isFile()) files.set(name, readFileSync(p));
    }
    return report(target, verifyBundle(files).problems, []);
  }
  const where = await endpoint();
  if (where.kind === 'stack') return verifyFromBucket(where, target);
  const manifestRes = await http('GET', `/runs/${encodeURIComponent(target)}/evidence/${MANIFEST_FILE}`);
  if (manifestRes.status !== 200) fail(manifestRes, `evidence of ${target}`);
  const { manifest, problems: parse } = parseManifest(manifestRes.text);
  if (!manifest) return report(target, parse, []);
  const files = new Map<string, Uint8Array>([[MANIFEST_FILE, Buffer.from(manifestRes.text)]]);
  for (const f of manifest.files) {
    const r = await http('GET', `/runs/${encodeURIComponent(target)}/evidence/${encodeURIComponent(f.name)}`);
    if (r.status === 200) files.set(f.name, r.bytes);
  }
  const bundle = verifyBundle(files);
  const chainRes = await http('GET', `/local/evidence/chain/${encodeURIComponent(manifest.employeeId)}`);
  const chain =
    chainRes.status === 200
      ? verifyChain(
          (chainRes.json.entries as Array<{ manifest: string; runId: string; closedAt: string; manifestSha256: string }>).map((e) => ({
            ...e,
            manifest: Buffer.from(e.manifest, 'base64'),
          })),
        ).problems
      : [`the person's chain could not be read (HTTP ${chainRes.status})`];
  return report(`${target} (${manifest.employeeId})`, bundle.problems, chain, manifest.files.length + 1);
}

async function evidenceStoreOf(where: Endpoint) {
  const stack = where.stack!;
  const bucket = stack.outputs.EvidenceBucketName;
  if (!bucket) throw new StackError(`stack ${stack.name} (${stack.region}) has no EvidenceBucketName output — is it a jml stack and fully deployed?`);
  const [{ S3Client }, { s3EvidenceStore }] = await Promise.all([import('@aws-sdk/client-s3'), import('#aws/evidence-store')]);
  const client = new S3Client({ region: stack.region, credentials: stack.credentials });
  return { bucket, store: s3EvidenceStore({ client, bucket }) };
}

async function verifyFromBucket(where: Endpoint, runId: string): Promise<number> {
  const res = await http('GET', `/runs/${encodeURIComponent(runId)}`);
  if (res.status !== 200) fail(res, `run ${runId}`);
  const run = res.json as { runId: string; employeeId: string; status: string; evidence: { prefix: string; manifestSha256: string } | null };
  if (!run.evidence) throw new UsageError(`run ${runId} has no evidence bundle yet (status ${run.status}): bundles are written when a run closes`);
  const { bucket, store } = await evidenceStoreOf(where);
  try {
    const bundle = await verifyStoredBundle(store, run.evidence.prefix);
    const chain = await verifyPersonChain(store, run.employeeId, {
      recorded: [{ runId: run.runId, prefix: run.evidence.prefix, manifestSha256: run.evidence.manifestSha256 }],
    });
    const files = bundle.manifest ? bundle.manifest.files.length + 1 : undefined;
    return report(`${runId} (${run.employeeId}, s3://${bucket}/${run.evidence.prefix})`, bundle.problems, chain.problems, files);
  } catch (e) {
    const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    if (err.name === 'AccessDenied' || err.$metadata?.httpStatusCode === 403) {
      throw new StackError(
        `${where.stack!.identity} may not read the evidence bucket ${bucket}: ${err.message ?? err.name} — it needs s3:GetObject and s3:ListBucket on the bucket and kms:Decrypt on its key (docs/deploy.md, "Operating a deployed stack")`,
      );
    }
    throw e;
  }
}

/** Where a run's evidence can be opened: the local runtime's file route, or the bucket. */
async function evidenceLocation(runId: string, prefix: string): Promise<string> {
  const where = await endpoint();
  if (where.kind === 'stack') {
    const bucket = where.stack!.outputs.EvidenceBucketName ?? '<evidence bucket>';
    return `s3://${bucket}/${prefix}  (jml evidence verify ${runId} --stack ${where.stack!.name})`;
  }
  return `${where.baseUrl}/runs/${runId}/evidence/summary.html`;
}

function report(what: string, bundleProblems: string[], chainProblems: string[], files?: number): number {
  if (!bundleProblems.length && !chainProblems.length) {
    console.log(`✔ evidence of ${what} verifies${files ? ` (${files} files, hash chain intact)` : ''}`);
    return 0;
  }
  console.log(`✘ evidence of ${what} does not verify:`);
  for (const p of [...bundleProblems, ...chainProblems]) console.log(`  - ${p}`);
  return 1;
}

/**
 * `jml reconcile [--now]`: starts the nightly reconciliation as the schedule does (once per UTC
 * day); `--now` waits for it and prints its report. Against a stack, see stack-ops.ts.
 */
export async function reconcileCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { now: { type: 'boolean' }, json: { type: 'boolean' }, timeout: { type: 'string' } } });
  const where = await endpoint();
  if (where.kind === 'stack') {
    const timeoutMs = values.timeout ? parseWindow(values.timeout, '--timeout', { minMs: 60_000, maxMs: 7 * 86_400_000 }) : 3_600_000;
    return reconcileOnStack(where, { now: !!values.now, json: !!values.json, timeoutMs });
  }
  if (values.timeout) throw new UsageError('--timeout applies to a deployed stack; the local runtime answers within its own 10 minutes');
  if (values.now && !values.json) console.log('reconciling every target and every person… (this reads every account page by page)');
  const res = await http('POST', '/local/reconcile', { body: JSON.stringify({ wait: !!values.now }), headers: { 'content-type': 'application/json' } });
  if (res.status !== 200 && res.status !== 202) fail(res, 'reconcile');
  const failed = res.status === 200 && (res.json.status === 'FAILED' || (res.json.execution && res.json.execution !== 'SUCCEEDED'));
  if (values.json) console.log(JSON.stringify(res.json, null, 2));
  else if (res.status === 202) console.log(`reconciliation ${res.json.reconciliationId} started; see \`jml exceptions\` when it ends`);
  else {
    if (res.json.execution && res.json.execution !== 'SUCCEEDED') console.log(`✘ execution ${res.json.reconciliationId} ${res.json.execution}`);
    printReconciliation(res.json.reconciliationId, res.json.status, res.json.kpis ?? null, res.json.evidence?.prefix ?? null);
  }
  return failed ? 1 : 0;
}
