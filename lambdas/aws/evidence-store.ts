/**
 * Evidence bundles in S3 (Object Lock). The port and the storage protocol (layout, write order,
 * per-person chain index) are in `#core/evidence-store`; this file is the S3 half of it.
 *
 * Every PutObject carries:
 *  - `ChecksumAlgorithm: SHA256` + `ChecksumSHA256` (base64 of the same sha256 the manifest lists
 *    in hex): S3 refuses the upload if the bytes it received differ, and stores the checksum so
 *    GetObject (`ChecksumMode: ENABLED`) checks it on the way back. Object Lock uploads need a
 *    content checksum anyway.
 *  - `ObjectLockMode` + `ObjectLockRetainUntilDate` when configured (otherwise the bucket's default
 *    retention applies). COMPLIANCE: nobody, root included, can delete or overwrite a locked
 *    version before the date; GOVERNANCE: principals with s3:BypassGovernanceRetention can.
 *  - `ExpectedBucketOwner` when configured, so a bucket name taken over by another account is
 *    never written to.
 * Index entries and run pointers are created with `If-None-Match: *` (S3 answers 412, or 409 for
 * a concurrent create), which is what keeps one person's chain from forking.
 */
import type { PutObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import { ChainedEvidenceStore, ObjectExists, type EvidenceStore, type ObjectBackend, type PutOptions } from '#core/evidence-store';
import { once, type Lazy } from './lazy.ts';

/** The S3 client and commands, loaded on the first evidence call (lazy.ts). */
export const s3Sdk = once(() => import('@aws-sdk/client-s3'));

export type { EvidenceStore, ObjectBackend, PersonBundleRef, StoredBundle } from '#core/evidence-store';
export { EvidenceBundleExists, EvidenceChainConflict, EvidenceStoreCorrupt } from '#core/evidence-store';

export interface ObjectLockOptions {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  /** Retention per object version, counted from the write. */
  retainDays: number;
}

export interface S3EvidenceStoreOptions {
  /** A ready client (tests) or a factory called once, on the first evidence call (Lambda). */
  client: Lazy<S3Client>;
  bucket: string;
  expectedBucketOwner?: string;
  objectLock?: ObjectLockOptions;
  /** Clock for the retain-until date (tests). */
  now?: () => number;
}

const DAY_MS = 86_400_000;

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string | undefined {
  return (err as { name?: string })?.name;
}

export class S3ObjectBackend implements ObjectBackend {
  private readonly now: () => number;
  private readonly client: () => Promise<S3Client>;

  constructor(private readonly options: S3EvidenceStoreOptions) {
    if (!options.bucket) throw new TypeError('S3 evidence store: bucket is required');
    const lock = options.objectLock;
    if (lock && !(Number.isInteger(lock.retainDays) && lock.retainDays > 0)) {
      throw new TypeError(`S3 evidence store: objectLock.retainDays must be a positive whole number of days, got ${lock.retainDays}`);
    }
    this.now = options.now ?? Date.now;
    this.client = once(options.client);
  }

  async put(key: string, body: Uint8Array, put: PutOptions): Promise<void> {
    const { bucket, expectedBucketOwner, objectLock } = this.options;
    const input: PutObjectCommandInput = {
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentType: put.contentType,
      ChecksumAlgorithm: 'SHA256',
      ChecksumSHA256: Buffer.from(put.sha256, 'hex').toString('base64'),
      ...(expectedBucketOwner ? { ExpectedBucketOwner: expectedBucketOwner } : {}),
      ...(objectLock
        ? { ObjectLockMode: objectLock.mode, ObjectLockRetainUntilDate: new Date(this.now() + objectLock.retainDays * DAY_MS) }
        : {}),
      ...(put.ifAbsent ? { IfNoneMatch: '*' } : {}),
    };
    const [{ PutObjectCommand }, client] = await Promise.all([s3Sdk(), this.client()]);
    try {
      await client.send(new PutObjectCommand(input));
    } catch (err) {
      const status = statusOf(err);
      const name = nameOf(err);
      if (put.ifAbsent && (status === 412 || status === 409 || name === 'PreconditionFailed' || name === 'ConditionalRequestConflict')) {
        throw new ObjectExists(key);
      }
      throw err;
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    const { bucket, expectedBucketOwner } = this.options;
    const [{ GetObjectCommand }, client] = await Promise.all([s3Sdk(), this.client()]);
    try {
      const out = await client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ChecksumMode: 'ENABLED',
          ...(expectedBucketOwner ? { ExpectedBucketOwner: expectedBucketOwner } : {}),
        }),
      );
      if (!out.Body) throw new Error(`S3 GetObject ${key}: Body is missing from the response`);
      return await out.Body.transformToByteArray();
    } catch (err) {
      if (nameOf(err) === 'NoSuchKey' || statusOf(err) === 404) return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const { bucket, expectedBucketOwner } = this.options;
    const keys: string[] = [];
    let token: string | undefined;
    const [{ ListObjectsV2Command }, client] = await Promise.all([s3Sdk(), this.client()]);
    do {
      const out = await client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ...(token ? { ContinuationToken: token } : {}),
          ...(expectedBucketOwner ? { ExpectedBucketOwner: expectedBucketOwner } : {}),
        }),
      );
      for (const [i, o] of (out.Contents ?? []).entries()) {
        if (typeof o.Key !== 'string') throw new Error(`S3 ListObjectsV2 ${prefix}: Contents[${i}].Key is missing from the response`);
        keys.push(o.Key);
      }
      if (out.IsTruncated && !out.NextContinuationToken) {
        throw new Error(`S3 ListObjectsV2 ${prefix}: NextContinuationToken is missing from a truncated response`);
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }
}

export function s3EvidenceStore(options: S3EvidenceStoreOptions): EvidenceStore {
  return new ChainedEvidenceStore(new S3ObjectBackend(options));
}
