/**
 * A throwaway certificate authority and a loopback server certificate for the https stand-ins.
 *
 * Why a real CA instead of switching verification off: the Graph client only attaches its bearer
 * token to https URLs, and the product must keep Node's default TLS verification on every path.
 * So the stand-in serves a certificate for 127.0.0.1 / localhost signed by a local CA, and Node
 * trusts that CA through `NODE_EXTRA_CA_CERTS` — which Node reads once, when a process starts.
 * Callers therefore create the material *before* the processes that make requests are started
 * (vitest global setup, the `npm run local` launcher) and point the variable at `caPath`.
 *
 * Material lives in a stable directory (default `.jml-local/tls/`, git-ignored) and is reused
 * while it is valid, so a CA trusted by a long-running shell keeps working across runs. It is
 * made with the `openssl` CLI (no network). Private keys are written 0600 and never logged.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LocalTls {
  /** PEM file of the throwaway CA: the value for `NODE_EXTRA_CA_CERTS`. */
  caPath: string;
  /** PEM private key of the server certificate. */
  key: string;
  /** PEM server certificate (SAN IP:127.0.0.1, DNS:localhost), signed by the CA. */
  cert: string;
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Directory used when neither an argument nor `JML_LOCAL_TLS_DIR` says otherwise. */
export const DEFAULT_TLS_DIR = join(REPO_ROOT, '.jml-local', 'tls');

const CA_FILE = 'ca.pem';
const CA_KEY_FILE = 'ca-key.pem';
const CERT_FILE = 'server.pem';
const KEY_FILE = 'server-key.pem';
/** Regenerate when the server certificate expires within this window. */
const MIN_REMAINING_MS = 7 * 24 * 60 * 60 * 1000;
const VALID_DAYS = 825;

/**
 * Returns the CA path and the server key/cert, creating them on first use (or when the stored
 * ones are missing, broken, not chained to the CA, or about to expire).
 */
export function ensureLocalTls(dir: string = process.env.JML_LOCAL_TLS_DIR ?? DEFAULT_TLS_DIR): LocalTls {
  const existing = readValid(dir);
  if (existing) return existing;
  generate(dir);
  const made = readValid(dir);
  if (!made) throw new Error(`local TLS: generated material in ${dir} does not verify`);
  return made;
}

function readValid(dir: string): LocalTls | undefined {
  const caPath = join(dir, CA_FILE);
  const paths = [caPath, join(dir, CERT_FILE), join(dir, KEY_FILE)];
  if (!paths.every((p) => existsSync(p))) return undefined;
  try {
    const caPem = readFileSync(caPath, 'utf8');
    const cert = readFileSync(join(dir, CERT_FILE), 'utf8');
    const key = readFileSync(join(dir, KEY_FILE), 'utf8');
    const ca = new X509Certificate(caPem);
    const leaf = new X509Certificate(cert);
    if (!ca.ca || !leaf.verify(ca.publicKey) || !leaf.checkIP('127.0.0.1') || !leaf.checkHost('localhost')) {
      return undefined;
    }
    if (Date.parse(leaf.validTo) - Date.now() < MIN_REMAINING_MS) return undefined;
    if (Date.parse(ca.validTo) - Date.now() < MIN_REMAINING_MS) return undefined;
    if (!leaf.checkPrivateKey(createPrivateKey(key))) return undefined;
    return { caPath, key, cert };
  } catch {
    // Unreadable or malformed material is replaced, not trusted.
    return undefined;
  }
}

/**
 * Writes a fresh CA and server certificate into a temporary sibling directory and renames it
 * into place, so a concurrent reader never sees half a set. If another process won the race,
 * its (equally valid) set is kept.
 */
function generate(dir: string): void {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  const work = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  mkdirSync(work, { recursive: true, mode: 0o700 });
  try {
    const p = (f: string) => join(work, f);
    const run = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

    writeFileSync(
      p('ca.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        'x509_extensions = v3_ca',
        '[dn]',
        'CN = jml local stand-in CA (throwaway)',
        '[v3_ca]',
        'basicConstraints = critical, CA:TRUE, pathlen:0',
        'keyUsage = critical, keyCertSign, cRLSign',
        'subjectKeyIdentifier = hash',
        '',
      ].join('\n'),
    );
    writeFileSync(
      p('server.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        'CN = 127.0.0.1',
        '[v3_server]',
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature, keyEncipherment',
        'extendedKeyUsage = serverAuth',
        'subjectAltName = IP:127.0.0.1, DNS:localhost',
        'authorityKeyIdentifier = keyid',
        'subjectKeyIdentifier = hash',
        '',
      ].join('\n'),
    );

    const ec = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    run(['genpkey', ...ec, '-out', p(CA_KEY_FILE)]);
    run([
      'req', '-x509', '-new', '-key', p(CA_KEY_FILE), '-sha256', '-days', String(VALID_DAYS),
      '-config', p('ca.cnf'), '-out', p(CA_FILE),
    ]);
    run(['genpkey', ...ec, '-out', p(KEY_FILE)]);
    run(['req', '-new', '-key', p(KEY_FILE), '-config', p('server.cnf'), '-out', p('server.csr')]);
    run([
      'x509', '-req', '-in', p('server.csr'), '-CA', p(CA_FILE), '-CAkey', p(CA_KEY_FILE),
      '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(VALID_DAYS), '-sha256',
      '-extfile', p('server.cnf'), '-extensions', 'v3_server', '-out', p(CERT_FILE),
    ]);
    chmodSync(p(CA_KEY_FILE), 0o600);
    chmodSync(p(KEY_FILE), 0o600);
    for (const f of ['ca.cnf', 'server.cnf', 'server.csr']) rmSync(p(f));

    if (existsSync(dir)) {
      if (readValid(dir)) return; // someone else just made a valid set
      rmSync(dir, { recursive: true, force: true });
    }
    try {
      renameSync(work, dir);
    } catch (err) {
      if (!readValid(dir)) throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
