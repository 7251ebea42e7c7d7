/**
 * The local Step Functions engine ends a timed-out Task's work the way Lambda's own timeout does
 * in AWS: the handler of the first attempt may go on in this process, but none of its target calls
 * are sent once the state timed out, so its retry never writes beside it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RateGovernor } from '#connectors/governor';
import { LocalWorkflows } from '#local/workflow-engine';

const dir = mkdtempSync(join(tmpdir(), 'jml-engine-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A converge Task that times out after a second: `then` says what follows the timeout. */
function convergeTimingOut(workflow: 'joiner' | 'mover' | 'leaver', then: 'retry' | 'catch') {
  const converge = { Type: 'Task', Resource: '${ConvergeFunctionArn}', TimeoutSeconds: 1, End: true };
  const states =
    then === 'retry'
      ? { Converge: { ...converge, Retry: [{ ErrorEquals: ['States.Timeout'], IntervalSeconds: 1, MaxAttempts: 1 }] } }
      : {
          // Caught into a second Task converging the same target (the joiner's ExecuteMissing).
          Converge: { ...converge, Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'ConvergeMissing' }] },
          ConvergeMissing: { ...converge, TimeoutSeconds: 5 },
        };
  writeFileSync(join(dir, `${workflow}.asl.json`), JSON.stringify({ StartAt: 'Converge', States: states }));
}

describe('local workflow engine', () => {
  it("refuses a timed-out attempt's target calls while its retry goes through", async () => {
    convergeTimingOut('joiner', 'retry');
    const governor = new RateGovernor({ maxConcurrent: 4 });
    const sent: string[] = [];
    const refused: string[] = [];
    let attempt = 0;
    let firstDone!: () => void;
    const firstAttemptOver = new Promise<void>((r) => (firstDone = r));
    const engine = new LocalWorkflows({
      dir,
      handlers: {
        ConvergeFunctionArn: async () => {
          const mine = ++attempt;
          // The first attempt is slow (a long wait for the target), past the state's timeout.
          if (mine === 1) await new Promise((r) => setTimeout(r, 1_500));
          try {
            await governor.run(async () => sent.push(`attempt ${mine}: add to group`));
          } catch (e) {
            refused.push(`attempt ${mine}: ${(e as Error).name}`);
          } finally {
            if (mine === 1) firstDone();
          }
          return { attempt: mine };
        },
      },
    });
    await engine.start('joiner', 'run-timeout', {});
    const record = await engine.wait('run-timeout', 10_000);
    await firstAttemptOver;

    expect(record.status).toBe('SUCCEEDED');
    expect(record.output).toEqual({ attempt: 2 });
    expect(record.path.filter((e) => e.type === 'StateRetried')).toHaveLength(1);
    expect(sent).toEqual(['attempt 2: add to group']);
    expect(refused).toEqual(['attempt 1: InvocationEnded']);
  });

  /**
   * A converge handler whose first attempt's write is sent, and answered only after the state
   * timed out; `events` is what the target saw, in order.
   */
  function slowFirstWrite() {
    const governor = new RateGovernor({ maxConcurrent: 4 });
    const events: string[] = [];
    let attempt = 0;
    const ConvergeFunctionArn = async () => {
      const mine = ++attempt;
      events.push(`attempt ${mine}: reads the target`);
      await governor.run(async () => {
        events.push(`attempt ${mine}: write sent`);
        if (mine === 1) await new Promise((r) => setTimeout(r, 1_600));
        events.push(`attempt ${mine}: write answered`);
      });
      return { attempt: mine };
    };
    return { events, handlers: { ConvergeFunctionArn } };
  }
  const inOrder = [
    'attempt 1: reads the target',
    'attempt 1: write sent',
    'attempt 1: write answered',
    'attempt 2: reads the target',
    'attempt 2: write sent',
    'attempt 2: write answered',
  ];

  it("starts a timed-out attempt's retry once that attempt has stopped: a request it had in flight is answered before the retry reads the target", async () => {
    convergeTimingOut('mover', 'retry');
    const { events, handlers } = slowFirstWrite();
    const engine = new LocalWorkflows({ dir, retryIntervalMs: 5, handlers });
    await engine.start('mover', 'run-in-flight', {});
    const record = await engine.wait('run-in-flight', 10_000);

    expect(record.status).toBe('SUCCEEDED');
    expect(record.output).toEqual({ attempt: 2 });
    expect(events).toEqual(inOrder);
  });

  it('starts any later Task of the execution once a timed-out attempt has stopped, not only its retry', async () => {
    convergeTimingOut('leaver', 'catch');
    const { events, handlers } = slowFirstWrite();
    const engine = new LocalWorkflows({ dir, handlers });
    await engine.start('leaver', 'run-caught', {});
    const record = await engine.wait('run-caught', 10_000);

    expect(record.status).toBe('SUCCEEDED');
    expect(record.path.filter((e) => e.type === 'StateEntered').map((e) => e.state)).toEqual(['Converge', 'ConvergeMissing']);
    expect(events).toEqual(inOrder);
  });

  it('waits at most the grace for a timed-out attempt whose handler never returns, and says so on the path', async () => {
    convergeTimingOut('joiner', 'retry');
    let attempt = 0;
    const engine = new LocalWorkflows({
      dir,
      retryIntervalMs: 5,
      timedOutAttemptGraceMs: 300,
      handlers: {
        // The first attempt waits on something that never answers.
        ConvergeFunctionArn: async () => ((++attempt === 1 ? await new Promise(() => undefined) : undefined), { attempt }),
      },
    });
    await engine.start('joiner', 'run-hung', {});
    const record = await engine.wait('run-hung', 10_000);

    expect(record.status).toBe('SUCCEEDED');
    expect(record.output).toEqual({ attempt: 2 });
    expect(record.path.filter((e) => e.type === 'TimedOutAttemptNotStopped')).toEqual([
      expect.objectContaining({ state: 'Converge', error: '1 timed-out attempt(s) still running' }),
    ]);
  });
});
