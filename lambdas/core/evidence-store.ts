/**
 * The `EvidenceStore` port and the storage protocol both adapters share (S3 in AWS, the
 * filesystem in local mode). Adapters only provide an `ObjectBackend` (put / get / list of
 * keys); the layout, the write order and the chain bookkeeping live here once.
 *
 * Key layout (one bucket or root):
 *   evidence/{yyyy}/{mm}/{runId}/{file}          the bundle (see evidence.ts)
 *   evidence/persons/{employeeId}/{seq}.json     the person's chain index, one entry per bundle
 *   evidence/runs/{runId}.json                   run id → bundle prefix
 *
 * How the chain's previous pointer is found: the person index. Each stored bundle appends one
 * entry `{ seq, runId, prefix, closedAt, manifestSha256, previousManifestSha256 }` with a
 * create-only write (S3 `If-None-Match: *`, a hard link on disk) at `seq = last + 1` (8 digits, so
 * keys sort in chain order). `latestManifestSha256(employeeId)` is the last entry's hash; the
 * close step passes it to `buildEvidenceBundle`. Entries are never rewritten, so the index is
 * also the person's history for `jml evidence verify`, and its recorded hashes anchor the newest
 * bundle (which no later bundle points to yet). The ledger's `RunRecord.evidence` mirrors the
 * result of `putBundle` for reads; when they disagree (a crash between the two writes), the index
 * wins: `putBundle` checks against it, and `EvidenceBundleExists.existing` names what it holds.
 *
 * Concurrency: two runs of one person closing at once both read the same latest entry; only one
 * create of `seq` succeeds, the other gets `EvidenceChainConflict` (retryable: rebuild the bundle
 * against the new latest and store again). The chain never forks.
 *
 * Write order: the evidence files, then manifest.json, then the index entry (the commit point),
 * then the run pointer. A crash before the index entry leaves an uncommitted prefix that the
 * retry overwrites; a crash after it is finished by the retry (same bytes: the builder is
 * deterministic). A run whose committed bundle differs from the one offered is refused
 * (`EvidenceBundleExists`): evidence is written once.
 */
import * as z from 'zod';
import { JmlError } from './errors.ts';
import {
  EMPLOYEE_ID_PATTERN,
  FILE_NAME_PATTERN,
  MANIFEST_FILE,
  RUN_ID_PATTERN,
  contentTypeOf,
  stableJson,
  verifyBundle,
  verifyChain,
  type ChainEntry,
  type EvidenceBundle,
  type VerifyReport,
} from './evidence.ts';
import { sha256Hex } from './hash.ts';
import { parseOrThrow } from './validation.ts';

export const EVIDENCE_ROOT = 'evidence/';

/** Another bundle of the same person was committed first. Rebuild against the new latest and retry. */
export class EvidenceChainConflict extends JmlError {
  constructor(readonly employeeId: string, message: string) {
    super(message);
  }
}

/**
 * The run already has a different committed bundle; evidence is written once. Not retryable.
 * `existing` is the committed bundle, so a close step that crashed after storing it (and rebuilt
 * with a new close time) can record that one instead of failing.
 */
export class EvidenceBundleExists extends JmlError {
  constructor(
    readonly runId: string,
    readonly existing: { prefix: string; manifestSha256: string },
    message: string,
  ) {
    super(message);
  }
}

/** An index entry or run pointer does not have the expected shape. */
export class EvidenceStoreCorrupt extends JmlError {}

/** Raised by a backend for a create-only write whose key exists (or is being created concurrently). */
export class ObjectExists extends Error {
  override name = 'ObjectExists';
  constructor(readonly key: string) {
    super(`${key} already exists`);
  }
}

export interface PutOptions {
  contentType: string;
  /** sha256 of `body`, hex (the backend may send it for server-side checking). */
  sha256: string;
  /** Create only: throw `ObjectExists` if the key exists. */
  ifAbsent?: boolean;
}

/** What an adapter provides. Keys are `/`-separated, relative to the store's bucket or root. */
export interface ObjectBackend {
  put(key: string, body: Uint8Array, options: PutOptions): Promise<void>;
  /** null when the key does not exist. */
  get(key: string): Promise<Uint8Array | null>;
  /** Every key that starts with `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
}

export const PersonIndexEntrySchema = z.strictObject({
  version: z.literal(1),
  seq: z.number().int().positive(),
  runId: z.string().regex(RUN_ID_PATTERN),
  employeeId: z.string().regex(EMPLOYEE_ID_PATTERN),
  prefix: z.string().startsWith(EVIDENCE_ROOT),
  closedAt: z.iso.datetime({ offset: true }),
  manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
  previousManifestSha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
});
export type PersonBundleRef = z.infer<typeof PersonIndexEntrySchema>;

const RunPointerSchema = z.strictObject({
  version: z.literal(1),
  runId: z.string().regex(RUN_ID_PATTERN),
  employeeId: z.string().regex(EMPLOYEE_ID_PATTERN),
  prefix: z.string().startsWith(EVIDENCE_ROOT),
  manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
});
type RunPointer = z.infer<typeof RunPointerSchema>;

export interface StoredBundle {
  prefix: string;
  manifestSha256: string;
  seq: number;
  /** False when the identical bundle was already committed (a retried close step). */
  written: boolean;
}

/** The port. */
export interface EvidenceStore {
  /** Stores a bundle and appends it to its person's chain. See the write protocol above. */
  putBundle(bundle: EvidenceBundle): Promise<StoredBundle>;
  /** One file of a bundle, by run id or by prefix (`evidence/…/`); null when absent. */
  getFile(runIdOrPrefix: string, name: string): Promise<Uint8Array | null>;
  /** File names stored under a bundle prefix, sorted. */
  listRunFiles(prefix: string): Promise<string[]>;
  /** The chain's previous pointer for the person's next bundle; null before their first. */
  latestManifestSha256(employeeId: string): Promise<string | null>;
  /** Every file under the prefix, by name (what `verifyBundle` takes). */
  loadBundle(prefix: string): Promise<Map<string, Uint8Array>>;
  /** The person's index entries, oldest first. */
  personBundles(employeeId: string): Promise<PersonBundleRef[]>;
  /** The bundle prefix of a run, from its run pointer; null when the run has no stored bundle. */
  prefixOf(runId: string): Promise<string | null>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function checkPattern(value: string, pattern: RegExp, what: string): string {
  if (!pattern.test(value)) throw new TypeError(`${what} ${JSON.stringify(value)} is not valid`);
  return value;
}

function normalisePrefix(prefix: string): string {
  const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
  if (!/^evidence\/\d{4}\/\d{2}\/[A-Za-z0-9][A-Za-z0-9._-]*\/$/.test(p)) throw new TypeError(`${JSON.stringify(prefix)} is not a bundle prefix`);
  return p;
}

export const personIndexPrefix = (employeeId: string) =>
  `${EVIDENCE_ROOT}persons/${checkPattern(employeeId, EMPLOYEE_ID_PATTERN, 'employeeId')}/`;
export const personIndexKey = (employeeId: string, seq: number) => `${personIndexPrefix(employeeId)}${String(seq).padStart(8, '0')}.json`;
export const runPointerKey = (runId: string) => `${EVIDENCE_ROOT}runs/${checkPattern(runId, RUN_ID_PATTERN, 'runId')}.json`;

function parseJson<S extends z.ZodType>(schema: S, bytes: Uint8Array, key: string): z.infer<S> {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new EvidenceStoreCorrupt(`${key} is not valid JSON`);
  }
  try {
    return parseOrThrow(schema, json, key);
  } catch (err) {
    throw new EvidenceStoreCorrupt((err as Error).message);
  }
}

/** The store over any object backend. */
export class ChainedEvidenceStore implements EvidenceStore {
  constructor(private readonly backend: ObjectBackend) {}

  async putBundle(bundle: EvidenceBundle): Promise<StoredBundle> {
    const { manifest, manifestSha256 } = bundle;
    const prefix = normalisePrefix(bundle.prefix);
    if (!prefix.endsWith(`/${manifest.runId}/`)) throw new TypeError(`bundle prefix ${prefix} does not end with its run id ${manifest.runId}`);
    // Refuse to store a bundle that would not verify (a caller bug, caught before anything is written).
    const check = verifyBundle(new Map(bundle.files.map((f) => [f.name, f.body])), { expectedManifestSha256: manifestSha256 });
    if (!check.ok) throw new TypeError(`bundle ${manifest.runId} does not verify: ${check.problems.join('; ')}`);

    const index = await this.personBundles(manifest.employeeId);
    const mine = index.find((e) => e.runId === manifest.runId);
    if (mine) {
      if (mine.manifestSha256 !== manifestSha256) {
        throw new EvidenceBundleExists(
          manifest.runId,
          { prefix: mine.prefix, manifestSha256: mine.manifestSha256 },
          `${manifest.runId} already has an evidence bundle (manifest sha256 ${mine.manifestSha256}); evidence is written once`,
        );
      }
      await this.writeRunPointer(mine); // finish a commit interrupted after its index entry
      return { prefix: mine.prefix, manifestSha256, seq: mine.seq, written: false };
    }
    const latest = index.at(-1);
    const latestSha = latest?.manifestSha256 ?? null;
    if (latestSha !== manifest.previousManifestSha256) {
      throw new EvidenceChainConflict(
        manifest.employeeId,
        `the latest evidence bundle of ${manifest.employeeId} has manifest sha256 ${latestSha ?? 'null'} (${latest?.runId ?? 'none'}), ` +
          `but ${manifest.runId} points to ${manifest.previousManifestSha256 ?? 'null'}: rebuild it against the latest and retry`,
      );
    }

    // Files, then the manifest last: a reader never sees a manifest whose files are not there yet.
    const ordered = [...bundle.files.filter((f) => f.name !== MANIFEST_FILE), ...bundle.files.filter((f) => f.name === MANIFEST_FILE)];
    for (const f of ordered) {
      checkPattern(f.name, FILE_NAME_PATTERN, 'file name');
      const body = encoder.encode(f.body);
      await this.backend.put(`${prefix}${f.name}`, body, { contentType: f.contentType, sha256: sha256Hex(body) });
    }

    const entry: PersonBundleRef = {
      version: 1,
      seq: (latest?.seq ?? 0) + 1,
      runId: manifest.runId,
      employeeId: manifest.employeeId,
      prefix,
      closedAt: manifest.createdAt,
      manifestSha256,
      previousManifestSha256: manifest.previousManifestSha256,
    };
    const key = personIndexKey(entry.employeeId, entry.seq);
    const body = encoder.encode(stableJson(entry));
    try {
      await this.backend.put(key, body, { contentType: contentTypeOf(key), sha256: sha256Hex(body), ifAbsent: true });
    } catch (err) {
      if (err instanceof ObjectExists) {
        throw new EvidenceChainConflict(
          entry.employeeId,
          `another evidence bundle of ${entry.employeeId} was committed at position ${entry.seq} while ${entry.runId} was being stored: rebuild it against the latest and retry`,
        );
      }
      throw err;
    }
    await this.writeRunPointer(entry);
    return { prefix, manifestSha256, seq: entry.seq, written: true };
  }

  private async writeRunPointer(entry: PersonBundleRef): Promise<void> {
    const pointer: RunPointer = {
      version: 1,
      runId: entry.runId,
      employeeId: entry.employeeId,
      prefix: entry.prefix,
      manifestSha256: entry.manifestSha256,
    };
    const key = runPointerKey(entry.runId);
    const body = encoder.encode(stableJson(pointer));
    try {
      await this.backend.put(key, body, { contentType: contentTypeOf(key), sha256: sha256Hex(body), ifAbsent: true });
    } catch (err) {
      if (!(err instanceof ObjectExists)) throw err;
      const existing = await this.readRunPointer(entry.runId);
      if (existing?.manifestSha256 !== entry.manifestSha256) {
        throw new EvidenceStoreCorrupt(`${key} points to manifest ${existing?.manifestSha256 ?? '(unreadable)'}, not ${entry.manifestSha256}`);
      }
    }
  }

  private async readRunPointer(runId: string): Promise<RunPointer | null> {
    const key = runPointerKey(runId);
    const bytes = await this.backend.get(key);
    return bytes ? parseJson(RunPointerSchema, bytes, key) : null;
  }

  async prefixOf(runId: string): Promise<string | null> {
    return (await this.readRunPointer(runId))?.prefix ?? null;
  }

  async getFile(runIdOrPrefix: string, name: string): Promise<Uint8Array | null> {
    checkPattern(name, FILE_NAME_PATTERN, 'file name');
    const prefix = runIdOrPrefix.startsWith(EVIDENCE_ROOT) ? normalisePrefix(runIdOrPrefix) : await this.prefixOf(runIdOrPrefix);
    return prefix ? this.backend.get(`${prefix}${name}`) : null;
  }

  async listRunFiles(prefix: string): Promise<string[]> {
    const p = normalisePrefix(prefix);
    const keys = await this.backend.list(p);
    return keys.map((k) => k.slice(p.length)).filter((n) => n !== '' && !n.includes('/')).sort();
  }

  async loadBundle(prefix: string): Promise<Map<string, Uint8Array>> {
    const p = normalisePrefix(prefix);
    const out = new Map<string, Uint8Array>();
    for (const name of await this.listRunFiles(p)) {
      const body = await this.backend.get(`${p}${name}`);
      if (body) out.set(name, body);
    }
    return out;
  }

  async personBundles(employeeId: string): Promise<PersonBundleRef[]> {
    const prefix = personIndexPrefix(employeeId);
    const keys = (await this.backend.list(prefix)).filter((k) => /^\d{8}\.json$/.test(k.slice(prefix.length)));
    const bodies = await Promise.all(keys.map((key) => this.backend.get(key)));
    // An entry listed, then gone, is skipped: verifyPersonChain reports the gap in `seq`.
    return keys.flatMap((key, i) => (bodies[i] ? [parseJson(PersonIndexEntrySchema, bodies[i], key)] : []));
  }

  async latestManifestSha256(employeeId: string): Promise<string | null> {
    const prefix = personIndexPrefix(employeeId);
    const keys = (await this.backend.list(prefix)).filter((k) => /^\d{8}\.json$/.test(k.slice(prefix.length)));
    const last = keys.at(-1);
    if (!last) return null;
    const bytes = await this.backend.get(last);
    if (!bytes) throw new EvidenceStoreCorrupt(`${last} was listed but cannot be read`);
    return parseJson(PersonIndexEntrySchema, bytes, last).manifestSha256;
  }
}

// ---------------------------------------------------------------------------------------------
// Verification use cases over a store (what `jml evidence verify` runs).

/** Verifies one stored bundle against its manifest and the hash recorded when it was stored. */
export async function verifyStoredBundle(store: EvidenceStore, runIdOrPrefix: string): Promise<VerifyReport & { prefix: string | null }> {
  const prefix = runIdOrPrefix.startsWith(EVIDENCE_ROOT) ? runIdOrPrefix : await store.prefixOf(runIdOrPrefix);
  if (!prefix) return { ok: false, problems: [`no evidence bundle is recorded for ${runIdOrPrefix}`], prefix: null };
  const files = await store.loadBundle(prefix);
  const first = verifyBundle(files);
  const recorded = first.manifest
    ? (await store.personBundles(first.manifest.employeeId)).find((e) => e.prefix === normalisePrefix(prefix))
    : undefined;
  const report = recorded ? verifyBundle(files, { expectedManifestSha256: recorded.manifestSha256, runId: recorded.runId }) : first;
  if (first.manifest && !recorded) report.problems.push(`${prefix} is not in the evidence index of ${first.manifest.employeeId}`);
  report.ok = report.problems.length === 0;
  return { ...report, prefix };
}

export interface VerifyPersonChainOptions {
  /**
   * Bundles recorded outside the store (the run ledger's `RunRecord.evidence`). The newest
   * bundle is pinned only by its index entry; if both were removed, only an outside record shows it.
   */
  recorded?: ReadonlyArray<{ runId: string; prefix: string; manifestSha256: string }>;
}

/** Verifies a person's whole chain: every bundle in their index, in order. */
export async function verifyPersonChain(
  store: EvidenceStore,
  employeeId: string,
  options: VerifyPersonChainOptions = {},
): Promise<{ ok: boolean; problems: string[]; bundles: number }> {
  const index = await store.personBundles(employeeId);
  const problems: string[] = [];
  for (const r of options.recorded ?? []) {
    const entry = index.find((e) => e.runId === r.runId);
    if (!entry) problems.push(`bundle ${r.runId} (${r.prefix}) is recorded in the run ledger but missing from the evidence index of ${employeeId}`);
    else if (entry.manifestSha256 !== r.manifestSha256) {
      problems.push(`bundle ${r.runId}: the run ledger recorded manifest sha256 ${r.manifestSha256}, the evidence index ${entry.manifestSha256}`);
    }
  }
  let expected = 1;
  for (const e of index) {
    if (e.seq !== expected) {
      const gap = e.seq - 1 === expected ? `entry ${expected} is` : `entries ${expected}–${e.seq - 1} are`;
      problems.push(`the evidence index of ${employeeId} is incomplete: ${gap} missing before ${e.runId} (${e.closedAt})`);
    }
    expected = e.seq + 1;
  }
  const entries: ChainEntry[] = [];
  for (const e of index) {
    entries.push({ manifest: await store.getFile(e.prefix, MANIFEST_FILE), runId: e.runId, closedAt: e.closedAt, manifestSha256: e.manifestSha256 });
  }
  // Index entries whose recorded previous does not match the chain are caught by verifyChain via the manifests.
  const chain = verifyChain(entries);
  problems.push(...chain.problems);
  return { ok: problems.length === 0, problems, bundles: index.length };
}
