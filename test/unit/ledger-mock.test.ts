/**
 * Request shapes the ledger sends to DynamoDB (aws-sdk-client-mock on the ledger's client; the
 * ledger marshals native values itself, so the wire shapes are unmarshalled here to read them).
 * Behaviour against a real DynamoDB API lives in test/integration/ledger.test.ts; these pin the
 * parts a reviewer of IAM policies, CloudTrail or capacity would read: conditions, index names,
 * update expressions, pagination keys.
 */
import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { ConditionFailed, type RunRecord } from '#core/ledger';
import { DynamoLedger, LEDGER_CLIENT_CONFIG } from '#aws/ledger.dynamodb';
import { PERSONS_INDEX } from '#aws/table';

const client = new DynamoDBClient({ region: 'local', ...LEDGER_CLIENT_CONFIG });
const ddb = mockClient(client);
const NOW = new Date('2030-03-01T09:00:00.000Z');
const ledger = new DynamoLedger({ client, tableName: 'jml-ledger', now: () => NOW });

/** Native values of a marshalled map (an item, a key, expression values). */
const native = (m: Record<string, AttributeValue> | undefined) => unmarshall(m ?? {});

const conditionFailed = () => new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

const run: RunRecord = {
  runId: 'run-1',
  idempotencyKey: 'k',
  employeeId: 'E1001',
  eventId: 'evt-1',
  eventType: 'hire',
  lifecycle: 'joiner',
  status: 'RECEIVED',
  eventHash: 'a'.repeat(64),
  rawEvent: '{}',
  event: { eventType: 'hire' },
  effectiveAt: '2030-01-06T09:00:00.000Z',
  occurredAt: '2030-01-01T08:00:00.000Z',
  mappingVersion: 'v1',
  createdAt: '2030-01-01T08:00:01.000Z',
  updatedAt: '2030-01-01T08:00:01.000Z',
  plan: { targets: ['okta'] },
};

beforeEach(() => {
  ddb.reset();
});

describe('DynamoLedger request shapes', () => {
  it('createRun is one conditional put on absence of the key, with both index keys', async () => {
    ddb.on(PutItemCommand).resolvesOnce({}).rejectsOnce(conditionFailed());
    expect(await ledger.createRun(run)).toBe(true);
    expect(await ledger.createRun(run)).toBe(false);

    const calls = ddb.commandCalls(PutItemCommand);
    expect(calls).toHaveLength(2);
    const input = calls[0]!.args[0].input;
    expect(input.ConditionExpression).toBe('attribute_not_exists(pk)');
    expect(input.TableName).toBe('jml-ledger');
    expect(native(input.Item)).toMatchObject({
      pk: 'RUN#run-1',
      sk: 'RUN',
      gsi1pk: 'EMP#E1001',
      gsi1sk: '2030-01-01T08:00:01.000Z#run-1',
      gsi2pk: 'STATUS#RECEIVED',
      gsi2sk: '2030-01-01T08:00:01.000Z#run-1',
      plan: '{"targets":["okta"]}',
    });
    expect(ddb.calls()).toHaveLength(2);
  });

  it('updateRun sends SET with placeholders, moves the status index, and guards the from-status', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    await ledger.updateRun('run-1', { status: 'PLANNED', plan: { targets: [] }, statusReason: undefined }, ['RECEIVED', 'SCHEDULED']);

    const input = ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input;
    const names = input.ExpressionAttributeNames!;
    const values = native(input.ExpressionAttributeValues);
    const byName = Object.fromEntries(Object.entries(names).map(([ph, attr]) => [attr, ph]));
    // Every attribute goes through a name placeholder (`status` is a reserved word).
    expect(Object.values(names).sort()).toEqual(['gsi2pk', 'gsi2sk', 'plan', 'status', 'updatedAt']);
    expect(input.UpdateExpression).toMatch(/^SET /);
    expect(input.UpdateExpression).not.toMatch(/\bREMOVE\b|statusReason/);
    expect(values[input.UpdateExpression!.match(new RegExp(`${byName.gsi2pk} = (:v\\d+)`))![1]!]).toBe('STATUS#PLANNED');
    expect(values[input.UpdateExpression!.match(new RegExp(`${byName.gsi2sk} = (:v\\d+)`))![1]!]).toBe('2030-03-01T09:00:00.000Z#run-1');
    expect(values[input.UpdateExpression!.match(new RegExp(`${byName.plan} = (:v\\d+)`))![1]!]).toBe('{"targets":[]}');
    expect(input.ConditionExpression).toMatch(new RegExp(`^attribute_exists\\(pk\\) AND ${byName.status} IN \\(:v\\d+, :v\\d+\\)$`));
    const inValues = input.ConditionExpression!.match(/IN \((.*)\)/)![1]!.split(', ').map((ph) => values[ph]);
    expect(inValues).toEqual(['RECEIVED', 'SCHEDULED']);
    // The run (event, plan, timeline) is not sent back after the write.
    expect(input.ReturnValues).toBeUndefined();
  });

  it('a failed decision reads the approval once to say why', async () => {
    ddb.on(UpdateItemCommand).rejects(conditionFailed());
    ddb.on(GetItemCommand).resolves({
      Item: marshall({
        pk: 'APPROVAL#ap-1',
        sk: 'APPROVAL',
        approvalId: 'ap-1',
        runId: 'run-1',
        status: 'PENDING',
        expiresAt: '2030-03-01T08:00:00.000Z',
        request: '{}',
      }),
    });
    const decision = ledger.decideApproval('ap-1', { status: 'APPROVED', decidedAt: NOW.toISOString() }, NOW.toISOString());
    await expect(decision).rejects.toBeInstanceOf(ConditionFailed);
    await expect(decision).rejects.toThrow('approval ap-1 expired at 2030-03-01T08:00:00.000Z');
    const update = ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input;
    expect(update.ConditionExpression).toMatch(/^attribute_exists\(pk\) AND #n\d+ = :v\d+ AND #n\d+ > :v\d+$/);
    const read = ddb.commandCalls(GetItemCommand)[0]!.args[0].input;
    expect(native(read.Key)).toEqual({ pk: 'APPROVAL#ap-1', sk: 'APPROVAL' });
    expect(read.ConsistentRead).toBe(true);
  });

  it('reads asked for at once are one strongly consistent BatchGetItem; keys left unprocessed are asked for again', async () => {
    const item = (pk: string, sk: string, extra: object) => marshall({ pk, sk, ...extra });
    ddb
      .on(BatchGetItemCommand)
      .resolvesOnce({
        Responses: { 'jml-ledger': [item('META#count', 'META', { value: '{"n":3}' })] },
        UnprocessedKeys: { 'jml-ledger': { Keys: [marshall({ pk: 'RUN#run-1', sk: 'RUN' })], ConsistentRead: true } },
      })
      .resolvesOnce({ Responses: { 'jml-ledger': [] } });
    const [missing, count] = await Promise.all([ledger.getRun('run-1'), ledger.getMeta('count'), ledger.getMeta('count')]);
    expect(missing).toBeNull();
    expect(count).toEqual({ n: 3 });
    const [first, second] = ddb.commandCalls(BatchGetItemCommand).map((c) => c.args[0].input);
    const keysOf = (input: typeof first) => ({ ...input!.RequestItems!['jml-ledger']!, Keys: input!.RequestItems!['jml-ledger']!.Keys!.map(native) });
    expect(Object.keys(first!.RequestItems!)).toEqual(['jml-ledger']);
    expect(keysOf(first)).toEqual({ Keys: [{ pk: 'RUN#run-1', sk: 'RUN' }, { pk: 'META#count', sk: 'META' }], ConsistentRead: true });
    expect(keysOf(second)).toEqual({ Keys: [{ pk: 'RUN#run-1', sk: 'RUN' }], ConsistentRead: true });
    expect(ddb.commandCalls(GetItemCommand)).toHaveLength(0);
  });

  it('keys DynamoDB keeps leaving unprocessed fail the reads after 8 requests, saying so', async () => {
    ddb.on(BatchGetItemCommand).resolves({ Responses: { 'jml-ledger': [] }, UnprocessedKeys: { 'jml-ledger': { Keys: [marshall({ pk: 'RUN#run-1', sk: 'RUN' })] } } });
    const reads = Promise.all([ledger.getRun('run-1'), ledger.getPerson('E1001')]);
    await expect(reads).rejects.toThrow('ledger read: DynamoDB left 1 of 2 keys unprocessed 8 times (throughput exceeded)');
    expect(ddb.commandCalls(BatchGetItemCommand)).toHaveLength(8);
  });

  it('a batch that fails fails every read in it, with its error', async () => {
    ddb.on(BatchGetItemCommand).rejects(new Error('ProvisionedThroughputExceededException: rate of requests exceeds the allowed throughput'));
    const reads = await Promise.allSettled([ledger.getRun('run-1'), ledger.getPerson('E1001')]);
    expect(reads.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    for (const r of reads) expect((r as PromiseRejectedResult).reason.message).toMatch(/ProvisionedThroughputExceeded/);
  });

  it('listPersons scans the sparse persons index one page at a time and hands back an opaque cursor', async () => {
    const lastKey = { pk: 'PERSON#E2', sk: 'PROFILE', personId: 'E2' };
    ddb.on(ScanCommand).resolvesOnce({ Items: [], LastEvaluatedKey: marshall(lastKey) }).resolvesOnce({ Items: [] });
    const first = await ledger.listPersons(undefined, 25);
    expect(first.nextCursor).toBeDefined();
    expect(first.nextCursor).not.toContain('PERSON#');
    const second = await ledger.listPersons(first.nextCursor, 25);
    expect(second.nextCursor).toBeUndefined();

    const [a, b] = ddb.commandCalls(ScanCommand).map((c) => c.args[0].input);
    expect(a).toEqual({ TableName: 'jml-ledger', IndexName: PERSONS_INDEX.indexName, Limit: 25 });
    expect(native(b?.ExclusiveStartKey)).toEqual(lastKey);
    await expect(ledger.listPersons(undefined, 0)).rejects.toThrow(/limit/);
  });
});
