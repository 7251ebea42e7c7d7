/**
 * The jml stack: composes one construct per concern (data, secrets, queues, mail, API,
 * functions, workflows, scheduler, observability) from the checked deployment configuration.
 *
 * Each function gets exactly the resources its entry wires (`lib/functions.ts`), through the
 * `JmlFunction.bind…` helpers (env var + IAM grant together).
 */
import { ArnFormat, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import type { WorkflowName } from '#app/ports';
import { ENV } from '#aws/config';
import { Api } from './api.ts';
import type { LoadedConfig } from './config.ts';
import { Data } from './data.ts';
import { FUNCTIONS, FUNCTION_NAMES, TASK_FUNCTIONS, type FunctionName } from './functions.ts';
import { JmlFunction } from './jml-function.ts';
import { Mail } from './mail.ts';
import { acknowledgeFindings } from './nag.ts';
import { Observability } from './observability.ts';
import { Queues } from './queue.ts';
import { Scheduling } from './scheduler.ts';
import { Secrets } from './secrets.ts';
import { Workflows } from './workflows.ts';

export interface JmlStackProps extends StackProps {
  loaded: LoadedConfig;
  /** Where the ASL files are (tests); default `statemachines/`. */
  stateMachinesDir?: string;
}

const pascal = (s: string) => s.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());

export class JmlStack extends Stack {
  readonly functions: Record<FunctionName, JmlFunction>;
  readonly data: Data;
  readonly secrets: Secrets;
  readonly queues: Queues;
  readonly workflows: Workflows;
  readonly scheduling: Scheduling;
  readonly api: Api;
  readonly mail: Mail;
  readonly observability: Observability;

  constructor(scope: Construct, id: string, props: JmlStackProps) {
    super(scope, id, props);
    const { config, policy } = props.loaded;
    const logRetention = config.logRetentionDays as RetentionDays;
    const prefix = this.stackName;

    this.data = new Data(this, 'Data', { evidence: config.evidence });
    this.secrets = new Secrets(this, 'Secrets', {
      prefix,
      idpKind: config.idp.kind,
      scimApps: config.scimApps.map((a) => a.name),
      itsm: config.itsm !== undefined,
    });
    this.queues = new Queues(this, 'Queues', { consumerTimeout: Duration.seconds(FUNCTIONS['start-run'].timeoutSeconds) });
    this.mail = new Mail(this, 'Mail', config.mail);
    this.api = new Api(this, 'Api', {
      throttle: config.api.throttle,
      hrisAllowedCidrs: config.api.hrisAllowedCidrs,
      waf: config.api.waf,
      logRetention,
    });

    const publicBaseUrl = config.publicBaseUrl?.replace(/\/+$/, '') ?? this.api.baseUrl;
    const bundle = { policyFile: config.policyFile, idpKind: config.idp.kind };
    this.functions = Object.fromEntries(
      FUNCTION_NAMES.map((name) => [
        name,
        new JmlFunction(this, pascal(name), {
          name,
          functionName: `${prefix}-${name}`,
          spec: FUNCTIONS[name],
          bundle,
          logRetention,
          environment: { [ENV.publicBaseUrl]: publicBaseUrl },
        }).bindTable(this.data.table),
      ]),
    ) as Record<FunctionName, JmlFunction>;
    const fn = this.functions;
    // The scheduled-action function's ARN as a string: it is in its own environment (it may
    // schedule further actions), where a reference to itself would be a dependency cycle.
    const scheduledActionArn = this.formatArn({
      service: 'lambda',
      resource: 'function',
      resourceName: `${prefix}-scheduled-action`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });

    this.workflows = new Workflows(this, 'Workflows', {
      taskFunctions: Object.fromEntries(Object.entries(TASK_FUNCTIONS).map(([placeholder, name]) => [placeholder, fn[name]])),
      logRetention,
      namePrefix: prefix,
      ...(props.stateMachinesDir ? { dir: props.stateMachinesDir } : {}),
    });
    const machines = this.workflows.machines;
    this.scheduling = new Scheduling(this, 'Scheduler', {
      groupName: prefix.toLowerCase(),
      eventsQueue: this.queues.events,
      deadLetterQueue: this.queues.asyncDeadLetter,
      actionFunction: fn['scheduled-action'],
      nightly: { ...config.nightlyReconcile, timeZone: config.timeZone ?? policy.document.company.timeZone, enabled: !!machines.reconcile },
    });

    // Which state machines each function may act on (see FunctionSpec.workflows).
    const pick = (keep: (w: WorkflowName) => boolean) =>
      Object.fromEntries(
        Object.entries(machines)
          .filter(([w]) => keep(w as WorkflowName))
          .map(([w, machine]) => [w, { machine, name: this.workflows.names[w as WorkflowName]! }]),
      ) as Partial<Record<WorkflowName, { machine: sfn.StateMachine; name: string }>>;
    const waitsForApproval = (w: WorkflowName) => this.workflows.placeholders[w]?.includes('RequestApprovalFunctionArn') ?? false;
    const machinesFor: Partial<Record<FunctionName, ReturnType<typeof pick>>> = {
      'start-run': pick((w) => w !== 'reconcile'),
      'approvals-api': pick((w) => waitsForApproval(w)),
      'request-approval': pick((w) => waitsForApproval(w)),
      'scheduled-action': pick((w) => w === 'reconcile'),
    };

    for (const name of FUNCTION_NAMES) {
      const f = fn[name];
      const spec = FUNCTIONS[name];
      for (const s of 'secrets' in spec ? spec.secrets : []) f.bindSecret(s, this.secrets.port[s]);
      for (const port of spec.ports) {
        switch (port) {
          case 'queue':
            f.bindQueue(this.queues.events);
            break;
          case 'workflows': {
            const m = machinesFor[name];
            if (!m) throw new Error(`lib/jml-stack.ts: no state machines chosen for ${name}`);
            f.bindStateMachines(m);
            break;
          }
          case 'mailer':
            f.bindMailer({
              from: this.mail.from,
              identityArn: this.mail.identityArn,
              configurationSetName: this.mail.configurationSet.configurationSetName,
              configurationSetArn: this.mail.configurationSetArn,
            });
            break;
          case 'scheduler':
            f.bindScheduler({
              groupName: this.scheduling.groupName,
              role: this.scheduling.role,
              deadLetterQueue: this.queues.asyncDeadLetter,
              eventsQueue: this.queues.events,
              actionFunctionArn: scheduledActionArn,
            });
            break;
          case 'evidence':
            f.bindEvidence(this.data.evidenceBucket, this.data.key, this.data.evidenceLock);
            break;
          case 'connectors':
            if ('connectors' in spec && spec.connectors === 'describe') break; // reads the policy only: no URL, no credentials
            f.bindIdp(config.idp, this.secrets.idp);
            f.bindScimApps(config.scimApps.map((a) => ({ ...a, secret: this.secrets.scim[a.name]! })));
            break;
          case 'ticketing':
            f.bindTicketing(config.itsm && this.secrets.itsm ? { config: config.itsm, secret: this.secrets.itsm } : undefined);
            break;
          case 'secrets':
            break; // bound per secret above
        }
      }
    }
    if (config.idp.kind === 'okta' && config.idp.selfActorIds.length) {
      fn['okta-event-hook'].addEnvironment(ENV.oktaSelfActorIds, config.idp.selfActorIds.join(','));
    }

    // The queue consumer: partial batch failures, FIFO order kept by the handler.
    fn['start-run'].addEventSource(new SqsEventSource(this.queues.events, { batchSize: 10, reportBatchItemFailures: true }));
    // Scheduler invokes asynchronously: two retries, then the async DLQ (alarmed).
    fn['scheduled-action'].configureAsyncInvoke({
      retryAttempts: 2,
      maxEventAge: Duration.hours(6),
      onFailure: new SqsDestination(this.queues.asyncDeadLetter),
    });

    this.api.addRoutes({
      hrisWebhook: fn['hris-webhook'],
      bambooHrWebhook: fn['bamboohr-webhook'],
      oktaEventHook: fn['okta-event-hook'],
      approvals: fn['approvals-api'],
      readApi: fn['read-api'],
      exceptionGrants: fn['exception-grants'],
    });

    // A run whose workflow died (failed, timed out, aborted) is failed and closed with evidence.
    new events.Rule(this, 'ExecutionEndedRule', {
      description: 'jml: a run workflow execution ended without closing its run',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          status: ['FAILED', 'TIMED_OUT', 'ABORTED'],
          stateMachineArn: Object.entries(machines)
            .filter(([w]) => w !== 'reconcile')
            .map(([, m]) => m!.stateMachineArn),
        },
      },
      targets: [new targets.LambdaFunction(fn['execution-ended'], { deadLetterQueue: this.queues.asyncDeadLetter, retryAttempts: 8, maxEventAge: Duration.hours(6) })],
    });

    this.observability = new Observability(this, 'Observability', {
      alarmEmail: config.alarms.email,
      key: this.data.key,
      timeToDisableSlaMinutes: policy.document.sla.timeToDisableMinutes,
      functions: fn,
      stateMachines: machines as Record<string, sfn.StateMachine>,
      deadLetterQueues: { events: this.queues.eventsDeadLetter, async: this.queues.asyncDeadLetter },
      api: this.api.api,
      dashboardName: `${prefix}-jml`,
    });

    const url = this.api.api.url.replace(/\/$/, '');
    const out = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    out('ApiUrl', this.api.api.url, 'Base URL of the jml API');
    out('HrisWebhookUrl', `${this.api.api.url}hris/events`, 'Point the HRIS webhook here (POST, signed with the hris-webhook secret)');
    out('BambooHrWebhookUrl', `${this.api.api.url}hris/bamboohr`, 'BambooHR webhook URL (POST, signed with the bamboohr-webhook secret)');
    out('OktaEventHookUrl', `${this.api.api.url}okta/events`, 'Okta event hook URL (Authorization: the okta-event-hook secret)');
    out('ApprovalLinksBaseUrl', publicBaseUrl, 'Base URL the approval links in mails point at');
    out('ReadApiUrl', `${url}/runs`, 'Read API (IAM-authorised, SigV4): /runs/{runId}, /runs?employeeId=, /exceptions');
    out('ExceptionGrantsUrl', `${url}/exception-grants`, 'Exception grants (IAM-authorised, SigV4): POST, GET /{grantId}');
    out('LedgerTableName', this.data.table.tableName, 'Run ledger table');
    out('EvidenceBucketName', this.data.evidenceBucket.bucketName, 'Evidence bundles (Object Lock)');
    out('EventsDeadLetterQueueUrl', this.queues.eventsDeadLetter.queueUrl, 'HR events that could not be processed');
    out('AsyncDeadLetterQueueUrl', this.queues.asyncDeadLetter.queueUrl, 'Schedules, scheduled actions and workflow-ended events that failed');
    out('AlarmTopicArn', this.observability.topic.topicArn, 'Alarm notifications');
    out('DashboardName', `${prefix}-jml`, 'CloudWatch dashboard');
    out('ScheduledActionFunctionArn', fn['scheduled-action'].functionArn, 'Scheduled-action function: the nightly schedule and `jml reconcile --stack` invoke it with { kind: reconcile }');
    for (const s of this.secrets.all()) {
      out(`Secret${(s.node.id as string).replace(/[^A-Za-z0-9]/g, '')}`, s.secretName, `Secret to fill or read: ${s.node.id}`);
    }
    for (const w of Object.keys(machines)) out(`${pascal(w)}StateMachineArn`, machines[w as WorkflowName]!.stateMachineArn, `${w} workflow`);

    acknowledgeFindings(this);
  }
}

