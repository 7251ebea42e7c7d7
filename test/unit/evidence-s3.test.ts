import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type ListObjectsV2CommandInput,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { sdkStreamMixin } from '@smithy/core/serde';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { EvidenceChainConflict, s3EvidenceStore, type EvidenceStore } from '#aws/evidence-store';
import { EVIDENCE_FILES, buildEvidenceBundle, verifyBundle, type EvidenceBundle, type EvidenceInput } from '#core/evidence';
import { verifyPersonChain } from '#core/evidence-store';

const BUCKET = 'acme-jml-evidence';
const OWNER = '111122223333';
const NOW = Date.parse('2026-03-02T09:15:10Z');
const s3 = mockClient(S3Client);

function input(runId: string, closedAt: string, previousManifestSha256: string | null): EvidenceInput {
  return {
    runId,
    employeeId: 'E2002',
    lifecycle: 'leaver',
    status: 'COMPLETED',
    closedAt,
    rawEvent: { body: JSON.stringify({ eventId: `evt-${runId}`, eventType: 'termination', worker: { employeeId: 'E2002' } }), receivedAt: closedAt },
    plan: null,
    desired: null,
    approvals: [],
    executionLog: [
      {
        stepId: '001-okta',
        target: 'okta',
        outcome: 'ok',
        startedAt: closedAt,
        finishedAt: closedAt,
        changes: [{ target: 'okta', op: 'disable', accountId: '00u2', changed: true, requestIds: ['XyZ-1'] }],
      },
    ],
    idpEvidence: [],
    reconciliation: { checkedAt: closedAt, targets: [{ target: 'okta', result: 'match', desiredStatus: 'disabled', actualStatus: 'disabled' }] },
    exceptions: [],
    kpis: { timeToDisableMs: 30_000 },
    timeline: [{ phase: 'closed', at: closedAt }],
    previousManifestSha256,
  };
}

/**
 * A bucket behind the mocked client: PutObject checks the checksum it was sent and honours
 * If-None-Match like S3 (412 PreconditionFailed); GetObject answers NoSuchKey; ListObjectsV2 pages.
 */
function fakeBucket(pageSize = 1000) {
  const objects = new Map<string, Uint8Array>();
  s3.on(PutObjectCommand).callsFake((i: PutObjectCommandInput) => {
    const body = i.Body as Uint8Array;
    const sent = createHash('sha256').update(body).digest('base64');
    if (i.ChecksumSHA256 !== sent) {
      throw new S3ServiceException({ name: 'BadDigest', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'The SHA256 you specified did not match the calculated checksum.' });
    }
    if (i.IfNoneMatch === '*' && objects.has(i.Key!)) {
      throw new S3ServiceException({ name: 'PreconditionFailed', $fault: 'client', $metadata: { httpStatusCode: 412 }, message: 'At least one of the pre-conditions you specified did not hold' });
    }
    objects.set(i.Key!, body);
    return { ETag: `"${createHash('md5').update(body).digest('hex')}"`, ChecksumSHA256: sent };
  });
  s3.on(GetObjectCommand).callsFake(({ Key }: { Key: string }) => {
    const body = objects.get(Key);
    if (!body) throw new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: 'The specified key does not exist.' });
    return { Body: sdkStreamMixin(Readable.from([Buffer.from(body)])), ContentLength: body.length };
  });
  s3.on(ListObjectsV2Command).callsFake((i: ListObjectsV2CommandInput) => {
    const keys = [...objects.keys()].filter((k) => k.startsWith(i.Prefix ?? '')).sort();
    const start = i.ContinuationToken ? Number(i.ContinuationToken) : 0;
    const page = keys.slice(start, start + pageSize);
    const more = start + pageSize < keys.length;
    return {
      Contents: page.map((Key) => ({ Key, Size: objects.get(Key)!.length })),
      KeyCount: page.length,
      IsTruncated: more,
      ...(more ? { NextContinuationToken: String(start + pageSize) } : {}),
    };
  });
  return objects;
}

const puts = () => s3.commandCalls(PutObjectCommand).map((c) => c.args[0].input);

describe('S3 evidence store', () => {
  let store: EvidenceStore;
  let bundle: EvidenceBundle;

  beforeEach(() => {
    s3.reset();
    store = s3EvidenceStore({
      client: new S3Client({ region: 'eu-west-1' }),
      bucket: BUCKET,
      expectedBucketOwner: OWNER,
      objectLock: { mode: 'COMPLIANCE', retainDays: 2557 },
      now: () => NOW,
    });
    bundle = buildEvidenceBundle(input('run-11111111111111111111111111111111', '2026-03-02T09:15:07Z', null));
  });

  it('sends each file with its SHA-256 checksum, Object Lock retention and the bucket owner, manifest last', async () => {
    fakeBucket();
    expect(await store.putBundle(bundle)).toEqual({ prefix: bundle.prefix, manifestSha256: bundle.manifestSha256, seq: 1, written: true });

    const sent = puts();
    const files = sent.slice(0, 8);
    expect(files.map((p) => p.Key)).toEqual([...EVIDENCE_FILES, 'manifest.json'].map((n) => `${bundle.prefix}${n}`));
    const retainUntil = new Date(NOW + 2557 * 86_400_000);
    for (const p of sent) {
      expect(p).toMatchObject({
        Bucket: BUCKET,
        ExpectedBucketOwner: OWNER,
        ChecksumAlgorithm: 'SHA256',
        ObjectLockMode: 'COMPLIANCE',
        ObjectLockRetainUntilDate: retainUntil,
      });
    }
    // The checksum S3 checks is the manifest's hex sha256, in base64.
    for (const entry of bundle.manifest.files) {
      const put = files.find((p) => p.Key === `${bundle.prefix}${entry.name}`)!;
      expect(put.ChecksumSHA256).toBe(Buffer.from(entry.sha256, 'hex').toString('base64'));
      expect(put.ContentType).toBe(entry.name.endsWith('.html') ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8');
      expect(put.IfNoneMatch).toBeUndefined();
    }
    // Then the person's chain entry and the run pointer, create-only.
    expect(sent.slice(8).map((p) => [p.Key, p.IfNoneMatch])).toEqual([
      ['evidence/persons/E2002/00000001.json', '*'],
      ['evidence/runs/run-11111111111111111111111111111111.json', '*'],
    ]);
    expect(JSON.parse(Buffer.from(sent[8]!.Body as Uint8Array).toString())).toEqual({
      version: 1,
      seq: 1,
      runId: bundle.manifest.runId,
      employeeId: 'E2002',
      prefix: bundle.prefix,
      closedAt: '2026-03-02T09:15:07Z',
      manifestSha256: bundle.manifestSha256,
      previousManifestSha256: null,
    });
  });

  it('leaves retention to the bucket default when no Object Lock options are configured', async () => {
    fakeBucket();
    const plain = s3EvidenceStore({ client: new S3Client({ region: 'eu-west-1' }), bucket: BUCKET });
    await plain.putBundle(bundle);
    for (const p of puts()) {
      expect(p).not.toHaveProperty('ObjectLockMode');
      expect(p).not.toHaveProperty('ObjectLockRetainUntilDate');
      expect(p).not.toHaveProperty('ExpectedBucketOwner');
      expect(p.ChecksumAlgorithm).toBe('SHA256');
    }
  });

  it('reads back what it wrote, with checksum validation requested, and the bundle verifies', async () => {
    fakeBucket();
    await store.putBundle(bundle);
    const loaded = await store.loadBundle(bundle.prefix);
    expect(verifyBundle(loaded, { expectedManifestSha256: bundle.manifestSha256 })).toMatchObject({ ok: true, problems: [] });
    expect(Buffer.from((await store.getFile(bundle.manifest.runId, 'summary.html'))!).toString()).toBe(
      bundle.files.find((f) => f.name === 'summary.html')!.body,
    );
    const gets = s3.commandCalls(GetObjectCommand).map((c) => c.args[0].input);
    expect(gets.length).toBeGreaterThan(0);
    for (const g of gets) expect(g).toMatchObject({ Bucket: BUCKET, ChecksumMode: 'ENABLED', ExpectedBucketOwner: OWNER });
  });

  it('answers null for an absent object and the chain head of a person with no bundle', async () => {
    fakeBucket();
    expect(await store.getFile(bundle.prefix, 'plan.json')).toBeNull();
    expect(await store.getFile('run-22222222222222222222222222222222', 'plan.json')).toBeNull();
    expect(await store.latestManifestSha256('E2002')).toBeNull();
  });

  it('follows ListObjectsV2 continuation tokens across pages', async () => {
    fakeBucket(2);
    let previous: string | null = null;
    const runs = ['run-a1', 'run-a2', 'run-a3', 'run-a4', 'run-a5'];
    for (const [i, runId] of runs.entries()) {
      const b = buildEvidenceBundle(input(runId, `2026-0${i + 1}-10T10:00:00Z`, previous));
      await store.putBundle(b);
      previous = b.manifestSha256;
    }
    expect(await store.latestManifestSha256('E2002')).toBe(previous);
    expect((await store.personBundles('E2002')).map((e) => e.runId)).toEqual(runs);
    expect(await store.listRunFiles('evidence/2026/05/run-a5/')).toHaveLength(8);
    const lists = s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input);
    expect(lists.some((l) => l.ContinuationToken === '4')).toBe(true);
    expect(await verifyPersonChain(store, 'E2002')).toEqual({ ok: true, problems: [], bundles: 5 });
  });

  it('turns a lost race for the chain entry (412 Precondition Failed) into EvidenceChainConflict', async () => {
    const objects = fakeBucket();
    // Another close committed position 1 between this store's read of the index and its write.
    s3.on(ListObjectsV2Command).resolvesOnce({ Contents: [], KeyCount: 0, IsTruncated: false });
    objects.set('evidence/persons/E2002/00000001.json', new TextEncoder().encode('{}'));
    const err = await store.putBundle(bundle).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EvidenceChainConflict);
    expect((err as Error).message).toBe(
      'another evidence bundle of E2002 was committed at position 1 while run-11111111111111111111111111111111 was being stored: rebuild it against the latest and retry',
    );
    expect(puts().at(-1)).toMatchObject({ Key: 'evidence/persons/E2002/00000001.json', IfNoneMatch: '*' });
    expect(objects.has('evidence/runs/run-11111111111111111111111111111111.json')).toBe(false);
  });

  it('passes other S3 failures through unchanged', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [], IsTruncated: false });
    s3.on(PutObjectCommand).rejects(
      new S3ServiceException({ name: 'AccessDenied', $fault: 'client', $metadata: { httpStatusCode: 403 }, message: 'Access Denied' }),
    );
    await expect(store.putBundle(bundle)).rejects.toMatchObject({ name: 'AccessDenied' });
    expect(puts()).toHaveLength(1); // stopped at the first file
  });

  it('refuses a truncated listing without a continuation token, naming the field', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [], IsTruncated: true });
    await expect(store.latestManifestSha256('E2002')).rejects.toThrow(
      'S3 ListObjectsV2 evidence/persons/E2002/: NextContinuationToken is missing from a truncated response',
    );
  });

  it('rejects a retention that is not a whole number of days', () => {
    expect(() => s3EvidenceStore({ client: new S3Client({}), bucket: BUCKET, objectLock: { mode: 'GOVERNANCE', retainDays: 0 } })).toThrow(
      /retainDays must be a positive whole number/,
    );
  });
});
