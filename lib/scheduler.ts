/**
 * EventBridge Scheduler: the jml schedule group, the execution role Scheduler assumes to deliver
 * (send to the events FIFO queue, invoke the scheduled-action function, write to the DLQ — those
 * resources only), and the nightly reconciliation schedule.
 *
 * One-time schedules (effective-dated runs, retention deletes, reminders) are created at run time
 * by the Lambdas in this group (`lambdas/aws/scheduler.eventbridge.ts`). The nightly schedule
 * targets the scheduled-action function with `{ kind: 'reconcile' }`, which starts the
 * `reconcile` workflow once per day; it is created disabled while no `reconcile` workflow is
 * deployed (statemachines/reconcile.asl.json), so it never fires into a guaranteed failure.
 */
import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { FLEXIBLE_WINDOW_MINUTES, NIGHTLY_RECONCILE_SCHEDULE, SCHEDULE_RETRY_POLICY, scheduledActionInput } from '#aws/schedules';

export interface SchedulingProps {
  groupName: string;
  eventsQueue: sqs.IQueue;
  deadLetterQueue: sqs.IQueue;
  actionFunction: lambda.IFunction;
  nightly: { hour: number; minute: number; timeZone: string; enabled: boolean };
}

export class Scheduling extends Construct {
  readonly group: scheduler.CfnScheduleGroup;
  readonly groupName: string;
  readonly role: iam.Role;
  readonly nightly: scheduler.CfnSchedule;

  constructor(scope: Construct, id: string, props: SchedulingProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.groupName = props.groupName;
    this.group = new scheduler.CfnScheduleGroup(this, 'Group', { name: props.groupName });

    this.role = new iam.Role(this, 'ExecutionRole', {
      description: 'jml: EventBridge Scheduler delivers jml schedules',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': stack.formatArn({ service: 'scheduler', resource: 'schedule', resourceName: `${props.groupName}/*` }) },
        },
      }),
    });
    this.role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [props.eventsQueue.queueArn, props.deadLetterQueue.queueArn] }),
    );
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [props.actionFunction.functionArn] }));

    const n = props.nightly;
    this.nightly = new scheduler.CfnSchedule(this, 'NightlyReconcile', {
      name: NIGHTLY_RECONCILE_SCHEDULE,
      groupName: props.groupName,
      description: props.nightly.enabled
        ? 'jml nightly reconciliation: starts the reconcile workflow'
        : 'jml nightly reconciliation: disabled until a reconcile workflow is deployed (statemachines/reconcile.asl.json)',
      scheduleExpression: `cron(${n.minute} ${n.hour} * * ? *)`,
      scheduleExpressionTimezone: n.timeZone,
      flexibleTimeWindow: { mode: 'FLEXIBLE', maximumWindowInMinutes: FLEXIBLE_WINDOW_MINUTES },
      state: n.enabled ? 'ENABLED' : 'DISABLED',
      target: {
        arn: props.actionFunction.functionArn,
        roleArn: this.role.roleArn,
        input: scheduledActionInput(NIGHTLY_RECONCILE_SCHEDULE, { kind: 'reconcile', payload: { scope: 'nightly' } }),
        retryPolicy: {
          maximumEventAgeInSeconds: SCHEDULE_RETRY_POLICY.MaximumEventAgeInSeconds,
          maximumRetryAttempts: SCHEDULE_RETRY_POLICY.MaximumRetryAttempts,
        },
        deadLetterConfig: { arn: props.deadLetterQueue.queueArn },
      },
    });
    this.nightly.node.addDependency(this.group);
  }
}
