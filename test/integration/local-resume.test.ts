/**
 * The local runtime resumes every open run after a restart, also one a kill tore out of the
 * ledger's status index: dynalite moves an item's index entries before it writes the item, so a
 * runtime killed in between leaves the run in the table under its old status, missing from that
 * status's partition and listed under one it never got.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keys } from '#aws/table';
import { startLocalStack, TABLE_NAME, type LocalStack } from '#local/stack';
import { hrEvent, MANAGERS, seedPeople, send, waitForStatus } from '../helpers/stack.ts';
import { tearIndexWrite } from '../helpers/torn-write.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'jml-resume-'));
let stack: LocalStack | undefined;
afterAll(async () => {
  await stack?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('local runtime restart', () => {
  it('starts a run the kill left recorded, enqueued in memory only, and torn out of its status index', async () => {
    stack = await startLocalStack({ dataDir, retryIntervalMs: 5 });
    await seedPeople(stack);
    // The runtime records and enqueues the event, and dies before its consumer takes the message.
    stack.queue.send = async () => undefined;
    // A change of a person already in the ledger: a run that needs nobody's approval.
    const moved = { ...MANAGERS[0]!, department: 'Sales' };
    const { runId } = await send(stack, hrEvent('change', moved, { effectiveDate: '2026-01-05' }));
    await stack.close();
    // ... in the middle of a write to the run: its RECEIVED index entry deleted, a PLANNED one
    // put, the run itself not written.
    await tearIndexWrite(join(dataDir, 'dynamodb'), TABLE_NAME, keys.run(runId), { status: 'PLANNED', gsi2pk: 'STATUS#PLANNED', gsi2sk: `2030-01-01T00:00:00.000Z#${runId}` });

    stack = await startLocalStack({ dataDir, retryIntervalMs: 5 });
    expect(stack.resumed).toContain(runId);
    // Listed under its own status again, not under the one it never got (the read API and the
    // CLI find it where it is), and worked off.
    expect((await stack.deps.ledger.listRunsByStatus('RECEIVED')).map((r) => r.runId)).toContain(runId);
    expect((await stack.deps.ledger.listRunsByStatus('PLANNED')).map((r) => r.runId)).not.toContain(runId);
    await waitForStatus(stack, runId, ['COMPLETED', 'EXCEPTION_OPEN'], 30_000);
    await stack.settle();
    expect((await stack.deps.ledger.getPerson(moved.employeeId))!.worker.department).toBe('Sales');
  }, 60_000);
});
