/**
 * Entry wiring of the evidence store (S3 with Object Lock) for the Close Lambda: bucket, Object
 * Lock mode and retention, and the expected bucket owner, from `JML_EVIDENCE_*`.
 */
import type { EvidenceStore } from '#core/evidence-store';
import type { WiringContext } from './bootstrap.ts';
import { ENV, required } from './config.ts';
import { s3EvidenceStore, s3Sdk } from './evidence-store.ts';

/** The S3 client is created on the first evidence call (most invocations of most functions write none). */
export function wireEvidence({ config }: WiringContext): EvidenceStore {
  const e = required(config.evidence, ENV.evidenceBucket, 'the evidence bucket');
  return s3EvidenceStore({
    client: async () => new (await s3Sdk()).S3Client({}),
    bucket: e.bucket,
    ...(e.objectLock ? { objectLock: e.objectLock } : {}),
    ...(e.expectedBucketOwner ? { expectedBucketOwner: e.expectedBucketOwner } : {}),
  });
}
