import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  SIGNATURE_FAILURES,
  describeSignatureFailure,
  signCanonical,
  verifyCanonical,
  type HeaderSource,
} from '#core/signature';

const secret = () => randomBytes(32).toString('base64url');
const NOW = 1_767_225_600; // 2026-01-01T00:00:00Z

const secretArb = fc.string({ minLength: 1, maxLength: 64 });
const bodyArb = fc.uint8Array({ minLength: 1, maxLength: 2048 });
const timeArb = fc.integer({ min: 1_000_000_000, max: 4_000_000_000 });
const skewArb = fc.integer({ min: -300, max: 300 });

function headersFor(s: string, body: string | Uint8Array, ts: number): Record<string, string> {
  return { ...signCanonical(s, body, ts) };
}

/** Replaces the character at `i` with a different printable ASCII character. */
function mutateChar(value: string, i: number, replacement: number): string {
  const old = value.charCodeAt(i);
  let code = 0x20 + (replacement % 95);
  if (code === old) code = 0x20 + ((replacement + 1) % 95);
  return value.slice(0, i) + String.fromCharCode(code) + value.slice(i + 1);
}

describe('signCanonical / verifyCanonical — properties', () => {
  it('a request signed with the secret verifies for any body, secret and time in the window', () => {
    fc.assert(
      fc.property(secretArb, bodyArb, timeArb, skewArb, (s, body, ts, skew) => {
        const r = verifyCanonical({ secret: s, rawBody: body, headers: headersFor(s, body, ts), nowSeconds: ts + skew });
        expect(r).toEqual({ ok: true });
      }),
      { numRuns: 300 },
    );
  });

  it('verifies a string body against the same bytes received as a Buffer (UTF-8)', () => {
    fc.assert(
      fc.property(secretArb, fc.string({ minLength: 1, maxLength: 500 }), timeArb, (s, body, ts) => {
        const r = verifyCanonical({ secret: s, rawBody: Buffer.from(body, 'utf8'), headers: headersFor(s, body, ts), nowSeconds: ts });
        expect(r.ok).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('any single-byte change of the body fails as bad_signature', () => {
    fc.assert(
      fc.property(secretArb, bodyArb, timeArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (s, body, ts, pos, delta) => {
        const headers = headersFor(s, body, ts);
        const tampered = Uint8Array.from(body);
        const i = pos % tampered.length;
        tampered[i] = (tampered[i]! + delta) % 256;
        const r = verifyCanonical({ secret: s, rawBody: tampered, headers, nowSeconds: ts });
        expect(r).toEqual({ ok: false, reason: 'bad_signature' });
      }),
      { numRuns: 300 },
    );
  });

  it('any single-byte change of the timestamp header fails', () => {
    fc.assert(
      fc.property(secretArb, bodyArb, timeArb, fc.nat(), fc.nat(), (s, body, ts, pos, repl) => {
        const headers = headersFor(s, body, ts);
        const original = headers['X-JML-Timestamp']!;
        headers['X-JML-Timestamp'] = mutateChar(original, pos % original.length, repl);
        const r = verifyCanonical({ secret: s, rawBody: body, headers, nowSeconds: ts });
        expect(r.ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('any single-byte change of the signature header fails', () => {
    fc.assert(
      fc.property(secretArb, bodyArb, timeArb, fc.nat(), fc.nat(), (s, body, ts, pos, repl) => {
        const headers = headersFor(s, body, ts);
        const original = headers['X-JML-Signature']!;
        headers['X-JML-Signature'] = mutateChar(original, pos % original.length, repl);
        const r = verifyCanonical({ secret: s, rawBody: body, headers, nowSeconds: ts });
        expect(r.ok).toBe(false);
        if (!r.ok) expect(['bad_signature', 'malformed_signature']).toContain(r.reason);
      }),
      { numRuns: 300 },
    );
  });

  it('a correctly signed request outside the ±300 s window fails as stale_timestamp', () => {
    fc.assert(
      fc.property(
        secretArb,
        bodyArb,
        timeArb,
        fc.integer({ min: 301, max: 10_000_000 }),
        fc.boolean(),
        (s, body, ts, distance, future) => {
          const r = verifyCanonical({
            secret: s,
            rawBody: body,
            headers: headersFor(s, body, ts),
            nowSeconds: future ? ts - distance : ts + distance,
          });
          expect(r).toEqual({ ok: false, reason: 'stale_timestamp' });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a request signed with another secret fails as bad_signature', () => {
    fc.assert(
      fc.property(secretArb, secretArb, bodyArb, timeArb, (s, other, body, ts) => {
        fc.pre(s !== other);
        const r = verifyCanonical({ secret: s, rawBody: body, headers: headersFor(other, body, ts), nowSeconds: ts });
        expect(r).toEqual({ ok: false, reason: 'bad_signature' });
      }),
      { numRuns: 300 },
    );
  });
});

describe('verifyCanonical — contract details', () => {
  const body = JSON.stringify({ eventId: 'e-1', eventType: 'hire' });

  it('honours a custom tolerance at its edges', () => {
    const s = secret();
    const headers = headersFor(s, body, NOW);
    expect(verifyCanonical({ secret: s, rawBody: body, headers, nowSeconds: NOW + 60, toleranceSeconds: 60 }).ok).toBe(true);
    expect(verifyCanonical({ secret: s, rawBody: body, headers, nowSeconds: NOW + 61, toleranceSeconds: 60 })).toEqual({
      ok: false,
      reason: 'stale_timestamp',
    });
    expect(verifyCanonical({ secret: s, rawBody: body, headers, nowSeconds: NOW - 300 }).ok).toBe(true);
    expect(verifyCanonical({ secret: s, rawBody: body, headers, nowSeconds: NOW - 301 }).ok).toBe(false);
  });

  it('reads header names case-insensitively, from plain objects, Node arrays and fetch Headers', () => {
    const s = secret();
    const h = signCanonical(s, body, NOW);
    const variants: HeaderSource[] = [
      { 'x-jml-timestamp': h['X-JML-Timestamp'], 'x-jml-signature': h['X-JML-Signature'] },
      { 'X-JML-TIMESTAMP': h['X-JML-Timestamp'], 'x-Jml-Signature': h['X-JML-Signature'] },
      { 'x-jml-timestamp': [h['X-JML-Timestamp']], 'x-jml-signature': [h['X-JML-Signature']] },
      new Headers(h),
    ];
    for (const headers of variants) {
      expect(verifyCanonical({ secret: s, rawBody: body, headers, nowSeconds: NOW })).toEqual({ ok: true });
    }
  });

  it('rotation: accepts any v1 entry against any configured secret', () => {
    const oldSecret = secret();
    const newSecret = secret();
    const byOld = signCanonical(oldSecret, body, NOW)['X-JML-Signature'];
    const byNew = signCanonical(newSecret, body, NOW)['X-JML-Signature'];
    const ts = String(NOW);

    // The sender signs with both secrets; the receiver has moved on to the new one.
    const both = { 'X-JML-Timestamp': ts, 'X-JML-Signature': `${byOld}, ${byNew}` };
    expect(verifyCanonical({ secret: newSecret, rawBody: body, headers: both, nowSeconds: NOW }).ok).toBe(true);
    expect(verifyCanonical({ secret: oldSecret, rawBody: body, headers: both, nowSeconds: NOW }).ok).toBe(true);

    // The receiver holds both secrets; the sender still uses the old one.
    const oldOnly = { 'X-JML-Timestamp': ts, 'X-JML-Signature': byOld };
    expect(verifyCanonical({ secret: [newSecret, oldSecret], rawBody: body, headers: oldOnly, nowSeconds: NOW }).ok).toBe(true);
    expect(verifyCanonical({ secret: [newSecret], rawBody: body, headers: oldOnly, nowSeconds: NOW })).toEqual({
      ok: false,
      reason: 'bad_signature',
    });

    // Repeated headers (Node keeps them as an array) are one list of entries.
    const repeated = { 'x-jml-timestamp': ts, 'x-jml-signature': [byOld, byNew] };
    expect(verifyCanonical({ secret: newSecret, rawBody: body, headers: repeated, nowSeconds: NOW }).ok).toBe(true);
  });

  it('skips entries of other schemes but needs at least one v1 entry', () => {
    const s = secret();
    const h = signCanonical(s, body, NOW);
    const withV0 = { ...h, 'X-JML-Signature': `v0=${'0'.repeat(64)},${h['X-JML-Signature']}` };
    expect(verifyCanonical({ secret: s, rawBody: body, headers: withV0, nowSeconds: NOW }).ok).toBe(true);
    const onlyV2 = { ...h, 'X-JML-Signature': h['X-JML-Signature'].replace('v1=', 'v2=') };
    expect(verifyCanonical({ secret: s, rawBody: body, headers: onlyV2, nowSeconds: NOW })).toEqual({
      ok: false,
      reason: 'malformed_signature',
    });
  });

  it('names each failure precisely', () => {
    const s = secret();
    const h = signCanonical(s, body, NOW);
    const digest = h['X-JML-Signature'].slice(3);
    const cases: Array<[HeaderSource, string]> = [
      [{ 'X-JML-Signature': h['X-JML-Signature'] }, 'missing_timestamp'],
      [{ ...h, 'X-JML-Timestamp': '2026-01-01T00:00:00Z' }, 'missing_timestamp'],
      [{ ...h, 'X-JML-Timestamp': '-5' }, 'missing_timestamp'],
      [{ 'x-jml-timestamp': [String(NOW), String(NOW + 1)], 'X-JML-Signature': h['X-JML-Signature'] }, 'missing_timestamp'],
      [{ 'X-JML-Timestamp': h['X-JML-Timestamp'] }, 'missing_signature'],
      [{ ...h, 'X-JML-Signature': '  ' }, 'missing_signature'],
      [{ ...h, 'X-JML-Signature': digest }, 'malformed_signature'],
      [{ ...h, 'X-JML-Signature': `sha256=${digest}` }, 'malformed_signature'],
      [{ ...h, 'X-JML-Signature': `v1=${digest.toUpperCase()}` }, 'malformed_signature'],
      [{ ...h, 'X-JML-Signature': `v1=${digest.slice(2)}` }, 'malformed_signature'],
      [{ ...h, 'X-JML-Signature': Array.from({ length: 9 }, () => h['X-JML-Signature']).join(',') }, 'malformed_signature'],
      [{ ...h, 'X-JML-Timestamp': String(NOW - 3600) }, 'stale_timestamp'],
      [{ ...h, 'X-JML-Signature': `v1=${'ab'.repeat(32)}` }, 'bad_signature'],
    ];
    for (const [headers, reason] of cases) {
      expect(verifyCanonical({ secret: s, rawBody: body, headers, nowSeconds: NOW })).toEqual({ ok: false, reason });
    }
  });

  it('refuses to run without a secret rather than accept or reject everything', () => {
    const h = signCanonical(secret(), body, NOW);
    expect(() => verifyCanonical({ secret: '', rawBody: body, headers: h, nowSeconds: NOW })).toThrow(/no signing secret configured/);
    expect(() => verifyCanonical({ secret: [], rawBody: body, headers: h, nowSeconds: NOW })).toThrow(/no signing secret configured/);
    expect(() => signCanonical(secret(), body, 1.5)).toThrow(RangeError);
  });

  it('gives a message per reason that names the header and never echoes a secret or signature', () => {
    const s = secret();
    const h = signCanonical(s, body, NOW);
    const messages = SIGNATURE_FAILURES.map((r) => describeSignatureFailure(r));
    expect(new Set(messages).size).toBe(SIGNATURE_FAILURES.length);
    for (const m of messages) {
      expect(m).toMatch(/X-JML-(Timestamp|Signature)/);
      expect(m).not.toContain(s);
      expect(m).not.toContain(h['X-JML-Signature'].slice(3, 19));
    }
    expect(describeSignatureFailure('stale_timestamp')).toContain('300 s');
  });
});

describe('the documented openssl one-liner', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jml-sig-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('produces the signature signCanonical produces, trailing newline included', () => {
    const s = secret();
    const file = join(dir, 'event.json');
    const raw = `${JSON.stringify({ eventId: 'e-42', eventType: 'change', worker: { givenName: 'Zoë' } }, null, 2)}\n`;
    writeFileSync(file, raw);
    // Same pipeline as docs/hris.md; the secret travels in the environment, not in the script text.
    const script = `{ printf '%s.' "$TS"; cat "$FILE"; } | openssl dgst -sha256 -hmac "$JML_HRIS_WEBHOOK_SECRET" -r | cut -d' ' -f1`;
    const out = execFileSync('bash', ['-c', script], {
      env: { PATH: process.env.PATH, TS: String(NOW), FILE: file, JML_HRIS_WEBHOOK_SECRET: s },
      encoding: 'utf8',
    }).trim();
    expect(`v1=${out}`).toBe(signCanonical(s, raw, NOW)['X-JML-Signature']);
    expect(verifyCanonical({ secret: s, rawBody: raw, headers: { 'X-JML-Timestamp': String(NOW), 'X-JML-Signature': `v1=${out}` }, nowSeconds: NOW }).ok).toBe(true);
  });
});
