/**
 * KPIs, dashboard and alarms.
 *
 * The four KPIs are EMF metrics the Close task emits per run (`lambdas/app/runs.ts` emitKpis,
 * namespace `jml`, dimensions `service` + `Workflow` = the run's lifecycle): TimeToDisable
 * (seconds, leavers), RevocationCompleteness (percent, leavers), ExceptionsOpened and
 * DriftEntitlements (counts). Next to them: dead-letter queue depth, workflow execution
 * failures, Lambda throttles and errors, API errors.
 *
 * Alarms (to an SNS topic, encrypted, TLS-only, mailed to the alarm address): time-to-disable
 * SLA breached, revocation incomplete, exceptions opened, a message in either dead-letter
 * queue, a failed workflow execution.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import { Construct } from 'constructs';
import { METRIC_DIMENSIONS, METRICS_NAMESPACE } from '#aws/metrics.emf';
import { LIFECYCLES } from '#core/hr-event';

export interface ObservabilityProps {
  alarmEmail: string;
  key: kms.IKey;
  timeToDisableSlaMinutes: number;
  functions: Record<string, lambda.IFunction>;
  stateMachines: Record<string, sfn.StateMachine>;
  deadLetterQueues: { events: sqs.IQueue; async: sqs.IQueue };
  api: apigw.RestApi;
  dashboardName: string;
}

const PERIOD = Duration.minutes(5);

/** A KPI metric as the EMF adapter writes it. */
export function kpiMetric(name: string, workflow: string, statistic: string): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName: name,
    dimensionsMap: { ...METRIC_DIMENSIONS, Workflow: workflow },
    statistic,
    period: PERIOD,
  });
}

/** The sum of a count KPI over every lifecycle. */
function allWorkflows(name: string, label: string, id: string): cloudwatch.MathExpression {
  const usingMetrics = Object.fromEntries(LIFECYCLES.map((l, i) => [`${id}${i}`, kpiMetric(name, l, 'Sum')]));
  return new cloudwatch.MathExpression({ expression: `SUM([${Object.keys(usingMetrics).join(',')}])`, usingMetrics, label, period: PERIOD });
}

export class Observability extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: Record<string, cloudwatch.Alarm> = {};

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Alarms', { displayName: 'jml alarms', masterKey: props.key, enforceSSL: true });
    this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const notify = new actions.SnsAction(this.topic);
    const alarm = (key: string, a: cloudwatch.Alarm) => {
      a.addAlarmAction(notify);
      a.addOkAction(notify);
      this.alarms[key] = a;
      return a;
    };

    const slaSeconds = props.timeToDisableSlaMinutes * 60;
    const timeToDisable = kpiMetric('TimeToDisable', 'leaver', 'Maximum');
    const completeness = kpiMetric('RevocationCompleteness', 'leaver', 'Minimum');
    const exceptions = allWorkflows('ExceptionsOpened', 'Exceptions opened', 'exc');
    const drift = allWorkflows('DriftEntitlements', 'Drifted entitlements', 'drift');
    const dlqDepth = (q: sqs.IQueue, label: string) => q.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: 'Maximum', label });

    alarm(
      'timeToDisableSla',
      timeToDisable.createAlarm(this, 'TimeToDisableSla', {
        alarmDescription: `A leaver took longer than the ${props.timeToDisableSlaMinutes}-minute SLA from termination to IdP disabled and sessions revoked`,
        threshold: slaSeconds,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    alarm(
      'revocationIncomplete',
      completeness.createAlarm(this, 'RevocationIncomplete', {
        alarmDescription: "A leaver's accounts were not all disabled within the SLA",
        threshold: 100,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    alarm(
      'exceptionsOpened',
      exceptions.createAlarm(this, 'ExceptionsOpened', {
        alarmDescription: 'Runs closed with exceptions for their owners (GET /exceptions?status=open)',
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    for (const [key, q, label, what] of [
      ['eventsDlq', props.deadLetterQueues.events, 'HR events dead-letter queue', 'an HR event or drift signal could not be started after 5 receives'],
      ['asyncDlq', props.deadLetterQueues.async, 'Async dead-letter queue', 'a schedule, scheduled action or workflow-ended event could not be processed'],
    ] as const) {
      alarm(
        key,
        dlqDepth(q, label).createAlarm(this, `${key.charAt(0).toUpperCase()}${key.slice(1)}NotEmpty`, {
          alarmDescription: `${label} is not empty: ${what}`,
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
    for (const [name, sm] of Object.entries(props.stateMachines)) {
      alarm(
        `${name}ExecutionsFailed`,
        sm.metricFailed({ period: PERIOD, statistic: 'Sum' }).createAlarm(this, `${name}ExecutionsFailed`, {
          alarmDescription: `A ${name} workflow execution failed (the run is FAILED or stuck)`,
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }

    const fns = Object.entries(props.functions);
    const sumOver = (label: string, id: string, metric: (f: lambda.IFunction) => cloudwatch.Metric) => {
      const usingMetrics = Object.fromEntries(fns.map(([, f], i) => [`${id}${i}`, metric(f)]));
      return new cloudwatch.MathExpression({ expression: `SUM([${Object.keys(usingMetrics).join(',')}])`, usingMetrics, label, period: PERIOD });
    };

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.days(7),
    });
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown: '# jml\nKPIs per closed run (EMF, namespace `jml`), queues, workflows, functions. Runbook: docs/deploy.md',
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Time to disable (leavers, seconds)',
        left: [timeToDisable.with({ label: 'max' }), kpiMetric('TimeToDisable', 'leaver', 'Average').with({ label: 'avg' })],
        leftAnnotations: [{ value: slaSeconds, label: `SLA ${props.timeToDisableSlaMinutes} min`, color: '#d62728' }],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Revocation completeness (leavers, %)',
        left: [completeness.with({ label: 'min' }), kpiMetric('RevocationCompleteness', 'leaver', 'Average').with({ label: 'avg' })],
        leftYAxis: { min: 0, max: 100 },
        leftAnnotations: [{ value: 100, label: 'all within SLA', color: '#2ca02c' }],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Exceptions opened',
        left: [exceptions],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Drift (entitlements)',
        left: [drift],
        width: 6,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Dead-letter queue depth',
        left: [dlqDepth(props.deadLetterQueues.events, 'HR events DLQ'), dlqDepth(props.deadLetterQueues.async, 'Async DLQ')],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Workflow executions failed / timed out',
        left: Object.entries(props.stateMachines).flatMap(([name, sm]) => [
          sm.metricFailed({ period: PERIOD, statistic: 'Sum', label: `${name} failed` }),
          sm.metricTimedOut({ period: PERIOD, statistic: 'Sum', label: `${name} timed out` }),
        ]),
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'Lambda throttles and errors',
        left: [
          sumOver('throttles', 'thr', (f) => f.metricThrottles({ period: PERIOD, statistic: 'Sum' })),
          sumOver('errors', 'err', (f) => f.metricErrors({ period: PERIOD, statistic: 'Sum' })),
        ],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'API errors and exceptions by target',
        left: [
          props.api.metricClientError({ period: PERIOD, statistic: 'Sum', label: '4XX' }),
          props.api.metricServerError({ period: PERIOD, statistic: 'Sum', label: '5XX' }),
        ],
        right: [
          new cloudwatch.MathExpression({
            expression: `SEARCH('{${METRICS_NAMESPACE},Kind,Target,service} MetricName="ExceptionOpened"', 'Sum', 300)`,
            label: 'exceptions by target',
            period: PERIOD,
          }),
        ],
        width: 6,
      }),
    );
    // The IdP's call budget (a `rateLimit` on the IdP in the policy): how far ahead leavers'
    // slots run, by lane, and runs that went on unpaced because the schedule could not be read.
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'IdP call budget: wait for a slot (ms, max) by lane',
        left: [
          new cloudwatch.MathExpression({
            expression: `SEARCH('{${METRICS_NAMESPACE},lane,service,target} MetricName="CallBudgetWait"', 'Maximum', 300)`,
            label: 'wait',
            period: PERIOD,
          }),
        ],
        right: [
          new cloudwatch.MathExpression({
            expression: `SEARCH('{${METRICS_NAMESPACE},service,target} MetricName="CallBudgetUnavailable"', 'Sum', 300)`,
            label: 'unpaced (budget unreadable)',
            period: PERIOD,
          }),
        ],
        width: 12,
      }),
    );
  }
}
