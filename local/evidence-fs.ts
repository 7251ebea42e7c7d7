/**
 * Evidence bundles on the local filesystem (local mode and the demo): the same port and storage
 * protocol as S3 (`#core/evidence-store`), with keys mapped to paths under `root`. With the
 * default root `.jml-local`, bundles land in `.jml-local/evidence/{yyyy}/{mm}/{runId}/`.
 *
 * Writes are atomic: the bytes go to a temporary file in the same directory, are fsynced, then
 * renamed over the final name (a reader sees the old file or the new one, never half of one).
 * Create-only writes (chain index entries, run pointers) use a hard link instead of a rename:
 * `link` fails with EEXIST if the name exists, so two writers cannot both create it — the local
 * counterpart of S3's `If-None-Match: *`. There is no Object Lock on disk; local evidence is
 * tamper-evident (verify reports edits), not tamper-proof. Files are private to the user (0600):
 * they hold personal data.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { EvidenceStore, ObjectBackend, PutOptions } from '#core/evidence-store';
import { ChainedEvidenceStore, ObjectExists } from '#core/evidence-store';

export const DEFAULT_LOCAL_ROOT = '.jml-local';

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const TEMP = /\.tmp-[0-9a-f]{12}$/;

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

export class FsObjectBackend implements ObjectBackend {
  readonly root: string;

  constructor(root: string = DEFAULT_LOCAL_ROOT) {
    this.root = resolve(root);
  }

  /** Keys are relative, `/`-separated, and every segment is a plain name: nothing escapes root. */
  private pathOf(key: string): string {
    const segments = key.split('/');
    if (!segments.every((s) => SEGMENT.test(s) && !TEMP.test(s))) throw new TypeError(`${JSON.stringify(key)} is not a valid evidence key`);
    return join(this.root, ...segments);
  }

  async put(key: string, body: Uint8Array, options: PutOptions): Promise<void> {
    const path = this.pathOf(key);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      if (options.ifAbsent) await link(tmp, path);
      else await rename(tmp, path);
    } catch (err) {
      if (options.ifAbsent && code(err) === 'EEXIST') throw new ObjectExists(key);
      throw err;
    } finally {
      await rm(tmp, { force: true }); // after link (both names exist) or a failed rename
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await readFile(this.pathOf(key)));
    } catch (err) {
      if (code(err) === 'ENOENT' || code(err) === 'ENOTDIR') return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    // Walk from the deepest directory the prefix names, then filter by the full prefix.
    const cut = prefix.lastIndexOf('/');
    const dirKey = cut >= 0 ? prefix.slice(0, cut) : '';
    const start = dirKey ? this.pathOf(dirKey) : this.root;
    const keys: string[] = [];
    const walk = async (dir: string, keyPrefix: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (code(err) === 'ENOENT' || code(err) === 'ENOTDIR') return;
        throw err;
      }
      for (const e of entries) {
        const key = keyPrefix ? `${keyPrefix}/${e.name}` : e.name;
        if (e.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) await walk(join(dir, e.name), key);
        } else if (e.isFile() && !TEMP.test(e.name) && key.startsWith(prefix)) {
          keys.push(key);
        }
      }
    };
    await walk(start, dirKey);
    return keys.sort();
  }
}

export function fsEvidenceStore(root: string = DEFAULT_LOCAL_ROOT): EvidenceStore {
  return new ChainedEvidenceStore(new FsObjectBackend(root));
}
