/**
 * The single-table design of the run ledger, as plain data: key attribute names, index names,
 * the TTL attribute, the key shapes of each item kind and the CreateTable input.
 *
 * This is the one definition of the table. The DynamoDB adapter, the local dynalite starter and
 * the CDK stack all read it, so it holds data and pure functions only (no CDK, no client).
 * `docs/ledger.md` explains the items and the access patterns.
 */
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

/** Base table keys (both strings). */
export const TABLE_KEYS = { pk: 'pk', sk: 'sk' } as const;

/**
 * GSI1 — "children by owner": runs of an employee (`EMP#…`), approvals and exceptions of a run
 * (`RUN#…`). Sort key starts with a sortable timestamp so queries come back in time order.
 */
export const GSI1 = { indexName: 'gsi1', pk: 'gsi1pk', sk: 'gsi1sk' } as const;

/** GSI2 — "by status": runs by run status (`STATUS#…`), exceptions by status (`EXCSTATUS#…`). */
export const GSI2 = { indexName: 'gsi2', pk: 'gsi2pk', sk: 'gsi2sk' } as const;

/**
 * Sparse index holding person items only (`personId` is set on persons and nothing else), so
 * the nightly reconciliation pages through persons without reading runs, steps or approvals.
 */
export const PERSONS_INDEX = { indexName: 'persons', pk: 'personId' } as const;

/**
 * TTL attribute (epoch seconds, a Number). DynamoDB deletes expired items some time after
 * expiry (up to days later) and dynalite never does, so every read path also ignores an item
 * whose `expiresAt` is a Number in the past. Items whose `expiresAt` is not a Number (approvals
 * carry an ISO-8601 string there) are ignored by the TTL process, exactly as DynamoDB does.
 */
export const TTL_ATTRIBUTE = 'expiresAt';

/** Item kind marker, stored on every item (handy in the console and in exports). */
export const ENTITY_ATTRIBUTE = 'entity';

/** Attributes that belong to the table layout, never to a record. */
export const LAYOUT_ATTRIBUTES: readonly string[] = [
  TABLE_KEYS.pk,
  TABLE_KEYS.sk,
  GSI1.pk,
  GSI1.sk,
  GSI2.pk,
  GSI2.sk,
  PERSONS_INDEX.pk,
  ENTITY_ATTRIBUTE,
];

/** DynamoDB's hard item-size limit (attribute names + values, UTF-8). */
export const MAX_ITEM_BYTES = 400 * 1024;

export type Entity = 'person' | 'run' | 'step' | 'approval' | 'exception' | 'link' | 'meta';

export interface ItemKey {
  pk: string;
  sk: string;
}

/** Key builders: the only place that knows how an item kind maps to keys. */
export const keys = {
  person: (employeeId: string): ItemKey => ({ pk: `PERSON#${employeeId}`, sk: 'PROFILE' }),
  run: (runId: string): ItemKey => ({ pk: `RUN#${runId}`, sk: 'RUN' }),
  step: (runId: string, stepId: string): ItemKey => ({ pk: `RUN#${runId}`, sk: `STEP#${stepId}` }),
  approval: (approvalId: string): ItemKey => ({ pk: `APPROVAL#${approvalId}`, sk: 'APPROVAL' }),
  exception: (exceptionId: string): ItemKey => ({ pk: `EXC#${exceptionId}`, sk: 'EXC' }),
  /** The target name is URI-encoded so a `#` in it cannot make two links share a key. */
  link: (target: string, accountId: string): ItemKey => ({ pk: `LINK#${encodeURIComponent(target)}#${accountId}`, sk: 'LINK' }),
  meta: (key: string): ItemKey => ({ pk: `META#${key}`, sk: 'META' }),
  /**
   * An exception whose ITSM ticket is still to be raised or closed: one small partition, so the
   * nightly retry reads only these, however many exceptions the ledger has seen.
   */
  ticketDue: (exceptionId: string): ItemKey => ({ pk: TICKET_DUE_PARTITION, sk: `EXC#${exceptionId}` }),
} as const;

export const TICKET_DUE_PARTITION = 'TICKETDUE';

/** Sort-key prefix of step items inside a run's partition. */
export const STEP_SK_PREFIX = 'STEP#';

/** Partition values of GSI1 (the owner of the items it groups). */
export const ownerPartition = {
  employee: (employeeId: string) => `EMP#${employeeId}`,
  run: (runId: string) => `RUN#${runId}`,
} as const;

/** Partition values of the status index. */
export const statusPartition = {
  run: (status: string) => `STATUS#${status}`,
  exception: (status: string) => `EXCSTATUS#${status}`,
} as const;

/** Index key values. Sort keys lead with an ISO-8601 UTC timestamp, so they sort by time. */
export const indexKeys = {
  runByEmployee: (employeeId: string, createdAt: string, runId: string) => ({
    [GSI1.pk]: ownerPartition.employee(employeeId),
    [GSI1.sk]: `${createdAt}#${runId}`,
  }),
  runByStatus: (status: string, updatedAt: string, runId: string) => ({
    [GSI2.pk]: statusPartition.run(status),
    [GSI2.sk]: `${updatedAt}#${runId}`,
  }),
  approvalByRun: (runId: string, requestedAt: string, approvalId: string) => ({
    [GSI1.pk]: ownerPartition.run(runId),
    [GSI1.sk]: `APPROVAL#${requestedAt}#${approvalId}`,
  }),
  exceptionByRun: (runId: string, openedAt: string, exceptionId: string) => ({
    [GSI1.pk]: ownerPartition.run(runId),
    [GSI1.sk]: `EXC#${openedAt}#${exceptionId}`,
  }),
  exceptionByStatus: (status: string, openedAt: string, exceptionId: string) => ({
    [GSI2.pk]: statusPartition.exception(status),
    [GSI2.sk]: `${openedAt}#${exceptionId}`,
  }),
} as const;

/** GSI1 sort-key prefixes that tell approvals and exceptions of one run apart. */
export const GSI1_SK_PREFIX = { approval: 'APPROVAL#', exception: 'EXC#' } as const;

/**
 * CreateTable input: on-demand billing, string keys, three all-projected GSIs. The CDK stack
 * maps the same data to `dynamodb.TableV2` (and adds TTL on `TTL_ATTRIBUTE`, point-in-time
 * recovery and encryption, which are not CreateTable parameters dynalite understands).
 */
export function createTableInput(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: TABLE_KEYS.pk, AttributeType: 'S' },
      { AttributeName: TABLE_KEYS.sk, AttributeType: 'S' },
      { AttributeName: GSI1.pk, AttributeType: 'S' },
      { AttributeName: GSI1.sk, AttributeType: 'S' },
      { AttributeName: GSI2.pk, AttributeType: 'S' },
      { AttributeName: GSI2.sk, AttributeType: 'S' },
      { AttributeName: PERSONS_INDEX.pk, AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: TABLE_KEYS.pk, KeyType: 'HASH' },
      { AttributeName: TABLE_KEYS.sk, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: GSI1.indexName,
        KeySchema: [
          { AttributeName: GSI1.pk, KeyType: 'HASH' },
          { AttributeName: GSI1.sk, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: GSI2.indexName,
        KeySchema: [
          { AttributeName: GSI2.pk, KeyType: 'HASH' },
          { AttributeName: GSI2.sk, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: PERSONS_INDEX.indexName,
        KeySchema: [{ AttributeName: PERSONS_INDEX.pk, KeyType: 'HASH' }],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}
