/**
 * WorkflowEngine and TaskCallbacks on Step Functions (Standard state machines, one per workflow).
 *
 * - start: `StartExecution` with `name` = the run id. Step Functions keeps execution names unique
 *   per state machine for 90 days, so a second start of the same run is refused with
 *   `ExecutionAlreadyExists`, reported here as `alreadyStarted` (the run is already going or
 *   went). Note: a repeat with the *same* input while the first execution is still running is
 *   answered by Step Functions with the original execution instead of the error; either way
 *   exactly one execution exists.
 * - stop: the run does not know which workflow it ran under, so the execution ARN is derived
 *   for each configured state machine and the one that exists is stopped.
 * - callbacks: `SendTaskSuccess` / `SendTaskFailure`. `TaskTimedOut`, `TaskDoesNotExist` and
 *   `InvalidToken` mean the waiting task is gone (expired, already answered, or the execution
 *   ended): `'gone'`, which the approval use case turns into "this decision came too late".
 */
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { TaskCallbacks, WorkflowEngine, WorkflowName } from '#app/ports';
import { JmlError } from '#core/errors';
import type { WiringContext } from './bootstrap.ts';
import { once, type Lazy } from './lazy.ts';

const sdk = once(() => import('@aws-sdk/client-sfn'));

/** A workflow the deployment has no state machine for. */
export class WorkflowNotDeployed extends JmlError {}

export interface SfnWorkflowsOptions {
  client: Lazy<SFNClient>;
  /** State machine ARN per workflow (only the deployed ones). */
  stateMachines: Partial<Record<WorkflowName, string>>;
}

/** Errors that mean "the task this token belonged to is no longer waiting". */
const GONE = new Set(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken']);

/** Step Functions limits on SendTaskFailure. */
const MAX_ERROR_CHARS = 256;
const MAX_CAUSE_CHARS = 32_768;

const errorName = (e: unknown) => (e as { name?: string })?.name;

/** `arn:…:stateMachine:<name>` → `arn:…:execution:<name>:<executionName>`. */
export function executionArn(stateMachineArn: string, executionName: string): string {
  const i = stateMachineArn.indexOf(':stateMachine:');
  if (i < 0) throw new WorkflowNotDeployed(`not a state machine ARN: ${stateMachineArn}`);
  return `${stateMachineArn.slice(0, i)}:execution:${stateMachineArn.slice(i + ':stateMachine:'.length)}:${executionName}`;
}

export class SfnWorkflows implements WorkflowEngine, TaskCallbacks {
  private readonly client: () => Promise<SFNClient>;

  constructor(private readonly options: SfnWorkflowsOptions) {
    this.client = once(options.client);
  }

  private stateMachine(workflow: WorkflowName): string {
    const arn = this.options.stateMachines[workflow];
    if (!arn) throw new WorkflowNotDeployed(`workflow ${workflow}: no state machine is deployed for it`);
    return arn;
  }

  async start(workflow: WorkflowName, name: string, input: unknown): Promise<{ executionId: string; alreadyStarted: boolean }> {
    const stateMachineArn = this.stateMachine(workflow);
    const [{ StartExecutionCommand }, client] = await Promise.all([sdk(), this.client()]);
    try {
      const out = await client.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input ?? {}) }));
      return { executionId: out.executionArn ?? executionArn(stateMachineArn, name), alreadyStarted: false };
    } catch (e) {
      if (errorName(e) === 'ExecutionAlreadyExists') return { executionId: executionArn(stateMachineArn, name), alreadyStarted: true };
      throw e;
    }
  }

  async stop(name: string, cause: string): Promise<void> {
    const arns = Object.values(this.options.stateMachines).filter((a): a is string => !!a);
    const [{ StopExecutionCommand }, client] = await Promise.all([sdk(), this.client()]);
    await Promise.all(
      arns.map(async (sm) => {
        try {
          await client.send(
            new StopExecutionCommand({ executionArn: executionArn(sm, name), cause: cause.slice(0, MAX_CAUSE_CHARS), error: 'Superseded' }),
          );
        } catch (e) {
          // Not under this state machine (or never started): nothing to stop there.
          if (errorName(e) !== 'ExecutionDoesNotExist') throw e;
        }
      }),
    );
  }

  async succeed(taskToken: string, output: unknown): Promise<'ok' | 'gone'> {
    const [{ SendTaskSuccessCommand }, client] = await Promise.all([sdk(), this.client()]);
    return this.callback(() => client.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(output ?? {}) })));
  }

  async fail(taskToken: string, error: string, cause: string): Promise<'ok' | 'gone'> {
    const [{ SendTaskFailureCommand }, client] = await Promise.all([sdk(), this.client()]);
    return this.callback(() =>
      client.send(new SendTaskFailureCommand({ taskToken, error: error.slice(0, MAX_ERROR_CHARS), cause: cause.slice(0, MAX_CAUSE_CHARS) })),
    );
  }

  private async callback(send: () => Promise<unknown>): Promise<'ok' | 'gone'> {
    try {
      await send();
      return 'ok';
    } catch (e) {
      if (GONE.has(errorName(e) ?? '')) return 'gone';
      throw e;
    }
  }
}

/**
 * Entry wiring: the state machines this function is bound to (`JML_SFN_*_ARN`). A function that
 * only answers task tokens (the approvals API) has them too: `grantTaskResponse` is per machine.
 */
export function wireWorkflows({ config }: WiringContext): { workflows: WorkflowEngine; callbacks: TaskCallbacks } {
  const sfn = new SfnWorkflows({ client: async () => new (await sdk()).SFNClient({}), stateMachines: config.stateMachines });
  return { workflows: sfn, callbacks: sfn };
}
