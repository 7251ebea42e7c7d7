/**
 * The run ledger on one DynamoDB table (design in `./table.ts`, explained in docs/ledger.md).
 *
 * Every state change is one conditional write; there are no transactions (dynalite has none,
 * and none are needed): where a change touches two items, the writes are ordered so that a crash
 * between them leaves state a retry repairs and no reader is misled (see `putPerson`).
 *
 * Records never carry layout attributes (keys, index keys, entity marker). Opaque JSON fields
 * (`event`, `plan`, `desired`, `reconciliation`, approval `request`, exception `evidence`, meta
 * values) are stored as JSON strings: their size is then exact (the 400 KB item limit is checked
 * before writing) and arbitrarily deep documents cannot hit DynamoDB's nesting limit.
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type {
  BatchGetCommandInput,
  BatchGetCommandOutput,
  DeleteCommandInput,
  GetCommandInput,
  GetCommandOutput,
  PutCommandInput,
  QueryCommandInput,
  QueryCommandOutput,
  ScanCommandInput,
  ScanCommandOutput,
  UpdateCommandInput,
  UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { JmlError, TargetConflict } from '#core/errors';
import { callBudgetCases, reservationCostMs, reserveCalls, type CallReservation } from '#core/call-budget';
import {
  ConditionFailed,
  RUN_STATUSES,
  type ApprovalRecord,
  type ExceptionRecord,
  type Ledger,
  type PersonRecord,
  type RunPatch,
  type RunRecord,
  type RunStatus,
  type StepAttempt,
  type StepRecord,
  type TicketRef,
  type LeaseResult,
} from '#core/ledger';
import {
  ENTITY_ATTRIBUTE,
  GSI1,
  GSI1_SK_PREFIX,
  GSI2,
  LAYOUT_ATTRIBUTES,
  MAX_ITEM_BYTES,
  PERSONS_INDEX,
  STEP_SK_PREFIX,
  TABLE_KEYS,
  TTL_ATTRIBUTE,
  TICKET_DUE_PARTITION,
  indexKeys,
  keys,
  ownerPartition,
  statusPartition,
  type Entity,
  type ItemKey,
} from './table.ts';
import { once, type Lazy } from './lazy.ts';


/**
 * Marshalling of the ledger's items, and of every Document client on its table (the local
 * index repair, scripts, tests): one definition.
 */
export const LEDGER_TRANSLATE_CONFIG = {
  marshallOptions: { removeUndefinedValues: true },
} as const;

/**
 * Settings of the ledger's DynamoDB client (Lambda and local alike). `cacheMiddleware`: the
 * client resolves each command's middleware stack once instead of on every request (a quarter to
 * a third of the SDK's CPU per request; docs/performance.md). The Document client cannot have it,
 * so the ledger sends the base commands and marshals native values itself (`ledgerRequest`
 * below). Middleware added to the client after its first request of a kind is not used for it.
 */
export const LEDGER_CLIENT_CONFIG = { cacheMiddleware: true } as const;

/** What the ledger asks of DynamoDB, in native values (the Document client's shapes). */
interface Requests {
  get: [GetCommandInput, Pick<GetCommandOutput, 'Item'>];
  batchGet: [BatchGetCommandInput, Pick<BatchGetCommandOutput, 'Responses' | 'UnprocessedKeys'>];
  put: [PutCommandInput, unknown];
  update: [UpdateCommandInput, Pick<UpdateCommandOutput, 'Attributes'>];
  delete: [DeleteCommandInput, unknown];
  query: [QueryCommandInput, Pick<QueryCommandOutput, 'Items' | 'LastEvaluatedKey'>];
  scan: [ScanCommandInput, Pick<ScanCommandOutput, 'Items' | 'LastEvaluatedKey'>];
}

/** A write would exceed DynamoDB's 400 KB item limit. Names the largest attributes, never values. */
export class LedgerItemTooLarge extends JmlError {}

/** A stored item does not have the shape its kind requires (the message names the field). */
export class LedgerItemInvalid extends JmlError {}

/** DynamoDB kept leaving keys of a batch read unprocessed (the table's throughput is exceeded). */
export class LedgerThrottled extends JmlError {}

/** Requests a batch read makes for keys DynamoDB leaves unprocessed, back-off between them, before it gives up. */
const UNPROCESSED_TRIES = 8;

export interface DynamoLedgerOptions {
  /**
   * A ready client (tests, local) or a factory called once, on the first ledger call (Lambda);
   * made with `LEDGER_CLIENT_CONFIG`.
   */
  client: Lazy<DynamoDBClient>;
  tableName: string;
  now?: () => Date;
}

type Item = Record<string, unknown>;
/** An item, key or value map as DynamoDB's API carries it. */
type AttributeMap = Record<string, AttributeValue>;

/** Each value of a per-table map (batch requests and answers) through `f`. */
const mapValues = <A, B>(o: Record<string, A>, f: (a: A) => B): Record<string, B> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));

/**
 * How the ledger marshals native values: LEDGER_TRANSLATE_CONFIG's options, copied once. A
 * Document client sets `convertTopLevelContainer` on the options object it is given (that one,
 * when it was built with LEDGER_TRANSLATE_CONFIG); here a top-level map stays a map.
 */
const MARSHALL_OPTIONS = { ...LEDGER_TRANSLATE_CONFIG.marshallOptions, convertTopLevelContainer: false };

/** The client's commands by request kind and the marshalling, loaded on the first ledger call (lazy.ts). */
const sdk = once(async () => {
  const [c, { marshall, unmarshall }] = await Promise.all([import('@aws-sdk/client-dynamodb'), import('@aws-sdk/util-dynamodb')]);
  const commands = {
    get: c.GetItemCommand,
    batchGet: c.BatchGetItemCommand,
    put: c.PutItemCommand,
    update: c.UpdateItemCommand,
    delete: c.DeleteItemCommand,
    query: c.QueryCommand,
    scan: c.ScanCommand,
  } as unknown as Record<keyof Requests, new (input: unknown) => Parameters<DynamoDBClient['send']>[0]>;
  return { commands, wire: (v: Item) => marshall(v, MARSHALL_OPTIONS) as AttributeMap, native: (v: AttributeMap) => unmarshall(v) };
});

/**
 * One request in native values, as the ledger sends it: keys, items, expression values and start
 * keys marshalled, items and keys in the answer unmarshalled — what the Document client does, on
 * a client that keeps its middleware resolved (`LEDGER_CLIENT_CONFIG`).
 */
export async function ledgerRequest<K extends keyof Requests>(client: DynamoDBClient, kind: K, input: Requests[K][0]): Promise<Requests[K][1]> {
  const { commands, wire, native } = await sdk();
  const { Key, Item, ExpressionAttributeValues, ExclusiveStartKey, RequestItems, ...rest } = input as Record<string, unknown> & {
    Key?: Item;
    Item?: Item;
    ExpressionAttributeValues?: Item;
    ExclusiveStartKey?: Item;
    RequestItems?: Record<string, { Keys: Item[] }>;
  };
  const request = {
    ...rest,
    ...(Key ? { Key: wire(Key) } : {}),
    ...(Item ? { Item: wire(Item) } : {}),
    ...(ExpressionAttributeValues ? { ExpressionAttributeValues: wire(ExpressionAttributeValues) } : {}),
    ...(ExclusiveStartKey ? { ExclusiveStartKey: wire(ExclusiveStartKey) } : {}),
    ...(RequestItems ? { RequestItems: mapValues(RequestItems, (r) => ({ ...r, Keys: r.Keys.map(wire) })) } : {}),
  };
  const out = (await client.send(new commands[kind](request))) as {
    Item?: AttributeMap;
    Items?: AttributeMap[];
    Attributes?: AttributeMap;
    LastEvaluatedKey?: AttributeMap;
    Responses?: Record<string, AttributeMap[]>;
    UnprocessedKeys?: Record<string, { Keys?: AttributeMap[] }>;
  };
  return {
    ...(out.Item ? { Item: native(out.Item) } : {}),
    ...(out.Items ? { Items: out.Items.map(native) } : {}),
    ...(out.Attributes ? { Attributes: native(out.Attributes) } : {}),
    ...(out.LastEvaluatedKey ? { LastEvaluatedKey: native(out.LastEvaluatedKey) } : {}),
    ...(out.Responses ? { Responses: mapValues(out.Responses, (items) => items.map(native)) } : {}),
    ...(out.UnprocessedKeys ? { UnprocessedKeys: mapValues(out.UnprocessedKeys, (r) => ({ ...r, Keys: (r.Keys ?? []).map(native) })) } : {}),
  } as Requests[K][1];
}

/** Fields held as JSON strings, per item kind. */
const JSON_FIELDS: Record<'run' | 'approval' | 'exception', readonly string[]> = {
  run: ['event', 'plan', 'desired', 'reconciliation'],
  approval: ['request'],
  exception: ['evidence'],
};

/** Run fields that keys are derived from: changing them would orphan index entries. */
const IMMUTABLE_RUN_FIELDS = ['runId', 'employeeId', 'createdAt'] as const;

const APPROVAL_STATUSES = ['PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'ESCALATED'] as const;
const EXCEPTION_STATUSES = ['open', 'resolved'] as const;

// Shapes checked on read: the fields that workflow decisions depend on. Other fields pass through.
const itemSchemas = {
  person: z.looseObject({
    employeeId: z.string(),
    updatedAt: z.string(),
    links: z.record(z.string(), z.string()),
    worker: z.looseObject({}),
  }),
  run: z.looseObject({
    runId: z.string(),
    employeeId: z.string(),
    status: z.enum(RUN_STATUSES),
    createdAt: z.string(),
    updatedAt: z.string(),
  }),
  step: z.looseObject({ runId: z.string(), stepId: z.string(), changes: z.array(z.unknown()) }),
  approval: z.looseObject({
    approvalId: z.string(),
    runId: z.string(),
    status: z.enum(APPROVAL_STATUSES),
    expiresAt: z.string(),
  }),
  exception: z.looseObject({ exceptionId: z.string(), status: z.enum(EXCEPTION_STATUSES), openedAt: z.string() }),
  link: z.looseObject({ employeeId: z.string(), target: z.string(), accountId: z.string() }),
  meta: z.looseObject({ value: z.string() }),
} satisfies Record<Entity, z.ZodType>;

const cursorSchema = z.record(z.string(), z.string());

/**
 * ISO-8601 in UTC with milliseconds (`Date#toISOString`). Sort keys and the approval expiry
 * comparison rely on it: `…:00Z` and `…:00.000Z` are the same instant but do not compare
 * correctly as strings.
 */
function isoUtc(value: string, field: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new TypeError(`${field}: not an ISO-8601 timestamp`);
  return new Date(ms).toISOString();
}

const isConditionalCheckFailed = (err: unknown): boolean =>
  (err as { name?: unknown } | null)?.name === 'ConditionalCheckFailedException';

const isItemSizeError = (err: unknown): boolean =>
  (err as { name?: unknown } | null)?.name === 'ValidationException' && /item size/i.test(String((err as Error).message));

/** Approximate DynamoDB size of an attribute value (UTF-8 strings, ~1 byte per 2 digits, map/list overhead). */
function valueBytes(value: unknown): number {
  if (value === null || value === undefined || typeof value === 'boolean') return 1;
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (typeof value === 'number' || typeof value === 'bigint') return Math.ceil(String(value).length / 2) + 1;
  if (value instanceof Uint8Array) return value.byteLength;
  if (Array.isArray(value)) return 3 + value.reduce<number>((n, v) => n + 1 + valueBytes(v), 0);
  if (value instanceof Set) return [...value].reduce<number>((n, v) => n + valueBytes(v), 0);
  return 3 + Object.entries(value as Item).reduce((n, [k, v]) => n + 1 + Buffer.byteLength(k) + valueBytes(v), 0);
}

function largestAttributes(item: Item): string {
  return Object.entries(item)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [k, Buffer.byteLength(k) + valueBytes(v)] as const)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([k, n]) => `${k} ≈ ${Math.round(n / 1024)} KB`)
    .join(', ');
}

function checkSize(item: Item, what: string): void {
  const size = Object.entries(item).reduce((n, [k, v]) => (v === undefined ? n : n + Buffer.byteLength(k) + valueBytes(v)), 0);
  if (size > MAX_ITEM_BYTES) {
    throw new LedgerItemTooLarge(
      `${what}: item would be ≈ ${Math.round(size / 1024)} KB, over DynamoDB's 400 KB limit (largest: ${largestAttributes(item)})`,
    );
  }
}

/** Name and value placeholders for one expression (the ledger's, and the local index repair's in local/dynalite.ts). */
export class Expr {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  private n = 0;
  name(attr: string): string {
    const existing = Object.entries(this.names).find(([, a]) => a === attr);
    if (existing) return existing[0];
    const ph = `#n${this.n++}`;
    this.names[ph] = attr;
    return ph;
  }
  value(v: unknown): string {
    const ph = `:v${this.n++}`;
    this.values[ph] = v;
    return ph;
  }
  /** Name/value maps for a command input (DynamoDB rejects empty maps). */
  maps(): { ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues?: Record<string, unknown> } {
    return {
      ...(Object.keys(this.names).length ? { ExpressionAttributeNames: this.names } : {}),
      ...(Object.keys(this.values).length ? { ExpressionAttributeValues: this.values } : {}),
    };
  }
}

export class DynamoLedger implements Ledger {
  private readonly client: () => Promise<DynamoDBClient>;
  private readonly tableName: string;
  private readonly now: () => Date;
  /** Per call budget, the case of its schedule that held last time (tried first next time). */
  private readonly callBudgetCase = new Map<string, number>();
  /** Reads waiting for this turn's request (`getItem`). */
  private reads: Array<{ key: ItemKey; resolve: (item: Item | null) => void; reject: (e: unknown) => void }> | undefined;

  constructor(options: DynamoLedgerOptions) {
    this.client = once(options.client);
    this.tableName = options.tableName;
    this.now = options.now ?? (() => new Date());
  }

  // ---------------------------------------------------------------- persons

  async getPerson(employeeId: string): Promise<PersonRecord | null> {
    const item = await this.getItem(keys.person(employeeId));
    return item ? this.toRecord<PersonRecord>('person', item) : null;
  }

  /**
   * Conditional put on `updatedAt` (or on absence). Reverse links are written *before* the
   * person and stale ones removed *after* it, and `findPersonByAccount` confirms a link against
   * the person record. So a crash or a lost race between the writes can leave an extra link item
   * (ignored on read, repaired by the next put), never a person whose account cannot be found.
   */
  async putPerson(person: PersonRecord, expected: string | null | PersonRecord): Promise<void> {
    const { employeeId } = person;
    const replaced = typeof expected === 'object' && expected !== null ? expected : undefined;
    if (replaced && replaced.employeeId !== employeeId) throw new TypeError(`person ${employeeId}: the record it replaces is ${replaced.employeeId}'s`);
    const expectedUpdatedAt = replaced ? replaced.updatedAt : (expected as string | null);
    if (expectedUpdatedAt !== null && person.updatedAt === expectedUpdatedAt) {
      throw new TypeError(`person ${employeeId}: updatedAt must change on every write (it is the version)`);
    }
    // The caller's record is the version the conditional put checks: no read of our own, and
    // nothing to compare before the put (a stale record fails its condition).
    const current = replaced ?? (await this.getPerson(employeeId));
    if (!replaced) this.assertPersonVersion(employeeId, current, expectedUpdatedAt);

    const oldLinks = current?.links ?? {};
    const version = isoUtc(person.updatedAt, 'updatedAt');
    for (const [target, accountId] of Object.entries(person.links)) {
      if (oldLinks[target] !== accountId) await this.claimLink(target, accountId, employeeId, version);
    }

    const condition = new Expr();
    const conditionExpression =
      expectedUpdatedAt === null
        ? `attribute_not_exists(${TABLE_KEYS.pk})`
        : `${condition.name('updatedAt')} = ${condition.value(expectedUpdatedAt)}`;
    const item: Item = {
      ...keys.person(employeeId),
      [ENTITY_ATTRIBUTE]: 'person',
      [PERSONS_INDEX.pk]: employeeId,
      ...person,
    };
    checkSize(item, `person ${employeeId}`);
    const written = await this.putItem(item, conditionExpression, condition);
    if (!written) {
      // Lost the race after the read: say what the record is now.
      this.assertPersonVersion(employeeId, await this.getPerson(employeeId), expectedUpdatedAt);
      throw new ConditionFailed(`person ${employeeId} changed concurrently`);
    }

    for (const [target, accountId] of Object.entries(oldLinks)) {
      if (person.links[target] !== accountId) await this.releaseLink(target, accountId, employeeId, version);
    }
  }

  /** Returns the owner only when the person record still lists the account (see putPerson). */
  async findPersonByAccount(target: string, accountId: string): Promise<string | null> {
    const link = await this.getItem(keys.link(target, accountId));
    if (!link) return null;
    const { employeeId } = this.validate('link', link);
    const person = await this.getPerson(employeeId);
    return person?.links[target] === accountId ? employeeId : null;
  }

  /**
   * Pages through persons for the nightly reconciliation. A Scan of the sparse `persons` index:
   * it reads person items only (not the ever-growing runs and steps), `limit` items per call,
   * so memory is bounded by the page. The cursor is opaque (base64url of LastEvaluatedKey).
   */
  async listPersons(cursor?: string, limit = 100): Promise<{ persons: PersonRecord[]; nextCursor?: string }> {
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RangeError('limit: an integer from 1 to 1000');
    const out = await this.send('scan', {
      TableName: this.tableName,
      IndexName: PERSONS_INDEX.indexName,
      Limit: limit,
      ...(cursor ? { ExclusiveStartKey: decodeCursor(cursor) } : {}),
    });
    const persons = (out.Items ?? []).filter((i) => this.live(i)).map((i) => this.toRecord<PersonRecord>('person', i));
    return { persons, ...(out.LastEvaluatedKey ? { nextCursor: encodeCursor(out.LastEvaluatedKey) } : {}) };
  }

  private assertPersonVersion(employeeId: string, current: PersonRecord | null, expected: string | null): void {
    if (expected === null && current) {
      throw new ConditionFailed(`person ${employeeId} already exists (updatedAt ${current.updatedAt})`);
    }
    if (expected !== null && !current) throw new ConditionFailed(`person ${employeeId} does not exist`);
    if (expected !== null && current && current.updatedAt !== expected) {
      throw new ConditionFailed(`person ${employeeId} changed: updatedAt is ${current.updatedAt}, expected ${expected}`);
    }
  }

  /**
   * Points the account's reverse link at `employeeId`, unless another person really owns it
   * (TargetConflict: two persons claim one account, which retrying cannot fix).
   */
  private async claimLink(target: string, accountId: string, employeeId: string, version: string): Promise<void> {
    const item: Item = {
      ...keys.link(target, accountId),
      [ENTITY_ATTRIBUTE]: 'link',
      target,
      accountId,
      employeeId,
      claimedFor: version,
      linkedAt: this.now().toISOString(),
    };
    const free = new Expr();
    const freeOrMine = `attribute_not_exists(${TABLE_KEYS.pk}) OR ${free.name('employeeId')} = ${free.value(employeeId)}`;
    if (await this.putItem(item, freeOrMine, free)) return;

    const existing = await this.getItem(keys.link(target, accountId));
    const owner = existing ? this.validate('link', existing).employeeId : undefined;
    if (owner !== undefined) {
      const ownerRecord = await this.getPerson(owner);
      if (ownerRecord?.links[target] === accountId) {
        // Not a race a retry could win: two persons claim one account.
        throw new TargetConflict(target, `account ${accountId} is linked to employee ${owner}, not ${employeeId}`, [accountId]);
      }
      // A leftover of an interrupted write: the named owner no longer lists the account.
      const stale = new Expr();
      if (await this.putItem(item, `${stale.name('employeeId')} = ${stale.value(owner)}`, stale)) return;
    } else if (await this.putItem(item, freeOrMine, free)) {
      return;
    }
    throw new ConditionFailed(`account ${accountId} on ${target} was linked concurrently`);
  }

  /**
   * Removes a link the person no longer lists, unless it was (re)claimed by a later version of
   * the person in the meantime: a slow writer must not delete the link a newer write relies on.
   */
  private async releaseLink(target: string, accountId: string, employeeId: string, version: string): Promise<void> {
    const e = new Expr();
    const claimedFor = e.name('claimedFor');
    try {
      await this.send('delete', {
        TableName: this.tableName,
        Key: keys.link(target, accountId),
        ConditionExpression: `${e.name('employeeId')} = ${e.value(employeeId)} AND (attribute_not_exists(${claimedFor}) OR ${claimedFor} < ${e.value(version)})`,
        ...e.maps(),
      });
    } catch (err) {
      // Gone already, or someone else's now: nothing of ours to remove.
      if (!isConditionalCheckFailed(err)) throw err;
    }
  }

  // ---------------------------------------------------------------- runs

  async createRun(run: RunRecord): Promise<boolean> {
    const item: Item = {
      ...keys.run(run.runId),
      [ENTITY_ATTRIBUTE]: 'run',
      ...indexKeys.runByEmployee(run.employeeId, isoUtc(run.createdAt, 'createdAt'), run.runId),
      ...indexKeys.runByStatus(run.status, isoUtc(run.updatedAt, 'updatedAt'), run.runId),
      ...this.encodeJson('run', run as unknown as Item),
    };
    checkSize(item, `run ${run.runId}`);
    const e = new Expr();
    return this.putItem(item, `attribute_not_exists(${TABLE_KEYS.pk})`, e);
  }

  async getRun(runId: string): Promise<RunRecord | null> {
    const item = await this.getItem(keys.run(runId));
    return item ? this.toRecord<RunRecord>('run', item) : null;
  }

  async updateRun(runId: string, patch: RunPatch, fromStatuses?: readonly RunStatus[]): Promise<void> {
    for (const field of IMMUTABLE_RUN_FIELDS) {
      if (patch[field] !== undefined && !(field === 'runId' && patch.runId === runId)) {
        throw new TypeError(`updateRun ${runId}: ${field} cannot change (index keys derive from it)`);
      }
    }
    if (fromStatuses && fromStatuses.length === 0) throw new TypeError(`updateRun ${runId}: fromStatuses is empty`);
    if ('timeline' in patch) throw new TypeError(`updateRun ${runId}: the timeline is appended to (addTimeline), never set`);

    const { addTimeline, ...set } = patch;
    const updatedAt = set.updatedAt ?? this.now().toISOString();
    const fields: Item = { ...this.encodeJson('run', set as Item), updatedAt };
    delete fields.runId;
    // The status index sorts by updatedAt, so its sort key moves on every update.
    const index: Item = { [GSI2.sk]: indexKeys.runByStatus('', isoUtc(updatedAt, 'updatedAt'), runId)[GSI2.sk] };
    if (set.status !== undefined) index[GSI2.pk] = statusPartition.run(set.status);
    checkSize({ ...fields, ...(addTimeline?.length ? { timeline: addTimeline } : {}) }, `run ${runId} update`);

    const e = new Expr();
    const sets = Object.entries({ ...fields, ...index })
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${e.name(k)} = ${e.value(v)}`);
    // Appended in the same write: concurrent appends are all kept (no read-modify-write).
    if (addTimeline?.length) {
      const tl = e.name('timeline');
      sets.push(`${tl} = list_append(if_not_exists(${tl}, ${e.value([])}), ${e.value(addTimeline)})`);
    }
    let condition = `attribute_exists(${TABLE_KEYS.pk})`;
    if (fromStatuses) condition += ` AND ${e.name('status')} IN (${fromStatuses.map((s) => e.value(s)).join(', ')})`;

    try {
      await this.send('update', {
        TableName: this.tableName,
        Key: keys.run(runId),
        UpdateExpression: `SET ${sets.join(', ')}`,
        ConditionExpression: condition,
        ...e.maps(),
      });
    } catch (err) {
      if (isItemSizeError(err)) {
        throw new LedgerItemTooLarge(`run ${runId}: update would exceed DynamoDB's 400 KB item limit (largest fields: ${largestAttributes(fields)})`, {
          cause: err,
        });
      }
      if (!isConditionalCheckFailed(err)) throw err;
      const current = await this.getRun(runId);
      if (!current) throw new ConditionFailed(`run ${runId} not found`);
      if (!fromStatuses) throw new ConditionFailed(`run ${runId} changed concurrently`);
      throw new ConditionFailed(`run ${runId} is ${current.status}, expected one of ${fromStatuses.join(', ')}`);
    }
  }

  /** Oldest first (by `createdAt`). */
  async listRunsByEmployee(employeeId: string): Promise<RunRecord[]> {
    const items = await this.queryIndex(GSI1.indexName, GSI1.pk, ownerPartition.employee(employeeId));
    return items.map((i) => this.toRecord<RunRecord>('run', i));
  }

  /** Least recently updated first: the head of the list is the run that has waited longest. */
  async listRunsByStatus(status: RunStatus): Promise<RunRecord[]> {
    const items = await this.queryIndex(GSI2.indexName, GSI2.pk, statusPartition.run(status));
    return items.map((i) => this.toRecord<RunRecord>('run', i));
  }

  // ---------------------------------------------------------------- steps

  /**
   * One write per attempt, no read: the attempt's changes are appended to the step's, its writes
   * added, the attempt counted; the outcome and error are the latest attempt's.
   */
  async recordStepAttempt(step: StepAttempt): Promise<void> {
    const { runId, stepId, startedAt, changes, writes, error, ...latest } = step;
    checkSize({ ...keys.step(runId, stepId), ...step }, `step ${runId}/${stepId}`);
    const e = new Expr();
    const sets = Object.entries({ [ENTITY_ATTRIBUTE]: 'step', runId, stepId, ...latest, ...(error ? { error } : {}) }).map(([k, v]) => `${e.name(k)} = ${e.value(v)}`);
    const [first, all] = [e.name('startedAt'), e.name('changes')];
    sets.push(`${first} = if_not_exists(${first}, ${e.value(startedAt)})`, `${all} = list_append(if_not_exists(${all}, ${e.value([])}), ${e.value(changes)})`);
    const expression = `SET ${sets.join(', ')} ADD ${e.name('writes')} ${e.value(writes)}, ${e.name('attempts')} ${e.value(1)}${error ? '' : ` REMOVE ${e.name('error')}`}`;
    try {
      await this.send('update', { TableName: this.tableName, Key: keys.step(runId, stepId), UpdateExpression: expression, ...e.maps() });
    } catch (err) {
      if (isItemSizeError(err)) {
        throw new LedgerItemTooLarge(`step ${runId}/${stepId}: its attempts' changes would exceed DynamoDB's 400 KB item limit`, { cause: err });
      }
      throw err;
    }
  }

  /** In stepId order (`001-okta` before `002-entra`). */
  async listSteps(runId: string): Promise<StepRecord[]> {
    const e = new Expr();
    const items = await this.queryAll({
      TableName: this.tableName,
      KeyConditionExpression: `${e.name(TABLE_KEYS.pk)} = ${e.value(keys.run(runId).pk)} AND begins_with(${e.name(TABLE_KEYS.sk)}, ${e.value(STEP_SK_PREFIX)})`,
      ConsistentRead: true,
      ...e.maps(),
    });
    return items.map((i) => this.toRecord<StepRecord>('step', i));
  }

  // ---------------------------------------------------------------- approvals

  /**
   * Creates the approval, or refreshes it while it is still PENDING (a retried request step may
   * carry a new task token). A decided approval is never overwritten: ConditionFailed.
   * `expiresAt` is stored as `toISOString()` so the expiry check can compare strings.
   */
  async putApproval(approval: ApprovalRecord): Promise<void> {
    const requestedAt = isoUtc(approval.requestedAt, 'requestedAt');
    const item: Item = {
      ...keys.approval(approval.approvalId),
      [ENTITY_ATTRIBUTE]: 'approval',
      ...indexKeys.approvalByRun(approval.runId, requestedAt, approval.approvalId),
      ...this.encodeJson('approval', approval as unknown as Item),
      expiresAt: isoUtc(approval.expiresAt, 'expiresAt'),
    };
    checkSize(item, `approval ${approval.approvalId}`);
    const e = new Expr();
    const newOrPending = `attribute_not_exists(${TABLE_KEYS.pk}) OR ${e.name('status')} = ${e.value('PENDING')}`;
    if (await this.putItem(item, newOrPending, e)) return;
    const current = await this.getApproval(approval.approvalId);
    throw new ConditionFailed(`approval ${approval.approvalId} already decided (${current?.status ?? 'unknown'})`);
  }

  async getApproval(approvalId: string): Promise<ApprovalRecord | null> {
    const item = await this.getItem(keys.approval(approvalId));
    return item ? this.toRecord<ApprovalRecord>('approval', item) : null;
  }

  async decideApproval(
    approvalId: string,
    decision: Pick<ApprovalRecord, 'status' | 'decidedAt' | 'rationale' | 'sourceIp' | 'userAgent'>,
    now: string,
  ): Promise<ApprovalRecord> {
    if (decision.status === 'PENDING') throw new TypeError(`approval ${approvalId}: a decision cannot be PENDING`);
    const at = isoUtc(now, 'now');
    const e = new Expr();
    const { status, decidedAt, rationale, sourceIp, userAgent } = decision;
    const sets = Object.entries({ status, decidedAt, rationale, sourceIp, userAgent })
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${e.name(k)} = ${e.value(v)}`);
    const condition = `attribute_exists(${TABLE_KEYS.pk}) AND ${e.name('status')} = ${e.value('PENDING')} AND ${e.name('expiresAt')} > ${e.value(at)}`;
    try {
      const out = await this.send('update', {
        TableName: this.tableName,
        Key: keys.approval(approvalId),
        UpdateExpression: `SET ${sets.join(', ')}`,
        ConditionExpression: condition,
        ...e.maps(),
        ReturnValues: 'ALL_NEW',
      });
      return this.toRecord<ApprovalRecord>('approval', out.Attributes ?? {});
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw err;
      const current = await this.getApproval(approvalId);
      if (!current) throw new ConditionFailed(`approval ${approvalId} not found`);
      if (current.status !== 'PENDING') {
        const when = current.decidedAt ? ` at ${current.decidedAt}` : '';
        throw new ConditionFailed(`approval ${approvalId} already decided (${current.status}${when})`);
      }
      throw new ConditionFailed(`approval ${approvalId} expired at ${current.expiresAt}`);
    }
  }

  /** In request order. */
  async listApprovals(runId: string): Promise<ApprovalRecord[]> {
    const items = await this.queryIndex(GSI1.indexName, GSI1.pk, ownerPartition.run(runId), { sk: GSI1.sk, prefix: GSI1_SK_PREFIX.approval });
    return items.map((i) => this.toRecord<ApprovalRecord>('approval', i));
  }

  // ---------------------------------------------------------------- exceptions

  /** Idempotent on exceptionId: a retry that opens the same exception again changes nothing. */
  async openException(exception: ExceptionRecord): Promise<boolean> {
    const openedAt = isoUtc(exception.openedAt, 'openedAt');
    const item: Item = {
      ...keys.exception(exception.exceptionId),
      [ENTITY_ATTRIBUTE]: 'exception',
      ...(exception.runId ? indexKeys.exceptionByRun(exception.runId, openedAt, exception.exceptionId) : {}),
      ...indexKeys.exceptionByStatus(exception.status, openedAt, exception.exceptionId),
      ...this.encodeJson('exception', exception as unknown as Item),
    };
    checkSize(item, `exception ${exception.exceptionId}`);
    const e = new Expr();
    return this.putItem(item, `attribute_not_exists(${TABLE_KEYS.pk})`, e);
  }

  async resolveException(
    exceptionId: string,
    resolution: { resolvedAt: string; resolution: string; resolvedBy: string },
  ): Promise<ExceptionRecord> {
    const e = new Expr();
    const fields: Item = {
      resolvedAt: resolution.resolvedAt,
      resolution: resolution.resolution,
      resolvedBy: resolution.resolvedBy,
      status: 'resolved',
      [GSI2.pk]: statusPartition.exception('resolved'),
    };
    const sets = Object.entries(fields).map(([k, v]) => `${e.name(k)} = ${e.value(v)}`);
    try {
      const out = await this.send('update', {
        TableName: this.tableName,
        Key: keys.exception(exceptionId),
        UpdateExpression: `SET ${sets.join(', ')}`,
        ConditionExpression: `attribute_exists(${TABLE_KEYS.pk}) AND ${e.name('status')} = ${e.value('open')}`,
        ...e.maps(),
        ReturnValues: 'ALL_NEW',
      });
      return this.toRecord<ExceptionRecord>('exception', out.Attributes ?? {});
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw err;
      const item = await this.getItem(keys.exception(exceptionId));
      if (!item) throw new ConditionFailed(`exception ${exceptionId} not found`);
      const current = this.toRecord<ExceptionRecord>('exception', item);
      throw new ConditionFailed(
        `exception ${exceptionId} already resolved${current.resolvedAt ? ` at ${current.resolvedAt}` : ''}${current.resolvedBy ? ` by ${current.resolvedBy}` : ''}`,
      );
    }
  }

  /** Oldest first (by `openedAt`). With neither filter, all exceptions (open, then resolved, merged). */
  async listExceptions(filter: { status?: 'open' | 'resolved'; runId?: string }): Promise<ExceptionRecord[]> {
    let items: Item[];
    if (filter.runId) {
      items = await this.queryIndex(GSI1.indexName, GSI1.pk, ownerPartition.run(filter.runId), {
        sk: GSI1.sk,
        prefix: GSI1_SK_PREFIX.exception,
        ...(filter.status ? { status: filter.status } : {}),
      });
    } else {
      const statuses = filter.status ? [filter.status] : EXCEPTION_STATUSES;
      const lists = await Promise.all(
        statuses.map((s) => this.queryIndex(GSI2.indexName, GSI2.pk, statusPartition.exception(s))),
      );
      items = lists.flat().sort((a, b) => String(a[GSI2.sk]).localeCompare(String(b[GSI2.sk])));
    }
    return items.map((i) => this.toRecord<ExceptionRecord>('exception', i));
  }

  async setExceptionTicket(exceptionId: string, update: { ticket?: TicketRef; ticketError?: string | null }): Promise<void> {
    const e = new Expr();
    const sets: string[] = [];
    const removes: string[] = [];
    if (update.ticket) sets.push(`${e.name('ticket')} = ${e.value(update.ticket)}`);
    if (typeof update.ticketError === 'string') sets.push(`${e.name('ticketError')} = ${e.value(update.ticketError)}`);
    if (update.ticketError === null) removes.push(e.name('ticketError'));
    if (!sets.length && !removes.length) return;
    try {
      await this.send('update', {
        TableName: this.tableName,
        Key: keys.exception(exceptionId),
        UpdateExpression: [sets.length ? `SET ${sets.join(', ')}` : '', removes.length ? `REMOVE ${removes.join(', ')}` : ''].filter(Boolean).join(' '),
        ConditionExpression: `attribute_exists(${TABLE_KEYS.pk})`,
        ...e.maps(),
      });
    } catch (err) {
      if (isConditionalCheckFailed(err)) throw new ConditionFailed(`exception ${exceptionId} not found`);
      throw err;
    }
  }

  async markTicketDue(exceptionId: string): Promise<void> {
    const item: Item = { ...keys.ticketDue(exceptionId), [ENTITY_ATTRIBUTE]: 'ticketDue', exceptionId, markedAt: this.now().toISOString() };
    // A mark already there keeps its time (the oldest mark first).
    const e = new Expr();
    try {
      await this.send('put', { TableName: this.tableName, Item: item, ConditionExpression: `attribute_not_exists(${e.name(TABLE_KEYS.pk)})`, ...e.maps() });
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw err;
    }
  }

  async clearTicketDue(exceptionId: string): Promise<void> {
    await this.send('delete', { TableName: this.tableName, Key: keys.ticketDue(exceptionId) });
  }

  async listTicketsDue(): Promise<ExceptionRecord[]> {
    const e = new Expr();
    const marks = await this.queryAll({
      TableName: this.tableName,
      KeyConditionExpression: `${e.name(TABLE_KEYS.pk)} = ${e.value(TICKET_DUE_PARTITION)}`,
      ConsistentRead: true,
      ...e.maps(),
    });
    marks.sort((a, b) => String(a.markedAt).localeCompare(String(b.markedAt)));
    const items = await Promise.all(marks.map((mark) => this.getItem(keys.exception(String(mark.exceptionId)))));
    const records: ExceptionRecord[] = [];
    for (const [i, mark] of marks.entries()) {
      const item = items[i];
      if (item) records.push(this.toRecord<ExceptionRecord>('exception', item));
      // A mark whose exception was never written (its step died first and was not retried within
      // a day) has nothing to raise: drop it rather than read it every night.
      else if (this.now().getTime() - Date.parse(String(mark.markedAt)) > 86_400_000) await this.clearTicketDue(String(mark.exceptionId));
    }
    return records;
  }

  // ---------------------------------------------------------------- meta

  async getMeta<T>(key: string): Promise<T | null> {
    const item = await this.getItem(keys.meta(key));
    if (!item) return null;
    const { value } = this.validate('meta', item);
    return parseJsonField(value, `meta ${key}`, 'value') as T;
  }

  /** Last write wins. With `ttlEpochSeconds`, reads return null from that second on. */
  async putMeta<T>(key: string, value: T, ttlEpochSeconds?: number): Promise<void> {
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError(`meta ${key}: value is not JSON-serialisable`);
    const item: Item = {
      ...keys.meta(key),
      [ENTITY_ATTRIBUTE]: 'meta',
      value: json,
      ...(ttlEpochSeconds !== undefined ? { [TTL_ATTRIBUTE]: Math.floor(ttlEpochSeconds) } : {}),
    };
    checkSize(item, `meta ${key}`);
    await this.send('put', { TableName: this.tableName, Item: item });
  }

  // ---------------------------------------------------------------- counters

  /**
   * `ADD count :by` under the condition `count <= max − by` (or no count yet): DynamoDB applies
   * the check and the addition as one step. Counters are meta items (`META#counter:<key>`) with
   * a Number `count`.
   */
  async addToCounter(key: string, by: number, options: { max?: number; ttlEpochSeconds?: number } = {}): Promise<{ added: boolean; value: number }> {
    if (!Number.isInteger(by) || by < 1) throw new RangeError(`counter ${key}: by must be a positive integer`);
    const e = new Expr();
    const count = e.name('count');
    const sets = [`${e.name(ENTITY_ATTRIBUTE)} = ${e.value('counter')}`];
    if (options.ttlEpochSeconds !== undefined) sets.push(`${e.name(TTL_ATTRIBUTE)} = ${e.value(Math.floor(options.ttlEpochSeconds))}`);
    const condition = options.max !== undefined ? `attribute_not_exists(${count}) OR ${count} <= ${e.value(options.max - by)}` : undefined;
    if (options.max !== undefined && options.max < by) return { added: false, value: await this.counter(key) };
    try {
      const out = await this.send('update', {
        TableName: this.tableName,
        Key: keys.meta(counterKey(key)),
        UpdateExpression: `SET ${sets.join(', ')} ADD ${count} ${e.value(by)}`,
        ...(condition ? { ConditionExpression: condition } : {}),
        ...e.maps(),
        ReturnValues: 'UPDATED_NEW',
      });
      return { added: true, value: Number(out.Attributes?.count ?? by) };
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw err;
      return { added: false, value: await this.counter(key) };
    }
  }

  /** Read together: one BatchGetItem with whatever else is read at the same moment (`getItem`). */
  async getCounters(counterKeys: readonly string[]): Promise<number[]> {
    const items = await Promise.all(counterKeys.map((k) => this.getItem(keys.meta(counterKey(k)))));
    return items.map((item, i) => {
      if (item && typeof item.count !== 'number') throw new LedgerItemInvalid(`ledger counter item ${keys.meta(counterKey(counterKeys[i]!)).pk}: count: expected a number`);
      return (item?.count as number | undefined) ?? 0;
    });
  }

  // ---------------------------------------------------------------- leases

  /** Meta items `META#lease:<key>` with `holder` and `until` (epoch ms); the TTL sweeps them a day after. */
  async acquireLease(key: string, holder: string, untilMs: number, nowMs: number, attempt?: string): Promise<LeaseResult> {
    const e = new Expr();
    const [h, until] = [e.name('holder'), e.name('until')];
    const item: Item = {
      ...keys.meta(leaseKey(key)),
      [ENTITY_ATTRIBUTE]: 'lease',
      holder,
      ...(attempt ? { attempt } : {}),
      until: untilMs,
      [TTL_ATTRIBUTE]: Math.floor(untilMs / 1000) + 86_400,
    };
    const taken = await this.putItem(item, `attribute_not_exists(${h}) OR ${h} = ${e.value(holder)} OR ${until} < ${e.value(nowMs)}`, e);
    if (taken) return { acquired: true };
    // The lease's own `until` decides, not the TTL (which only sweeps old leases away).
    const current = await this.getItem(keys.meta(leaseKey(key)), true);
    // Released between the two calls: try once more rather than report a holder that is gone.
    if (!current) {
      const again = new Expr();
      return (await this.putItem(item, `attribute_not_exists(${again.name('holder')})`, again)) ? { acquired: true } : { acquired: false, holder: 'another run', untilMs };
    }
    return { acquired: false, holder: String(current.holder), untilMs: Number(current.until) };
  }

  async releaseLease(key: string, holder: string, attempt?: string): Promise<void> {
    const e = new Expr();
    const condition = `${e.name('holder')} = ${e.value(holder)}${attempt ? ` AND ${e.name('attempt')} = ${e.value(attempt)}` : ''}`;
    try {
      await this.send('delete', { TableName: this.tableName, Key: keys.meta(leaseKey(key)), ConditionExpression: condition, ...e.maps() });
    } catch (err) {
      // Ran out and taken by someone else, or gone: not ours to remove.
      if (!isConditionalCheckFailed(err)) throw err;
    }
  }

  async reserveCalls(key: string, reservation: CallReservation): Promise<{ startAtMs: number }> {
    // Check the arguments before anything is written (the pure function throws on nonsense).
    reserveCalls(null, reservation);
    const itemKey = keys.meta(callBudgetKey(key));
    const cases = callBudgetCases(reservation.lane);
    const cost = reservationCostMs(reservation);
    // One conditional update per try, no read first: under a burst the case that held last time
    // for this target almost always holds again, so most reservations take one round trip.
    const first = this.callBudgetCase.get(key) ?? 0;
    for (let attempt = 0; attempt < cases.length * 20; attempt++) {
      const index = (first + attempt) % cases.length;
      const c = cases[index]!;
      const e = new Expr();
      const now = e.value(reservation.nowMs);
      const conditions: string[] = [];
      for (const attr of ['until', 'restrictUntil'] as const) {
        if (c[attr] === 'set') conditions.push(`${e.name(attr)} >= ${now}`);
        if (c[attr] === 'unset') conditions.push(`(attribute_not_exists(${e.name(attr)}) OR ${e.name(attr)} < ${now})`);
      }
      const sets = [
        `${e.name(ENTITY_ATTRIBUTE)} = ${e.value('callBudget')}`,
        // Swept two days on; an absent schedule is an idle target.
        `${e.name(TTL_ATTRIBUTE)} = ${e.value(Math.floor(reservation.nowMs / 1000) + 2 * 86_400)}`,
      ];
      for (const [attr, move] of Object.entries(c.moves) as Array<[string, 'add' | 'restart']>) {
        const n = e.name(attr);
        sets.push(move === 'add' ? `${n} = ${n} + ${e.value(cost)}` : `${n} = ${e.value(reservation.nowMs + cost)}`);
      }
      try {
        const out = await this.send('update', {
          TableName: this.tableName,
          Key: itemKey,
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: conditions.join(' AND '),
          ...e.maps(),
          ReturnValues: 'ALL_OLD',
        });
        this.callBudgetCase.set(key, index);
        const old = out.Attributes;
        const until = typeof old?.until === 'number' ? old.until : reservation.nowMs;
        const restrictUntil = typeof old?.restrictUntil === 'number' ? old.restrictUntil : Math.min(until, reservation.nowMs);
        return { startAtMs: reserveCalls({ until, restrictUntil }, reservation).startAtMs };
      } catch (err) {
        // Another case holds (the schedule moved past now, or now past it): try the next one.
        if (!isConditionalCheckFailed(err)) throw err;
      }
    }
    throw new Error(`call budget ${key}: no case of the schedule held after ${cases.length * 20} tries`);
  }

  private async counter(key: string): Promise<number> {
    const item = await this.getItem(keys.meta(counterKey(key)));
    return typeof item?.count === 'number' ? item.count : 0;
  }

  // ---------------------------------------------------------------- plumbing

  /**
   * Strongly consistent read; an expired item reads as absent (unless `withExpired`). Reads asked
   * for in the same turn of the event loop — before it next waits for I/O — go out together
   * (`flushReads`).
   */
  private async getItem(key: ItemKey, withExpired = false): Promise<Item | null> {
    const item = await new Promise<Item | null>((resolve, reject) => {
      if (!this.reads) {
        this.reads = [];
        // Once the promise jobs queued by now (and those they queue) have run, before any I/O:
        // reads issued along a chain of resolved promises join, and none waits for the event loop.
        void Promise.resolve().then(() => process.nextTick(() => void this.flushReads()));
      }
      this.reads.push({ key, resolve, reject });
    });
    return item && (withExpired || this.live(item)) ? item : null;
  }

  /**
   * The reads of one turn: a single key is a GetItem, several are one BatchGetItem per 100 keys
   * (sent at once; strongly consistent too, the same read units), each repeated with back-off for
   * the keys DynamoDB leaves unprocessed (up to `UNPROCESSED_TRIES` requests). A consumer's first
   * reads (the run, the person, the bulk guard's counters and count) are one request, not four.
   */
  private async flushReads(): Promise<void> {
    const reads = this.reads ?? [];
    this.reads = undefined;
    const id = (k: ItemKey) => `${k.pk}\n${k.sk}`;
    try {
      const found = new Map<string, Item>();
      const unique = [...new Map(reads.map((r) => [id(r.key), r.key])).values()];
      if (unique.length === 1) {
        const out = await this.send('get', { TableName: this.tableName, Key: unique[0], ConsistentRead: true });
        if (out.Item) found.set(id(unique[0]!), out.Item);
      }
      const chunks = unique.length > 1 ? Array.from({ length: Math.ceil(unique.length / 100) }, (_, i) => unique.slice(i * 100, i * 100 + 100)) : [];
      await Promise.all(
        chunks.map(async (chunk) => {
          let request: ItemKey[] | undefined = chunk;
          for (let attempt = 0; request?.length; attempt++) {
            if (attempt === UNPROCESSED_TRIES) throw new LedgerThrottled(`ledger read: DynamoDB left ${request.length} of ${unique.length} keys unprocessed ${UNPROCESSED_TRIES} times (throughput exceeded)`);
            if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt)));
            const out = await this.send('batchGet', { RequestItems: { [this.tableName]: { Keys: request, ConsistentRead: true } } });
            for (const item of out.Responses?.[this.tableName] ?? []) found.set(id({ pk: String(item[TABLE_KEYS.pk]), sk: String(item[TABLE_KEYS.sk]) }), item);
            request = out.UnprocessedKeys?.[this.tableName]?.Keys as ItemKey[] | undefined;
          }
        }),
      );
      for (const r of reads) r.resolve(found.get(id(r.key)) ?? null);
    } catch (e) {
      for (const r of reads) r.reject(e);
    }
  }

  /** One request on the ledger's client (`ledgerRequest`); the SDK loads beside the client on the first call. */
  private async send<K extends keyof Requests>(kind: K, input: Requests[K][0]): Promise<Requests[K][1]> {
    const [client] = await Promise.all([this.client(), sdk()]);
    return ledgerRequest(client, kind, input);
  }

  /** Conditional put. False when the condition failed. */
  private async putItem(item: Item, conditionExpression: string, expr: Expr): Promise<boolean> {
    try {
      await this.send('put', { TableName: this.tableName, Item: item, ConditionExpression: conditionExpression, ...expr.maps() });
      return true;
    } catch (err) {
      if (isConditionalCheckFailed(err)) return false;
      if (isItemSizeError(err)) {
        throw new LedgerItemTooLarge(`${String(item[TABLE_KEYS.pk])}: over DynamoDB's 400 KB item limit (largest: ${largestAttributes(item)})`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Every item of one index partition, in sort-key order (eventually consistent in AWS). */
  private async queryIndex(
    indexName: string,
    pkAttr: string,
    pkValue: string,
    options: { sk?: string; prefix?: string; status?: string } = {},
  ): Promise<Item[]> {
    const e = new Expr();
    let keyCondition = `${e.name(pkAttr)} = ${e.value(pkValue)}`;
    if (options.sk && options.prefix) keyCondition += ` AND begins_with(${e.name(options.sk)}, ${e.value(options.prefix)})`;
    const filter = options.status ? `${e.name('status')} = ${e.value(options.status)}` : undefined;
    return this.queryAll({
      TableName: this.tableName,
      IndexName: indexName,
      KeyConditionExpression: keyCondition,
      ...(filter ? { FilterExpression: filter } : {}),
      ...e.maps(),
    });
  }

  private async queryAll(input: QueryCommandInput): Promise<Item[]> {
    const items: Item[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.send('query', { ...input, ...(start ? { ExclusiveStartKey: start } : {}) });
      for (const item of out.Items ?? []) if (this.live(item)) items.push(item);
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** False for an item whose TTL (epoch seconds, a Number) has passed. DynamoDB deletes late; dynalite never. */
  private live(item: Item): boolean {
    const ttl = item[TTL_ATTRIBUTE];
    return typeof ttl !== 'number' || ttl * 1000 > this.now().getTime();
  }

  private validate<E extends Entity>(entity: E, item: Item): z.infer<(typeof itemSchemas)[E]> {
    const result = itemSchemas[entity].safeParse(item);
    if (!result.success) {
      const issue = result.error.issues[0];
      const where = `${String(item[TABLE_KEYS.pk])}/${String(item[TABLE_KEYS.sk])}`;
      throw new LedgerItemInvalid(`ledger ${entity} item ${where}: ${issue?.path.join('.') || '(item)'}: ${issue?.message ?? 'invalid'}`);
    }
    return result.data as z.infer<(typeof itemSchemas)[E]>;
  }

  /** Validated item → record: layout attributes dropped, JSON fields parsed. */
  private toRecord<R>(entity: 'person' | 'run' | 'step' | 'approval' | 'exception', item: Item): R {
    this.validate(entity, item);
    const record: Item = {};
    for (const [k, v] of Object.entries(item)) if (!LAYOUT_ATTRIBUTES.includes(k)) record[k] = v;
    if (entity === 'run' || entity === 'approval' || entity === 'exception') {
      const where = `${entity} ${String(item[TABLE_KEYS.pk])}`;
      for (const field of JSON_FIELDS[entity]) {
        if (typeof record[field] === 'string') record[field] = parseJsonField(record[field] as string, where, field);
      }
    }
    return record as R;
  }

  private encodeJson(entity: 'run' | 'approval' | 'exception', record: Item): Item {
    const out: Item = { ...record };
    for (const field of JSON_FIELDS[entity]) {
      if (out[field] !== undefined) out[field] = JSON.stringify(out[field]);
    }
    return out;
  }
}

const counterKey = (key: string) => `counter:${key}`;
const leaseKey = (key: string) => `lease:${key}`;
const callBudgetKey = (key: string) => `callbudget:${key}`;

function parseJsonField(text: string, where: string, field: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new LedgerItemInvalid(`${where}: ${field} is not valid JSON`);
  }
}

function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeCursor(cursor: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new TypeError('cursor: not a cursor returned by listPersons');
  }
  const result = cursorSchema.safeParse(parsed);
  if (!result.success || !(PERSONS_INDEX.pk in result.data)) throw new TypeError('cursor: not a cursor returned by listPersons');
  return result.data;
}
