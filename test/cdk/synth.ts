/**
 * Synthesises the stack for the CDK tests: offline, no credentials, the cdk.json feature flags,
 * the cdk-nag AwsSolutions checks as in `bin/jml-app.ts`, and bundling skipped
 * (`aws:cdk:bundling-stacks` = []: CDK's own switch; the real bundles are built by
 * `bench/bundles.ts` with the same esbuild settings).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { REPO_ROOT } from '../../lib/bundling.ts';
import { parseDeployConfig, type DeployConfig } from '../../lib/config.ts';
import { JmlStack } from '../../lib/jml-stack.ts';

export const exampleConfig = (): Record<string, unknown> =>
  JSON.parse(readFileSync(join(REPO_ROOT, 'config', 'deploy.example.json'), 'utf8')) as Record<string, unknown>;

const cdkContext = (): Record<string, unknown> =>
  (JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> }).context;

export interface Synthesized {
  stack: JmlStack;
  template: Template;
  /** The cloud assembly's policy validation report (cdk-nag findings, acknowledged ones included). */
  report: unknown;
  cleanup(): void;
}

// CDK's built-in CloudFormation schema validation loads the whole resource specification on
// first use (~20 s here). `npx cdk synth` runs it (it reports nothing for this stack); the tests
// check the properties that matter themselves and keep the cdk-nag checks.
process.env.CDK_VALIDATION = 'false';

export interface SynthOptions {
  stateMachinesDir?: string;
  nag?: boolean;
  /** Adds to the stack before synthesis (negative controls). */
  extend?: (stack: JmlStack) => void;
}

export function synth(overrides: Partial<DeployConfig> | Record<string, unknown> = {}, options: SynthOptions = {}): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'jml-cdk-'));
  const app = new App({ outdir, context: { ...cdkContext(), 'aws:cdk:bundling-stacks': [] } });
  const loaded = parseDeployConfig({ ...exampleConfig(), ...overrides }, 'test config');
  const stack = new JmlStack(app, 'Jml', { loaded, ...(options.stateMachinesDir ? { stateMachinesDir: options.stateMachinesDir } : {}) });
  options.extend?.(stack);
  if (options.nag !== false) Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  let assembly: ReturnType<App['synth']>;
  try {
    assembly = app.synth();
  } catch (e) {
    rmSync(outdir, { recursive: true, force: true }); // a synth expected to fail leaves nothing behind
    throw e;
  }
  let report: unknown = undefined;
  try {
    report = JSON.parse(readFileSync(join(assembly.directory, 'validation-report.json'), 'utf8'));
  } catch {
    // no findings at all: CDK writes no report
  }
  return {
    stack,
    template: Template.fromStack(stack),
    report,
    cleanup: () => rmSync(outdir, { recursive: true, force: true }),
  };
}
