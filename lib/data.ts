/**
 * Stateful resources: the run ledger table and the evidence bucket (and the key that encrypts
 * the bucket and the alarm topic). Both are retained when the stack is deleted.
 *
 * The table is built from `createTableInput` (`lambdas/aws/table.ts`), the one definition the
 * adapter and the local dynalite starter also use: same key names, same GSIs, plus what
 * CreateTable cannot say (TTL on `expiresAt`, point-in-time recovery, deletion protection).
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { TTL_ATTRIBUTE, createTableInput } from '#aws/table';

export interface DataProps {
  evidence: { retentionDays: number; lockMode: 'GOVERNANCE' | 'COMPLIANCE' };
}

/** `createTableInput` → TableV2 props (keys, GSIs, billing); throws on anything it cannot map. */
export function tablePropsFromDesign(): dynamodb.TablePropsV2 {
  const input = createTableInput('jml');
  const types = new Map((input.AttributeDefinitions ?? []).map((a) => [a.AttributeName!, a.AttributeType!]));
  const attribute = (name: string): dynamodb.Attribute => {
    const t = types.get(name);
    const type = t === 'S' ? dynamodb.AttributeType.STRING : t === 'N' ? dynamodb.AttributeType.NUMBER : t === 'B' ? dynamodb.AttributeType.BINARY : undefined;
    if (!type) throw new Error(`table design: attribute ${name} has no definition`);
    return { name, type };
  };
  const keyOf = (schema: Array<{ AttributeName?: string; KeyType?: string }> | undefined) => {
    const hash = schema?.find((k) => k.KeyType === 'HASH')?.AttributeName;
    const range = schema?.find((k) => k.KeyType === 'RANGE')?.AttributeName;
    if (!hash) throw new Error('table design: key schema without HASH key');
    return { partitionKey: attribute(hash), ...(range ? { sortKey: attribute(range) } : {}) };
  };
  if (input.BillingMode !== 'PAY_PER_REQUEST') throw new Error('table design: expected on-demand billing');
  return {
    ...keyOf(input.KeySchema),
    billing: dynamodb.Billing.onDemand(),
    globalSecondaryIndexes: (input.GlobalSecondaryIndexes ?? []).map((g) => {
      if (g.Projection?.ProjectionType !== 'ALL') throw new Error(`table design: index ${g.IndexName} must project ALL`);
      return { indexName: g.IndexName!, ...keyOf(g.KeySchema), projectionType: dynamodb.ProjectionType.ALL };
    }),
    timeToLiveAttribute: TTL_ATTRIBUTE,
  };
}

export class Data extends Construct {
  readonly table: dynamodb.TableV2;
  readonly evidenceBucket: s3.Bucket;
  readonly accessLogsBucket: s3.Bucket;
  /** Encrypts the evidence bucket and the alarm topic. */
  readonly key: kms.Key;
  readonly evidenceLock: { mode: 'GOVERNANCE' | 'COMPLIANCE'; retainDays: number };

  constructor(scope: Construct, id: string, props: DataProps) {
    super(scope, id);
    this.key = new kms.Key(this, 'Key', {
      description: 'jml: evidence bucket and alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // CloudWatch alarms publish to the encrypted alarm topic.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
      }),
    );

    this.table = new dynamodb.TableV2(this, 'Ledger', {
      ...tablePropsFromDesign(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      encryption: dynamodb.TableEncryptionV2.awsManagedKey(),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      lifecycleRules: [{ expiration: Duration.days(400), noncurrentVersionExpiration: Duration.days(30) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.evidenceLock = { mode: props.evidence.lockMode, retainDays: props.evidence.retentionDays };
    const retention = Duration.days(props.evidence.retentionDays);
    this.evidenceBucket = new s3.Bucket(this, 'Evidence', {
      versioned: true,
      objectLockEnabled: true,
      objectLockDefaultRetention:
        props.evidence.lockMode === 'COMPLIANCE' ? s3.ObjectLockRetention.compliance(retention) : s3.ObjectLockRetention.governance(retention),
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'evidence/',
      lifecycleRules: [{ abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
