/**
 * The local runtime resumes every open run after a restart, also one a kill left out of the
 * ledger's status index: dynalite deletes an item's old index entries before it writes the new
 * ones, so a runtime killed in between leaves the run in the table but in no status partition.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import { GSI2, keys } from '#aws/table';
import { startLocalStack, TABLE_NAME, type LocalStack } from '#local/stack';
import { hrEvent, MANAGERS, seedPeople, send, waitForStatus } from '../helpers/stack.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'jml-resume-'));
let stack: LocalStack | undefined;
afterAll(async () => {
  await stack?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('local runtime restart', () => {
  it('starts a run the kill left recorded, enqueued in memory only, and out of the status index', async () => {
    stack = await startLocalStack({ dataDir, retryIntervalMs: 5 });
    await seedPeople(stack);
    // The runtime records and enqueues the event, and dies before its consumer takes the message.
    stack.queue.send = async () => undefined;
    // A change of a person already in the ledger: a run that needs nobody's approval.
    const moved = { ...MANAGERS[0]!, department: 'Sales' };
    const { runId } = await send(stack, hrEvent('change', moved, { effectiveDate: '2026-01-05' }));
    // ... in the middle of a write to the run: its old status-index entry deleted, no new one.
    await stack.dynamo.client.send(
      new UpdateCommand({ TableName: TABLE_NAME, Key: keys.run(runId), UpdateExpression: 'REMOVE #pk, #sk', ExpressionAttributeNames: { '#pk': GSI2.pk, '#sk': GSI2.sk } }),
    );
    expect(await stack.deps.ledger.getRun(runId)).toMatchObject({ status: 'RECEIVED' });
    expect((await stack.deps.ledger.listRunsByStatus('RECEIVED')).map((r) => r.runId)).not.toContain(runId);
    await stack.close();

    stack = await startLocalStack({ dataDir, retryIntervalMs: 5 });
    expect(stack.resumed).toContain(runId);
    // Listed by status again (the read API and the CLI find it), and worked off.
    const listed = (await Promise.all((['RECEIVED', 'PLANNED', 'AWAITING_APPROVAL', 'EXECUTING', 'RECONCILING', 'COMPLETED', 'EXCEPTION_OPEN'] as const).map((s) => stack!.deps.ledger.listRunsByStatus(s)))).flat();
    expect(listed.map((r) => r.runId)).toContain(runId);
    await waitForStatus(stack, runId, ['COMPLETED', 'EXCEPTION_OPEN'], 30_000);
    await stack.settle();
    expect((await stack.deps.ledger.getPerson(moved.employeeId))!.worker.department).toBe('Sales');
  }, 60_000);
});
