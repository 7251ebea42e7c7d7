/**
 * Vitest global setup: runs once in the main process before any test worker is forked.
 *
 * The https stand-ins (Graph) present a certificate from a throwaway local CA. Node reads
 * `NODE_EXTRA_CA_CERTS` only when a process starts, so it is set here, before the `forks` pool
 * starts its workers (they inherit this environment). TLS verification stays on everywhere.
 * If the caller already trusts extra CAs (a corporate bundle, say), the workers get a bundle of
 * those plus ours, so nothing the caller trusted is lost.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ensureLocalTls } from '#local/standins/tls';

export default function setup(): void {
  const { caPath } = ensureLocalTls();
  const current = process.env.NODE_EXTRA_CA_CERTS;
  if (!current || resolve(current) === caPath || !existsSync(current)) {
    process.env.NODE_EXTRA_CA_CERTS = caPath;
    return;
  }
  const bundle = join(dirname(caPath), 'extra-ca-bundle.pem');
  const content = `${readFileSync(current, 'utf8').trimEnd()}\n${readFileSync(caPath, 'utf8')}`;
  if (!existsSync(bundle) || readFileSync(bundle, 'utf8') !== content) {
    // Other test runs may read the bundle right now: replace it atomically.
    const tmp = `${bundle}.${process.pid}.tmp`;
    writeFileSync(tmp, content);
    renameSync(tmp, bundle);
  }
  process.env.NODE_EXTRA_CA_CERTS = bundle;
}
