/**
 * Entry wiring of the evidence store (S3 with Object Lock) for the Close Lambda: bucket, Object
 * Lock mode and retention, and the expected bucket owner, from `JML_EVIDENCE_*`.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { EvidenceStore } from '#core/evidence-store';
import type { WiringContext } from './bootstrap.ts';
import { ENV, required } from './config.ts';
import { s3EvidenceStore } from './evidence-store.ts';

export function wireEvidence({ config }: WiringContext): EvidenceStore {
  const e = required(config.evidence, ENV.evidenceBucket, 'the evidence bucket');
  return s3EvidenceStore({
    client: new S3Client({}),
    bucket: e.bucket,
    ...(e.objectLock ? { objectLock: e.objectLock } : {}),
    ...(e.expectedBucketOwner ? { expectedBucketOwner: e.expectedBucketOwner } : {}),
  });
}
