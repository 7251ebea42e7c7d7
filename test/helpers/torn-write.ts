/**
 * What a local runtime killed in the middle of a ledger write leaves in dynalite's files: the
 * item's index entries moved to `patch` (dynalite's own `updateIndexes`: old entries deleted, new
 * ones put) and the item itself not written — the write that comes after them in dynalite — and
 * no mark of a clean close. Call it on a data directory no running dynalite holds.
 */
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';

type DdbItem = Record<string, { S?: string; N?: string }>;

interface DynaliteStore {
  getItemDb(table: string): { get(key: string, cb: (e: Error | null, item: DdbItem) => void): void };
  getTable(name: string, checkStatus: boolean, cb: (e: Error | null, table: unknown) => void): void;
  db: { close(): Promise<void> };
}

const dynaliteDb = createRequire(import.meta.url)('dynalite/db') as {
  create(options: { path: string }): DynaliteStore;
  createKey(item: DdbItem, table: unknown): string;
  updateIndexes(store: DynaliteStore, table: unknown, existing: DdbItem, item: DdbItem, cb: (e: Error | null) => void): void;
};

export async function tearIndexWrite(path: string, tableName: string, key: { pk: string; sk: string }, patch: Record<string, string>): Promise<void> {
  const store = dynaliteDb.create({ path });
  try {
    const table = await new Promise<unknown>((resolve, reject) => store.getTable(tableName, false, (e, t) => (e ? reject(e) : resolve(t))));
    const keyItem: DdbItem = { pk: { S: key.pk }, sk: { S: key.sk } };
    const stored = await new Promise<DdbItem>((resolve, reject) =>
      store.getItemDb(tableName).get(dynaliteDb.createKey(keyItem, table), (e, item) => (e ? reject(e) : resolve(item))),
    );
    const torn: DdbItem = { ...stored, ...Object.fromEntries(Object.entries(patch).map(([k, v]) => [k, { S: v }])) };
    await new Promise<void>((resolve, reject) => dynaliteDb.updateIndexes(store, table, stored, torn, (e) => (e ? reject(e) : resolve())));
  } finally {
    await store.db.close();
  }
  rmSync(`${path}.closed`, { force: true }); // a killed runtime leaves none (see startDynalite)
}
