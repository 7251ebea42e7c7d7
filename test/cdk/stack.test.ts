/**
 * CDK assertions on the properties that matter (not resource counts): the FIFO queue and its
 * dead-letter redrive, Object Lock and versioning on the evidence bucket, the ledger table from
 * its one design, IAM scoped to specific resources (no `*` for task callbacks or secrets, each
 * function only the secrets it uses), API routes and their authorisation, schedule targets,
 * state machine substitutions equal to each ASL file's placeholders — and cdk-nag AwsSolutions:
 * zero unacknowledged findings, a real reason on every acknowledgement, and the check is live.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTableInput, TTL_ATTRIBUTE } from '#aws/table';
import { ENV } from '#aws/config';
import { FUNCTIONS, FUNCTION_NAMES, TASK_FUNCTIONS, type FunctionName } from '../../lib/functions.ts';
import { MAX_RECEIVE_COUNT } from '../../lib/queue.ts';
import { STATE_MACHINES_DIR, placeholdersOf } from '../../lib/workflows.ts';
import type { JmlStack } from '../../lib/jml-stack.ts';
import { synth, type Synthesized } from './synth.ts';

type Resources = Record<string, { Type: string; Properties: Record<string, any> }>;
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, unknown>;
}

let s: Synthesized;
let t: Template;
let resources: Resources;
let stack: JmlStack;

beforeAll(() => {
  s = synth();
  t = s.template;
  stack = s.stack;
  resources = t.toJSON().Resources as Resources;
});
afterAll(() => s?.cleanup());

const id = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);
const getAtt = (logicalId: string, attr = 'Arn') => ({ 'Fn::GetAtt': [logicalId, attr] });
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const actions = (st: Statement) => (Array.isArray(st.Action) ? st.Action : [st.Action]);
const resourceList = (st: Statement) => (Array.isArray(st.Resource) ? st.Resource : [st.Resource]);

/** Every statement of the policies attached to a function's role. */
function roleStatements(name: FunctionName): Statement[] {
  const roleId = id(stack.functions[name].role! as never);
  return ofType('AWS::IAM::Policy')
    .filter(([, p]) => (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref === roleId))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);
}
const allStatements = () =>
  [...ofType('AWS::IAM::Policy'), ...ofType('AWS::IAM::ManagedPolicy')].flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);

function envOf(name: FunctionName): Record<string, unknown> {
  return resources[id(stack.functions[name] as never)]!.Properties.Environment.Variables as Record<string, unknown>;
}

// -------------------------------------------------------------------------------------------
describe('events queue', () => {
  it('is FIFO with high-throughput settings and content-based deduplication (needed by the Scheduler target)', () => {
    t.hasResourceProperties('AWS::SQS::Queue', {
      FifoQueue: true,
      ContentBasedDeduplication: true,
      DeduplicationScope: 'messageGroup',
      FifoThroughputLimit: 'perMessageGroupId',
      RedrivePolicy: { deadLetterTargetArn: getAtt(id(stack.queues.eventsDeadLetter)), maxReceiveCount: MAX_RECEIVE_COUNT },
    });
  });

  it('dead-letters into a FIFO queue, with an alarm on any message in it', () => {
    expect(resources[id(stack.queues.eventsDeadLetter)]!.Properties.FifoQueue).toBe(true);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: [
        Match.objectLike({
          MetricStat: Match.objectLike({
            Metric: {
              Namespace: 'AWS/SQS',
              MetricName: 'ApproximateNumberOfMessagesVisible',
              Dimensions: [{ Name: 'QueueName', Value: getAtt(id(stack.queues.eventsDeadLetter), 'QueueName') }],
            },
          }),
        }),
      ],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: id(stack.observability.topic) }],
    });
  });

  it('has the consumer with partial batch responses, and a visibility timeout of six consumer timeouts', () => {
    t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: getAtt(id(stack.queues.events)),
      FunctionName: { Ref: id(stack.functions['start-run'] as never) },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    expect(resources[id(stack.queues.events)]!.Properties.VisibilityTimeout).toBe(FUNCTIONS['start-run'].timeoutSeconds * 6);
  });
});

// -------------------------------------------------------------------------------------------
describe('evidence bucket', () => {
  it('has versioning, Object Lock with the configured default retention, SSE-KMS with the stack key, no public access', () => {
    t.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 2557 } } },
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: getAtt(id(stack.data.key)) }, BucketKeyEnabled: true },
        ],
      },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
    });
    expect(t.toJSON().Resources[id(stack.data.evidenceBucket)].DeletionPolicy).toBe('Retain');
  });

  it('refuses requests without TLS', () => {
    t.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: id(stack.data.evidenceBucket) },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('is written only by the functions that store evidence, which may put (with retention) but never delete', () => {
    const writers = FUNCTION_NAMES.filter((n) => roleStatements(n).some((st) => actions(st).some((a) => a.startsWith('s3:Put'))));
    expect(writers).toEqual(FUNCTION_NAMES.filter((n) => (FUNCTIONS[n].ports as readonly string[]).includes('evidence')));
    expect(writers).toContain('close');
    for (const w of writers) {
      const s3 = roleStatements(w).flatMap(actions).filter((a) => a.startsWith('s3:'));
      expect(s3.sort(), w).toEqual(['s3:GetObject', 's3:ListBucket', 's3:PutObject', 's3:PutObjectRetention']);
    }
    const listing = roleStatements('close').find((st) => actions(st).includes('s3:ListBucket'))!;
    expect(listing.Condition).toEqual({ StringLike: { 's3:prefix': ['evidence/*'] } });
  });
});

// -------------------------------------------------------------------------------------------
describe('ledger table', () => {
  it('is built from createTableInput: same keys, same GSIs, on-demand', () => {
    const design = createTableInput('x');
    const props = resources[id(stack.data.table)]!.Properties;
    expect(props.BillingMode).toBe('PAY_PER_REQUEST');
    expect(props.KeySchema).toEqual(design.KeySchema);
    expect(new Set(props.AttributeDefinitions)).toEqual(new Set(design.AttributeDefinitions));
    const gsis = (props.GlobalSecondaryIndexes as Array<Record<string, unknown>>).map((g) => ({ IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection }));
    expect(gsis).toEqual(design.GlobalSecondaryIndexes);
  });

  it('has point-in-time recovery, deletion protection and TTL on the expiry attribute', () => {
    t.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      Replicas: [Match.objectLike({ PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true }, DeletionProtectionEnabled: true })],
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
    });
  });

  it('is read-only for the read API', () => {
    const ddb = roleStatements('read-api').flatMap(actions).filter((a) => a.startsWith('dynamodb:'));
    expect(ddb.length).toBeGreaterThan(0);
    expect(ddb.filter((a) => /Put|Update|Delete|Write/.test(a))).toEqual([]);
  });
});

// -------------------------------------------------------------------------------------------
describe('IAM scoping', () => {
  it('never grants Step Functions task callbacks or secret reads on "*"', () => {
    for (const st of allStatements()) {
      const sensitive = actions(st).some((a) => a.startsWith('states:SendTask') || a.startsWith('secretsmanager:') || a === 'states:*' || a === '*');
      if (sensitive) expect(resourceList(st), JSON.stringify(st)).not.toContain('*');
    }
  });

  it('lets only the approvals API and the approval request answer task tokens, on the state machines that wait for approvals', () => {
    const answering = FUNCTION_NAMES.filter((n) => roleStatements(n).some((st) => actions(st).includes('states:SendTaskSuccess')));
    expect(answering).toEqual(['approvals-api', 'request-approval']);
    const waiting = Object.entries(stack.workflows.placeholders)
      .filter(([, p]) => p.includes('RequestApprovalFunctionArn'))
      .map(([w]) => `:stateMachine:Jml-${w}"`);
    for (const name of answering) {
      const st = roleStatements(name).find((x) => actions(x).includes('states:SendTaskSuccess'))!;
      const arns = resourceList(st).map((r) => JSON.stringify(r));
      expect(arns, name).toHaveLength(waiting.length);
      for (const w of waiting) expect(arns.some((a) => a.includes(w)), `${name} ${w}`).toBe(true);
      expect(actions(st).sort()).toEqual(['states:SendTaskFailure', 'states:SendTaskHeartbeat', 'states:SendTaskSuccess']);
    }
  });

  it('gives each function exactly the secrets its spec names', () => {
    const secretRefs = new Map<string, string>();
    for (const [name, secret] of Object.entries(stack.secrets.port)) secretRefs.set(id(secret), name);
    secretRefs.set(id(stack.secrets.idp), 'idp');
    for (const [app, secret] of Object.entries(stack.secrets.scim)) secretRefs.set(id(secret), `scim:${app}`);
    secretRefs.set(id(stack.secrets.itsm!), 'itsm');
    const connectorSecrets = ['idp', ...Object.keys(stack.secrets.scim).map((a) => `scim:${a}`)];
    for (const name of FUNCTION_NAMES) {
      const spec = FUNCTIONS[name];
      const read = roleStatements(name)
        .filter((st) => actions(st).includes('secretsmanager:GetSecretValue'))
        .flatMap(resourceList)
        .map((r) => secretRefs.get((r as { Ref: string }).Ref) ?? JSON.stringify(r))
        .sort();
      const ports = spec.ports as readonly string[];
      const expected = [
        ...('secrets' in spec ? spec.secrets : []),
        ...(ports.includes('connectors') && !('connectors' in spec && spec.connectors === 'describe') ? connectorSecrets : []),
        ...(ports.includes('ticketing') ? ['itsm'] : []),
      ].sort();
      expect(read, name).toEqual(expected);
    }
  });

  it('stops executions only of its own state machines, and schedules only in the jml group', () => {
    const stop = roleStatements('start-run').filter((st) => actions(st).includes('states:StopExecution'));
    const resourcesStop = stop.flatMap(resourceList).map((r) => JSON.stringify(r));
    for (const name of ['Jml-joiner', 'Jml-mover', 'Jml-leaver', 'Jml-leave']) {
      expect(resourcesStop.some((r) => r.includes(`:execution:${name}:*`))).toBe(true);
    }
    for (const fn of ['start-run', 'schedule-retention'] as const) {
      const st = roleStatements(fn).find((x) => actions(x).includes('scheduler:CreateSchedule'))!;
      expect(JSON.stringify(st.Resource)).toContain(':schedule/jml/*');
      const pass = roleStatements(fn).find((x) => actions(x).includes('iam:PassRole'))!;
      expect(pass.Resource).toEqual(getAtt(id(stack.scheduling.role)));
      expect(pass.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } });
    }
  });

  it('lets a state machine invoke exactly the functions its definition names', () => {
    for (const [workflow, machine] of Object.entries(stack.workflows.machines)) {
      const roleId = id(machine!.role as never);
      const invoke = ofType('AWS::IAM::Policy')
        .filter(([, p]) => (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref === roleId))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[])
        .filter((st) => actions(st).includes('lambda:InvokeFunction'))
        .flatMap(resourceList);
      const expected = stack.workflows.placeholders[workflow as 'joiner']!.map((p) =>
        getAtt(id(stack.functions[TASK_FUNCTIONS[p as keyof typeof TASK_FUNCTIONS]] as never)),
      );
      expect(invoke, workflow).toEqual(expect.arrayContaining(expected));
      expect(invoke, workflow).toHaveLength(new Set(expected.map((e) => JSON.stringify(e))).size);
    }
  });
});

// -------------------------------------------------------------------------------------------
describe('functions', () => {
  it('run on Node.js 24, arm64, with tracing and the Powertools environment', () => {
    for (const name of FUNCTION_NAMES) {
      const p = resources[id(stack.functions[name] as never)]!.Properties;
      expect(p, name).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], TracingConfig: { Mode: 'Active' }, Handler: 'index.handler' });
      expect(envOf(name), name).toMatchObject({ POWERTOOLS_SERVICE_NAME: 'jml', POWERTOOLS_METRICS_NAMESPACE: 'jml', [ENV.tableName]: { Ref: id(stack.data.table) } });
    }
  });

  it('carry the environment of the ports they wire and nothing else', () => {
    const portVars: Record<string, string[]> = {
      queue: [ENV.eventsQueueUrl],
      mailer: [ENV.mailFrom],
      scheduler: [ENV.scheduleGroup, ENV.schedulerRoleArn, ENV.schedulerDlqArn, ENV.eventsQueueArn, ENV.scheduledActionFunctionArn],
      evidence: [ENV.evidenceBucket, ENV.evidenceLockMode, ENV.evidenceRetainDays],
      connectors: [ENV.idpKind, ENV.idpSecretArn, ENV.oktaOrgUrl, ENV.scimApps],
    };
    for (const name of FUNCTION_NAMES) {
      const env = envOf(name);
      for (const [port, vars] of Object.entries(portVars)) {
        const spec = FUNCTIONS[name];
        // A function that only describes the targets gets no target URL and no credentials.
        const describeOnly = port === 'connectors' && 'connectors' in spec && spec.connectors === 'describe';
        const wired = (spec.ports as readonly string[]).includes(port) && !describeOnly;
        for (const v of vars) expect(v in env, `${name} ${port} ${v}`).toBe(wired);
      }
    }
  });
});

// -------------------------------------------------------------------------------------------
describe('API', () => {
  const methods = () =>
    ofType('AWS::ApiGateway::Method').map(([, m]) => {
      const path = pathOf(m.Properties.ResourceId.Ref as string);
      return { route: `${m.Properties.HttpMethod} ${path}`, auth: m.Properties.AuthorizationType as string, params: m.Properties.RequestParameters ?? {} };
    });
  function pathOf(resourceId: string): string {
    const r = resources[resourceId]!.Properties;
    const parent = r.ParentId?.Ref as string | undefined;
    const parentPath = parent && resources[parent] ? pathOf(parent) : '';
    return `${parentPath}/${r.PathPart}`;
  }

  it('serves the contract routes: webhooks, Okta hook and approvals open, read routes IAM-authorised', () => {
    const m = methods().map((x) => `${x.route} ${x.auth}`).sort();
    expect(m).toEqual(
      [
        'POST /hris/events NONE',
        'POST /hris/bamboohr NONE',
        'GET /okta/events NONE',
        'POST /okta/events NONE',
        'GET /approvals/{id} NONE',
        'HEAD /approvals/{id} NONE',
        'POST /approvals/{id} NONE',
        'GET /runs AWS_IAM',
        'GET /runs/{runId} AWS_IAM',
        'GET /exceptions AWS_IAM',
        'POST /exceptions/{exceptionId}/resolve AWS_IAM',
        'POST /exception-grants AWS_IAM',
        'GET /exception-grants/{grantId} AWS_IAM',
      ].sort(),
    );
  });

  it('rejects unsigned webhook calls and read calls without their parameter at the edge', () => {
    const byRoute = Object.fromEntries(methods().map((x) => [x.route, x.params]));
    expect(byRoute['POST /hris/events']).toEqual({ 'method.request.header.X-JML-Timestamp': true, 'method.request.header.X-JML-Signature': true });
    expect(byRoute['POST /okta/events']).toEqual({ 'method.request.header.Authorization': true });
    expect(byRoute['GET /runs']).toEqual({ 'method.request.querystring.employeeId': true });
    t.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestParameters: true });
  });

  it('throttles, logs access as JSON, logs errors without request data, traces', () => {
    t.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'v1',
      TracingEnabled: true,
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('"requestId"') },
      MethodSettings: [
        Match.objectLike({ HttpMethod: '*', ResourcePath: '/*', LoggingLevel: 'ERROR', DataTraceEnabled: false, ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 }),
      ],
    });
  });

  it('gives the functions the API base URL for approval links without a dependency cycle', () => {
    expect(JSON.stringify(envOf('request-approval')[ENV.publicBaseUrl])).toContain(id(stack.api.api));
  });
});

// -------------------------------------------------------------------------------------------
describe('scheduler', () => {
  it('has a nightly reconciliation schedule on the scheduled-action function, with retries and the DLQ', () => {
    t.hasResourceProperties('AWS::Scheduler::Schedule', {
      Name: 'jml-nightly-reconcile',
      GroupName: 'jml',
      ScheduleExpression: 'cron(0 2 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/London',
      State: stack.workflows.machines.reconcile ? 'ENABLED' : 'DISABLED',
      Target: {
        Arn: getAtt(id(stack.functions['scheduled-action'] as never)),
        RoleArn: getAtt(id(stack.scheduling.role)),
        DeadLetterConfig: { Arn: getAtt(id(stack.queues.asyncDeadLetter)) },
        RetryPolicy: Match.objectLike({ MaximumRetryAttempts: Match.anyValue() }),
        Input: Match.serializedJson(Match.objectLike({ kind: 'reconcile' })),
      },
    });
  });

  it('delivers with a role that may only send to the events queue and DLQ and invoke the scheduled-action function', () => {
    const roleId = id(stack.scheduling.role);
    const statements = ofType('AWS::IAM::Policy')
      .filter(([, p]) => (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref === roleId))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Statement[]);
    expect(statements).toHaveLength(2);
    const send = statements.find((st) => st.Action === 'sqs:SendMessage')!;
    expect(resourceList(send)).toEqual(expect.arrayContaining([getAtt(id(stack.queues.events)), getAtt(id(stack.queues.asyncDeadLetter))]));
    expect(resourceList(send)).toHaveLength(2);
    expect(statements.find((st) => st.Action === 'lambda:InvokeFunction')!.Resource).toEqual(getAtt(id(stack.functions['scheduled-action'] as never)));
    const trust = resources[roleId]!.Properties.AssumeRolePolicyDocument.Statement[0];
    expect(trust.Principal).toEqual({ Service: 'scheduler.amazonaws.com' });
    expect(trust.Condition.StringEquals).toHaveProperty('aws:SourceAccount');
  });

  it('sends failed scheduled actions to the async DLQ after two retries', () => {
    t.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: id(stack.functions['scheduled-action'] as never) },
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: getAtt(id(stack.queues.asyncDeadLetter)) } },
    });
  });
});

// -------------------------------------------------------------------------------------------
describe('workflows', () => {
  const files = readdirSync(STATE_MACHINES_DIR).filter((f) => f.endsWith('.asl.json'));

  it.each(files)('%s: the substitutions the stack passes are exactly its placeholders, each the right function', (file) => {
    const workflow = file.replace('.asl.json', '') as 'joiner';
    const machine = stack.workflows.machines[workflow];
    expect(machine, `${file} has no state machine`).toBeDefined();
    const props = resources[id(machine! as never)]!.Properties;
    const placeholders = placeholdersOf(readFileSync(join(STATE_MACHINES_DIR, file), 'utf8'));
    expect(Object.keys(props.DefinitionSubstitutions).sort()).toEqual(placeholders);
    for (const p of placeholders) {
      const fn = TASK_FUNCTIONS[p as keyof typeof TASK_FUNCTIONS];
      expect(props.DefinitionSubstitutions[p], p).toEqual(getAtt(id(stack.functions[fn] as never)));
    }
  });

  it('hand a run workflow that died (failed, timed out, aborted) to the execution-ended function, with a DLQ', () => {
    const runMachines = Object.entries(stack.workflows.machines)
      .filter(([w]) => w !== 'reconcile')
      .map(([, m]) => ({ Ref: id(m! as never) }));
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED'], stateMachineArn: runMachines },
      },
      Targets: [
        Match.objectLike({
          Arn: getAtt(id(stack.functions['execution-ended'] as never)),
          DeadLetterConfig: { Arn: getAtt(id(stack.queues.asyncDeadLetter)) },
        }),
      ],
    });
  });

  it('are Standard, log every event without execution data (task tokens, personal data) and trace', () => {
    for (const [workflow, machine] of Object.entries(stack.workflows.machines)) {
      const p = resources[id(machine! as never)]!.Properties;
      expect(p.StateMachineType, workflow).toBe('STANDARD');
      expect(p.LoggingConfiguration, workflow).toMatchObject({ Level: 'ALL', IncludeExecutionData: false });
      expect(p.TracingConfiguration, workflow).toEqual({ Enabled: true });
    }
  });
});

// -------------------------------------------------------------------------------------------
describe('secrets', () => {
  it('never puts a secret value in the template: generated ones are generated, the others are empty', () => {
    for (const [, r] of ofType('AWS::SecretsManager::Secret')) expect(r.Properties).not.toHaveProperty('SecretString');
    for (const name of ['hrisWebhook', 'oktaHook', 'linkSigning'] as const) {
      expect(resources[id(stack.secrets.port[name])]!.Properties.GenerateSecretString).toMatchObject({ GenerateStringKey: 'current', PasswordLength: 64 });
    }
    for (const secret of [stack.secrets.port.bambooHr, stack.secrets.idp, ...Object.values(stack.secrets.scim), stack.secrets.itsm!]) {
      expect(resources[id(secret)]!.Properties).not.toHaveProperty('GenerateSecretString');
    }
  });
});

// -------------------------------------------------------------------------------------------
describe('ITSM tickets', () => {
  it('gives the functions that open or resolve exceptions the ITSM and its secret, and no other function', () => {
    for (const name of FUNCTION_NAMES) {
      const env = envOf(name);
      if ((FUNCTIONS[name].ports as readonly string[]).includes('ticketing')) {
        expect(JSON.parse(env[ENV.itsm] as string), name).toEqual({
          system: 'servicenow',
          instanceUrl: 'https://acme.service-now.com',
          assignmentGroup: 'Identity Operations',
          table: 'incident',
          closeCode: 'Solved (Permanently)',
        });
        expect(env[ENV.itsmSecretArn], name).toEqual({ Ref: id(stack.secrets.itsm!) });
      } else {
        expect(env, name).not.toHaveProperty(ENV.itsm);
      }
    }
    expect(resources[id(stack.secrets.itsm!)]!.Properties.Name).toBe('Jml/itsm');
  });

  it('routes POST /exceptions/{exceptionId}/resolve to the operator function, IAM-authorised', () => {
    const method = ofType('AWS::ApiGateway::Method').find(([, r]) => r.Properties.HttpMethod === 'POST' && JSON.stringify(r.Properties.ResourceId).includes('resolve'));
    expect(method).toBeDefined();
    expect(method![1].Properties.AuthorizationType).toBe('AWS_IAM');
    expect(JSON.stringify(method![1].Properties.Integration.Uri)).toContain(id(stack.functions['exception-grants'] as never));
  });

  it('without an ITSM, creates no secret and sets nothing', () => {
    const plain = synth({ itsm: undefined });
    try {
      expect(plain.stack.secrets.itsm).toBeUndefined();
      const vars = Object.values(plain.template.toJSON().Resources as Resources)
        .filter((r) => r.Type === 'AWS::Lambda::Function')
        .flatMap((r) => Object.keys(r.Properties.Environment?.Variables ?? {}));
      expect(vars).not.toContain(ENV.itsm);
      expect(vars).not.toContain(ENV.itsmSecretArn);
    } finally {
      plain.cleanup();
    }
  });
});

// -------------------------------------------------------------------------------------------
describe('observability', () => {
  it('alarms on the time-to-disable SLA from the policy and on exceptions opened', () => {
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'jml',
      MetricName: 'TimeToDisable',
      Dimensions: Match.arrayWith([{ Name: 'Workflow', Value: 'leaver' }, { Name: 'service', Value: 'jml' }]),
      Threshold: 15 * 60,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: Match.arrayWith([Match.objectLike({ Expression: Match.stringLikeRegexp('^SUM\\(') })]),
      Threshold: 1,
      AlarmDescription: Match.stringLikeRegexp('exceptions'),
    });
  });

  it('mails alarms through an encrypted, TLS-only topic', () => {
    t.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: getAtt(id(stack.data.key)) });
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'iam-oncall@acme.example' });
    t.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  it('puts the four KPIs on the dashboard', () => {
    const body = JSON.stringify(ofType('AWS::CloudWatch::Dashboard')[0]![1].Properties.DashboardBody);
    for (const kpi of ['TimeToDisable', 'RevocationCompleteness', 'ExceptionsOpened', 'DriftEntitlements', 'ApproximateNumberOfMessagesVisible', 'ExecutionsFailed', 'Throttles', 'CallBudgetWait', 'CallBudgetUnavailable']) {
      expect(body, kpi).toContain(kpi);
    }
  });
});

// -------------------------------------------------------------------------------------------
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
