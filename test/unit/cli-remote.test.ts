/**
 * `jml … --stack <name>` against a deployed stack, with AWS replaced at the edges only:
 * CloudFormation and S3 through aws-sdk-client-mock, and API Gateway by a 127.0.0.1 server that
 * checks SigV4 for real — it recomputes the signature of every request it receives with
 * `SignatureV4` (and smithy's own SHA-256, not the CLI's) from the throwaway credentials the test
 * hands the CLI through the standard environment variables, and answers 403 the way API Gateway
 * does when they do not match. Assertions are on what an operator sees: the CLI's output, its
 * exit code and error messages, and the requests that reached the API.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { Readable } from 'node:stream';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudFormationClient, CloudFormationServiceException, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { GetObjectCommand, ListObjectsV2Command, NoSuchKey, S3Client, S3ServiceException, type ListObjectsV2CommandInput } from '@aws-sdk/client-s3';
import { Hash, sdkStreamMixin } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';
import { mockClient } from 'aws-sdk-client-mock';
import { InvokeCommand, LambdaClient, LambdaServiceException } from '@aws-sdk/client-lambda';
import { DescribeExecutionCommand, GetExecutionHistoryCommand, SFNClient, SFNServiceException, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { CloudWatchClient, CloudWatchServiceException, GetMetricDataCommand, type GetMetricDataCommandInput } from '@aws-sdk/client-cloudwatch';
import type { AppDeps } from '#app/ports';
import { EmfMetrics } from '#aws/metrics.emf';
import { createScheduledActionHandler, scheduledActionEventSchema } from '#aws/scheduled-action';
import { NIGHTLY_RECONCILE_SCHEDULE, scheduledActionInput } from '#aws/schedules';
import { SfnWorkflows } from '#aws/workflows.sfn';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildEvidenceBundle, type EvidenceInput } from '#core/evidence';
import { ChainedEvidenceStore, type ObjectBackend } from '#core/evidence-store';
import { signCanonical } from '#core/signature';
import { main } from '../../bin/cli.ts';
import { polling } from '../../bin/commands/stack-ops.ts';

const REGION = 'eu-west-1';
const ACCOUNT = '111122223333';
const BUCKET = 'jml-evidence-111122223333';
const SCHEDULED_ACTION_ARN = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:jml-prod-scheduled-action`;
const RECONCILE_MACHINE_ARN = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:jml-prod-reconcile`;
const cfn = mockClient(CloudFormationClient);
const s3 = mockClient(S3Client);
const tmp = mkdtempSync(join(tmpdir(), 'jml-cli-remote-'));

/** Throwaway credentials: the operator's, and a second identity IAM lets read runs but not exceptions. */
const operator = { accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(30).toString('base64'), sessionToken: randomBytes(40).toString('base64') };
const limited = { accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(30).toString('base64') };
const KNOWN = new Map<string, { secretAccessKey: string; sessionToken?: string; arn: string; deny: RegExp[] }>([
  [operator.accessKeyId, { ...operator, arn: `arn:aws:sts::${ACCOUNT}:assumed-role/jml-operator/ops`, deny: [] }],
  [limited.accessKeyId, { ...limited, arn: `arn:aws:iam::${ACCOUNT}:user/auditor`, deny: [/^GET \/v1\/exceptions$/] }],
]);
const HRIS_SECRET = randomBytes(32).toString('hex');

// ---- API Gateway stand-in ----------------------------------------------------------------------

interface Seen {
  method: string;
  path: string;
  authorization?: string;
  securityToken?: string;
  status: number;
}
let seen: Seen[] = [];
let server: Server;
let apiUrl: string;

const SigSha256 = Hash.bind(null, 'sha256') as unknown as new (secret?: unknown) => Hash;

/** What API Gateway's IAM authoriser does: find the key, recompute the signature, compare. */
async function checkSigV4(req: IncomingMessage, url: URL, body: string): Promise<{ ok: true; arn: string; deny: RegExp[] } | { ok: false; message: string }> {
  const auth = req.headers.authorization;
  if (!auth) return { ok: false, message: 'Missing Authentication Token' };
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return { ok: false, message: "Authorization header requires 'Credential' parameter." };
  const [, keyId, , region, service, signedHeaders] = m;
  const known = KNOWN.get(keyId!);
  if (!known) return { ok: false, message: 'The security token included in the request is invalid.' };
  if (region !== REGION || service !== 'execute-api') return { ok: false, message: `Credential should be scoped to a valid region and service (${region}/${service}).` };
  if (known.sessionToken && req.headers['x-amz-security-token'] !== known.sessionToken) return { ok: false, message: 'The security token included in the request is invalid.' };
  const date = String(req.headers['x-amz-date'] ?? '');
  const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
  if (!d) return { ok: false, message: 'Authorization header requires existence of either a X-Amz-Date or a Date header.' };
  const signingDate = new Date(Date.UTC(+d[1]!, +d[2]! - 1, +d[3]!, +d[4]!, +d[5]!, +d[6]!));
  const headers = Object.fromEntries(signedHeaders!.split(';').map((h) => [h, String(req.headers[h] ?? '')]));
  const signer = new SignatureV4({ service: 'execute-api', region: REGION, credentials: { accessKeyId: keyId!, secretAccessKey: known.secretAccessKey, ...(known.sessionToken ? { sessionToken: known.sessionToken } : {}) }, sha256: SigSha256 });
  const expected = await signer.sign(
    {
      method: req.method!,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      ...(body ? { body } : {}),
    },
    { signingDate },
  );
  if (expected.headers.authorization !== auth) {
    return { ok: false, message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.' };
  }
  return { ok: true, arn: known.arn, deny: known.deny };
}

const RUN = {
  runId: 'run-2f1c7a',
  employeeId: 'E1001',
  eventId: 'evt-1',
  eventType: 'hire',
  lifecycle: 'joiner',
  status: 'COMPLETED',
  effectiveAt: '2026-12-01T00:00:00.000Z',
  occurredAt: '2026-11-20T09:00:00.000Z',
  createdAt: '2026-11-20T09:00:01.000Z',
  updatedAt: '2026-11-20T09:03:00.000Z',
};
let runDetail: Record<string, unknown>;
/** Other run records the read API answers for (reconciliations), by run id. */
const otherRuns = new Map<string, Record<string, unknown>>();
const EXCEPTION = { exceptionId: 'exc-1', openedAt: '2026-11-21T02:00:00.000Z', target: 'netsuite', owner: 'finance.apps@acme.example', kind: 'provisioning_failed', reason: 'NetSuite answered 503 three times', status: 'open' };

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
        const body = Buffer.concat(chunks).toString('utf8');
        const entry: Seen = { method: req.method!, path: url.pathname + url.search, status: 0, authorization: req.headers.authorization, securityToken: req.headers['x-amz-security-token'] as string | undefined };
        seen.push(entry);
        const send = (status: number, json: unknown) => {
          entry.status = status;
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(json));
        };
        const route = `${req.method} ${url.pathname}`;
        if (route === 'POST /v1/hris/events') {
          // A public route: HMAC, no IAM. Checks the canonical signature like the webhook does.
          const ts = Number(req.headers['x-jml-timestamp']);
          const want = signCanonical(HRIS_SECRET, body, ts)['X-JML-Signature'];
          if (req.headers['x-jml-signature'] !== want || req.headers.authorization) return send(401, { message: 'signature does not verify' });
          return send(202, { runId: 'run-new-1', duplicate: false });
        }
        const iam = /^GET \/v1\/(runs|runs\/[^/]+|exceptions)$/.test(route) || route === 'POST /v1/exception-grants';
        if (!iam) return send(403, { message: 'Missing Authentication Token' });
        const check = await checkSigV4(req, url, body);
        if (!check.ok) return send(403, { message: check.message });
        if (check.deny.some((d) => d.test(route))) {
          return send(403, { Message: `User: ${check.arn} is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:${REGION}:********3333:abc123/v1/${req.method}${url.pathname.slice(3)}` });
        }
        if (route === 'POST /v1/exception-grants') {
          const g = JSON.parse(body) as { employeeId: string; bundle: string; days: number; requestedBy: string };
          return send(202, { grantId: 'grant-1', duplicate: false, status: 'PENDING_APPROVAL', employeeId: g.employeeId, bundle: g.bundle, approver: 'eng.lead@acme.example', expiresAt: '2026-12-09T00:00:00.000Z', requestedBy: g.requestedBy });
        }
        if (url.pathname === '/v1/runs') return send(200, { runs: url.searchParams.get('employeeId') === 'E1001' ? [RUN] : [] });
        if (url.pathname === `/v1/runs/${RUN.runId}`) return send(200, runDetail);
        const other = otherRuns.get(decodeURIComponent(url.pathname.slice(9)));
        if (url.pathname.startsWith('/v1/runs/') && other) return send(200, other);
        if (url.pathname.startsWith('/v1/runs/')) return send(404, { error: 'not_found', message: `run ${decodeURIComponent(url.pathname.slice(9))} not found` });
        return send(200, { exceptions: [EXCEPTION] });
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  apiUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

// ---- CloudFormation, S3, environment ------------------------------------------------------------

function outputs(over: Record<string, string | undefined> = {}) {
  const all: Record<string, string | undefined> = {
    ApiUrl: apiUrl,
    ReadApiUrl: `${apiUrl}runs`,
    EvidenceBucketName: BUCKET,
    DashboardName: 'jml-prod-jml',
    SecretHrisWebhook: 'Jml/hris-webhook',
    ScheduledActionFunctionArn: SCHEDULED_ACTION_ARN,
    ReconcileStateMachineArn: RECONCILE_MACHINE_ARN,
    ...over,
  };
  return Object.entries(all).filter(([, v]) => v !== undefined).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue }));
}

function stackIs(name: string, out = outputs()) {
  cfn.on(DescribeStacksCommand).callsFake(({ StackName }: { StackName: string }) => {
    if (StackName !== name) {
      throw new CloudFormationServiceException({ name: 'ValidationError', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: `Stack with id ${StackName} does not exist` });
    }
    return { Stacks: [{ StackName: name, StackStatus: 'UPDATE_COMPLETE', CreationTime: new Date('2026-11-01T00:00:00Z'), Outputs: out }] };
  });
}

/** The evidence bucket: bundles written through the real store protocol, read back through mocked S3. */
function evidenceBucket() {
  const objects = new Map<string, Uint8Array>();
  const backend: ObjectBackend = {
    async put(key, body) {
      objects.set(key, body);
    },
    async get(key) {
      return objects.get(key) ?? null;
    },
    async list(prefix) {
      return [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    },
  };
  s3.on(GetObjectCommand).callsFake(({ Bucket, Key }: { Bucket: string; Key: string }) => {
    expect(Bucket).toBe(BUCKET);
    const body = objects.get(Key);
    if (!body) throw new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: 'The specified key does not exist.' });
    return { Body: sdkStreamMixin(Readable.from([Buffer.from(body)])), ContentLength: body.length };
  });
  s3.on(ListObjectsV2Command).callsFake((i: ListObjectsV2CommandInput) => {
    const keys = [...objects.keys()].filter((k) => k.startsWith(i.Prefix ?? '')).sort();
    return { Contents: keys.map((Key) => ({ Key, Size: objects.get(Key)!.length })), KeyCount: keys.length, IsTruncated: false };
  });
  return { objects, store: new ChainedEvidenceStore(backend) };
}

function evidenceInput(runId: string, closedAt: string, previousManifestSha256: string | null): EvidenceInput {
  return {
    runId,
    employeeId: 'E1001',
    lifecycle: 'joiner',
    status: 'COMPLETED',
    closedAt,
    rawEvent: { body: JSON.stringify({ eventId: `evt-${runId}`, eventType: 'hire', worker: { employeeId: 'E1001' } }), receivedAt: closedAt },
    plan: null,
    desired: null,
    approvals: [],
    executionLog: [
      { stepId: '001-okta', target: 'okta', outcome: 'ok', startedAt: closedAt, finishedAt: closedAt, changes: [{ target: 'okta', op: 'create', accountId: '00u1', changed: true, requestIds: ['r-1'] }] },
    ],
    idpEvidence: [],
    reconciliation: { checkedAt: closedAt, targets: [{ target: 'okta', result: 'match', desiredStatus: 'enabled', actualStatus: 'enabled' }] },
    exceptions: [],
    kpis: {},
    timeline: [{ phase: 'closed', at: closedAt }],
    previousManifestSha256,
  };
}

let out: string[];
let err: string[];
beforeEach(() => {
  out = [];
  err = [];
  seen = [];
  cfn.reset();
  s3.reset();
  otherRuns.clear();
  runDetail = {
    ...RUN,
    timeline: [{ at: '2026-11-20T09:00:01.000Z', phase: 'Received' }, { at: '2026-11-20T09:03:00.000Z', phase: 'Closed', note: 'converged' }],
    steps: [{ stepId: '001-okta', outcome: 'ok', changes: [{ op: 'create', changed: true }, { op: 'addEntitlement', changed: true, entitlement: { type: 'group', value: 'Engineering' } }] }],
    approvals: [{ requestId: 'baseline', status: 'APPROVED', approver: 'margaret@acme.example' }],
    exceptions: [],
    evidence: null,
    kpis: null,
  };
  vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  // Only what the test gives: no shared config, no profile, no instance metadata.
  vi.stubEnv('AWS_CONFIG_FILE', join(tmp, 'no-config'));
  vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', join(tmp, 'no-credentials'));
  vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
  vi.stubEnv('AWS_PROFILE', undefined);
  vi.stubEnv('AWS_DEFAULT_REGION', undefined);
  vi.stubEnv('AWS_CONTAINER_CREDENTIALS_FULL_URI', undefined);
  vi.stubEnv('AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', undefined);
  vi.stubEnv('AWS_WEB_IDENTITY_TOKEN_FILE', undefined);
  vi.stubEnv('JML_STACK', undefined);
  vi.stubEnv('JML_URL', undefined);
  vi.stubEnv('JML_HRIS_WEBHOOK_SECRET', undefined);
  vi.stubEnv('AWS_REGION', REGION);
  useCredentials(operator);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

function useCredentials(c: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }) {
  vi.stubEnv('AWS_ACCESS_KEY_ID', c.accessKeyId);
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', c.secretAccessKey);
  vi.stubEnv('AWS_SESSION_TOKEN', c.sessionToken);
}

const text = () => out.join('\n');
const errors = () => err.join('\n');
const noSecretsIn = (s: string) => {
  for (const secret of [operator.secretAccessKey, operator.sessionToken, limited.secretAccessKey, HRIS_SECRET]) expect(s).not.toContain(secret);
};

// ---- tests -------------------------------------------------------------------------------------

describe('jml against a deployed stack', () => {
  it('runs: finds the API in the stack outputs and signs the read with SigV4 (session token included)', async () => {
    stackIs('Jml');
    expect(await main(['runs', '--employee', 'E1001', '--stack', 'Jml'])).toBe(0);
    expect(text()).toBe(`${RUN.createdAt}  ${RUN.runId}  joiner           COMPLETED`);
    expect(cfn.commandCalls(DescribeStacksCommand).map((c) => c.args[0].input)).toEqual([{ StackName: 'Jml' }]);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'GET', path: '/v1/runs?employeeId=E1001', status: 200, securityToken: operator.sessionToken });
    expect(seen[0]!.authorization).toContain(`Credential=${operator.accessKeyId}/`);
    expect(seen[0]!.authorization).toContain(`/${REGION}/execute-api/aws4_request`);
    noSecretsIn(text() + errors());
  });

  it('run: the timeline, and where the evidence lives (the bucket, not a local URL)', async () => {
    stackIs('Jml');
    runDetail.evidence = { prefix: `evidence/2026/11/${RUN.runId}/`, manifestSha256: 'a'.repeat(64) };
    expect(await main(['run', RUN.runId, '--stack=Jml', '--region', REGION])).toBe(0);
    expect(text()).toContain(`${RUN.runId}  joiner  E1001  → COMPLETED`);
    expect(text()).toContain('step 001-okta               ok      create, addEntitlement Engineering');
    expect(text()).toMatch(/approval baseline +APPROVED +margaret@acme\.example/);
    expect(text()).toContain(`evidence s3://${BUCKET}/evidence/2026/11/${RUN.runId}/  (jml evidence verify ${RUN.runId} --stack Jml)`);
    expect(seen.map((s) => `${s.method} ${s.path} ${s.status}`)).toEqual([`GET /v1/runs/${RUN.runId} 200`]);
  });

  it('exceptions: JML_STACK selects the stack without a flag', async () => {
    stackIs('JmlProd');
    vi.stubEnv('JML_STACK', 'JmlProd');
    expect(await main(['exceptions'])).toBe(0);
    expect(text()).toBe(`${EXCEPTION.openedAt}  exc-1  netsuite  owner finance.apps@acme.example  provisioning_failed: NetSuite answered 503 three times`);
    expect(seen.map((s) => s.path)).toEqual(['/v1/exceptions?status=open']);
  });

  it('a run the API does not know is a 404 with its message', async () => {
    stackIs('Jml');
    expect(await main(['run', 'run-nope', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain('run: HTTP 404 — run run-nope not found');
  });

  it('a 403 from IAM names the identity and the route', async () => {
    stackIs('Jml');
    useCredentials(limited);
    expect(await main(['runs', '--employee', 'E1001', '--stack', 'Jml'])).toBe(0); // allowed
    expect(await main(['exceptions', '--stack', 'Jml'])).toBe(2);
    const e = errors();
    expect(e).toContain(`Jml: GET /exceptions refused (HTTP 403) for arn:aws:iam::${ACCOUNT}:user/auditor (access key …${limited.accessKeyId.slice(-4)})`);
    expect(e).toContain('grant execute-api:Invoke on this route');
    noSecretsIn(e + text());
  });

  it('credentials the API does not accept (wrong secret) fail the signature check, and the CLI says so', async () => {
    stackIs('Jml');
    useCredentials({ ...operator, secretAccessKey: randomBytes(30).toString('base64') });
    expect(await main(['run', RUN.runId, '--stack', 'Jml'])).toBe(2);
    expect(seen.map((s) => s.status)).toEqual([403]); // the server really recomputed and rejected it
    expect(errors()).toContain(`Jml: GET /runs/{runId} refused (HTTP 403) for access key …${operator.accessKeyId.slice(-4)}: The request signature we calculated does not match`);
    expect(errors()).toContain('the credentials were refused');
  });

  it('stack not found, output missing, no credentials, no region: each says what is wrong', async () => {
    stackIs('Jml');
    expect(await main(['runs', '--employee', 'E1', '--stack', 'Nope'])).toBe(2);
    expect(errors()).toContain(`stack Nope not found in ${REGION} (as access key …${operator.accessKeyId.slice(-4)})`);

    err = [];
    cfn.reset();
    stackIs('Jml', outputs({ ApiUrl: undefined }));
    expect(await main(['exceptions', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain(`stack Jml (${REGION}, UPDATE_COMPLETE) has no ApiUrl output`);
    expect(errors()).toContain('Outputs: ReadApiUrl, EvidenceBucketName, DashboardName, SecretHrisWebhook, ScheduledActionFunctionArn, ReconcileStateMachineArn');

    err = [];
    vi.stubEnv('AWS_ACCESS_KEY_ID', undefined);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', undefined);
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    expect(await main(['exceptions', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toMatch(/^error: no AWS credentials for stack Jml: .+ — run `aws sso login`, pass --profile <name>/);

    err = [];
    useCredentials(operator);
    vi.stubEnv('AWS_REGION', undefined);
    expect(await main(['exceptions', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain('no AWS region for stack Jml: pass --region <region> or set AWS_REGION');
    expect(seen).toEqual([]);
  });

  it('an API that cannot be reached is named', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    stackIs('Jml', outputs({ ApiUrl: `http://127.0.0.1:${port}/v1/` }));
    expect(await main(['exceptions', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain(`cannot reach the API of stack Jml (${REGION}) at http://127.0.0.1:${port}/v1 (ECONNREFUSED)`);
  });

  it('refuses local-only commands before any AWS call, saying why', async () => {
    stackIs('Jml');
    const cases: Array<[string[], string]> = [
      [['clock', 'advance', '1d'], 'schedules fire in EventBridge Scheduler'],
      [['approve', 'appr-1'], 'the approver decides through the link in their email'],
      [['reject', 'appr-1', '--rationale', 'no'], 'the approver decides through the link in their email'],
    ];
    for (const [args, why] of cases) {
      err = [];
      expect(await main([...args, '--stack', 'Jml'])).toBe(2);
      const name = args[0] === 'clock' ? 'clock advance' : args[0];
      expect(errors()).toContain(`\`jml ${name}\` works against the local runtime only, not a deployed stack (Jml): `);
      expect(errors()).toContain(why);
    }
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0);
    expect(seen).toEqual([]);
  });

  it('send-event signs with the stack’s HRIS secret from the environment, never the development default', async () => {
    stackIs('Jml');
    const event = join(tmp, 'hire.json');
    (await import('node:fs')).writeFileSync(event, JSON.stringify({ eventId: 'e1', eventType: 'hire', worker: { employeeId: 'E1001' } }));
    expect(await main(['send-event', event, '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain('set JML_HRIS_WEBHOOK_SECRET to its "current" value (secret Jml/hris-webhook in Secrets Manager)');
    expect(seen).toEqual([]);

    vi.stubEnv('JML_HRIS_WEBHOOK_SECRET', HRIS_SECRET);
    expect(await main(['send-event', event, '--stack', 'Jml'])).toBe(0);
    expect(text()).toContain('✔ accepted   run-new-1  (hire E1001)');
    expect(seen).toMatchObject([{ method: 'POST', path: '/v1/hris/events', status: 202, authorization: undefined }]); // HMAC only, no SigV4
    noSecretsIn(text() + errors());
  });

  it('evidence verify reads the run through the API and the bundle and chain from the evidence bucket', async () => {
    stackIs('Jml');
    const { objects, store } = evidenceBucket();
    const first = await store.putBundle(buildEvidenceBundle(evidenceInput('run-earlier', '2026-10-01T09:00:00Z', null)));
    const bundle = buildEvidenceBundle(evidenceInput(RUN.runId, '2026-11-20T09:03:00Z', (await store.latestManifestSha256('E1001'))!));
    const stored = await store.putBundle(bundle);
    expect(first.seq).toBe(1);
    runDetail.evidence = { prefix: stored.prefix, manifestSha256: stored.manifestSha256 };

    expect(await main(['evidence', 'verify', RUN.runId, '--stack', 'Jml'])).toBe(0);
    expect(text()).toBe(`✔ evidence of ${RUN.runId} (E1001, s3://${BUCKET}/${stored.prefix}) verifies (${bundle.manifest.files.length + 1} files, hash chain intact)`);
    expect(s3.commandCalls(GetObjectCommand).length).toBeGreaterThan(bundle.manifest.files.length);

    // Someone changes a file in the bucket: the bundle no longer verifies, and the CLI says which.
    out = [];
    const key = `${stored.prefix}execution-log.json`;
    objects.set(key, Buffer.from(Buffer.from(objects.get(key)!).toString().replace('00u1', '00u9')));
    expect(await main(['evidence', 'verify', RUN.runId, '--stack', 'Jml'])).toBe(1);
    expect(text()).toContain(`✘ evidence of ${RUN.runId} (E1001, s3://${BUCKET}/${stored.prefix}) does not verify:`);
    expect(text()).toMatch(/^ {2}- execution-log\.json was changed: sha256 [0-9a-f]{64} \(\d+ bytes\) does not match the manifest's/m);
  });

  it('evidence verify names the missing permission when the bucket refuses', async () => {
    stackIs('Jml');
    runDetail.evidence = { prefix: `evidence/2026/11/${RUN.runId}/`, manifestSha256: 'a'.repeat(64) };
    s3.on(ListObjectsV2Command).rejects(new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Access Denied' }));
    s3.on(GetObjectCommand).rejects(new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Access Denied' }));
    expect(await main(['evidence', 'verify', RUN.runId, '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain(`access key …${operator.accessKeyId.slice(-4)} may not read the evidence bucket ${BUCKET}: Access Denied — it needs s3:GetObject and s3:ListBucket on the bucket and kms:Decrypt on its key`);
  });

  it('grant-exception: the POST and its body are signed (the API recomputes the payload hash)', async () => {
    stackIs('Jml');
    const args = ['grant-exception', '--employee', 'E1001', '--bundle', 'engineering', '--days', '14', '--reason', 'Hand-over', '--requested-by', 'ops.lead@acme.example', '--stack', 'Jml'];
    expect(await main(args)).toBe(0);
    expect(seen).toMatchObject([{ method: 'POST', path: '/v1/exception-grants', status: 202 }]);
    expect(text()).toContain('✔ requested  grant-1  engineering for E1001 until 2026-12-09T00:00:00.000Z');
    expect(text()).toContain(`follow it: GET ${apiUrl}exception-grants/grant-1 (SigV4)`);
  });

  it('--profile takes the credentials of a named profile from the shared credentials file', async () => {
    stackIs('Jml');
    const file = join(tmp, 'credentials');
    (await import('node:fs')).writeFileSync(file, `[default]\naws_access_key_id = AKIANOTTHISONE000000\naws_secret_access_key = ${randomBytes(30).toString('base64')}\n\n[audit]\naws_access_key_id = ${limited.accessKeyId}\naws_secret_access_key = ${limited.secretAccessKey}\n`);
    vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', file);
    vi.stubEnv('AWS_ACCESS_KEY_ID', undefined);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', undefined);
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    expect(await main(['runs', '--employee', 'E1001', '--stack', 'Jml', '--profile', 'audit'])).toBe(0);
    expect(seen[0]!.authorization).toContain(`Credential=${limited.accessKeyId}/`);
    expect(await main(['exceptions', '--stack', 'Jml', '--profile', 'audit'])).toBe(2);
    expect(errors()).toContain(`for arn:aws:iam::${ACCOUNT}:user/auditor (profile audit, access key …${limited.accessKeyId.slice(-4)})`);
  });

  it('a connection option without a value is a usage error', async () => {
    expect(await main(['runs', '--employee', 'E1', '--stack'])).toBe(2);
    expect(errors()).toContain('--stack needs a value, e.g. --stack Jml');
    err = [];
    expect(await main(['runs', '--region', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain('--region needs a value');
  });

  it('without --stack the CLI still talks to JML_URL, unsigned', async () => {
    vi.stubEnv('JML_URL', apiUrl.replace(/\/$/, ''));
    expect(await main(['runs', '--employee', 'E1001'])).toBe(2);
    expect(seen).toMatchObject([{ path: '/v1/runs?employeeId=E1001', status: 403, authorization: undefined }]);
    expect(errors()).toContain('runs: HTTP 403 — Missing Authentication Token');
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0);
  });
});

// ---- reconcile: Lambda (the real scheduled-action handler) and Step Functions --------------------

const lambda = mockClient(LambdaClient);
const sfn = mockClient(SFNClient);
const cloudwatch = mockClient(CloudWatchClient);
const TODAY = '2026-11-25';
const NIGHTLY = `nightly-${TODAY}`;

/**
 * Step Functions as the scheduled-action function and the CLI see it: executions by name
 * (a second start of a name is `ExecutionAlreadyExists`), each walking through `script` — one
 * entry per DescribeExecution — with the state it is in for GetExecutionHistory.
 */
function stepFunctions(script: Array<{ status: string; state?: string; error?: string; cause?: string }>) {
  const executions = new Map<string, { input: unknown; startDate: Date; step: number }>();
  sfn.on(StartExecutionCommand).callsFake((i: { stateMachineArn: string; name: string; input: string }) => {
    expect(i.stateMachineArn).toBe(RECONCILE_MACHINE_ARN);
    if (executions.has(i.name)) {
      throw new SFNServiceException({ name: 'ExecutionAlreadyExists', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: `Execution Already Exists: '${i.name}'` });
    }
    executions.set(i.name, { input: JSON.parse(i.input), startDate: new Date(Date.now() - 90_000), step: 0 });
    return { executionArn: `${RECONCILE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${i.name}`, startDate: new Date() };
  });
  const find = (arn: string) => {
    const name = arn.split(':').pop()!;
    const e = executions.get(name);
    if (!e || arn !== `arn:aws:states:${REGION}:${ACCOUNT}:execution:jml-prod-reconcile:${name}`) {
      throw new SFNServiceException({ name: 'ExecutionDoesNotExist', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: `Execution Does Not Exist: '${arn}'` });
    }
    return e;
  };
  sfn.on(DescribeExecutionCommand).callsFake(({ executionArn }: { executionArn: string }) => {
    const e = find(executionArn);
    const now = script[Math.min(e.step, script.length - 1)]!;
    e.step += 1;
    return { executionArn, name: executionArn.split(':').pop(), status: now.status, startDate: e.startDate, ...(now.error ? { error: now.error, cause: now.cause } : {}) };
  });
  sfn.on(GetExecutionHistoryCommand).callsFake(({ executionArn }: { executionArn: string }) => {
    const e = find(executionArn);
    const state = script[Math.max(0, Math.min(e.step - 1, script.length - 1))]!.state;
    return { events: state ? [{ id: 9, type: 'TaskStateEntered', timestamp: new Date(), stateEnteredEventDetails: { name: state } }, { id: 8, type: 'TaskStateExited', timestamp: new Date() }] : [] };
  });
  return executions;
}

/** Lambda runs the real scheduled-action handler, whose workflow engine is Step Functions (mocked above). */
function scheduledActionFunction(machines: Partial<Record<'reconcile', string>> = { reconcile: RECONCILE_MACHINE_ARN }) {
  const deps = {
    clock: { now: () => new Date(`${TODAY}T02:07:00Z`) },
    workflows: new SfnWorkflows({ client: async () => new SFNClient({ region: REGION }), stateMachines: machines }),
  } as unknown as AppDeps;
  const handler = createScheduledActionHandler(async () => deps);
  lambda.on(InvokeCommand).callsFake(async (i: { FunctionName: string; Payload: Uint8Array }) => {
    if (i.FunctionName !== SCHEDULED_ACTION_ARN) {
      throw new LambdaServiceException({ name: 'ResourceNotFoundException', $fault: 'client', $metadata: { httpStatusCode: 404 }, message: `Function not found: ${i.FunctionName}` });
    }
    try {
      const out = await handler(JSON.parse(Buffer.from(i.Payload).toString('utf8')));
      return { StatusCode: 200, ExecutedVersion: '$LATEST', Payload: Buffer.from(JSON.stringify(out)) };
    } catch (e) {
      return { StatusCode: 200, ExecutedVersion: '$LATEST', FunctionError: 'Unhandled', Payload: Buffer.from(JSON.stringify({ errorType: (e as Error).name, errorMessage: (e as Error).message, trace: [] })) };
    }
  });
}

const invokedWith = () => lambda.commandCalls(InvokeCommand).map((c) => ({ ...c.args[0].input, Payload: JSON.parse(Buffer.from(c.args[0].input.Payload as Uint8Array).toString('utf8')) }));

type ServiceException = new (o: { name: string; $fault: 'client'; $metadata: { httpStatusCode: number }; message: string }) => Error;
const accessDenied = (Service: ServiceException, action: string, resource: string) =>
  new Service({
    name: 'AccessDeniedException',
    $fault: 'client',
    $metadata: { httpStatusCode: 403 },
    message: `User: arn:aws:sts::${ACCOUNT}:assumed-role/jml-operator/ops is not authorized to perform: ${action} on resource: ${resource} because no identity-based policy allows the ${action} action`,
  });

describe('jml reconcile against a deployed stack', () => {
  beforeEach(() => {
    lambda.reset();
    sfn.reset();
    polling.intervalMs = 1;
  });

  it('invokes the scheduled-action function with the nightly schedule’s own input; the function starts that day’s execution, once', async () => {
    stackIs('Jml');
    const executions = stepFunctions([{ status: 'RUNNING' }]);
    scheduledActionFunction();
    const before = Date.now();
    expect(await main(['reconcile', '--stack', 'Jml'])).toBe(0);
    expect(text()).toBe(`reconciliation ${NIGHTLY} started; see \`jml exceptions\` when it ends (or wait for it: \`jml reconcile --now\`)`);

    const [call] = invokedWith();
    expect(call).toMatchObject({ FunctionName: SCHEDULED_ACTION_ARN, InvocationType: 'RequestResponse' });
    // What lib/scheduler.ts puts in the nightly schedule, with the firing time filled in.
    const nightly = JSON.parse(scheduledActionInput(NIGHTLY_RECONCILE_SCHEDULE, { kind: 'reconcile', payload: { scope: 'nightly' } }));
    expect(call!.Payload).toEqual({ ...nightly, at: expect.any(String) });
    expect(Date.parse(call!.Payload.at)).toBeGreaterThanOrEqual(before - 1000);
    expect(scheduledActionEventSchema.parse(call!.Payload)).toMatchObject({ kind: 'reconcile', schedule: 'jml-nightly-reconcile' });
    expect([...executions.keys()]).toEqual([NIGHTLY]);
    expect(executions.get(NIGHTLY)!.input).toMatchObject({ scope: 'nightly', trigger: 'jml-nightly-reconcile' });
    expect(sfn.commandCalls(DescribeExecutionCommand)).toHaveLength(0); // without --now nothing is followed
    expect(seen).toEqual([]);

    // Again the same day: the function answers with that day's reconciliation, no second execution.
    out = [];
    expect(await main(['reconcile', '--stack', 'Jml'])).toBe(0);
    expect(text()).toBe(`reconciliation ${NIGHTLY} was already started today (once per UTC day, like the nightly schedule); \`jml reconcile --now\` waits for it`);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(2);
    expect(executions.size).toBe(1);
    noSecretsIn(text() + errors());
  });

  it('--now follows the execution with a progress line on stderr, then prints the reconciliation’s report from its run record', async () => {
    stackIs('Jml');
    stepFunctions([
      { status: 'RUNNING', state: 'StartReconciliation' },
      { status: 'RUNNING', state: 'ReconcilePage' },
      { status: 'RUNNING', state: 'ReconcilePage' },
      { status: 'RUNNING', state: 'ReconcilePersons' },
      { status: 'SUCCEEDED' },
    ]);
    scheduledActionFunction();
    const prefix = `evidence/2026/11/${NIGHTLY}/`;
    otherRuns.set(NIGHTLY, {
      runId: NIGHTLY,
      employeeId: 'jml-reconciliation',
      lifecycle: 'reconcile',
      status: 'EXCEPTION_OPEN',
      evidence: { prefix, manifestSha256: 'b'.repeat(64) },
      kpis: { accountsEnumerated: 412, findings: 3, driftRatePercent: 0.75, orphanAccounts: 1, leaversStillEnabled: 0, revocationCompletenessPercent: 100 },
    });
    expect(await main(['reconcile', '--now', '--stack', 'Jml'])).toBe(0);
    expect(out).toEqual([
      `reconciling every target and every person… (execution ${NIGHTLY} of Jml)`,
      `reconciliation ${NIGHTLY}: EXCEPTION_OPEN`,
      '  accountsEnumerated           412',
      '  findings                     3',
      '  driftRatePercent             0.75',
      '  orphanAccounts               1',
      '  leaversStillEnabled          0',
      '  revocationCompletenessPercent 100',
      `  report: s3://${BUCKET}/${prefix}`,
    ]);
    // One progress line per change of state (not per poll), with the time since the execution started.
    expect(err).toEqual([
      expect.stringMatching(new RegExp(`^  ${NIGHTLY}: RUNNING — StartReconciliation, 1m3\\ds elapsed$`)),
      expect.stringMatching(new RegExp(`^  ${NIGHTLY}: RUNNING — ReconcilePage, 1m3\\ds elapsed$`)),
      expect.stringMatching(new RegExp(`^  ${NIGHTLY}: RUNNING — ReconcilePersons, 1m3\\ds elapsed$`)),
    ]);
    const described = sfn.commandCalls(DescribeExecutionCommand).map((c) => c.args[0].input.executionArn);
    expect(described).toHaveLength(5);
    expect(new Set(described)).toEqual(new Set([`arn:aws:states:${REGION}:${ACCOUNT}:execution:jml-prod-reconcile:${NIGHTLY}`]));
    // The report comes through the signed read API.
    expect(seen).toMatchObject([{ method: 'GET', path: `/v1/runs/${NIGHTLY}`, status: 200, securityToken: operator.sessionToken }]);

    // --json: the local command's shape.
    out = [];
    err = [];
    expect(await main(['reconcile', '--now', '--json', '--stack', 'Jml'])).toBe(0);
    expect(JSON.parse(text())).toEqual({
      reconciliationId: NIGHTLY,
      status: 'EXCEPTION_OPEN',
      execution: 'SUCCEEDED',
      evidence: { prefix, manifestSha256: 'b'.repeat(64) },
      kpis: expect.objectContaining({ findings: 3 }),
    });
  });

  it('an execution that failed: its error and cause, the report of what was done before, exit 1', async () => {
    stackIs('Jml');
    stepFunctions([
      { status: 'RUNNING', state: 'ReconcilePage' },
      { status: 'FAILED', error: 'States.TaskFailed', cause: JSON.stringify({ errorType: 'TargetUnavailable', errorMessage: 'okta: HTTP 503 after 5 attempts\nat …', trace: [] }) },
    ]);
    scheduledActionFunction();
    otherRuns.set(NIGHTLY, { runId: NIGHTLY, status: 'FAILED', evidence: { prefix: `evidence/2026/11/${NIGHTLY}/` }, kpis: { findings: 0 } });
    expect(await main(['reconcile', '--now', '--stack', 'Jml'])).toBe(1);
    expect(out).toContain(`✘ execution ${NIGHTLY} FAILED: States.TaskFailed — TargetUnavailable: okta: HTTP 503 after 5 attempts`);
    expect(out).toContain(`reconciliation ${NIGHTLY}: FAILED`);
    expect(out).toContain(`  report: s3://${BUCKET}/evidence/2026/11/${NIGHTLY}/`);

    // The execution died before the reconciliation wrote its record: said so, still exit 1.
    out = [];
    sfn.reset();
    stepFunctions([{ status: 'TIMED_OUT' }]);
    otherRuns.clear();
    expect(await main(['reconcile', '--now', '--stack', 'Jml'])).toBe(1);
    expect(out).toContain(`✘ execution ${NIGHTLY} TIMED_OUT`);
    expect(out).toContain(`reconciliation ${NIGHTLY}: no report (GET /runs/${NIGHTLY}: HTTP 404 — run ${NIGHTLY} not found)`);
  });

  it('an output missing, IAM refusing the invoke or the describe, the function failing: each says what is wrong', async () => {
    stackIs('Jml', outputs({ ScheduledActionFunctionArn: undefined }));
    scheduledActionFunction();
    expect(await main(['reconcile', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain(`stack Jml (${REGION}, UPDATE_COMPLETE) has no ScheduledActionFunctionArn output — the stack predates \`jml reconcile --stack\`: deploy this version (cdk deploy) to add it`);

    err = [];
    cfn.reset();
    stackIs('Jml', outputs({ ReconcileStateMachineArn: undefined }));
    expect(await main(['reconcile', '--now', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain('has no ReconcileStateMachineArn output — no reconcile workflow is deployed (statemachines/reconcile.asl.json)');
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(0);

    err = [];
    cfn.reset();
    stackIs('Jml');
    lambda.reset();
    lambda.on(InvokeCommand).rejects(accessDenied(LambdaServiceException, 'lambda:InvokeFunction', SCHEDULED_ACTION_ARN));
    expect(await main(['reconcile', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain(
      `Jml: lambda:InvokeFunction on ${SCHEDULED_ACTION_ARN} refused for arn:aws:sts::${ACCOUNT}:assumed-role/jml-operator/ops (access key …${operator.accessKeyId.slice(-4)}):`,
    );
    expect(errors()).toContain(`— grant lambda:InvokeFunction on the scheduled-action function (output ScheduledActionFunctionArn: ${SCHEDULED_ACTION_ARN})`);

    // The function itself fails (here: deployed without the reconcile state machine in its environment).
    err = [];
    lambda.reset();
    stepFunctions([{ status: 'RUNNING' }]);
    scheduledActionFunction({});
    expect(await main(['reconcile', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain('Jml: the scheduled-action function did not start the reconciliation: WorkflowNotDeployed: workflow reconcile: no state machine is deployed for it (its logs: /aws/lambda/jml-prod-scheduled-action)');

    // Started, but the operator may not follow it.
    err = [];
    lambda.reset();
    sfn.reset();
    stepFunctions([{ status: 'RUNNING' }]);
    scheduledActionFunction();
    const execution = `arn:aws:states:${REGION}:${ACCOUNT}:execution:jml-prod-reconcile:${NIGHTLY}`;
    sfn.on(DescribeExecutionCommand).rejects(accessDenied(SFNServiceException, 'states:DescribeExecution', execution));
    expect(await main(['reconcile', '--now', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain(`Jml: states:DescribeExecution on ${execution} refused for arn:aws:sts::${ACCOUNT}:assumed-role/jml-operator/ops`);
    expect(errors()).toContain(`— grant states:DescribeExecution on the reconcile executions (arn:aws:states:${REGION}:${ACCOUNT}:execution:jml-prod-reconcile:*)`);
    noSecretsIn(text() + errors());
  });

  it('gives up waiting after --timeout, saying the execution goes on and how to follow it', async () => {
    stackIs('Jml');
    stepFunctions([{ status: 'RUNNING', state: 'ReconcilePage' }]);
    scheduledActionFunction();
    let now = Date.now();
    vi.spyOn(Date, 'now').mockImplementation(() => (now += 20_000)); // each look at the clock: 20 s later
    expect(await main(['reconcile', '--now', '--timeout', '2m', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain(`reconciliation ${NIGHTLY} is still RUNNING after 2m00s; it goes on in Step Functions — follow it with \`jml run ${NIGHTLY} --stack Jml\``);
    expect(sfn.commandCalls(DescribeExecutionCommand).length).toBeLessThan(10);
  });
});

// ---- kpis: CloudWatch fed with what the functions' EMF lines say ----------------------------------

interface CwPoint {
  namespace: string;
  name: string;
  dims: Record<string, string>;
  value: number;
  at: Date;
}
type Emit = [name: string, value: number, unit: 'Count' | 'Seconds' | 'Percent', dims: Record<string, string>, ageMs: number];

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** A week of a small organisation, as the use cases put it (lambdas/app/runs.ts, exceptions.ts, reconcile.ts). */
const WEEK: Emit[] = [
  ['RunsClosed', 1, 'Count', { Workflow: 'leaver', Status: 'EXCEPTION_OPEN' }, HOUR],
  ['RunsClosed', 1, 'Count', { Workflow: 'joiner', Status: 'COMPLETED' }, HOUR],
  ['RunsClosed', 1, 'Count', { Workflow: 'joiner', Status: 'COMPLETED' }, HOUR],
  ['RunsClosed', 1, 'Count', { Workflow: 'joiner', Status: 'COMPLETED' }, HOUR],
  ['RunsClosed', 1, 'Count', { Workflow: 'leaver', Status: 'COMPLETED' }, HOUR],
  ['RunsClosed', 1, 'Count', { Workflow: 'leaver', Status: 'COMPLETED' }, HOUR],
  ['RunsClosed', 1, 'Count', { Workflow: 'mover', Status: 'FAILED' }, 2 * DAY],
  ['TimeToDisable', 42.5, 'Seconds', { Workflow: 'leaver' }, HOUR],
  ['TimeToDisable', 300.75, 'Seconds', { Workflow: 'leaver' }, 2 * DAY],
  ['TimeToDisable', 61.2, 'Seconds', { Workflow: 'leaver' }, HOUR],
  ['RevocationCompleteness', 100, 'Percent', { Workflow: 'leaver' }, HOUR],
  ['RevocationCompleteness', 50, 'Percent', { Workflow: 'leaver' }, HOUR],
  ['RevocationCompleteness', 100, 'Percent', { Workflow: 'leaver' }, HOUR],
  ['RevocationCompleteness', 90, 'Percent', { Workflow: 'reconcile' }, HOUR],
  ['RevocationCompleteness', 0, 'Percent', { Target: 'okta', Workflow: 'reconcile' }, HOUR], // the nightly's per-target breakdown
  ['ExceptionOpened', 1, 'Count', { Target: 'okta', Kind: 'step_failed' }, HOUR],
  ['ExceptionOpened', 1, 'Count', { Target: 'slack', Kind: 'orphan' }, 2 * DAY],
  ['ExceptionOpened', 1, 'Count', { Target: 'slack', Kind: 'orphan' }, 2 * DAY],
  ['ExceptionsOpened', 1, 'Count', { Workflow: 'leaver' }, HOUR],
  ['DriftEntitlements', 0, 'Count', { Workflow: 'joiner' }, HOUR],
  ['DriftEntitlements', 0, 'Count', { Workflow: 'joiner' }, HOUR],
  ['DriftEntitlements', 0, 'Count', { Workflow: 'joiner' }, HOUR],
  ['DriftEntitlements', 2, 'Count', { Workflow: 'leaver' }, HOUR],
  ['DriftEntitlements', 0, 'Count', { Workflow: 'leaver' }, HOUR],
  ['DriftEntitlements', 1, 'Count', { Workflow: 'mover' }, 2 * DAY],
  ['DriftRate', 5, 'Percent', {}, HOUR],
  ['DriftRate', 5, 'Percent', { Target: 'okta' }, HOUR],
  ['OrphanAccounts', 2, 'Count', {}, HOUR],
];
/** Older than a week: outside the default window. */
const EARLIER: Emit[] = [
  ['RunsClosed', 1, 'Count', { Workflow: 'joiner', Status: 'FAILED' }, 8 * DAY],
  ['TimeToDisable', 9999, 'Seconds', { Workflow: 'leaver' }, 8 * DAY],
  ['ExceptionOpened', 1, 'Count', { Target: 'okta', Kind: 'drift' }, 8 * DAY],
];
const WEEK_KPIS = [
  'runs closed              7  (COMPLETED 5, EXCEPTION_OPEN 1, FAILED 1)',
  'time to disable          median 61.20 s, max 300.75 s over 3 leaver(s)',
  'revocation completeness  85.0 %',
  'exception rate           14.3 % of runs (3 exception(s) opened)',
  'drift                    3 entitlement(s) found differing at reconcile',
];

/** What CloudWatch Logs makes of the EMF lines the functions' metrics adapter writes for `points`. */
function emitted(points: Emit[]): CwPoint[] {
  const lines: string[] = [];
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  });
  try {
    const metrics = new EmfMetrics();
    for (const [name, value, unit, dims] of points) metrics.put(name, value, unit, dims);
  } finally {
    write.mockRestore();
  }
  expect(lines).toHaveLength(points.length);
  return lines.map((line, i) => {
    const doc = JSON.parse(line) as Record<string, unknown> & { _aws: { Timestamp: number; CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string }> }> } };
    const [directive] = doc._aws.CloudWatchMetrics;
    return {
      namespace: directive!.Namespace,
      name: directive!.Metrics[0]!.Name,
      dims: Object.fromEntries(directive!.Dimensions[0]!.map((d) => [d, String(doc[d])])),
      value: doc[directive!.Metrics[0]!.Name] as number,
      at: new Date(doc._aws.Timestamp - points[i]![4]),
    };
  });
}

const sameDims = (a: Record<string, string>, b: Record<string, string>) => Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

function statistic(values: number[], stat: string): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const p = /^p(\d+(?:\.\d+)?)$/.exec(stat);
  if (p) return sorted[Math.max(0, Math.ceil((Number(p[1]) / 100) * sorted.length) - 1)]; // nearest rank
  switch (stat) {
    case 'Sum':
      return values.reduce((a, b) => a + b, 0);
    case 'SampleCount':
      return values.length;
    case 'Maximum':
      return sorted.at(-1);
    case 'Minimum':
      return sorted[0];
    case 'Average':
      return values.reduce((a, b) => a + b, 0) / values.length;
  }
  throw new CloudWatchServiceException({ name: 'InvalidParameterValue', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: `The parameter Stat ${stat} is not valid.` });
}

/** GetMetricData over the points: exact dimension sets for a metric, SUM(SEARCH(…)) as the dashboard writes it. */
function cloudWatchWith(store: CwPoint[]) {
  cloudwatch.on(GetMetricDataCommand).callsFake((i: GetMetricDataCommandInput) => {
    const from = i.StartTime as Date;
    const to = i.EndTime as Date;
    const window = store.filter((p) => p.at >= from && p.at < to);
    return {
      Messages: [],
      MetricDataResults: i.MetricDataQueries!.map((q) => {
        let value: number | undefined;
        if (q.MetricStat) {
          const m = q.MetricStat.Metric!;
          const dims = Object.fromEntries(m.Dimensions!.map((d) => [d.Name!, d.Value!]));
          value = statistic(window.filter((p) => p.namespace === m.Namespace && p.name === m.MetricName && sameDims(p.dims, dims)).map((p) => p.value), q.MetricStat.Stat!);
        } else {
          const s = /^SUM\(SEARCH\('\{([^}]+)\} MetricName="([^"]+)"', '(\w+)', (\d+)\)\)$/.exec(q.Expression ?? '');
          if (!s) throw new CloudWatchServiceException({ name: 'InvalidParameterValue', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: `Unsupported expression ${q.Expression}` });
          const [namespace, ...names] = s[1]!.split(',');
          const series = new Map<string, number[]>();
          for (const p of window.filter((x) => x.namespace === namespace && x.name === s[2] && Object.keys(x.dims).sort().join() === [...names].sort().join())) {
            const key = JSON.stringify(Object.entries(p.dims).sort());
            series.set(key, [...(series.get(key) ?? []), p.value]);
          }
          const per = [...series.values()].map((v) => statistic(v, s[3]!)!);
          value = per.length ? per.reduce((a, b) => a + b, 0) : undefined;
        }
        return { Id: q.Id, Label: q.Label, StatusCode: 'Complete', Timestamps: value === undefined ? [] : [from], Values: value === undefined ? [] : [value] };
      }),
    };
  });
}

/** The local runtime's `GET /local/metrics`, for comparing the two commands. */
async function localRuntimeWith(points: Emit[]) {
  const srv = createServer((req, res) => {
    res.writeHead(req.url === '/local/metrics' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ points: points.map(([name, value, unit, dimensions, age]) => ({ name, value, unit, dimensions, at: new Date(Date.now() - age).toISOString() })) }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as { port: number }).port}`, close: () => new Promise((r) => srv.close(r)) };
}

describe('jml kpis against a deployed stack', () => {
  beforeEach(() => cloudwatch.reset());

  it('reads the four KPIs from CloudWatch over the last 7 days and prints them as the local command prints the same points', async () => {
    stackIs('Jml');
    cloudWatchWith(emitted([...WEEK, ...EARLIER]));
    const before = Date.now();
    expect(await main(['kpis', '--stack', 'Jml'])).toBe(0);
    const [header, ...lines] = out;
    expect(lines).toEqual(WEEK_KPIS);
    expect(header).toMatch(new RegExp(`^KPIs of stack Jml \\(${REGION}\\), CloudWatch namespace jml, last 7d: \\S+Z → \\S+Z$`));

    // The local runtime, given this week's points, says the same.
    const local = await localRuntimeWith(WEEK);
    try {
      vi.stubEnv('JML_URL', local.url);
      out = [];
      expect(await main(['kpis'])).toBe(0);
      expect(out).toEqual(WEEK_KPIS);
    } finally {
      await local.close();
    }

    // What was asked: one period over the window, the jml namespace, the service dimension the EMF adapter adds.
    const calls = cloudwatch.commandCalls(GetMetricDataCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]!.args[0].input;
    const [start, end] = [(input.StartTime as Date).getTime(), (input.EndTime as Date).getTime()];
    expect(end - start).toBe(7 * DAY);
    expect(end % 300_000).toBe(0);
    expect(end).toBeGreaterThanOrEqual(before);
    expect(end - before).toBeLessThanOrEqual(300_000);
    const stats = input.MetricDataQueries!.filter((q) => q.MetricStat);
    expect(stats.length).toBeGreaterThan(40);
    for (const q of stats) {
      expect(q.MetricStat!.Period).toBe(7 * 24 * 3600);
      expect(q.MetricStat!.Metric!.Namespace).toBe('jml');
      expect(q.MetricStat!.Metric!.Dimensions).toContainEqual({ Name: 'service', Value: 'jml' });
    }
    expect(input.MetricDataQueries!.filter((q) => q.Expression).map((q) => q.Expression)).toEqual([`SUM(SEARCH('{jml,Kind,Target,service} MetricName="ExceptionOpened"', 'Sum', 604800))`]);
    expect(input.MetricDataQueries!.every((q) => !('role' in q))).toBe(true);
    noSecretsIn(text() + errors());
  });

  it('--since narrows the window (and the period), --json adds it to the summary', async () => {
    stackIs('Jml');
    cloudWatchWith(emitted([...WEEK, ...EARLIER]));
    expect(await main(['kpis', '--since', '24h', '--stack', 'Jml'])).toBe(0);
    expect(out.slice(1)).toEqual([
      'runs closed              6  (COMPLETED 5, EXCEPTION_OPEN 1)',
      'time to disable          median 42.50 s, max 61.20 s over 2 leaver(s)',
      'revocation completeness  85.0 %',
      'exception rate           16.7 % of runs (1 exception(s) opened)',
      'drift                    2 entitlement(s) found differing at reconcile',
    ]);
    expect(cloudwatch.commandCalls(GetMetricDataCommand)[0]!.args[0].input.MetricDataQueries![0]!.MetricStat!.Period).toBe(86_400);

    out = [];
    expect(await main(['kpis', '--since', '30d', '--json', '--stack', 'Jml'])).toBe(0);
    const k = JSON.parse(text());
    expect(k).toMatchObject({ runsClosed: 8, byStatus: { COMPLETED: 5, EXCEPTION_OPEN: 1, FAILED: 2 }, exceptionsOpened: 4, driftEntitlements: 3, timeToDisableSeconds: { count: 4, max: 9999 } });
    expect(Date.parse(k.window.until) - Date.parse(k.window.since)).toBe(30 * DAY);
  });

  it('a stack with no runs yet, a refused GetMetricData, a window that is not one', async () => {
    stackIs('Jml');
    cloudWatchWith([]);
    expect(await main(['kpis', '--stack', 'Jml'])).toBe(0);
    expect(out.slice(1)).toEqual([
      'runs closed              0  (none)',
      'time to disable          no leavers yet',
      'revocation completeness  n/a',
      'exception rate           n/a (0 exception(s) opened)',
      'drift                    0 entitlement(s) found differing at reconcile',
    ]);

    cloudwatch.reset();
    cloudwatch.on(GetMetricDataCommand).rejects(accessDenied(CloudWatchServiceException, 'cloudwatch:GetMetricData', '*'));
    expect(await main(['kpis', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain(`Jml: cloudwatch:GetMetricData on namespace jml refused for arn:aws:sts::${ACCOUNT}:assumed-role/jml-operator/ops (access key …${operator.accessKeyId.slice(-4)})`);
    expect(errors()).toContain('— grant cloudwatch:GetMetricData on "*" (GetMetricData has no resource-level permissions)');

    err = [];
    expect(await main(['kpis', '--since', 'a week', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain('--since takes a duration like 30m, 12h or 7d (got "a week")');
    err = [];
    expect(await main(['kpis', '--since', '500d', '--stack', 'Jml'])).toBe(2);
    expect(errors()).toContain('--since 500d is out of range: from 5m00s to 455d');
    err = [];
    expect(await main(['kpis', '--since', '7d'])).toBe(2);
    expect(errors()).toContain("--since applies to a deployed stack's CloudWatch metrics");
    noSecretsIn(text() + errors());
  });
});
