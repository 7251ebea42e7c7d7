/**
 * The run workflows: one Standard state machine per `statemachines/<workflow>.asl.json`
 * (the same files the local engine runs), loaded with `DefinitionBody.fromFile` and
 * `definitionSubstitutions` that map each `${…FunctionArn}` placeholder the file uses to its
 * Task function. A placeholder with no function fails the synth.
 *
 * Logging: every event (level ALL) to CloudWatch, without execution data — inputs and outputs
 * carry personal data and the approval Task's payload carries the task token, which would let
 * anyone who can read the logs decide an approval. X-Ray tracing on.
 * The role may invoke exactly the functions its definition names.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { WORKFLOWS, type WorkflowName } from '#app/ports';
import { REPO_ROOT } from './bundling.ts';

export const STATE_MACHINES_DIR = join(REPO_ROOT, 'statemachines');

/** The `${Name}` placeholders of an ASL file, sorted. */
export function placeholdersOf(aslText: string): string[] {
  return [...new Set([...aslText.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]!))].sort();
}

export interface WorkflowsProps {
  /** Placeholder → Task function (`TASK_FUNCTIONS` resolved to functions). */
  taskFunctions: Record<string, lambda.IFunction>;
  logRetention: logs.RetentionDays;
  /** State machine names are `<prefix>-<workflow>` (IAM statements on their executions name them). */
  namePrefix: string;
  /** Where the ASL files are (tests may point elsewhere). */
  dir?: string;
}

export class Workflows extends Construct {
  readonly machines: Partial<Record<WorkflowName, sfn.StateMachine>> = {};
  readonly names: Partial<Record<WorkflowName, string>> = {};
  /** The placeholders each deployed workflow's ASL file uses. */
  readonly placeholders: Partial<Record<WorkflowName, string[]>> = {};

  constructor(scope: Construct, id: string, props: WorkflowsProps) {
    super(scope, id);
    const dir = props.dir ?? STATE_MACHINES_DIR;
    for (const workflow of WORKFLOWS) {
      const file = join(dir, `${workflow}.asl.json`);
      if (!existsSync(file)) continue;
      const used = placeholdersOf(readFileSync(file, 'utf8'));
      this.placeholders[workflow] = used;
      const unknown = used.filter((p) => !props.taskFunctions[p]);
      if (unknown.length) throw new Error(`${file}: no Task function for placeholder(s) ${unknown.join(', ')} (lib/functions.ts TASK_FUNCTIONS)`);
      const functions = used.map((p) => props.taskFunctions[p]!);

      const logGroup = new logs.LogGroup(this, `${pascal(workflow)}Logs`, { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
      const role = new iam.Role(this, `${pascal(workflow)}Role`, {
        assumedBy: new iam.ServicePrincipal('states.amazonaws.com'),
        description: `jml ${workflow} workflow`,
      });
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [...new Set(functions.map((f) => f.functionArn))] }),
      );
      const stateMachineName = `${props.namePrefix}-${workflow}`;
      this.names[workflow] = stateMachineName;
      this.machines[workflow] = new sfn.StateMachine(this, pascal(workflow), {
        stateMachineName,
        stateMachineType: sfn.StateMachineType.STANDARD,
        definitionBody: sfn.DefinitionBody.fromFile(file),
        definitionSubstitutions: Object.fromEntries(used.map((p) => [p, props.taskFunctions[p]!.functionArn])),
        role,
        logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
        tracingEnabled: true,
        comment: `jml ${workflow} run workflow (statemachines/${workflow}.asl.json)`,
      });
    }
  }
}

function pascal(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
