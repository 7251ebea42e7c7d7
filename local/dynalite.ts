/**
 * A local DynamoDB for tests and `npm run local`: dynalite (the DynamoDB API over LevelDB) on
 * 127.0.0.1, in memory or persisted to a directory, plus the ledger's client and a Document client for it.
 *
 * dynalite has no TransactWriteItems and no TTL; the ledger needs neither (single conditional
 * writes, expiry checked on read). See docs/ledger.md.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ListTablesCommand,
  ResourceNotFoundException,
  type CreateTableCommandOutput,
  type DescribeTableCommandOutput,
  type ListTablesCommandOutput,
} from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { Expr, LEDGER_CLIENT_CONFIG, LEDGER_TRANSLATE_CONFIG } from '#aws/ledger.dynamodb';
import { createTableInput, TABLE_KEYS } from '#aws/table';
import { listenDynalite } from './dynalite-server.mjs';

interface DynaliteOptions {
  path?: string;
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}

export interface LocalDynamo {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  /** For scripts, tests and the index repair: native values in and out. */
  client: DynamoDBDocumentClient;
  /** The ledger's client (`LEDGER_CLIENT_CONFIG`: `new DynamoLedger({ client: dynamo.ledgerClient, … })`). */
  ledgerClient: DynamoDBClient;
  /** Destroys the clients, drops open connections and closes the store (flushes LevelDB). */
  close(): Promise<void>;
  /** What was mended at start in a store that had not been closed (see `startDynalite`). */
  mended?: { reindexed: string[]; orphansRemoved: string[] };
}

/**
 * Starts dynalite on 127.0.0.1. With `path`, data lives in that directory (LevelDB) and
 * survives a restart on the same path; without, it is in memory. `port` 0/absent = a free port.
 * `ownProcess`: dynalite runs in a child process (as DynamoDB runs outside the Lambda in AWS, its
 * work does not share the caller's event loop); the port is then always a free one.
 *
 * A clean close leaves a marker beside the store (`<path>.closed`). A store without one was not
 * closed (its runtime was killed): its indexes may be torn, and are mended (`repairIndexes`, every
 * table) before the store is handed out — `mended` says what was. A normal restart skips the scans.
 */
export async function startDynalite(options: { path?: string; port?: number; ownProcess?: boolean } = {}): Promise<LocalDynamo> {
  const settings = dynaliteOptions(options.path);
  const marker = options.path ? `${options.path}.closed` : undefined;
  const mayBeTorn = !!options.path && existsSync(options.path) && !existsSync(marker!);
  if (marker) rmSync(marker, { force: true });
  const started = options.ownProcess ? await startDynaliteProcess(settings) : await listenDynalite(settings, options.port ?? 0).then((d) => ({ port: d.port, close: () => d.close().then(() => true) }));
  const { base, client, ledgerClient } = clientFor(started.port);
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      client.destroy();
      base.destroy();
      ledgerClient.destroy();
      if ((await started.close()) && marker) writeFileSync(marker, '');
    })());
  const mended = mayBeTorn ? await repairAllIndexes(client) : undefined;
  return { endpoint: `http://127.0.0.1:${started.port}`, port: started.port, client, ledgerClient, close, ...(mended ? { mended } : {}) };
}

function clientFor(port: number): { base: DynamoDBClient; client: DynamoDBDocumentClient; ledgerClient: DynamoDBClient } {
  const settings = {
    endpoint: `http://127.0.0.1:${port}`,
    region: 'local',
    // dynalite does not check signatures; a fresh throwaway pair keeps real ones out of reach.
    credentials: { accessKeyId: `local${randomBytes(4).toString('hex')}`, secretAccessKey: randomBytes(24).toString('base64url') },
    maxAttempts: 3,
  };
  const base = new DynamoDBClient(settings);
  return { base, client: DynamoDBDocumentClient.from(base, LEDGER_TRANSLATE_CONFIG), ledgerClient: new DynamoDBClient({ ...settings, ...LEDGER_CLIENT_CONFIG }) };
}

/** dynalite's options, in this process or in its own. */
function dynaliteOptions(path: string | undefined): DynaliteOptions {
  // Table state changes are instant enough for tests; ensureTable still waits for ACTIVE.
  return { ...(path ? { path } : {}), createTableMs: 5, deleteTableMs: 5, updateTableMs: 5 };
}

/** dynalite in a child process; `close` stops it and says whether it closed its store cleanly (exit 0). */
async function startDynaliteProcess(settings: DynaliteOptions): Promise<{ port: number; close: () => Promise<boolean> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./dynalite-process.mjs', import.meta.url)), JSON.stringify(settings)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve((JSON.parse(line!) as { port: number }).port);
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`dynalite process exited (${code}) before it listened`)));
  });
  return {
    port,
    close: async () => {
      child.kill('SIGTERM');
      return (await exited) === 0;
    },
  };
}

/** `repairIndexes` on every table of the store. */
async function repairAllIndexes(client: DynamoDBDocumentClient): Promise<{ reindexed: string[]; orphansRemoved: string[] }> {
  const { TableNames = [] } = await (client as unknown as TableCommands).send(new ListTablesCommand({}));
  const mended = { reindexed: [] as string[], orphansRemoved: [] as string[] };
  for (const table of TableNames) {
    const m = await repairIndexes(client, table);
    mended.reindexed.push(...m.reindexed);
    mended.orphansRemoved.push(...m.orphansRemoved);
  }
  return mended;
}

type TableClient = DynamoDBDocumentClient | DynamoDBClient;
interface TableCommands {
  send(command: CreateTableCommand): Promise<CreateTableCommandOutput>;
  send(command: DescribeTableCommand): Promise<DescribeTableCommandOutput>;
  send(command: ListTablesCommand): Promise<ListTablesCommandOutput>;
}

/**
 * Creates the ledger table from `createTableInput` unless it exists, then waits until it and its
 * indexes are ACTIVE. Safe to call concurrently and on every start.
 */
export async function ensureTable(client: TableClient, tableName: string, timeoutMs = 60_000): Promise<void> {
  // The Document client sends plain DynamoDB commands through the same handler; its types
  // only list the document commands.
  const dynamo = client as unknown as TableCommands;
  const describe = async () => {
    try {
      return (await dynamo.send(new DescribeTableCommand({ TableName: tableName }))).Table;
    } catch (err) {
      if (err instanceof ResourceNotFoundException || (err as Error).name === 'ResourceNotFoundException') return undefined;
      throw err;
    }
  };
  if (!(await describe())) {
    try {
      await dynamo.send(new CreateTableCommand(createTableInput(tableName)));
    } catch (err) {
      // Someone else created it in between: wait for theirs.
      if ((err as Error).name !== 'ResourceInUseException') throw err;
    }
  }
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  for (;;) {
    const table = await describe();
    const ready =
      table?.TableStatus === 'ACTIVE' && (table.GlobalSecondaryIndexes ?? []).every((i) => i.IndexStatus === 'ACTIVE');
    if (ready) return;
    if (Date.now() > deadline) {
      throw new Error(`table ${tableName} not ACTIVE after ${timeoutMs} ms (status ${table?.TableStatus ?? 'missing'})`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 1000);
  }
}

type Item = Record<string, unknown>;

/** Every item of the table, or of one of its indexes, with only `attributes` (Scan, all pages). */
async function scanAll(client: DynamoDBDocumentClient, tableName: string, attributes: readonly string[], indexName?: string): Promise<Item[]> {
  const items: Item[] = [];
  const e = new Expr();
  const projection = attributes.map((a) => e.name(a)).join(', ');
  let ExclusiveStartKey: Item | undefined;
  do {
    const out = await client.send(
      new ScanCommand({
        TableName: tableName,
        ...(indexName ? { IndexName: indexName } : {}),
        ProjectionExpression: projection,
        ...e.maps(),
        ...(ExclusiveStartKey ? { ExclusiveStartKey } : {}),
      }),
    );
    items.push(...(out.Items ?? []));
    ExclusiveStartKey = out.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  return items;
}

/**
 * Makes every global index agree with the table again after a local runtime was killed in the
 * middle of a write.
 *
 * dynalite writes an item's index entries one by one — deleting the old ones, putting the new
 * ones — and only then the item (db/index.js `updateIndexes`). Killed in between (SIGKILL, a
 * crash), it leaves an item whose index entry is missing (a run a resume listing runs by status
 * would never see again) and, under the new index key, an entry for a write the item never got
 * (a run still listed as RECONCILING long after it failed). DynamoDB keeps its indexes consistent
 * with the table, so only the local runtime needs this; it runs at start, before anything reads.
 *
 * A missing entry is written again by rewriting the item's index key as it is. An orphaned one is
 * removed the way dynalite removes any entry: the item is moved onto the orphan's key and back
 * (or, when the item no longer exists, put there and deleted). Returns what it mended.
 */
export async function repairIndexes(client: DynamoDBDocumentClient, tableName: string): Promise<{ reindexed: string[]; orphansRemoved: string[] }> {
  const { Table } = await (client as unknown as TableCommands).send(new DescribeTableCommand({ TableName: tableName }));
  const indexes = (Table?.GlobalSecondaryIndexes ?? []).map((i) => ({ name: i.IndexName!, keys: (i.KeySchema ?? []).map((k) => k.AttributeName!) }));
  const indexKeys = [...new Set(indexes.flatMap((i) => i.keys))];
  const id = (item: Item) => `${String(item[TABLE_KEYS.pk])}\n${String(item[TABLE_KEYS.sk])}`;
  const base = new Map((await scanAll(client, tableName, [TABLE_KEYS.pk, TABLE_KEYS.sk, ...indexKeys])).map((item) => [id(item), item]));
  const reindexed: string[] = [];
  const orphansRemoved: string[] = [];
  const key = (item: Item) => ({ [TABLE_KEYS.pk]: item[TABLE_KEYS.pk], [TABLE_KEYS.sk]: item[TABLE_KEYS.sk] });
  // The item's index key set to `values` (removed where `values` has none: out of a sparse index).
  const setKeys = (item: Item, keys: readonly string[], values: Item) => {
    const e = new Expr();
    const set = keys.filter((k) => values[k] !== undefined).map((k) => `${e.name(k)} = ${e.value(values[k])}`);
    const removed = keys.filter((k) => values[k] === undefined).map((k) => e.name(k));
    const update = [set.length ? `SET ${set.join(', ')}` : '', removed.length ? `REMOVE ${removed.join(', ')}` : ''].filter(Boolean).join(' ');
    return client.send(new UpdateCommand({ TableName: tableName, Key: key(item), UpdateExpression: update, ...e.maps() }));
  };
  for (const index of indexes) {
    const sameKey = (a: Item, b: Item) => index.keys.every((k) => a[k] === b[k]);
    const entries = await scanAll(client, tableName, [TABLE_KEYS.pk, TABLE_KEYS.sk, ...index.keys], index.name);
    const listed = new Set<string>();
    for (const entry of entries) {
      const item = base.get(id(entry));
      if (item && sameKey(item, entry)) {
        listed.add(id(entry));
        continue;
      }
      if (item) {
        await setKeys(item, index.keys, entry);
        await setKeys(item, index.keys, item);
      } else {
        await client.send(new PutCommand({ TableName: tableName, Item: entry }));
        await client.send(new DeleteCommand({ TableName: tableName, Key: key(entry) }));
      }
      orphansRemoved.push(`${index.name} ${id(entry).replace('\n', ' ')}`);
    }
    for (const [itemId, item] of base) {
      if (listed.has(itemId) || !index.keys.every((k) => item[k] !== undefined)) continue;
      await setKeys(item, index.keys, item);
      reindexed.push(`${index.name} ${itemId.replace('\n', ' ')}`);
    }
  }
  return { reindexed, orphansRemoved };
}
