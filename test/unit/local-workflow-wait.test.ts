/**
 * The local Step Functions engine waits for a Wait state's timestamp by the runtime's clock, as
 * the leaver's call-budget slots (`$.slots.restrictAt`) are reserved by it: tests move that clock
 * days or months ahead of the machine's.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalWorkflows } from '#local/workflow-engine';

const dir = mkdtempSync(join(tmpdir(), 'jml-engine-wait-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(
  join(dir, 'leaver.asl.json'),
  JSON.stringify({
    StartAt: 'AwaitSlot',
    States: {
      AwaitSlot: { Type: 'Wait', TimestampPath: '$.slots.at', Next: 'Disable' },
      Disable: { Type: 'Task', Resource: '${ConvergeFunctionArn}', ResultPath: '$.disable', End: true },
    },
  }),
);

/** An engine on a clock `offsetMs` ahead of the machine's; `disabledAt` is when its Task ran (machine time). */
function engineAhead(offsetMs: number) {
  const clock = { offsetMs };
  const disabledAt: number[] = [];
  const engine = new LocalWorkflows({
    dir,
    now: () => Date.now() + clock.offsetMs,
    handlers: { ConvergeFunctionArn: async () => disabledAt.push(Date.now()) && { disabled: true } },
  });
  return { engine, clock, disabledAt, at: (fromNowMs: number) => new Date(Date.now() + clock.offsetMs + fromNowMs).toISOString() };
}

const DAY = 86_400_000;

describe('local workflow engine: Wait until a timestamp', () => {
  it.each([
    ['10 days', 10 * DAY],
    ['230 days (past what one Node timer can hold)', 230 * DAY],
  ])('with the clock %s ahead of the machine, waits the slot out, no less and no more, and keeps the input', async (_, offset) => {
    const { engine, at } = engineAhead(offset);
    const slot = Date.now() + 600; // by the machine's time
    const input = { runId: 'r1', slots: { at: at(600) } };
    await engine.start('leaver', 'wait-ahead', input);
    const record = await engine.wait('wait-ahead', 5_000);
    expect(record.status).toBe('SUCCEEDED');
    expect(record.output).toEqual({ ...input, disable: { disabled: true } });
    const entered = record.path.filter((e) => e.type === 'StateEntered');
    expect(entered.map((e) => e.state)).toEqual(['AwaitSlot', 'Disable']);
    expect(entered[1]!.at).toBeGreaterThanOrEqual(slot - 5);
    expect(entered[1]!.at).toBeLessThan(slot + 1_000);
  });

  it('a slot already past does not wait; a clock moved forward ends a long wait', async () => {
    const { engine, clock, disabledAt, at } = engineAhead(0);
    await engine.start('leaver', 'past', { slots: { at: at(-60_000) } });
    expect((await engine.wait('past', 2_000)).status).toBe('SUCCEEDED');

    await engine.start('leaver', 'moved', { slots: { at: at(DAY) } });
    await new Promise((r) => setTimeout(r, 200));
    expect(disabledAt).toHaveLength(1);
    clock.offsetMs += DAY;
    expect((await engine.wait('moved', 3_000)).status).toBe('SUCCEEDED');
    expect(disabledAt).toHaveLength(2);
  });

  it('a timestamp that is not a date fails the execution, naming the state', async () => {
    const { engine } = engineAhead(0);
    await engine.start('leaver', 'bad', { slots: { at: 'soon' } });
    const record = await engine.wait('bad', 2_000);
    expect(record.status).toBe('FAILED');
    expect(record.error?.message).toMatch(/AwaitSlot: the timestamp to wait for is not a date/);
  });
});
