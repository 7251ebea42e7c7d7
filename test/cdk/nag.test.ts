/**
 * cdk-nag AwsSolutions: the stack synthesises with zero unacknowledged findings, every
 * acknowledgement carries a real reason, and the check is live (an unacknowledged finding fails
 * the synth, as it fails `npx cdk synth`).
 */
import { Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth, type Synthesized } from './synth.ts';

let s: Synthesized;
beforeAll(() => {
  s = synth();
});
afterAll(() => s?.cleanup());

interface Report {
  pluginReports?: Array<{ pluginName?: string; violations?: unknown[] }>;
}

describe('cdk-nag AwsSolutions', () => {
  it('finds nothing that is not acknowledged', () => {
    const report = s.report as Report | undefined;
    const open = (report?.pluginReports ?? []).flatMap((r) => r.violations ?? []);
    expect(open).toEqual([]);
  });

  it('has a reason of substance on every acknowledgement, each for a named AwsSolutions rule', () => {
    const acks = s.stack.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY).map((m) => ({ path: c.node.path, ...(m.data as Record<string, string>) })))
      .flatMap(({ path, ...rules }) => Object.entries(rules).map(([id, reason]) => ({ path, id, reason })));
    expect(acks.length).toBeGreaterThan(10);
    for (const a of acks) {
      expect(a.id, a.path).toMatch(/AwsSolutions-[A-Z]+\d+/);
      expect(String(a.reason).length, `${a.path} ${a.id}`).toBeGreaterThanOrEqual(60);
    }
    // Granular: wildcard acknowledgements name the finding, not the whole IAM5 rule.
    expect(acks.filter((a) => /AwsSolutions-IAM5$/.test(a.id))).toEqual([]);
  });

  it('fails the synth on a finding nobody acknowledged', () => {
    let outcome: unknown;
    try {
      synth({}, { extend: (stack) => new sqs.Queue(stack, 'Unreviewed') }).cleanup();
    } catch (e) {
      outcome = e;
    }
    expect(String((outcome as Error)?.message)).toMatch(/AwsSolutions-SQS3[\s\S]*Jml\/Unreviewed/);
  });
});
