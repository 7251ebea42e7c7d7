/**
 * Every state machine file, as Step Functions and aws-local-stepfunctions will run it: valid ASL,
 * JSONPath only, inline Maps only, a timeout on every Task, retries with jitter on the targets'
 * transient errors, and a Catch that records a failure instead of a silent stop.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

/** asl-validator ships no types; this is the part of its API used here. */
const aslValidator = createRequire(import.meta.url)('asl-validator') as (definition: unknown) => { isValid: boolean; errors: unknown[] };

const dir = fileURLToPath(new URL('../../statemachines/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.asl.json'));

type State = Record<string, any>;
function allStates(states: Record<string, State>, out: Array<[string, State]> = []): Array<[string, State]> {
  for (const [name, s] of Object.entries(states)) {
    out.push([name, s]);
    if (s.ItemProcessor) allStates(s.ItemProcessor.States, out);
    if (s.Iterator) allStates(s.Iterator.States, out);
    for (const b of s.Branches ?? []) allStates(b.States, out);
  }
  return out;
}

describe.each(files)('%s', (file) => {
  const definition = JSON.parse(readFileSync(`${dir}${file}`, 'utf8'));
  const states = allStates(definition.States);

  it('is valid ASL', () => {
    const { isValid, errors } = aslValidator(definition);
    expect(Array.isArray(errors)).toBe(true);
    expect(errors, JSON.stringify(errors)).toEqual([]);
    expect(isValid).toBe(true);
  });

  it('uses JSONPath and inline Maps only (what aws-local-stepfunctions runs)', () => {
    expect(definition.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
    for (const [name, s] of states) {
      expect(s.QueryLanguage ?? 'JSONPath', name).toBe('JSONPath');
      if (s.Type === 'Map') expect(s.ItemProcessor?.ProcessorConfig?.Mode ?? 'INLINE', name).toBe('INLINE');
    }
  });

  it('gives every Task a timeout, and every target Task retries with jitter and catches', () => {
    const tasks = states.filter(([, s]) => s.Type === 'Task');
    expect(tasks.length).toBeGreaterThan(0);
    for (const [name, s] of tasks) {
      expect(s.TimeoutSeconds ?? s.TimeoutSecondsPath, `${name} has no timeout`).toBeDefined();
      if (s.Resource === '${ConvergeFunctionArn}') {
        const retries = (s.Retry ?? []).flatMap((r: { ErrorEquals: string[] }) => r.ErrorEquals);
        expect(retries, name).toEqual(expect.arrayContaining(['TargetThrottled', 'TargetUnavailable']));
        // Every phase that may add access waits for another run of the person on the target.
        if (s.Parameters?.phase !== 'restrict') expect(retries, name).toContain('TargetBusy');
        expect(s.Retry.every((r: { JitterStrategy?: string }) => r.JitterStrategy === 'FULL'), name).toBe(true);
        expect(s.Catch?.some((c: { ErrorEquals: string[] }) => c.ErrorEquals.includes('States.ALL')), `${name} must catch`).toBe(true);
      }
    }
  });

  it('keeps approval task tokens out of everything but the approval Lambda payload', () => {
    const text = JSON.stringify(definition);
    const tokenUses = text.match(/\$\$\.Task\.Token/g) ?? [];
    const waiting = states.filter(([, s]) => String(s.Resource).endsWith('.waitForTaskToken'));
    expect(tokenUses.length).toBe(waiting.length);
    for (const [, s] of waiting) expect(s.Parameters.Payload['taskToken.$']).toBe('$$.Task.Token');
  });
});
