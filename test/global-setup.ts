/**
 * Vitest global setup: runs once in the main process before any test worker is forked.
 *
 * The https stand-ins (Graph) present a certificate from a throwaway local CA. Node reads
 * `NODE_EXTRA_CA_CERTS` only when a process starts, so it is set here, before the `forks` pool
 * starts its workers (they inherit this environment). TLS verification stays on everywhere.
 * If the caller already trusts extra CAs, a bundle of theirs plus ours is used instead.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ensureLocalTls } from '#local/standins/tls';

export default function setup(): void {
  const { caPath } = ensureLocalTls();
  const current = process.env.NODE_EXTRA_CA_CERTS;
  if (!current || resolve(current) === caPath) {
    process.env.NODE_EXTRA_CA_CERTS = caPath;
    return;
  }
  const bundle = join(dirname(caPath), 'extra-ca-bundle.pem');
  const theirs = existsSync(current) ? readFileSync(current, 'utf8') : '';
  writeFileSync(bundle, `${theirs.trimEnd()}\n${readFileSync(caPath, 'utf8')}`);
  process.env.NODE_EXTRA_CA_CERTS = bundle;
}
