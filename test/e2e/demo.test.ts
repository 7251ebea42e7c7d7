/**
 * The README's main command, as a user runs it: `npm run demo` plays hire → change →
 * termination → reconciliation through signed webhooks and emailed links, checks every outcome
 * against the targets' own APIs, and exits 0 only when every step did what it should.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../..', import.meta.url));

describe('npm run demo', () => {
  it('plays the whole JML cycle and exits 0', () => {
    const r = spawnSync('npm', ['run', '-s', 'demo'], { cwd: repo, encoding: 'utf8', timeout: 240_000, env: { ...process.env, FORCE_COLOR: '0' } });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(out, out).toContain('✔ every step did what it should');
    expect(r.status, out).toBe(0);
    expect(out).not.toContain('✘');
    expect(out).toMatch(/time to disable: \d+\.\d+ s/);
    expect(out).toMatch(/Ada's \d+ bundles \(hire, change, termination, retention delete\) form an unbroken hash chain/);
  }, 300_000);
});
