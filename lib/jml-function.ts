/**
 * `JmlFunction`: a NodejsFunction carrying every Lambda default of the project, and `bind…`
 * helpers that set an environment variable and its IAM grant together — a function is given a
 * resource by one call, never an env var without the right or a right without the env var.
 *
 * Defaults: Node.js 24 (the newest runtime, what cdk-nag's AwsSolutions-L1 asks for), arm64,
 * ESM bundle with source maps and kept names (`lib/bundling.ts`), X-Ray tracing, JSON logs in
 * the function's own log group with a retention, Powertools environment (service `jml`,
 * namespace `jml`), and a role that may write to that log group only.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Architecture, LoggingFormat, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import type { ItsmConfig } from '#connectors/itsm';
import type { SecretName, WorkflowName } from '#app/ports';
import { ENV } from '#aws/config';
import { METRICS_NAMESPACE, METRICS_SERVICE } from '#aws/metrics.emf';
import {
  BUNDLE_BANNER,
  BUNDLE_EXTERNALS,
  BUNDLE_MAIN_FIELDS,
  BUNDLE_TARGET,
  REPO_ROOT,
  bundleAliases,
  bundleDefines,
  entryFile,
  type BundleSettings,
} from './bundling.ts';
import type { FunctionSpec } from './functions.ts';

/** The runtime of every function; `BUNDLE_TARGET` is its esbuild target. */
export const JML_RUNTIME = Runtime.NODEJS_24_X;

export interface JmlFunctionProps {
  /** Function name as in `lib/functions.ts` (its entry is `lambdas/aws/entries/<name>.ts`). */
  name: string;
  /** Physical name (`<stack>-<name>`): readable in the console, and an ARN known without a reference. */
  functionName: string;
  spec: FunctionSpec;
  bundle: BundleSettings;
  logRetention: logs.RetentionDays;
  /** Set on every function (the public base URL of approval links). */
  environment: Record<string, string>;
}

export class JmlFunction extends NodejsFunction {
  readonly spec: FunctionSpec;

  constructor(scope: Construct, id: string, props: JmlFunctionProps) {
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `jml ${props.name}: ${props.spec.description}`,
    });
    // Its own log group only (instead of AWSLambdaBasicExecutionRole's logs:* on every group).
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
    );
    super(scope, id, {
      entry: entryFile(props.name),
      functionName: props.functionName,
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: `${REPO_ROOT}/package-lock.json`,
      runtime: JML_RUNTIME,
      architecture: Architecture.ARM_64,
      memorySize: props.spec.memoryMb ?? 512,
      timeout: Duration.seconds(props.spec.timeoutSeconds),
      description: `jml ${props.name}: ${props.spec.description}`.slice(0, 256),
      tracing: Tracing.ACTIVE,
      loggingFormat: LoggingFormat.JSON,
      logGroup,
      role,
      environment: {
        POWERTOOLS_SERVICE_NAME: METRICS_SERVICE,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        format: OutputFormat.ESM,
        target: BUNDLE_TARGET,
        minify: true,
        keepNames: true,
        sourceMap: true,
        sourcesContent: false,
        externalModules: [...BUNDLE_EXTERNALS],
        mainFields: [...BUNDLE_MAIN_FIELDS],
        define: bundleDefines(props.bundle),
        banner: BUNDLE_BANNER,
        esbuildArgs: Object.fromEntries(Object.entries(bundleAliases(props.bundle)).map(([k, v]) => [`--alias:${k}`, v])),
        tsconfig: 'tsconfig.json',
      },
    });
    this.spec = props.spec;
  }

  private needsPort(port: string): void {
    if (!(this.spec.ports as readonly string[]).includes(port)) {
      throw new Error(`${this.node.path}: binding the ${port} port to a function whose entry does not wire it (lib/functions.ts)`);
    }
  }

  /** The run ledger: `JML_TABLE_NAME` + read (the read API) or read/write. */
  bindTable(table: ITableV2): this {
    this.addEnvironment(ENV.tableName, table.tableName);
    if (this.spec.ledger === 'read') table.grantReadData(this);
    else table.grantReadWriteData(this);
    return this;
  }

  /** The events FIFO queue: `JML_EVENTS_QUEUE_URL` + sqs:SendMessage. */
  bindQueue(queue: sqs.IQueue): this {
    this.needsPort('queue');
    this.addEnvironment(ENV.eventsQueueUrl, queue.queueUrl);
    queue.grantSendMessages(this);
    return this;
  }

  /** One secret of the Secrets port: `JML_SECRET_<NAME>_ARN` + read on that secret only. */
  bindSecret(name: SecretName, secret: secretsmanager.ISecret): this {
    this.needsPort('secrets');
    this.addEnvironment(ENV.secretArn[name], secret.secretArn);
    secret.grantRead(this);
    return this;
  }

  /** The IdP connector: kind, URL / tenant and its credentials secret. */
  bindIdp(idp: { kind: 'okta'; orgUrl: string } | { kind: 'entra'; tenantId: string; usageLocation?: string }, secret: secretsmanager.ISecret): this {
    this.needsPort('connectors');
    this.addEnvironment(ENV.idpKind, idp.kind);
    this.addEnvironment(ENV.idpSecretArn, secret.secretArn);
    if (idp.kind === 'okta') this.addEnvironment(ENV.oktaOrgUrl, idp.orgUrl);
    else {
      this.addEnvironment(ENV.entraTenantId, idp.tenantId);
      if (idp.usageLocation) this.addEnvironment(ENV.entraUsageLocation, idp.usageLocation);
    }
    secret.grantRead(this);
    return this;
  }

  /**
   * The ticketing port: `JML_ITSM` (the deployment's ITSM, JSON) + `JML_ITSM_SECRET_ARN` and read
   * on that secret only. Without an ITSM the port is wired but raises no ticket.
   */
  bindTicketing(itsm: { config: ItsmConfig; secret: secretsmanager.ISecret } | undefined): this {
    this.needsPort('ticketing');
    if (!itsm) return this;
    this.addEnvironment(ENV.itsm, JSON.stringify(itsm.config));
    this.addEnvironment(ENV.itsmSecretArn, itsm.secret.secretArn);
    itsm.secret.grantRead(this);
    return this;
  }

  /** The SCIM apps: `JML_SCIM_APPS` (JSON) + read on each app's credentials secret. */
  bindScimApps(apps: Array<{ name: string; baseUrl: string; quirks?: Record<string, boolean>; secret: secretsmanager.ISecret }>): this {
    this.needsPort('connectors');
    const value = apps.map((a) => ({ name: a.name, baseUrl: a.baseUrl, secretArn: a.secret.secretArn, ...(a.quirks ? { quirks: a.quirks } : {}) }));
    this.addEnvironment(ENV.scimApps, Stack.of(this).toJsonString(value));
    for (const a of apps) a.secret.grantRead(this);
    return this;
  }

  /**
   * The state machines: `JML_SFN_<WORKFLOW>_ARN` + the spec's rights: start (and stop the
   * executions of superseded runs), start only, or answer task tokens only (`grantTaskResponse`).
   */
  bindStateMachines(machines: Partial<Record<WorkflowName, { machine: sfn.StateMachine; name: string }>>): this {
    this.needsPort('workflows');
    const stack = Stack.of(this);
    for (const [workflow, { machine, name }] of Object.entries(machines) as Array<[WorkflowName, { machine: sfn.StateMachine; name: string }]>) {
      switch (this.spec.workflows) {
        case 'taskResponse':
          // Answering a task token needs no ARN in the environment, and the grant names the
          // machine by its name: a function the machine itself invokes (request-approval) must
          // not depend on the machine (a cycle).
          this.addToRolePolicy(
            new iam.PolicyStatement({
              actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
              resources: [stack.formatArn({ service: 'states', resource: 'stateMachine', resourceName: name, arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
            }),
          );
          break;
        case 'start':
          this.addEnvironment(ENV.stateMachineArn[workflow], machine.stateMachineArn);
          machine.grantStartExecution(this);
          break;
        case 'startStop':
          this.addEnvironment(ENV.stateMachineArn[workflow], machine.stateMachineArn);
          machine.grantStartExecution(this);
          // Executions are named by run id at run time: this machine's executions, stop only.
          this.addToRolePolicy(
            new iam.PolicyStatement({
              actions: ['states:StopExecution'],
              resources: [stack.formatArn({ service: 'states', resource: 'execution', resourceName: `${name}:*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
            }),
          );
          break;
        default:
          throw new Error(`${this.node.path}: spec.workflows is not set`);
      }
    }
    return this;
  }

  /** SES: `JML_MAIL_FROM` (+ configuration set) + ses:SendEmail on that identity and set only. */
  bindMailer(mail: { from: string; identityArn: string; configurationSetName: string; configurationSetArn: string }): this {
    this.needsPort('mailer');
    this.addEnvironment(ENV.mailFrom, mail.from);
    this.addEnvironment(ENV.sesConfigurationSet, mail.configurationSetName);
    this.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['ses:SendEmail'], resources: [mail.identityArn, mail.configurationSetArn] }),
    );
    return this;
  }

  /** The evidence bucket: `JML_EVIDENCE_*` + get/put (with retention) and list; never delete. */
  bindEvidence(bucket: s3.IBucket, key: kms.IKey, lock: { mode: 'GOVERNANCE' | 'COMPLIANCE'; retainDays: number }): this {
    this.needsPort('evidence');
    this.addEnvironment(ENV.evidenceBucket, bucket.bucketName);
    this.addEnvironment(ENV.evidenceLockMode, lock.mode);
    this.addEnvironment(ENV.evidenceRetainDays, String(lock.retainDays));
    this.addEnvironment(ENV.evidenceBucketOwner, Stack.of(this).account);
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:PutObjectRetention'],
        resources: [bucket.arnForObjects('evidence/*')],
      }),
    );
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': ['evidence/*'] } },
      }),
    );
    this.addToRolePolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [key.keyArn] }));
    return this;
  }

  /**
   * EventBridge Scheduler: group, role, DLQ and targets (`JML_SCHEDULE_GROUP` …) + create,
   * update and delete schedules in that group, and pass that role to Scheduler only.
   */
  bindScheduler(s: {
    groupName: string;
    role: iam.IRole;
    deadLetterQueue: sqs.IQueue;
    eventsQueue: sqs.IQueue;
    actionFunctionArn: string;
  }): this {
    this.needsPort('scheduler');
    const stack = Stack.of(this);
    this.addEnvironment(ENV.scheduleGroup, s.groupName);
    this.addEnvironment(ENV.schedulerRoleArn, s.role.roleArn);
    this.addEnvironment(ENV.schedulerDlqArn, s.deadLetterQueue.queueArn);
    this.addEnvironment(ENV.eventsQueueArn, s.eventsQueue.queueArn);
    this.addEnvironment(ENV.scheduledActionFunctionArn, s.actionFunctionArn);
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule'],
        resources: [stack.formatArn({ service: 'scheduler', resource: 'schedule', resourceName: `${s.groupName}/*` })],
      }),
    );
    this.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [s.role.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
      }),
    );
    return this;
  }
}
